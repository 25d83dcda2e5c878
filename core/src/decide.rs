//! The pure state machine: no clock, no I/O, no randomness.
//!
//! Every function here takes `now` and returns the next record; the
//! [`Monitor`](crate::Monitor) writes it back with a compare-and-swap,
//! taking one [`step`] per record and [`settle`] after each delivery round.
//!
//! # The transition table
//!
//! [`evaluate_in_place`] is one `match` on the record's [`Status`] and the
//! [`Owed`] notice it carries; each arm is one row below, in the same order,
//! with the same words in its comment. *within* means `now` is before
//! `last_seen` (or `watch_from`) plus the timeout of the policy in force
//! and no reported failure is unanswered; *heard* means within because the
//! host reported during the outage (a heartbeat after `silent_since`, or a
//! success answering its failure), not because its policy changed to allow
//! the silence; *silenced* means a
//! silence covers the host at `now`; the *deadline* is the one with the
//! startup grace applied.
//!
//! | status    | owed notice          | condition                    | becomes   | notice owed |
//! |-----------|----------------------|------------------------------|-----------|-------------|
//! | any       | leased (live)        |                              | unchanged | — (its owner delivers) |
//! | `paused`  | —                    | before its end (or no end)   | `paused`  | — |
//! | `paused`  | —                    | its end reached              | `up` from the end, then decided again | — |
//! | `up`      | untold / told        |                              | `up`      | the recovery, still |
//! | `up`      | nothing              | before the deadline          | `up`      | — |
//! | `up`      | nothing              | deadline reached, silenced   | `missing` | — (held back) |
//! | `up`      | nothing              | deadline reached             | `missing` | alarm |
//! | `missing` | nothing / untold     | within                       | `up`      | — (quiet recovery) |
//! | `missing` | told                 | heard                        | `up`      | recovery |
//! | `missing` | untold               | silenced                     | `missing` | — (held back, dropped) |
//! | `missing` | untold / told        |                              | `missing` | the alarm, still |
//! | `missing` | nothing              | silenced                     | `missing` | — |
//! | `missing` | nothing              |                              | `missing` | alarm |
//! | `alarmed` | any                  | heard                        | `up`      | recovery |
//! | `alarmed` | untold               | silenced                     | `alarmed` | — (held back, dropped) |
//! | `alarmed` | untold / told        |                              | `alarmed` | the reminder, still |
//! | `alarmed` | nothing              | failed since the last alarm, not silenced | `alarmed` | reminder (at once) |
//! | `alarmed` | nothing              | before the reminder, or none | `alarmed` | — |
//! | `alarmed` | nothing              | reminder due, silenced       | `alarmed` | — |
//! | `alarmed` | nothing              | reminder due                 | `alarmed` | reminder |
//!
//! Then `due_at` follows from the resulting record alone, in one function
//! (`due_at`), whatever arm produced it:
//!
//! | resulting record                  | `due_at`                                   |
//! |-----------------------------------|--------------------------------------------|
//! | owes a notice under a live lease  | the lease's end                            |
//! | owes a notice                     | its next attempt                           |
//! | `paused`                          | the pause's end (none: until resumed)      |
//! | `up`                              | the deadline (grace applied)               |
//! | `missing`                         | the silence's end                          |
//! | `alarmed`                         | the next reminder; once that has come, the silence's end; none when reminders are capped |
//!
//! A delivery round ([`settle`]) records which channels took the notice;
//! once every channel is done the notice takes effect (`missing → alarmed`
//! on an alarm, the reminder count on a reminder, the outage closed on a
//! recovery) and the record is evaluated again by the table above.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flap;
use crate::model::{add, since};
use crate::{
    Downtime, HostId, HostRecord, Lease, Notice, NoticeKind, Outbox, Policy, Silence, Status,
    Timestamp,
};

/// What the monitor knows beyond the record itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Silences currently stored (active or not; each is checked).
    pub silences: &'a [Silence],
    /// The most recent stretch when no monitor ran, for the startup grace.
    pub downtime: Option<Downtime>,
    /// Why the watcher may be blind to this host, put into its notices.
    pub blind: Option<&'a str>,
}

impl Context<'_> {
    /// The end of the latest silence window covering `host` at `now` (for a
    /// repeating silence, the end of its current occurrence).
    pub fn silence_end(&self, host: &HostId, now: Timestamp) -> Option<Timestamp> {
        self.silences
            .iter()
            .filter_map(|s| s.end_for(host, now))
            .max()
    }
}

