//! Every signal on the manual clock, and property tests: a failure always
//! alarms, a success after a failure always recovers, a start never counts
//! as a success.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::decide::{ChannelOutcome, Context, RetryPolicy, Round, claim, evaluate, settle};
use crate::testing::RecordingNotifier;
use crate::{
    HostId, ManualClock, MemoryStore, MonitorOptions, Notice, Notifier, Policy, PolicySet, Silence,
};

const CH: &str = "ch";

fn t(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).expect("in range")
}

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(10),
        reminder_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

fn host() -> HostId {
    HostId::new("backup-db").unwrap()
}

fn rec_at(ms: i64) -> HostRecord {
    HostRecord::new(host(), t(ms), policy().timeout)
}

fn hb(ms: i64) -> Heartbeat {
    Heartbeat::new(host(), t(ms))
}

fn ok(r: &HostRecord, ms: i64, rid: Option<&str>) -> (HostRecord, Option<Duration>) {
    success(r, &hb(ms), rid, t(ms + 10_000))
}

/// Evaluates, claims and delivers everything owed at `now`, like a monitor
/// pass with one channel that takes everything.
fn pass(r: &HostRecord, now: Timestamp, c: &Context<'_>) -> (HostRecord, Vec<Notice>) {
    let p = policy();
    let mut rec = evaluate(r, now, &p, c).next;
    let mut delivered = Vec::new();
    for _ in 0..8 {
        let Some(claimed) = claim(&rec, "me", now, Duration::from_secs(30)) else {
            break;
        };
        let notice = claimed.outbox.clone().unwrap().notice;
        delivered.push(notice.clone());
        let results = vec![(CH.to_owned(), ChannelOutcome::Delivered)];
        let channels = [CH.to_owned()];
        let round = Round {
            notice_id: &notice.id,
            results: &results,
            channels: &channels,
        };
        rec = settle(&claimed, &round, now, &p, &RetryPolicy::default(), c)
            .expect("owned")
            .next;
    }
    (rec, delivered)
}

#[test]
fn a_failure_alarms_at_once_with_its_reason() {
    let r = rec_at(0);
    let failed = fail(&r, t(1_000), Some("disk full".into()), None);
    assert_eq!(failed.due_at, Some(t(1_000)), "due at once");
    assert_eq!(failed.last_seen, t(0), "a failure is not a heartbeat");
    let (after, sent) = pass(&failed, t(1_000), &Context::default());
    assert_eq!(sent.len(), 1);
    let alarm = &sent[0];
    assert_eq!(alarm.kind, NoticeKind::Alarm);
    assert_eq!(alarm.missing_since, t(1_000));
    assert_eq!(alarm.headline(), "backup-db reported a failure: disk full");
    assert!(
        alarm.body().contains("failure:       disk full"),
        "{}",
        alarm.body()
    );
    assert_eq!(after.status, Status::Alarmed);
    // Long before the silence deadline, it stays alarmed; reminders say
    // it is still failing.
    let (after, sent) = pass(&after, t(61_000), &Context::default());
    assert_eq!(after.status, Status::Alarmed);
    assert_eq!(sent[0].kind, NoticeKind::Reminder);
    assert_eq!(sent[0].headline(), "backup-db is still failing");
}

#[test]
fn a_success_after_failures_recovers_with_a_summary() {
    let r = rec_at(0);
    let r = fail(&r, t(1_000), Some("disk full".into()), None);
    let (r, _) = pass(&r, t(1_000), &Context::default());
    let r = fail(&r, t(2_000), Some("disk still full".into()), None);
    let (r, sent) = pass(&r, t(2_000), &Context::default());
    assert!(
        sent.is_empty(),
        "a second failure in the same outage adds no alarm"
    );
    assert_eq!(r.status, Status::Alarmed);
    let (r, d) = ok(&r, 3_000, None);
    assert_eq!(d, None, "no run was open");
    assert_eq!(r.due_at, Some(t(3_000)), "a recovery is due at once");
    let (r, sent) = pass(&r, t(3_000), &Context::default());
    assert_eq!(r.status, Status::Up);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    let note = sent[0].job.as_deref().expect("job note");
    assert_eq!(
        note.summary.as_deref(),
        Some("failed twice since 00:00 UTC: disk still full")
    );
    assert!(sent[0].body().contains("job:           failed twice"));
    assert!(r.job.is_none(), "the failures are forgotten: {:?}", r.job);
}

