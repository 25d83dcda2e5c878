//! Flapping through a real store, with two monitors sharing it: exactly
//! one flapping notice per episode, then exactly one notice of its end.

use std::sync::Arc;
use std::time::Duration;

use super::{at, host, monitor_with, policy};
use crate::flap::FlapPolicy;
use crate::testing::RecordingNotifier;
use crate::{Heartbeat, ManualClock, Notice, NoticeKind, Notifier, Store};

/// Two hosts flap five times (timeout 10 s; an outage every 12 s), with
/// two monitors sweeping the same store every second; flapping is more
/// than 4 outages in an hour, stable after 30 s. `web-3` then stays up,
/// `web-4` stays down. Each gets an alarm and an all-clear for each of its
/// first four outages, exactly one `flapping` notice for the fifth (the
/// episode is in the store meanwhile), then `web-3` exactly one `stable`
/// notice 30 s after its last return and `web-4` exactly one alarm 30 s
/// after its last outage began. No notice is delivered twice.
pub async fn flapping_is_one_notice_then_its_end(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let p = crate::Policy {
        flapping: FlapPolicy {
            stable: Duration::from_secs(30),
            ..FlapPolicy::default()
        },
        ..policy()
    };
    let a = monitor_with(store.clone(), &clock, channels(), "a", p.clone());
    let b = monitor_with(store.clone(), &clock, channels(), "b", p);
    let hosts = ["web-3", "web-4"];
    for h in hosts {
        a.heartbeat(&Heartbeat::new(host(h), at(0))).await.unwrap();
    }
    // Silent from each beat; back 12 s later: outages begin at 10, 22,
    // 34, 46, 58. web-3 is back at 60 and beats every 2 s; web-4 is
    // never back from the fifth.
    let mut saw_episode = false;
    for s in 1..=100u64 {
        clock.set(at(s));
        let returns = s % 12 == 0 && s <= 60;
        for h in hosts {
            let beats = match h {
                "web-3" => returns || (s > 60 && s % 2 == 0),
                _ => returns && s < 60,
            };
            if beats {
                a.heartbeat(&Heartbeat::new(host(h), at(s))).await.unwrap();
            }
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if s == 70 {
            let r = store.get(&host("web-3")).await.unwrap().unwrap();
            saw_episode = r
                .flap
                .as_deref()
                .is_some_and(|f| f.episode.as_ref().is_some_and(|e| e.outages == 5));
        }
    }
    assert!(saw_episode, "the flapping episode is kept in the store");
    let notices = ch.notices();
    let of = |h: &str| -> Vec<Notice> {
        notices
            .iter()
            .filter(|n| n.host.as_str() == h)
            .cloned()
            .collect()
    };
    let kinds = |ns: &[Notice]| ns.iter().map(|n| n.kind).collect::<Vec<_>>();
    let per_flip = [NoticeKind::Alarm, NoticeKind::Recovery].repeat(4);
    let web3 = of("web-3");
    let mut want = per_flip.clone();
    want.extend([NoticeKind::Flapping, NoticeKind::Stable]);
    assert_eq!(kinds(&web3), want, "web-3: {web3:#?}");
    assert_eq!(web3[8].created_at, at(58), "the flapping notice at once");
    assert_eq!(
        web3[8].subject(),
        "[iamalive] FLAPPING web-3: 5 outages in 1h"
    );
    assert_eq!(web3[9].created_at, at(90), "stable 30 s after its return");
    assert_eq!(web3[9].recovered_at, Some(at(60)));
    let web4 = of("web-4");
    let mut want = per_flip;
    want.extend([NoticeKind::Flapping, NoticeKind::Alarm]);
    assert_eq!(kinds(&web4), want, "web-4: {web4:#?}");
    assert_eq!(
        web4[9].created_at,
        at(88),
        "down since 58: alarmed when stable (down) for 30 s"
    );
    assert_eq!(web4[9].missing_since, at(58));
    let mut ids: Vec<&str> = notices.iter().map(|n| n.id.as_str()).collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "a notice was delivered twice");
    let r = store.get(&host("web-3")).await.unwrap().unwrap();
    assert!(
        r.flap.is_none(),
        "the episode and its history are forgotten"
    );
}
