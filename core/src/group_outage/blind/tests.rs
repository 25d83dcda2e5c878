//! The watcher-blind transitions on a manual timeline, and their
//! invariants under random site outages (proptest).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::decide::{RetryPolicy, Round};
use crate::group_outage::{GroupHost, all_delivered, settle, step};

const WAIT: Duration = Duration::from_secs(5);

fn at(secs: u64) -> Timestamp {
    let t0 = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    add(t0, Duration::from_secs(secs))
}

fn policy() -> crate::Policy {
    crate::Policy {
        timeout: Duration::from_secs(10),
        reminder_interval: Duration::from_secs(60),
        ..crate::Policy::default()
    }
}

/// Site `g`'s group notice of `kind`: `n` hosts (`g-0`…), dark since `dark`.
fn site_notice(g: &str, kind: NoticeKind, dark: u64, n: usize, now: u64) -> Notice {
    let group = GroupName::new(g).unwrap();
    let outage_id = format!("site:{g}@{}", at(dark).timestamp_millis());
    let hosts = (0..n)
        .map(|i| GroupHost {
            host: HostId::new(format!("{g}-{i}")).unwrap(),
            last_seen: at(dark.saturating_sub(10)),
            silent_for: Duration::from_secs(now + 10 - dark),
            report: None,
            new: false,
            back_at: (kind == NoticeKind::Recovery).then(|| at(now)),
            missed_beat: false,
        })
        .collect();
    Notice {
        last_seen: at(dark.saturating_sub(10)),
        missing_since: at(dark),
        recovered_at: (kind == NoticeKind::Recovery).then(|| at(now)),
        silent_for: Duration::from_secs(now + 10 - dark),
        alarm_count: 1,
        group: Some(group),
        hosts,
        ..Notice::new(
            format!("{outage_id}/{kind}"),
            outage_id,
            kind,
            HostId::new(format!("{g}-0")).unwrap(),
            at(now),
        )
    }
}

fn ask(w: &mut GroupRecord, n: &Notice, now: u64) -> Verdict {
    let (next, v) = consult(w, n, at(now), WAIT);
    if let Some(next) = next {
        *w = next;
    }
    v
}

/// Delivers every owed notice of the watcher's record at `now`.
fn deliver_all(w: &mut GroupRecord, now: u64) -> Vec<Notice> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let (next, leased) = step(w, at(now), &policy(), "m", Duration::from_secs(30));
        if let Some(next) = next {
            *w = next;
        }
        let Some(ob) = leased else { break };
        let channels = vec!["ch".to_owned()];
        let results = all_delivered(&channels);
        let round = Round {
            notice_id: &ob.notice.id,
            results: &results,
            channels: &channels,
        };
        *w = settle(w, &round, at(now), &policy(), &RetryPolicy::default()).unwrap();
        out.push(ob.notice);
    }
    out
}

#[test]
fn two_sites_dark_together_are_one_blind_notice_then_one_all_clear() {
    let mut w = GroupRecord::watcher();
    // Berlin's group alarm (hosts dark at 10) asks at its resolve (15):
    // held until 10 + 2 × wait.
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Alarm, 10, 3, 15),
            15
        ),
        Verdict::Hold(at(20))
    );
    assert_eq!(
        ask(
            &mut w,
            &site_notice("paris", NoticeKind::Alarm, 13, 2, 18),
            18
        ),
        Verdict::Hold(at(20))
    );
    assert_eq!(w.due_at, Some(at(20)));
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Alarm, 10, 3, 20),
            20
        ),
        Verdict::Resolve
    );
    w = resolve(&w, at(20), Some(30), |_| true).unwrap();
    assert_eq!(w.phase, GroupPhase::Outage);
    for (g, d, n) in [("berlin", 10, 3), ("paris", 13, 2)] {
        assert_eq!(
            ask(&mut w, &site_notice(g, NoticeKind::Alarm, d, n, 20), 20),
            Verdict::Absorbed,
            "{g}'s own alarm: the blind notice speaks for it"
        );
    }
    let sent = deliver_all(&mut w, 20);
    assert_eq!(sent.len(), 1);
    let n = &sent[0];
    assert_eq!(
        n.subject(),
        "[iamalive] ALARM watcher may be blind: 2 sites, 5 of 30 hosts silent since 00:00:10Z"
    );
    let spot = n.blind_spot.as_deref().unwrap();
    assert_eq!(spot.hosts_silent, 5);
    assert_eq!(spot.sites[0].group.as_str(), "berlin");
    assert_eq!(spot.sites[0].hosts.len(), 3);
    assert!(n.body().contains("DNS name"), "{}", n.body());
    assert_eq!(w.due_at, None, "no reminders from the watcher");
    // A group reminder is the group's own.
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Reminder, 10, 3, 80),
            80
        ),
        Verdict::Alone
    );
    // A third site dark later is its own.
    assert_eq!(
        ask(
            &mut w,
            &site_notice("rome", NoticeKind::Alarm, 70, 2, 75),
            75
        ),
        Verdict::Alone
    );
    // Both back: their all-clears absorbed, one blind all-clear.
    assert_eq!(
        ask(
            &mut w,
            &site_notice("paris", NoticeKind::Recovery, 13, 2, 90),
            90
        ),
        Verdict::Absorbed
    );
    assert_eq!(w.phase, GroupPhase::Ending { until: at(95) });
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Recovery, 10, 3, 91),
            91
        ),
        Verdict::Absorbed
    );
    let sent = deliver_all(&mut w, 91);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    assert_eq!(
        sent[0].subject(),
        "[iamalive] RECOVERED watcher sees again: 2 sites, 5 of 30 hosts back after 1m 21s"
    );
    assert_eq!(w.phase, GroupPhase::Quiet);
    assert!(w.sites.is_empty() && w.due_at.is_none());
}

