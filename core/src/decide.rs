//! The pure state machine: no clock, no I/O, no randomness.
//!
//! Every function here takes `now` and returns the next record; the
//! [`Monitor`](crate::Monitor) writes it back with a compare-and-swap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
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

/// The deadline after which `r` is missing, with the downtime grace applied.
///
/// While no monitor ran (a restart, an upgrade, a store that refused every
/// write) nobody was listening: heartbeats sent then were lost. A host whose
/// silence overlaps that downtime gets the overlap back, so its deadline
/// moves by the part of its silence during which the watcher was deaf. After
/// a downtime longer than the host's timeout it also gets at least a full
/// timeout from the end of the downtime. A host already overdue when the
/// downtime began gets nothing.
pub fn deadline_with_grace(r: &HostRecord, policy: &Policy, ctx: &Context<'_>) -> Timestamp {
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
    if since(d.until, d.from) > policy.timeout {
        moved.max(add(d.until, policy.timeout))
    } else {
        moved
    }
}

/// Decides what happens to `r` at `now`.
///
/// Implements every transition of the design: `up → missing` at the
/// deadline (alarm owed unless silenced), `missing → up` quietly when no
/// alarm went out, `alarmed → up` with a recovery owed, throttled
/// reminders, silences (one-off or repeating), pause (and its end, when the
/// host resumes by itself) and the startup grace. A notice under a live
/// lease belongs to its owner and is left alone.
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
#[must_use]
pub fn evaluate_in_place(
    rec: &mut HostRecord,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Vec<Notice> {
    rec.last_checked = Some(now);
    let mut notices = Vec::new();
    if let Some(lease) = rec.outbox.as_ref().and_then(|o| o.lease.as_ref())
        && lease.until > now
    {
        rec.due_at = Some(lease.until);
        return notices;
    }
    let deadline = rec.deadline(policy);
    // A reported failure no success has answered is never "heard".
    let heard = now < deadline && !crate::job::failing(rec);
    // (present, delivered anywhere, next attempt) of an owed notice.
    let owed = rec
        .outbox
        .as_ref()
        .map(|o| (!o.delivered.is_empty(), o.next_attempt));
    match rec.status {
        Status::Paused => {
            // A pause with an end (its `due_at`) resumes by itself then, with
            // a full timeout from that end, as `resume` would have given.
            if let Some(until) = rec.due_at
                && now >= until
            {
                rec.status = Status::Up;
                rec.watch_from = until;
                rec.due_at = Some(rec.deadline(policy));
                return evaluate_in_place(rec, now, policy, ctx);
            }
        }
        Status::Up => match owed {
            // A recovery still owed goes out before anything else.
            Some((_, next_attempt)) => rec.due_at = Some(next_attempt),
            None => {
                // A reported failure makes it missing from the failure on.
                let deadline = crate::job::cut_short(rec, grace(rec, deadline, policy, ctx));
                if now < deadline {
                    rec.due_at = Some(deadline);
                } else {
                    rec.status = Status::Missing;
                    rec.missing_since = Some(deadline);
                    rec.silent_since = Some(rec.last_seen);
                    rec.alarm_count = 0;
                    // An older outage's account must not ride on this
                    // outage's all-clear: the agent sends this one's with
                    // the heartbeat that ends it.
                    rec.report = None;
                    match ctx.silence_end(&rec.host, now) {
                        Some(end) => rec.due_at = Some(end),
                        None => owe(rec, NoticeKind::Alarm, now, policy, ctx, &mut notices),
                    }
                }
            }
        },
        Status::Missing | Status::Alarmed if heard => {
            let alarm_went_out =
                rec.status == Status::Alarmed || owed.is_some_and(|(delivered, _)| delivered);
            rec.status = Status::Up;
            rec.outbox = None;
            if alarm_went_out {
                owe(rec, NoticeKind::Recovery, now, policy, ctx, &mut notices);
            } else {
                clear_outage(rec);
                rec.due_at = Some(deadline);
            }
            crate::job::recovered(rec);
        }
        Status::Missing | Status::Alarmed => match (owed, ctx.silence_end(&rec.host, now)) {
            // A silence began before anyone was told: hold the notice back.
            (Some((false, _)), Some(end)) => {
                rec.outbox = None;
                rec.due_at = Some(end);
            }
            (Some((_, next_attempt)), _) => rec.due_at = Some(next_attempt),
            (None, silence) if rec.status == Status::Missing => match silence {
                Some(end) => rec.due_at = Some(end),
                None => owe(rec, NoticeKind::Alarm, now, policy, ctx, &mut notices),
            },
            (None, silence) => {
                let reminder_at = rec
                    .last_alarm
                    .zip(policy.reminder_after(rec.alarm_count))
                    .map(|(last, wait)| add(last, wait));
                match (reminder_at, silence) {
                    (None, _) => rec.due_at = None,
                    (Some(at), _) if now < at => rec.due_at = Some(at),
                    (Some(_), Some(end)) => rec.due_at = Some(end),
                    (Some(_), None) => {
                        owe(rec, NoticeKind::Reminder, now, policy, ctx, &mut notices)
                    }
                }
            }
        },
    }
    notices
}

fn clear_outage(r: &mut HostRecord) {
    r.missing_since = None;
    r.silent_since = None;
    r.alarm_count = 0;
}

fn owe(
    next: &mut HostRecord,
    kind: NoticeKind,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
    notices: &mut Vec<Notice>,
) {
    let notice = make_notice(next, kind, now, policy, ctx);
    next.outbox = Some(Box::new(Outbox::new(notice.clone())));
    next.due_at = Some(now);
    notices.push(notice);
}

fn make_notice(
    r: &HostRecord,
    kind: NoticeKind,
    now: Timestamp,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Notice {
    let missing_since = r.missing_since.unwrap_or(now);
    let silent_since = r.silent_since.unwrap_or(r.last_seen);
    let outage_id = format!("{}@{}", r.host, missing_since.timestamp_millis());
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
        NoticeKind::Recovery | NoticeKind::Restored | NoticeKind::Degraded | NoticeKind::Test => (
            r.alarm_count.max(1),
            None,
            Some(r.last_seen),
            since(r.last_seen, silent_since),
        ),
    };
    let id = match kind {
        NoticeKind::Recovery => format!("{outage_id}/recovery"),
        _ => format!("{outage_id}/{kind}/{count}"),
    };
    Notice {
        id,
        outage_id,
        kind,
        host: r.host.clone(),
        created_at: now,
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
        job: crate::job::note(r, kind),
    }
}

/// Takes the lease on `r`'s owed notice for `owner`, if it is deliverable
/// at `now` (no live lease, its next attempt has come).
pub fn claim(r: &HostRecord, owner: &str, now: Timestamp, lease: Duration) -> Option<HostRecord> {
    let ob = r.outbox.as_ref()?;
    if r.status == Status::Paused || ob.leased_at(now) || ob.next_attempt > now {
        return None;
    }
    let mut next = r.clone();
    let until = add(now, lease);
    let ob = next.outbox.as_mut()?;
    ob.lease = Some(Lease {
        owner: owner.to_owned(),
        until,
    });
    next.due_at = Some(until);
    Some(next)
}

/// Applies the result of a delivery round of notice `notice_id` to `r`.
///
/// Returns `None` when `r` no longer owes that notice (another monitor
/// finished it, or an operator paused the host). Otherwise the outbox
/// records which channels took the notice. A channel that refused it for
/// good is given up once another channel has taken the notice; while no
/// channel has, the refusal counts as a failed round like any other, so the
/// notice stays owed and is retried with backoff (a relay over its daily
/// quota delivers the alarm once it accepts mail again). When every channel
/// in `channels` is done the notice takes effect (alarm → `alarmed`,
/// reminder → throttle restarts, recovery → outage closed) and the record
/// is evaluated again, which may owe a new notice. Channels still owed are
/// retried after [`RetryPolicy::backoff`] or the channel's own wait.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    r: &HostRecord,
    notice_id: &str,
    results: &[(String, ChannelOutcome)],
    channels: &[String],
    now: Timestamp,
    policy: &Policy,
    retry: &RetryPolicy,
    ctx: &Context<'_>,
) -> Option<Decision> {
    let mut ob = r.outbox.clone().filter(|o| o.notice.id == notice_id)?;
    let mut next = r.clone();
    ob.lease = None;
    let mut asked_wait = Duration::ZERO;
    let mut refused = Vec::new();
    for (channel, outcome) in results {
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
    // Given up on a refusing channel only once someone was told.
    if !ob.delivered.is_empty() {
        ob.failed.append(&mut refused);
        let failed = &ob.failed;
        let refusals = std::mem::take(&mut ob.refusals);
        ob.refusals = refusals
            .into_iter()
            .filter(|f| !failed.contains(&f.channel))
            .collect();
    }
    if channels.iter().any(|c| ob.owed_to(c)) {
        ob.attempts += 1;
        ob.next_attempt = add(now, retry.backoff(ob.attempts).max(asked_wait));
        next.due_at = Some(ob.next_attempt);
        next.outbox = Some(ob);
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
        // Never stored in a host's outbox.
        NoticeKind::Degraded | NoticeKind::Restored | NoticeKind::Test => {}
    }
    let notices = evaluate_in_place(&mut next, now, policy, ctx);
    Some(Decision { next, notices })
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
    crate::job::recovered(&mut next);
    next
}

/// Turns monitoring back on at `now`: the host is up and gets a full timeout
/// from `now` before it can be declared missing.
pub fn resume(r: &HostRecord, now: Timestamp, policy: &Policy) -> HostRecord {
    let mut next = r.clone();
    if r.status == Status::Paused {
        next.status = Status::Up;
        next.watch_from = now;
        next.due_at = Some(next.deadline(policy));
    }
    next
}

#[cfg(test)]
mod tests;
