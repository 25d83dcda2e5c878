//! The one conformance suite every [`Store`] backend runs.
//!
//! Plain async functions, each taking a fresh store in its own namespace
//! (table, key prefix, file). [`run_all`] runs every one of them;
//! a backend's test is:
//!
//! ```no_run
//! # async fn make_my_store() -> std::sync::Arc<dyn iamalive_core::Store> { unimplemented!() }
//! # async fn t() {
//! iamalive_core::conformance::run_all(|| async { make_my_store().await }).await;
//! # }
//! ```
//!
//! Every function panics with a message naming the broken contract.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::testing::{Call, Hook, Hooked, RecordingNotifier};
use crate::{
    Clock, GroupName, Heartbeat, HeartbeatOutcome, HostId, HostPattern, HostRecord, ManualClock,
    Monitor, MonitorMark, MonitorOptions, NoticeKind, Notifier, Outbox, Policy, PolicySet, Repeat,
    RetryPolicy, Silence, Status, Store, StoreError, Timestamp, add, decide,
};

/// The instant every test starts at.
pub fn t0() -> Timestamp {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).expect("2026-01-01") // 2026-01-01T00:00:00Z
}

/// `t0() + secs`.
pub fn at(secs: u64) -> Timestamp {
    add(t0(), Duration::from_secs(secs))
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A host id for tests.
pub fn host(s: &str) -> HostId {
    HostId::new(s).expect("valid test host")
}

/// The policy the suite uses: 10 s timeout, 60 s reminders.
pub fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(10),
        reminder_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

/// A monitor over `store` named `owner`, with the suite's policy.
pub fn monitor(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    channels: Vec<Arc<dyn Notifier>>,
    owner: &str,
) -> Monitor<dyn Store, ManualClock> {
    monitor_with(store, clock, channels, owner, policy())
}

/// [`monitor`] with another policy for every host.
pub fn monitor_with(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    channels: Vec<Arc<dyn Notifier>>,
    owner: &str,
    policy: Policy,
) -> Monitor<dyn Store, ManualClock> {
    Monitor::new(
        store,
        channels,
        clock.clone(),
        PolicySet::new(policy),
        options(owner),
    )
    .expect("channel names are unique")
}

/// The suite's monitor options for `owner`: batches of 64, eight
/// deliveries at once, a 30 s lease.
fn options(owner: &str) -> MonitorOptions {
    MonitorOptions {
        owner: owner.into(),
        lease: Duration::from_secs(30),
        batch: 64,
        concurrency: 8,
        retry: RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            ..RetryPolicy::default()
        },
        mark_interval: Some(Duration::from_secs(2)),
        // The suite jumps the clock between sweeps; only the grace test
        // wants those jumps taken as downtime.
        downtime_gap: Some(Duration::from_secs(3600)),
        // Each test starts its monitors when it likes; only the grace
        // tests want a start taken as the end of a downtime.
        ingest_in_process: false,
        auto_register: true,
        health: crate::HealthOptions::default(),
    }
}

async fn beat(store: &dyn Store, h: &HostId, t: Timestamp) -> HeartbeatOutcome {
    store
        .record_heartbeat(
            &Heartbeat::new(h.clone(), t),
            add(t, policy().timeout),
            true,
        )
        .await
        .expect("record_heartbeat")
}

async fn get(store: &dyn Store, h: &HostId) -> HostRecord {
    store
        .get(h)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{h} should exist"))
}

/// One suite function.
type SuiteFn = fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// Names each suite function after itself, as `(name, function)`.
macro_rules! suite {
    ($($f:ident),* $(,)?) => {
        vec![$((stringify!($f), (|s| Box::pin($f(s))) as SuiteFn)),*]
    };
}

/// Every suite function, named, in the order [`run_all`] runs them.
fn suite() -> Vec<(&'static str, SuiteFn)> {
    suite![
        heartbeat_creates_and_updates,
        heartbeat_unknown_host,
        heartbeat_due_rules,
        heartbeat_lazy_window,
        concurrent_first_heartbeats_create_once,
        due_index,
        due_count,
        compare_and_swap_rules,
        heartbeat_between_read_and_write,
        lifecycle_through_monitor,
        concurrent_monitors,
        dead_owner_notice_redelivered,
        failing_channel_retried_alone,
        silences,
        pause_and_resume,
        timed_pause_resumes_by_itself,
        repeating_silences,
        remove_and_list,
        lowered_timeout_applies_at_once,
        mark_and_startup_grace,
        odd_input_round_trips,
        short_restart_gives_back_swallowed_time,
        refused_notice_stays_owed_and_is_announced,
        groups_are_stored,
        group_records_swap_by_version,
        group_outage_is_one_notice,
        a_dark_site_is_named_whole,
        a_site_back_as_its_alarm_goes_out_is_cleared,
        a_site_outage_ends_when_its_silent_hosts_leave_it,
        a_site_alarm_names_a_host_silent_alone_before_it,
        watcher_blind_is_one_notice,
        blind_detection_keeps_a_lone_site_on_time,
        hosts_without_a_group_half_silent_are_one_blind_notice,
        hosts_without_a_group_past_their_deadline_unswept_are_peers,
        a_host_without_a_group_alarms_on_time,
        hosts_without_a_group_too_few_to_be_half_alarm_on_time,
        hosts_without_a_group_failing_one_by_one_hold_nobody,
        job_signals_persist_and_monitors_agree,
        event_log_bounded_per_host,
        schedule_persisted_and_monitors_agree,
        a_longer_policy_ends_no_outage,
        flapping_is_one_notice_then_its_end,
        group_flapping_is_one_notice_then_its_end,
        interval_and_group_hosts_are_stored,
        missed_beats_are_evidence_of_a_group_outage,
        a_silenced_host_is_no_evidence,
    ]
}

/// The names of the suite's functions, in the order [`run_all`] runs
/// them: what a backend's test expects [`run_all`] to report.
pub fn suite_names() -> Vec<&'static str> {
    suite().into_iter().map(|(name, _)| name).collect()
}

/// Runs the whole suite, each function on a fresh store from `make`.
///
/// Returns the names of the suite functions that ran (each on a store of
/// its own), in order: [`suite_names`].
pub async fn run_all<F, Fut>(make: F) -> Vec<&'static str>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    run_all_named(|_| make()).await
}

/// [`run_all`], telling `make` which suite function the store is for (to
/// name a file or a key prefix after it).
pub async fn run_all_named<F, Fut>(make: F) -> Vec<&'static str>
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut ran = Vec::new();
    for (name, test) in suite() {
        test(make(name).await).await;
        ran.push(name);
    }
    ran
}

