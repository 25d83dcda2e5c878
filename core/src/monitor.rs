//! The loop body: take what is due, decide, compare-and-swap, deliver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::decide::{self, ChannelOutcome, Context, RetryPolicy};
use crate::health::{Announcement, HealthOptions, HealthReport, WatcherHealth, watcher_notice};
use crate::model::add;
use crate::route::Routes;
use crate::{
    Clock, Downtime, GroupName, Heartbeat, HeartbeatOutcome, HostId, HostRecord, Notice,
    NoticeKind, Notifier, NotifyError, Outbox, Policy, PolicySet, Silence, Status, Store,
    StoreError, Timestamp,
};

mod group_reads;
mod groups;
mod missed;
pub use groups::Grouping;
use groups::Stepped;

/// How many times one record is re-read and decided again after losing a
/// compare-and-swap before the sweep leaves it for the next one.
const MAX_ROUNDS: usize = 16;

/// Tells why the watcher may be blind to a host (e.g. its heartbeats are
/// being rejected); the text goes into that host's notices.
pub type BlindProbe = Arc<dyn Fn(&HostId) -> Option<String> + Send + Sync>;

/// Tuning for a [`Monitor`].
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// This monitor's name in leases; unique per process. Default: random.
    pub owner: String,
    /// How long a monitor owns a notice it is delivering before another may
    /// take it over. Longer than any channel's own timeout. Default 2 min.
    pub lease: Duration,
    /// Records read from the due index per query. Default 512.
    pub batch: usize,
    /// Records decided and delivered at once. Default 32.
    pub concurrency: usize,
    /// Backoff for channels that failed transiently.
    pub retry: RetryPolicy,
    /// How often the monitor marks itself alive in the store (for the
    /// startup grace). Default: a quarter of the shortest timeout, at most 30 s.
    pub mark_interval: Option<Duration>,
    /// A stretch longer than this with no monitor marking itself alive
    /// counts as downtime, and hosts whose silence overlaps it get the
    /// overlap back (the startup grace of [`decide`]). Default: the
    /// shortest timeout. Two stretches count however short they are: the
    /// one before a process's first mark (see
    /// [`ingest_in_process`](Self::ingest_in_process)) and one during which
    /// the store failed (heartbeats were refused).
    pub downtime_gap: Option<Duration>,
    /// The heartbeat ingest runs in this process (the long-running
    /// binaries): while this process was not running, nobody listened, so
    /// the gap before its first mark is downtime however short it was (a
    /// restart or upgrade swallows the heartbeats sent during it). Set it
    /// to `false` where the ingest is always on and only the sweep is
    /// scheduled (a Lambda function): a pause between scheduled sweeps is
    /// not a pause in listening. Default true.
    pub ingest_in_process: bool,
    /// Create unknown hosts on their first heartbeat. Default true.
    pub auto_register: bool,
    /// When the watcher tells the team about its own troubles (a store
    /// that keeps failing, a channel that refuses notices).
    pub health: HealthOptions,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        let n: u64 = rand::rng().random();
        Self {
            owner: format!("monitor-{n:016x}"),
            lease: Duration::from_secs(120),
            batch: 512,
            concurrency: 32,
            retry: RetryPolicy::default(),
            mark_interval: None,
            downtime_gap: None,
            ingest_in_process: true,
            auto_register: true,
            health: HealthOptions::default(),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct SweepReport {
    /// Records decided.
    pub evaluated: usize,
    /// Notices that reached every channel (or were refused for good).
    pub completed: usize,
    /// Channel deliveries that failed and will be retried or were refused.
    pub failed_deliveries: usize,
    /// Compare-and-swaps lost to a heartbeat or another monitor.
    pub conflicts: usize,
    /// Records left for a later sweep after a store error.
    pub errors: usize,
    /// Channel deliveries refused for good (a channel's permanent error).
    pub refused: usize,
    /// Records the store returned as due (the due set's size, summed over
    /// the sweep's batches).
    pub due: usize,
}

impl SweepReport {
    fn add(&mut self, o: SweepReport) {
        self.evaluated += o.evaluated;
        self.completed += o.completed;
        self.failed_deliveries += o.failed_deliveries;
        self.conflicts += o.conflicts;
        self.errors += o.errors;
        self.refused += o.refused;
        self.due += o.due;
    }
}

/// Two channels share a name (it names the name). Channel names are the
/// user's and key each channel's progress in the outbox, so they must be
/// unique.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two notification channels are named {0:?}; channel names must be unique")]
pub struct DuplicateChannel(pub String);

/// Drives the pure state machine against a [`Store`] and delivers through
/// [`Notifier`]s.
///
/// Several monitors may share one store: every transition is a
/// compare-and-swap, and a notice is delivered by the monitor that won the
/// swap which made it owed, under a lease.
pub struct Monitor<S: ?Sized, C> {
    store: Arc<S>,
    channels: Vec<Arc<dyn Notifier>>,
    names: Vec<String>,
    routes: Routes,
    clock: C,
    policies: PolicySet,
    opts: MonitorOptions,
    state: Mutex<MarkState>,
    blind: Option<BlindProbe>,
    grouping: Option<Grouping>,
    /// The watcher-blind detection's wait, when it is on
    /// ([`with_blind_detection`](Self::with_blind_detection)).
    blind_wait: Option<Duration>,
    health: Mutex<HealthState>,
    /// Set while the store is in trouble, so the heartbeat path only takes
    /// the health lock when there is something to clear.
    store_troubled: AtomicBool,
    /// A store call failed since the last successful mark: the next mark
    /// takes the whole gap as downtime (heartbeats may have been refused).
    fault_since_mark: AtomicBool,
    /// [`mark_stopping`](Self::mark_stopping) has marked the stop: no mark
    /// may move the store's last run past it (the sweep finishing its
    /// deliveries no longer listens).
    stop_marked: AtomicBool,
    /// What channels did with a notice whose round could not be settled
    /// (the store failed as it was written), by notice id: the next round
    /// of that notice takes these answers instead of delivering again.
    unsettled: Arc<Mutex<Unsettled>>,
    /// Deliveries still running after the sweep stopped waiting for them
    /// ([`DELIVERY_WAIT`]), by notice id and channel: not started again
    /// until they end, and their answers go to `unsettled`.
    in_flight: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
    /// The group records last read or written ([`group_reads`]).
    group_reads: group_reads::GroupReads,
    /// The last count of how many hosts can be silent by the end of a
    /// gathering of hosts without a group ([`groups::Reach`]).
    reach: Mutex<Option<groups::Reach>>,
}

#[derive(Default)]
struct HealthState {
    health: WatcherHealth,
    /// Watcher notices not yet offered to the channels (bounded).
    pending: Vec<Announcement>,
    /// Watcher notices no channel took yet, each with its failed rounds
    /// and when to offer it again (the host notices' backoff).
    retrying: Vec<(Announcement, u32, Timestamp)>,
}

/// At most this many watcher notices wait for a channel to take them.
const MAX_PENDING_ANNOUNCEMENTS: usize = 32;

#[derive(Default)]
struct MarkState {
    marked_at: Option<Timestamp>,
    downtime: Option<Downtime>,
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// A monitor over `store`, delivering to `channels` (every notice to
    /// every channel until [`with_routes`](Self::with_routes)).
    ///
    /// Fails if two channels share a name: the outbox records progress by
    /// name, so two such channels could not be told apart.
    pub fn new(
        store: Arc<S>,
        channels: Vec<Arc<dyn Notifier>>,
        clock: C,
        policies: PolicySet,
        opts: MonitorOptions,
    ) -> Result<Self, DuplicateChannel> {
        let names: Vec<String> = channels.iter().map(|c| c.name().to_owned()).collect();
        if let Some(n) = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].contains(n).then_some(n))
        {
            return Err(DuplicateChannel(n.clone()));
        }
        Ok(Self {
            store,
            channels,
            names,
            routes: Routes::default(),
            clock,
            policies,
            state: Mutex::default(),
            health: Mutex::new(HealthState {
                health: WatcherHealth::new(opts.health),
                pending: Vec::new(),
                retrying: Vec::new(),
            }),
            store_troubled: AtomicBool::new(false),
            fault_since_mark: AtomicBool::new(false),
            stop_marked: AtomicBool::new(false),
            unsettled: Arc::default(),
            in_flight: Arc::default(),
            group_reads: group_reads::GroupReads::default(),
            reach: Mutex::new(None),
            opts,
            blind: None,
            grouping: None,
            blind_wait: None,
        })
    }

    /// Sends each host's notice only to the channels `routes` pick for it
    /// (see [`Routes::sends_to`]); the outbox tracks those channels alone,
    /// so a failing one is retried by itself.
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Adds a probe that says why the watcher may be blind to a host.
    pub fn with_blind_probe(mut self, probe: BlindProbe) -> Self {
        self.blind = Some(probe);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The policies.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The options.
    pub fn options(&self) -> &MonitorOptions {
        &self.opts
    }

    /// The options, to adjust before the first sweep.
    pub fn options_mut(&mut self) -> &mut MonitorOptions {
        &mut self.opts
    }

    /// The channels' names.
    pub fn channel_names(&self) -> &[String] {
        &self.names
    }

    fn mark_interval(&self) -> Duration {
        self.opts.mark_interval.unwrap_or_else(|| {
            (self.policies.shortest_timeout() / 4)
                .clamp(Duration::from_millis(10), Duration::from_secs(30))
        })
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, MarkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a heartbeat: one store write. The `due_at` for an up host is
    /// `hb.at` plus the host's timeout. A store error counts toward the
    /// watcher's store trouble (announced by the sweep once it lasts).
    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatOutcome, StoreError> {
        self.heartbeat_with(hb, self.opts.auto_register).await
    }

    /// [`heartbeat`](Self::heartbeat), creating an unknown host only when
    /// `create` is true (whatever [`MonitorOptions::auto_register`] says):
    /// with `false`, an unknown host is [`HeartbeatOutcome::Unknown`] and
    /// nothing is written, so a caller can apply its own limits before it
    /// creates a host.
    pub async fn heartbeat_with(
        &self,
        hb: &Heartbeat,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let due_if_up = self.policies.deadline_for(&hb.host, hb.at);
        let r = self.store.record_heartbeat(hb, due_if_up, create).await;
        match &r {
            Err(e) => self.store_result(Err(e)),
            Ok(_) if self.store_troubled.load(Ordering::Relaxed) => self.store_result(Ok(())),
            Ok(_) => {}
        }
        r
    }

    /// Notes a store call's result in the watcher's health; an all-clear or
    /// a notice that became due waits for the next flush.
    pub(crate) fn store_result(&self, r: Result<(), &StoreError>) {
        let now = self.clock.now();
        let mut h = self.lock_health();
        let a = match r {
            Ok(()) => h.health.store_ok(now),
            Err(e) => {
                self.fault_since_mark.store(true, Ordering::Relaxed);
                h.health.store_failed(&e.to_string(), now)
            }
        };
        self.store_troubled
            .store(h.health.store_troubled(), Ordering::Relaxed);
        h.pending.extend(a);
    }

    /// Queues a notice about the watcher itself (built with
    /// [`watcher_notice`](crate::health::watcher_notice)); the next sweep
    /// delivers it to every channel but `except`, like the watcher's other
    /// notices (at most 32 wait, the oldest dropped).
    /// Throttling is the caller's.
    pub fn announce(&self, a: Announcement) {
        let mut h = self.lock_health();
        h.pending.push(a);
        let excess = h.pending.len().saturating_sub(MAX_PENDING_ANNOUNCEMENTS);
        h.pending.drain(..excess);
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is wrong with the watcher now: a failing store, refusing
    /// channels. Empty when all is well.
    pub fn health(&self) -> HealthReport {
        self.lock_health().health.report()
    }

    /// When a runner should call [`sweep`](Self::sweep) next: the earliest
    /// `due_at`, or the next self-mark, whichever comes first.
    pub async fn next_wakeup(&self) -> Result<Timestamp, StoreError> {
        let mark_due = {
            let st = self.lock_state();
            st.marked_at
                .map_or_else(|| self.clock.now(), |m| add(m, self.mark_interval()))
        };
        let groups = if self.grouping.is_some() && self.store.keeps_groups() {
            self.store.next_group_due().await?
        } else {
            None
        };
        Ok(self
            .store
            .next_due()
            .await?
            .into_iter()
            .chain(groups)
            .fold(mark_due, Timestamp::min))
    }

    /// Decides every due record, writes the decisions back and delivers the
    /// notices they owe; then tells the team about the watcher's own
    /// troubles (a store failing for longer than the bound, a channel
    /// refusing notices), through the channels that still work.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let r = self.sweep_store().await;
        match &r {
            Ok(rep) if rep.errors == 0 => self.store_result(Ok(())),
            // Each record's error was noted where it happened.
            Ok(_) => {}
            Err(e) => self.store_result(Err(e)),
        }
        self.flush_announcements().await;
        r
    }

    /// Delivers the watcher notices that are owed, each to every channel
    /// but the one it is about. One no channel took is kept for the next
    /// flush (at most [`MAX_PENDING_ANNOUNCEMENTS`], oldest dropped).
    async fn flush_announcements(&self) {
        let now = self.clock.now();
        let due: Vec<(Announcement, u32)> = {
            let mut h = self.lock_health();
            let notice = h.health.due_store_notice(now);
            h.pending.extend(notice);
            let mut due: Vec<(Announcement, u32)> = std::mem::take(&mut h.pending)
                .into_iter()
                .map(|a| (a, 0))
                .collect();
            let (now_due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut h.retrying)
                .into_iter()
                .partition(|(_, _, at)| *at <= now);
            h.retrying = later;
            due.extend(now_due.into_iter().map(|(a, n, _)| (a, n)));
            due
        };
        let mut kept = Vec::new();
        for (a, attempts) in due {
            let results = self
                .send_to(&a.notice, |c| a.except.as_deref() != Some(c))
                .await;
            if !results.iter().any(|(_, r)| r.is_ok()) && !results.is_empty() {
                // Offered again after the backoff of host notices, not at
                // every sweep: a relay over its quota is not hammered.
                let attempts = attempts + 1;
                let next = crate::add(self.clock.now(), self.opts.retry.backoff(attempts));
                kept.push((a, attempts, next));
            }
        }
        if !kept.is_empty() {
            let mut h = self.lock_health();
            kept.append(&mut h.retrying);
            let excess = kept.len().saturating_sub(MAX_PENDING_ANNOUNCEMENTS);
            for (a, _, _) in kept.drain(..excess) {
                tracing::error!(id = %a.notice.id, "no channel took this watcher notice; dropped: {}", a.notice.message.as_deref().unwrap_or(""));
            }
            h.retrying = kept;
        }
    }

    /// Sends `notice` to each channel `to` accepts, all at once, and logs
    /// what each did. Used for notices that live outside any host record.
    async fn send_to(
        &self,
        notice: &Notice,
        to: impl Fn(&str) -> bool,
    ) -> Vec<(String, Result<(), NotifyError>)> {
        let chosen = self.channels.iter().filter(|c| to(c.name()));
        futures::future::join_all(chosen.map(|c| async move {
            let r = c.deliver(notice).await;
            match &r {
                Ok(()) => {
                    tracing::info!(channel = c.name(), kind = %notice.kind, id = %notice.id, "notice delivered")
                }
                Err(e) => {
                    tracing::warn!(channel = c.name(), kind = %notice.kind, id = %notice.id, error = %e, "watcher notice not delivered")
                }
            }
            (c.name().to_owned(), r)
        }))
        .await
    }

    /// Sends one test notice through every channel and says what each did,
    /// so an operator checks the wiring before an outage does.
    pub async fn test_notice(&self) -> Vec<(String, Result<(), NotifyError>)> {
        let now = self.clock.now();
        let text = format!(
            "Test notice from iamalive. If you read this, the channel works. Sent by {} on request.",
            self.opts.owner
        );
        let outage = format!("watcher/test@{}", now.timestamp_millis());
        let notice = watcher_notice(NoticeKind::Test, &outage, 1, now, now, text);
        self.send_to(&notice, |_| true).await
    }

    async fn sweep_store(&self) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        self.mark(now).await?;
        let downtime = self.lock_state().downtime;
        let mut silences = self.store.silences().await?;
        for s in silences.iter().filter(|s| s.is_over(now)) {
            self.store.remove_silence(&s.id).await?;
        }
        silences.retain(|s| !s.is_over(now));
        let mut report = SweepReport::default();
        // Bounded: every processed record leaves the due set unless an error
        // left it there, and an error ends the sweep after its batch.
        for _ in 0..10_000 {
            let batch = self.store.due(now, self.opts.batch).await?;
            let full = batch.len() == self.opts.batch;
            report.due += batch.len();
            let batch_report = self.process_batch(batch, now, &silences, downtime).await;
            report.add(batch_report);
            if !full || batch_report.errors > 0 {
                break;
            }
        }
        self.sweep_groups(now, &mut report).await?;
        Ok(report)
    }

    async fn mark(&self, now: Timestamp) -> Result<(), StoreError> {
        if self.stop_marked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let interval = self.mark_interval();
        let (needed, first) = {
            let st = self.lock_state();
            (
                st.marked_at.is_none_or(|m| now >= add(m, interval)),
                st.marked_at.is_none(),
            )
        };
        if needed {
            // Nobody listened since the last mark, however short the gap,
            // when this process (which is also the ingest) just started, or
            // when the store refused calls since. A slow sweep alone is no
            // downtime: the ingest kept answering meanwhile.
            let deaf = (first && self.opts.ingest_in_process)
                || self.fault_since_mark.load(Ordering::Relaxed);
            let gap = if deaf {
                Duration::ZERO
            } else {
                self.opts
                    .downtime_gap
                    .unwrap_or_else(|| self.policies.shortest_timeout())
            };
            // The store's own check (its file replaced, its data wiped)
            // rides on the mark: a loss is announced, the sweep goes on.
            let check = match self.store.check().await {
                Err(e) if !e.is_lost() => return Err(e),
                r => r,
            };
            {
                let mut h = self.lock_health();
                let a = match &check {
                    Ok(()) => h.health.store_check_ok(now),
                    Err(e) => {
                        tracing::error!(store = %self.store, error = %e, "store data lost");
                        h.health.store_lost(&e.to_string(), now)
                    }
                };
                h.pending.extend(a);
            }
            let mark = self.store.mark_run(now, gap).await?;
            if deaf {
                self.fault_since_mark.store(false, Ordering::Relaxed);
            }
            let mut st = self.lock_state();
            st.marked_at = Some(now);
            st.downtime = mark.downtime;
        }
        Ok(())
    }

    /// Marks the store one last time as a graceful stop begins, so the
    /// downtime the next start measures begins now rather than at the last
    /// periodic mark. Call it when the ingest stops listening: marks after
    /// it (a sweep still finishing its deliveries) are skipped, so a slow
    /// delivery cannot move the stop past the heartbeats refused meanwhile.
    /// Only the first call marks. Best effort: a failure only makes that
    /// downtime (and the grace it gives) a little longer.
    pub async fn mark_stopping(&self) {
        if self.stop_marked.swap(true, Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now();
        if let Err(e) = self.store.mark_run(now, Duration::MAX).await {
            tracing::debug!(store = %self.store, error = %e, "could not mark the stop");
        }
    }

    /// Decides one record until it has nothing more to do now; never fails
    /// the sweep (errors are counted and logged, the record stays due).
    /// `first`: its first step already taken and routed (by
    /// [`process_batch`](Self::process_batch)), if it was.
    async fn process(
        &self,
        rec: HostRecord,
        now: Timestamp,
        silences: &[Silence],
        downtime: Option<Downtime>,
        first: Option<(Stepped, groups::Routed)>,
    ) -> SweepReport {
        let host = rec.host.clone();
        let mut report = SweepReport::default();
        let r = self
            .process_inner(rec, now, silences, downtime, first, &mut report)
            .await;
        self.count_error(&host, r, &mut report);
        report
    }

    /// Logs and counts a record's failure (it stays due); a store failure
    /// other than contention also counts against the store's health.
    fn count_error(&self, host: &HostId, r: Result<(), StoreError>, report: &mut SweepReport) {
        if let Err(e) = r {
            tracing::warn!(store = %self.store, %host, error = %e, "could not decide host; it stays due");
            if !matches!(e, StoreError::Contended { .. }) {
                self.store_result(Err(&e));
            }
            report.errors += 1;
        }
    }

    /// What deciding `rec` needs: its policy and what makes the watcher
    /// blind to it.
    fn context_of(&self, rec: &HostRecord) -> (Policy, Option<String>) {
        let policy = self.policies.for_record(rec);
        let blind = self.blind.as_ref().and_then(|p| p(&rec.host));
        (policy, blind)
    }

    /// One [`decide::step`] of `host`'s record swapped in (`rec`: the
    /// record in hand, read otherwise): the record written, the notice it
    /// leased, if any, and the group's news of a quiet return
    /// ([`groups::returned_untold`]); `None` when there was nothing to
    /// write.
    async fn step_host(
        &self,
        host: &HostId,
        rec: Option<HostRecord>,
        now: Timestamp,
        policy: &Policy,
        ctx: &Context<'_>,
        report: &mut SweepReport,
    ) -> Result<Option<(HostRecord, Option<Box<Outbox>>, Option<Notice>)>, StoreError> {
        let (owner, lease) = (self.opts.owner.as_str(), self.opts.lease);
        let mut evaluated = 0;
        let r = self
            .swap(host, rec, &mut report.conflicts, |r| {
                evaluated += 1;
                let step = decide::step(r, now, policy, ctx, owner, lease);
                step.write.map(|w| {
                    let back = groups::returned_untold(r, &w);
                    (w, (step.deliver, back))
                })
            })
            .await;
        report.evaluated += evaluated;
        Ok(r?.map(|(w, (deliver, back))| (w, deliver, back)))
    }

    /// Steps one record until it has nothing more to do now: one
    /// [`decide::step`] swapped in, the notice it leased delivered, the
    /// round [`settle`](decide::settle)d; again while the record is due.
    /// `first`: the first step already taken and routed, if it was.
    async fn process_inner(
        &self,
        rec: HostRecord,
        mut now: Timestamp,
        silences: &[Silence],
        downtime: Option<Downtime>,
        mut first: Option<(Stepped, groups::Routed)>,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let (policy, blind) = self.context_of(&rec);
        let ctx = Context {
            silences,
            downtime,
            blind: blind.as_deref(),
        };
        let host = rec.host.clone();
        let mut rec = Some(rec);
        for _ in 0..MAX_ROUNDS {
            let (written, outbox, routed) = match first.take() {
                Some((s, routed)) => (s.written, s.outbox, routed),
                None => {
                    let stepped = self
                        .step_host(&host, rec.take(), now, &policy, &ctx, report)
                        .await?;
                    let Some((written, outbox, back)) = stepped else {
                        return Ok(());
                    };
                    if let Some(back) = back {
                        self.route_to_group(&back, &policy, report).await?;
                    }
                    let Some(outbox) = outbox else {
                        return Ok(());
                    };
                    let routed = self.route_to_group(&outbox.notice, &policy, report).await?;
                    (written, outbox, routed)
                }
            };
            let targets = self.routes.channels_for(&outbox.notice, &self.names);
            // Logged once, after the group decided: held (until when), then
            // owed or absorbed when the hold ends.
            let n = &outbox.notice;
            // Hosts without a group are gathered under UNGROUPED, named
            // as notices name them ("hosts without a group").
            let group = n
                .group
                .as_ref()
                .map_or(crate::group::UNGROUPED, GroupName::as_str);
            let label = n
                .group
                .as_ref()
                .map_or_else(|| "hosts without a group".to_owned(), GroupName::label);
            let results = match routed {
                groups::Routed::Held(until) => {
                    let at = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    tracing::info!(host = %written.host, kind = %n.kind, id = %n.id, group, until = %at, "notice held for {label} until {at}");
                    return self.hold_host(written, &n.id, until, report).await;
                }
                groups::Routed::Absorbed => {
                    tracing::info!(host = %written.host, kind = %n.kind, id = %n.id, group, "notice absorbed by {label}");
                    Self::absorbed(&targets)
                }
                groups::Routed::Deliver => {
                    tracing::info!(host = %written.host, kind = %n.kind, id = %n.id, "notice owed");
                    // Held while its group gathered: it speaks of now
                    // (unless some channel has it already).
                    let untouched = outbox.delivered.is_empty()
                        && outbox.failed.is_empty()
                        && !lock(&self.unsettled).contains_key(&n.id);
                    let fresh = untouched.then(|| decide::as_of(n, now, &policy)).flatten();
                    let notice = fresh.as_ref().unwrap_or(n);
                    self.deliver_round(notice, &targets, &outbox.delivered, &outbox.failed)
                        .await
                }
            };
            let absorbed = matches!(routed, groups::Routed::Absorbed);
            report.failed_deliveries += results
                .iter()
                .filter(|(_, o)| *o != ChannelOutcome::Delivered)
                .count();
            report.refused += results
                .iter()
                .filter(|(_, o)| matches!(o, ChannelOutcome::Permanent { .. }))
                .count();
            now = self.clock.now();
            let round = decide::Round {
                notice_id: &outbox.notice.id,
                results: &results,
                channels: &targets,
            };
            let settled = match self
                .swap(&host, Some(written), &mut report.conflicts, |r| {
                    decide::settle(r, &round, now, &policy, &self.opts.retry, &ctx)
                        .map(|d| (d.next, ()))
                })
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    // The channels answered; the store did not take it.
                    // The record stays owed under this process's lease:
                    // its next round settles these answers, not a
                    // second delivery.
                    keep_answers(&self.unsettled, &outbox.notice.id, &results);
                    return Err(e);
                }
            };
            let Some((settled, ())) = settled else {
                return Ok(());
            };
            if settled
                .outbox
                .as_ref()
                .is_none_or(|o| o.notice.id != outbox.notice.id)
            {
                report.completed += 1;
                if !absorbed {
                    self.log_notice(&outbox.notice, now).await;
                }
            }
            if settled.due_at.is_none_or(|d| d > now) {
                return Ok(());
            }
            rec = Some(settled);
        }
        Ok(())
    }

    /// One delivery round of `notice`: the answers already in for it
    /// (a round not settled, a delivery that finished after the sweep
    /// stopped waiting) are taken, not asked again, and every other channel
    /// of `targets` not done with it is asked ([`deliver`](Self::deliver)).
    async fn deliver_round(
        &self,
        notice: &Notice,
        targets: &[String],
        delivered: &[String],
        failed: &[String],
    ) -> Vec<(String, ChannelOutcome)> {
        let mut results = lock(&self.unsettled).remove(&notice.id).unwrap_or_default();
        let answered = |n: &str| {
            delivered.iter().chain(failed).any(|d| d == n) || results.iter().any(|(c, _)| c == n)
        };
        let owed: Vec<Arc<dyn Notifier>> = self
            .channels
            .iter()
            .filter(|c| targets.iter().any(|t| t == c.name()) && !answered(c.name()))
            .cloned()
            .collect();
        results.extend(self.deliver(notice, owed).await);
        results
    }

    /// A delivery the round stopped waiting for: marked in flight until it
    /// ends, then its answer kept for the notice's next round.
    fn finish_later(&self, key: (String, String), task: tokio::task::JoinHandle<ChannelOutcome>) {
        tracing::warn!(channel = %key.1, id = %key.0, wait = %humantime::format_duration(DELIVERY_WAIT), "channel still busy; the sweep goes on and its answer is taken in the notice's next round");
        lock(&self.in_flight).insert(key.clone());
        let (in_flight, unsettled) = (Arc::clone(&self.in_flight), Arc::clone(&self.unsettled));
        // Called only from a round that spawned `task` on a runtime.
        tokio::spawn(async move {
            let outcome = task
                .await
                .unwrap_or(ChannelOutcome::Transient { retry_after: None });
            keep_answers(&unsettled, &key.0, &[(key.1.clone(), outcome)]);
            lock(&in_flight).remove(&key);
        });
    }

    /// The one compare-and-swap loop: decides `decide(record)` and swaps it
    /// in (its version bumped), re-reading the record after each lost swap
    /// and deciding again, at most [`MAX_ROUNDS`] times. `first` is the
    /// record in hand, if any (read from the store otherwise).
    ///
    /// `Ok(None)` when the host is absent or `decide` has nothing to write;
    /// `Ok(Some((written, extra)))` once a swap succeeded;
    /// [`StoreError::Contended`] when every round was lost. Each lost swap
    /// counts in `conflicts`.
    pub(crate) async fn swap<T>(
        &self,
        host: &HostId,
        first: Option<HostRecord>,
        conflicts: &mut usize,
        mut decide: impl FnMut(&HostRecord) -> Option<(HostRecord, T)>,
    ) -> Result<Option<(HostRecord, T)>, StoreError> {
        let mut current = first;
        for _ in 0..MAX_ROUNDS {
            let rec = match current.take() {
                Some(r) => r,
                None => match self.store.get(host).await? {
                    Some(r) => r,
                    None => return Ok(None),
                },
            };
            let Some((mut next, extra)) = decide(&rec) else {
                return Ok(None);
            };
            next.version = rec.version + 1;
            if self.store.compare_and_swap(rec.version, &next).await? {
                return Ok(Some((next, extra)));
            }
            *conflicts += 1;
        }
        Err(StoreError::Contended {
            key: host.to_string(),
            rounds: MAX_ROUNDS,
        })
    }

    /// Delivers `notice` to the `owed` channels, all at once.
    /// A refusal, or a delivery by a channel that had been refusing, is
    /// noted in the watcher's health for the next flush to announce.
    ///
    /// Each channel's delivery runs as a task of its own; the round waits
    /// for the answers at most [`DELIVERY_WAIT`] on the monitor's clock. A
    /// channel still busy then (a webhook that hangs, a slow relay) is
    /// counted transient for this round and left to finish on its own: it
    /// is not asked again while it runs, and its answer goes to the notice's
    /// next round. So one hanging channel holds a sweep, and the alarms of
    /// every other host, for seconds, not for its own timeout.
    async fn deliver(
        &self,
        notice: &Notice,
        owed: Vec<Arc<dyn Notifier>>,
    ) -> Vec<(String, ChannelOutcome)> {
        // Without a Tokio runtime (a monitor driven by another executor)
        // the round waits for every channel, as it cannot leave one running.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let results =
                futures::future::join_all(owed.iter().map(|c| async move {
                    (c.name().to_owned(), deliver_one(&**c, notice).await)
                }))
                .await;
            self.note_answers(notice, &results);
            return results;
        };
        let shared = Arc::new(notice.clone());
        let mut results = Vec::with_capacity(owed.len());
        let mut running = Vec::with_capacity(owed.len());
        for c in owed {
            let key = (notice.id.clone(), c.name().to_owned());
            if lock(&self.in_flight).contains(&key) {
                // Still running from an earlier round: its answer comes to
                // the next one.
                results.push((key.1, ChannelOutcome::Transient { retry_after: None }));
                continue;
            }
            let n = Arc::clone(&shared);
            running.push((
                key,
                runtime.spawn(async move { deliver_one(&*c, &n).await }),
            ));
        }
        let mut waited = self
            .clock
            .sleep_until(crate::add(self.clock.now(), DELIVERY_WAIT));
        for (key, mut task) in running {
            let outcome = tokio::select! {
                biased;
                r = &mut task => r.unwrap_or(ChannelOutcome::Transient { retry_after: None }),
                () = &mut waited => {
                    self.finish_later(key.clone(), task);
                    ChannelOutcome::Transient { retry_after: None }
                }
            };
            results.push((key.1, outcome));
        }
        self.note_answers(notice, &results);
        results
    }

    /// Notes the channels' answers to `notice` in the watcher's health: a
    /// refusal, or a delivery by a channel that had been refusing.
    fn note_answers(&self, notice: &Notice, results: &[(String, ChannelOutcome)]) {
        let now = self.clock.now();
        let mut h = self.lock_health();
        for (channel, outcome) in results {
            let a = match outcome {
                ChannelOutcome::Delivered => h.health.channel_delivered(channel, now),
                ChannelOutcome::Permanent { reason } => {
                    h.health.channel_refused(channel, notice, reason, now)
                }
                ChannelOutcome::Transient { .. } => None,
            };
            h.pending.extend(a);
        }
    }

    /// Reads one host.
    pub async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.store.get(host).await
    }

    /// Registers a host that has not reported yet: it is given a full
    /// timeout from now. `false` if it already exists.
    pub async fn register(&self, host: &HostId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut rec = HostRecord::new(host.clone(), now, Duration::ZERO);
        rec.due_at = Some(self.policies.deadline_for(host, now));
        self.store.compare_and_swap(0, &rec).await
    }

    /// Pauses monitoring of `host` until it is resumed; returns the new
    /// record, `None` if unknown.
    pub async fn pause(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.pause_until(host, None).await
    }

    /// Pauses monitoring of `host` until `until` (`None`: until resumed);
    /// returns the new record, `None` if unknown. The record is due at
    /// `until`, and the first sweep from then on resumes it with a full
    /// timeout from `until`. Heartbeats meanwhile do not end the pause.
    pub async fn pause_until(
        &self,
        host: &HostId,
        until: Option<Timestamp>,
    ) -> Result<Option<HostRecord>, StoreError> {
        self.update(host, move |r, _, _| decide::pause_until(r, until))
            .await
    }

    /// Resumes monitoring of `host` with a full timeout from now.
    pub async fn resume(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.update(host, decide::resume).await
    }

    async fn update(
        &self,
        host: &HostId,
        f: impl Fn(&HostRecord, Timestamp, &crate::Policy) -> HostRecord,
    ) -> Result<Option<HostRecord>, StoreError> {
        let mut conflicts = 0;
        let written = self
            .swap(host, None, &mut conflicts, |rec| {
                let policy = self.policies.for_record(rec);
                Some((f(rec, self.clock.now(), &policy), ()))
            })
            .await?;
        Ok(written.map(|(rec, ())| rec))
    }

    /// Brings every up host's `due_at` forward to its deadline under the
    /// current policies, so a timeout lowered since the records were
    /// written applies to every host at once ("early, never late" across
    /// configuration changes, not only from each host's next heartbeat).
    /// Walks the host list once: run it in the background at start.
    /// Returns how many records it moved.
    pub async fn rearm_to_policy(&self) -> Result<usize, StoreError> {
        self.bring_forward(|rec| {
            let deadline = rec.deadline(&self.policies.for_record(rec));
            (rec.status == Status::Up && rec.outbox.is_none()).then_some(deadline)
        })
        .await
    }

    /// Walks every host and moves `due_at` to `earlier(rec)` where that is
    /// sooner than it is: an operator action or a start-up chore, never a
    /// hot path. A lost compare-and-swap means someone else just wrote the
    /// record, which re-armed it anyway. Returns how many records moved.
    async fn bring_forward(
        &self,
        earlier: impl Fn(&HostRecord) -> Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        let mut moved = 0;
        let mut after: Option<HostId> = None;
        loop {
            let page = self.store.list(after.as_ref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.host.clone());
            for rec in page {
                let Some(at) = earlier(&rec).filter(|&t| rec.due_at.is_some_and(|d| d > t)) else {
                    continue;
                };
                let mut next = rec.clone();
                next.due_at = Some(at);
                next.version = rec.version + 1;
                if self.store.compare_and_swap(rec.version, &next).await? {
                    moved += 1;
                }
            }
        }
        Ok(moved)
    }

    /// Stores a silence.
    pub async fn add_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.store.put_silence(silence).await
    }

    /// Deletes a silence and makes the missing hosts it covered due now, so
    /// an alarm it held back goes out at the next sweep rather than at its
    /// planned end. That touch walks the host list: an operator action, not
    /// a hot path.
    pub async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let silence = self
            .store
            .silences()
            .await?
            .into_iter()
            .find(|s| s.id == id);
        let Some(silence) = silence else {
            return Ok(false);
        };
        let removed = self.store.remove_silence(id).await?;
        let now = self.clock.now();
        self.bring_forward(|rec| {
            (matches!(rec.status, Status::Missing | Status::Alarmed)
                && silence.hosts.matches(&rec.host))
            .then_some(now)
        })
        .await?;
        Ok(removed)
    }

    /// Removes a host.
    pub async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        self.store.remove(host).await
    }
}

