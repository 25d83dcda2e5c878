//! One notice per outage of a group: the pure transitions.
//!
//! A host of a group that owes an alarm, a reminder or an all-clear does not
//! hand it to the channels at once: the [`Monitor`](crate::Monitor) first
//! asks the group's record ([`consult`]) what to do with it:
//!
//! | group phase | the host's notice | verdict |
//! |---|---|---|
//! | quiet | alarm | the host is *held*; the group starts gathering until the host's deadline plus the group `wait`: **hold** until then |
//! | gathering, before its end | alarm | held with the others: **hold** |
//! | gathering, its end reached | any | the group must be [`resolve`]d first: **resolve** |
//! | outage (or ending) | alarm | the host joins the outage (named in the next group reminder): **absorbed** |
//! | outage (or ending) | reminder of a member bringing news of a failure it reported | the group's reminders do not say it: **alone** |
//! | outage (or ending) | reminder of a member | the group's reminders cover it: **absorbed** |
//! | outage (or ending) | all-clear of a member | it is counted back: **absorbed** |
//! | any | a host alone (its group's hold ended with fewer than `min_hosts` silent, or left over when the group came back), or not a member | **alone**: the host's own notice goes out |
//!
//! [`resolve`] ends a gathering: with at least `min_hosts` of the held
//! hosts still silent the group is in an *outage* and owes **one** group
//! alarm naming each of them; otherwise each held host is *alone* and its
//! own alarm goes out when it next asks. A held host that beat again before
//! the end was never told about (its alarm was dropped by its own record)
//! and is left out.
//!
//! While in an outage the group owes its own reminders, throttled by the
//! policy of its first member, naming every host still silent (the ones
//! that joined since marked as new). When the hosts still silent are fewer
//! than `min_hosts` the group is *ending*: after one more `wait` (for
//! stragglers) it owes one group all-clear naming who came back, how long
//! the site was dark and what the agents reported; a host still silent then
//! is *alone* and the group owes that host's own alarm right after. When
//! every member is back the all-clear goes at once.
//!
//! The group's notices sit in its record's outbox queue, delivered under a
//! lease and settled per channel exactly like a host's
//! ([`crate::decide::apply_round`]); the record is written with
//! compare-and-swap on its `version`, so several monitors on one store send
//! each group notice once, and a monitor that dies mid-delivery leaves it
//! owed for the next.
//!
//! One level up, [`blind`] gathers the outages of two or more groups that
//! begin within one wait into one "watcher may be blind" notice: a group's
//! first alarm asks the watcher's own record before it goes out, as a
//! host's notice asks its group's.

use std::time::Duration;

pub mod blind;
pub mod flap;
pub mod loose;
mod members;

pub use members::Members;
pub mod missed;

use serde::{Deserialize, Serialize};

use crate::decide::{ChannelOutcome, RetryPolicy, Round, apply_round};
use crate::model::{add, since};
use crate::{GroupName, HostId, HostRecord, Lease, Notice, NoticeKind, Outbox, Policy, Timestamp};

/// The default `min_hosts`: two hosts of a group silent together are a
/// group outage.
pub const DEFAULT_MIN_HOSTS: u32 = 2;
/// The default group `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How one group gathers its hosts' outages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    /// How many hosts of the group falling silent together make a group
    /// outage (at least 1).
    pub min_hosts: u32,
    /// The longest the first notice of a group outage is held to gather the
    /// hosts that fall silent with it, counted from the first host's
    /// deadline; also how long the group waits for stragglers before its
    /// all-clear.
    pub wait: Duration,
    /// When the group's outages count as flapping ([`flap`]): the
    /// `[flapping]` settings unless its `[[groups]]` entry overrides them.
    pub flap: crate::flap::FlapPolicy,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        Self {
            min_hosts: DEFAULT_MIN_HOSTS,
            wait: DEFAULT_WAIT,
            flap: crate::flap::FlapPolicy::default(),
        }
    }
}

/// Where a group is in its outage cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum GroupPhase {
    /// No outage: nothing held.
    Quiet,
    /// Hosts are held until `until` to see whether more fall silent.
    Gathering {
        /// When the hold ends (the first held host's deadline plus `wait`).
        until: Timestamp,
    },
    /// A group outage: the group alarm went out (or is owed).
    Outage,
    /// Fewer than `min_hosts` are still silent; the all-clear goes at
    /// `until` unless the silent ones grow again.
    Ending {
        /// When the all-clear is owed.
        until: Timestamp,
    },
}

