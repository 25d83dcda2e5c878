#![doc = include_str!("../README.md")]

mod agent;
pub mod report;

pub use agent::{Agent, AgentConfig, AgentError, Attempt, endpoint, jittered};
pub use report::{ErrorFacts, FailureEntry, FailureKind, FailureLog, classify};
