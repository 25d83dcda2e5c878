//! The hot path: a heartbeat applied by the writer inside its batch.
//!
//! The statements below are core's heartbeat rule
//! ([`due_after_heartbeat`](iamalive_core::heartbeat::due_after_heartbeat)
//! with [`Rearm::Lazily`](iamalive_core::Rearm)) in SQL, the lazy window's
//! bounds taken from [`LazyWindow`].

use iamalive_core::{Heartbeat, HeartbeatOutcome, LazyWindow, Status, StoreError, Timestamp};
use rusqlite::{Connection, OptionalExtension, Statement, params};
use tokio::sync::oneshot;

use crate::codec::{self, COLS, record_from_row, ts};
use crate::{STORE, sqlite_error};

/// What every heartbeat to a known host sets, whatever its status: the
/// newest `last_seen`, a new version, the message, report and group it
/// sent (the stored ones when it sent none) and the interval it sent. A
/// macro, not a `const`, so that `concat!` can build each statement from it.
macro_rules! seen_sql {
    () => {
        "
        last_seen = max(last_seen, ?2),
        version = version + 1,
        message = coalesce(?3, message),
        report = coalesce(?4, report),
        group_name = coalesce(?7, group_name),
        interval_ms = ?8,"
    };
}

/// An up host's learned interval when the heartbeat sent none: the gap
/// since its last beat shifted into the last two gaps (core's
/// `learn_interval`).
macro_rules! up_gaps_sql {
    () => {
        "
        prev_gap_ms = CASE WHEN ?8 IS NULL AND ?2 >= last_seen THEN gap_ms ELSE prev_gap_ms END,
        gap_ms = CASE WHEN ?8 IS NULL AND ?2 >= last_seen
            THEN CASE WHEN ?2 > last_seen THEN max((?2 - last_seen) / 1000000, 1) ELSE 0 END
            ELSE gap_ms END"
    };
}

/// The common case, an up host: one `UPDATE` and no `RETURNING` (whose
/// ephemeral result table costs more than the update itself). `due_at`
/// moves to `due_if_up` unless a recovery is still owed.
pub(crate) const UP_SQL: &str = concat!(
    "UPDATE hosts SET",
    seen_sql!(),
    up_gaps_sql!(),
    ",
        due_at = CASE WHEN outbox IS NULL AND policy IS NULL AND flapping IS NULL
            THEN ?5 ELSE due_at END
    WHERE host = ?1 AND status = 'up'"
);

/// The cheapest case, tried first: an up host with nothing owed whose
/// `due_at` already lies in the [`LazyWindow`], between half a timeout
/// from now (`?6`) and the new deadline (`?5`), both included. It keeps that `due_at`, so the due index is not written
/// at all; the design allows a `due_at` that is early, never one that is
/// late, and the sweep re-arms a record it finds due too soon. A host
/// with a stored policy (a schedule set through the API) keeps its
/// `due_at` whatever it is: the monitor armed it from that policy, which
/// `?5` does not know, and it only grows with `last_seen`; so does a
/// flapping host (the monitor armed it for the instant it is stable).
pub(crate) const LAZY_SQL: &str = concat!(
    "UPDATE hosts SET",
    seen_sql!(),
    up_gaps_sql!(),
    "
    WHERE host = ?1 AND status = 'up' AND outbox IS NULL
        AND ((due_at >= ?6 AND due_at <= ?5) OR policy IS NOT NULL OR flapping IS NOT NULL)"
);

/// Any other known status, reporting it: a missing or alarmed host becomes
/// due at the heartbeat, a paused one keeps its `due_at` (none, or the end
/// of its pause). Written with `OR`
/// rather than `IN (…)`, which would build a temporary table each time.
const OTHER_SQL: &str = concat!(
    "UPDATE hosts SET",
    seen_sql!(),
    "
        due_at = CASE WHEN status = 'paused' THEN due_at ELSE ?2 END
    WHERE host = ?1 AND (status = 'missing' OR status = 'alarmed' OR status = 'paused')
    RETURNING status"
);

/// A new host, as `HostRecord::new` with `due_if_up` as its `due_at`.
const CREATE_SQL: &str = "INSERT INTO hosts
        (host, status, last_seen, watch_from, alarm_count, due_at, version, message, report,
         group_name, interval_ms)
    VALUES (?1, 'up', ?2, ?2, 0, ?5, 1, ?3, ?4, ?7, ?8)
    ON CONFLICT (host) DO NOTHING";