#[test]
fn one_site_alone_gets_its_group_alarm() {
    let mut w = GroupRecord::watcher();
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Alarm, 10, 9, 15),
            15
        ),
        Verdict::Hold(at(20))
    );
    w = resolve(&w, at(20), Some(10), |_| true).unwrap();
    assert_eq!(w.phase, GroupPhase::Quiet);
    assert!(
        w.outbox.is_empty(),
        "one site is one site, 9 of 10 hosts or not"
    );
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Alarm, 10, 9, 20),
            20
        ),
        Verdict::Alone
    );
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Recovery, 10, 9, 50),
            50
        ),
        Verdict::Alone
    );
    assert!(w.sites.is_empty(), "forgotten once back");
}

#[test]
fn a_held_site_back_before_the_end_is_left_out() {
    let mut w = GroupRecord::watcher();
    let _ = ask(
        &mut w,
        &site_notice("berlin", NoticeKind::Alarm, 10, 2, 15),
        15,
    );
    let _ = ask(
        &mut w,
        &site_notice("paris", NoticeKind::Alarm, 11, 2, 16),
        16,
    );
    w = resolve(&w, at(20), None, |s| s.group.as_str() != "paris").unwrap();
    assert_eq!(w.phase, GroupPhase::Quiet, "one site left: no blind notice");
    assert_eq!(
        ask(
            &mut w,
            &site_notice("berlin", NoticeKind::Alarm, 10, 2, 20),
            20
        ),
        Verdict::Alone
    );
}

#[test]
fn a_site_still_dark_when_the_others_are_back_is_alone() {
    let mut w = GroupRecord::watcher();
    for g in ["a", "b", "c"] {
        let _ = ask(&mut w, &site_notice(g, NoticeKind::Alarm, 10, 2, 15), 15);
    }
    w = resolve(&w, at(20), None, |_| true).unwrap();
    let _ = deliver_all(&mut w, 20);
    let _ = ask(
        &mut w,
        &site_notice("a", NoticeKind::Recovery, 10, 2, 30),
        30,
    );
    let _ = ask(
        &mut w,
        &site_notice("b", NoticeKind::Recovery, 10, 2, 30),
        30,
    );
    assert_eq!(w.phase, GroupPhase::Ending { until: at(35) });
    let sent = deliver_all(&mut w, 35);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headline(),
        "watcher sees again: 2 of 3 sites back after 20s"
    );
    assert!(sent[0].body().contains("site c: 2 hosts silent since"));
    assert!(sent[0].body().contains("still dark"));
    // c's all-clear is its own group's.
    assert_eq!(
        ask(
            &mut w,
            &site_notice("c", NoticeKind::Recovery, 10, 2, 60),
            60
        ),
        Verdict::Alone
    );
    assert!(w.sites.is_empty());
}

/// One site's outage in a random scenario: dark at `dark`, its hosts back
/// `back` seconds later if some.
#[derive(Debug, Clone)]
struct SiteOutage {
    dark: u64,
    hosts: usize,
    back: Option<u64>,
}

fn scenarios() -> impl Strategy<Value = Vec<SiteOutage>> {
    prop::collection::vec(
        (0u64..30, 1usize..5, prop::option::of(1u64..60))
            .prop_map(|(dark, hosts, back)| SiteOutage { dark, hosts, back }),
        1..6,
    )
}

