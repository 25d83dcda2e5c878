//! Hosts without a group in the watcher-blind detection: more than half
//! of all monitored hosts falling silent within one wait is one "watcher
//! may be blind" notice too, not one alarm per host.
//!
//! Their silences are gathered in one record stored like a group's under
//! the reserved name [`UNGROUPED`](crate::UNGROUPED) (which no group may
//! take), by the group machine of [`super`] with these differences:
//!
//! | the record | a host's first alarm | verdict |
//! |---|---|---|
//! | quiet, no other host without a group silent or due within one wait of it (remembered, asking in the same sweep batch, or read from the due index with its deadline that close) | the host is remembered (*alone*) | **alone**: its alarm goes out now, on time |
//! | quiet, others silent within one wait of it, but more than half of all hosts cannot be silent by the wait's end ([`blind_within_reach`]) | the host is remembered (*alone*) | **alone**: its alarm goes out now, on time |
//! | quiet, another one silent within one wait of it | the record gathers until the earlier one's deadline plus the wait | **hold** (at most one wait after its own deadline) |
//! | gathering, its end reached | | [`resolve`]: the held hosts and those remembered within the wait, if still silent, are counted against the store's host count |
//!
//! A lone silence is never held, nor a pair: a dead man's switch alarms
//! on time, and only [`MIN_HOSTS`] silent together start a gathering. A
//! fleet going dark comes due host by host, milliseconds apart, each in a
//! sweep of its own; so when a first alarm finds the record quiet the
//! monitor reads the due index up to one wait past it (at most 64
//! records, O(due)) for other hosts without a group whose deadline falls
//! within the wait, and gathers with them. Two more silences within one
//! wait start the gathering; at its end, with at least
//! [`MIN_HOSTS`] still silent and more than half of all the store's hosts
//! ([`Store::host_count`](crate::Store::host_count), asked then and only
//! then), the record is in an outage: its alarm (naming every one of
//! them, the first too) asks the watcher's record
//! ([`super::blind`]) like a site's, which owes the one blind notice
//! without waiting for a second site. Fewer: each held host is alone and
//! its own alarm goes out at the hold's end.
//!
//! Nobody is held for a blind notice that cannot come. Before a gathering
//! begins the monitor asks the store how many hosts are due by one wait
//! past its end ([`Store::count_due`](crate::Store::count_due), counting
//! no further than half of [`Store::host_count`](crate::Store::host_count);
//! one count serves the first alarms of the next second): only hosts due by
//! then can be silent at its end, so when they and the hosts silent now
//! are not more than half of all hosts, the three (or three hundred) of a
//! hundred thousand that fell silent together are a rack or a network
//! segment, and their alarms go out on time ([`blind_within_reach`]).
//!
//! From there it behaves as a group: hosts that fall silent later join
//! and are named in its reminders ("hosts without a group: 40 still
//! silent", one per reminder interval, not one per host), their
//! all-clears are counted back, and when fewer than two are still silent
//! it ends like a group (its all-clear absorbed into the blind all-clear; a
//! host still silent then is alone and gets its own alarm). It never has a
//! flapping episode of its own (a host's own flapping notices go out as
//! before).
//!
//! A store that cannot count its hosts
//! ([`Store::counts_hosts`](crate::Store::counts_hosts): DynamoDB) cannot
//! tell "more than half"; its hosts without a group alarm on their own,
//! never held.

use std::time::Duration;

use super::{Fate, GroupPhase, GroupPolicy, GroupRecord};
use crate::model::since;
use crate::{HostId, Notice, Policy, Timestamp};

/// The fewest silent hosts without a group that can be a blind spot, and
/// that start a gathering: two hosts silent together are two alarms (a
/// blind notice would spare one notice and say less of each host), and
/// holding a pair of independent silences would only make them late.
pub const MIN_HOSTS: usize = 3;

/// How the record of the hosts without a group gathers: the blind
/// detection's `wait`, an outage kept while two are silent, no flapping
/// episode of its own.
pub fn policy(wait: Duration) -> GroupPolicy {
    GroupPolicy {
        min_hosts: 2,
        wait,
        flap: crate::flap::FlapPolicy {
            enabled: false,
            ..crate::flap::FlapPolicy::default()
        },
    }
}

/// Whether `a` and `b` lie within `wait` of each other.
pub(crate) fn near(a: Timestamp, b: Timestamp, wait: Duration) -> bool {
    since(a, b) <= wait && since(b, a) <= wait
}

/// What the monitor read for a quiet record's first alarms, passed to
/// [`consult_batch_with`](super::consult_batch_with).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lookahead {
    /// Hosts that have not asked but are silent already, with their
    /// deadlines: each a peer of a first alarm within one wait of it.
    pub expected: Vec<(HostId, Timestamp)>,
    /// More than half of all hosts cannot be silent by the end of a
    /// gathering begun now ([`blind_within_reach`]): nobody is held, each
    /// first alarm goes out at once.
    pub out_of_reach: bool,
}