/// What became of one host in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Its alarm is held while the group gathers.
    Held,
    /// It is part of the group's outage: the group speaks for it.
    Outage,
    /// It is on its own: its notices go out as they are.
    Alone,
}

/// One host as its group's record knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The host.
    pub host: HostId,
    /// Its outage as its own notices name it.
    pub outage_id: String,
    /// What became of it.
    pub fate: Fate,
    /// Its last heartbeat before the silence.
    pub last_seen: Timestamp,
    /// Its deadline (when it was declared missing).
    pub missing_since: Timestamp,
    /// The heartbeat that ended its silence, once back.
    #[serde(default)]
    pub back_at: Option<Timestamp>,
    /// The agent's account of the outage, sent when it came back.
    #[serde(default)]
    pub report: Option<String>,
    /// Whether a group notice has named it yet.
    #[serde(default)]
    pub named: bool,
    /// Named on evidence of a missed beat, before its own timeout ran out
    /// (see [`missed`]); its `outage_id` is empty until its own alarm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missed_beat: bool,
    /// Its own alarm went out before it joined the outage (a host without
    /// a group remembered alone, gathered later with its peers): still
    /// silent when the group is back, it owes no second alarm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alarmed_alone: bool,
}

/// A group's outage state: stored beside the hosts, swapped with
/// compare-and-swap on `version`, due for the sweep at `due_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group.
    pub group: GroupName,
    /// Bumped by every write.
    pub version: u64,
    /// When the sweep must next look at it (`None`: only a host's notice
    /// wakes it).
    pub due_at: Option<Timestamp>,
    /// Where it is.
    #[serde(flatten)]
    pub phase: GroupPhase,
    /// The current outage's id (`site:<group>@<ms>`), shared by its notices.
    #[serde(default)]
    pub outage_id: Option<String>,
    /// The first member's deadline: when the site went dark.
    #[serde(default)]
    pub since: Option<Timestamp>,
    /// Hosts held, in the outage, or alone, keyed by host.
    #[serde(default)]
    pub members: Members,
    /// Group alarms and reminders delivered in this outage.
    #[serde(default)]
    pub alarm_count: u32,
    /// When the last group alarm or reminder was delivered.
    #[serde(default)]
    pub last_alarm: Option<Timestamp>,
    /// Notices owed, delivered in order (the first is the one in flight).
    #[serde(default)]
    pub outbox: Vec<Outbox>,
    /// The watcher's record only ([`blind`]): the sites it gathers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<blind::Site>,
    /// The watcher's record only: how many hosts the store held when the
    /// blind outage began, if it could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_total: Option<u64>,
    /// The group's recent outage starts, its flapping episode and the
    /// members flapping with it ([`flap`]); `None` until its first outage
    /// with flapping detection on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<Box<flap::GroupFlap>>,
}

impl GroupRecord {
    /// A quiet group with nothing stored yet (version 0: create on swap).
    pub fn new(group: GroupName) -> Self {
        Self {
            group,
            version: 0,
            due_at: None,
            phase: GroupPhase::Quiet,
            outage_id: None,
            since: None,
            members: Members::new(),
            alarm_count: 0,
            last_alarm: None,
            outbox: Vec::new(),
            sites: Vec::new(),
            hosts_total: None,
            flap: None,
        }
    }

    pub(crate) fn member_mut(&mut self, host: &HostId) -> Option<&mut Member> {
        self.members.get_mut(host)
    }

    /// Members of the outage still silent.
    pub fn silent(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| is_silent(m))
    }
}

/// What the monitor does with a grouped host's owed notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it owed, undelivered, until then.
    Hold(Timestamp),
    /// The group speaks for it: settle it as delivered, send nothing.
    Absorbed,
    /// Deliver it as it is.
    Alone,
    /// The group's gathering is over: [`resolve`] it, then ask again.
    Resolve,
}

/// Asks `g` what to do with `notice`, a host's alarm, reminder or
/// all-clear, at `now`: the group record to write (if it changed) and the
/// verdict. See the [module table](self). One notice of
/// [`consult_batch`].
pub fn consult(
    g: &GroupRecord,
    notice: &Notice,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) -> (Option<GroupRecord>, Verdict) {
    let (write, verdicts) = consult_batch(g, &[(notice, policy)], now, gp);
    (write, verdicts.first().copied().unwrap_or(Verdict::Alone))
}

