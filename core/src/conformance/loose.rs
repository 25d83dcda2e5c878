//! Hosts without a group in the watcher-blind detection through a real
//! store, with two monitors sharing it: more than half of all hosts
//! silent within one wait is one "watcher may be blind" notice; a lone
//! host without a group alarms on time, never held.

use std::sync::Arc;
use std::time::Duration;

use super::blind::{two_monitors, two_monitors_with};
use super::{at, host};
use crate::model::add;
use crate::testing::RecordingNotifier;
use crate::{GroupName, Heartbeat, ManualClock, Monitor, Notice, NoticeKind, Store};

type Pair = (
    Monitor<dyn Store, ManualClock>,
    Monitor<dyn Store, ManualClock>,
);

/// Sweeps with both monitors each second from `from` to `to` while the
/// hosts `beating` heartbeat; every new notice with the second it came.
async fn run(
    pair: &Pair,
    clock: &ManualClock,
    ch: &RecordingNotifier,
    beating: &[&str],
    from: u64,
    to: u64,
) -> Vec<(u64, Notice)> {
    let mut seen: Vec<(u64, Notice)> = Vec::new();
    for s in from..=to {
        clock.set(at(s));
        for h in beating {
            pair.0
                .heartbeat(&Heartbeat::new(host(h), at(s)))
                .await
                .unwrap();
        }
        sweep_both(pair, ch, &mut seen, s).await;
    }
    seen
}

/// Both monitors sweep once; each new notice goes to `seen` with `s`.
async fn sweep_both((a, b): &Pair, ch: &RecordingNotifier, seen: &mut Vec<(u64, Notice)>, s: u64) {
    let _ = a.sweep().await.unwrap();
    let _ = b.sweep().await.unwrap();
    note_new(ch, seen, s);
}

/// `seen` is `n` host alarms, each on its own: no group, no blind notice.
fn alarms_alone(store: &dyn Store, seen: &[(u64, Notice)], n: usize) {
    assert_eq!(seen.len(), n, "{store}: {n} alarms: {seen:#?}");
    for (_, notice) in seen {
        assert!(
            notice.kind == NoticeKind::Alarm && !notice.is_blind() && !notice.is_group(),
            "{store}: each on its own: {notice:#?}"
        );
    }
}

/// Adds to `seen` each notice `ch` got that is not there yet, with the
/// second `s` it came.
fn note_new(ch: &RecordingNotifier, seen: &mut Vec<(u64, Notice)>, s: u64) {
    for n in ch.notices() {
        if !seen.iter().any(|(_, m)| m.id == n.id) {
            seen.push((s, n));
        }
    }
}

/// Two monitors with blind detection on (wait 5 s), every host's timeout
/// `timeout` seconds.
fn pair_with_timeout(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    ch: &RecordingNotifier,
    timeout: u64,
) -> Pair {
    let policy = crate::Policy {
        timeout: Duration::from_secs(timeout),
        ..super::policy()
    };
    two_monitors_with(store, clock, ch, Duration::from_secs(5), policy)
}

const HOSTS: [&str; 6] = ["h-0", "h-1", "h-2", "h-3", "h-4", "h-5"];

