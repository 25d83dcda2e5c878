//! The storage contract every backend implements.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Event, GroupName, GroupRecord, Heartbeat, HostId, HostRecord, MonitorMark, Silence, Status,
    Timestamp,
};

/// A boxed error from a backend's own client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store.
///
/// The backend's own error is printed in `Display` (and so not returned
/// again from `source()`, which would make reporters print it twice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or timed out; a retry may help.
    #[error("{store} is unavailable: {error}")]
    Unavailable {
        /// Which store spoke.
        store: &'static str,
        /// The backend's error.
        error: BoxError,
    },
    /// The request was refused for what it asked; a retry will not help.
    #[error("{store}: invalid input: {reason}")]
    InvalidInput {
        /// Which store spoke.
        store: &'static str,
        /// Why.
        reason: String,
    },
    /// Stored data could not be read back.
    #[error("{store}: corrupt data at {key}: {reason}")]
    Corrupt {
        /// Which store spoke.
        store: &'static str,
        /// The key or row.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A record kept changing under a read-modify-write (heartbeats or
    /// other monitors won every compare-and-swap); a retry later may help.
    #[error("{key} kept changing; gave up after {rounds} tries")]
    Contended {
        /// The record.
        key: String,
        /// Compare-and-swaps lost.
        rounds: usize,
    },
    /// The store's data is not what this deployment wrote: the database
    /// file was deleted or replaced under the running process, or the data
    /// was wiped (a Redis restarted without persistence). Found by
    /// [`Store::check`]; the watcher announces it on every channel.
    #[error("{store}: data lost: {reason}")]
    Lost {
        /// Which store spoke.
        store: &'static str,
        /// What was found, and what it means for the hosts.
        reason: String,
    },
    /// Any other backend failure; a retry will not help.
    #[error("{store}: {error}")]
    Backend {
        /// Which store spoke.
        store: &'static str,
        /// The backend's error.
        error: BoxError,
    },
}

impl StoreError {
    /// Wraps a transient backend error.
    pub fn unavailable(store: &'static str, error: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            store,
            error: error.into(),
        }
    }

    /// Wraps a permanent backend error.
    pub fn backend(store: &'static str, error: impl Into<BoxError>) -> Self {
        Self::Backend {
            store,
            error: error.into(),
        }
    }

    /// The request was refused for what it asked (see
    /// [`StoreError::InvalidInput`]).
    pub fn invalid_input(store: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            store,
            reason: reason.into(),
        }
    }

    /// What is stored at `key` could not be read back (see
    /// [`StoreError::Corrupt`]).
    pub fn corrupt(store: &'static str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            store,
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The store's data was lost or replaced (see [`StoreError::Lost`]).
    pub fn lost(store: &'static str, reason: impl Into<String>) -> Self {
        Self::Lost {
            store,
            reason: reason.into(),
        }
    }

    /// Whether this is [`StoreError::Lost`].
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::Lost { .. })
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Contended { .. })
    }

    /// The same failure once more, for another caller: a group commit (the
    /// SQLite writer, the Redis heartbeat batcher) answers every caller of
    /// a batch that failed as a whole with it. Same variant and store, so
    /// [`is_transient`](Self::is_transient) answers alike; a wrapped
    /// backend error becomes its text, sources included.
    pub fn replicate(&self) -> Self {
        match self {
            Self::Unavailable { store, error } => {
                Self::unavailable(store, crate::text::error_chain(&**error))
            }
            Self::Backend { store, error } => {
                Self::backend(store, crate::text::error_chain(&**error))
            }
            Self::InvalidInput { store, reason } => Self::InvalidInput {
                store,
                reason: reason.clone(),
            },
            Self::Corrupt { store, key, reason } => Self::Corrupt {
                store,
                key: key.clone(),
                reason: reason.clone(),
            },
            Self::Contended { key, rounds } => Self::Contended {
                key: key.clone(),
                rounds: *rounds,
            },
            Self::Lost { store, reason } => Self::Lost {
                store,
                reason: reason.clone(),
            },
        }
    }
}

/// `value` as the JSON a store keeps (a group record, an event, a
/// silence, a record's outbox). A value serde cannot write is refused as
/// [`StoreError::InvalidInput`] naming `what`, so every store words it alike.
pub fn encode_json<T: serde::Serialize + ?Sized>(
    store: &'static str,
    what: impl fmt::Display,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::invalid_input(store, format!("{what} cannot be encoded: {e}")))
}

/// What [`Store::record_heartbeat`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The host was unknown and creation was not asked for: nothing written.
    Unknown,
    /// The host was unknown and has been created `up`.
    Created,
    /// A known host's `last_seen` was moved; `status` is its status before.
    Updated {
        /// Its status when the heartbeat landed.
        status: Status,
    },
}

impl HeartbeatOutcome {
    /// Whether a monitor should look at the host now (a possible recovery).
    pub fn needs_decision(self) -> bool {
        matches!(
            self,
            Self::Updated {
                status: Status::Missing | Status::Alarmed
            }
        )
    }
}