/// Asks `g` about several hosts' notices at once, in order, each with its
/// host's policy: what [`consult`] would decide for each in turn, with one
/// record to write for all of them (if it changed). The record is copied
/// once per call and each notice costs O(log members), so a sweep batch of
/// a site going dark costs one pass over the record, not one per host.
///
/// The verdicts follow `notices`, one each, up to the first
/// [`Verdict::Resolve`] (included): the gathering must be [`resolve`]d
/// (after writing the record) and the notices from that one on asked
/// again. Empty only when `notices` is.
pub fn consult_batch(
    g: &GroupRecord,
    notices: &[(&Notice, &Policy)],
    now: Timestamp,
    gp: &GroupPolicy,
) -> (Option<GroupRecord>, Vec<Verdict>) {
    consult_batch_with(g, notices, now, gp, &loose::Lookahead::default())
}

/// [`consult_batch`], with what the monitor read for the hosts without a
/// group ([`loose::Lookahead`]): those that have not asked but whose
/// deadlines it read from the due index, each a peer of a first alarm
/// within one wait of it, and whether a blind spot is within reach at all.
pub fn consult_batch_with(
    g: &GroupRecord,
    notices: &[(&Notice, &Policy)],
    now: Timestamp,
    gp: &GroupPolicy,
    look: &loose::Lookahead,
) -> (Option<GroupRecord>, Vec<Verdict>) {
    let mut next = g.clone();
    let mut silent = next.silent().count();
    let mut verdicts = Vec::with_capacity(notices.len());
    // Hosts without a group whose alarms come in one batch are gathered
    // together from the first (loose): none of them is a lone silence.
    let peers = if g.group.is_ungrouped() {
        loose::Peers::of(notices, look)
    } else {
        loose::Peers::default()
    };
    let mut last_policy = None;
    for &(notice, policy) in notices {
        last_policy = Some(policy);
        // A member's `stable` notice, or a `flapping` one too late to be
        // gathered, is its group's flapping episode's (flap).
        if let Some((write, verdict)) = flap::consult_episode(&next, notice, now, gp, policy) {
            if let Some(w) = write {
                next = w;
                silent = next.silent().count();
            }
            verdicts.push(verdict);
            continue;
        }
        let verdict = consult_one(&mut next, &mut silent, notice, now, gp, policy, &peers);
        verdicts.push(verdict);
        if verdict == Verdict::Resolve {
            break;
        }
    }
    if let Some(policy) = last_policy {
        next.due_at = due_at(&next, policy);
    }
    let changed = next != *g;
    (changed.then_some(next), verdicts)
}