// Every statement above takes the same eight parameters (`?6` is the lazy
// path's half-way mark, `?7` the group, `NULL` to keep the stored one, `?8`
// the interval the heartbeat sent in milliseconds, `NULL` for none), so one
// argument list serves them all; a statement binds the ones it names. The
// interval is core's `learn_interval`: the sent one replaced, or on an up
// host the gap since its last beat shifted into the last two gaps (SQLite
// evaluates every right-hand side on the row as it was).

/// One queued heartbeat and the caller waiting for its outcome.
pub(crate) struct HeartbeatJob {
    host: String,
    at: i64,
    due_if_up: i64,
    /// The lazy window's start.
    half_way: i64,
    message: Option<String>,
    report: Option<String>,
    group: Option<String>,
    /// The interval sent, in milliseconds.
    interval: Option<i64>,
    create: bool,
    result: Option<Result<HeartbeatOutcome, StoreError>>,
    reply: oneshot::Sender<Result<HeartbeatOutcome, StoreError>>,
}

impl HeartbeatJob {
    /// The job and the receiver its caller awaits.
    pub(crate) fn new(
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> (
        Self,
        oneshot::Receiver<Result<HeartbeatOutcome, StoreError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let job = Self {
            host: hb.host.as_str().to_owned(),
            at: ts(hb.at),
            due_if_up: ts(due_if_up),
            half_way: ts(LazyWindow::new(hb.at, due_if_up).from),
            message: hb.message.clone(),
            report: hb.report.clone(),
            group: hb.group.as_ref().map(|g| g.as_str().to_owned()),
            interval: hb
                .interval
                .map(|i| i64::try_from(iamalive_core::beat::to_ms(i)).unwrap_or(i64::MAX)),
            create,
            result: None,
            reply,
        };
        (job, rx)
    }

    /// Applies it; `up` is the writer's prepared [`LAZY_SQL`].
    pub(crate) fn run(&mut self, conn: &Connection, up: Option<&mut Statement<'_>>) {
        self.result = Some(self.apply(conn, up));
    }

    /// Answers the caller with the held result, or `failure` if the batch
    /// did not commit.
    pub(crate) fn finish(self, failure: Option<StoreError>) {
        let r = match (failure, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError::backend(STORE, "a heartbeat was never run")),
        };
        let _ = self.reply.send(r);
    }

    fn apply(
        &self,
        conn: &Connection,
        up: Option<&mut Statement<'_>>,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let host = self.host.as_str();
        let args = params![
            host,
            self.at,
            self.message.as_deref(),
            self.report.as_deref(),
            self.due_if_up,
            self.half_way,
            self.group.as_deref(),
            self.interval
        ];
        let lazy_args = args;
        let kept = match up {
            Some(stmt) => stmt.execute(lazy_args),
            None => conn
                .prepare_cached(LAZY_SQL)
                .and_then(|mut s| s.execute(lazy_args)),
        }
        .map_err(sqlite_error)?;
        if kept == 1 {
            return Ok(HeartbeatOutcome::Updated { status: Status::Up });
        }
        let updated = conn
            .prepare_cached(UP_SQL)
            .and_then(|mut s| s.execute(args))
            .map_err(sqlite_error)?;
        if updated == 1 {
            return Ok(HeartbeatOutcome::Updated { status: Status::Up });
        }
        let old: Option<String> = conn
            .prepare_cached(OTHER_SQL)
            .and_then(|mut s| s.query_row(args, |r| r.get(0)).optional())
            .map_err(sqlite_error)?;
        if let Some(old) = old {
            return Ok(HeartbeatOutcome::Updated {
                status: codec::status(&old, host)?,
            });
        }
        // Absent, or present with a status no build of ours writes.
        let created = self.create
            && conn
                .prepare_cached(CREATE_SQL)
                .and_then(|mut s| s.execute(args))
                .map_err(sqlite_error)?
                == 1;
        if created {
            return Ok(HeartbeatOutcome::Created);
        }
        let row = conn
            .prepare_cached(&format!("SELECT {COLS} FROM hosts WHERE host = ?1"))
            .and_then(|mut s| s.query_row([host], |r| Ok(record_from_row(r))).optional())
            .map_err(sqlite_error)?;
        match row {
            None => Ok(HeartbeatOutcome::Unknown),
            Some(decoded) => Err(StoreError::Corrupt {
                store: STORE,
                key: host.to_owned(),
                reason: decoded.err().map_or_else(
                    || "its status cannot take a heartbeat".to_owned(),
                    |e| e.to_string(),
                ),
            }),
        }
    }
}
