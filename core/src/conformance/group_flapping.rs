//! Group flapping through a real store, with two monitors sharing it:
//! exactly one group `flapping` notice per episode, no group alarm or
//! all-clear while the site flaps, then exactly one group `stable` notice.

use std::sync::Arc;
use std::time::Duration;

use super::{at, host, monitor_with, policy};
use crate::flap::FlapPolicy;
use crate::testing::RecordingNotifier;
use crate::{GroupName, GroupPolicy, Heartbeat, ManualClock, Notice, NoticeKind, Notifier, Store};

/// A site of three hosts (`min_hosts` 2, wait 2 s, timeout 10 s) goes dark
/// and comes back five times (an outage every 14 s), with two monitors
/// sweeping the same store; flapping is more than 4 outages in an hour for
/// the hosts and the site alike (the defaults), stable after 30 s. Each of
/// the first four outages is one group alarm and one group all-clear; the
/// fifth, which is also each host's own fifth, is exactly one group
/// `flapping` notice naming the three (no host's own `flapping` notice);
/// the site then stays up and gets exactly one group `stable` notice once
/// its hosts are stable (no host's own `stable` notice). No notice is
/// delivered twice. On a store without group records there is nothing to
/// check beyond the hosts' own notices.
pub async fn group_flapping_is_one_notice_then_its_end(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let flap = FlapPolicy {
        stable: Duration::from_secs(30),
        ..FlapPolicy::default()
    };
    let p = crate::Policy {
        flapping: flap,
        ..policy()
    };
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(2),
        flap,
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let a = monitor_with(store.clone(), &clock, channels(), "a", p.clone())
        .with_grouping(grouping.clone());
    let b = monitor_with(store.clone(), &clock, channels(), "b", p).with_grouping(grouping);
    let ber = GroupName::new("office-berlin").unwrap();
    let hosts = ["ber-0", "ber-1", "ber-2"];
    let beat = |h: &str, s: u64| {
        let mut hb = Heartbeat::new(host(h), at(s));
        hb.group = Some(ber.clone());
        hb
    };
    for h in hosts {
        a.heartbeat(&beat(h, 0)).await.unwrap();
    }
    // Silent from each beat, back 4 s after the deadline: outages begin at
    // 10, 24, 38, 52 and 66. After the fifth the hosts beat every 5 s.
    // The monitors sweep at every instant something is due (a deadline, a
    // gathering's end, a return, the stable time).
    let beats = [14, 28, 42, 56, 70, 75, 80, 85, 90, 95, 100, 105, 110];
    let mut instants: Vec<u64> = Vec::new();
    for d in [10, 24, 38, 52, 66] {
        instants.extend([d, d + 2, d + 3, d + 4, d + 5]);
    }
    instants.extend([75, 80, 85, 90, 95, 98, 99, 100, 101, 102, 105, 110]);
    instants.sort_unstable();
    instants.dedup();
    let mut saw_episode = false;
    for s in instants {
        clock.set(at(s));
        if beats.contains(&s) {
            for h in hosts {
                a.heartbeat(&beat(h, s)).await.unwrap();
            }
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if s == 80 && store.keeps_groups() {
            let g = store.get_group(&ber).await.unwrap().unwrap();
            saw_episode = g.flap_outages() == Some(5);
        }
    }
    let notices = ch.notices();
    if !store.keeps_groups() {
        assert!(notices.iter().all(|n| !n.is_group()), "{store}");
        return;
    }
    assert!(
        saw_episode,
        "{store}: the group's episode is kept in the store"
    );
    let kinds: Vec<(NoticeKind, bool)> = notices.iter().map(|n| (n.kind, n.is_group())).collect();
    let mut want = [(NoticeKind::Alarm, true), (NoticeKind::Recovery, true)].repeat(4);
    want.extend([(NoticeKind::Flapping, true), (NoticeKind::Stable, true)]);
    assert_eq!(kinds, want, "{store}: {notices:#?}");
    let f: &Notice = &notices[8];
    assert_eq!(f.group.as_ref(), Some(&ber), "{store}");
    let mut named: Vec<&str> = f.hosts.iter().map(|h| h.host.as_str()).collect();
    named.sort_unstable();
    assert_eq!(
        named, hosts,
        "{store}: the flapping notice names the site's hosts"
    );
    assert_eq!(
        f.created_at,
        at(68),
        "{store}: in place of the fifth group alarm"
    );
    assert_eq!(
        f.subject(),
        "[iamalive] FLAPPING site office-berlin: 5 outages in 1h (3 hosts)",
        "{store}"
    );
    let s: &Notice = &notices[9];
    assert_eq!(s.outage_id, f.outage_id, "{store}: one id per episode");
    assert_eq!(s.created_at, at(100), "{store}: once its hosts are stable");
    let mut ids: Vec<&str> = notices.iter().map(|n| n.id.as_str()).collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "{store}: a notice was delivered twice");
    let g = store.get_group(&ber).await.unwrap().unwrap();
    assert!(
        g.flap.is_none(),
        "{store}: the episode and its history are forgotten"
    );
    for h in hosts {
        let r = store.get(&host(h)).await.unwrap().unwrap();
        assert!(
            r.flap.is_none() && r.outbox.is_none(),
            "{store}: {h} owes nothing: {r:?}"
        );
    }
}
