#![doc = include_str!("../README.md")]

pub mod beat;
mod clock;
pub mod decide;
pub mod events;
pub mod flap;
mod group;
pub mod group_outage;
pub mod health;
pub mod heartbeat;
mod host;
pub mod job;
mod memory;
mod model;
mod monitor;
mod notifier;
mod policy;
mod report;
mod route;
pub mod schedule;
pub mod settings;
mod silence;
mod store;
pub mod text;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decide::{ChannelOutcome, Context, Decision, RetryPolicy, evaluate, evaluate_in_place};
pub use events::{Event, EventKind, MAX_EVENTS};
pub use group::{GroupName, InvalidGroup, MAX_GROUP_LEN, UNGROUPED, WATCHER_GROUP};
pub use group_outage::{GroupHost, GroupPolicy, GroupRecord};
pub use health::{Announcement, HealthOptions, HealthReport, WatcherHealth};
pub use heartbeat::{LazyWindow, Rearm, apply_heartbeat, created_by_heartbeat};
pub use host::{HostId, HostPattern, InvalidHost, MAX_HOST_LEN};
pub use memory::MemoryStore;
pub use model::{
    Downtime, Heartbeat, HostRecord, Lease, MonitorMark, Notice, NoticeKind, Outbox, Refusal,
    Status, Timestamp, add, since,
};
pub use monitor::{BlindProbe, DuplicateChannel, Grouping, Monitor, MonitorOptions, SweepReport};
pub use notifier::{Notifier, NotifyError};
pub use policy::{Policy, PolicyOverride, PolicySet};
pub use report::{describe_report, describe_report_in, report_span};
pub use route::{Route, Routes, UnknownChannel, routable};
pub use schedule::{HostPolicy, PolicySpec, Schedule};
pub use silence::{Repeat, Silence, check_tz, parse_instant};
pub use store::{BoxError, HeartbeatOutcome, Store, StoreError, encode_json};
