//! Flapping of a whole group: a site whose outages start more than N
//! times within W gets one `flapping` notice, then no group alarm,
//! reminder or all-clear per outage until it has stayed up (or down) for
//! S; then one notice with its state.
//!
//! The rule is [a host's](crate::flap), one level up:
//!
//! - A group's **flip** is a group outage beginning (a gathering
//!   [`resolve`](super::resolve)d into an outage), counted at the first
//!   member's deadline. The record keeps the starts of its most recent
//!   outages (at most `flips + 1`, none older than `window`), written by
//!   the compare-and-swap that begins the outage.
//! - When more than `flips` group outages (this one included) began within
//!   `window`, a **group flapping episode** begins: the group owes one
//!   notice of kind `flapping` naming the silent hosts
//!   (`[iamalive] FLAPPING site office-berlin: 5 outages in 1h, 10 hosts`),
//!   *instead of* that outage's group alarm.
//! - During the episode a group outage owes no group alarm (so no
//!   reminder follows: nothing was alarmed) and its end owes no all-clear.
//!   Its hosts' own notices are absorbed by the group as in any outage.
//! - The episode ends once no group outage began or ended for `stable`.
//!   Then one notice with the group's state: up (quiet, or only gathering)
//!   → a `stable` notice naming the hosts the `flapping` notice named,
//!   owed only if that notice reached someone; down (in an outage) → a
//!   normal group alarm naming the silent hosts, after which reminders and
//!   the all-clear follow as usual. The history is forgotten.
//!
//! **Members flapping on their own.** With the same settings a host of a
//! flapping site starts its own episode at the same outage as its group
//! (each site outage is an outage of each of its hosts). Its own
//! `flapping` notice therefore goes through the group too: the group
//! gathers it like an alarm, and once it is part of a group outage the
//! group takes it (absorbed) and remembers the host as a *flapper*. That
//! host's own `stable` notice later is the group's too (absorbed), and its
//! episode-ending alarm (it stayed down) forgets it and is a normal alarm
//! for the group. The group's episode does not end while a flapper is
//! still in its own episode: when the group's stable time comes, the
//! monitor reads each flapper's record once ([`prune`]) and waits for the
//! latest of them. A team thus gets one `flapping` notice and one
//! `stable` notice for a flapping site, not one per host.
//!
//! Everything here is written by the compare-and-swap of the group
//! transition it belongs to; notices sit in the group's outbox under a
//! lease like its alarms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{GroupHost, GroupPhase, GroupPolicy, GroupRecord, Verdict, due_at, group_notice};
use crate::flap::{Flap, FlapNote, OnOutage};
use crate::model::add;
use crate::{HostId, Notice, NoticeKind, Outbox, Policy, Timestamp};

/// The most hosts a group's `flapping` notice is remembered naming (for
/// its `stable` notice), so the record stays small for a large site.
pub const MAX_NAMED: usize = 100;

/// A group's flapping state, stored with its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupFlap {
    /// Its recent outage starts and its episode, kept like a host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Box<Flap>>,
    /// The window the episode was judged in.
    #[serde(default, with = "humantime_serde")]
    pub window: Duration,
    /// How long the group must stay up (or down) to be stable again, as
    /// set when the episode began.
    #[serde(default, with = "humantime_serde")]
    pub stable: Duration,
    /// Members whose own `flapping` notice the group took: their `stable`
    /// notices are the group's too, and the group's episode waits for
    /// theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flappers: Vec<HostId>,
    /// The hosts the `flapping` notice named (at most [`MAX_NAMED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<GroupHost>,
}

impl GroupFlap {
    fn episode(&self) -> Option<&crate::flap::Episode> {
        self.history.as_deref().and_then(|h| h.episode.as_ref())
    }

    fn is_empty(&self) -> bool {
        self.history.is_none() && self.flappers.is_empty()
    }
}

impl GroupRecord {
    /// Whether the group is in a flapping episode.
    pub fn flapping(&self) -> bool {
        self.flap.as_deref().and_then(GroupFlap::episode).is_some()
    }

    /// Group outages counted in its flapping episode (`None`: not
    /// flapping).
    pub fn flap_outages(&self) -> Option<u32> {
        self.flap
            .as_deref()
            .and_then(GroupFlap::episode)
            .map(|e| e.outages)
    }
}

/// When `g`'s flapping episode ends if nothing changes (`None`: not
/// flapping).
pub fn stable_at(g: &GroupRecord) -> Option<Timestamp> {
    let f = g.flap.as_deref()?;
    f.episode().map(|e| add(e.changed, f.stable))
}

/// What a group notice of the episode says of the flapping.
fn note(g: &GroupRecord) -> Option<FlapNote> {
    let f = g.flap.as_deref()?;
    let e = f.episode()?;
    Some(FlapNote {
        flips: e.outages,
        window: f.window,
        stable_for: f.stable,
        since: e.since,
    })
}

