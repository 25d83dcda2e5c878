//! The monitor's side of group outages: asking a host's group what to do
//! with its notice, and sweeping due group records (see
//! [`crate::group_outage`] for the transitions).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use super::{MAX_ROUNDS, Monitor, SweepReport};
use crate::decide::{ChannelOutcome, Context, Round};
use crate::group_outage::{self, GroupPhase, Verdict, blind};
use crate::{
    Clock, Downtime, GroupName, GroupPolicy, GroupRecord, HostRecord, Notice, NoticeKind, Outbox,
    Policy, Silence, Status, Store, StoreError, Timestamp,
};

/// The [`GroupPolicy`] of each group (its `min_hosts` and `wait`).
pub type Grouping = Arc<dyn Fn(&GroupName) -> GroupPolicy + Send + Sync>;

/// The record of the hosts without a group ([`group_outage::loose`]).
static UNGROUPED_GROUP: std::sync::LazyLock<GroupName> =
    std::sync::LazyLock::new(GroupName::ungrouped);

/// How many hosts can be silent by the end of a gathering of hosts
/// without a group, as last counted ([`Monitor::blind_within_reach`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reach {
    /// When it was counted.
    at: Timestamp,
    /// The count covers gatherings ending by then.
    horizon: Timestamp,
    /// Hosts due by `horizon` (at most one more than half of `total`).
    due: Option<u64>,
    /// All hosts.
    total: Option<u64>,
}

/// How long one [`Reach`] count serves: hosts registered since (their
/// first heartbeat creating them) are in neither count, and a fleet whose
/// hosts are still being created must not look smaller than it is for
/// long.
const REACH_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// How many due host records [`Monitor::expected_silences`] reads at most.
const PEER_PROBE: usize = 64;

/// How many due group records [`Monitor::another_site_gathering`] reads
/// at most: sites gathering at once, far more than a blind spot needs.
const GATHERING_PROBE: usize = 256;

/// A host's record just stepped by a sweep batch: the record written and
/// the notice it leased, waiting for its group's answer.
pub(super) struct Stepped {
    /// The record as written (the notice leased in it).
    pub(super) written: HostRecord,
    /// The notice leased.
    pub(super) outbox: Box<Outbox>,
}

/// One notice asked of its group, with its host's policy.
type Ask<'a> = (&'a Notice, &'a Policy);

/// A batch record's first step: what it did, the notice it leased (if
/// any) and the quiet return its group must hear of (if any).
type FirstStep = (SweepReport, Option<Stepped>, Option<(Notice, Policy)>);

/// What became of a host's leased notice once its group was asked.
pub(super) enum Routed {
    /// Deliver it to the channels.
    Deliver,
    /// Held until then; the host's record says so (nothing more to do now).
    Held(Timestamp),
    /// The group speaks for it: settle it as taken by every channel.
    Absorbed,
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// Sends a grouped host's alarms, reminders and all-clears through its
    /// group's record ([`crate::group_outage`]): one notice per outage of a
    /// group. Needs a store that [keeps groups](Store::keeps_groups);
    /// otherwise every host's notices go out on their own.
    pub fn with_grouping(mut self, grouping: Grouping) -> Self {
        self.grouping = Some(grouping);
        self
    }

    /// Gathers groups' outages that begin within one `wait` of each other
    /// into one "watcher may be blind" notice ([`crate::group_outage::blind`]):
    /// a group's first alarm is held up to one more `wait` to see whether
    /// another site goes dark with it. Needs grouping
    /// ([`with_grouping`](Self::with_grouping)) and a store that keeps
    /// groups.
    pub fn with_blind_detection(mut self, wait: std::time::Duration) -> Self {
        self.blind_wait = Some(wait);
        self
    }