mod blind;
mod groups;
mod jobs;
mod loose;
pub use blind::{blind_detection_keeps_a_lone_site_on_time, watcher_blind_is_one_notice};
pub use groups::{
    DARK_SITE_HOSTS, a_dark_site_is_named_whole, a_site_alarm_names_a_host_silent_alone_before_it,
    a_site_back_as_its_alarm_goes_out_is_cleared,
    a_site_outage_ends_when_its_silent_hosts_leave_it, group_outage_is_one_notice,
    group_records_swap_by_version,
};
pub use jobs::{event_log_bounded_per_host, job_signals_persist_and_monitors_agree};
pub use loose::{
    a_host_without_a_group_alarms_on_time, hosts_without_a_group_failing_one_by_one_hold_nobody,
    hosts_without_a_group_half_silent_are_one_blind_notice,
    hosts_without_a_group_past_their_deadline_unswept_are_peers,
    hosts_without_a_group_too_few_to_be_half_alarm_on_time,
};
mod schedules;
pub use schedules::{a_longer_policy_ends_no_outage, schedule_persisted_and_monitors_agree};
mod flapping;
pub use flapping::flapping_is_one_notice_then_its_end;
mod group_flapping;
pub use group_flapping::group_flapping_is_one_notice_then_its_end;
mod missed;
pub use missed::{
    a_silenced_host_is_no_evidence, interval_and_group_hosts_are_stored,
    missed_beats_are_evidence_of_a_group_outage,
};

/// A heartbeat creates an unknown host `up` at version 1 and bumps the
/// version of a known one; `last_seen` never goes backwards.
pub async fn heartbeat_creates_and_updates(store: Arc<dyn Store>) {
    let h = host("web-01");
    assert_eq!(beat(&*store, &h, at(0)).await, HeartbeatOutcome::Created);
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Up, "{store}: new host is up");
    assert_eq!(r.version, 1, "{store}: new host has version 1");
    assert_eq!(r.last_seen, at(0));
    assert_eq!(r.watch_from, at(0));
    assert_eq!(r.due_at, Some(at(10)), "{store}: new host due at due_if_up");
    assert_eq!(
        beat(&*store, &h, at(5)).await,
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let r = get(&*store, &h).await;
    assert_eq!(r.version, 2, "{store}: heartbeat bumps version");
    assert_eq!(r.last_seen, at(5));
    assert!(
        r.due_at.is_some_and(|d| d <= at(15) && d >= at(5)),
        "{store}: due_at of an up host moves to due_if_up (or stays earlier): {:?}",
        r.due_at
    );
    // Out of order: last_seen keeps the later instant, the version still moves.
    beat(&*store, &h, at(3)).await;
    let r = get(&*store, &h).await;
    assert_eq!(
        r.last_seen,
        at(5),
        "{store}: last_seen never goes backwards"
    );
    assert_eq!(r.version, 3);
    // Concurrent heartbeats never lose a bump.
    let futs = (0..20).map(|i| {
        let store = store.clone();
        let h = h.clone();
        async move { beat(&*store, &h, at(10 + i)).await }
    });
    futures::future::join_all(futs).await;
    let r = get(&*store, &h).await;
    assert_eq!(r.version, 23, "{store}: 20 concurrent heartbeats, 20 bumps");
    assert_eq!(r.last_seen, at(29));
}

/// With `create = false`, an unknown host is reported and nothing written.
pub async fn heartbeat_unknown_host(store: Arc<dyn Store>) {
    let h = host("ghost");
    let hb = Heartbeat::new(h.clone(), at(0));
    let out = store
        .record_heartbeat(&hb, at(10), false)
        .await
        .expect("record_heartbeat");
    assert_eq!(out, HeartbeatOutcome::Unknown, "{store}");
    assert!(
        store.get(&h).await.expect("get").is_none(),
        "{store}: nothing written"
    );
    assert!(store.due(at(100), 10).await.expect("due").is_empty());
}

