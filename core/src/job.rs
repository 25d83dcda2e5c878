//! Job signals: a heartbeat may say *success*, *fail*, *start* or *log*.
//!
//! Cron jobs (the nightly backup, the certificate renewal) report more than
//! "alive": a failure must alarm at once, a start opens a run whose success
//! records its duration, a log line changes nothing. The rules are pure
//! functions of a record and an instant, like [`decide`](crate::decide):
//!
//! - [`fail`] records a failure and makes the host due at once; the next
//!   evaluation declares it missing (missing since the failure) and owes
//!   the alarm, whatever its deadline says. It stays failing until a
//!   success arrives after the failure; that success recovers it (with an
//!   all-clear if the alarm went out, saying how often it failed).
//! - [`start`] opens a run; it is *not* a success (`last_seen` does not
//!   move), so a run that never finishes alarms at the deadline as a silent
//!   host does.
//! - [`success`] is the heartbeat rule plus closing the run it ends, which
//!   records the run's duration.
//!
//! ```
//! use chrono::DateTime;
//! use iamalive_core::{HostId, HostRecord, Policy, Context, evaluate_in_place, job};
//! let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
//! let rec = HostRecord::new(HostId::new("backup-db").unwrap(), t0, Policy::default().timeout);
//! let mut failed = job::fail(&rec, t0, Some("disk full".into()), None);
//! let owed = evaluate_in_place(&mut failed, t0, &Policy::default(), &Context::default());
//! assert_eq!(owed[0].kind, iamalive_core::NoticeKind::Alarm);
//! assert_eq!(owed[0].headline(), "backup-db reported a failure: disk full");
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::since;
use crate::{
    Clock, Event, EventKind, Heartbeat, HostRecord, MAX_EVENTS, Monitor, NoticeKind, Status, Store,
    StoreError, Timestamp, apply_heartbeat,
};

/// At most this many runs are open at once per host; a start beyond it
/// forgets the oldest open run (a job whose end signals never arrive
/// must not grow its record without bound).
pub const MAX_OPEN_RUNS: usize = 16;

/// The longest run id (`?rid=`) accepted.
pub const MAX_RID_LEN: usize = 64;

/// What a heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// The job ran fine, or the host is alive.
    #[default]
    Success,
    /// The job failed: alarm at once.
    Fail,
    /// A run started; not a success.
    Start,
    /// A message for the event log; no state change.
    Log,
}

impl Signal {
    /// `success`, `fail`, `start` or `log`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Success => "success",
            Signal::Fail => "fail",
            Signal::Start => "start",
            Signal::Log => "log",
        }
    }

    /// Parses [`Signal::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "success" => Signal::Success,
            "fail" => Signal::Fail,
            "start" => Signal::Start,
            "log" => Signal::Log,
            _ => return None,
        })
    }

    /// The signal of an exit status: 0 is a success, anything else a failure.
    pub fn from_exit_status(code: u8) -> Self {
        if code == 0 {
            Signal::Success
        } else {
            Signal::Fail
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a run id: 1 to [`MAX_RID_LEN`] characters of `[A-Za-z0-9._-]`
/// (a UUID fits).
pub fn check_rid(rid: &str) -> Result<(), String> {
    let ok = !rid.is_empty()
        && rid.len() <= MAX_RID_LEN
        && rid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "rid must be 1 to {MAX_RID_LEN} characters of letters, digits, '-', '_' or '.' (a UUID fits)"
        ))
    }
}

/// A host's job state, stored with its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Job {
    /// Failures reported since the last success, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Runs started and not finished yet, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
    /// The last run that finished with a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<FinishedRun>,
    /// The host was created by a start or a failure and no success has
    /// come since: its `last_seen` is when it was created, not a success,
    /// and notices say so ("never succeeded") rather than "last success".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never_succeeded: bool,
}

impl Job {
    fn is_empty(&self) -> bool {
        self.failure.is_none()
            && self.runs.is_empty()
            && self.last_run.is_none()
            && !self.never_succeeded
    }
}

