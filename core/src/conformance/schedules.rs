//! Schedules through a real store: a policy set for one host is stored
//! with it, every monitor applies it, the heartbeat hot path keeps the
//! `due_at` the monitor armed from it, and a daily job alarms at tick +
//! grace.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use super::{get, host, monitor};
use crate::testing::RecordingNotifier;
use crate::{
    Clock, Heartbeat, HostPolicy, ManualClock, NoticeKind, Notifier, Schedule, Status, Store,
    Timestamp, add,
};

fn utc(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s).expect("test time").to_utc()
}

/// A daily 02:00 Europe/Berlin job with 30 minutes' grace is stored with
/// its host through one monitor and applied by another; a heartbeat on
/// the hot path leaves the `due_at` the monitor armed (not the
/// configuration's, which would be early by a day, nor late); the run
/// that does not come alarms once at 02:30 local, not a second before;
/// the success after it recovers; the policy can be replaced by a timeout
/// and forgotten again, and every monitor follows.
pub async fn schedule_persisted_and_monitors_agree(store: Arc<dyn Store>) {
    // 2026-01-01T00:00Z is 01:00 in Berlin (CET, UTC+1).
    let clock = ManualClock::new(utc("2026-01-01T00:00:00Z"));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let mut a = monitor(store.clone(), &clock, channels(), "a");
    let mut b = monitor(store.clone(), &clock, channels(), "b");
    // The clock jumps a day between sweeps; a running monitor marks itself
    // every few seconds, so no jump here counts as downtime.
    for m in [&mut a, &mut b] {
        m.options_mut().downtime_gap = Some(Duration::from_secs(7 * 86_400));
    }
    let h = host("backup-db");
    let daily = Schedule::new("0 2 * * *", "Europe/Berlin", Duration::from_secs(1800))
        .expect("valid schedule");

    let (rec, created) = a
        .set_policy(&h, Some(HostPolicy::Schedule(Box::new(daily.clone()))))
        .await
        .unwrap();
    assert!(
        created,
        "{store}: an unknown host is created with its policy"
    );
    assert_eq!(rec.due_at, Some(utc("2026-01-01T01:30:00Z")), "{store}");
    let stored = get(&*store, &h).await;
    assert_eq!(
        stored.policy.as_deref(),
        Some(&HostPolicy::Schedule(Box::new(daily.clone()))),
        "{store}: the policy is stored with the host"
    );
    assert_eq!(stored.due_at, Some(utc("2026-01-01T01:30:00Z")), "{store}");
    let listed = store.list(None, 10).await.unwrap();
    assert_eq!(
        listed[0].policy, stored.policy,
        "{store}: list returns it too"
    );

    // The 02:00 run succeeds at 02:05 local, through the one-write path
    // with the configuration's 10 s deadline: the store keeps the
    // monitor's due_at (early is allowed, the configured one is not).
    let run = utc("2026-01-01T01:05:00Z");
    clock.set(run);
    store
        .record_heartbeat(
            &Heartbeat::new(h.clone(), run),
            add(run, Duration::from_secs(10)),
            true,
        )
        .await
        .unwrap();
    let after = get(&*store, &h).await;
    assert_eq!(after.last_seen, run, "{store}");
    assert_eq!(
        after.due_at,
        Some(utc("2026-01-01T01:30:00Z")),
        "{store}: a heartbeat leaves the due_at of a host with a stored policy alone"
    );
    // Through the monitor too.
    a.heartbeat(&Heartbeat::new(h.clone(), run)).await.unwrap();
    assert_eq!(
        get(&*store, &h).await.due_at,
        Some(utc("2026-01-01T01:30:00Z")),
        "{store}"
    );

    // The other monitor re-arms it to the next night's 02:30 local.
    clock.set(utc("2026-01-01T01:30:00Z"));
    let _ = b.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 0, "{store}: the run came");
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Up, "{store}");
    assert_eq!(r.due_at, Some(utc("2026-01-02T01:30:00Z")), "{store}");

    // The next run does not come: nothing at 02:29:59, the alarm at 02:30.
    clock.set(utc("2026-01-02T01:29:59Z"));
    let _ = a.sweep().await.unwrap();
    let _ = b.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 0, "{store}: still in grace");
    clock.set(utc("2026-01-02T01:30:00Z"));
    let _ = b.sweep().await.unwrap();
    let _ = a.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        1,
        "{store}: one alarm at tick + grace"
    );
    let alarm = ch.notices().into_iter().next().expect("the alarm");
    assert_eq!(alarm.missing_since, utc("2026-01-02T01:30:00Z"), "{store}");
    assert_eq!(get(&*store, &h).await.status, Status::Alarmed, "{store}");

    // It runs late; the success recovers it.
    let late = utc("2026-01-02T01:40:00Z");
    clock.set(late);
    a.heartbeat(&Heartbeat::new(h.clone(), late)).await.unwrap();
    let _ = b.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Recovery), 1, "{store}");
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Up, "{store}");
    assert_eq!(r.due_at, Some(utc("2026-01-03T01:30:00Z")), "{store}");

    // Replaced by a timeout: re-armed at once, seen by the other monitor.
    let (r, created) = b
        .set_policy(&h, Some(HostPolicy::Timeout(Duration::from_secs(3600))))
        .await
        .unwrap();
    assert!(!created, "{store}");
    assert_eq!(
        r.due_at,
        Some(add(late, Duration::from_secs(3600))),
        "{store}"
    );
    clock.set(add(late, Duration::from_secs(3599)));
    let _ = a.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 1, "{store}: not yet");
    clock.set(add(late, Duration::from_secs(3600)));
    let _ = a.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        2,
        "{store}: the stored timeout, not the configured 10 s"
    );

    // Forgotten: the configuration's policy (10 s) applies again.
    let g = host("plain-job");
    let now = Clock::now(&clock);
    a.set_policy(&g, Some(HostPolicy::Timeout(Duration::from_secs(7200))))
        .await
        .unwrap();
    let (r, _) = b.set_policy(&g, None).await.unwrap();
    assert_eq!(r.policy, None, "{store}");
    assert_eq!(r.due_at, Some(add(now, Duration::from_secs(10))), "{store}");
    assert_eq!(get(&*store, &g).await.policy, None, "{store}");
}

