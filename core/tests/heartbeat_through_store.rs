//! Property test of the heartbeat rule and the state machine together:
//! random heartbeats, clock moves and sweeps driven through a real store
//! (the in-memory one, re-arming every time and lazily) by a monitor on a
//! manual clock. Whatever the lazy window leaves in the due index, no alarm
//! is early, none is late, every alarm gets its all-clear and no notice
//! goes out twice.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, Heartbeat, HostId, ManualClock, MemoryStore, Monitor, MonitorOptions, NoticeKind,
    Notifier, Policy, PolicySet, RetryPolicy, Status, Store, Timestamp, add,
};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Op {
    /// A heartbeat from host `0` or `1`.
    Beat(usize),
    Advance(u32),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2).prop_map(Op::Beat),
        4 => (1u32..15_000).prop_map(Op::Advance),
        3 => Just(Op::Sweep),
    ]
}

fn run(ops: Vec<Op>, store: MemoryStore) -> Result<(), TestCaseError> {
    let clock = ManualClock::at_millis(1_767_225_600_000);
    let channel = RecordingNotifier::new("ch");
    let store: Arc<dyn Store> = Arc::new(store);
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
    let policy = Policy {
        timeout: TIMEOUT,
        reminder_interval: Duration::from_secs(3600),
        // Every outage's own alarm at its deadline is what this pins; a
        // random history flaps often (flapping has its own tests).
        flapping: iamalive_core::flap::FlapPolicy::off(),
        ..Policy::default()
    };
    let monitor = Monitor::new(
        Arc::clone(&store),
        channels,
        clock.clone(),
        PolicySet::new(policy),
        MonitorOptions {
            owner: "m".into(),
            retry: RetryPolicy::default(),
            // Clock jumps are not downtime here: no startup grace.
            downtime_gap: Some(Duration::from_secs(1 << 30)),
            ingest_in_process: false,
            ..MonitorOptions::default()
        },
    )
    .expect("channel names are unique");
    let hosts = [HostId::new("a").unwrap(), HostId::new("b").unwrap()];
    let mut last_beat: [Option<Timestamp>; 2] = [None, None];
    let mut seen = 0;
    for op in ops {
        match op {
            Op::Beat(i) => {
                let now = clock.now();
                block_on(monitor.heartbeat(&Heartbeat::new(hosts[i].clone(), now))).unwrap();
                last_beat[i] = Some(now);
            }
            Op::Advance(ms) => clock.advance(Duration::from_millis(ms.into())),
            Op::Sweep => {
                let now = clock.now();
                let _ = block_on(monitor.sweep()).unwrap();
                let notices = channel.notices();
                for n in &notices[seen..] {
                    let i = hosts.iter().position(|h| *h == n.host).unwrap();
                    let beat = last_beat[i].unwrap();
                    if n.kind == NoticeKind::Alarm {
                        // Never early: silent for a whole timeout.
                        prop_assert!(now >= add(beat, TIMEOUT), "alarm at {now}, beat at {beat}");
                    }
                }
                seen = notices.len();
                for (i, h) in hosts.iter().enumerate() {
                    let Some(beat) = last_beat[i] else { continue };
                    let r = block_on(store.get(h)).unwrap().unwrap();
                    // Never late: past its deadline, the sweep alarmed it
                    // (the channel always works); within it, it is up.
                    let overdue = now >= add(beat, TIMEOUT);
                    prop_assert_eq!(
                        r.status,
                        if overdue { Status::Alarmed } else { Status::Up },
                        "{} at {} (beat at {}, due_at {:?})",
                        h,
                        now,
                        beat,
                        r.due_at
                    );
                    if !overdue {
                        // An up record is due by its deadline, never after.
                        prop_assert!(r.due_at.is_some_and(|d| d <= add(beat, TIMEOUT)));
                    }
                }
            }
        }
    }
    // Every alarm gets its all-clear once the hosts report again.
    for (i, h) in hosts.iter().enumerate() {
        if last_beat[i].is_some() {
            block_on(monitor.heartbeat(&Heartbeat::new(h.clone(), clock.now()))).unwrap();
        }
    }
    let _ = block_on(monitor.sweep()).unwrap();
    let notices = channel.notices();
    for a in notices.iter().filter(|n| n.kind == NoticeKind::Alarm) {
        prop_assert!(
            notices
                .iter()
                .any(|r| r.kind == NoticeKind::Recovery && r.outage_id == a.outage_id),
            "alarm {} never got its all-clear",
            a.id
        );
    }
    let mut ids: Vec<&str> = notices.iter().map(|n| n.id.as_str()).collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    prop_assert_eq!(ids.len(), all, "a notice went out twice");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn heartbeats_through_an_eager_store_never_make_an_alarm_early_or_late(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(ops, MemoryStore::new())?;
    }

    #[test]
    fn heartbeats_through_a_lazy_store_never_make_an_alarm_early_or_late(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(ops, MemoryStore::lazy())?;
    }
}