proptest! {
    /// Every silent host of a site that stays dark is named in some
    /// delivered notice (its group's alarm, or the blind notice); at most
    /// one blind notice per blind outage, and it names at least two sites;
    /// a group alarm is held at most one more `wait` after its group's
    /// gathering.
    #[test]
    fn blind_invariants(sites in scenarios()) {
        let mut w = GroupRecord::watcher();
        let names: Vec<String> = (0..sites.len()).map(|i| format!("s{i}")).collect();
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut told = vec![false; sites.len()];
        let mut back_done = vec![false; sites.len()];
        let mut blind_alarms: BTreeMap<String, usize> = BTreeMap::new();
        let dark_at = |s: &SiteOutage, now: u64| s.back.is_none_or(|b| now < s.dark + b);
        for now in 0..200u64 {
            for (i, s) in sites.iter().enumerate() {
                // The group resolves its own gathering one wait after its
                // first deadline, then its first alarm asks the watcher.
                let asks_from = s.dark + 5;
                if now >= asks_from && !told[i] && dark_at(s, now) {
                    let n = site_notice(&names[i], NoticeKind::Alarm, s.dark, s.hosts, now);
                    let mut v = ask(&mut w, &n, now);
                    if v == Verdict::Resolve {
                        let still = |site: &Site| {
                            let j: usize = site.group.as_str()[1..].parse().unwrap();
                            dark_at(&sites[j], now)
                        };
                        if let Some(next) = resolve(&w, at(now), None, still) {
                            w = next;
                        }
                        v = ask(&mut w, &n, now);
                    }
                    match v {
                        Verdict::Hold(until) => {
                            prop_assert!(until <= at(s.dark + 10), "held past its group's wait plus one");
                        }
                        Verdict::Alone => {
                            told[i] = true;
                            for h in 0..s.hosts {
                                named.insert(format!("{}-{h}", names[i]));
                            }
                        }
                        Verdict::Absorbed => told[i] = true,
                        Verdict::Resolve => prop_assert!(false, "resolve twice"),
                    }
                    prop_assert!(now <= s.dark + 10 + 1, "{} held too long", names[i]);
                }
                if !dark_at(s, now) && told[i] && !back_done[i] {
                    let n = site_notice(&names[i], NoticeKind::Recovery, s.dark, s.hosts, now);
                    let _ = ask(&mut w, &n, now);
                    back_done[i] = true;
                }
            }
            if let GroupPhase::Gathering { until } = w.phase
                && until <= at(now)
            {
                let still = |site: &Site| {
                    let j: usize = site.group.as_str()[1..].parse().unwrap();
                    dark_at(&sites[j], now)
                };
                if let Some(next) = resolve(&w, at(now), None, still) {
                    w = next;
                }
            }
            for n in deliver_all(&mut w, now) {
                let spot = n.blind_spot.as_deref().expect("only blind notices");
                if n.kind == NoticeKind::Alarm {
                    *blind_alarms.entry(n.outage_id.clone()).or_default() += 1;
                    prop_assert!(spot.sites.len() >= MIN_SITES, "a blind notice for one site");
                    for site in &spot.sites {
                        for h in &site.hosts {
                            named.insert(h.as_str().to_owned());
                        }
                    }
                }
            }
        }
        prop_assert!(blind_alarms.values().all(|&n| n == 1), "{blind_alarms:?}");
        for (i, s) in sites.iter().enumerate() {
            // Dark past its group's gathering and the watcher's: named.
            if s.back.is_none_or(|b| b > 11) {
                for h in 0..s.hosts {
                    let host = format!("{}-{h}", names[i]);
                    prop_assert!(named.contains(&host), "{host} never named: {named:?}");
                }
            }
        }
    }
}

#[test]
fn a_host_still_silent_when_its_site_is_back_is_not_named_back() {
    let mut w = GroupRecord::watcher();
    ask(
        &mut w,
        &site_notice("berlin", NoticeKind::Alarm, 10, 3, 15),
        15,
    );
    ask(
        &mut w,
        &site_notice("paris", NoticeKind::Alarm, 13, 2, 18),
        18,
    );
    ask(
        &mut w,
        &site_notice("berlin", NoticeKind::Alarm, 10, 3, 20),
        20,
    );
    w = resolve(&w, at(20), Some(30), |_| true).unwrap();
    assert_eq!(deliver_all(&mut w, 20).len(), 1, "the blind alarm");
    ask(
        &mut w,
        &site_notice("paris", NoticeKind::Recovery, 13, 2, 90),
        90,
    );
    // Berlin's all-clear names berlin-2 still silent (it alarms alone).
    let mut berlin = site_notice("berlin", NoticeKind::Recovery, 10, 3, 91);
    berlin.hosts[2].back_at = None;
    assert_eq!(ask(&mut w, &berlin, 91), Verdict::Absorbed);
    let sent = deliver_all(&mut w, 91);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].subject(),
        "[iamalive] RECOVERED watcher sees again: 4 of 5 silent hosts back after 1m 21s, 1 still silent (berlin-2)"
    );
    let spot = sent[0].blind_spot.as_deref().unwrap();
    assert_eq!(
        spot.sites[0].still_silent,
        [HostId::new("berlin-2").unwrap()]
    );
    assert!(spot.sites[1].still_silent.is_empty());
    assert!(
        sent[0].body().contains("but for berlin-2 (still silent)"),
        "{}",
        sent[0].body()
    );
}