/// `due_at` follows the heartbeat rule by status and outbox; message and
/// report are replaced when given and kept otherwise.
pub async fn heartbeat_due_rules(store: Arc<dyn Store>) {
    let h = host("db-1");
    let mut hb = Heartbeat::new(h.clone(), at(0));
    hb.message = Some("first".into());
    store.record_heartbeat(&hb, at(10), true).await.expect("hb");
    let r = get(&*store, &h).await;
    assert_eq!(r.message.as_deref(), Some("first"));
    beat(&*store, &h, at(1)).await;
    assert_eq!(
        get(&*store, &h).await.message.as_deref(),
        Some("first"),
        "{store}: message kept"
    );

    // Missing (or alarmed): the heartbeat makes it due now.
    for status in [Status::Missing, Status::Alarmed] {
        let r = get(&*store, &h).await;
        let mut next = r.clone();
        next.status = status;
        next.due_at = Some(at(500));
        next.version = r.version + 1;
        assert!(store.compare_and_swap(r.version, &next).await.expect("cas"));
        let mut hb = Heartbeat::new(h.clone(), at(20));
        hb.report = Some(r#"{"failures":[]}"#.into());
        let out = store.record_heartbeat(&hb, at(30), true).await.expect("hb");
        assert_eq!(out, HeartbeatOutcome::Updated { status }, "{store}");
        assert!(out.needs_decision());
        let r = get(&*store, &h).await;
        assert_eq!(
            r.due_at,
            Some(at(20)),
            "{store}: a {status} host is due at its heartbeat"
        );
        assert_eq!(r.report.as_deref(), Some(r#"{"failures":[]}"#));
        let ids: Vec<_> = store
            .due(at(20), 10)
            .await
            .expect("due")
            .into_iter()
            .map(|r| r.host)
            .collect();
        assert_eq!(ids, vec![h.clone()], "{store}: and in the due index");
    }
    // Paused: due_at stays None, last_seen still moves.
    let r = get(&*store, &h).await;
    let mut paused = decide::pause(&r);
    paused.version = r.version + 1;
    assert!(
        store
            .compare_and_swap(r.version, &paused)
            .await
            .expect("cas")
    );
    beat(&*store, &h, at(40)).await;
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Paused);
    assert_eq!(r.due_at, None, "{store}: a paused host never becomes due");
    assert_eq!(r.last_seen, at(40));
    // Up with a recovery still owed: due_at is left alone.
    let mut owed = r.clone();
    owed.status = Status::Up;
    owed.due_at = Some(at(41));
    owed.outbox = Some(Box::new(Outbox::new(sample_notice(
        &h,
        NoticeKind::Recovery,
    ))));
    owed.version = r.version + 1;
    assert!(store.compare_and_swap(r.version, &owed).await.expect("cas"));
    beat(&*store, &h, at(42)).await;
    let r = get(&*store, &h).await;
    assert_eq!(
        r.due_at,
        Some(at(41)),
        "{store}: a pending recovery keeps its due_at"
    );
    assert_eq!(
        r.outbox, owed.outbox,
        "{store}: the heartbeat never touches the outbox"
    );
}

/// The lazy window is the one in core, both ends included: a store that
/// keeps an up host's `due_at` on a heartbeat (to save an index write)
/// keeps it exactly when it lies in [`LazyWindow`](crate::LazyWindow) —
/// from half a timeout after the heartbeat to the full timeout — and
/// re-arms it to `due_if_up` otherwise; a store that always re-arms is
/// within the rule too. Nothing else is ever left.
pub async fn heartbeat_lazy_window(store: Arc<dyn Store>) {
    let h = host("lazy-01");
    beat(&*store, &h, at(0)).await;
    // Each probe: the stored due_at set to `offset_ms` after a heartbeat at
    // `at(secs)` (timeout 10 s: window [+5 s, +10 s]), then that heartbeat.
    let mut secs = 0;
    let mut probe = async |offset_ms: u64| -> bool {
        secs += 100;
        let beat_at = at(secs);
        let r = get(&*store, &h).await;
        let mut next = r.clone();
        next.due_at = Some(add(beat_at, ms(offset_ms)));
        next.version = r.version + 1;
        assert!(store.compare_and_swap(r.version, &next).await.expect("cas"));
        beat(&*store, &h, beat_at).await;
        let after = get(&*store, &h).await.due_at;
        let rearmed = Some(add(beat_at, policy().timeout));
        assert!(
            after == next.due_at || after == rearmed,
            "{store}: a heartbeat left due_at {after:?}: neither the stored {:?} nor due_if_up",
            next.due_at
        );
        after == next.due_at && after != rearmed
    };
    let lazy = probe(7_500).await;
    let mut got = Vec::new();
    for offset in [4_999, 5_000, 6_000, 9_999, 10_001, 30_000] {
        got.push((offset, probe(offset).await));
    }
    let want: Vec<(u64, bool)> = got
        .iter()
        .map(|&(o, _)| (o, lazy && (5_000..=10_000).contains(&o)))
        .collect();
    assert_eq!(
        got, want,
        "{store}: (ms after the heartbeat, kept) — a lazy store keeps exactly [5000, 10000]"
    );
}

/// Many first heartbeats of one unknown host at once, on several hosts:
/// each host is created exactly once, and no heartbeat loses its bump.
pub async fn concurrent_first_heartbeats_create_once(store: Arc<dyn Store>) {
    const HOSTS: u64 = 4;
    const BEATS: u64 = 20;
    let mut tasks = Vec::new();
    for round in 0..BEATS {
        for i in 0..HOSTS {
            let store = Arc::clone(&store);
            let h = host(&format!("new-{i}"));
            tasks.push(tokio::spawn(
                async move { beat(&*store, &h, at(round)).await },
            ));
        }
    }
    let mut created = 0;
    for task in tasks {
        if task.await.expect("heartbeat task") == HeartbeatOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, HOSTS, "{store}: each host created exactly once");
    for i in 0..HOSTS {
        let r = get(&*store, &host(&format!("new-{i}"))).await;
        assert_eq!(
            r.version, BEATS,
            "{store}: {BEATS} heartbeats, {BEATS} versions"
        );
        assert_eq!(r.last_seen, at(BEATS - 1));
        assert_eq!(r.status, Status::Up);
    }
}

fn sample_notice(h: &HostId, kind: NoticeKind) -> crate::Notice {
    crate::Notice {
        last_seen: at(0),
        missing_since: at(10),
        recovered_at: Some(at(40)),
        silent_for: Duration::from_secs(40),
        alarm_count: 1,
        message: Some("quote \" and newline\n and ünïcode ✓".into()),
        report: Some(r#"{"k":"v"}"#.into()),
        group: Some(group("office-berlin")),
        ..crate::Notice::new(
            format!("{h}@1/{kind}"),
            format!("{h}@1"),
            kind,
            h.clone(),
            at(41),
        )
    }
}

/// A group name for tests.
pub fn group(s: &str) -> GroupName {
    GroupName::new(s).expect("valid test group")
}

/// Five hosts due at 10 + 2*i seconds: e=10, a=12, d=14, b=16, c=18.
async fn due_five(store: &dyn Store) {
    for (i, name) in ["e", "a", "d", "b", "c"].iter().enumerate() {
        store
            .record_heartbeat(
                &Heartbeat::new(host(name), at(0)),
                at(10 + 2 * i as u64),
                true,
            )
            .await
            .expect("hb");
    }
}

/// Takes `h` out of the due index (`due_at` None) by compare-and-swap.
async fn clear_due(store: &dyn Store, h: &HostId) {
    let r = get(store, h).await;
    let mut n = r.clone();
    n.due_at = None;
    n.version = r.version + 1;
    assert!(store.compare_and_swap(r.version, &n).await.expect("cas"));
}

/// `due` returns only records due at `now`, earliest first, at most `limit`;
/// `next_due` is the earliest.
pub async fn due_index(store: Arc<dyn Store>) {
    assert_eq!(
        store.next_due().await.expect("next_due"),
        None,
        "{store}: empty store"
    );
    due_five(&*store).await;
    assert!(
        store.due(at(9), 10).await.expect("due").is_empty(),
        "{store}: nothing due yet"
    );
    let names = |v: Vec<HostRecord>| {
        v.into_iter()
            .map(|r| r.host.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.due(at(14), 10).await.expect("due")),
        ["e", "a", "d"],
        "{store}: only due, in due order"
    );
    assert_eq!(
        names(store.due(at(100), 2).await.expect("due")),
        ["e", "a"],
        "{store}: limit"
    );
    assert_eq!(store.due(at(100), 10).await.expect("due").len(), 5);
    let next = store.next_due().await.expect("next_due");
    assert!(
        next.is_some_and(|n| n <= at(10)),
        "{store}: next_due is the earliest: {next:?}"
    );
    // A record with no due_at is never returned.
    clear_due(&*store, &host("e")).await;
    assert_eq!(
        names(store.due(at(100), 10).await.expect("due")),
        ["a", "d", "b", "c"],
        "{store}: None leaves the index"
    );
    let next = store.next_due().await.expect("next_due");
    assert!(next.is_some_and(|n| n <= at(12)), "{store}: {next:?}");
}

/// `count_due` counts the records due by `until` (inclusive) from the due
/// index, no further than `at_most`; a record without `due_at` never
/// counts. A store that [counts its hosts](Store::counts_hosts) must
/// answer, since the watcher-blind detection asks it before it holds
/// anyone; another may say `None`.
pub async fn due_count(store: Arc<dyn Store>) {
    let count = |until: Timestamp, at_most: u64| {
        let store = store.clone();
        async move { store.count_due(until, at_most).await.expect("count_due") }
    };
    let Some(empty) = count(at(100), 10).await else {
        assert!(
            !store.counts_hosts(),
            "{store}: counts its hosts, so it counts the due ones"
        );
        return;
    };
    assert_eq!(empty, 0, "{store}: empty store");
    due_five(&*store).await;
    assert_eq!(count(at(9), 10).await, Some(0), "{store}: none due yet");
    assert_eq!(count(at(14), 10).await, Some(3), "{store}: until included");
    let before = at(14) - chrono::Duration::milliseconds(1);
    assert_eq!(count(before, 10).await, Some(2), "{store}: 1 ms before");
    assert_eq!(count(at(100), 10).await, Some(5), "{store}: all");
    assert_eq!(count(at(100), 2).await, Some(2), "{store}: at_most");
    assert_eq!(count(at(100), 0).await, Some(0), "{store}: at_most 0");
    clear_due(&*store, &host("e")).await;
    assert_eq!(
        count(at(100), 10).await,
        Some(4),
        "{store}: None leaves the count"
    );
}

/// Compare-and-swap: only on the expected version; 0 creates if absent.
pub async fn compare_and_swap_rules(store: Arc<dyn Store>) {
    let h = host("cas");
    let rec = HostRecord::new(h.clone(), at(0), Duration::from_secs(10));
    assert!(
        store.compare_and_swap(0, &rec).await.expect("cas"),
        "{store}: 0 creates"
    );
    assert!(
        !store.compare_and_swap(0, &rec).await.expect("cas"),
        "{store}: 0 fails when present"
    );
    let mut next = rec.clone();
    next.status = Status::Missing;
    next.due_at = Some(at(50));
    next.version = 2;
    assert!(
        !store.compare_and_swap(7, &next).await.expect("cas"),
        "{store}: wrong version"
    );
    assert_eq!(
        get(&*store, &h).await,
        rec,
        "{store}: a lost swap writes nothing"
    );
    assert!(store.compare_and_swap(1, &next).await.expect("cas"));
    assert_eq!(
        get(&*store, &h).await,
        next,
        "{store}: the record is stored whole"
    );
    assert!(
        store.due(at(20), 10).await.expect("due").is_empty(),
        "{store}: index follows the swap"
    );
    assert_eq!(store.due(at(50), 10).await.expect("due").len(), 1);
    let ghost = HostRecord::new(host("ghost"), at(0), Duration::from_secs(10));
    assert!(
        !store.compare_and_swap(3, &ghost).await.expect("cas"),
        "{store}: absent record"
    );
    assert!(
        store.get(&host("ghost")).await.expect("get").is_none(),
        "{store}: not created"
    );
}

/// Lands a heartbeat for `target` just before its first compare-and-swap
/// of that host reaches `store`: the race of a heartbeat arriving between
/// a monitor's read and write.
struct Interleave {
    store: Arc<dyn Store>,
    target: HostId,
    at: Timestamp,
    fired: AtomicBool,
}

#[async_trait]
impl Hook for Interleave {
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        if let Call::CompareAndSwap(next) = call
            && next.host == self.target
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            let hb = Heartbeat::new(self.target.clone(), self.at);
            self.store
                .record_heartbeat(&hb, add(self.at, policy().timeout), true)
                .await?;
        }
        Ok(())
    }
}

/// A heartbeat landing between a monitor's read and its write makes the
/// write fail; the monitor reads again, sees the host alive, and alarms
/// nobody.
pub async fn heartbeat_between_read_and_write(store: Arc<dyn Store>) {
    let h = host("racy");
    beat(&*store, &h, at(0)).await;
    let clock = ManualClock::new(at(11));
    let wrapped: Arc<dyn Store> = Arc::new(Hooked::over(
        store.clone(),
        Interleave {
            store: store.clone(),
            target: h.clone(),
            at: at(11),
            fired: AtomicBool::new(false),
        },
    ));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(wrapped, &clock, vec![Arc::new(rec.clone())], "m1");
    let report = m.sweep().await.expect("sweep");
    assert!(
        report.conflicts >= 1,
        "{store}: the swap must lose to the heartbeat: {report:?}"
    );
    assert!(
        rec.notices().is_empty(),
        "{store}: no alarm for a host heard in time"
    );
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Up, "{store}");
    assert_eq!(r.last_seen, at(11));
    assert!(
        r.due_at.is_some_and(|d| d > at(11)),
        "{store}: re-armed: {:?}",
        r.due_at
    );
}

