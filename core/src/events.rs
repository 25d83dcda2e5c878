//! Each host's event log: its last signals and the notices sent about it.
//!
//! Bounded per host ([`MAX_EVENTS`]), on every store, so the footprint stays
//! predictable however chatty a job is. Served by
//! `GET /v1/hosts/<host>/events`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Notice, NoticeKind, Timestamp};

/// How many events each host keeps; older ones are dropped.
pub const MAX_EVENTS: usize = 100;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A success (by a ping URL or a JSON heartbeat with a `status` or
    /// `rid`; plain heartbeats stay one write and are not logged).
    Success,
    /// A reported failure.
    Fail,
    /// A run started.
    Start,
    /// A log message.
    Log,
    /// An alarm was delivered.
    Alarm,
    /// A reminder was delivered.
    Reminder,
    /// An all-clear was delivered.
    Recovery,
}

impl EventKind {
    /// The event of a delivered notice of `kind`, if it is about a host.
    pub fn of_notice(kind: NoticeKind) -> Option<Self> {
        Some(match kind {
            NoticeKind::Alarm => EventKind::Alarm,
            NoticeKind::Reminder => EventKind::Reminder,
            NoticeKind::Recovery => EventKind::Recovery,
            _ => return None,
        })
    }
}

/// One entry of a host's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (the watcher's clock).
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// A success's message, a failure's reason, a log line, or a notice's
    /// headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The run a success or failure ended: how long it took.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// The run id it carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
}

impl Event {
    /// An event with nothing but its kind and instant.
    pub fn new(kind: EventKind, at: Timestamp) -> Self {
        Self {
            at,
            kind,
            message: None,
            duration: None,
            rid: None,
        }
    }

    /// The event of a notice delivered at `at`, if it is about a host.
    pub fn of_notice(n: &Notice, at: Timestamp) -> Option<Self> {
        let kind = EventKind::of_notice(n.kind)?;
        let mut e = Event::new(kind, at);
        e.message = Some(match n.job.as_deref().and_then(|j| j.summary.as_deref()) {
            Some(s) => format!("{}; {s}", n.headline()),
            None => n.headline(),
        });
        Some(e)
    }
}