/// One notice of [`consult_batch`], applied to `next`; `silent` is its
/// count of [silent](GroupRecord::silent) members, kept up to date.
/// `peers`: the alarms of hosts without a group asked in the same batch
/// and those the monitor read ([`loose::Peers`]).
fn consult_one(
    next: &mut GroupRecord,
    silent: &mut usize,
    notice: &Notice,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
    peers: &loose::Peers<'_>,
) -> Verdict {
    // A host named on a missed beat whose own alarm now asks (missed).
    if let Some(v) = missed::adopt(next, notice) {
        return v;
    }
    let host = &notice.host;
    let known = next
        .members
        .get(host)
        .filter(|m| m.outage_id == notice.outage_id)
        .map(|m| m.fate);
    // Replaces the host's entry, keeping the silent count right.
    let put = |next: &mut GroupRecord, silent: &mut usize, m: Member| {
        if next.members.insert(m).is_some_and(|old| is_silent(&old)) {
            *silent -= 1;
        }
        if next.members.get(host).is_some_and(is_silent) {
            *silent += 1;
        }
    };
    // A member's own `flapping` notice is its outage's first notice: the
    // group gathers it like an alarm.
    let kind = match notice.kind {
        NoticeKind::Flapping => NoticeKind::Alarm,
        k => k,
    };
    let verdict = match (kind, known, next.phase) {
        (NoticeKind::Alarm, None, GroupPhase::Quiet) => {
            // A host without a group (loose) gathers only with another one
            // silent within one wait, from the earlier one's deadline (so
            // never held more than one wait); alone it goes out at once.
            let start = if next.group.is_ungrouped() {
                loose::gathering_since(next, notice, gp.wait, peers)
            } else {
                Some(notice.missing_since)
            };
            if let Some(start) = start {
                // An alarm owed late (a silence or a maintenance that
                // ended, a flapping hold): its group gathers from when it
                // became owed, so a site still dark then is one notice.
                let owed = if next.group.is_ungrouped() {
                    start
                } else {
                    start.max(notice.created_at)
                };
                let until = add(owed, gp.wait);
                put(next, silent, member_of(notice, Fate::Held));
                next.phase = GroupPhase::Gathering { until };
                next.since = Some(start);
                if until <= now {
                    Verdict::Resolve
                } else {
                    Verdict::Hold(until)
                }
            } else {
                put(next, silent, member_of(notice, Fate::Alone));
                Verdict::Alone
            }
        }
        (_, _, GroupPhase::Gathering { until }) if until <= now => Verdict::Resolve,
        (NoticeKind::Alarm, None | Some(Fate::Held), GroupPhase::Gathering { until }) => {
            put(next, silent, member_of(notice, Fate::Held));
            Verdict::Hold(until)
        }
        (NoticeKind::Alarm, None, GroupPhase::Outage | GroupPhase::Ending { .. }) => {
            put(next, silent, member_of(notice, Fate::Outage));
            recount_with(next, silent, now, gp, policy);
            Verdict::Absorbed
        }
        // A member's reminder that brings news of a failure it reported:
        // the group's reminders name it silent, so it goes out itself.
        (NoticeKind::Reminder, Some(Fate::Outage), _)
            if notice.job.as_deref().is_some_and(|j| j.new_failure) =>
        {
            Verdict::Alone
        }
        (NoticeKind::Alarm | NoticeKind::Reminder, Some(Fate::Outage), _) => Verdict::Absorbed,
        (NoticeKind::Recovery, Some(Fate::Outage), _) => {
            if let Some(m) = next.members.get_mut(host) {
                if m.back_at.is_none() {
                    *silent -= 1;
                }
                m.back_at = Some(notice.recovered_at.unwrap_or(now));
                m.report.clone_from(&notice.report);
            }
            recount_with(next, silent, now, gp, policy);
            Verdict::Absorbed
        }
        (NoticeKind::Recovery, Some(Fate::Alone), _) => {
            next.members.remove(host);
            Verdict::Alone
        }
        _ => Verdict::Alone,
    };
    let verdict = flap::after_consult(next, notice, verdict, now, gp, policy);
    if matches!(notice.kind, NoticeKind::Flapping) || notice.flap.is_some() {
        // Its group's flapping bookkeeping may have moved members.
        *silent = next.silent().count();
    }
    verdict
}

/// Whether `m` counts among the [silent](GroupRecord::silent) members.
fn is_silent(m: &Member) -> bool {
    m.fate == Fate::Outage && m.back_at.is_none()
}

fn member_of(n: &Notice, fate: Fate) -> Member {
    Member {
        host: n.host.clone(),
        outage_id: n.outage_id.clone(),
        fate,
        last_seen: n.last_seen,
        missing_since: n.missing_since,
        back_at: None,
        report: None,
        named: false,
        missed_beat: false,
        alarmed_alone: false,
    }
}

/// Ends a gathering whose hold is over (`now` at or past its end): with at
/// least `min_hosts` held hosts `still_silent` the group is in an outage
/// and owes one group alarm naming them; otherwise each is alone. A held
/// host no longer silent is dropped (it came back before anyone was told).
/// `None` when `g` is not a gathering past its end.
pub fn resolve(
    g: &GroupRecord,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
    still_silent: impl Fn(&Member) -> bool,
) -> Option<GroupRecord> {
    let GroupPhase::Gathering { until } = g.phase else {
        return None;
    };
    if now < until {
        return None;
    }
    let mut next = g.clone();
    next.members
        .retain(|m| m.fate != Fate::Held || still_silent(m));
    let since = conclude(next.members.iter_mut(), gp.min_hosts.max(1) as usize);
    begin_or_quiet(&mut next, since, |t| {
        format!("site:{}@{}", g.group, t.timestamp_millis())
    });
    if let Some(since) = since {
        flap::outage_began(&mut next, since, now, gp, policy);
    }
    missed::drop_unproven(&mut next);
    next.due_at = due_at(&next, policy);
    Some(next)
}

/// An entry a gathering holds: a group's host ([`Member`]) or the
/// watcher's site ([`blind::Site`]).
pub(crate) trait Gathered {
    /// What became of it.
    fn fate(&self) -> Fate;
    /// Changes what became of it.
    fn set_fate(&mut self, fate: Fate);
    /// When it went silent.
    fn silent_at(&self) -> Timestamp;
}

impl Gathered for Member {
    fn fate(&self) -> Fate {
        self.fate
    }
    fn set_fate(&mut self, fate: Fate) {
        self.fate = fate;
    }
    fn silent_at(&self) -> Timestamp {
        self.missing_since
    }
}