/// Alarm, throttled reminders, recovery, driven by a manual clock.
pub async fn lifecycle_through_monitor(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m1");
    let h = host("life");
    m.heartbeat(&Heartbeat::new(h.clone(), clock.now()))
        .await
        .expect("hb");
    clock.set(at(10) - chrono::TimeDelta::milliseconds(1));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: 1 ms before the deadline nothing happens"
    );
    clock.set(at(10));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.count(NoticeKind::Alarm),
        1,
        "{store}: alarm at the deadline"
    );
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.alarm_count, 1);
    assert!(r.outbox.is_none(), "{store}: outbox cleared after delivery");
    for s in [11, 30, 69] {
        clock.set(at(s));
        let _ = m.sweep().await.expect("sweep");
    }
    assert_eq!(
        rec.notices().len(),
        1,
        "{store}: no reminder inside the interval"
    );
    clock.set(at(70));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.count(NoticeKind::Reminder),
        1,
        "{store}: reminder after 60 s"
    );
    clock.set(at(75));
    m.heartbeat(&Heartbeat::new(h.clone(), clock.now()))
        .await
        .expect("hb");
    let _ = m.sweep().await.expect("sweep");
    let kinds: Vec<_> = rec.notices().iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NoticeKind::Alarm,
            NoticeKind::Reminder,
            NoticeKind::Recovery
        ],
        "{store}"
    );
    let recovery = &rec.notices()[2];
    assert_eq!(recovery.last_seen, at(0));
    assert_eq!(recovery.recovered_at, Some(at(75)));
    assert_eq!(recovery.alarm_count, 2);
    let r = get(&*store, &h).await;
    assert_eq!(
        (r.status, r.alarm_count, r.missing_since),
        (Status::Up, 0, None),
        "{store}"
    );
    assert_eq!(r.due_at, Some(at(85)));
}

/// Several monitors sweep one store at once over hundreds of outages: each
/// outage yields exactly one alarm and one recovery, none missed.
pub async fn concurrent_monitors(store: Arc<dyn Store>) {
    const HOSTS: usize = 40;
    const ROUNDS: u64 = 5;
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("shared");
    let monitors: Vec<_> = (0..3)
        .map(|i| {
            monitor(
                store.clone(),
                &clock,
                vec![Arc::new(rec.clone())],
                &format!("m{i}"),
            )
        })
        .collect();
    let hosts: Vec<HostId> = (0..HOSTS).map(|i| host(&format!("node-{i:03}"))).collect();
    let mut t = 0;
    for round in 0..ROUNDS {
        // Everyone reports, then a rotating subset falls silent.
        clock.set(at(t));
        for h in &hosts {
            monitors[0]
                .heartbeat(&Heartbeat::new(h.clone(), at(t)))
                .await
                .expect("hb");
        }
        let silent: Vec<&HostId> = hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u64 + round).is_multiple_of(2))
            .map(|(_, h)| h)
            .collect();
        let alive: Vec<&HostId> = hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| !(*i as u64 + round).is_multiple_of(2))
            .map(|(_, h)| h)
            .collect();
        for step in 1..=3 {
            clock.set(at(t + 5 * step));
            for h in &alive {
                monitors[1]
                    .heartbeat(&Heartbeat::new((*h).clone(), clock.now()))
                    .await
                    .expect("hb");
            }
            futures::future::join_all(monitors.iter().map(|m| m.sweep()))
                .await
                .into_iter()
                .for_each(|r| {
                    let _ = r.expect("sweep");
                });
        }
        // Recovery: the silent ones report again.
        clock.set(at(t + 20));
        for h in &silent {
            monitors[2]
                .heartbeat(&Heartbeat::new((*h).clone(), clock.now()))
                .await
                .expect("hb");
        }
        for h in &alive {
            monitors[2]
                .heartbeat(&Heartbeat::new((*h).clone(), clock.now()))
                .await
                .expect("hb");
        }
        futures::future::join_all(monitors.iter().map(|m| m.sweep()))
            .await
            .into_iter()
            .for_each(|r| {
                let _ = r.expect("sweep");
            });
        let notices = rec.notices();
        for h in &hosts {
            let mine: Vec<_> = notices
                .iter()
                .filter(|n| &n.host == h)
                .map(|n| n.kind)
                .collect();
            if silent.contains(&h) {
                assert_eq!(
                    mine,
                    [NoticeKind::Alarm, NoticeKind::Recovery],
                    "{store}: round {round}, {h}"
                );
            } else {
                assert!(
                    mine.is_empty(),
                    "{store}: round {round}, {h} was never silent: {mine:?}"
                );
            }
        }
        rec.clear();
        t += 30;
    }
}