/// Six hosts without a group beating every second (they say so:
/// `"interval": 1`), timeout 30 s; four fall silent together (their last
/// beats 100 ms apart, deadlines 30.0 to 30.3 s) while two keep beating,
/// two monitors sweeping every second with blind detection on (wait 5 s).
/// At the sweep at 30 s only the first is due, alone in its batch; the
/// others have missed their expected beat and their deadlines fall within
/// the wait, so the monitor finds them in the due index and the first is
/// not a lone silence. On a store that keeps groups and counts its hosts:
/// exactly one watcher-blind notice, naming the four as the hosts without
/// a group, "4 of 6 hosts", within one wait of the first deadline (no host
/// alarm); once they are back, exactly one all-clear for it. On a store
/// that cannot count ([`Store::counts_hosts`]): each host alarms on its
/// own, at its deadline.
pub async fn hosts_without_a_group_half_silent_are_one_blind_notice(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let pair = pair_with_timeout(&store, &clock, &ch, 30);
    for (i, h) in HOSTS.iter().enumerate() {
        let mut hb = Heartbeat::new(host(h), add(at(0), Duration::from_millis(100 * i as u64)));
        hb.interval = Some(Duration::from_secs(1));
        pair.0.heartbeat(&hb).await.unwrap();
    }
    let (dark, beating) = HOSTS.split_at(4);
    let seen = run(&pair, &clock, &ch, beating, 1, 45).await;
    if !(store.keeps_groups() && store.counts_hosts()) {
        assert_eq!(seen.len(), 4, "{store}: each host alarms: {seen:#?}");
        assert!(
            seen.iter()
                .all(|(s, n)| n.kind == NoticeKind::Alarm && !n.is_blind() && *s <= 31),
            "{store}: at their deadline, never held: {seen:#?}"
        );
        return;
    }
    assert_eq!(
        seen.len(),
        1,
        "{store}: one notice, nothing else: {seen:#?}"
    );
    let (s, n) = &seen[0];
    assert!(
        n.is_blind() && n.kind == NoticeKind::Alarm,
        "{store}: {n:#?}"
    );
    assert!(*s <= 30 + 5 + 1, "{store}: within one wait: at {s}");
    let spot = n.blind_spot.as_deref().unwrap();
    assert_eq!(spot.sites.len(), 1, "{store}: {spot:?}");
    assert!(spot.sites[0].group.is_ungrouped(), "{store}: {spot:?}");
    let mut named: Vec<&str> = spot.sites[0].hosts.iter().map(|h| h.as_str()).collect();
    named.sort_unstable();
    assert_eq!(named, dark, "{store}: every silent host is named");
    assert_eq!(
        (spot.hosts_silent, spot.hosts_total),
        (4, Some(6)),
        "{store}"
    );
    assert!(
        n.subject()
            .contains("watcher may be blind: 4 of 6 hosts silent"),
        "{store}: {}",
        n.subject()
    );

    // They are back: one all-clear, nothing else.
    ch.clear();
    let seen = run(&pair, &clock, &ch, &HOSTS, 46, 70).await;
    assert_eq!(seen.len(), 1, "{store}: one all-clear: {seen:#?}");
    let back = &seen[0].1;
    assert!(
        back.is_blind() && back.kind == NoticeKind::Recovery,
        "{store}: {back:#?}"
    );
    assert_eq!(back.outage_id, n.outage_id, "{store}: one outage id");
    for g in [GroupName::watcher(), GroupName::ungrouped()] {
        let r = store.get_group(&g).await.unwrap().expect("stored");
        assert_eq!(
            r.phase,
            crate::group_outage::GroupPhase::Quiet,
            "{store}: {r:?}"
        );
        assert!(r.outbox.is_empty(), "{store}: {r:?}");
    }
}