/// The outcome of [`evaluate`]: the record to write and the notices it now owes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    /// The record to compare-and-swap in (its outbox holds any owed notice).
    pub next: HostRecord,
    /// Notices that became owed by this decision (already in `next.outbox`).
    pub notices: Vec<Notice>,
}

/// How long to wait before retrying a channel that failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait after the first failed round; doubled after each further one.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// The longest wait.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Once another channel took a notice, a channel still failing
    /// transiently this long after the notice was made is given up for it
    /// (it gets the next one): one channel down never holds back the
    /// reminders, all-clears and alarms of the others. At most the host's
    /// reminder interval ([`for_policy`](Self::for_policy)).
    #[serde(default = "default_give_up", with = "humantime_serde")]
    pub give_up_after: Duration,
}

fn default_give_up() -> Duration {
    Duration::from_secs(600)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
            give_up_after: default_give_up(),
        }
    }
}

impl RetryPolicy {
    /// This policy for notices under `policy`: a channel is given up no
    /// later than the next reminder would be due.
    pub fn for_policy(&self, policy: &Policy) -> Self {
        Self {
            give_up_after: self.give_up_after.min(policy.reminder_interval),
            ..*self
        }
    }

    /// The wait after `attempts` failed rounds (1 = the first).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

/// What one channel did with a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOutcome {
    /// It took the notice.
    Delivered,
    /// It failed; a retry may help (after `retry_after`, if it said).
    Transient {
        /// The channel's own requested wait (e.g. HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// It refused the notice for good (a deleted webhook, a relay over its
    /// quota). It is not retried there once another channel has taken the
    /// notice; while none has, the notice stays owed everywhere and is
    /// retried with backoff, so a refusal never drops it.
    Permanent {
        /// What the channel said.
        reason: String,
    },
}

impl From<&crate::NotifyError> for ChannelOutcome {
    fn from(e: &crate::NotifyError) -> Self {
        match e {
            crate::NotifyError::Transient { retry_after, .. } => Self::Transient {
                retry_after: *retry_after,
            },
            crate::NotifyError::Permanent { reason, .. } => Self::Permanent {
                reason: reason.clone(),
            },
        }
    }
}

/// The notice a record owes, named by what the state table asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owed {
    /// No notice is owed.
    Nothing,
    /// A monitor holds a live lease on the owed notice: it is being
    /// delivered, and nobody else touches the record's notice until `until`.
    Leased {
        /// The lease's end.
        until: Timestamp,
    },
    /// A notice is owed and no channel has taken it yet: nobody was told.
    Untold {
        /// The earliest instant of the next delivery round.
        next_attempt: Timestamp,
    },
    /// A notice is owed and at least one channel has taken it: somebody was
    /// told (an alarm partly delivered still owes its recovery).
    Told {
        /// The earliest instant of the next delivery round.
        next_attempt: Timestamp,
    },
}

impl Owed {
    /// What `r` owes at `now`.
    #[inline]
    pub fn of(r: &HostRecord, now: Timestamp) -> Self {
        let Some(ob) = r.outbox.as_deref() else {
            return Self::Nothing;
        };
        match &ob.lease {
            Some(lease) if lease.until > now => Self::Leased { until: lease.until },
            _ if ob.delivered.is_empty() => Self::Untold {
                next_attempt: ob.next_attempt,
            },
            _ => Self::Told {
                next_attempt: ob.next_attempt,
            },
        }
    }

    /// When a record owing this must be looked at again: the lease's end,
    /// or the next attempt; `None` when nothing is owed.
    #[inline]
    pub fn due_at(self) -> Option<Timestamp> {
        match self {
            Self::Nothing => None,
            Self::Leased { until } => Some(until),
            Self::Untold { next_attempt } | Self::Told { next_attempt } => Some(next_attempt),
        }
    }
}

/// The deadline after which `r` is missing, with the downtime grace applied.
///
/// While no monitor ran (a restart, an upgrade, a store that refused every
/// write) nobody was listening: heartbeats sent then were lost. A host whose
/// silence overlaps that downtime gets the overlap back, so its deadline
/// moves by the part of its silence during which the watcher was deaf. After
/// a downtime longer than the host's timeout it also gets at least a full
/// timeout from the end of the downtime. A host already overdue when the
/// downtime began gets nothing.
fn deadline_with_grace(r: &HostRecord, policy: &Policy, ctx: &Context<'_>) -> Timestamp {
    grace(r, r.deadline(policy), policy, ctx)
}