/// The answers about a member's flapping that come before the group's
/// table: a member's own `stable` notice (the group's if the host is one of
/// its flappers, its own otherwise), and a member's `flapping` notice too
/// late to gather (its deadline plus the wait has passed while the group
/// is quiet: the host is alone, or back already). `None`: ask the table.
pub(super) fn consult_episode(
    g: &GroupRecord,
    notice: &Notice,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) -> Option<(Option<GroupRecord>, Verdict)> {
    match notice.kind {
        NoticeKind::Stable => {
            let f = g.flap.as_deref()?;
            if !f.flappers.contains(&notice.host) {
                return Some((None, Verdict::Alone));
            }
            let mut next = g.clone();
            forget_flapper(&mut next, &notice.host);
            next.due_at = due_at(&next, policy);
            Some((Some(next), Verdict::Absorbed))
        }
        NoticeKind::Flapping
            if g.phase == GroupPhase::Quiet && add(notice.missing_since, gp.wait) <= now =>
        {
            Some((None, Verdict::Alone))
        }
        _ => None,
    }
}

fn forget_flapper(g: &mut GroupRecord, host: &HostId) {
    if let Some(f) = g.flap.as_deref_mut() {
        f.flappers.retain(|h| h != host);
        if f.is_empty() {
            g.flap = None;
        }
    }
}

/// After the table's verdict, the final one: a member's `flapping` notice
/// that joined an outage of a flapping group is the group's (absorbed): the
/// host is a flapper, and as its own returns are no longer told (it is in
/// its own episode) the group counts it back at once. Joined to an outage
/// of a group that is not flapping, the host is alone (its own `flapping`
/// notice goes out). A member's alarm that ends its own episode (it stayed
/// down) forgets it as a flapper.
pub(super) fn after_consult(
    next: &mut GroupRecord,
    notice: &Notice,
    verdict: Verdict,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) -> Verdict {
    match notice.kind {
        NoticeKind::Flapping if verdict == Verdict::Absorbed => {
            let flapping = next.flapping();
            if flapping {
                let f = next.flap.get_or_insert_with(Box::default);
                if !f.flappers.contains(&notice.host) {
                    f.flappers.push(notice.host.clone());
                }
                if let Some(m) = next.member_mut(&notice.host) {
                    m.back_at.get_or_insert(now);
                }
            } else {
                next.members.retain(|m| m.host != notice.host);
            }
            super::recount(next, now, gp, policy);
            if flapping {
                Verdict::Absorbed
            } else {
                Verdict::Alone
            }
        }
        NoticeKind::Alarm if notice.flap.is_some() => {
            forget_flapper(next, &notice.host);
            verdict
        }
        _ => verdict,
    }
}

/// A group outage began (its first member's deadline `began`; decided at
/// `now`): an episode that was stable before it ends first; then the flip
/// is counted and the group owes its alarm, the `flapping` notice that
/// begins an episode, or nothing while it flaps.
pub(super) fn outage_began(
    g: &mut GroupRecord,
    began: Timestamp,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) {
    if stable_at(g).is_some_and(|at| at <= began)
        && g.flap.as_ref().is_some_and(|f| f.flappers.is_empty())
    {
        end_episode(g, GroupPhase::Quiet, now, policy);
    }
    let fp = &gp.flap;
    let f = g.flap.get_or_insert_with(Box::default);
    let on = crate::flap::began(&mut f.history, began, fp);
    if on == OnOutage::Flapping {
        f.window = fp.window;
        f.stable = fp.stable;
    }
    if f.is_empty() {
        g.flap = None;
    }
    match on {
        OnOutage::Alarm => {
            let n = group_notice(g, NoticeKind::Alarm, now, policy);
            g.outbox.push(Outbox::new(n));
        }
        OnOutage::Flapping => {
            let n = flapping_notice(g, now, policy);
            if let Some(f) = g.flap.as_deref_mut() {
                f.hosts = n.hosts.iter().take(MAX_NAMED).cloned().collect();
            }
            g.outbox.push(Outbox::new(n));
        }
        OnOutage::Quiet => {}
    }
}

/// The group came back at `now`: its episode's wait for stability restarts.
pub(super) fn came_back(g: &mut GroupRecord, now: Timestamp) {
    if let Some(f) = g.flap.as_deref_mut() {
        crate::flap::changed(&mut f.history, now);
    }
}

/// The `flapping` notice reached a channel: its `stable` notice is owed
/// at the episode's end.
pub(super) fn told(g: &mut GroupRecord) {
    if let Some(e) = g
        .flap
        .as_deref_mut()
        .and_then(|f| f.history.as_deref_mut())
        .and_then(|h| h.episode.as_mut())
    {
        e.told = true;
    }
}

/// Whether `g`'s episode would end at `now` but some members are still
/// flapping as far as it knows: the monitor then reads them ([`prune`]).
pub fn needs_prune(g: &GroupRecord, now: Timestamp) -> bool {
    g.outbox.is_empty()
        && stable_at(g).is_some_and(|at| at <= now)
        && g.flap.as_ref().is_some_and(|f| !f.flappers.is_empty())
}

