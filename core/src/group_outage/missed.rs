//! "Missed a beat" evidence in a group's outage.
//!
//! When a group's gathering ends (its first held host's deadline plus the
//! wait), the hosts of the group that are still up but past their expected
//! beat ([`crate::beat::missed_beat`]) are evidence that the site is dark
//! before their own timeouts run out. [`add_evidence`] adds each of them
//! to the gathering as a held member marked `missed_beat`, so they count
//! toward `min_hosts` when [`resolve`](super::resolve) decides: one host
//! past its timeout and eight that missed a beat are one site outage, one
//! notice, minutes before the ninth timeout. The group alarm names them
//! with `missed_beat: true` and their last-seen time. If the gathering
//! ends with too few, [`drop_unproven`] forgets them (nothing was said).
//!
//! Afterwards each such member is *pending* until its own deadline
//! (stored as its `missing_since`), when the group looks at it again
//! ([`next_check`], [`check`]; the monitor reads those hosts' records, a
//! few reads per deadline, never per sweep):
//!
//! - it beat again: it is simply back (`back_at`), named in the group's
//!   all-clear as it was in the alarm; no notice of its own was ever owed;
//! - it is still silent: its own timeout ran out and its own alarm is (or
//!   will be) owed; when that alarm asks the group it is **adopted**
//!   ([`adopt`]): absorbed into the outage, no separate alarm, already
//!   named.
//!
//! Its own outage id is unknown until that alarm (an empty `outage_id`),
//! which is how [`adopt`] recognises it, and why the group's all-clear
//! leaves such a member to its own notices if the group is back first.

use std::time::Duration;

use super::{Fate, GroupPhase, GroupRecord, Member, Verdict};
use crate::model::add;
use crate::{HostRecord, Notice, NoticeKind, Policy, Status, Timestamp};

/// How long a check waits for a monitor to evaluate a host whose timeout
/// ran out but whose record is not marked missing yet.
const RECHECK: Duration = Duration::from_secs(1);

/// The most hosts of one group read when it decides its outage.
pub const MAX_GROUP_HOSTS: usize = 10_000;

/// `g` (a gathering about to [`resolve`](super::resolve)) with each host
/// in `hosts` (its group's records) that missed its expected beat at
/// `now` added as a held member marked `missed_beat`; `policy_of` gives
/// each host's policy. Hosts already members are left as they are.
pub fn add_evidence(
    g: &GroupRecord,
    hosts: &[HostRecord],
    now: Timestamp,
    policy_of: impl Fn(&HostRecord) -> Policy,
) -> GroupRecord {
    let mut next = g.clone();
    for rec in hosts {
        if rec.group.as_ref() != Some(&g.group) || g.members.get(&rec.host).is_some() {
            continue;
        }
        let policy = policy_of(rec);
        if !crate::beat::missed_beat(rec, now, &policy) {
            continue;
        }
        next.members.insert(Member {
            host: rec.host.clone(),
            outage_id: String::new(),
            fate: Fate::Held,
            last_seen: rec.last_seen,
            missing_since: rec.deadline(&policy),
            back_at: None,
            report: None,
            named: false,
            missed_beat: true,
            alarmed_alone: false,
        });
    }
    next
}

/// After a gathering resolved without an outage: the members added only as
/// evidence are forgotten (nobody was told of them, and their own notices
/// are their own).
pub fn drop_unproven(g: &mut GroupRecord) {
    if g.phase == GroupPhase::Quiet {
        g.members
            .retain(|m| !(m.missed_beat && m.outage_id.is_empty()));
    }
}

/// Whether `m` is in the outage on a missed beat alone, its own deadline
/// not yet looked at.
pub fn pending(m: &Member) -> bool {
    m.missed_beat && m.fate == Fate::Outage && m.back_at.is_none() && m.outage_id.is_empty()
}