/// Ends a gathering over `entries` (those still held are the ones still
/// silent): with at least `threshold` held they are all in the outage and
/// the earliest silence is returned; otherwise each held one is alone.
pub(crate) fn conclude<'a, T: Gathered + 'a>(
    entries: impl Iterator<Item = &'a mut T>,
    threshold: usize,
) -> Option<Timestamp> {
    let mut held: Vec<&mut T> = entries.filter(|e| e.fate() == Fate::Held).collect();
    let outage = held.len() >= threshold;
    let since = held.iter().map(|e| e.silent_at()).min();
    for e in &mut held {
        e.set_fate(if outage { Fate::Outage } else { Fate::Alone });
    }
    since.filter(|_| outage)
}

/// The record's phase once its gathering [`conclude`]d: an outage that
/// began at `since` (its id from `outage_id`, its alarms not counted yet),
/// or quiet again. Whether it is an outage.
pub(crate) fn begin_or_quiet(
    next: &mut GroupRecord,
    since: Option<Timestamp>,
    outage_id: impl FnOnce(Timestamp) -> String,
) -> bool {
    match since {
        Some(since) => {
            next.phase = GroupPhase::Outage;
            next.since = Some(since);
            next.outage_id = Some(outage_id(since));
            next.alarm_count = 0;
            next.last_alarm = None;
            true
        }
        None => {
            next.phase = GroupPhase::Quiet;
            next.since = None;
            false
        }
    }
}

/// After a member came back or joined: an outage with fewer than
/// `min_hosts` silent is ending (all back: at once); one with enough again
/// is an outage again. Counts the silent members (O(members)); the batch
/// path keeps that count itself ([`recount_with`]).
fn recount(g: &mut GroupRecord, now: Timestamp, gp: &GroupPolicy, policy: &Policy) {
    let mut silent = g.silent().count();
    recount_with(g, &mut silent, now, gp, policy);
}

/// [`recount`] with `silent`, how many are [silent](GroupRecord::silent)
/// now, kept by the caller (and set again if the group finished).
fn recount_with(
    g: &mut GroupRecord,
    silent: &mut usize,
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) {
    let n = *silent;
    match g.phase {
        GroupPhase::Outage | GroupPhase::Ending { .. } if n == 0 => {
            finish(g, now, policy);
            *silent = g.silent().count();
        }
        GroupPhase::Outage if n < gp.min_hosts.max(1) as usize => {
            g.phase = GroupPhase::Ending {
                until: add(now, gp.wait),
            };
        }
        GroupPhase::Ending { .. } if n >= gp.min_hosts.max(1) as usize => {
            g.phase = GroupPhase::Outage;
        }
        _ => {}
    }
}

impl GroupRecord {
    /// Members alone before this outage and, as `still_silent` says, still
    /// silent: in the outage now, named by its notices (its alarm, owed and
    /// not yet leased, is made again at `now` to name them), owing no
    /// second alarm when it ends (see `Member::alarmed_alone`).
    pub fn join_alone(
        &mut self,
        still_silent: impl Fn(&HostId) -> bool,
        now: Timestamp,
        policy: &Policy,
    ) {
        let mut joined = false;
        for m in self.members.iter_mut() {
            if m.fate == Fate::Alone && m.back_at.is_none() && still_silent(&m.host) {
                m.fate = Fate::Outage;
                m.alarmed_alone = true;
                joined = true;
            }
        }
        if !joined {
            return;
        }
        let fresh = self.outbox.iter().position(|o| {
            o.notice.is_group()
                && o.notice.kind == NoticeKind::Alarm
                && o.delivered.is_empty()
                && o.failed.is_empty()
                && o.lease.is_none()
        });
        if let Some(i) = fresh {
            let n = group_notice(self, NoticeKind::Alarm, now, policy);
            self.outbox[i] = Outbox::new(n);
        }
    }
}