/// A policy that would allow a host's silence does not end the outage the
/// team was told about: only a report does. The host alarmed under the
/// configuration's 10 s; an hour's timeout set through the API leaves it
/// alarmed (no all-clear: it never reported), forgetting that policy again
/// raises no second alarm, and the report that finally comes is the one
/// all-clear, of the first outage. An alarm nobody was told about yet is
/// dropped instead when the new policy allows the silence.
pub async fn a_longer_policy_ends_no_outage(store: Arc<dyn Store>) {
    let t0 = utc("2026-03-01T12:00:00Z");
    let clock = ManualClock::new(t0);
    let ch = RecordingNotifier::new("ch");
    let m = monitor(store.clone(), &clock, vec![Arc::new(ch.clone())], "a");
    let h = host("slow-job");
    m.heartbeat(&Heartbeat::new(h.clone(), t0)).await.unwrap();
    clock.set(add(t0, Duration::from_secs(10)));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 1, "{store}: alarmed at 10 s");
    let alarm = ch.notices().into_iter().next().expect("the alarm");

    clock.set(add(t0, Duration::from_secs(12)));
    let hour = Some(HostPolicy::Timeout(Duration::from_secs(3600)));
    let _ = m.set_policy(&h, hour.clone()).await.unwrap();
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Recovery),
        0,
        "{store}: no all-clear for a host that never reported"
    );
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Alarmed, "{store}: still in its outage");
    assert_eq!(r.last_seen, t0, "{store}");

    clock.set(add(t0, Duration::from_secs(14)));
    let _ = m.set_policy(&h, None).await.unwrap();
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        1,
        "{store}: the outage goes on, no second alarm"
    );

    let back = add(t0, Duration::from_secs(20));
    clock.set(back);
    m.heartbeat(&Heartbeat::new(h.clone(), back)).await.unwrap();
    let _ = m.sweep().await.unwrap();
    let recoveries: Vec<_> = ch
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Recovery)
        .collect();
    assert_eq!(recoveries.len(), 1, "{store}: one all-clear, on the report");
    assert_eq!(
        recoveries[0].outage_id, alarm.outage_id,
        "{store}: of the outage the alarm opened"
    );
    assert_eq!(recoveries[0].recovered_at, Some(back), "{store}");
    assert_eq!(get(&*store, &h).await.status, Status::Up, "{store}");

    // Silent again, silenced as it goes missing: nobody is told. A policy
    // that allows the silence then ends that outage quietly.
    let quiet = host("quiet-job");
    m.heartbeat(&Heartbeat::new(quiet.clone(), back))
        .await
        .unwrap();
    let silence = crate::Silence::new(
        "hush",
        crate::HostPattern::new("quiet-*").expect("a valid pattern"),
        back,
        add(back, Duration::from_secs(60)),
        "",
    )
    .expect("a valid silence");
    store.put_silence(&silence).await.unwrap();
    clock.set(add(back, Duration::from_secs(10)));
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        get(&*store, &quiet).await.status,
        Status::Missing,
        "{store}"
    );
    let _ = m.set_policy(&quiet, hour).await.unwrap();
    let _ = m.sweep().await.unwrap();
    let r = get(&*store, &quiet).await;
    assert_eq!(r.status, Status::Up, "{store}: nobody was told: up quietly");
    assert_eq!(
        r.due_at,
        Some(add(back, Duration::from_secs(3600))),
        "{store}: watched under the new policy"
    );
    assert!(
        ch.notices().iter().all(|n| n.host != quiet),
        "{store}: nothing about the quiet host"
    );
}