/// A monitor that dies after claiming a notice leaves it owed; another
/// delivers it once the lease is over, not before.
pub async fn dead_owner_notice_redelivered(store: Arc<dyn Store>) {
    let h = host("orphan");
    beat(&*store, &h, at(0)).await;
    // The dead monitor's last act: decide and claim, in one swap.
    let r = get(&*store, &h).await;
    let d = decide::evaluate(&r, at(10), &policy(), &Default::default());
    assert_eq!(d.notices.len(), 1);
    let mut claimed =
        decide::claim(&d.next, "dead", at(10), Duration::from_secs(30)).expect("claimable");
    claimed.version = r.version + 1;
    assert!(
        store
            .compare_and_swap(r.version, &claimed)
            .await
            .expect("cas")
    );
    let clock = ManualClock::new(at(20));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "alive");
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: the lease still holds at 20 s"
    );
    clock.set(at(40));
    let _ = m.sweep().await.expect("sweep");
    let n = rec.notices();
    assert_eq!(n.len(), 1, "{store}: delivered after the lease");
    assert_eq!(n[0].id, d.notices[0].id, "{store}: the same notice id");
    assert_eq!(get(&*store, &h).await.status, Status::Alarmed);
}

/// A failing channel is retried with backoff; the channel that took the
/// notice is not given it again.
pub async fn failing_channel_retried_alone(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let good = RecordingNotifier::new("good");
    let flaky = RecordingNotifier::new("flaky");
    flaky.set_down(true);
    let m = monitor(
        store.clone(),
        &clock,
        vec![Arc::new(good.clone()), Arc::new(flaky.clone())],
        "m",
    );
    let h = host("retry");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    clock.set(at(10));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(good.notices().len(), 1);
    let r = get(&*store, &h).await;
    assert_eq!(
        r.status,
        Status::Missing,
        "{store}: not alarmed until every channel has it"
    );
    let ob = r.outbox.expect("still owed");
    assert_eq!(ob.delivered, ["good"]);
    assert_eq!(ob.next_attempt, at(11), "{store}: first retry after 1 s");
    clock.set(at(11));
    let _ = m.sweep().await.expect("sweep"); // fails again: next after 2 s
    assert_eq!(
        get(&*store, &h).await.outbox.expect("owed").next_attempt,
        at(13)
    );
    flaky.set_down(false);
    clock.set(at(12));
    let _ = m.sweep().await.expect("sweep");
    assert!(flaky.notices().is_empty(), "{store}: backoff respected");
    clock.set(at(13));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(flaky.notices().len(), 1, "{store}: delivered once back");
    assert_eq!(
        good.notices().len(),
        1,
        "{store}: the good channel was not repeated"
    );
    assert_eq!(flaky.notices()[0].id, good.notices()[0].id);
    let r = get(&*store, &h).await;
    assert_eq!(
        (r.status, r.last_alarm),
        (Status::Alarmed, Some(at(13))),
        "{store}"
    );
}

/// Silences: stored and shared; no alarm inside; alarm at the end if still
/// missing; a host back inside recovers quietly; removal re-arms at once.
pub async fn silences(store: Arc<dyn Store>) {
    let s = Silence::new(
        "mw-1",
        HostPattern::new("db-*").expect("p"),
        at(5),
        at(100),
        "patching ✓ \"db\"",
    )
    .expect("silence");
    store.put_silence(&s).await.expect("put");
    assert_eq!(
        store.silences().await.expect("list"),
        vec![s.clone()],
        "{store}: round trip"
    );
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    let (quiet, late, web) = (host("db-quiet"), host("db-late"), host("web-1"));
    for h in [&quiet, &late, &web] {
        m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
            .await
            .expect("hb");
    }
    clock.set(at(10));
    let _ = m.sweep().await.expect("sweep");
    let hosts: Vec<_> = rec.notices().into_iter().map(|n| n.host).collect();
    assert_eq!(
        hosts,
        vec![web.clone()],
        "{store}: only the unsilenced host alarms"
    );
    assert_eq!(get(&*store, &quiet).await.status, Status::Missing);
    clock.set(at(50));
    m.heartbeat(&Heartbeat::new(quiet.clone(), at(50)))
        .await
        .expect("hb");
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        get(&*store, &quiet).await.status,
        Status::Up,
        "{store}: back inside the silence"
    );
    assert_eq!(rec.notices().len(), 1, "{store}: quietly");
    clock.set(at(100));
    let _ = m.sweep().await.expect("sweep");
    let late_notices: Vec<_> = rec
        .notices()
        .into_iter()
        .filter(|n| n.host == late)
        .collect();
    assert_eq!(
        late_notices.len(),
        1,
        "{store}: alarm when the silence ends"
    );
    assert_eq!(late_notices[0].kind, NoticeKind::Alarm);
    assert!(
        store.silences().await.expect("list").is_empty(),
        "{store}: ended silences are purged"
    );
    // Removing a silence early makes what it held back due at once.
    let s2 = Silence::new(
        "mw-2",
        HostPattern::new("web-*").expect("p"),
        at(100),
        at(10_000),
        "long",
    )
    .expect("silence");
    m.add_silence(&s2).await.expect("put");
    let w2 = host("web-2");
    m.heartbeat(&Heartbeat::new(w2.clone(), at(100)))
        .await
        .expect("hb");
    clock.set(at(120));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(get(&*store, &w2).await.status, Status::Missing);
    assert!(m.remove_silence("mw-2").await.expect("remove"));
    assert!(
        !m.remove_silence("mw-2").await.expect("remove"),
        "{store}: absent the second time"
    );
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        get(&*store, &w2).await.status,
        Status::Alarmed,
        "{store}: alarmed at once after removal"
    );
}

/// Paused hosts never alarm; resumed hosts get a full timeout.
pub async fn pause_and_resume(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    let h = host("maint");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    let p = m.pause(&h).await.expect("pause").expect("known");
    assert_eq!(p.status, Status::Paused);
    assert!(m.pause(&host("nobody")).await.expect("pause").is_none());
    clock.set(at(1000));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: paused hosts are not watched"
    );
    assert!(store.due(at(1000), 10).await.expect("due").is_empty());
    let r = m.resume(&h).await.expect("resume").expect("known");
    assert_eq!(
        (r.status, r.due_at),
        (Status::Up, Some(at(1010))),
        "{store}"
    );
    clock.set(at(1009));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: a full timeout after resume"
    );
    clock.set(at(1010));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(rec.count(NoticeKind::Alarm), 1);
}