/// `hosts`, silent members of `g`'s outage that left it without coming
/// back (removed, paused or silenced by an operator), taken out of it: the
/// group's reminders no longer name them, and with fewer than `min_hosts`
/// still silent the outage ends as it would if they had come back. Their
/// own records take over (a silenced one alarms alone when its silence
/// ends). When nobody of the outage is left, it ends without an all-clear
/// (there is nobody to name). `None` when none of them is a silent member.
pub fn depart(
    g: &GroupRecord,
    hosts: &[HostId],
    now: Timestamp,
    gp: &GroupPolicy,
    policy: &Policy,
) -> Option<GroupRecord> {
    let leaving = |m: &Member| is_silent(m) && hosts.contains(&m.host);
    if !g.members.iter().any(leaving) {
        return None;
    }
    let mut next = g.clone();
    next.members.retain(|m| !leaving(m));
    if next.members.iter().any(|m| m.fate == Fate::Outage) {
        let mut silent = next.silent().count();
        recount_with(&mut next, &mut silent, now, gp, policy);
    } else {
        // Everyone in it left: nobody came back to name in an all-clear;
        // the outage ends with the operator's actions, its owed notices
        // dropped.
        next.outbox.retain(|o| !o.notice.is_group());
        end_outage(&mut next);
    }
    next.due_at = due_at(&next, policy);
    Some(next)
}

/// The group is back: one all-clear owed for the members that came back,
/// then each member still silent is alone and owed its own alarm.
fn finish(g: &mut GroupRecord, now: Timestamp, policy: &Policy) {
    let alarm = |o: &Outbox| o.notice.kind == NoticeKind::Alarm && o.notice.is_group();
    // Told, or perhaps told (a lease was taken): the all-clear is owed.
    let told = g.alarm_count > 0
        || g.outbox
            .iter()
            .any(|o| alarm(o) && (!o.delivered.is_empty() || o.lease.is_some()));
    if told {
        let n = group_notice(g, NoticeKind::Recovery, now, policy);
        g.outbox.push(Outbox::new(n));
    } else {
        // Nobody was told of this outage: its alarm is dropped with it.
        g.outbox.retain(|o| !alarm(o));
    }
    // One named on a missed beat whose own alarm has not asked yet is left
    // to its own record, which owes that alarm (or sees it beat again).
    g.members
        .retain(|m| m.back_at.is_some() || !missed::left_to_itself(m));
    // Its own alarm out already (alone before it was gathered): its own
    // record goes on with its reminders.
    let left: Vec<Member> = g.silent().filter(|m| !m.alarmed_alone).cloned().collect();
    for m in left {
        let n = Notice {
            last_seen: m.last_seen,
            missing_since: m.missing_since,
            silent_for: since(now, m.last_seen),
            alarm_count: 1,
            next_reminder: policy.reminder_after(1).map(|w| add(now, w)),
            // Hosts without a group are not a site.
            group: (!g.group.is_ungrouped()).then(|| g.group.clone()),
            ..Notice::new(
                format!("{}/alarm/1", m.outage_id),
                m.outage_id.clone(),
                NoticeKind::Alarm,
                m.host.clone(),
                now,
            )
        };
        g.outbox.push(Outbox::new(n));
    }
    g.members
        .retain(|m| m.fate == Fate::Alone || m.back_at.is_none());
    for m in &mut g.members {
        m.fate = Fate::Alone;
    }
    // The site came back: a flapping episode's wait for stability restarts.
    flap::came_back(g, now);
    end_outage(g);
}

/// The group is quiet again: no outage, nothing counted toward one.
fn end_outage(g: &mut GroupRecord) {
    g.phase = GroupPhase::Quiet;
    g.since = None;
    g.outage_id = None;
    g.alarm_count = 0;
    g.last_alarm = None;
}

/// One host as a group notice names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHost {
    /// The host.
    pub host: HostId,
    /// Its last heartbeat before the silence.
    pub last_seen: Timestamp,
    /// How long it was (or has been) silent.
    #[serde(with = "humantime_serde")]
    pub silent_for: Duration,
    /// For an all-clear: the agent's account of the outage.
    #[serde(default)]
    pub report: Option<String>,
    /// Whether it joined since the previous group notice.
    #[serde(default)]
    pub new: bool,
    /// For an all-clear: when it came back (`None`: still silent).
    #[serde(default)]
    pub back_at: Option<Timestamp>,
    /// Named on evidence of a missed beat: up, past its expected beat, its
    /// own timeout not yet run out when the group decided (see
    /// [`missed`]).
    #[serde(default)]
    pub missed_beat: bool,
}

