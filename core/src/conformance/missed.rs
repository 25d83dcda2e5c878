//! "Missed a beat": the host's interval kept by the store, a group's hosts
//! read by its index, and hosts past their expected beat named as
//! evidence in one group alarm (see [`crate::beat`] and
//! [`crate::group_outage::missed`]).

use std::sync::Arc;
use std::time::Duration;

use super::{at, host, monitor_with};
use crate::beat::IntervalSource;
use crate::testing::RecordingNotifier;
use crate::{
    GroupName, GroupPolicy, Heartbeat, ManualClock, Notice, NoticeKind, Notifier, Policy, Store,
    add,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn beat(g: Option<&GroupName>, name: &str, s: u64, interval: Option<u64>) -> Heartbeat {
    let mut hb = Heartbeat::new(host(name), at(s));
    hb.group = g.cloned();
    hb.interval = interval.map(secs);
    hb
}

async fn record(store: &dyn Store, hb: &Heartbeat) {
    store
        .record_heartbeat(hb, add(hb.at, secs(600)), true)
        .await
        .expect("record_heartbeat");
}

async fn interval_of(store: &dyn Store, name: &str) -> Option<(Duration, IntervalSource)> {
    store
        .get(&host(name))
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{name} should exist"))
        .interval
        .get()
}

/// The heartbeat keeps the host's interval in the same write: the one it
/// sent (replaced by the next beat's, cleared by a beat without one), or
/// learned from the gaps between beats while the host is up (the larger of
/// the last two); a compare-and-swap keeps it. A store that keeps groups
/// reads a group's hosts by its index, following a host that moves.
pub async fn interval_and_group_hosts_are_stored(store: Arc<dyn Store>) {
    let s = &*store;
    let ber = GroupName::new("office-berlin").unwrap();
    let par = GroupName::new("office-paris").unwrap();
    record(s, &beat(Some(&ber), "iv-sent", 0, Some(60))).await;
    assert_eq!(
        interval_of(s, "iv-sent").await,
        Some((secs(60), IntervalSource::Sent)),
        "{store}: a new host keeps the interval its first beat sent"
    );
    // The same interval again (the fast path), then another one.
    record(s, &beat(Some(&ber), "iv-sent", 60, Some(60))).await;
    assert_eq!(
        interval_of(s, "iv-sent").await,
        Some((secs(60), IntervalSource::Sent)),
        "{store}"
    );
    record(s, &beat(None, "iv-sent", 90, Some(30))).await;
    assert_eq!(
        interval_of(s, "iv-sent").await,
        Some((secs(30), IntervalSource::Sent)),
        "{store}: the latest beat's interval replaces the stored one"
    );
    // Beats without one: learned from the gaps.
    record(s, &beat(Some(&ber), "iv-ping", 0, None)).await;
    assert_eq!(
        interval_of(s, "iv-ping").await,
        None,
        "{store}: nothing known from one beat"
    );
    record(s, &beat(None, "iv-ping", 50, None)).await;
    assert_eq!(
        interval_of(s, "iv-ping").await,
        Some((secs(50), IntervalSource::Learned)),
        "{store}: the gap since the last beat is learned"
    );
    // An early beat (a retry) does not shrink it: the larger of two gaps.
    let mut early = beat(None, "iv-ping", 50, None);
    early.at = add(at(50), Duration::from_millis(1500));
    record(s, &early).await;
    assert_eq!(
        interval_of(s, "iv-ping").await,
        Some((secs(50), IntervalSource::Learned)),
        "{store}: one early beat does not shrink the learned interval"
    );
    let rec = store.get(&host("iv-ping")).await.unwrap().unwrap();
    assert_eq!(
        (rec.interval.gap_ms, rec.interval.prev_gap_ms),
        (1500, 50_000),
        "{store}: the last two gaps, in milliseconds"
    );
    record(s, &beat(None, "iv-ping", 111, None)).await;
    assert_eq!(
        interval_of(s, "iv-ping").await,
        Some((Duration::from_millis(59_500), IntervalSource::Learned)),
        "{store}"
    );
    // A compare-and-swap writes it back as it is.
    let mut next = store.get(&host("iv-ping")).await.unwrap().unwrap();
    let expected = next.version;
    next.version += 1;
    next.message = Some("swapped".into());
    assert!(store.compare_and_swap(expected, &next).await.unwrap());
    let back = store.get(&host("iv-ping")).await.unwrap().unwrap();
    assert_eq!(back.interval, next.interval, "{store}: kept by a swap");
    // A beat that sends one after beats that did not: sent wins.
    record(s, &beat(None, "iv-ping", 171, Some(45))).await;
    assert_eq!(
        interval_of(s, "iv-ping").await,
        Some((secs(45), IntervalSource::Sent)),
        "{store}"
    );
    // Gaps to the nanosecond, floored to milliseconds: 1.000001 ms is 1
    // (not the 2 its whole-millisecond instants differ by); a beat at the
    // same instant is a gap of 0; a beat with a message (another path in
    // some stores) learns the same way.
    let ns = |n: u64| add(at(0), Duration::from_nanos(n));
    for (n, message, want) in [
        (999_999, false, None),
        (2_000_000, false, Some((1, 0))),
        (2_000_000, false, Some((0, 1))),
        (5_000_001, true, Some((3, 0))),
        (5_000_002, false, Some((1, 3))),
    ] {
        let mut hb = beat(None, "iv-ns", 0, None);
        hb.at = ns(n);
        hb.message = message.then(|| "with a message".to_owned());
        record(s, &hb).await;
        let i = store.get(&host("iv-ns")).await.unwrap().unwrap().interval;
        if let Some(want) = want {
            assert_eq!(
                (i.gap_ms, i.prev_gap_ms),
                want,
                "{store}: the gaps after a beat {n} ns past the start"
            );
        }
    }
    if !store.keeps_groups() {
        return;
    }
    record(s, &beat(Some(&par), "iv-paris", 0, None)).await;
    let names = |hosts: Vec<crate::HostRecord>| {
        let mut v: Vec<String> = hosts.iter().map(|r| r.host.as_str().to_owned()).collect();
        v.sort();
        v
    };
    let read = |g: GroupName| {
        let store = store.clone();
        async move {
            store
                .group_hosts(&g, 100)
                .await
                .expect("group_hosts")
                .unwrap_or_else(|| panic!("{store} keeps groups: it must read a group's hosts"))
        }
    };
    assert_eq!(
        names(read(ber.clone()).await),
        ["iv-ping", "iv-sent"],
        "{store}: a group's hosts, by its index"
    );
    assert_eq!(names(read(par.clone()).await), ["iv-paris"], "{store}");
    // A host that names another group moves.
    record(s, &beat(Some(&par), "iv-sent", 200, Some(45))).await;
    assert_eq!(names(read(ber.clone()).await), ["iv-ping"], "{store}");
    assert_eq!(
        names(read(par.clone()).await),
        ["iv-paris", "iv-sent"],
        "{store}"
    );
    assert!(store.remove(&host("iv-ping")).await.unwrap());
    assert!(
        read(ber).await.is_empty(),
        "{store}: a removed host leaves its group"
    );
}

/// A monitor named `owner` over `store` delivering to `ch`: timeout
/// 10 min, reminders hourly, groups of at least `min_hosts` gathered for
/// 30 s. The setup of the cases below.
fn site_monitor(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    ch: &RecordingNotifier,
    owner: &str,
    min_hosts: u32,
) -> crate::Monitor<dyn Store, ManualClock> {
    let gp = GroupPolicy {
        min_hosts,
        wait: secs(30),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let policy = Policy {
        timeout: secs(600),
        reminder_interval: secs(3600),
        ..Policy::default()
    };
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(ch.clone())];
    monitor_with(store.clone(), clock, channels, owner, policy).with_grouping(grouping)
}

/// Ten hosts of one site beat every 60 s (five send their interval, five
/// are learned from the gaps), timeout 10 min, `min_hosts` 5; one stops at
/// 0 s, the nine others at 60 s. With two monitors on the store, one group
/// alarm goes out at the first host's deadline plus the wait, naming all
/// ten, nine with `missed_beat` (their timeouts still minutes away); when
/// eight of them reach their timeouts they are absorbed (no notice of
/// their own); the ninth beats again before its timeout and is simply
/// back; once all are back, one group all-clear names the ten.
pub async fn missed_beats_are_evidence_of_a_group_outage(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let mk = |owner: &str| site_monitor(&store, &clock, &ch, owner, 5);
    let (a, b) = (mk("a"), mk("b"));
    let ber = GroupName::new("office-berlin").unwrap();
    let name = |i: usize| format!("ber-{i}");
    let sent = |i: usize| (i < 5).then_some(60);
    for i in 0..10 {
        a.heartbeat(&beat(Some(&ber), &name(i), 0, sent(i)))
            .await
            .unwrap();
    }
    clock.set(at(60));
    for i in 1..10 {
        a.heartbeat(&beat(Some(&ber), &name(i), 60, sent(i)))
            .await
            .unwrap();
    }
    let mut first_group_at = None;
    for s in (65..=700u64).step_by(5) {
        clock.set(at(s));
        if s == 640 {
            // ber-9 beats again before its own timeout (660).
            a.heartbeat(&beat(Some(&ber), &name(9), s, None))
                .await
                .unwrap();
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if first_group_at.is_none() && ch.notices().iter().any(Notice::is_group) {
            first_group_at = Some(s);
        }
    }
    let notices = ch.notices();
    let alarms: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(
        alarms.len(),
        1,
        "{store}: one alarm, the group's: {notices:#?}"
    );
    let ga = alarms[0];
    assert!(ga.is_group(), "{store}: {ga:#?}");
    assert_eq!(
        first_group_at,
        Some(630),
        "{store}: at the first deadline (600) plus the wait (30)"
    );
    let mut named: Vec<(String, bool)> = ga
        .hosts
        .iter()
        .map(|h| (h.host.as_str().to_owned(), h.missed_beat))
        .collect();
    named.sort();
    let want: Vec<(String, bool)> = (0..10).map(|i| (name(i), i > 0)).collect();
    assert_eq!(named, want, "{store}: all ten named, nine on a missed beat");
    assert!(
        ga.hosts
            .iter()
            .all(|h| h.last_seen == if h.missed_beat { at(60) } else { at(0) }),
        "{store}: each with its last seen: {ga:#?}"
    );
    assert!(
        ga.subject()
            .contains("10 hosts silent (9 missed a beat, 1 silent past its timeout)"),
        "{store}: {}",
        ga.subject()
    );
    assert!(
        notices.iter().all(Notice::is_group),
        "{store}: no host of the site spoke on its own, before or after its timeout: {notices:#?}"
    );
    // Everyone back: one group all-clear naming the ten.
    ch.clear();
    clock.set(at(705));
    for i in 0..9 {
        a.heartbeat(&beat(Some(&ber), &name(i), 705, sent(i)))
            .await
            .unwrap();
    }
    for s in (705..=760u64).step_by(5) {
        clock.set(at(s));
        let _ = b.sweep().await.unwrap();
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    assert_eq!(notices.len(), 1, "{store}: one all-clear: {notices:#?}");
    let clear = &notices[0];
    assert!(
        clear.is_group() && clear.kind == NoticeKind::Recovery,
        "{store}: {clear:#?}"
    );
    let mut back: Vec<(String, Option<crate::Timestamp>)> = clear
        .hosts
        .iter()
        .map(|h| (h.host.as_str().to_owned(), h.back_at))
        .collect();
    back.sort();
    let want: Vec<(String, Option<crate::Timestamp>)> = (0..10)
        .map(|i| (name(i), Some(if i == 9 { at(640) } else { at(705) })))
        .collect();
    assert_eq!(
        back, want,
        "{store}: the all-clear names the ten, the one that only missed a beat back at its beat"
    );
}

/// A host under a silence is expected to be quiet: its missed beat is no
/// evidence of its site's outage. Three hosts of a site beat every 60 s
/// (they say so), timeout 10 min, `min_hosts` 3; `ber-0` stops at 0 s,
/// `ber-1` and `ber-2` at 60 s, and `ber-2` is silenced. At the first
/// deadline plus the wait only `ber-1`'s missed beat counts: two are too
/// few for a group outage, so `ber-0`'s own alarm goes out, and no group
/// notice.
pub async fn a_silenced_host_is_no_evidence(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let m = site_monitor(&store, &clock, &ch, "a", 3);
    let ber = GroupName::new("office-berlin").unwrap();
    for i in 0..3 {
        m.heartbeat(&beat(Some(&ber), &format!("ber-{i}"), 0, Some(60)))
            .await
            .unwrap();
    }
    clock.set(at(60));
    for i in 1..3 {
        m.heartbeat(&beat(Some(&ber), &format!("ber-{i}"), 60, Some(60)))
            .await
            .unwrap();
    }
    let quiet = crate::Silence::new(
        "maintenance",
        crate::HostPattern::new("ber-2").unwrap(),
        at(60),
        at(7200),
        "planned",
    )
    .unwrap();
    store.put_silence(&quiet).await.unwrap();
    for s in (65..=640u64).step_by(5) {
        clock.set(at(s));
        let _ = m.sweep().await.unwrap();
    }
    let notices = ch.notices();
    assert!(
        !notices.iter().any(Notice::is_group),
        "{store}: a silenced host made the group outage: {notices:#?}"
    );
    let alarms: Vec<&str> = notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .map(|n| n.host.as_str())
        .collect();
    assert_eq!(alarms, ["ber-0"], "{store}: {notices:#?}");
}
