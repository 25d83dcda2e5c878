//! Job signals through a real store: the job state is persisted with the
//! host, survives the heartbeat hot path, and several monitors agree.

use std::sync::Arc;
use std::time::Duration;

use super::{at, get, host, monitor};
use crate::job::{Signal, SignalOutcome};
use crate::testing::RecordingNotifier;
use crate::{Heartbeat, ManualClock, NoticeKind, Notifier, Status, Store, add};

/// A failure sent through one monitor is alarmed by another's next sweep,
/// once; a start and the success that ends it record the run's duration in
/// the stored record; a plain heartbeat keeps the job state; the success
/// after the failure recovers with an all-clear that says how often it
/// failed.
pub async fn job_signals_persist_and_monitors_agree(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let a = monitor(store.clone(), &clock, channels(), "a");
    let b = monitor(store.clone(), &clock, channels(), "b");
    let h = host("backup-db");
    let sig = |secs: u64, msg: Option<&str>| {
        let mut hb = Heartbeat::new(h.clone(), at(secs));
        hb.message = msg.map(str::to_owned);
        hb
    };
    assert_eq!(
        a.signal(&sig(0, None), Signal::Start, None).await.unwrap(),
        SignalOutcome::Unknown,
        "{store}: a signal for an unknown host writes nothing"
    );
    a.heartbeat(&sig(0, None)).await.unwrap();

    clock.set(at(1));
    a.signal(&sig(1, None), Signal::Start, Some("r-1"))
        .await
        .unwrap();
    let r = get(&*store, &h).await;
    assert_eq!(r.last_seen, at(0), "{store}: a start is not a success");
    assert_eq!(r.job.as_deref().map(|j| j.runs.len()), Some(1), "{store}");
    clock.set(at(4));
    let out = b
        .signal(&sig(4, None), Signal::Success, Some("r-1"))
        .await
        .unwrap();
    assert!(
        matches!(out, SignalOutcome::Applied { duration: Some(d), .. } if d == Duration::from_secs(3)),
        "{store}: {out:?}"
    );
    let r = get(&*store, &h).await;
    let last = r.job.as_deref().and_then(|j| j.last_run.clone());
    assert_eq!(
        last.map(|l| l.duration),
        Some(Duration::from_secs(3)),
        "{store}: the run's duration is stored with the host"
    );

    // The hot path keeps the job state.
    clock.set(at(5));
    store
        .record_heartbeat(&sig(5, None), add(at(5), Duration::from_secs(10)), true)
        .await
        .unwrap();
    assert_eq!(
        get(&*store, &h).await.job,
        r.job,
        "{store}: heartbeat kept job"
    );

    clock.set(at(6));
    let out = a
        .signal(&sig(6, Some("disk full")), Signal::Fail, None)
        .await
        .unwrap();
    assert!(
        matches!(out, SignalOutcome::Applied { wake: true, .. }),
        "{store}: {out:?}"
    );
    assert_eq!(
        get(&*store, &h).await.due_at,
        Some(at(6)),
        "{store}: due now"
    );
    let (ra, rb) = tokio_join(a.sweep(), b.sweep()).await;
    let _ = ra.unwrap();
    let _ = rb.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        1,
        "{store}: one alarm from two monitors"
    );
    assert_eq!(
        ch.notices()[0].headline(),
        "backup-db reported a failure: disk full"
    );
    clock.set(at(7));
    a.signal(&sig(7, Some("again")), Signal::Fail, None)
        .await
        .unwrap();
    let _ = b.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 1, "{store}: same outage");

    clock.set(at(8));
    let out = b
        .signal(&sig(8, None), Signal::Success, None)
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            SignalOutcome::Applied {
                status: Status::Alarmed,
                wake: true,
                ..
            }
        ),
        "{store}: {out:?}"
    );
    let _ = a.sweep().await.unwrap();
    let recoveries: Vec<_> = ch
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Recovery)
        .collect();
    assert_eq!(recoveries.len(), 1, "{store}");
    assert_eq!(
        recoveries[0]
            .job
            .as_deref()
            .and_then(|j| j.summary.as_deref()),
        Some("failed twice since 00:00 UTC: again"),
        "{store}"
    );
    let r = get(&*store, &h).await;
    assert_eq!(r.status, Status::Up, "{store}");
    assert!(
        r.job.as_deref().is_none_or(|j| j.failure.is_none()),
        "{store}: failures forgotten after the recovery"
    );
}