/// The group notice of `kind` for `g` at `now`, marking every member it
/// names as named. An alarm or reminder names the members still silent; an
/// all-clear every member of the outage, back or not.
pub(crate) fn group_notice(
    g: &mut GroupRecord,
    kind: NoticeKind,
    now: Timestamp,
    policy: &Policy,
) -> Notice {
    let outage_id = g
        .outage_id
        .clone()
        .unwrap_or_else(|| format!("site:{}@{}", g.group, now.timestamp_millis()));
    let since_at = g.since.unwrap_or(now);
    let mut hosts = Vec::new();
    for m in g.members.iter_mut().filter(|m| m.fate == Fate::Outage) {
        // A host back already is named again only by the all-clear, or
        // once if it joined and came back between two notices.
        if kind != NoticeKind::Recovery && m.back_at.is_some() && m.named {
            continue;
        }
        hosts.push(GroupHost {
            host: m.host.clone(),
            last_seen: m.last_seen,
            silent_for: since(m.back_at.unwrap_or(now), m.last_seen),
            report: if kind == NoticeKind::Recovery {
                m.report.clone()
            } else {
                None
            },
            new: kind != NoticeKind::Alarm && !m.named,
            back_at: m.back_at,
            missed_beat: m.missed_beat,
        });
        m.named = true;
    }
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    let count = match kind {
        NoticeKind::Alarm => 1,
        NoticeKind::Reminder => g.alarm_count + 1,
        _ => g.alarm_count.max(1),
    };
    let last_back = hosts.iter().filter_map(|h| h.back_at).max();
    let first_seen = hosts.iter().map(|h| h.last_seen).min().unwrap_or(since_at);
    let id = crate::model::notice_id(&outage_id, kind, count);
    let recovery = kind == NoticeKind::Recovery;
    let end = if recovery {
        last_back.unwrap_or(now)
    } else {
        now
    };
    let host = hosts
        .first()
        .map(|h| h.host.clone())
        .or_else(|| g.members.first().map(|m| m.host.clone()))
        .expect("a group notice is owed only by a group with members");
    Notice {
        last_seen: first_seen,
        missing_since: since_at,
        recovered_at: recovery.then_some(end),
        silent_for: since(end, first_seen),
        alarm_count: count,
        next_reminder: if recovery {
            None
        } else {
            policy.reminder_after(count).map(|w| add(now, w))
        },
        report: if recovery {
            summarise_reports(&hosts)
        } else {
            None
        },
        group: Some(g.group.clone()),
        hosts,
        ..Notice::new(id, outage_id, kind, host, now)
    }
}

/// What the agents reported from inside, one line per distinct account
/// with how many agents gave it: "8 agents: …; 2 agents: …". `None` when
/// no agent sent a report.
fn summarise_reports(hosts: &[GroupHost]) -> Option<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for h in hosts {
        let Some(r) = &h.report else { continue };
        let text = crate::describe_report(r, h.back_at).unwrap_or_else(|| r.clone());
        match counts.iter_mut().find(|(t, _)| *t == text) {
            Some((_, n)) => *n += 1,
            None => counts.push((text, 1)),
        }
    }
    if counts.is_empty() {
        return None;
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(t, n)| {
            let who = if n == 1 {
                "1 agent".to_owned()
            } else {
                format!("{n} agents")
            };
            format!("{who}: {t}")
        })
        .collect();
    Some(parts.join("\n"))
}