/// Failures reported since the host's last success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The first of them.
    pub first_at: Timestamp,
    /// The latest of them.
    pub last_at: Timestamp,
    /// How many.
    pub count: u32,
    /// The latest one's reason (the request body), if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run that started and has not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// When its start signal arrived.
    pub started: Timestamp,
    /// Its run id, if the start carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
}

/// A run that finished with a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedRun {
    /// When it started.
    pub started: Timestamp,
    /// When its success arrived.
    pub finished: Timestamp,
    /// How long it ran.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Its run id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
}

/// What a job adds to a notice: the failure that raised an alarm, or for an
/// all-clear the failures it ends and the duration of the run that ended
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobNote {
    /// The reason of the failure (alarm, reminder) or of the last failure
    /// (all-clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Whether a reported failure, rather than silence, caused the outage.
    #[serde(default)]
    pub failed: bool,
    /// For an all-clear: "failed twice since 02:00: disk full".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// For an all-clear: how long the run that ended the outage took.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub run_duration: Option<Duration>,
    /// No success was ever heard from the job (it was created by a start
    /// or a failure): the notice's `last_seen` is not a success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never_succeeded: bool,
    /// For an alarm or reminder: when the oldest run still open started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    /// For a reminder: the failure is news, reported since the last alarm
    /// of an outage that began as a silence; it goes out at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_failure: bool,
}

fn job_mut(rec: &mut HostRecord) -> &mut Job {
    rec.job.get_or_insert_with(Box::default)
}

fn tidy(rec: &mut HostRecord) {
    if rec.job.as_deref().is_some_and(Job::is_empty) {
        rec.job = None;
    }
}

/// Whether `rec` has a failure no later success has answered: it may not
/// be counted as heard, whatever its deadline.
pub fn failing(rec: &HostRecord) -> bool {
    rec.job
        .as_deref()
        .and_then(|j| j.failure.as_ref())
        .is_some_and(|f| f.last_at >= rec.last_seen)
}

/// Whether `rec` is failing with a failure first reported after `told`
/// (its last alarm or reminder): news for the team, which heard of the
/// outage but not of the failure (a silent host that then reports one).
pub(crate) fn failed_since(rec: &HostRecord, told: Option<Timestamp>) -> bool {
    failing(rec)
        && told.is_some_and(|told| {
            rec.job
                .as_deref()
                .and_then(|j| j.failure.as_ref())
                .is_some_and(|f| f.first_at > told)
        })
}

/// Whether `rec` has failures a later success answered (forgotten once
/// the host is back up).
pub(crate) fn answered(rec: &HostRecord) -> bool {
    rec.job.as_deref().is_some_and(|j| j.failure.is_some()) && !failing(rec)
}

/// `deadline` cut short by a reported failure: an up host with a failure
/// is missing from the failure on (the alarm goes out at once).
pub fn cut_short(rec: &HostRecord, deadline: Timestamp) -> Timestamp {
    match rec.job.as_deref().and_then(|j| j.failure.as_ref()) {
        Some(f) => deadline.min(f.first_at),
        None => deadline,
    }
}

/// Records a failure reported at `at` with `reason` (already bounded and
/// cleaned by the ingest); it ends the run `rid` (or the latest run without
/// a rid), unsuccessfully. The host is due at once, so the next evaluation
/// owes the alarm. A paused host is left as it is (nothing is watched).
/// The caller bumps `version` (the store's compare-and-swap).
#[must_use]
pub fn fail(
    rec: &HostRecord,
    at: Timestamp,
    reason: Option<String>,
    rid: Option<&str>,
) -> HostRecord {
    let mut next = rec.clone();
    if rec.status == Status::Paused {
        return next;
    }
    let job = job_mut(&mut next);
    job.failure = Some(match job.failure.take() {
        Some(f) => Failure {
            first_at: f.first_at,
            last_at: at.max(f.last_at),
            count: f.count.saturating_add(1),
            reason: reason.or(f.reason),
        },
        None => Failure {
            first_at: at,
            last_at: at,
            count: 1,
            reason,
        },
    });
    let _ = close_run(&mut next, rid, at, false);
    next.due_at = Some(next.due_at.map_or(at, |d| d.min(at)));
    next
}