fn grace(r: &HostRecord, deadline: Timestamp, policy: &Policy, ctx: &Context<'_>) -> Timestamp {
    let Some(d) = ctx.downtime else {
        return deadline;
    };
    let heard = r.last_seen.max(r.watch_from);
    if deadline <= d.from || heard >= d.until {
        return deadline;
    }
    let deaf = since(d.until, heard.max(d.from));
    let moved = add(deadline, deaf);
    if since(d.until, d.from) > policy.allowance() {
        moved.max(add(d.until, policy.allowance()))
    } else {
        moved
    }
}

/// Decides what happens to `r` at `now`: one row of the
/// [transition table](self#the-transition-table).
///
/// This clones `r`; [`evaluate_in_place`] is the same decision without the
/// copy, for hot loops that own their record.
#[inline]
pub fn evaluate(r: &HostRecord, now: Timestamp, policy: &Policy, ctx: &Context<'_>) -> Decision {
    // Built where it is returned, so the copy of the record is made once.
    let mut d = Decision {
        next: r.clone(),
        notices: Vec::new(),
    };
    d.notices = evaluate_in_place(&mut d.next, now, policy, ctx);
    d
}

/// [`evaluate`] applied to `rec` itself; returns the notices that became owed.
///
/// Most records a sweep or a heartbeat looks at are up, owe nothing and
/// carry nothing else (no job, no flapping history) while no downtime is
/// being granted: for them the table's row "`up`, nothing, before the
/// deadline" is decided here without the rest (`quiet_up`); every other
/// record goes through the whole table (`decide_in_place`).
#[must_use]
#[inline]
pub fn evaluate_in_place(
    rec: &mut HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Vec<Notice> {
    if !decide(rec, now, policy, ctx) {
        return Vec::new();
    }
    owed_notice(rec)
}

/// A copy of the notice `rec` owes, the rare end of [`evaluate_in_place`]
/// kept out of its hot path.
#[cold]
#[inline(never)]
fn owed_notice(rec: &HostRecord) -> Vec<Notice> {
    rec.outbox
        .as_deref()
        .map(|o| vec![o.notice.clone()])
        .unwrap_or_default()
}

/// [`evaluate_in_place`] without handing out the owed notice: `true` when
/// a notice became owed (it is in `rec.outbox`). What the monitor's
/// [`step`] takes, which writes the record and delivers from its outbox,
/// so the notice is built once and never copied.
#[inline(always)]
pub(crate) fn decide(
    rec: &mut HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> bool {
    rec.last_checked = Some(now);
    if let Some(deadline) = quiet_up(rec, now, policy, ctx) {
        rec.due_at = Some(deadline);
        return false;
    }
    decide_in_place(rec, now, policy, ctx)
}

/// The deadline of `rec` when the table's row "`up`, nothing owed, before
/// the deadline" applies to it at `now` and nothing else could: it is up,
/// owes nothing, is no job and has no flapping history, and no downtime
/// grace moves its deadline. That row leaves the record as it is, due at
/// its deadline, exactly as [`decide_in_place`] would (a test checks both
/// agree on every such record). `None`: ask the whole table.
#[inline]
fn quiet_up(
    rec: &HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Option<Timestamp> {
    let plain = rec.status == Status::Up
        && rec.outbox.is_none()
        && rec.job.is_none()
        && rec.flap.is_none()
        && ctx.downtime.is_none();
    if !plain {
        return None;
    }
    let deadline = rec.deadline(policy);
    (now < deadline).then_some(deadline)
}

/// [`evaluate_in_place`] by the whole table.
///
/// The arms below are the rows of the
/// [transition table](self#the-transition-table), in its order; `due_at`
/// is then set by one function (`due_at`) from the record the arm left.
/// `last_checked` is already set.
pub(crate) fn decide_in_place(
    rec: &mut HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> bool {
    let mut owed = false;
    let raw_deadline = rec.deadline(policy);
    // A reported failure makes an up host missing from the failure on, and
    // is never "heard" until a success answers it (see `crate::job`).
    let deadline = crate::job::cut_short(rec, grace(rec, raw_deadline, policy, ctx));
    // Within its timeout under the policy in force (a failure never is).
    let within = now < raw_deadline && !crate::job::failing(rec);
    // Within it because the host reported during this outage (a heartbeat
    // since its silence began, or a success answering its failure), not
    // because its policy was changed to allow the silence: only a report
    // ends an outage the team was told about.
    let heard =
        within && (crate::job::answered(rec) || rec.silent_since.is_none_or(|s| rec.last_seen > s));
    let silenced = |rec: &HostRecord| ctx.silence_end(&rec.host, now).is_some();
    let fp = &policy.flapping;
    let mut owe_now = |rec: &mut HostRecord, kind| {
        owe(rec, kind, now, policy, ctx);
        owed = true;
    };
    match (rec.status, Owed::of(rec, now)) {
        // any, leased (live): unchanged, its owner delivers.
        (_, Owed::Leased { .. }) => {}
        // paused: before its end (or no end): unchanged.
        (Status::Paused, _) if rec.due_at.is_none_or(|end| now < end) => {}
        // paused: its end reached → up from the end (a full timeout, as
        // `resume` would have given then), and decided again.
        (Status::Paused, _) => {
            let end = rec.due_at.unwrap_or(now);
            resume_at(rec, end);
            return decide_in_place(rec, now, policy, ctx);
        }
        // up, untold / told: the recovery still goes out before anything else.
        (Status::Up, Owed::Untold { .. } | Owed::Told { .. }) => {}
        // up, nothing owed, flapping, stable (or detection off) → the
        // episode ends; stable notice owed if its flapping notice was told.
        (Status::Up, Owed::Nothing) if now < deadline && flap::ended(rec, now, fp) => {
            if flap::was_told(rec) && !silenced(rec) {
                owe_now(rec, NoticeKind::Stable);
            }
            let _ = flap::end(rec);
        }
        // up, nothing owed, before the deadline: unchanged.
        (Status::Up, Owed::Nothing) if now < deadline => {}
        // up, nothing owed, deadline reached → missing; alarm owed unless
        // silenced (a flip: the flapping notice instead, or nothing while
        // the host flaps).
        (Status::Up, Owed::Nothing) => {
            begin_outage(rec, deadline);
            // Stable before this outage began (a late look): the episode
            // is over, and this outage is news.
            if flap::stable_at(rec, fp).is_some_and(|at| at <= deadline) {
                let _ = flap::end(rec);
            }
            let on = if crate::job::failing(rec) {
                flap::OnOutage::Alarm
            } else {
                flap::outage_began(rec, deadline, fp)
            };
            match on {
                _ if silenced(rec) => {}
                flap::OnOutage::Alarm => owe_now(rec, NoticeKind::Alarm),
                flap::OnOutage::Flapping => owe_now(rec, NoticeKind::Flapping),
                flap::OnOutage::Quiet => {}
            }
        }
        // missing, nothing / untold, within → up quietly: nobody was told
        // (an owed flapping notice still goes out); a return, if heard.
        (Status::Missing, Owed::Nothing | Owed::Untold { .. }) if within => {
            rec.status = Status::Up;
            drop_flip_notice(rec);
            clear_outage(rec);
            if heard {
                flap::came_back(rec, rec.last_seen);
            }
        }
        // missing, told, heard → up, recovery owed (a flapping notice
        // partly delivered: it still goes out, no recovery).
        (Status::Missing, Owed::Told { .. }) if heard => {
            rec.status = Status::Up;
            flap::came_back(rec, rec.last_seen);
            if owes(rec, NoticeKind::Flapping) {
                clear_outage(rec);
            } else {
                rec.outbox = None;
                owe_now(rec, NoticeKind::Recovery);
            }
        }
        // missing, untold, silenced: the alarm is held back (dropped).
        (Status::Missing, Owed::Untold { .. }) if silenced(rec) => rec.outbox = None,
        // missing, untold / told: the alarm is still owed.
        (Status::Missing, Owed::Untold { .. } | Owed::Told { .. }) => {}
        // missing, nothing owed, flapping, not yet stable: unchanged (held).
        (Status::Missing, Owed::Nothing)
            if flap::holding(rec, now, fp) && !crate::job::failing(rec) => {}
        // missing, nothing owed, silenced: unchanged.
        (Status::Missing, Owed::Nothing) if silenced(rec) => {}
        // missing, nothing owed → alarm owed (a flapping host that stayed
        // down until stable: its episode ends with this alarm).
        (Status::Missing, Owed::Nothing) => {
            owe_now(rec, NoticeKind::Alarm);
            if flap::ended(rec, now, fp) {
                let _ = flap::end(rec);
            }
        }
        // alarmed, heard → up, recovery owed.
        (Status::Alarmed, _) if heard => {
            rec.status = Status::Up;
            rec.outbox = None;
            flap::came_back(rec, rec.last_seen);
            owe_now(rec, NoticeKind::Recovery);
        }
        // alarmed, untold, silenced: the reminder is held back (dropped).
        (Status::Alarmed, Owed::Untold { .. }) if silenced(rec) => rec.outbox = None,
        // alarmed, untold / told: the reminder is still owed.
        (Status::Alarmed, Owed::Untold { .. } | Owed::Told { .. }) => {}
        // alarmed, nothing owed, a failure reported since the last alarm,
        // not silenced → reminder owed at once (it says the host failed).
        (Status::Alarmed, Owed::Nothing)
            if crate::job::failed_since(rec, rec.last_alarm) && !silenced(rec) =>
        {
            owe_now(rec, NoticeKind::Reminder);
        }
        // alarmed, nothing owed, before the reminder, or none: unchanged.
        (Status::Alarmed, Owed::Nothing) if reminder_at(rec, policy).is_none_or(|at| now < at) => {}
        // alarmed, nothing owed, reminder due, silenced: unchanged.
        (Status::Alarmed, Owed::Nothing) if silenced(rec) => {}
        // alarmed, nothing owed, reminder due → reminder owed.
        (Status::Alarmed, Owed::Nothing) => owe_now(rec, NoticeKind::Reminder),
    }
    if rec.status == Status::Up {
        // Back up: the failures a success answered are forgotten (their
        // summary is already in the all-clear).
        crate::job::recovered(rec);
    }
    rec.due_at = due_at(rec, now, deadline, policy, ctx);
    owed
}

/// The next instant a monitor must look at `r`, from `r` alone (its
/// status, its owed notice) at `now`: the second table of the
/// [transition table](self#the-transition-table). `deadline` is `r`'s
/// deadline with the startup grace applied.
///
/// Never later than the next instant at which [`evaluate`] would change
/// `r` without a heartbeat or an operator in between.
fn due_at(
    r: &HostRecord,
    now: Timestamp,
    deadline: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Option<Timestamp> {
    if let Some(at) = Owed::of(r, now).due_at() {
        return Some(at);
    }
    // Held back by a silence (or, were no silence found, due now: early,
    // never late).
    let silence_end = || ctx.silence_end(&r.host, now).or(Some(now));
    let stable_at = flap::stable_at(r, &policy.flapping);
    match r.status {
        Status::Paused => r.due_at,
        Status::Up => Some(stable_at.map_or(deadline, |s| s.min(deadline))),
        // Held while flapping: looked at again when it would be stable.
        Status::Missing if flap::holding(r, now, &policy.flapping) => {
            let end = ctx.silence_end(&r.host, now);
            stable_at.map(|s| end.map_or(s, |e| e.min(s)))
        }
        Status::Missing => silence_end(),
        Status::Alarmed => match reminder_at(r, policy) {
            None => None,
            Some(at) if now < at => Some(at),
            Some(_) => silence_end(),
        },
    }
}

/// When an alarmed host's next reminder is owed; `None` when reminders are
/// capped.
fn reminder_at(r: &HostRecord, policy: &Policy) -> Option<Timestamp> {
    r.last_alarm
        .zip(policy.reminder_after(r.alarm_count))
        .map(|(last, wait)| add(last, wait))
}

/// `up → missing` at `deadline`: a new outage begins.
fn begin_outage(r: &mut HostRecord, deadline: Timestamp) {
    r.status = Status::Missing;
    r.missing_since = Some(deadline);
    r.silent_since = Some(r.last_seen);
    r.alarm_count = 0;
    // An older outage's account must not ride on this outage's all-clear:
    // the agent sends this one's with the heartbeat that ends it.
    r.report = None;
}

/// Whether `r` owes a notice of `kind`.
fn owes(r: &HostRecord, kind: NoticeKind) -> bool {
    r.outbox.as_deref().is_some_and(|o| o.notice.kind == kind)
}

/// Drops `r`'s owed alarm on a quiet return; an owed flapping notice is
/// kept (it says something true whether the host is up or down).
fn drop_flip_notice(r: &mut HostRecord) {
    if !owes(r, NoticeKind::Flapping) {
        r.outbox = None;
    }
}

fn clear_outage(r: &mut HostRecord) {
    r.missing_since = None;
    r.silent_since = None;
    r.alarm_count = 0;
}

/// `paused → up` at `at`, with a full timeout from then.
fn resume_at(r: &mut HostRecord, at: Timestamp) {
    r.status = Status::Up;
    r.watch_from = at;
}

/// Puts the notice of `kind` in `next`'s outbox (replacing what it owed).
fn owe(
    next: &mut HostRecord,
    kind: NoticeKind,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) {
    let notice = make_notice(next, kind, now, policy, ctx);
    next.outbox = Some(Box::new(Outbox::new(notice)));
}

fn make_notice(
    r: &HostRecord,
    kind: NoticeKind,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Notice {
    if matches!(kind, NoticeKind::Flapping | NoticeKind::Stable) {
        return flap_notice(r, kind, now, flap::note(r, &policy.flapping), ctx.blind);
    }
    let missing_since = r.missing_since.unwrap_or(now);
    let silent_since = r.silent_since.unwrap_or(r.last_seen);
    let outage_id = crate::model::outage_id(&r.host, missing_since);
    let (count, next_reminder, recovered_at, silent_for) = match kind {
        NoticeKind::Alarm | NoticeKind::Reminder => {
            let count = if kind == NoticeKind::Alarm {
                1
            } else {
                r.alarm_count + 1
            };
            let next = policy.reminder_after(count).map(|w| add(now, w));
            (count, next, None, since(now, silent_since))
        }
        NoticeKind::Recovery
        | NoticeKind::Restored
        | NoticeKind::Degraded
        | NoticeKind::Test
        | NoticeKind::Flapping
        | NoticeKind::Stable => (
            r.alarm_count.max(1),
            None,
            Some(r.last_seen),
            since(r.last_seen, silent_since),
        ),
    };
    let id = crate::model::notice_id(&outage_id, kind, count);
    Notice {
        last_seen: silent_since,
        missing_since,
        recovered_at,
        silent_for,
        alarm_count: count,
        next_reminder,
        message: r.message.clone(),
        report: if kind == NoticeKind::Recovery {
            r.report.clone()
        } else {
            None
        },
        blind: ctx.blind.map(str::to_owned),
        group: r.group.clone(),
        job: crate::job::note(r, kind),
        flap: flap::note(r, &policy.flapping).map(Box::new),
        ..Notice::new(id, outage_id, kind, r.host.clone(), now)
    }
}

/// `notice` as it reads when it goes out at `now` rather than when it was
/// made: an alarm or reminder held by its group (gathering) and then sent
/// alone says how long the host has been silent by now and when the next
/// reminder comes (counted from this delivery, as [`settle`] will). `None`
/// when nothing would change (another kind, or made at `now`). Only for a
/// notice no channel has taken yet, so every channel gets the same text.
pub fn as_of(notice: &Notice, now: Timestamp, policy: &Policy) -> Option<Notice> {
    let timed = matches!(notice.kind, NoticeKind::Alarm | NoticeKind::Reminder);
    if !timed || notice.created_at >= now || notice.blind_spot.is_some() {
        return None;
    }
    let mut n = notice.clone();
    n.silent_for = since(now, n.last_seen);
    n.next_reminder = policy.reminder_after(n.alarm_count).map(|w| add(now, w));
    n.created_at = now;
    Some(n)
}

/// The `flapping` notice of `r`'s episode (owed as its outage begins: the
/// host is down), or the `stable` notice that ends it (the host is up,
/// since its last return), with the episode's `note`. Both share the
/// episode's outage id.
fn flap_notice(
    r: &HostRecord,
    kind: NoticeKind,
    now: Timestamp,
    note: Option<flap::FlapNote>,
    blind: Option<&str>,
) -> Notice {
    let since_ = note.as_ref().map_or(now, |n| n.since);
    let outage_id = format!("{}@{}/flapping", r.host, since_.timestamp_millis());
    let (id, last_seen, missing_since, recovered_at, silent_for) = if kind == NoticeKind::Flapping {
        let silent_since = r.silent_since.unwrap_or(r.last_seen);
        (
            format!("{outage_id}/start"),
            silent_since,
            r.missing_since.unwrap_or(since_),
            None,
            since(now, silent_since),
        )
    } else {
        let up_since = flap::changed_at(r).unwrap_or(r.last_seen);
        (
            format!("{outage_id}/stable"),
            r.last_seen,
            since_,
            Some(up_since),
            Duration::ZERO,
        )
    };
    Notice {
        last_seen,
        missing_since,
        recovered_at,
        silent_for,
        message: r.message.clone(),
        blind: blind.map(str::to_owned),
        group: r.group.clone(),
        flap: note.map(Box::new),
        ..Notice::new(id, outage_id, kind, r.host.clone(), now)
    }
}

/// Takes the lease on `r`'s owed notice for `owner`, if it is deliverable
/// at `now` (no live lease, its next attempt has come).
pub fn claim(r: &HostRecord, owner: &str, now: Timestamp, lease: Duration) -> Option<HostRecord> {
    let mut next = r.clone();
    claim_in_place(&mut next, owner, now, lease).then_some(next)
}

/// [`claim`] applied to `r` itself; `true` if it took the lease.
fn claim_in_place(r: &mut HostRecord, owner: &str, now: Timestamp, lease: Duration) -> bool {
    if r.status == Status::Paused {
        return false;
    }
    let Some(ob) = r.outbox.as_deref_mut() else {
        return false;
    };
    if ob.leased_at(now) || ob.next_attempt > now {
        return false;
    }
    ob.lease = Some(Lease {
        owner: owner.to_owned(),
        until: add(now, lease),
    });
    r.due_at = Owed::of(r, now).due_at();
    true
}

/// What a monitor does with one record at `now`: the result of [`step`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Step {
    /// The record to compare-and-swap in (its version not yet bumped);
    /// `None` when nothing changed and nothing is due yet.
    pub write: Option<HostRecord>,
    /// The owed notice (with the channels already done with it) that this
    /// monitor leased in `write`: once the swap succeeds, deliver it and
    /// [`settle`] the round.
    pub deliver: Option<Box<Outbox>>,
}

/// One monitor step on `rec` at `now`: [`evaluate`], then take the lease on
/// the owed notice for `owner` if it is deliverable ([`claim`]), in one
/// record to write.
///
/// Nothing is written when the decision changes nothing but `last_checked`
/// and the record is not due yet (a stale due-index entry, another
/// monitor's lease).
pub fn step(
    rec: &HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
    owner: &str,
    lease: Duration,
) -> Step {
    let mut next = rec.clone();
    // The owed notice, if any, is in the outbox `claim_in_place` leases.
    decide(&mut next, now, policy, ctx);
    let leased = claim_in_place(&mut next, owner, now, lease);
    // Compared without `last_checked`, which every evaluation moves.
    let checked = std::mem::replace(&mut next.last_checked, rec.last_checked);
    let unchanged = next == *rec;
    next.last_checked = checked;
    if unchanged && next.due_at.is_none_or(|d| d > now) {
        return Step {
            write: None,
            deliver: None,
        };
    }
    let deliver = if leased { next.outbox.clone() } else { None };
    Step {
        write: Some(next),
        deliver,
    }
}

/// One delivery round of an owed notice: what [`settle`] applies.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// The notice delivered (its id).
    pub notice_id: &'a str,
    /// What each channel tried in this round did.
    pub results: &'a [(String, ChannelOutcome)],
    /// Every channel the notice is owed to (done or not).
    pub channels: &'a [String],
}

/// Applies the result of a delivery round to `r`.
///
/// Returns `None` when `r` no longer owes that notice (another monitor
/// finished it, or an operator paused the host). Otherwise the outbox
/// records which channels took the notice. A channel that refused it for
/// good is given up once another channel has taken the notice; while no
/// channel has, the refusal counts as a failed round like any other, so the
/// notice stays owed and is retried with backoff (a relay over its daily
/// quota delivers the alarm once it accepts mail again). When every channel
/// in `round.channels` is done the notice takes effect (alarm → `alarmed`,
/// reminder → throttle restarts, recovery → outage closed) and the record
/// is evaluated again, which may owe a new notice. Channels still owed are
/// retried after [`RetryPolicy::backoff`] or the channel's own wait.
pub fn settle(
    r: &HostRecord,
    round: &Round<'_>,
    now: Timestamp,
    policy: &Policy,
    retry: &RetryPolicy,
    ctx: &Context<'_>,
) -> Option<Decision> {
    let mut ob = r
        .outbox
        .clone()
        .filter(|o| o.notice.id == round.notice_id)?;
    let mut next = r.clone();
    if apply_round(&mut ob, round, now, &retry.for_policy(policy)) {
        next.outbox = Some(ob);
        next.due_at = due_at(
            &next,
            now,
            deadline_with_grace(&next, policy, ctx),
            policy,
            ctx,
        );
        return Some(Decision {
            next,
            notices: Vec::new(),
        });
    }
    next.outbox = None;
    match ob.notice.kind {
        NoticeKind::Alarm => {
            if next.status == Status::Missing {
                next.status = Status::Alarmed;
            }
            next.last_alarm = Some(now);
            next.alarm_count = 1;
        }
        NoticeKind::Reminder => {
            next.last_alarm = Some(now);
            next.alarm_count += 1;
        }
        NoticeKind::Recovery => clear_outage(&mut next),
        NoticeKind::Flapping if !ob.delivered.is_empty() => flap::told(&mut next),
        NoticeKind::Flapping | NoticeKind::Stable => {}
        // Never stored in a host's outbox.
        NoticeKind::Degraded | NoticeKind::Restored | NoticeKind::Test => {}
    }
    let notices = evaluate_in_place(&mut next, now, policy, ctx);
    Some(Decision { next, notices })
}

/// Records a delivery round in `ob`: which channels took the notice and
/// which refused it for good (given up once another channel took it); the
/// lease is released. Returns `true` while some channel in
/// `round.channels` is still owed it, with the next attempt set after
/// [`RetryPolicy::backoff`] or the channel's own wait. Shared by hosts'
/// and groups' outboxes.
pub fn apply_round(
    ob: &mut Outbox,
    round: &Round<'_>,
    now: Timestamp,
    retry: &RetryPolicy,
) -> bool {
    ob.lease = None;
    let mut asked_wait = Duration::ZERO;
    let mut refused = Vec::new();
    for (channel, outcome) in round.results {
        if !ob.owed_to(channel) {
            continue;
        }
        match outcome {
            ChannelOutcome::Delivered => {
                ob.delivered.push(channel.clone());
                ob.refusals.retain(|f| f.channel != *channel);
            }
            ChannelOutcome::Permanent { reason } => {
                refused.push(channel.clone());
                ob.refusals.retain(|f| f.channel != *channel);
                ob.refusals.push(crate::model::Refusal {
                    channel: channel.clone(),
                    reason: reason.clone(),
                    at: now,
                });
            }
            ChannelOutcome::Transient { retry_after } => {
                asked_wait = asked_wait.max(retry_after.unwrap_or_default())
            }
        }
    }
    // Given up on a refusing channel only once someone was told; on one
    // that still fails after the bound, too (it gets the next notice).
    if !ob.delivered.is_empty() {
        if now >= add(ob.notice.created_at, retry.give_up_after) {
            for c in round.channels.iter().filter(|c| ob.owed_to(c)) {
                if !refused.contains(c) {
                    refused.push(c.clone());
                }
            }
        }
        ob.failed.append(&mut refused);
        let failed = &ob.failed;
        let refusals = std::mem::take(&mut ob.refusals);
        ob.refusals = refusals
            .into_iter()
            .filter(|f| !failed.contains(&f.channel))
            .collect();
    }
    if round.channels.iter().any(|c| ob.owed_to(c)) {
        ob.attempts += 1;
        ob.next_attempt = add(now, retry.backoff(ob.attempts).max(asked_wait));
        return true;
    }
    false
}

/// Turns monitoring off for `r` until it is resumed: no notices, nothing
/// due, any undelivered notice dropped. [`pause_until`] with no end.
pub fn pause(r: &HostRecord) -> HostRecord {
    pause_until(r, None)
}

/// Turns monitoring off for `r`, until `until` if given: no notices, any
/// undelivered notice dropped. The record's `due_at` is the pause's end
/// (`None`: paused until resumed); a record evaluated at or after it is
/// resumed as [`resume`] would have done at `until` (a full timeout from
/// `until`), and evaluated again. Pausing a paused host replaces its end.
pub fn pause_until(r: &HostRecord, until: Option<Timestamp>) -> HostRecord {
    let mut next = r.clone();
    next.status = Status::Paused;
    next.outbox = None;
    next.due_at = until;
    clear_outage(&mut next);
    crate::job::forget_failures(&mut next);
    // Nothing is watched: a flapping episode (and its history) ends.
    next.flap = None;
    next
}

/// Turns monitoring back on at `now`: the host is up and gets a full timeout
/// from `now` before it can be declared missing.
pub fn resume(r: &HostRecord, now: Timestamp, policy: &Policy) -> HostRecord {
    let mut next = r.clone();
    if r.status == Status::Paused {
        resume_at(&mut next, now);
        // No downtime to grant here: the host was just given a fresh timeout.
        let ctx = Context::default();
        next.due_at = due_at(&next, now, next.deadline(policy), policy, &ctx);
    }
    next
}

#[cfg(test)]
mod tests;