/// When the sweep must look at `g` next: the owed notice's next attempt or
/// lease end, the gathering's or the ending's end, the next reminder, or
/// the deadline of a member named on a missed beat ([`missed::next_check`]),
/// whichever comes first.
pub(crate) fn due_at(g: &GroupRecord, policy: &Policy) -> Option<Timestamp> {
    match (phase_due_at(g, policy), missed::next_check(g)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn phase_due_at(g: &GroupRecord, policy: &Policy) -> Option<Timestamp> {
    if let Some(ob) = g.outbox.first() {
        return Some(match &ob.lease {
            Some(l) => l.until.max(ob.next_attempt),
            None => ob.next_attempt,
        });
    }
    let phase_due = phase_due(g, policy);
    // A flapping group is looked at again when it would be stable.
    match flap::stable_at(g) {
        Some(at) => Some(phase_due.map_or(at, |d| d.min(at))),
        None => phase_due,
    }
}

fn phase_due(g: &GroupRecord, policy: &Policy) -> Option<Timestamp> {
    match g.phase {
        GroupPhase::Quiet => None,
        GroupPhase::Gathering { until } | GroupPhase::Ending { until } => Some(until),
        // The watcher sends no reminders: each site's group does.
        GroupPhase::Outage if g.is_watcher() => None,
        GroupPhase::Outage => g
            .last_alarm
            .zip(policy.reminder_after(g.alarm_count))
            .map(|(last, wait)| add(last, wait)),
    }
}

/// One monitor step on a group at `now` (its gathering already
/// [`resolve`]d): an ending whose wait is over finishes, a reminder comes
/// due, and the first owed notice is leased to `owner` if deliverable.
/// Returns the record to write (if changed or due) and the outbox leased.
pub fn step(
    g: &GroupRecord,
    now: Timestamp,
    policy: &Policy,
    owner: &str,
    lease: Duration,
) -> (Option<GroupRecord>, Option<Outbox>) {
    let mut next = g.clone();
    flap::end_if_stable(&mut next, now, policy);
    match next.phase {
        GroupPhase::Ending { until } if until <= now && next.outbox.is_empty() => {
            if next.is_watcher() {
                blind::finish(&mut next, now);
            } else {
                finish(&mut next, now, policy);
            }
        }
        GroupPhase::Outage if next.outbox.is_empty() && !next.is_watcher() => {
            let at = next
                .last_alarm
                .zip(policy.reminder_after(next.alarm_count))
                .map(|(last, wait)| add(last, wait));
            if at.is_some_and(|at| at <= now) {
                let n = group_notice(&mut next, NoticeKind::Reminder, now, policy);
                next.outbox.push(Outbox::new(n));
            }
        }
        _ => {}
    }
    let mut leased = None;
    if let Some(ob) = next.outbox.first_mut()
        && !ob.leased_at(now)
        && ob.next_attempt <= now
    {
        ob.lease = Some(Lease {
            owner: owner.to_owned(),
            until: add(now, lease),
        });
        leased = Some(ob.clone());
    }
    next.due_at = due_at(&next, policy);
    if next == *g && next.due_at.is_none_or(|d| d > now) {
        return (None, None);
    }
    (Some(next), leased)
}

/// Applies a delivery round of the group's first owed notice; once every
/// channel is done with it the notice takes effect (a group alarm or
/// reminder restarts the throttle) and the next owed one moves up. `None`
/// when `g` no longer owes that notice first.
pub fn settle(
    g: &GroupRecord,
    round: &Round<'_>,
    now: Timestamp,
    policy: &Policy,
    retry: &RetryPolicy,
) -> Option<GroupRecord> {
    let mut next = g.clone();
    let ob = next
        .outbox
        .first_mut()
        .filter(|o| o.notice.id == round.notice_id)?;
    if apply_round(ob, round, now, &retry.for_policy(policy)) {
        next.due_at = due_at(&next, policy);
        return Some(next);
    }
    let done = next.outbox.remove(0);
    if done.notice.kind == NoticeKind::Flapping && !done.delivered.is_empty() {
        flap::told(&mut next);
    }
    if matches!(done.notice.kind, NoticeKind::Alarm | NoticeKind::Reminder)
        && (done.notice.is_group() || done.notice.is_blind())
        && matches!(next.phase, GroupPhase::Outage | GroupPhase::Ending { .. })
    {
        next.alarm_count += 1;
        next.last_alarm = Some(now);
    }
    next.due_at = due_at(&next, policy);
    Some(next)
}

/// A host's leased notice held back by its group until `until`: the lease
/// released, the next attempt (and so `due_at`) at `until`. `None` when
/// `r` no longer owes that notice.
pub fn hold_host(r: &HostRecord, notice_id: &str, until: Timestamp) -> Option<HostRecord> {
    let mut next = r.clone();
    let ob = next
        .outbox
        .as_deref_mut()
        .filter(|o| o.notice.id == notice_id)?;
    ob.lease = None;
    ob.next_attempt = until;
    next.due_at = Some(until);
    Some(next)
}

/// A group's leased notice held back by the watcher's record until
/// `until` ([`blind::consult`]): the lease released, the next attempt at
/// `until`. `None` when `g` no longer owes that notice first.
pub fn hold_group(
    g: &GroupRecord,
    notice_id: &str,
    until: Timestamp,
    policy: &Policy,
) -> Option<GroupRecord> {
    let mut next = g.clone();
    let ob = next
        .outbox
        .first_mut()
        .filter(|o| o.notice.id == notice_id)?;
    ob.lease = None;
    ob.next_attempt = until;
    next.due_at = due_at(&next, policy);
    Some(next)
}

/// Every channel in `targets` took the notice (used to settle a host's
/// notice the group absorbed).
pub fn all_delivered(targets: &[String]) -> Vec<(String, ChannelOutcome)> {
    targets
        .iter()
        .map(|c| (c.clone(), ChannelOutcome::Delivered))
        .collect()
}

#[cfg(test)]
mod tests;