/// A pause with an end: the record is due at the end (and only then), a
/// heartbeat meanwhile moves `last_seen` but neither resumes it nor moves
/// its `due_at`, and the sweep at the end resumes it with a full timeout.
pub async fn timed_pause_resumes_by_itself(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    let h = host("maint-timed");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    let p = m
        .pause_until(&h, Some(at(100)))
        .await
        .expect("pause")
        .expect("known");
    assert_eq!((p.status, p.due_at), (Status::Paused, Some(at(100))));
    assert_eq!(get(&*store, &h).await, p, "{store}: the pause is stored");
    assert!(
        m.pause_until(&host("nobody"), Some(at(100)))
            .await
            .expect("pause")
            .is_none()
    );
    assert!(
        store
            .next_due()
            .await
            .expect("next_due")
            .is_some_and(|d| d <= at(100)),
        "{store}: the pause's end is in the due index"
    );
    clock.set(at(50));
    let out = m
        .heartbeat(&Heartbeat::new(h.clone(), at(50)))
        .await
        .expect("hb");
    assert_eq!(
        out,
        HeartbeatOutcome::Updated {
            status: Status::Paused
        },
        "{store}"
    );
    assert!(!out.needs_decision());
    let r = get(&*store, &h).await;
    assert_eq!(
        (r.status, r.due_at, r.last_seen),
        (Status::Paused, Some(at(100)), at(50)),
        "{store}: a heartbeat leaves a paused host paused and its due_at alone"
    );
    let just_before = add(at(99), ms(999));
    assert!(
        store.due(just_before, 10).await.expect("due").is_empty(),
        "{store}: not due before its end"
    );
    clock.set(just_before);
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(get(&*store, &h).await.status, Status::Paused, "{store}");
    let due: Vec<_> = store
        .due(at(100), 10)
        .await
        .expect("due")
        .into_iter()
        .map(|r| r.host)
        .collect();
    assert_eq!(due, vec![h.clone()], "{store}: due at its end");
    clock.set(at(100));
    let _ = m.sweep().await.expect("sweep");
    let r = get(&*store, &h).await;
    assert_eq!(
        (r.status, r.watch_from, r.due_at),
        (Status::Up, at(100), Some(at(110))),
        "{store}: resumed by the sweep at its end, a full timeout from the end"
    );
    assert!(rec.notices().is_empty(), "{store}: quietly");
    clock.set(add(at(109), ms(999)));
    let _ = m.sweep().await.expect("sweep");
    assert!(rec.notices().is_empty(), "{store}");
    clock.set(at(110));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.count(NoticeKind::Alarm),
        1,
        "{store}: a host that never came back is reported"
    );
}

/// A repeating silence is stored whole, covers each occurrence, outlives
/// the end of its first window and is purged only after its `until`.
pub async fn repeating_silences(store: Arc<dyn Store>) {
    // Minute 30 of every hour, for 10 minutes, in Berlin (whole hours from
    // UTC): 00:30-00:40Z, 01:30-01:40Z, 02:30-02:40Z, until 03:00Z.
    let repeat = Repeat::new(
        "30 * * * *",
        "Europe/Berlin",
        Duration::from_secs(600),
        Some(at(3 * 3600)),
    )
    .expect("repeat");
    let s = Silence::repeating(
        "hourly",
        HostPattern::new("db-*").expect("p"),
        at(0),
        repeat,
        "images ✓",
    )
    .expect("silence");
    assert_eq!(s.ends_at, at(2400), "the first window's end");
    store.put_silence(&s).await.expect("put");
    assert_eq!(
        store.silences().await.expect("list"),
        vec![s.clone()],
        "{store}: a repeating silence round-trips"
    );
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    let of = |h: &HostId| {
        rec.notices()
            .into_iter()
            .filter(|n| &n.host == h)
            .collect::<Vec<_>>()
    };
    // Silent from inside the first window: held to its end.
    let (d1, d2) = (host("db-1"), host("db-2"));
    clock.set(at(1795));
    m.heartbeat(&Heartbeat::new(d1.clone(), at(1795)))
        .await
        .expect("hb");
    clock.set(at(1805));
    let _ = m.sweep().await.expect("sweep");
    let r = get(&*store, &d1).await;
    assert_eq!((r.status, r.due_at), (Status::Missing, Some(at(2400))));
    assert!(of(&d1).is_empty(), "{store}: held inside the occurrence");
    clock.set(at(2400));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(of(&d1).len(), 1, "{store}: alarm when the occurrence ends");
    assert_eq!(
        store.silences().await.expect("list"),
        vec![s.clone()],
        "{store}: kept after its first window"
    );
    // The second occurrence holds another host's alarm.
    clock.set(at(5395));
    m.heartbeat(&Heartbeat::new(d2.clone(), at(5395)))
        .await
        .expect("hb");
    clock.set(at(5405));
    let _ = m.sweep().await.expect("sweep");
    assert!(of(&d2).is_empty(), "{store}: the second occurrence covers");
    clock.set(at(6000));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(of(&d2).len(), 1, "{store}");
    clock.set(at(3 * 3600) - chrono::TimeDelta::milliseconds(1));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(store.silences().await.expect("list").len(), 1, "{store}");
    clock.set(at(3 * 3600));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        store.silences().await.expect("list").is_empty(),
        "{store}: purged at its until"
    );
}

