//! The watcher-blind notice through a real store, with two monitors
//! sharing it: two sites dark together are one "watcher may be blind"
//! notice and, once back, one all-clear; no group notice of theirs.

use std::sync::Arc;
use std::time::Duration;

use super::{at, host};
use crate::testing::RecordingNotifier;
use crate::{
    GroupName, GroupPolicy, Heartbeat, ManualClock, Monitor, Notice, NoticeKind, Notifier, Store,
};

fn beat_in(g: &GroupName, name: &str, secs: u64) -> Heartbeat {
    let mut hb = Heartbeat::new(host(name), at(secs));
    hb.group = Some(g.clone());
    hb
}

/// Two monitors (`a`, `b`) sharing `store` and the one channel `ch`, with
/// groups of at least two hosts gathered for `wait` and blind detection
/// on (the same wait): the setup of every case here.
pub(super) fn two_monitors(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    ch: &RecordingNotifier,
    wait: Duration,
) -> (
    Monitor<dyn Store, ManualClock>,
    Monitor<dyn Store, ManualClock>,
) {
    two_monitors_with(store, clock, ch, wait, super::policy())
}

/// [`two_monitors`] with `policy` for every host.
pub(super) fn two_monitors_with(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    ch: &RecordingNotifier,
    wait: Duration,
    policy: crate::Policy,
) -> (
    Monitor<dyn Store, ManualClock>,
    Monitor<dyn Store, ManualClock>,
) {
    let gp = GroupPolicy {
        min_hosts: 2,
        wait,
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let one = |owner| {
        super::monitor_with(store.clone(), clock, channels(), owner, policy.clone())
            .with_grouping(grouping.clone())
            .with_blind_detection(wait)
    };
    (one("a"), one("b"))
}

/// Four hosts of `office-berlin` and three of `office-paris` fall silent
/// together while `office-rome` keeps beating, two monitors sweeping the
/// same store every second with blind detection on (wait 5 s). On a store
/// that [keeps groups](Store::keeps_groups): exactly one watcher-blind
/// notice naming both sites and their seven hosts (within twice the wait
/// of the first deadline), no group alarm and no host alarm; the count of
/// all hosts, if the store gives one ([`Store::host_count`]), is nine.
/// Once they are back: exactly one all-clear for the blind notice and no
/// group or host all-clear. Without group records every host alarms on
/// its own.
pub async fn watcher_blind_is_one_notice(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let wait = Duration::from_secs(5);
    let (a, b) = two_monitors(&store, &clock, &ch, wait);
    let ber = GroupName::new("office-berlin").unwrap();
    let par = GroupName::new("office-paris").unwrap();
    let rom = GroupName::new("office-rome").unwrap();
    let dark: Vec<(GroupName, String)> = (0..4)
        .map(|i| (ber.clone(), format!("ber-{i}")))
        .chain((0..3).map(|i| (par.clone(), format!("par-{i}"))))
        .collect();
    for (g, h) in &dark {
        a.heartbeat(&beat_in(g, h, 0)).await.unwrap();
    }
    let rome = ["rom-1", "rom-2"];
    let keep = |s: u64| {
        let (a, rom) = (&a, &rom);
        async move {
            for r in rome {
                a.heartbeat(&beat_in(rom, r, s)).await.unwrap();
            }
        }
    };
    keep(0).await;
    let mut first_at = None;
    for s in 1..=40u64 {
        clock.set(at(s));
        keep(s).await;
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if first_at.is_none() && !ch.notices().is_empty() {
            first_at = Some(s);
        }
    }
    let notices = ch.notices();
    if !store.keeps_groups() {
        let alarms = notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Alarm)
            .count();
        assert_eq!(alarms, 7, "{store}: without group records each host alarms");
        return;
    }
    let blind: Vec<&Notice> = notices.iter().filter(|n| n.is_blind()).collect();
    assert_eq!(blind.len(), 1, "{store}: one blind notice: {notices:#?}");
    assert_eq!(
        notices.len(),
        1,
        "{store}: nothing else, no group alarm: {notices:#?}"
    );
    let n = blind[0];
    assert_eq!(n.kind, NoticeKind::Alarm);
    let spot = n.blind_spot.as_deref().unwrap();
    let sites: Vec<(&str, u32)> = spot
        .sites
        .iter()
        .map(|s| (s.group.as_str(), s.hosts_silent))
        .collect();
    assert_eq!(
        sites,
        [("office-berlin", 4), ("office-paris", 3)],
        "{store}"
    );
    assert_eq!(spot.hosts_silent, 7, "{store}");
    let mut named: Vec<String> = spot
        .sites
        .iter()
        .flat_map(|s| s.hosts.iter().map(|h| h.as_str().to_owned()))
        .collect();
    named.sort();
    let mut want: Vec<String> = dark.iter().map(|(_, h)| h.clone()).collect();
    want.sort();
    assert_eq!(named, want, "{store}: every silent host is named");
    assert!(
        spot.hosts_total.is_none_or(|t| t == 9),
        "{store}: the host count, if any, is nine: {:?}",
        spot.hosts_total
    );
    assert!(
        first_at.is_some_and(|s| s <= 10 + 2 * 5 + 1),
        "{store}: within twice the wait of the first deadline: {first_at:?}"
    );
    assert!(
        n.subject().contains("watcher may be blind: 2 sites"),
        "{store}"
    );

    // Everyone is back: one all-clear for the blind notice.
    ch.clear();
    for (g, h) in &dark {
        a.heartbeat(&beat_in(g, h, 41)).await.unwrap();
        let _ = b.sweep().await.unwrap();
    }
    for s in 42..=60u64 {
        clock.set(at(s));
        keep(s).await;
        for (g, h) in &dark {
            a.heartbeat(&beat_in(g, h, s)).await.unwrap();
        }
        let _ = b.sweep().await.unwrap();
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    assert_eq!(
        notices.len(),
        1,
        "{store}: one all-clear, nothing else: {notices:#?}"
    );
    assert!(
        notices[0].is_blind() && notices[0].kind == NoticeKind::Recovery,
        "{store}: {notices:#?}"
    );
    assert_eq!(notices[0].outage_id, n.outage_id, "{store}: one outage id");
    let w = store
        .get_group(&GroupName::watcher())
        .await
        .unwrap()
        .expect("the watcher's record is stored");
    assert_eq!(w.phase, crate::group_outage::GroupPhase::Quiet, "{store}");
    assert!(w.outbox.is_empty() && w.sites.is_empty(), "{store}: {w:?}");
}

/// One site dark alone, blind detection on (wait 5 s), two monitors: its
/// group alarm goes out no later than the group wait after its first
/// host's deadline — blind detection holds a site longer only when
/// another site is gathering its own outage at the time — and it is a
/// group alarm, not a blind notice. A second site going dark a minute
/// later is its own group alarm too, on time.
pub async fn blind_detection_keeps_a_lone_site_on_time(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let wait = Duration::from_secs(5);
    let (a, b) = two_monitors(&store, &clock, &ch, wait);
    let ber = GroupName::new("office-berlin").unwrap();
    let par = GroupName::new("office-paris").unwrap();
    for i in 0..3 {
        a.heartbeat(&beat_in(&ber, &format!("ber-{i}"), 0))
            .await
            .unwrap();
    }
    // Paris keeps beating for the first minute, then goes dark too.
    let mut alarms: Vec<(u64, Notice)> = Vec::new();
    for s in 0..=100u64 {
        clock.set(at(s));
        if s <= 60 {
            for i in 0..3 {
                a.heartbeat(&beat_in(&par, &format!("par-{i}"), s))
                    .await
                    .unwrap();
            }
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        for n in ch.notices() {
            if n.kind == NoticeKind::Alarm && !alarms.iter().any(|(_, m)| m.id == n.id) {
                alarms.push((s, n));
            }
        }
    }
    assert_eq!(alarms.len(), 2, "{store}: two group alarms: {alarms:#?}");
    let (ber_at, ber_n) = &alarms[0];
    let (par_at, par_n) = &alarms[1];
    assert!(
        !ber_n.is_blind() && !par_n.is_blind(),
        "{store}: {alarms:#?}"
    );
    assert_eq!(ber_n.group.as_ref(), Some(&ber), "{store}");
    assert_eq!(par_n.group.as_ref(), Some(&par), "{store}");
    // Berlin's deadline is 10 (timeout 10 s): out by 10 + wait.
    assert!(*ber_at <= 10 + 5, "{store}: Berlin's alarm at {ber_at}");
    // Paris's last beat at 60, deadline 70: out by 70 + wait.
    assert!(*par_at <= 70 + 5, "{store}: Paris's alarm at {par_at}");
}