/// The monitor read `g`'s flappers: `still(host)` is `Some(t)` for one
/// still in its own episode (or owing its `stable` notice), `t` when to
/// look again, `None` for one that is not. The group forgets the others
/// and waits until the latest `t` (its episode's last change moves so
/// that it is stable then). `None` when nothing changed.
pub fn prune(
    g: &GroupRecord,
    still: impl Fn(&HostId) -> Option<Timestamp>,
    policy: &Policy,
) -> Option<GroupRecord> {
    let mut next = g.clone();
    let f = next.flap.as_deref_mut()?;
    let mut latest: Option<Timestamp> = None;
    f.flappers.retain(|h| match still(h) {
        Some(t) => {
            latest = Some(latest.map_or(t, |l| l.max(t)));
            true
        }
        None => false,
    });
    let stable = f.stable;
    if let (Some(t), Some(e)) = (
        latest,
        f.history.as_deref_mut().and_then(|h| h.episode.as_mut()),
    ) {
        let changed = t
            .checked_sub_signed(chrono::Duration::from_std(stable).unwrap_or_default())
            .unwrap_or(t);
        e.changed = e.changed.max(changed);
    }
    if f.is_empty() {
        next.flap = None;
    }
    next.due_at = due_at(&next, policy);
    (next != *g).then_some(next)
}

/// The step's part: an episode whose stable time came (nothing owed,
/// no member still flapping) ends with one notice of the group's state.
pub(super) fn end_if_stable(g: &mut GroupRecord, now: Timestamp, policy: &Policy) {
    if !g.outbox.is_empty()
        || stable_at(g).is_none_or(|at| at > now)
        || g.flap.as_ref().is_some_and(|f| !f.flappers.is_empty())
    {
        return;
    }
    end_episode(g, g.phase, now, policy);
}

/// Ends the episode as the group stands in `phase`: up → `stable` (if the
/// `flapping` notice was told), down → the group alarm. The history is
/// forgotten.
fn end_episode(g: &mut GroupRecord, phase: GroupPhase, now: Timestamp, policy: &Policy) {
    let told = g
        .flap
        .as_deref()
        .and_then(GroupFlap::episode)
        .is_some_and(|e| e.told);
    match phase {
        GroupPhase::Quiet | GroupPhase::Gathering { .. } => {
            if told {
                let n = stable_notice(g, now);
                g.outbox.push(Outbox::new(n));
            }
        }
        GroupPhase::Outage | GroupPhase::Ending { .. } => {
            let mut n = group_notice(g, NoticeKind::Alarm, now, policy);
            n.flap = note(g).map(Box::new);
            g.outbox.push(Outbox::new(n));
        }
    }
    if let Some(f) = g.flap.as_deref_mut() {
        f.history = None;
        f.hosts.clear();
        if f.is_empty() {
            g.flap = None;
        }
    }
}

/// The episode's outage id: `site:<group>@<ms>/flapping`.
fn episode_id(g: &GroupRecord, since_at: Timestamp) -> String {
    format!("site:{}@{}/flapping", g.group, since_at.timestamp_millis())
}

/// The group `flapping` notice: the silent hosts of the outage that began
/// the episode, and how much the group flapped.
fn flapping_notice(g: &mut GroupRecord, now: Timestamp, policy: &Policy) -> Notice {
    let mut n = group_notice(g, NoticeKind::Alarm, now, policy);
    let note = note(g);
    let since_at = note.as_ref().map_or(now, |f| f.since);
    n.outage_id = episode_id(g, since_at);
    n.id = format!("{}/start", n.outage_id);
    n.kind = NoticeKind::Flapping;
    n.alarm_count = 0;
    n.next_reminder = None;
    n.flap = note.map(Box::new);
    n
}

/// The group `stable` notice: the hosts the `flapping` notice named, up
/// since the group's last return.
fn stable_notice(g: &GroupRecord, now: Timestamp) -> Notice {
    let f = g.flap.as_deref();
    let note = note(g);
    let since_at = note.as_ref().map_or(now, |n| n.since);
    let up_since = f
        .and_then(GroupFlap::episode)
        .map_or(now, |e| e.changed.min(now));
    let hosts: Vec<GroupHost> = f
        .map(|f| f.hosts.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|mut h| {
            h.back_at = Some(h.back_at.unwrap_or(up_since));
            h.silent_for = Duration::ZERO;
            h.new = false;
            h
        })
        .collect();
    let outage_id = episode_id(g, since_at);
    let first = hosts.first().map(|h| h.host.clone());
    let host = first.unwrap_or_else(crate::health::watcher_host);
    Notice {
        last_seen: up_since,
        missing_since: since_at,
        recovered_at: Some(up_since),
        group: Some(g.group.clone()),
        hosts,
        flap: note.map(Box::new),
        ..Notice::new(
            format!("{outage_id}/stable"),
            outage_id,
            NoticeKind::Stable,
            host,
            now,
        )
    }
}

#[cfg(test)]
mod tests;