/// Records that a run started at `at` (with run id `rid`, if given). Not a
/// success: `last_seen` and `due_at` are left as they are. A start whose
/// rid is already open restarts that run.
#[must_use]
pub fn start(rec: &HostRecord, at: Timestamp, rid: Option<&str>) -> HostRecord {
    let mut next = rec.clone();
    let job = job_mut(&mut next);
    if let Some(rid) = rid {
        job.runs.retain(|r| r.rid.as_deref() != Some(rid));
    }
    job.runs.push(Run {
        started: at,
        rid: rid.map(str::to_owned),
    });
    let excess = job.runs.len().saturating_sub(MAX_OPEN_RUNS);
    job.runs.drain(..excess);
    next
}

/// A success: the heartbeat rule of the store contract ([`apply_heartbeat`],
/// which bumps `version`; `due_if_up` computed from the record's own
/// policy, so an up host is always re-armed to it) plus closing the run it ends: the open run with
/// `rid` if given, else the latest run without one (older unfinished runs
/// without a rid are forgotten). Returns the next record and the finished
/// run's duration, if it ended one.
#[must_use]
pub fn success(
    rec: &HostRecord,
    hb: &Heartbeat,
    rid: Option<&str>,
    due_if_up: Timestamp,
) -> (HostRecord, Option<Duration>) {
    let mut next = rec.clone();
    // A failure not yet turned into an outage still owes its alarm: keep
    // the record due at the failure rather than at the new deadline.
    let pending_failure = (rec.status == Status::Up)
        .then(|| rec.job.as_deref().and_then(|j| j.failure.as_ref()))
        .flatten()
        .map(|f| f.first_at);
    apply_heartbeat(&mut next, hb, due_if_up);
    if next.status == Status::Up && next.outbox.is_none() && !crate::flap::flapping(&next) {
        // The caller computed `due_if_up` from the record's own policy, so
        // it is exact here even where the one-write rule keeps `due_at`
        // (not for a flapping host: the monitor armed it for the instant
        // it is stable, which may come first).
        next.due_at = Some(due_if_up);
    }
    if let Some(at) = pending_failure {
        next.due_at = Some(next.due_at.map_or(at, |d| d.min(at)));
    }
    let duration = close_run(&mut next, rid, hb.at, true);
    if let Some(job) = next.job.as_deref_mut() {
        job.never_succeeded = false;
    }
    tidy(&mut next);
    (next, duration)
}

/// Closes the run `rid` (or, without one, the latest run without a rid,
/// forgetting older ones) at `at`; a success records it as the last run.
fn close_run(
    rec: &mut HostRecord,
    rid: Option<&str>,
    at: Timestamp,
    succeeded: bool,
) -> Option<Duration> {
    let job = rec.job.as_deref_mut()?;
    let run = match rid {
        Some(rid) => {
            let i = job
                .runs
                .iter()
                .position(|r| r.rid.as_deref() == Some(rid))?;
            job.runs.remove(i)
        }
        None => {
            let i = job.runs.iter().rposition(|r| r.rid.is_none())?;
            let run = job.runs.remove(i);
            job.runs.retain(|r| r.rid.is_some());
            run
        }
    };
    let duration = run_length(at, run.started);
    if succeeded {
        job.last_run = Some(FinishedRun {
            started: run.started,
            finished: at,
            duration,
            rid: run.rid,
        });
    }
    Some(duration)
}

/// How long a run from `started` to `end` took, to the millisecond: it
/// reads "1s 521ms", not down to the nanosecond the clock happens to give.
fn run_length(end: Timestamp, started: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(since(end, started).as_millis()).unwrap_or(u64::MAX))
}