#[test]
fn a_failure_answered_before_any_sweep_still_alarms_then_recovers() {
    let r = rec_at(0);
    let r = fail(&r, t(1_000), Some("exit status 3".into()), None);
    let (r, _) = ok(&r, 1_500, None);
    assert_eq!(r.due_at, Some(t(1_000)), "the owed alarm keeps it due");
    let (r, sent) = pass(&r, t(1_600), &Context::default());
    let kinds: Vec<_> = sent.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NoticeKind::Alarm, NoticeKind::Recovery]);
    assert_eq!(r.status, Status::Up);
    assert_eq!(r.due_at, Some(t(11_500)));
}

/// A silence over `backup-*` for the first 100 s.
fn maintenance() -> [Silence; 1] {
    [Silence::new(
        "s",
        crate::HostPattern::new("backup-*").unwrap(),
        t(0),
        t(100_000),
        "maintenance",
    )
    .unwrap()]
}

#[test]
fn a_silenced_failure_recovers_quietly() {
    let silences = maintenance();
    let c = Context {
        silences: &silences,
        ..Context::default()
    };
    let r = fail(&rec_at(0), t(1_000), None, None);
    let (r, sent) = pass(&r, t(1_000), &c);
    assert!(sent.is_empty());
    assert_eq!(r.status, Status::Missing);
    let (r, _) = ok(&r, 2_000, None);
    let (r, sent) = pass(&r, t(2_000), &c);
    assert!(sent.is_empty());
    assert_eq!(r.status, Status::Up);
    assert!(r.job.is_none());
}

#[test]
fn a_paused_host_ignores_failures_and_a_pause_forgets_them() {
    let paused = crate::decide::pause(&rec_at(0));
    assert_eq!(fail(&paused, t(1_000), None, None), paused);
    let failed = fail(&rec_at(0), t(1_000), None, None);
    let paused = crate::decide::pause(&failed);
    assert!(paused.job.is_none());
    let resumed = crate::decide::resume(&paused, t(5_000), &policy());
    let (r, sent) = pass(&resumed, t(5_000), &Context::default());
    assert!(sent.is_empty());
    assert_eq!(r.status, Status::Up);
}

#[test]
fn a_start_is_not_a_success_and_a_run_that_never_ends_alarms_as_silence() {
    let r = rec_at(0);
    let started = start(&r, t(5_000), None);
    assert_eq!(started.last_seen, t(0));
    assert_eq!(started.due_at, r.due_at);
    let (s, sent) = pass(&started, t(9_999), &Context::default());
    assert!(sent.is_empty());
    assert_eq!(s.status, Status::Up);
    let (s, sent) = pass(&s, t(10_000), &Context::default());
    assert_eq!(s.status, Status::Alarmed);
    assert_eq!(sent[0].headline(), "backup-db has gone silent");
}

#[test]
fn a_success_after_a_start_records_the_duration_everywhere() {
    let r = start(&rec_at(0), t(1_000), None);
    let (r, d) = ok(&r, 4_500, None);
    assert_eq!(d, Some(Duration::from_millis(3_500)));
    let last = r.job.as_deref().unwrap().last_run.clone().unwrap();
    assert_eq!(last.duration, Duration::from_millis(3_500));
    assert!(r.job.as_deref().unwrap().runs.is_empty());

    // The run that ends an outage: its duration is in the all-clear.
    let r = fail(&r, t(6_000), Some("dump failed".into()), None);
    let (r, _) = pass(&r, t(6_000), &Context::default());
    let r = start(&r, t(7_000), None);
    let (r, d) = ok(&r, 9_000, None);
    assert_eq!(d, Some(Duration::from_secs(2)));
    let (_, sent) = pass(&r, t(9_000), &Context::default());
    let note = sent[0].job.as_deref().unwrap();
    assert_eq!(note.run_duration, Some(Duration::from_secs(2)));
    assert!(
        sent[0].body().contains("run took:      2s"),
        "{}",
        sent[0].body()
    );
}

#[test]
fn run_ids_pair_overlapping_runs() {
    let r = start(&rec_at(0), t(1_000), Some("a"));
    let r = start(&r, t(2_000), Some("b"));
    let (r, d) = ok(&r, 2_500, Some("a"));
    assert_eq!(d, Some(Duration::from_millis(1_500)));
    let (r, d) = ok(&r, 6_000, Some("b"));
    assert_eq!(d, Some(Duration::from_secs(4)));
    let (_, d) = ok(&r, 7_000, Some("c"));
    assert_eq!(d, None, "an unknown rid ends no run");
    // Without rids, the latest start is the one a success ends.
    let r = start(&rec_at(0), t(1_000), None);
    let r = start(&r, t(3_000), None);
    let (r, d) = ok(&r, 4_000, None);
    assert_eq!(d, Some(Duration::from_secs(1)));
    assert!(r.job.as_deref().unwrap().runs.is_empty());
}