/// The most notices whose unsettled delivery rounds a monitor remembers.
const MAX_UNSETTLED: usize = 10_000;

/// How long a delivery round waits for the channels' answers before
/// leaving a busy channel to finish on its own (see `Monitor::deliver`).
const DELIVERY_WAIT: Duration = Duration::from_secs(5);

/// Answers of delivery rounds not settled yet, by notice id.
type Unsettled = std::collections::HashMap<String, Vec<(String, ChannelOutcome)>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps what channels did with notice `id` for its next round: deliveries
/// and refusals (a transient failure is asked again anyway), added to what
/// is kept already. Bounded: past [`MAX_UNSETTLED`] notices the knowledge
/// is dropped (at worst a notice is delivered twice, as before).
fn keep_answers(unsettled: &Mutex<Unsettled>, id: &str, results: &[(String, ChannelOutcome)]) {
    let kept: Vec<(String, ChannelOutcome)> = results
        .iter()
        .filter(|(_, o)| !matches!(o, ChannelOutcome::Transient { .. }))
        .cloned()
        .collect();
    if kept.is_empty() {
        return;
    }
    let mut u = lock(unsettled);
    if u.len() >= MAX_UNSETTLED && !u.contains_key(id) {
        u.clear();
    }
    u.entry(id.to_owned()).or_default().extend(kept);
}

/// One channel's delivery of `notice`, logged, as the round's outcome.
async fn deliver_one(c: &dyn Notifier, notice: &Notice) -> ChannelOutcome {
    match c.deliver(notice).await {
        Ok(()) => {
            match notice.group.as_ref().filter(|_| notice.is_group()) {
                Some(g) => {
                    tracing::info!(channel = c.name(), group = %g, hosts = notice.hosts.len(), kind = %notice.kind, id = %notice.id, "group notice delivered")
                }
                None => {
                    tracing::info!(channel = c.name(), host = %notice.host, kind = %notice.kind, id = %notice.id, "notice delivered")
                }
            }
            ChannelOutcome::Delivered
        }
        Err(e) => {
            if e.is_transient() {
                tracing::warn!(channel = c.name(), host = %notice.host, id = %notice.id, error = %e, "delivery failed; will retry");
            } else {
                tracing::error!(channel = c.name(), host = %notice.host, id = %notice.id, error = %e, "delivery refused");
            }
            ChannelOutcome::from(&e)
        }
    }
}