/// What the job adds to a notice of `kind` made from `rec`.
pub fn note(rec: &HostRecord, kind: NoticeKind) -> Option<Box<JobNote>> {
    let job = rec.job.as_deref()?;
    let f = job.failure.as_ref();
    let note = match kind {
        NoticeKind::Alarm | NoticeKind::Reminder => JobNote {
            failure: f.and_then(|f| f.reason.clone()),
            failed: f.is_some(),
            never_succeeded: job.never_succeeded,
            started: job.runs.first().map(|r| r.started),
            new_failure: kind == NoticeKind::Reminder && failed_since(rec, rec.last_alarm),
            ..JobNote::default()
        },
        NoticeKind::Recovery => JobNote {
            failure: f.and_then(|f| f.reason.clone()),
            failed: f.is_some(),
            summary: f.map(summary),
            run_duration: job
                .last_run
                .as_ref()
                .filter(|r| r.finished == rec.last_seen)
                .map(|r| r.duration),
            ..JobNote::default()
        },
        _ => return None,
    };
    (note != JobNote::default()).then(|| Box::new(note))
}

/// "failed twice since 02:00: disk full" (times in UTC).
pub fn summary(f: &Failure) -> String {
    let times = match f.count {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    let mut s = format!("failed {times} since {} UTC", f.first_at.format("%H:%M"));
    if let Some(r) = &f.reason {
        s.push_str(": ");
        s.push_str(r);
    }
    s
}

/// The host is up again: the failures a later success answered are
/// forgotten (one no success answered yet is kept: it still owes its alarm).
pub(crate) fn recovered(rec: &mut HostRecord) {
    if !failing(rec) {
        forget_failures(rec);
    }
}

/// Forgets the host's failures (a pause: nothing is watched).
pub(crate) fn forget_failures(rec: &mut HostRecord) {
    if let Some(job) = rec.job.as_deref_mut() {
        job.failure = None;
    }
    tidy(rec);
}

/// What [`Monitor::signal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The host is unknown: nothing written (create it first).
    Unknown,
    /// The signal was applied.
    Applied {
        /// The host's status when the signal landed.
        status: Status,
        /// A monitor should look at the host now (a failure's alarm, a
        /// recovery): wake the sweep.
        wake: bool,
        /// The duration of the run a success or failure ended.
        duration: Option<Duration>,
    },
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// Applies a job signal from `hb` (its `message` is a success's message,
    /// a failure's reason, or a log line) as a read and a compare-and-swap.
    /// A plain success without a run id may use the one-write
    /// [`heartbeat`](Monitor::heartbeat) instead; this path is for signals
    /// that need the record (a failure, a start, a success that may end a
    /// run). A log changes nothing and writes nothing here.
    pub async fn signal(
        &self,
        hb: &Heartbeat,
        signal: Signal,
        rid: Option<&str>,
    ) -> Result<SignalOutcome, StoreError> {
        self.signal_to(hb, signal, rid, false).await
    }

    /// [`signal`](Self::signal) to a host the ingest has just created for
    /// this very signal: a start or a failure marks it as a job that never
    /// succeeded (its `last_seen` is its creation), which its notices say
    /// until its first success.
    pub async fn signal_created(
        &self,
        hb: &Heartbeat,
        signal: Signal,
        rid: Option<&str>,
    ) -> Result<SignalOutcome, StoreError> {
        self.signal_to(hb, signal, rid, true).await
    }

    async fn signal_to(
        &self,
        hb: &Heartbeat,
        signal: Signal,
        rid: Option<&str>,
        created: bool,
    ) -> Result<SignalOutcome, StoreError> {
        let r = self.signal_inner(hb, signal, rid, created).await;
        match &r {
            Err(e) if !matches!(e, StoreError::Contended { .. }) => self.store_result(Err(e)),
            Ok(SignalOutcome::Applied { duration, .. }) => {
                self.log_signal(hb, signal, rid, *duration).await;
            }
            _ => {}
        }
        r
    }

    /// Appends `signal` from `hb` (with its run id and the duration of the
    /// run it ended) to the host's event log, as [`signal`](Self::signal)
    /// does once it applied. For an ingest that applied the signal another
    /// way: a success that created its host through
    /// [`heartbeat`](Self::heartbeat). Best effort, like every event.
    pub async fn log_signal(
        &self,
        hb: &Heartbeat,
        signal: Signal,
        rid: Option<&str>,
        duration: Option<Duration>,
    ) {
        let kind = match signal {
            Signal::Success => EventKind::Success,
            Signal::Fail => EventKind::Fail,
            Signal::Start => EventKind::Start,
            Signal::Log => EventKind::Log,
        };
        let mut e = Event::new(kind, hb.at);
        e.message.clone_from(&hb.message);
        e.duration = duration;
        e.rid = rid.map(str::to_owned);
        self.log_event(&hb.host, &e).await;
    }

    /// Appends `event` to `host`'s event log. Best effort: the signal or
    /// notice it records has taken effect already, so a store error here
    /// is logged and counted toward the store's health, never returned.
    pub(crate) async fn log_event(&self, host: &crate::HostId, event: &Event) {
        if let Err(e) = self.store().append_event(host, event, MAX_EVENTS).await {
            tracing::warn!(store = %self.store(), %host, error = %e, "could not log the event");
            self.store_result(Err(&e));
        }
    }

    /// Logs a host notice that every channel is done with.
    pub(crate) async fn log_notice(&self, notice: &crate::Notice, at: Timestamp) {
        if let Some(e) = Event::of_notice(notice, at) {
            self.log_event(&notice.host, &e).await;
        }
    }

    async fn signal_inner(
        &self,
        hb: &Heartbeat,
        signal: Signal,
        rid: Option<&str>,
        created: bool,
    ) -> Result<SignalOutcome, StoreError> {
        if signal == Signal::Log {
            return Ok(match self.store().get(&hb.host).await? {
                None => SignalOutcome::Unknown,
                Some(rec) => SignalOutcome::Applied {
                    status: rec.status,
                    wake: false,
                    duration: None,
                },
            });
        }
        let mut conflicts = 0;
        let applied = self
            .swap(&hb.host, None, &mut conflicts, |rec| {
                let status = rec.status;
                // The record is in hand: its own policy gives the deadline.
                let due_if_up = self.policies().for_record(rec).deadline_after(hb.at);
                let (next, duration, wake) = match signal {
                    Signal::Success => {
                        let (next, d) = success(rec, hb, rid, due_if_up);
                        let wake = matches!(status, Status::Missing | Status::Alarmed)
                            || next.due_at.is_some_and(|d| d <= hb.at);
                        (next, d, wake)
                    }
                    Signal::Fail => {
                        let d = rec
                            .job
                            .as_deref()
                            .and_then(|j| ended_run(j, rid))
                            .map(|r| run_length(hb.at, r.started));
                        let next = fail(rec, hb.at, hb.message.clone(), rid);
                        (next, d, status != Status::Paused)
                    }
                    Signal::Start | Signal::Log => (start(rec, hb.at, rid), None, false),
                };
                let mut next = next;
                // Created for this signal and not answered by a success
                // since (a success racing the creation has cleared it).
                if created
                    && signal != Signal::Success
                    && rec.job.as_deref().is_none_or(|j| j.last_run.is_none())
                    && rec.last_seen == hb.at
                {
                    job_mut(&mut next).never_succeeded = true;
                }
                Some((
                    next,
                    SignalOutcome::Applied {
                        status,
                        wake,
                        duration,
                    },
                ))
            })
            .await?;
        Ok(applied.map_or(SignalOutcome::Unknown, |(_, out)| out))
    }
}

/// The open run a signal with `rid` ends (see [`success`]).
fn ended_run<'a>(job: &'a Job, rid: Option<&str>) -> Option<&'a Run> {
    match rid {
        Some(rid) => job.runs.iter().find(|r| r.rid.as_deref() == Some(rid)),
        None => job.runs.iter().rev().find(|r| r.rid.is_none()),
    }
}

#[cfg(test)]
mod tests;