#[test]
fn open_runs_are_bounded() {
    let mut r = rec_at(0);
    for i in 0..(MAX_OPEN_RUNS as i64 + 5) {
        r = start(&r, t(i), Some(&format!("r{i}")));
    }
    let runs = &r.job.as_deref().unwrap().runs;
    assert_eq!(runs.len(), MAX_OPEN_RUNS);
    assert_eq!(
        runs[0].rid.as_deref(),
        Some("r5"),
        "the oldest are forgotten"
    );
}

#[test]
fn signals_and_run_ids_parse() {
    for s in [Signal::Success, Signal::Fail, Signal::Start, Signal::Log] {
        assert_eq!(Signal::parse(s.as_str()), Some(s));
    }
    assert_eq!(Signal::parse("FAIL"), None);
    assert_eq!(Signal::from_exit_status(0), Signal::Success);
    assert_eq!(Signal::from_exit_status(3), Signal::Fail);
    assert!(check_rid("9f1b2c3d-1111-4222-8333-444455556666").is_ok());
    assert!(check_rid("").is_err());
    assert!(check_rid("a b").is_err());
    assert!(check_rid(&"x".repeat(MAX_RID_LEN + 1)).is_err());
}

#[test]
fn the_job_state_round_trips_through_json() {
    let r = fail(
        &start(&rec_at(0), t(1), Some("a")),
        t(2),
        Some("x".into()),
        None,
    );
    let job = r.job.as_deref().unwrap();
    let text = serde_json::to_string(job).unwrap();
    assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), *job);
}

fn monitor(
    clock: &ManualClock,
) -> (
    Arc<MemoryStore>,
    RecordingNotifier,
    Monitor<MemoryStore, ManualClock>,
) {
    let store = Arc::new(MemoryStore::new());
    let ch = RecordingNotifier::new(CH);
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(ch.clone())];
    let m = Monitor::new(
        store.clone(),
        channels,
        clock.clone(),
        PolicySet::new(policy()),
        MonitorOptions::default(),
    )
    .expect("channel names are unique");
    (store, ch, m)
}

#[tokio::test]
async fn the_monitor_applies_every_signal_through_the_store() {
    let clock = ManualClock::new(t(0));
    let (store, ch, m) = monitor(&clock);
    let h = host();
    let at = |ms| Heartbeat::new(h.clone(), t(ms));
    assert_eq!(
        m.signal(&at(0), Signal::Fail, None).await.unwrap(),
        SignalOutcome::Unknown
    );
    m.heartbeat(&at(0)).await.unwrap();
    let _ = m.sweep().await.unwrap();

    clock.set(t(1_000));
    let out = m
        .signal(&at(1_000), Signal::Start, Some("r1"))
        .await
        .unwrap();
    assert!(matches!(out, SignalOutcome::Applied { wake: false, .. }));
    let mut failure = at(3_000);
    failure.message = Some("disk full".into());
    clock.set(t(3_000));
    let out = m.signal(&failure, Signal::Fail, Some("r1")).await.unwrap();
    assert_eq!(
        out,
        SignalOutcome::Applied {
            status: Status::Up,
            wake: true,
            duration: Some(Duration::from_secs(2))
        }
    );
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        1,
        "one sweep delivers the alarm"
    );
    assert_eq!(
        ch.notices()[0].headline(),
        "backup-db reported a failure: disk full"
    );

    let log = m.signal(&at(3_500), Signal::Log, None).await.unwrap();
    assert!(matches!(
        log,
        SignalOutcome::Applied {
            status: Status::Alarmed,
            wake: false,
            ..
        }
    ));
    let before = store.get(&h).await.unwrap().unwrap();
    assert_eq!(before.status, Status::Alarmed, "a log changes nothing");

    clock.set(t(4_000));
    let out = m.signal(&at(4_000), Signal::Success, None).await.unwrap();
    assert!(matches!(
        out,
        SignalOutcome::Applied {
            status: Status::Alarmed,
            wake: true,
            ..
        }
    ));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Recovery), 1);
    let rec = store.get(&h).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
    assert_eq!(rec.last_seen, t(4_000));
}

