//! Group outages through a real store, with two monitors sharing it: one
//! group alarm naming every silent host, one all-clear, a lone host alone.

use std::sync::Arc;
use std::time::Duration;

use super::{at, host, monitor};
use crate::testing::RecordingNotifier;
use crate::{GroupName, GroupPolicy, Heartbeat, ManualClock, Notice, NoticeKind, Notifier, Store};

fn beat_in(g: &GroupName, name: &str, secs: u64) -> Heartbeat {
    let mut hb = Heartbeat::new(host(name), at(secs));
    hb.group = Some(g.clone());
    hb
}

/// Ten hosts of `office-berlin` fall silent together and one host of
/// `office-paris` alone, with two monitors sweeping the same store every
/// second. On a store that [keeps groups](Store::keeps_groups): exactly one
/// group alarm naming the ten (within the group wait of their deadline),
/// the Paris host's own alarm after the wait, and once they are back
/// exactly one group all-clear naming the ten and the Paris host's own
/// all-clear; no single-host notice for a Berlin host. On a store without
/// group records every host alarms on its own, naming its group.
pub async fn group_outage_is_one_notice(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let a = monitor(store.clone(), &clock, channels(), "a").with_grouping(grouping.clone());
    let b = monitor(store.clone(), &clock, channels(), "b").with_grouping(grouping);
    let ber = GroupName::new("office-berlin").unwrap();
    let par = GroupName::new("office-paris").unwrap();
    let berlin: Vec<String> = (0..10).map(|i| format!("ber-{i}")).collect();
    for h in &berlin {
        a.heartbeat(&beat_in(&ber, h, 0)).await.unwrap();
    }
    for p in ["par-1", "par-2", "par-3"] {
        a.heartbeat(&beat_in(&par, p, 0)).await.unwrap();
    }
    // Berlin and par-1 go silent at 0 (deadline 10); par-2/3 keep beating.
    let mut first_alarm_at = None;
    for s in 1..=40u64 {
        clock.set(at(s));
        for p in ["par-2", "par-3"] {
            a.heartbeat(&beat_in(&par, p, s)).await.unwrap();
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if first_alarm_at.is_none() && ch.notices().iter().any(Notice::is_group) {
            first_alarm_at = Some(s);
        }
    }
    let notices = ch.notices();
    let by_host = |n: &Notice| n.host.as_str().to_owned();
    if !store.keeps_groups() {
        let alarms: Vec<String> = notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Alarm)
            .map(by_host)
            .collect();
        assert_eq!(
            alarms.len(),
            11,
            "{store}: without group records each host alarms: {alarms:?}"
        );
        assert!(
            notices.iter().all(|n| n.group.is_some() && !n.is_group()),
            "{store}"
        );
        return;
    }
    let group_alarms: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(
        group_alarms.len(),
        1,
        "{store}: one group alarm: {notices:#?}"
    );
    let ga = group_alarms[0];
    assert_eq!(ga.group.as_ref(), Some(&ber), "{store}");
    let mut named: Vec<String> = ga
        .hosts
        .iter()
        .map(|h| h.host.as_str().to_owned())
        .collect();
    named.sort();
    let mut want = berlin.clone();
    want.sort();
    assert_eq!(
        named, want,
        "{store}: the group alarm names each silent host"
    );
    assert!(ga.hosts.iter().all(|h| h.last_seen == at(0)), "{store}");
    assert!(
        first_alarm_at.is_some_and(|s| s <= 10 + 5),
        "{store}: the group alarm goes out within the wait of the first deadline: {first_alarm_at:?}"
    );
    assert!(
        !notices
            .iter()
            .any(|n| !n.is_group() && n.host.as_str().starts_with("ber-")),
        "{store}: no Berlin host speaks on its own: {notices:#?}"
    );
    let paris: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.host.as_str() == "par-1" && !n.is_group())
        .collect();
    assert_eq!(
        paris.first().map(|n| (n.kind, n.group.clone())),
        Some((NoticeKind::Alarm, Some(par.clone()))),
        "{store}: a host silent alone alarms on its own: {notices:#?}"
    );
    assert!(
        paris[0].created_at <= at(10 + 5 + 1),
        "{store}: a lone host is held at most the wait"
    );
    // The reminder came (60 s policy) only if the clock went that far: it
    // did not; every Berlin host comes back now.
    ch.clear();
    // One at a time, a sweep between each (the all-clear waits for them).
    for h in &berlin {
        a.heartbeat(&beat_in(&ber, h, 41)).await.unwrap();
        let _ = b.sweep().await.unwrap();
    }
    a.heartbeat(&beat_in(&par, "par-1", 43)).await.unwrap();
    for s in 44..=60u64 {
        clock.set(at(s));
        for p in ["par-2", "par-3"] {
            a.heartbeat(&beat_in(&par, p, s)).await.unwrap();
        }
        let _ = b.sweep().await.unwrap();
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let clears: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Recovery)
        .collect();
    assert_eq!(
        clears.len(),
        1,
        "{store}: one group all-clear: {notices:#?}"
    );
    assert_eq!(clears[0].hosts.len(), 10, "{store}");
    assert!(
        clears[0].hosts.iter().all(|h| h.back_at.is_some()),
        "{store}"
    );
    assert_eq!(clears[0].outage_id, ga.outage_id, "{store}: one outage id");
    assert!(
        !notices
            .iter()
            .any(|n| !n.is_group() && n.host.as_str().starts_with("ber-")),
        "{store}: no single all-clear for a Berlin host: {notices:#?}"
    );
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.host.as_str() == "par-1" && n.kind == NoticeKind::Recovery)
            .count(),
        1,
        "{store}: the lone host's own all-clear"
    );
}
