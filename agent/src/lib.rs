#![doc = include_str!("../README.md")]

mod agent;
pub mod backoff;
mod maintenance;
pub mod proxy;
pub mod report;
pub mod run;

pub use agent::{
    Agent, AgentConfig, AgentError, Attempt, Signal, endpoint, interval_json, jittered,
};
pub use backoff::{Backoff, Budget};
pub use maintenance::{Maintenance, MaintenanceError};
pub use proxy::{ProxyChoice, parse_proxy};
pub use report::{ErrorFacts, FailureEntry, FailureKind, FailureLog, classify};