/// A host created by its first start has no success to name: its alarm
/// says when the run started and that it never finished, a failure says
/// it never succeeded, and its first success ends that.
#[tokio::test]
async fn a_job_created_by_a_start_never_succeeded_until_it_does() {
    let clock = ManualClock::new(t(0));
    let (store, ch, m) = monitor(&clock);
    let h = host();
    let at = |ms| Heartbeat::new(h.clone(), t(ms));
    // The ingest creates the host (a registration), then the start lands.
    m.heartbeat_with(&at(0), true).await.unwrap();
    m.signal_created(&at(0), Signal::Start, None).await.unwrap();
    assert!(
        store
            .get(&h)
            .await
            .unwrap()
            .unwrap()
            .job
            .unwrap()
            .never_succeeded
    );
    clock.set(t(10_000));
    let _ = m.sweep().await.unwrap();
    let alarm = &ch.notices()[0];
    let note = alarm.job.as_deref().expect("a job note");
    assert!(note.never_succeeded, "{note:?}");
    assert_eq!(note.started, Some(t(0)));
    assert_eq!(alarm.never_succeeded(), Some(Some(t(0))));
    assert!(
        alarm
            .body()
            .contains("started at:    2026-01-01T00:00:00Z, never finished"),
        "{}",
        alarm.body()
    );
    assert!(!alarm.body().contains("last seen"), "{}", alarm.body());

    // Its first success: from now on its last_seen is a success.
    clock.set(t(12_000));
    m.signal(&at(12_000), Signal::Success, None).await.unwrap();
    let _ = m.sweep().await.unwrap();
    let rec = store.get(&h).await.unwrap().unwrap();
    assert!(rec.job.is_none_or(|j| !j.never_succeeded), "cleared");

    // A start on a host that already exists is not marked, even by
    // `signal_created`'s caller mistaking it for new: it has a last_seen
    // of its own.
    clock.set(t(13_000));
    m.signal_created(&at(13_000), Signal::Start, None)
        .await
        .unwrap();
    let rec = store.get(&h).await.unwrap().unwrap();
    assert!(!rec.job.unwrap().never_succeeded);
}

/// A failed job's all-clear says it succeeded again, not that it came
/// back from a silence.
#[test]
fn a_failed_jobs_all_clear_says_it_succeeded_again() {
    let failed = fail(&rec_at(0), t(1_000), Some("disk full".into()), None);
    let (r, _) = pass(&failed, t(1_000), &Context::default());
    let (back, _) = ok(&r, 8_000, None);
    let (_, sent) = pass(&back, t(8_000), &Context::default());
    let clear = sent.last().expect("an all-clear");
    assert_eq!(clear.kind, NoticeKind::Recovery);
    assert!(clear.after_failure());
    assert_eq!(clear.headline(), "backup-db succeeded again");
    let body = clear.body();
    assert!(
        body.starts_with("Host backup-db succeeded again."),
        "{body}"
    );
    assert!(body.contains("failing for:   7s in all"), "{body}");
    assert!(!body.contains("silent"), "{body}");
}