/// Remove and list: paging by host id, strictly after the cursor.
pub async fn remove_and_list(store: Arc<dyn Store>) {
    for i in 0..25 {
        beat(&*store, &host(&format!("h{i:02}")), at(0)).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<HostId> = None;
    loop {
        let page = store.list(after.as_ref(), 10).await.expect("list");
        assert!(page.len() <= 10, "{store}: limit");
        let Some(last) = page.last() else { break };
        after = Some(last.host.clone());
        seen.extend(page.into_iter().map(|r| r.host.to_string()));
    }
    let want: Vec<String> = (0..25).map(|i| format!("h{i:02}")).collect();
    assert_eq!(seen, want, "{store}: every host once, in order");
    assert!(store.remove(&host("h03")).await.expect("remove"));
    assert!(
        !store.remove(&host("h03")).await.expect("remove"),
        "{store}: absent"
    );
    assert!(store.get(&host("h03")).await.expect("get").is_none());
    assert_eq!(
        store.due(at(100), 100).await.expect("due").len(),
        24,
        "{store}: removed from the index"
    );
    assert!(!store.remove_silence("none").await.expect("remove_silence"));
}

/// The shared mark records downtime; the monitor gives hosts whose silence
/// overlaps it a full timeout after it resumes (no storm of false alarms).
pub async fn mark_and_startup_grace(store: Arc<dyn Store>) {
    let gap = Duration::from_secs(10);
    let m1 = store.mark_run(at(0), gap).await.expect("mark");
    assert_eq!(
        m1,
        MonitorMark {
            last_run: Some(at(0)),
            downtime: None
        },
        "{store}"
    );
    let m2 = store.mark_run(at(5), gap).await.expect("mark");
    assert_eq!(m2.downtime, None, "{store}: a short gap is no downtime");
    let m3 = store.mark_run(at(3), gap).await.expect("mark");
    assert_eq!(
        m3.last_run,
        Some(at(5)),
        "{store}: last_run never goes back"
    );
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let mut m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    m.options_mut().downtime_gap = Some(policy().timeout);
    m.options_mut().ingest_in_process = true;
    let h = host("grace");
    m.heartbeat(&Heartbeat::new(h.clone(), at(5)))
        .await
        .expect("hb");
    // The monitor (and the ingest) were down from 5 s to 60 s.
    clock.set(at(60));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: no alarm for silence overlapping the downtime"
    );
    let mark = store.mark_run(at(60), gap).await.expect("mark");
    assert_eq!(
        mark.downtime.map(|d| (d.from, d.until)),
        Some((at(5), at(60))),
        "{store}"
    );
    clock.set(at(69));
    let _ = m.sweep().await.expect("sweep");
    assert!(rec.notices().is_empty(), "{store}: still inside the grace");
    clock.set(at(70));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.count(NoticeKind::Alarm),
        1,
        "{store}: a full timeout after resuming, it alarms"
    );
}

/// Host ids at the edges of what is valid, and text with quotes, newlines
/// and non-ASCII in messages, reports and outboxes, round-trip unchanged.
pub async fn odd_input_round_trips(store: Arc<dyn Store>) {
    let long = host(&"a.b-c_d".repeat(37)[..253]);
    let mut hb = Heartbeat::new(long.clone(), at(0));
    hb.message = Some("it's \"fine\"\n\t— ✓ 🚀; DROP TABLE hosts; --".into());
    hb.report = Some(r#"{"failures":[{"kind":"dns","detail":"NXDOMAIN \"x\""}]}"#.into());
    store.record_heartbeat(&hb, at(10), true).await.expect("hb");
    let r = get(&*store, &long).await;
    assert_eq!(r.message, hb.message, "{store}");
    assert_eq!(r.report, hb.report, "{store}");
    let mut next = r.clone();
    next.outbox = Some(Box::new(Outbox::new(sample_notice(
        &long,
        NoticeKind::Alarm,
    ))));
    next.version = r.version + 1;
    assert!(store.compare_and_swap(r.version, &next).await.expect("cas"));
    assert_eq!(
        get(&*store, &long).await,
        next,
        "{store}: the outbox round-trips"
    );
    for name in ["x", "0", "a_b", "-lead", "trail.", ".lead", "..x"] {
        let h = host(name);
        beat(&*store, &h, at(1)).await;
        assert_eq!(get(&*store, &h).await.host, h, "{store}: {name:?}");
    }
    // Millisecond precision survives.
    let h = host("precise");
    let t = add(at(0), ms(1234));
    beat(&*store, &h, t).await;
    assert_eq!(
        get(&*store, &h).await.last_seen,
        t,
        "{store}: millisecond precision"
    );
}

/// A short restart of a watcher whose ingest runs with its monitor: the
/// heartbeats sent while it was down were lost, so each host whose silence
/// overlaps the restart gets that time back (no false alarm), and alarms
/// the overlap later than it would have.
pub async fn short_restart_gives_back_swallowed_time(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let running = |clock: &ManualClock| {
        let mut m = monitor(store.clone(), clock, vec![Arc::new(rec.clone())], "m");
        m.options_mut().ingest_in_process = true;
        m.options_mut().downtime_gap = None;
        m
    };
    let m = running(&clock);
    let h = host("restarted");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    for s in 0..=4 {
        clock.set(at(s));
        let _ = m.sweep().await.expect("sweep");
    }
    drop(m);
    // Down from the last mark (4 s) to 7 s: shorter than the timeout.
    clock.set(at(7));
    let m = running(&clock);
    let _ = m.sweep().await.expect("sweep");
    let mark = store.mark_run(at(7), Duration::MAX).await.expect("mark");
    assert_eq!(
        mark.downtime.map(|d| (d.from, d.until)),
        Some((at(4), at(7))),
        "{store}: the restart is downtime"
    );
    clock.set(at(10));
    let _ = m.sweep().await.expect("sweep");
    clock.set(at(12));
    let _ = m.sweep().await.expect("sweep");
    assert!(
        rec.notices().is_empty(),
        "{store}: no alarm at the plain deadline; 3 s of listening were lost"
    );
    clock.set(at(13));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.count(NoticeKind::Alarm),
        1,
        "{store}: still silent after the time given back: it alarms"
    );
    assert_eq!(
        rec.notices()[0].missing_since,
        at(13),
        "{store}: missing since the moved deadline"
    );
}

/// A channel that refuses an alarm for good while no other channel has
/// taken it: the alarm stays owed and is retried with backoff, never
/// dropped, and goes out once the channel accepts again. Beside a working
/// channel, the refusing one is given up for that notice and the working
/// one is told which channel refused what.
pub async fn refused_notice_stays_owed_and_is_announced(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let only = RecordingNotifier::new("only");
    only.set_refusing();
    let m = monitor(store.clone(), &clock, vec![Arc::new(only.clone())], "m");
    let h = host("refused");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .expect("hb");
    clock.set(at(10));
    let r = m.sweep().await.expect("sweep");
    assert_eq!(r.refused, 1, "{store}");
    let rec = get(&*store, &h).await;
    assert_eq!(rec.status, Status::Missing, "{store}: nobody was told");
    let ob = rec.outbox.expect("the alarm is still owed");
    assert_eq!(ob.next_attempt, at(11), "{store}: retried with backoff");
    assert_eq!(ob.refusals.len(), 1, "{store}: the refusal is on the host");
    assert_eq!(ob.refusals[0].channel, "only");
    assert!(m.health().degraded(), "{store}");
    only.set_down(false);
    clock.set(at(11));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(only.count(NoticeKind::Alarm), 1, "{store}: delivered late");
    assert_eq!(
        only.count(NoticeKind::Restored),
        1,
        "{store}: and the channel's all-clear"
    );
    assert_eq!(
        get(&*store, &h).await.status,
        Status::Alarmed,
        "{store}: now somebody was told"
    );
    assert!(!m.health().degraded(), "{store}");

    let good = RecordingNotifier::new("good");
    let bad = RecordingNotifier::new("bad");
    bad.set_refusing();
    let m = monitor(
        store.clone(),
        &clock,
        vec![Arc::new(good.clone()), Arc::new(bad.clone())],
        "m2",
    );
    let h2 = host("refused-2");
    m.heartbeat(&Heartbeat::new(h2.clone(), at(11)))
        .await
        .expect("hb");
    clock.set(at(21));
    let _ = m.sweep().await.expect("sweep");
    let rec = get(&*store, &h2).await;
    assert_eq!(rec.status, Status::Alarmed, "{store}: good took it");
    assert_eq!(good.count(NoticeKind::Alarm), 1, "{store}");
    let said = good.notices();
    let degraded: Vec<_> = said
        .iter()
        .filter(|n| n.kind == NoticeKind::Degraded)
        .collect();
    assert_eq!(degraded.len(), 1, "{store}: one notice about the refusal");
    let text = degraded[0].message.as_deref().unwrap_or_default();
    assert!(
        text.contains("bad") && text.contains("refused-2"),
        "{store}: names the channel and the host: {text}"
    );
    assert!(bad.notices().is_empty(), "{store}");
}