/// Where host records, silences and the monitors' mark live.
///
/// Every method is one a backend cannot do without; the conveniences live
/// on [`Monitor`](crate::Monitor). Backends implement `Display` so logs say
/// which store spoke (`sqlite(/var/lib/iamalive.db)`).
///
/// Run [`conformance`](crate::conformance) (feature `test-util`) against a
/// new backend: it checks every contract below.
#[async_trait]
pub trait Store: fmt::Display + Send + Sync + 'static {
    /// Records a heartbeat in **one atomic write**: the hot path.
    ///
    /// *Contract*: `last_seen` becomes the later of its old value and
    /// `hb.at`; `version` is bumped; `message`, `report` and `group` are
    /// replaced when the heartbeat carries them, kept otherwise (the group
    /// travels in the same write: no extra write for it). `due_at` becomes
    /// `due_if_up` when the host is `up` with no owed notice, becomes `hb.at`
    /// (due now) when it is `missing` or `alarmed`, and is left alone
    /// otherwise (`paused`, or a recovery still owed). A backend may leave an
    /// up host's `due_at` alone while it lies in the
    /// [`LazyWindow`](crate::LazyWindow) (early by at most half a timeout,
    /// never late), and nowhere else. The rule is written once, in
    /// [`heartbeat`](crate::heartbeat): call
    /// [`apply_heartbeat`](crate::apply_heartbeat) or implement exactly
    /// [`due_after_heartbeat`](crate::heartbeat::due_after_heartbeat). An unknown host is created as [`HostRecord::new`] with
    /// `due_if_up` as its `due_at` when `create` is true, and nothing is
    /// written when it is false. Concurrent heartbeats for one host never
    /// lose a bump.
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError>;

    /// Records whose `due_at ≤ now`, earliest first, at most `limit`.
    ///
    /// *Contract*: costs O(due), never O(hosts); records with no `due_at`
    /// are never returned. The records may be slightly stale (an index
    /// lagging its table): callers decide with compare-and-swap.
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError>;

    /// The earliest `due_at` of any record, for a runner to sleep until.
    ///
    /// *Contract*: O(1) or O(shards); may be early, never later than the
    /// true earliest.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// One record, read consistently (never older than a completed write).
    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError>;

    /// Writes `next` if the stored version is `expected`; `expected == 0`
    /// means "create if absent".
    ///
    /// *Contract*: atomic. Returns `false` and writes nothing when the stored
    /// version differs (a heartbeat or another monitor got there first), or
    /// when the record is absent and `expected != 0`. The stored version
    /// afterwards is `next.version`, which callers set to `expected + 1`;
    /// the due index follows `next.due_at` in the same atomic step.
    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError>;

    /// Up to `limit` records ordered by host id, strictly after `after`.
    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError>;

    /// Deletes a host, its due-index entry and its event log; `false` if it
    /// was absent.
    async fn remove(&self, host: &HostId) -> Result<bool, StoreError>;

    /// Stores (or replaces, by id) a silence, shared by every monitor.
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// All stored silences.
    async fn silences(&self) -> Result<Vec<Silence>, StoreError>;

    /// Deletes a silence; `false` if it was absent.
    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError>;

    /// Marks that a monitor runs at `now` and returns the shared mark after
    /// [`MonitorMark::advance`]`(now, gap)`.
    ///
    /// *Contract*: the read-modify-write is atomic enough that two monitors
    /// marking at once leave `last_run` at the later instant and keep any
    /// recorded downtime.
    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError>;

    /// Appends `event` to `host`'s event log and drops all but its newest
    /// `keep` events.
    ///
    /// *Contract*: the append and the trim are one atomic step, so the log
    /// never holds more than `keep` events, whatever appends race; O(1) or
    /// O(keep), never O(hosts). The log is independent of the host record
    /// (no version bump) and is deleted with the host by
    /// [`remove`](Store::remove). The default keeps nothing: a backend
    /// without a log fails the conformance suite's event cases.
    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        let _ = (host, event, keep);
        Ok(())
    }

    /// The newest `limit` events of `host`, newest first; empty for an
    /// unknown host.
    async fn events(&self, host: &HostId, limit: usize) -> Result<Vec<Event>, StoreError> {
        let _ = (host, limit);
        Ok(Vec::new())
    }

    /// Checks that the data is still this deployment's: cheap, called by
    /// the [`Monitor`](crate::Monitor) each time it marks itself alive.
    ///
    /// *Contract*: O(1) (a `stat`, one key read), never O(hosts).
    /// Returns [`StoreError::Lost`] when the store finds its data gone or
    /// replaced while it runs (the SQLite file deleted or swapped, a Redis
    /// deployment marker vanished): the watcher then announces it on every
    /// channel and `/healthz` answers 503 until a later check passes. A
    /// loss that the store has repaired as far as it can (a re-created
    /// marker) is reported once; one that persists (a deleted file) at
    /// every check. Any other error means the check could not be made and
    /// counts as a failed store call. The default finds nothing.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How many hosts the store holds, if it can tell cheaply: O(1) or one
    /// count the backend keeps, never a walk of the host list; an estimate
    /// is fine. The watcher-blind notice says "20 of 30 hosts silent" with
    /// it, and only "20 hosts silent" when this is `None` (the default).
    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// How many hosts are due by `until` (`due_at <= until`), counting no
    /// further than `at_most`, if the store can tell from its due index.
    ///
    /// *Contract*: O(log hosts) or O(min(due, `at_most`)), never a walk of
    /// the host list; it may count a host due just after `until` (a
    /// `due_at` rounded to the index's precision), never miss one due by
    /// then. Asked before the watcher-blind detection holds the first
    /// alarms of hosts without a group: only when more than half of all
    /// hosts can be silent by the end of the wait are they held
    /// ([`crate::group_outage::loose`]). The default cannot (`None`), and
    /// such alarms are then held whenever three fall silent together.
    async fn count_due(&self, until: Timestamp, at_most: u64) -> Result<Option<u64>, StoreError> {
        let _ = (until, at_most);
        Ok(None)
    }

    /// Whether [`host_count`](Self::host_count) answers with a count.
    /// Only then are hosts without a group part of the watcher-blind
    /// detection ("more than half of all hosts silent within one wait",
    /// [`crate::group_outage::loose`]); without it they alarm on their
    /// own, never held. The default cannot.
    fn counts_hosts(&self) -> bool {
        false
    }

    /// The hosts of `group`, at most `limit`, in any order; `None` when
    /// the store cannot read a group's hosts without a scan (then no host
    /// counts as evidence of its group's outage before its own timeout).
    ///
    /// *Contract*: read by an index on the group (O(group size), never
    /// O(hosts)); called only when a group decides its outage, never per
    /// sweep. A host belongs to the group its record names now. The
    /// default cannot.
    async fn group_hosts(
        &self,
        group: &GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        let _ = (group, limit);
        Ok(None)
    }

    /// Whether this store keeps group records (the four methods below).
    /// Without them the [`Monitor`](crate::Monitor) sends every host's
    /// notices on their own, as before groups; the conformance suite's
    /// group cases fail on a store that says it keeps them and does not.
    fn keeps_groups(&self) -> bool {
        false
    }

    /// One group's outage record, if stored.
    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        let _ = group;
        Ok(None)
    }

    /// The stored version of `group`'s record without reading the record
    /// (`Some(0)`: there is none); `None` when this store cannot tell
    /// cheaply, and the record is read instead.
    ///
    /// The [`Monitor`](crate::Monitor) keeps the last group records it
    /// read or wrote and asks this before reading one again: a site's
    /// record names every silent host (about 1 MB at 10,000 hosts), and
    /// one sweep batch after another reads the same record back. The
    /// version is bumped by every write, so an equal version is the same
    /// record.
    ///
    /// *Contract*: equal to the `version` of the record
    /// [`get_group`](Store::get_group) would return at that moment.
    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        let _ = group;
        Ok(None)
    }

    /// Writes `next` if the stored group record's version is `expected`
    /// (0: only if absent); `false` when another writer won.
    ///
    /// *Contract*: atomic like [`compare_and_swap`](Store::compare_and_swap),
    /// and it moves the record in the group due index by its `due_at` in
    /// the same step.
    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        let _ = (expected, next);
        Ok(false)
    }

    /// Group records with `due_at <= now`, earliest first, at most `limit`.
    ///
    /// *Contract*: O(due groups), like [`due`](Store::due).
    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let _ = (now, limit);
        Ok(Vec::new())
    }

    /// The earliest `due_at` of any group record.
    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's failure, replicated for each caller, keeps its kind (so
    /// retries decide alike), its store and its whole message.
    #[test]
    fn a_replicated_error_keeps_its_kind_and_its_words() {
        let io = std::io::Error::other("connection reset");
        let e = StoreError::unavailable("redis", io);
        let r = e.replicate();
        assert!(r.is_transient());
        assert_eq!(r.to_string(), e.to_string());
        let e = StoreError::backend("sqlite", "commit failed: disk I/O error");
        let r = e.replicate();
        assert!(!r.is_transient());
        assert_eq!(r.to_string(), "sqlite: commit failed: disk I/O error");
        let e = StoreError::Corrupt {
            store: "redis",
            key: "h:a".into(),
            reason: "status".into(),
        };
        assert_eq!(e.replicate().to_string(), e.to_string());
        let e = StoreError::Contended {
            key: "a".into(),
            rounds: 3,
        };
        assert!(e.replicate().is_transient());
    }

    /// What serde cannot write is refused as invalid input naming what it
    /// was; what it can is the same JSON as serde_json's.
    #[test]
    fn encode_json_names_what_it_could_not_write() {
        let tuple_keys = std::collections::BTreeMap::from([((1, 2), 3)]);
        match encode_json("redis", format_args!("policy of {}", "web"), &tuple_keys) {
            Err(StoreError::InvalidInput { store, reason }) => {
                assert_eq!(store, "redis");
                assert!(
                    reason.starts_with("policy of web cannot be encoded: "),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            encode_json("sqlite", "event", &["a", "b"]).unwrap(),
            r#"["a","b"]"#
        );
    }
}