#[derive(Debug, Clone)]
enum Op {
    Success,
    Fail,
    Start,
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Success),
        2 => Just(Op::Fail),
        2 => Just(Op::Start),
        3 => (1i64..30_000).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// After every step a monitor pass runs. A failure always leaves the
    /// host alarmed; a success after a failure always brings it back up
    /// with an all-clear; and a twin that never got the starts behaves the
    /// same in every pass (a start never counts as a success).
    #[test]
    fn failures_alarm_successes_recover_starts_count_for_nothing(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let c = Context::default();
        let mut now = 0i64;
        let mut rec = rec_at(0);
        let mut twin = rec_at(0);
        for o in ops {
            let was_failing = rec.job.as_deref().is_some_and(|j| j.failure.is_some());
            let was = rec.status;
            match o {
                Op::Wait(ms) => now += ms,
                Op::Success => {
                    now += 1;
                    rec = ok(&rec, now, None).0;
                    twin = ok(&twin, now, None).0;
                }
                Op::Fail => {
                    now += 1;
                    rec = fail(&rec, t(now), Some("boom".into()), None);
                    twin = fail(&twin, t(now), Some("boom".into()), None);
                }
                Op::Start => {
                    now += 1;
                    let before = rec.clone();
                    rec = start(&rec, t(now), None);
                    prop_assert_eq!(rec.last_seen, before.last_seen);
                    prop_assert_eq!(rec.due_at, before.due_at);
                }
            }
            let (r, sent) = pass(&rec, t(now), &c);
            let (w, twin_sent) = pass(&twin, t(now), &c);
            rec = r;
            twin = w;
            let kinds: Vec<_> = sent.iter().map(|n| n.kind).collect();
            let twin_kinds: Vec<_> = twin_sent.iter().map(|n| n.kind).collect();
            prop_assert_eq!(&kinds, &twin_kinds);
            prop_assert_eq!(rec.status, twin.status);
            prop_assert_eq!(rec.last_seen, twin.last_seen);
            match o {
                Op::Fail => {
                    prop_assert_eq!(rec.status, Status::Alarmed);
                    prop_assert!(
                        was == Status::Alarmed || kinds.contains(&NoticeKind::Alarm),
                        "a failure alarms at once: {:?}", kinds
                    );
                }
                Op::Success if was_failing => {
                    prop_assert_eq!(rec.status, Status::Up);
                    prop_assert!(kinds.contains(&NoticeKind::Recovery), "{:?}", kinds);
                    prop_assert!(rec.job.as_deref().is_none_or(|j| j.failure.is_none()));
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_silent_host_that_reports_a_failure_is_news_at_once_and_once() {
    // Silent: alarmed at 10 s.
    let (r, sent) = pass(&rec_at(0), t(10_000), &Context::default());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Alarm);
    // It reports a failure at 20 s, long before the 70 s reminder: the
    // team hears it at once, with the reason.
    let failed = fail(&r, t(20_000), Some("db corrupted".into()), None);
    assert_eq!(failed.due_at, Some(t(20_000)), "due at once");
    let (r, sent) = pass(&failed, t(20_000), &Context::default());
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].kind, NoticeKind::Reminder);
    assert_eq!(
        sent[0].outage_id,
        format!("backup-db@{}", t(10_000).timestamp_millis())
    );
    assert!(
        sent[0].headline().contains("db corrupted"),
        "{}",
        sent[0].headline()
    );
    assert_eq!(r.status, Status::Alarmed);
    // A second failure in the same outage is no news.
    let again = fail(&r, t(25_000), Some("still corrupted".into()), None);
    let (r, sent) = pass(&again, t(25_000), &Context::default());
    assert!(sent.is_empty(), "{sent:?}");
    // The throttle goes on from the news: next reminder 60 s after it.
    let (_, sent) = pass(&r, t(79_999), &Context::default());
    assert!(sent.is_empty(), "{sent:?}");
    let (_, sent) = pass(&r, t(80_000), &Context::default());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Reminder);

    // Silenced: nothing at once.
    let silences = maintenance();
    let c = Context {
        silences: &silences,
        ..Context::default()
    };
    let (r, _) = pass(&rec_at(0), t(10_000), &Context::default());
    let failed = fail(&r, t(20_000), Some("db corrupted".into()), None);
    let (_, sent) = pass(&failed, t(20_000), &c);
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test]
async fn a_run_that_created_its_job_teaches_no_interval() {
    let clock = ManualClock::new(t(0));
    let (store, _ch, m) = monitor(&clock);
    let h = host();
    let at = |ms| Heartbeat::new(h.clone(), t(ms));
    // `iamalive-agent run` on a new job: created by its start, success
    // 2 ms later. The run's length is not the job's interval.
    m.heartbeat_with(&at(0), true).await.unwrap();
    m.signal_created(&at(0), Signal::Start, None).await.unwrap();
    clock.set(t(2));
    m.signal(&at(2), Signal::Success, None).await.unwrap();
    let rec = store.get(&h).await.unwrap().unwrap();
    assert_eq!(rec.interval.get(), None, "{:?}", rec.interval);
    // Its next run, 5 s later: the gap between successes is learned.
    clock.set(t(5_000));
    m.signal(&at(5_000), Signal::Success, None).await.unwrap();
    let rec = store.get(&h).await.unwrap().unwrap();
    assert_eq!(
        rec.interval.get(),
        Some((
            Duration::from_millis(4_998),
            crate::beat::IntervalSource::Learned
        ))
    );
}

#[test]
fn a_run_lasts_to_the_millisecond() {
    let end = t(0) + chrono::Duration::nanoseconds(1_521_379_976);
    assert_eq!(run_length(end, t(0)), Duration::from_millis(1_521));
    assert_eq!(
        humantime::format_duration(run_length(end, t(0))).to_string(),
        "1s 521ms"
    );
}