    /// The group whose record decides `notice`'s fate, if grouping is on:
    /// the host's group, or for a host without one the record of the
    /// hosts without a group ([`GroupName::ungrouped`]) when the
    /// watcher-blind detection counts them ([`group_outage::loose`]).
    fn group_for<'a>(&'a self, notice: &'a Notice) -> Option<(&'a Grouping, &'a GroupName)> {
        let grouping = self.grouping.as_ref()?;
        // A job's reported failure is its own, never a site's silence.
        let job_failure = notice.job.as_deref().is_some_and(|j| j.failed);
        if job_failure || notice.is_group() || !self.store.keeps_groups() {
            return None;
        }
        let Some(group) = notice.group.as_ref() else {
            let loose = matches!(
                notice.kind,
                NoticeKind::Alarm | NoticeKind::Reminder | NoticeKind::Recovery
            );
            return (loose && self.counts_ungrouped()).then_some((grouping, &*UNGROUPED_GROUP));
        };
        // A member's own `flapping` and `stable` notices go through its
        // group too: a flapping site is one notice (group_outage::flap).
        let kinds = matches!(
            notice.kind,
            NoticeKind::Alarm
                | NoticeKind::Reminder
                | NoticeKind::Recovery
                | NoticeKind::Flapping
                | NoticeKind::Stable
        );
        kinds.then_some((grouping, group))
    }

    /// Whether hosts without a group take part in the watcher-blind
    /// detection: it is on and the store can count its hosts.
    fn counts_ungrouped(&self) -> bool {
        self.blind_wait.is_some() && self.store.counts_hosts()
    }

    /// How `group` gathers its outages: its configured [`GroupPolicy`];
    /// for the hosts without a group the blind detection's wait, two hosts
    /// to keep an outage going and no flapping of their own
    /// ([`group_outage::loose`]).
    pub(super) fn group_policy(&self, group: &GroupName) -> GroupPolicy {
        if group.is_watcher() {
            return GroupPolicy::default();
        }
        if group.is_ungrouped() {
            return group_outage::loose::policy(self.blind_wait.unwrap_or_default());
        }
        match self.grouping.as_ref() {
            Some(grouping) => grouping(group),
            None => GroupPolicy::default(),
        }
    }

    /// Decides one due batch of host records, asking each group **once**
    /// for all of the batch's notices to it: every record's first step is
    /// taken (and swapped in) at once, the notices leased are gathered by
    /// group and each group's record is consulted for all of them with
    /// one compare-and-swap ([`route_many`](Self::route_many)), then each
    /// record goes on on its own (held, absorbed and settled, or
    /// delivered). A site of n hosts going dark costs O(n) group work per
    /// phase instead of one swap of an ever larger record per host.
    ///
    /// Nothing is lost if the monitor dies between the steps: each host's
    /// notice stays leased in its record until it is settled or held, and
    /// is taken over when the lease ends, as for a single record.
    pub(super) async fn process_batch(
        &self,
        batch: Vec<HostRecord>,
        now: Timestamp,
        silences: &[Silence],
        downtime: Option<Downtime>,
    ) -> SweepReport {
        let concurrency = self.opts.concurrency.max(1);
        let mut report = SweepReport::default();
        // 1. Each record's first step.
        let stepped: Vec<FirstStep> = futures::stream::iter(batch)
            .map(|rec| self.first_step(rec, now, silences, downtime))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut pending = Vec::new();
        let mut returns = Vec::new();
        for (r, s, back) in stepped {
            report.add(r);
            pending.extend(s);
            returns.extend(back);
        }
        // 2. One consultation per group for all of its notices (and the
        // quiet returns it must count back).
        let policies: Vec<Policy> = pending
            .iter()
            .map(|s| self.policies.for_record(&s.written))
            .collect();
        let asks = pending
            .iter()
            .zip(&policies)
            .map(|(s, p)| (&s.outbox.notice, p))
            .chain(returns.iter().map(|(n, p)| (n, p)));
        let mut by_group: HashMap<&GroupName, Vec<(usize, Ask<'_>)>> = HashMap::new();
        for (i, ask) in asks.enumerate() {
            if let Some((_, group)) = self.group_for(ask.0) {
                by_group.entry(group).or_default().push((i, ask));
            }
        }
        let mut routed: Vec<Option<Result<Routed, StoreError>>> =
            pending.iter().map(|_| Some(Ok(Routed::Deliver))).collect();
        let mut group_report = SweepReport::default();
        for (group, asks) in by_group {
            let items: Vec<(&Notice, &Policy)> = asks.iter().map(|(_, a)| *a).collect();
            let answers = self.route_many(group, &items, &mut group_report).await;
            // A quiet return's answer is dropped: nothing is delivered
            // for it, the group only counted it back.
            let slots: Vec<usize> = asks.iter().map(|(i, _)| *i).collect();
            match answers {
                Ok(answers) => {
                    for (i, a) in slots.into_iter().zip(answers) {
                        if let Some(slot) = routed.get_mut(i) {
                            *slot = Some(Ok(a));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(store = %self.store, %group, error = %e, "could not ask group; its hosts' notices stay owed");
                    for i in slots {
                        if let Some(slot) = routed.get_mut(i) {
                            *slot = Some(Err(e.replicate()));
                        }
                    }
                }
            }
        }
        report.add(group_report);
        // 3. Each record on its own from there.
        let rest: Vec<SweepReport> = futures::stream::iter(pending.into_iter().zip(routed))
            .map(|(s, r)| self.go_on(s, r, now, silences, downtime))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in rest {
            report.add(r);
        }
        report
    }

    /// A batch record's first step ([`process_batch`](Self::process_batch)):
    /// the notice it leased, if any, and the quiet return its group must
    /// hear of, with the host's policy.
    async fn first_step(
        &self,
        rec: HostRecord,
        now: Timestamp,
        silences: &[Silence],
        downtime: Option<Downtime>,
    ) -> FirstStep {
        let mut report = SweepReport::default();
        let host = rec.host.clone();
        let (policy, blind) = self.context_of(&rec);
        let ctx = Context {
            silences,
            downtime,
            blind: blind.as_deref(),
        };
        let r = self
            .step_host(&host, Some(rec), now, &policy, &ctx, &mut report)
            .await;
        let (stepped, back) = match r {
            Ok(Some((written, outbox, back))) => {
                (outbox.map(|outbox| Stepped { written, outbox }), back)
            }
            Ok(None) => (None, None),
            Err(e) => {
                self.count_error(&host, Err(e), &mut report);
                (None, None)
            }
        };
        (report, stepped, back.map(|b| (b, policy)))
    }

    /// A batch record after its group answered: processed on its own from
    /// there (or its error counted).
    async fn go_on(
        &self,
        s: Stepped,
        routed: Option<Result<Routed, StoreError>>,
        now: Timestamp,
        silences: &[Silence],
        downtime: Option<Downtime>,
    ) -> SweepReport {
        match routed.unwrap_or(Ok(Routed::Deliver)) {
            Ok(r) => {
                let rec = s.written.clone();
                self.process(rec, now, silences, downtime, Some((s, r)))
                    .await
            }
            Err(e) => {
                let mut report = SweepReport::default();
                self.count_error(&s.written.host, Err(e), &mut report);
                report
            }
        }
    }

    /// Asks the host's group what to do with `notice` (leased in the host's
    /// record): [`route_many`](Self::route_many) with this one notice.
    pub(super) async fn route_to_group(
        &self,
        notice: &Notice,
        policy: &Policy,
        report: &mut SweepReport,
    ) -> Result<Routed, StoreError> {
        let Some((_, group)) = self.group_for(notice) else {
            return Ok(Routed::Deliver);
        };
        let mut routed = self.route_many(group, &[(notice, policy)], report).await?;
        Ok(routed.pop().unwrap_or(Routed::Deliver))
    }

    /// Asks `group`'s record what to do with each of `items` (notices of
    /// its hosts, leased in their records, each with its host's policy):
    /// one [`group_outage::consult_batch`] and one compare-and-swap on the
    /// group record for all of them, again after a lost swap; an expired
    /// gathering is resolved first. One answer per item, in order.
    async fn route_many(
        &self,
        group: &GroupName,
        items: &[(&Notice, &Policy)],
        report: &mut SweepReport,
    ) -> Result<Vec<Routed>, StoreError> {
        if self.grouping.is_none() {
            return Ok(items.iter().map(|_| Routed::Deliver).collect());
        }
        let gp = self.group_policy(group);
        // Read once, when a first alarm finds the hosts without a group
        // quiet (gathering or in an outage, the record knows its own).
        let mut look: Option<group_outage::loose::Lookahead> = None;
        let no_look = group_outage::loose::Lookahead::default();
        let mut out = Vec::with_capacity(items.len());
        // Rounds in a row that decided nothing (a lost swap, a gathering
        // to resolve): bounded like any compare-and-swap loop.
        let mut idle = 0;
        while out.len() < items.len() {
            if idle == MAX_ROUNDS {
                return Err(StoreError::Contended {
                    key: format!("group {group}"),
                    rounds: MAX_ROUNDS,
                });
            }
            let now = self.clock.now();
            let g = self
                .read_group(group)
                .await?
                .unwrap_or_else(|| GroupRecord::new(group.clone()));
            if group.is_ungrouped() && g.phase == GroupPhase::Quiet && look.is_none() {
                // The deadlines of the first alarms among the items.
                let firsts: Vec<Timestamp> = group_outage::loose::batch_alarms(items)
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect();
                let expected = self.expected_silences(items, &firsts, gp.wait).await?;
                let within = self
                    .blind_within_reach(&g, &firsts, &expected, gp.wait)
                    .await?;
                look = Some(group_outage::loose::Lookahead {
                    expected,
                    out_of_reach: !within,
                });
            }
            let (write, verdicts) = group_outage::consult_batch_with(
                &g,
                &items[out.len()..],
                now,
                &gp,
                look.as_ref().unwrap_or(&no_look),
            );
            if let Some(mut next) = write {
                next.version = g.version + 1;
                if !self.write_group(g.version, &next).await? {
                    report.conflicts += 1;
                    idle += 1;
                    continue;
                }
            }
            let resolve = verdicts.last() == Some(&Verdict::Resolve);
            let decided = verdicts.len() - usize::from(resolve);
            out.extend(verdicts[..decided].iter().map(|&v| routed_of(v)));
            idle = if decided > 0 { 0 } else { idle + 1 };
            if resolve {
                // Written first: a gathering this batch began already over
                // (a host's alarm later than its deadline plus the wait)
                // is resolved like any other, then its notice asked again.
                self.process_group(group.clone(), report).await?;
            }
        }
        Ok(out)
    }

    /// Hosts without a group, other than those asking, already silent
    /// (past their deadline or their expected beat, [`crate::beat`]) whose
    /// deadline lies within one `wait` of a first alarm among `items`
    /// (their deadlines `firsts`): read from the due
    /// index up to the latest such alarm's deadline plus the wait (at most
    /// [`PEER_PROBE`] records, O(due), only when a first alarm asks). A
    /// fleet going dark comes due host by host, a few milliseconds apart,
    /// each in a sweep of its own; these make the first of them part of a
    /// gathering instead of a lone silence ([`group_outage::loose`]).
    async fn expected_silences(
        &self,
        items: &[(&Notice, &Policy)],
        firsts: &[Timestamp],
        wait: std::time::Duration,
    ) -> Result<Vec<(crate::HostId, Timestamp)>, StoreError> {
        let Some(&last) = firsts.iter().max() else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let asking: std::collections::HashSet<&str> =
            items.iter().map(|(n, _)| n.host.as_str()).collect();
        let due = self
            .store
            .due(crate::model::add(last, wait), PEER_PROBE)
            .await?;
        let near = |t: Timestamp| {
            firsts
                .iter()
                .any(|&f| group_outage::loose::near(t, f, wait))
        };
        Ok(due
            .into_iter()
            .filter(|r| {
                r.group.is_none()
                    && matches!(r.status, Status::Up | Status::Missing)
                    && !asking.contains(r.host.as_str())
            })
            .filter_map(|r| {
                let policy = self.policies.for_record(&r);
                let deadline = r.deadline(&policy);
                // Silent already: past its deadline (missing, or still up
                // because no sweep has reached it yet: hosts of a fleet
                // going dark come due milliseconds apart), or past its
                // expected beat (crate::beat). A host still beating on
                // time whose deadline merely falls within the wait is no
                // peer.
                let silent = r.status == Status::Missing
                    || (r.status == Status::Up && now >= deadline)
                    || crate::beat::missed_beat(&r, now, &policy);
                (silent && near(deadline)).then_some((r.host, deadline))
            })
            .collect())
    }

    /// Whether first alarms with the deadlines `firsts`, asking the quiet
    /// record `g` of the hosts without a group, with the silent hosts
    /// `expected`, could begin a gathering that ends in a blind spot
    /// ([`group_outage::loose::blind_within_reach`]). Counts only when at
    /// least [`MIN_HOSTS`](group_outage::loose::MIN_HOSTS) are silent
    /// together (fewer begin no gathering): the store's host count and
    /// its hosts due by one wait past the end of such a gathering, at most
    /// one more than half of them ([`Store::count_due`]). One count serves
    /// for a second ([`REACH_TTL`]) every first alarm whose gathering would
    /// end by then, so a partial outage of a thousand hosts costs a count
    /// a second while it lasts, not one per host.
    async fn blind_within_reach(
        &self,
        g: &GroupRecord,
        firsts: &[Timestamp],
        expected: &[(crate::HostId, Timestamp)],
        wait: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let (Some(&first), Some(&last)) = (firsts.iter().min(), firsts.iter().max()) else {
            return Ok(true);
        };
        // A gathering begins no earlier than a wait before its first
        // alarm's deadline and names those remembered within a wait of
        // its beginning (loose::regather): older ones cannot count.
        let oldest = chrono::TimeDelta::from_std(wait.saturating_mul(2))
            .ok()
            .and_then(|d| first.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let remembered = g
            .members
            .iter()
            .filter(|m| m.fate == group_outage::Fate::Alone && m.missing_since >= oldest)
            .count();
        let known = firsts.len() + expected.len() + remembered;
        if known < group_outage::loose::MIN_HOSTS {
            return Ok(true);
        }
        let end = crate::model::add(last, wait);
        let now = self.clock.now();
        let cached = *self.reach.lock().unwrap_or_else(|e| e.into_inner());
        let reach = match cached {
            Some(r) if r.horizon >= end && now < crate::model::add(r.at, REACH_TTL) => r,
            _ => {
                let horizon = crate::model::add(end, wait);
                let total = self.store.host_count().await?;
                let due = match total {
                    Some(t) => self.store.count_due(horizon, t / 2 + 1).await?,
                    None => None,
                };
                let r = Reach {
                    at: now,
                    horizon,
                    due,
                    total,
                };
                *self.reach.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                r
            }
        };
        let within = group_outage::loose::blind_within_reach(
            reach.due.map(|d| d.saturating_add(known as u64)),
            reach.total,
        );
        if !within {
            tracing::debug!(
                silent = known,
                due = reach.due,
                total = reach.total,
                "hosts without a group silent together, too few to be half of all hosts by the wait's end: their alarms go out now"
            );
        }
        Ok(within)
    }

    /// Asks the watcher's record what to do with a group's leased notice
    /// (its first alarm or its all-clear): a compare-and-swap on that
    /// record, resolving an expired gathering first. Anything else, and
    /// everything when blind detection is off, is delivered.
    async fn route_to_watcher(
        &self,
        notice: &Notice,
        report: &mut SweepReport,
    ) -> Result<Routed, StoreError> {
        let Some(wait) = self.blind_wait else {
            return Ok(Routed::Deliver);
        };
        if !notice.is_group() || !matches!(notice.kind, NoticeKind::Alarm | NoticeKind::Recovery) {
            return Ok(Routed::Deliver);
        }
        let name = GroupName::watcher();
        for _ in 0..MAX_ROUNDS {
            let now = self.clock.now();
            let w = self
                .read_group(&name)
                .await?
                .unwrap_or_else(GroupRecord::watcher);
            // A site alone keeps the group wait's bound: its first alarm
            // is held for other sites only when another one is gathering.
            // More than half of the hosts without a group silent is a
            // blind spot alone: resolved at once then.
            let mut others = true;
            if w.phase == GroupPhase::Quiet && notice.kind == NoticeKind::Alarm {
                others = self.another_site_gathering(notice, now, wait).await?;
                let ungrouped = notice.group.as_ref().is_some_and(GroupName::is_ungrouped);
                if !others && !ungrouped {
                    return Ok(Routed::Deliver);
                }
            }
            let (write, verdict) = blind::consult_with(&w, notice, now, wait, others);
            if verdict == Verdict::Resolve {
                // Written first: a gathering this notice began already
                // over (the hosts without a group, or a site asking past
                // its hold) is resolved like any other, then asked again.
                if let Some(mut next) = write {
                    next.version = w.version + 1;
                    if !self.write_group(w.version, &next).await? {
                        report.conflicts += 1;
                        continue;
                    }
                }
                self.resolve_watcher(report).await?;
                continue;
            }
            if let Some(routed) = self.write_verdict(&w, write, verdict, report).await? {
                return Ok(routed);
            }
        }
        Err(StoreError::Contended {
            key: format!("group {name}"),
            rounds: MAX_ROUNDS,
        })
    }

    /// Writes what asking `read` decided (`write`, if the record changed)
    /// with one compare-and-swap on its version and turns the verdict into
    /// what becomes of the host's notice; `None` when another monitor
    /// wrote the record first (ask again). Shared by the group's and the
    /// watcher's record.
    async fn write_verdict(
        &self,
        read: &GroupRecord,
        write: Option<GroupRecord>,
        verdict: Verdict,
        report: &mut SweepReport,
    ) -> Result<Option<Routed>, StoreError> {
        if let Some(mut next) = write {
            next.version = read.version + 1;
            if !self.write_group(read.version, &next).await? {
                report.conflicts += 1;
                return Ok(None);
            }
        }
        Ok(Some(routed_of(verdict)))
    }

    /// Whether a group other than `notice`'s is gathering its outage now
    /// (or has just ended its gathering, its first alarm still owed) and
    /// went dark within one `wait` of it: the only case in which the
    /// first alarm of a site, asked while the watcher is quiet, may be
    /// part of a blind spot. A site whose outage began within one wait
    /// before this one's has asked the watcher already (the watcher is not
    /// quiet then); one that began within one wait after it has its group
    /// record gathering by now, due at its own first deadline plus `wait`,
    /// so one due query up to `now + wait` finds it: O(groups due), no
    /// scan. Without such a site the alarm goes out at once, no later than
    /// the group wait after its first host's deadline, as it would without
    /// blind detection.
    async fn another_site_gathering(
        &self,
        notice: &Notice,
        now: Timestamp,
        wait: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let Some(site) = blind::Site::of(notice) else {
            return Ok(false);
        };
        let t0 = site.first_silent_at;
        let near =
            |t: Timestamp| crate::model::since(t, t0) <= wait && crate::model::since(t0, t) <= wait;
        // Up to the lease too: a site whose first alarm another monitor
        // (or this one, concurrently) has leased to ask the watcher is due
        // only at its lease's end, and must be found all the same.
        let horizon = wait.max(self.opts.lease);
        let due = self
            .store
            .due_groups(crate::model::add(now, horizon), GATHERING_PROBE)
            .await?;
        Ok(due.iter().any(|g| {
            g.group != site.group
                && !g.is_watcher()
                && g.since.is_some_and(near)
                && match g.phase {
                    GroupPhase::Gathering { .. } => true,
                    // Its gathering just ended and its first alarm has not
                    // asked the watcher yet (another monitor holds it).
                    // Asked or about to ask: its first group alarm is
                    // still owed (queued, leased or held).
                    GroupPhase::Outage => {
                        g.alarm_count == 0
                            && g.outbox.first().is_some_and(|o| {
                                o.notice.kind == NoticeKind::Alarm && o.notice.is_group()
                            })
                    }
                    _ => false,
                }
        }))
    }

    /// Ends the watcher's gathering if its end came: reads each held
    /// site's group record (is its outage still on?) and the store's host
    /// count, then one compare-and-swap. Its blind notice, if owed, is
    /// delivered when the record is next processed (it is due at once).
    async fn resolve_watcher(&self, report: &mut SweepReport) -> Result<(), StoreError> {
        let name = GroupName::watcher();
        let now = self.clock.now();
        let Some(w) = self.read_group(&name).await? else {
            return Ok(());
        };
        let GroupPhase::Gathering { until } = w.phase else {
            return Ok(());
        };
        if until > now {
            return Ok(());
        }
        let mut dark = HashMap::new();
        for s in w
            .sites
            .iter()
            .filter(|s| s.fate == group_outage::Fate::Held)
        {
            let on = self.read_group(&s.group).await?.is_some_and(|g| {
                g.outage_id.as_deref() == Some(s.outage_id.as_str())
                    && matches!(g.phase, GroupPhase::Outage | GroupPhase::Ending { .. })
            });
            dark.insert(s.group.clone(), on);
        }
        let total = self.store.host_count().await?;
        if let Some(mut next) = blind::resolve(&w, now, total, |s| {
            dark.get(&s.group).copied().unwrap_or(false)
        }) {
            next.version = w.version + 1;
            if !self.write_group(w.version, &next).await? {
                report.conflicts += 1;
            }
        }
        Ok(())
    }

    /// Ends the gathering of the hosts without a group
    /// ([`group_outage::loose`]): reads each host held or remembered
    /// within the wait (is it still silent?), asks the store's host count
    /// only when at least [`loose::MIN_HOSTS`](group_outage::loose::MIN_HOSTS)
    /// are, then one compare-and-swap.
    async fn resolve_ungrouped(
        &self,
        read: &GroupRecord,
        now: Timestamp,
        gp: &GroupPolicy,
        policy: &Policy,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let g = group_outage::loose::regather(read, gp.wait);
        let silent = self.held_still_silent(&g).await?;
        let n = silent.values().filter(|s| **s).count();
        let total = if n >= group_outage::loose::MIN_HOSTS {
            self.store.host_count().await?
        } else {
            None
        };
        let still =
            |m: &group_outage::Member| silent.get(m.host.as_str()).copied().unwrap_or(false);
        if let Some(mut w) = group_outage::loose::resolve(&g, now, gp, policy, total, still) {
            if w.phase == GroupPhase::Outage {
                tracing::info!(
                    silent = n,
                    total,
                    "more than half of all hosts silent within one wait: hosts without a group are one outage"
                );
            }
            w.version = read.version + 1;
            if !self.write_group(read.version, &w).await? {
                report.conflicts += 1;
            }
        }
        Ok(())
    }

    /// Holds `host`'s leased notice `id` until `until` in its record.
    pub(super) async fn hold_host(
        &self,
        written: HostRecord,
        id: &str,
        until: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let host = written.host.clone();
        self.swap(&host, Some(written), &mut report.conflicts, |r| {
            group_outage::hold_host(r, id, until).map(|n| (n, ()))
        })
        .await?;
        Ok(())
    }

    /// Every channel took it: what settling an absorbed notice applies.
    pub(super) fn absorbed(targets: &[String]) -> Vec<(String, ChannelOutcome)> {
        group_outage::all_delivered(targets)
    }

    /// Decides and delivers every due group record (after the hosts).
    pub(super) async fn sweep_groups(
        &self,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        if self.grouping.is_none() || !self.store.keeps_groups() {
            return Ok(());
        }
        let due = self.store.due_groups(now, self.opts.batch).await?;
        for g in due {
            if let Err(e) = self.process_group(g.group.clone(), report).await {
                tracing::warn!(store = %self.store, group = %g.group, error = %e, "could not decide group; it stays due");
                report.errors += 1;
            }
        }
        Ok(())
    }

    /// The policy a group's reminders follow: its first member's.
    fn group_host_policy(&self, g: &GroupRecord) -> Policy {
        g.members.first().map_or_else(
            || self.policies.default.clone(),
            |m| self.policies.for_host(&m.host),
        )
    }

    /// Steps one group until it has nothing more to do now: an expired
    /// gathering resolved (reading its held hosts), a reminder or
    /// all-clear come due, each owed notice leased, delivered and settled.
    pub(super) async fn process_group(
        &self,
        group: GroupName,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        if self.grouping.is_none() {
            return Ok(());
        }
        let gp = self.group_policy(&group);
        let (owner, lease) = (self.opts.owner.as_str(), self.opts.lease);
        for _ in 0..MAX_ROUNDS * 4 {
            let now = self.clock.now();
            let Some(g) = self.read_group(&group).await? else {
                return Ok(());
            };
            let policy = self.group_host_policy(&g);
            if g.is_watcher()
                && let GroupPhase::Gathering { until } = g.phase
                && until <= now
            {
                self.resolve_watcher(report).await?;
                continue;
            }
            if g.group.is_ungrouped()
                && let GroupPhase::Gathering { until } = g.phase
                && until <= now
            {
                self.resolve_ungrouped(&g, now, &gp, &policy, report)
                    .await?;
                continue;
            }
            if let GroupPhase::Gathering { until } = g.phase
                && until <= now
            {
                let silent = self.held_still_silent(&g).await?;
                // Hosts past their expected beat count too (just read).
                let g = self.with_evidence(&g, now).await?;
                let resolved = group_outage::resolve(&g, now, &gp, &policy, |m| {
                    m.missed_beat || silent.get(m.host.as_str()).copied().unwrap_or(false)
                });
                let resolved = match resolved {
                    Some(w) if w.phase == GroupPhase::Outage => {
                        Some(self.name_alone_still_silent(w, now, &policy).await?)
                    }
                    other => other,
                };
                if let Some(mut w) = resolved {
                    w.version = g.version + 1;
                    if !self.write_group(g.version, &w).await? {
                        report.conflicts += 1;
                    }
                }
                continue;
            }
            if self.check_missed(&g, now, &gp, &policy, report).await? {
                continue;
            }
            if let Some(mut w) = self.depart_gone(&g, now, &gp, &policy).await? {
                w.version = g.version + 1;
                if !self.write_group(g.version, &w).await? {
                    report.conflicts += 1;
                }
                continue;
            }
            if group_outage::flap::needs_prune(&g, now) {
                let pruned = self.prune_flappers(&g, now, &policy).await?;
                if let Some(mut w) = pruned {
                    w.version = g.version + 1;
                    if !self.write_group(g.version, &w).await? {
                        report.conflicts += 1;
                    }
                    continue;
                }
            }
            let (write, leased) = group_outage::step(&g, now, &policy, owner, lease);
            let Some(mut w) = write else {
                return Ok(());
            };
            w.version = g.version + 1;
            if !self.write_group(g.version, &w).await? {
                report.conflicts += 1;
                continue;
            }
            let Some(ob) = leased else {
                if w.due_at.is_none_or(|d| d > now) {
                    return Ok(());
                }
                continue;
            };
            let targets = self.routes.channels_for(&ob.notice, &self.names);
            let n = &ob.notice;
            // Only a notice no channel has seen yet may be held or absorbed.
            let fresh = ob.delivered.is_empty() && ob.failed.is_empty() && ob.attempts == 0;
            let routed = if fresh {
                self.route_to_watcher(n, report).await?
            } else {
                Routed::Deliver
            };
            let results = match routed {
                Routed::Held(until) => {
                    let at = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    tracing::info!(group = %group, kind = %n.kind, id = %n.id, hosts = n.hosts.len(), until = %at, "group notice held until {at}: are other sites dark too?");
                    self.hold_group(&group, w, &n.id, until, &policy, report)
                        .await?;
                    continue;
                }
                Routed::Absorbed => {
                    tracing::info!(group = %group, kind = %n.kind, id = %n.id, hosts = n.hosts.len(), "group notice absorbed by the watcher-blind notice");
                    Self::absorbed(&targets)
                }
                Routed::Deliver => {
                    match &n.blind_spot {
                        Some(b) => {
                            tracing::info!(kind = %n.kind, id = %n.id, sites = b.sites.len(), hosts = b.hosts_silent, "watcher-blind notice owed")
                        }
                        None => {
                            tracing::info!(group = %group, kind = %n.kind, id = %n.id, hosts = n.hosts.len(), "group notice owed")
                        }
                    }
                    self.deliver_round(n, &targets, &ob.delivered, &ob.failed)
                        .await
                }
            };
            report.failed_deliveries += results
                .iter()
                .filter(|(_, o)| *o != ChannelOutcome::Delivered)
                .count();
            let round = Round {
                notice_id: &ob.notice.id,
                results: &results,
                channels: &targets,
            };
            let mut current = Some(w);
            for _ in 0..MAX_ROUNDS {
                let now = self.clock.now();
                let g = match current.take() {
                    Some(g) => g,
                    None => match self.read_group(&group).await? {
                        Some(g) => g,
                        None => return Ok(()),
                    },
                };
                let Some(mut s) = group_outage::settle(&g, &round, now, &policy, &self.opts.retry)
                else {
                    break;
                };
                s.version = g.version + 1;
                if self.write_group(g.version, &s).await? {
                    if s.outbox.first().is_none_or(|o| o.notice.id != ob.notice.id) {
                        report.completed += 1;
                    }
                    break;
                }
                report.conflicts += 1;
            }
        }
        Ok(())
    }

    /// Holds the group's leased notice `id` until `until` in its record
    /// (compare-and-swap, re-read after a lost swap).
    async fn hold_group(
        &self,
        group: &GroupName,
        written: GroupRecord,
        id: &str,
        until: Timestamp,
        policy: &Policy,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let mut current = Some(written);
        for _ in 0..MAX_ROUNDS {
            let g = match current.take() {
                Some(g) => g,
                None => match self.read_group(group).await? {
                    Some(g) => g,
                    None => return Ok(()),
                },
            };
            let Some(mut next) = group_outage::hold_group(&g, id, until, policy) else {
                return Ok(());
            };
            next.version = g.version + 1;
            if self.write_group(g.version, &next).await? {
                return Ok(());
            }
            report.conflicts += 1;
        }
        Ok(())
    }

    /// A flapping group's stable time came while some members were
    /// flapping on their own: reads each of them once (O(flappers), once
    /// per stable time, never per sweep) and keeps those still in their
    /// own episode, waiting until the latest would be stable (at least
    /// one more group wait, by which a host due now has asked the group).
    async fn prune_flappers(
        &self,
        g: &GroupRecord,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let gp = self.group_policy(&g.group);
        let mut still = HashMap::new();
        for h in g.flap.iter().flat_map(|f| f.flappers.iter()) {
            let at = self.store.get(h).await?.and_then(|r| {
                let p = self.policies.for_record(&r);
                let owes_stable = r
                    .outbox
                    .as_ref()
                    .is_some_and(|o| o.notice.kind == NoticeKind::Stable);
                // Never sooner than one wait from now: by then a host due
                // now has been decided (and its notice has asked).
                let soon = crate::model::add(now, gp.wait);
                if owes_stable {
                    Some(soon)
                } else {
                    crate::flap::stable_at(&r, &p.flapping)
                        .filter(|_| r.status != Status::Paused)
                        .map(|t| t.max(soon))
                }
            });
            still.insert(h.clone(), at);
        }
        Ok(group_outage::flap::prune(
            g,
            |h| still.get(h).copied().flatten(),
            policy,
        ))
    }

    /// For each held member of `g`: whether its host is still silent in
    /// the same outage (read from its record; one read per held host,
    /// [`concurrency`](super::MonitorOptions::concurrency) at a time).
    /// Before a group in an outage owes its next notice: its silent
    /// members an operator removed, paused or silenced since leave the
    /// outage ([`group_outage::depart`]), so its reminders stop naming
    /// them and it can end. `None` when nobody left (or nothing is due).
    async fn depart_gone(
        &self,
        g: &GroupRecord,
        now: Timestamp,
        gp: &GroupPolicy,
        policy: &Policy,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let in_outage = matches!(g.phase, GroupPhase::Outage | GroupPhase::Ending { .. });
        if !in_outage || g.due_at.is_none_or(|d| d > now) || g.is_watcher() {
            return Ok(None);
        }
        let silent: Vec<crate::HostId> = g
            .members
            .iter()
            .filter(|m| m.fate == group_outage::Fate::Outage && m.back_at.is_none())
            .map(|m| m.host.clone())
            .collect();
        if silent.is_empty() {
            return Ok(None);
        }
        let silences = self.store.silences().await?;
        let ctx = crate::decide::Context {
            silences: &silences,
            ..crate::decide::Context::default()
        };
        let records: Vec<Result<(crate::HostId, Option<HostRecord>), StoreError>> =
            futures::stream::iter(silent)
                .map(|h| async move { self.store.get(&h).await.map(|r| (h, r)) })
                .buffer_unordered(self.opts.concurrency.max(1))
                .collect()
                .await;
        let mut gone = Vec::new();
        for r in records {
            let (host, rec) = r?;
            let left = match rec {
                None => true,
                Some(r) => r.status == Status::Paused || ctx.silence_end(&r.host, now).is_some(),
            };
            if left {
                gone.push(host);
            }
        }
        if !gone.is_empty() {
            tracing::info!(group = %g.group, hosts = ?gone.iter().map(crate::HostId::as_str).collect::<Vec<_>>(), "removed, paused or silenced: they leave the site's outage");
        }
        Ok(group_outage::depart(g, &gone, now, gp, policy))
    }

    async fn held_still_silent(
        &self,
        g: &GroupRecord,
    ) -> Result<HashMap<String, bool>, StoreError> {
        let held: Vec<(crate::HostId, Timestamp)> = g
            .members
            .iter()
            .filter(|m| m.fate == group_outage::Fate::Held)
            .map(|m| (m.host.clone(), m.missing_since))
            .collect();
        let answers: Vec<Result<(String, bool), StoreError>> = futures::stream::iter(held)
            .map(|(host, since)| self.held_silent(host, since))
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await;
        answers.into_iter().collect()
    }

    /// A site's outage just decided: its members that alarmed alone before
    /// it and are still silent join it, so its alarm names every silent
    /// host of the site ("3 hosts silent", not 2 beside one told earlier).
    /// They do not count toward `min_hosts` (the outage is decided
    /// already), and they owe no second alarm when the site is back
    /// (`alarmed_alone`); their reminders are the site's meanwhile.
    async fn name_alone_still_silent(
        &self,
        mut w: GroupRecord,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<GroupRecord, StoreError> {
        let alone: Vec<(crate::HostId, Timestamp)> = w
            .members
            .iter()
            .filter(|m| m.fate == group_outage::Fate::Alone && m.back_at.is_none())
            .map(|m| (m.host.clone(), m.missing_since))
            .collect();
        if alone.is_empty() {
            return Ok(w);
        }
        let answers: Vec<Result<(String, bool), StoreError>> = futures::stream::iter(alone)
            .map(|(host, since)| self.held_silent(host, since))
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await;
        let still: HashMap<String, bool> = answers.into_iter().collect::<Result<_, _>>()?;
        w.join_alone(
            |h| still.get(h.as_str()).copied().unwrap_or(false),
            now,
            policy,
        );
        Ok(w)
    }

    /// Whether held `host` (missing since `since`) is still silent in the
    /// same outage, and still owes its alarm (a silence that began
    /// meanwhile dropped it).
    async fn held_silent(
        &self,
        host: crate::HostId,
        since: Timestamp,
    ) -> Result<(String, bool), StoreError> {
        let silent = self.store.get(&host).await?.is_some_and(|r| {
            r.missing_since == Some(since)
                && match r.status {
                    Status::Missing => r.outbox.is_some(),
                    Status::Alarmed => true,
                    Status::Up | Status::Paused => false,
                }
        });
        Ok((host.as_str().to_owned(), silent))
    }
}

/// A grouped host that came back before anyone was told of its silence
/// (`before`: its record missing with its own alarm owed and untold;
/// `after`: up, the alarm dropped) may still be counted silent by its
/// group: a group alarm names every held host, and a held host's own
/// alarm is absorbed only when the sweep next reaches it. So the group
/// hears of the return as of an all-clear: this notice, which is asked
/// like a host's all-clear and never delivered. Without it a site whose
/// hosts came back before the sweep absorbed their alarms kept those
/// hosts silent forever and never sent its all-clear.
pub(super) fn returned_untold(before: &HostRecord, after: &HostRecord) -> Option<Notice> {
    let owed = before.outbox.as_deref()?;
    // Grouped or not: the monitor asks a group only if it routes the host
    // to one (a host without a group: group_outage::loose).
    let back = before.status == Status::Missing
        && owed.notice.kind == NoticeKind::Alarm
        && after.status == Status::Up
        && after.outbox.is_none();
    back.then(|| {
        let mut n = owed.notice.clone();
        n.kind = NoticeKind::Recovery;
        n.recovered_at = Some(after.last_seen);
        n
    })
}

/// What a verdict makes of the host's (or group's) leased notice.
fn routed_of(v: Verdict) -> Routed {
    match v {
        Verdict::Hold(until) => Routed::Held(until),
        Verdict::Absorbed => Routed::Absorbed,
        Verdict::Alone | Verdict::Resolve => Routed::Deliver,
    }
}