/// Whether a gathering could end in a blind spot: at most `reach` hosts
/// can be silent by its end (every host due by then, and those asking or
/// remembered now), against `total` hosts in all. When either is unknown
/// it could.
///
/// Holding alarms is worth it only when the blind notice can come of it:
/// three hosts of a hundred thousand silent together are a rack or a
/// network segment, not the watcher's ingress, and their alarms go out on
/// time. When the ingress does fail, every host's heartbeats stop, so the
/// hosts silent by the wait's end are among those due by then; a watcher
/// that hears nothing also registers no host and moves no deadline, so the
/// count cannot grow behind its back.
pub fn blind_within_reach(reach: Option<u64>, total: Option<u64>) -> bool {
    match (reach, total) {
        (Some(n), Some(_)) => is_blind_spot(usize::try_from(n).unwrap_or(usize::MAX), total),
        _ => true,
    }
}

/// A batch's first alarms of hosts without a group and the silent hosts
/// the monitor read ([`Lookahead`]), as one record's consultation sees
/// them.
#[derive(Debug, Default)]
pub(super) struct Peers<'a> {
    /// Each with its deadline.
    pub(super) near: Vec<(&'a HostId, Timestamp)>,
    /// [`Lookahead::out_of_reach`].
    pub(super) out_of_reach: bool,
}

impl<'a> Peers<'a> {
    /// The first alarms among `notices` and what the monitor read.
    pub(super) fn of(notices: &[(&'a Notice, &Policy)], look: &'a Lookahead) -> Self {
        let mut near = batch_alarms(notices);
        near.extend(look.expected.iter().map(|(h, t)| (h, *t)));
        Self {
            near,
            out_of_reach: look.out_of_reach,
        }
    }
}

/// For a quiet record asked by `notice`, a host's first alarm: the
/// earliest deadline of the hosts remembered alone, or asking in the same
/// batch or read by the monitor (`peers`), within one `wait` of it (the
/// gathering then starts there), or `None` when fewer than [`MIN_HOSTS`]
/// with it are that close or no blind spot is within reach (it goes out
/// alone, now).
pub(super) fn gathering_since(
    g: &GroupRecord,
    notice: &Notice,
    wait: Duration,
    peers: &Peers<'_>,
) -> Option<Timestamp> {
    if peers.out_of_reach {
        return None;
    }
    let remembered = g
        .members
        .iter()
        .filter(|m| m.fate == Fate::Alone)
        .map(|m| (&m.host, m.missing_since));
    // By host: one remembered and asking in the same batch counts once.
    let near_ones: std::collections::HashMap<&HostId, Timestamp> = remembered
        .chain(peers.near.iter().copied())
        .filter(|&(h, t)| *h != notice.host && near(t, notice.missing_since, wait))
        .collect();
    if near_ones.len() + 1 < MIN_HOSTS {
        return None;
    }
    near_ones
        .into_values()
        .min()
        .map(|t| t.min(notice.missing_since))
}

/// The first alarms among a batch's notices, with their deadlines: each
/// one's peers for [`gathering_since`].
pub(crate) fn batch_alarms<'a>(notices: &[(&'a Notice, &Policy)]) -> Vec<(&'a HostId, Timestamp)> {
    notices
        .iter()
        .filter(|(n, _)| n.kind == crate::NoticeKind::Alarm && n.alarm_count <= 1)
        .map(|(n, _)| (&n.host, n.missing_since))
        .collect()
}

/// The gathering about to be resolved, with the hosts remembered alone
/// within one `wait` of its start held too, so that they are read, counted
/// and, in an outage, named with the others (their own alarms went out
/// already).
pub fn regather(g: &GroupRecord, wait: Duration) -> GroupRecord {
    let mut next = g.clone();
    let Some(start) = g.since else {
        return next;
    };
    let until = match g.phase {
        GroupPhase::Gathering { until } => until,
        _ => return next,
    };
    for m in next.members.iter_mut() {
        let within = m.missing_since <= until && near(m.missing_since, start, wait);
        if m.fate == Fate::Alone && within {
            m.fate = Fate::Held;
            m.alarmed_alone = true;
        }
    }
    next
}

/// Whether `silent` hosts without a group still silent at the end of a
/// gathering are a blind spot among `total` hosts in all: at least
/// [`MIN_HOSTS`] and more than half. An unknown total never is.
pub fn is_blind_spot(silent: usize, total: Option<u64>) -> bool {
    silent >= MIN_HOSTS && total.is_some_and(|t| (silent as u64).saturating_mul(2) > t)
}

/// Ends the record's gathering (see [`regather`], which comes first):
/// with a blind spot ([`is_blind_spot`] of the held hosts `still_silent`
/// among `total`) every one of them is in the outage and its alarm is
/// owed (it asks the watcher's record); otherwise each is alone. `None`
/// when `g` is not a gathering past its end.
pub fn resolve(
    g: &GroupRecord,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
    total: Option<u64>,
    still_silent: impl Fn(&super::Member) -> bool,
) -> Option<GroupRecord> {
    let silent = g
        .members
        .iter()
        .filter(|m| m.fate == Fate::Held && still_silent(m))
        .count();
    let blind = is_blind_spot(silent, total);
    let gp = GroupPolicy {
        min_hosts: if blind { 1 } else { u32::MAX },
        ..*gp
    };
    let mut next = super::resolve(g, now, &gp, policy, still_silent)?;
    if blind {
        next.hosts_total = total;
    }
    Some(next)
}

#[cfg(test)]
mod tests;