/// Both futures at once, without a runtime dependency.
async fn tokio_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    futures::join!(a, b)
}

/// Each host's event log: newest first, bounded to `keep` with the oldest
/// dropped, separate per host, deleted with the host; signals and the
/// notices they cause are logged by the monitor.
pub async fn event_log_bounded_per_host(store: Arc<dyn Store>) {
    use crate::{Event, EventKind, MAX_EVENTS};
    let (a, b) = (host("job-a"), host("job-b"));
    for i in 0..(MAX_EVENTS as u64 + 5) {
        let mut e = Event::new(EventKind::Log, at(i));
        e.message = Some(format!("line {i}"));
        store.append_event(&a, &e, MAX_EVENTS).await.unwrap();
    }
    store
        .append_event(&b, &Event::new(EventKind::Start, at(1)), MAX_EVENTS)
        .await
        .unwrap();
    let all = store.events(&a, 1000).await.unwrap();
    assert_eq!(all.len(), MAX_EVENTS, "{store}: bounded");
    assert_eq!(
        all[0].message.as_deref(),
        Some("line 104"),
        "{store}: newest first"
    );
    assert_eq!(
        all[MAX_EVENTS - 1].message.as_deref(),
        Some("line 5"),
        "{store}: the oldest dropped"
    );
    let three = store.events(&a, 3).await.unwrap();
    assert_eq!(three, all[..3].to_vec(), "{store}: limit");
    assert_eq!(store.events(&b, 10).await.unwrap().len(), 1, "{store}");
    assert!(
        store.events(&host("nobody"), 10).await.unwrap().is_empty(),
        "{store}"
    );

    // Through a monitor: the signals and the notices they cause.
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let m = monitor(store.clone(), &clock, vec![Arc::new(ch.clone())], "m");
    let h = host("backup-db");
    m.heartbeat(&Heartbeat::new(h.clone(), at(0)))
        .await
        .unwrap();
    clock.set(at(1));
    m.signal(&Heartbeat::new(h.clone(), at(1)), Signal::Start, Some("r"))
        .await
        .unwrap();
    clock.set(at(3));
    let mut failure = Heartbeat::new(h.clone(), at(3));
    failure.message = Some("disk full".into());
    m.signal(&failure, Signal::Fail, Some("r")).await.unwrap();
    let _ = m.sweep().await.unwrap();
    clock.set(at(4));
    m.signal(&Heartbeat::new(h.clone(), at(4)), Signal::Success, None)
        .await
        .unwrap();
    let _ = m.sweep().await.unwrap();
    let log = store.events(&h, 10).await.unwrap();
    let kinds: Vec<_> = log.iter().rev().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Start,
            EventKind::Fail,
            EventKind::Alarm,
            EventKind::Success,
            EventKind::Recovery
        ],
        "{store}: {log:?}"
    );
    let fail = &log[3];
    assert_eq!(fail.message.as_deref(), Some("disk full"), "{store}");
    assert_eq!(fail.duration, Some(Duration::from_secs(2)), "{store}");
    assert_eq!(fail.rid.as_deref(), Some("r"), "{store}");
    assert_eq!(
        log[0].message.as_deref(),
        Some("backup-db succeeded again; failed once since 00:00 UTC: disk full"),
        "{store}"
    );

    assert!(store.remove(&a).await.is_ok());
    assert!(
        store.events(&a, 10).await.unwrap().is_empty(),
        "{store}: the log goes with the host"
    );
}