/// A timeout lowered while hosts were up (records written under the old,
/// longer one) applies to every host once a monitor re-arms them at start:
/// a host already silent alarms at its new deadline, not the old one.
pub async fn lowered_timeout_applies_at_once(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let long = Monitor::new(
        store.clone(),
        vec![Arc::new(rec.clone()) as Arc<dyn Notifier>],
        clock.clone(),
        PolicySet::new(Policy {
            timeout: Duration::from_secs(600),
            ..policy()
        }),
        MonitorOptions::default(),
    )
    .expect("channel names are unique");
    let quiet = host("lowered-quiet");
    let busy = host("lowered-busy");
    for h in [&quiet, &busy] {
        long.heartbeat(&Heartbeat::new(h.clone(), at(0)))
            .await
            .expect("hb");
    }
    drop(long);
    // Restarted with a 10 s timeout.
    let m = monitor(store.clone(), &clock, vec![Arc::new(rec.clone())], "m");
    assert_eq!(m.rearm_to_policy().await.expect("rearm"), 2, "{store}");
    assert_eq!(
        get(&*store, &quiet).await.due_at,
        Some(at(10)),
        "{store}: due at the new deadline"
    );
    assert_eq!(
        m.rearm_to_policy().await.expect("rearm"),
        0,
        "{store}: once"
    );
    clock.set(at(5));
    m.heartbeat(&Heartbeat::new(busy.clone(), at(5)))
        .await
        .expect("hb");
    clock.set(at(10));
    let _ = m.sweep().await.expect("sweep");
    assert_eq!(
        rec.notices()
            .iter()
            .map(|n| n.host.clone())
            .collect::<Vec<_>>(),
        [quiet],
        "{store}: the silent host alarms at its new deadline, the busy one not"
    );
}

/// A host's group is stored with it: a heartbeat that names one sets it in
/// whatever state the host is in, a heartbeat that names none keeps it, one
/// that names another replaces it; compare-and-swap, `list` and the owed
/// notice carry it, and the notices a monitor writes name it.
pub async fn groups_are_stored(store: Arc<dyn Store>) {
    let berlin = group("office-berlin");
    let h = host("ber-db-1");
    let mut hb = Heartbeat::new(h.clone(), at(0));
    hb.group = Some(berlin.clone());
    let due = add(at(0), policy().timeout);
    assert_eq!(
        store.record_heartbeat(&hb, due, true).await.expect("hb"),
        HeartbeatOutcome::Created
    );
    assert_eq!(
        get(&*store, &h).await.group,
        Some(berlin.clone()),
        "{store}: a new host takes the heartbeat's group"
    );
    // Beats without a group (the lazy and the full up path) keep it.
    beat(&*store, &h, at(1)).await;
    beat(&*store, &h, at(9)).await;
    let r = get(&*store, &h).await;
    assert_eq!(
        r.group,
        Some(berlin.clone()),
        "{store}: a bare beat keeps it"
    );
    assert_eq!(r.last_seen, at(9), "{store}");
    // The same group again (the common case) changes nothing else.
    hb.at = at(10);
    store
        .record_heartbeat(&hb, add(at(10), policy().timeout), true)
        .await
        .expect("hb");
    let r = get(&*store, &h).await;
    assert_eq!(r.group, Some(berlin.clone()), "{store}");
    assert_eq!(r.version, 4, "{store}: one bump per heartbeat");
    // Another group replaces it.
    let munich = group("office-munich");
    let mut moved = Heartbeat::new(h.clone(), at(11));
    moved.group = Some(munich.clone());
    store
        .record_heartbeat(&moved, add(at(11), policy().timeout), true)
        .await
        .expect("hb");
    assert_eq!(
        get(&*store, &h).await.group,
        Some(munich.clone()),
        "{store}"
    );

    // A missing host's heartbeat sets the group too (the recovery path).
    let mut next = get(&*store, &h).await;
    let v = next.version;
    next.status = Status::Missing;
    next.missing_since = Some(at(21));
    next.version = v + 1;
    assert!(store.compare_and_swap(v, &next).await.expect("cas"));
    let mut back = Heartbeat::new(h.clone(), at(30));
    back.group = Some(berlin.clone());
    store
        .record_heartbeat(&back, add(at(30), policy().timeout), true)
        .await
        .expect("hb");
    let r = get(&*store, &h).await;
    assert_eq!(r.group, Some(berlin.clone()), "{store}: missing host");
    assert_eq!(
        r.status,
        Status::Missing,
        "{store}: a heartbeat never decides"
    );

    // Compare-and-swap writes and clears it; list returns it.
    let mut next = r.clone();
    next.group = None;
    next.version = r.version + 1;
    assert!(store.compare_and_swap(r.version, &next).await.expect("cas"));
    assert_eq!(get(&*store, &h).await.group, None, "{store}: cleared");
    let mut next = get(&*store, &h).await;
    let v = next.version;
    next.group = Some(munich.clone());
    next.status = Status::Up;
    next.missing_since = None;
    next.due_at = Some(add(at(30), policy().timeout));
    next.version = v + 1;
    assert!(store.compare_and_swap(v, &next).await.expect("cas"));
    beat(&*store, &host("lone"), at(30)).await;
    let listed = store.list(None, 10).await.expect("list");
    let groups: Vec<_> = listed
        .iter()
        .map(|r| (r.host.as_str(), r.group.as_ref().map(GroupName::as_str)))
        .collect();
    assert_eq!(
        groups,
        [("ber-db-1", Some("office-munich")), ("lone", None)],
        "{store}: list carries groups"
    );

    // The alarm a monitor writes into the outbox names the group.
    let clock = ManualClock::new(at(30));
    let rec = Arc::new(RecordingNotifier::new("rec"));
    let m = monitor(store.clone(), &clock, vec![rec.clone()], "m1");
    clock.set(at(45));
    let _ = m.sweep().await.expect("sweep");
    let sent = rec.notices();
    let alarm = sent
        .iter()
        .find(|n| n.host == h && n.kind == NoticeKind::Alarm)
        .unwrap_or_else(|| panic!("{store}: an alarm for {h}; got {sent:?}"));
    assert_eq!(
        alarm.group,
        Some(munich),
        "{store}: the alarm names the group"
    );
    let lone = sent
        .iter()
        .find(|n| n.host.as_str() == "lone")
        .unwrap_or_else(|| panic!("{store}: an alarm for lone"));
    assert_eq!(lone.group, None, "{store}");
}