/// Blind detection on (wait 5 s), six hosts without a group, two
/// monitors: one falling silent alone alarms at its deadline, not held;
/// two silent together later are two alarms at their deadline, not held
/// either; and three silent together after that (three of six: not more
/// than half) are held at most one wait, then each alarms on its own. No
/// blind notice is sent.
pub async fn a_host_without_a_group_alarms_on_time(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let pair = two_monitors(&store, &clock, &ch, Duration::from_secs(5));
    for h in HOSTS {
        pair.0
            .heartbeat(&Heartbeat::new(host(h), at(0)))
            .await
            .unwrap();
    }
    // h-0 stops at 0 (deadline 10).
    let seen = run(&pair, &clock, &ch, &HOSTS[1..], 1, 20).await;
    assert_eq!(seen.len(), 1, "{store}: {seen:#?}");
    let (s, n) = &seen[0];
    assert_eq!(
        (n.kind, n.host.as_str()),
        (NoticeKind::Alarm, "h-0"),
        "{store}"
    );
    assert!(*s <= 11, "{store}: on time, at {s}");
    // h-1 and h-2 stop at 20 (deadline 30).
    ch.clear();
    let seen = run(&pair, &clock, &ch, &HOSTS[3..], 21, 45).await;
    assert_eq!(seen.len(), 2, "{store}: two alarms: {seen:#?}");
    for (s, n) in &seen {
        assert!(
            n.kind == NoticeKind::Alarm && !n.is_blind(),
            "{store}: {n:#?}"
        );
        assert!(*s <= 31, "{store}: on time: at {s}");
    }
    // Everyone is back; then h-0, h-1 and h-2 stop together at 60
    // (deadline 70).
    let _ = run(&pair, &clock, &ch, &HOSTS, 46, 60).await;
    ch.clear();
    let seen = run(&pair, &clock, &ch, &HOSTS[3..], 61, 90).await;
    let alarms: Vec<&(u64, Notice)> = seen
        .iter()
        .filter(|(_, n)| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 3, "{store}: three alarms: {seen:#?}");
    for (s, n) in alarms {
        assert!(!n.is_blind() && !n.is_group(), "{store}: {n:#?}");
        assert!(*s <= 70 + 5 + 1, "{store}: within one wait: at {s}");
    }
}

/// Blind detection on (wait 5 s), twenty hosts without a group, timeout
/// 60 s, two monitors sweeping every second: three fall silent together
/// while the other seventeen keep beating (every 10 s, so none of them is
/// due within a minute). Three of twenty cannot be more than half by the
/// end of the wait, whatever happens meanwhile, so nobody is held: each
/// of the three alarms at its deadline, on its own, on every store. (A
/// gathering held them up to one wait for a blind notice that could not
/// come; the store's `count_due` says so.)
pub async fn hosts_without_a_group_too_few_to_be_half_alarm_on_time(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let pair = pair_with_timeout(&store, &clock, &ch, 60);
    let hosts: Vec<String> = (0..20).map(|i| format!("f-{i:02}")).collect();
    let mut seen: Vec<(u64, Notice)> = Vec::new();
    // f-00..f-02 beat at 0 only (deadline 60); the others every 10 s.
    for s in 0..=80u64 {
        clock.set(at(s));
        let beating = if s == 0 { &hosts[..] } else { &hosts[3..] };
        if s % 10 == 0 {
            for h in beating {
                pair.0
                    .heartbeat(&Heartbeat::new(host(h), at(s)))
                    .await
                    .unwrap();
            }
        }
        // Nothing is due before 55 (the others' deadlines are a minute
        // after their beats): sweeping from then on keeps this short on
        // a slow store.
        if s >= 55 {
            sweep_both(&pair, &ch, &mut seen, s).await;
        }
    }
    alarms_alone(&*store, &seen, 3);
    for (s, _) in &seen {
        assert!(*s <= 60, "{store}: at the deadline, not held: at {s}");
    }
}

/// Blind detection on (wait 5 s), twenty hosts without a group, timeout
/// 60 s, reminders hourly, two monitors: f-00..f-07 fall silent one by
/// one, 20 s apart (each alarms alone and is remembered), then f-08..f-10
/// together, while f-11..f-19 keep beating every 10 s. Eleven of twenty
/// are silent by then, but the eight from long before cannot be part of
/// a gathering begun now (it names those remembered within one wait of
/// its beginning), and three plus the hosts due by its end are not more
/// than half: every alarm goes out at its deadline, none held, on every
/// store. (Counting every host ever remembered held the last three.)
pub async fn hosts_without_a_group_failing_one_by_one_hold_nobody(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let policy = crate::Policy {
        timeout: Duration::from_secs(60),
        reminder_interval: Duration::from_secs(3600),
        ..super::policy()
    };
    let pair = two_monitors_with(&store, &clock, &ch, Duration::from_secs(5), policy);
    let hosts: Vec<String> = (0..20).map(|i| format!("f-{i:02}")).collect();
    // f-0i beats last at 20*i (i < 8), f-08..f-10 at 200, the others on.
    let last_beat = |i: usize| match i {
        0..8 => Some(20 * i as u64),
        8..11 => Some(200),
        _ => None,
    };
    let mut seen: Vec<(u64, Notice)> = Vec::new();
    for s in 0..=265u64 {
        clock.set(at(s));
        if s % 10 == 0 {
            for (i, h) in hosts.iter().enumerate() {
                if last_beat(i).is_none_or(|l| s <= l) {
                    pair.0
                        .heartbeat(&Heartbeat::new(host(h), at(s)))
                        .await
                        .unwrap();
                }
            }
        }
        // Every deadline falls on a multiple of 20 s; sweeping then, and
        // each second after the last, keeps this short on a slow store.
        if s % 20 == 0 || s > 260 {
            sweep_both(&pair, &ch, &mut seen, s).await;
        }
    }
    alarms_alone(&*store, &seen, 11);
    for (s, n) in &seen {
        let i: usize = n.host.as_str()[2..].parse().unwrap();
        let deadline = last_beat(i).expect("a silent host") + 60;
        assert_eq!(*s, deadline, "{store}: {} at its deadline", n.host);
    }
}