/// The earliest deadline of a [`pending`] member: when the group must look
/// at it again.
pub fn next_check(g: &GroupRecord) -> Option<Timestamp> {
    g.members
        .iter()
        .filter(|m| pending(m))
        .map(|m| m.missing_since)
        .min()
}

/// The pending members whose deadline came by `now`: the hosts to read.
pub fn to_check(g: &GroupRecord, now: Timestamp) -> Vec<crate::HostId> {
    g.members
        .iter()
        .filter(|m| pending(m) && m.missing_since <= now)
        .map(|m| m.host.clone())
        .collect()
}

/// `g` after looking at its pending members whose deadline came, each
/// with its record as read now (`None`: removed): one that beat since it
/// was named (or was removed, or paused) is back; one marked missing waits
/// for its own alarm to be [`adopt`]ed; one whose record no monitor has
/// evaluated yet is looked at again shortly. `None` when nothing changed.
pub fn check(
    g: &GroupRecord,
    records: &[(crate::HostId, Option<HostRecord>)],
    now: Timestamp,
    gp: &super::GroupPolicy,
    policy: &Policy,
) -> Option<GroupRecord> {
    let mut next = g.clone();
    for (host, rec) in records {
        let Some(m) = next
            .members
            .get_mut(host)
            .filter(|m| pending(m) && m.missing_since <= now)
        else {
            continue;
        };
        match rec {
            None => m.back_at = Some(now),
            Some(r) if r.last_seen > m.last_seen => m.back_at = Some(r.last_seen),
            Some(r) if r.status == Status::Paused => m.back_at = Some(now),
            Some(r) if matches!(r.status, Status::Missing | Status::Alarmed) => {
                // Past its timeout: its own alarm asks the group.
                m.missed_beat = false;
            }
            Some(_) => m.missing_since = add(now, RECHECK),
        }
    }
    if next == *g {
        return None;
    }
    super::recount(&mut next, now, gp, policy);
    next.due_at = super::due_at(&next, policy);
    Some(next)
}

/// A host's alarm asking a group in an outage that already names it on a
/// missed beat (or past its deadline, awaiting this alarm): adopted,
/// its outage id and deadline taken from the alarm, absorbed. `None` when
/// `notice` is not such an alarm.
pub fn adopt(g: &mut GroupRecord, notice: &Notice) -> Option<Verdict> {
    if notice.kind != NoticeKind::Alarm
        || !matches!(g.phase, GroupPhase::Outage | GroupPhase::Ending { .. })
    {
        return None;
    }
    let m = g
        .members
        .get_mut(&notice.host)
        .filter(|m| m.fate == Fate::Outage && m.back_at.is_none() && m.outage_id.is_empty())?;
    m.outage_id.clone_from(&notice.outage_id);
    m.missing_since = notice.missing_since;
    m.last_seen = notice.last_seen;
    m.missed_beat = false;
    Some(Verdict::Absorbed)
}

/// Whether a member still silent at the group's all-clear is left to its
/// own notices without an alarm from the group: one named on a missed
/// beat whose own alarm has not asked yet (its record owes it, or it will
/// beat again).
pub(super) fn left_to_itself(m: &Member) -> bool {
    m.outage_id.is_empty()
}

/// "8 missed a beat, 1 silent past its timeout" for the hosts a group
/// alarm or reminder names; `None` when none of them only missed a beat.
pub fn describe(hosts: &[super::GroupHost]) -> Option<String> {
    let silent: Vec<_> = hosts.iter().filter(|h| h.back_at.is_none()).collect();
    let missed = silent.iter().filter(|h| h.missed_beat).count();
    if missed == 0 {
        return None;
    }
    let past = silent.len() - missed;
    Some(if past == 0 {
        format!("{missed} missed a beat")
    } else {
        format!("{missed} missed a beat, {past} silent past {}", its(past))
    })
}

fn its(n: usize) -> &'static str {
    if n == 1 {
        "its timeout"
    } else {
        "their timeouts"
    }
}

#[cfg(test)]
mod tests;