/// Blind detection on (wait 5 s), timeout 10 s, six hosts without a group
/// and without a known interval (so no missed beat can tell a peer), one
/// monitor sweeping in batches of one. h-0..h-3 stop together, their
/// deadlines 1 ms apart; the first sweep comes after all four deadlines,
/// so h-0 is alone in its batch while h-1..h-3 are still up, past their
/// deadlines, not yet reached by any sweep. They are its peers: no host
/// alarm at any point, and exactly one watcher-blind notice naming the
/// four, within one wait of the first deadline. (A fleet going dark comes
/// due milliseconds apart; a look-ahead that counted only missing hosts
/// and missed beats let the first host swept alarm alone.)
pub async fn hosts_without_a_group_past_their_deadline_unswept_are_peers(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let gp = crate::GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..crate::GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let monitor = Monitor::new(
        store.clone(),
        vec![Arc::new(ch.clone())],
        clock.clone(),
        crate::PolicySet::new(super::policy()),
        crate::MonitorOptions {
            batch: 1,
            ..super::options("a")
        },
    )
    .expect("one channel")
    .with_grouping(grouping)
    .with_blind_detection(Duration::from_secs(5));
    for (i, h) in HOSTS.iter().enumerate() {
        let hb = Heartbeat::new(host(h), add(at(0), Duration::from_millis(i as u64)));
        monitor.heartbeat(&hb).await.unwrap();
    }
    let timeout = super::policy().timeout.as_secs();
    let mut seen: Vec<(u64, Notice)> = Vec::new();
    // The first sweep at the last of the four deadlines, then each second.
    for step in 0..=20u64 {
        let t = add(at(timeout), Duration::from_millis(3 + step * 1000));
        clock.set(t);
        for h in &HOSTS[4..] {
            monitor
                .heartbeat(&Heartbeat::new(host(h), t))
                .await
                .unwrap();
        }
        let _ = monitor.sweep().await.unwrap();
        note_new(&ch, &mut seen, timeout + step);
    }
    if !(store.keeps_groups() && store.counts_hosts()) {
        assert_eq!(seen.len(), 4, "{store}: each host alarms: {seen:#?}");
        return;
    }
    assert!(
        seen.iter().all(|(_, n)| n.is_blind()),
        "{store}: no host alarms before or beside the blind notice: {seen:#?}"
    );
    assert_eq!(seen.len(), 1, "{store}: one notice: {seen:#?}");
    let (s, n) = &seen[0];
    assert_eq!(n.kind, NoticeKind::Alarm, "{store}: {n:#?}");
    assert!(*s <= timeout + 5 + 1, "{store}: within one wait: at {s}");
    let spot = n
        .blind_spot
        .as_deref()
        .expect("a blind notice names its sites");
    let mut named: Vec<&str> = spot.sites[0].hosts.iter().map(|h| h.as_str()).collect();
    named.sort_unstable();
    assert_eq!(named, HOSTS[..4], "{store}: the four are named");
}
