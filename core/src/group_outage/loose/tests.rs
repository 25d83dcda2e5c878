//! Hosts without a group in the blind detection, on a manual timeline:
//! deadlines 10 s after the last beat, wait 5 s.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::group_outage::Verdict;
use crate::group_outage::blind;
use crate::group_outage::tests::{at, deliver_all, notice, policy};
use crate::{GroupName, NoticeKind};

const WAIT: Duration = Duration::from_secs(5);

/// Host `h`'s own notice of `kind`, without a group.
fn loose_notice(h: &str, kind: NoticeKind, last_seen: u64, now: u64) -> Notice {
    let mut n = notice(h, kind, last_seen, now);
    n.group = None;
    n
}

/// Asks the record of the hosts without a group and applies its answer.
fn ask(g: &mut GroupRecord, n: &Notice, now: u64) -> Verdict {
    let (w, v) = super::super::consult(g, n, at(now), &policy_of(), &policy());
    if let Some(w) = w {
        *g = w;
    }
    v
}

fn policy_of() -> GroupPolicy {
    super::policy(WAIT)
}

/// Resolves the gathering at `now` as the monitor does: regather, every
/// held host still silent but those in `back`, `total` hosts in all.
fn resolve_at(g: &mut GroupRecord, now: u64, total: Option<u64>, back: &[&str]) {
    let read = regather(g, WAIT);
    let r = super::resolve(&read, at(now), &policy_of(), &policy(), total, |m| {
        !back.contains(&m.host.as_str())
    });
    *g = r.expect("a gathering past its end resolves");
}

#[test]
fn a_lone_silence_goes_out_at_once_and_is_forgotten_when_back() {
    let mut g = GroupRecord::new(GroupName::ungrouped());
    // Deadline at 10, asked at 10: not held.
    let a = loose_notice("a", NoticeKind::Alarm, 0, 10);
    assert_eq!(ask(&mut g, &a, 10), Verdict::Alone);
    assert_eq!(g.phase, GroupPhase::Quiet);
    assert_eq!(g.members.get(&a.host).map(|m| m.fate), Some(Fate::Alone));
    // A second host silent more than one wait later is alone too.
    let b = loose_notice("b", NoticeKind::Alarm, 6, 16);
    assert_eq!(ask(&mut g, &b, 16), Verdict::Alone);
    // Their all-clears go out and they are forgotten.
    let mut back = a.clone();
    back.kind = NoticeKind::Recovery;
    back.recovered_at = Some(at(30));
    assert_eq!(ask(&mut g, &back, 30), Verdict::Alone);
    assert!(g.members.get(&a.host).is_none());
    assert!(
        deliver_all(&mut g, 30).is_empty(),
        "nothing of its own to send"
    );
}

#[test]
fn a_third_silence_within_the_wait_gathers_from_the_first_deadline() {
    let mut g = GroupRecord::new(GroupName::ungrouped());
    assert_eq!(
        ask(&mut g, &loose_notice("a", NoticeKind::Alarm, 0, 10), 10),
        Verdict::Alone
    );
    // Two silent together are two alarms: b is not held either.
    assert_eq!(
        ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 12), 12),
        Verdict::Alone
    );
    // c's deadline is 13: held until a's deadline plus the wait (15), never
    // more than one wait after its own.
    assert_eq!(
        ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 13), 13),
        Verdict::Hold(at(15))
    );
    assert_eq!(
        ask(&mut g, &loose_notice("d", NoticeKind::Alarm, 4, 14), 14),
        Verdict::Hold(at(15))
    );
    assert_eq!(g.phase, GroupPhase::Gathering { until: at(15) });
    // Its end: asked again, it must be resolved first.
    assert_eq!(
        ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 15), 15),
        Verdict::Resolve
    );
}

#[test]
fn more_than_half_silent_is_one_outage_naming_all_of_them() {
    let mut g = GroupRecord::new(GroupName::ungrouped());
    ask(&mut g, &loose_notice("a", NoticeKind::Alarm, 0, 10), 10);
    ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 12), 12);
    ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 13), 13);
    // 3 of 5 hosts silent.
    resolve_at(&mut g, 15, Some(5), &[]);
    assert_eq!(g.phase, GroupPhase::Outage);
    assert_eq!(g.hosts_total, Some(5));
    let sent = deliver_all(&mut g, 15);
    assert_eq!(sent.len(), 1, "one alarm for the three: {sent:?}");
    let n = &sent[0];
    assert_eq!(n.kind, NoticeKind::Alarm);
    assert_eq!(n.group, Some(GroupName::ungrouped()));
    let named: Vec<&str> = n.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(
        named,
        ["a", "b", "c"],
        "the first one, told alone, is named too"
    );
    assert_eq!(n.headline(), "hosts without a group: 3 hosts silent");
    // The held one's own alarm is absorbed, the first one's reminders too.
    assert_eq!(
        ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 16), 16),
        Verdict::Absorbed
    );
    assert_eq!(
        ask(&mut g, &loose_notice("a", NoticeKind::Reminder, 0, 70), 70),
        Verdict::Absorbed
    );
    // A host silent later joins the outage.
    assert_eq!(
        ask(&mut g, &loose_notice("d", NoticeKind::Alarm, 20, 30), 30),
        Verdict::Absorbed
    );
}

#[test]
fn half_or_fewer_silent_are_each_alone_at_the_holds_end() {
    for (total, back) in [(Some(6), &[][..]), (Some(5), &["c"][..]), (None, &[][..])] {
        let mut g = GroupRecord::new(GroupName::ungrouped());
        ask(&mut g, &loose_notice("a", NoticeKind::Alarm, 0, 10), 10);
        ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 12), 12);
        ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 13), 13);
        resolve_at(&mut g, 15, total, back);
        assert_eq!(g.phase, GroupPhase::Quiet, "{total:?} {back:?}");
        assert!(deliver_all(&mut g, 15).is_empty());
        // Each held host's own alarm goes out when it asks again.
        assert_eq!(
            ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 15), 15),
            Verdict::Alone
        );
    }
}

#[test]
fn a_blind_spot_needs_three_hosts_and_more_than_half() {
    assert!(!is_blind_spot(1, Some(1)));
    assert!(!is_blind_spot(2, Some(2)), "two hosts are two alarms");
    assert!(is_blind_spot(3, Some(5)));
    assert!(is_blind_spot(3, Some(3)));
    assert!(!is_blind_spot(3, Some(6)), "half is not more than half");
    assert!(!is_blind_spot(1000, None));
}

#[test]
fn the_watcher_owes_one_blind_notice_for_them_at_once() {
    let mut g = GroupRecord::new(GroupName::ungrouped());
    ask(&mut g, &loose_notice("a", NoticeKind::Alarm, 0, 10), 10);
    ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 12), 12);
    ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 13), 13);
    resolve_at(&mut g, 15, Some(4), &[]);
    let alarm = deliver_all(&mut g.clone(), 15).remove(0);
    // No other site gathering: resolved at once, not held for one.
    let w = GroupRecord::watcher();
    let (w2, v) = blind::consult_with(&w, &alarm, at(15), WAIT, false);
    assert_eq!(v, Verdict::Resolve);
    let w2 = w2.expect("the watcher gathers it");
    let w3 = blind::resolve(&w2, at(15), Some(4), |_| true).expect("resolved");
    let mut w3 = w3;
    let sent = deliver_all(&mut w3, 15);
    assert_eq!(sent.len(), 1);
    let spot = sent[0].blind_spot.as_deref().expect("a blind notice");
    assert_eq!((spot.hosts_silent, spot.hosts_total), (3, Some(4)));
    assert_eq!(
        sent[0].headline(),
        "watcher may be blind: 3 of 4 hosts silent since 00:00:10Z"
    );
    let why = sent[0].message.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("More than half of all monitored hosts"),
        "{why}"
    );
    assert!(!why.contains("Sites rarely"), "{why}");
    // With another site gathering it is held for it, like a site.
    let (_, v) = blind::consult_with(&w, &alarm, at(15), WAIT, true);
    assert_eq!(v, Verdict::Hold(at(20)));
}

#[test]
fn silences_asked_in_one_batch_are_gathered_from_the_first() {
    let g = GroupRecord::new(GroupName::ungrouped());
    let p = policy();
    let alarms: Vec<Notice> = ["a", "b", "c"]
        .iter()
        .zip([0, 1, 2])
        .map(|(h, s)| loose_notice(h, NoticeKind::Alarm, s, 12))
        .collect();
    let asks: Vec<(&Notice, &crate::Policy)> = alarms.iter().map(|n| (n, &p)).collect();
    let (w, verdicts) = crate::group_outage::consult_batch(&g, &asks, at(12), &policy_of());
    // Deadlines 10, 11, 12: all held until the first one's plus the wait.
    assert_eq!(verdicts, [Verdict::Hold(at(15)); 3]);
    let w = w.expect("written");
    assert_eq!(w.phase, GroupPhase::Gathering { until: at(15) });
    // One alone in its batch goes out at once.
    let (_, v) = crate::group_outage::consult_batch(&g, &asks[..1], at(12), &policy_of());
    assert_eq!(v, [Verdict::Alone]);
}

/// One host of the property test: silent from its deadline `down + 10`,
/// back `back` seconds after it (if ever).
#[derive(Debug, Clone)]
struct Silence {
    down: u64,
    back: Option<u64>,
}

const WAIT_S: u64 = 5;

proptest! {
    /// Hosts without a group falling silent at random times, among up to
    /// seven more that keep beating, every silent host asking each second
    /// in one batch (as a sweep does), returns asked too: every host
    /// silent past the wait is named in some delivered notice; no host is
    /// held more than one wait after its deadline; a host with fewer than
    /// two others coming due within one wait of it is never held; at most
    /// one alarm per outage of the record.
    #[test]
    fn loose_invariants(
        extra in 0u64..8,
        hosts in prop::collection::vec(
            (0u64..40, prop::option::of(1u64..120))
                .prop_map(|(down, back)| Silence { down, back }),
            1..10,
        )
    ) {
        let total = hosts.len() as u64 + extra;
        let names: Vec<String> = (0..hosts.len()).map(|i| format!("h{i}")).collect();
        let silent_at = |j: usize, now: u64| {
            let h: &Silence = &hosts[j];
            now >= h.down + 10 && h.back.is_none_or(|b| now < h.down + 10 + b)
        };
        let resolve_now = |g: &mut GroupRecord, now: u64| {
            let read = regather(g, WAIT);
            let still = |m: &super::super::Member| {
                let j: usize = m.host.as_str()[1..].parse().unwrap();
                silent_at(j, now)
            };
            if let Some(w) = super::resolve(&read, at(now), &policy_of(), &policy(), Some(total), still) {
                *g = w;
            }
        };
        let mut g = GroupRecord::new(GroupName::ungrouped());
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut held: Vec<bool> = vec![false; hosts.len()];
        let mut told = vec![false; hosts.len()];
        let mut back_done = vec![false; hosts.len()];
        let mut alarms: BTreeSet<String> = BTreeSet::new();
        let p = policy();
        for now in 0..300u64 {
            if let GroupPhase::Gathering { until } = g.phase
                && until <= at(now)
            {
                resolve_now(&mut g, now);
            }
            let asking: Vec<usize> = (0..hosts.len())
                .filter(|&i| silent_at(i, now) && !told[i])
                .collect();
            let notices: Vec<Notice> = asking
                .iter()
                .map(|&i| loose_notice(&names[i], NoticeKind::Alarm, hosts[i].down, now))
                .collect();
            let mut done = 0;
            for _ in 0..4 {
                if done == notices.len() {
                    break;
                }
                let asks: Vec<(&Notice, &crate::Policy)> = notices[done..].iter().map(|n| (n, &p)).collect();
                let (w, verdicts) = crate::group_outage::consult_batch(&g, &asks, at(now), &policy_of());
                if let Some(w) = w {
                    g = w;
                }
                for v in verdicts {
                    if v == Verdict::Resolve {
                        resolve_now(&mut g, now);
                        break;
                    }
                    let i = asking[done];
                    let deadline = hosts[i].down + 10;
                    match v {
                        Verdict::Hold(until) => {
                            held[i] = true;
                            prop_assert!(until <= at(deadline + WAIT_S), "{} held past the wait", names[i]);
                        }
                        Verdict::Alone => {
                            told[i] = true;
                            named.insert(names[i].clone());
                            prop_assert!(now <= deadline + WAIT_S + 1, "{} told late", names[i]);
                        }
                        Verdict::Absorbed => told[i] = true,
                        Verdict::Resolve => unreachable!(),
                    }
                    done += 1;
                }
            }
            prop_assert_eq!(done, notices.len(), "every ask answered");
            for i in 0..hosts.len() {
                let deadline = hosts[i].down + 10;
                let is_back = hosts[i].back.is_some_and(|b| now >= deadline + b);
                if is_back && told[i] && !back_done[i] {
                    let mut n = loose_notice(&names[i], NoticeKind::Recovery, hosts[i].down, now);
                    n.recovered_at = Some(at(now));
                    let _ = ask(&mut g, &n, now);
                    back_done[i] = true;
                }
            }
            for n in deliver_all(&mut g, now) {
                if n.kind == NoticeKind::Alarm {
                    prop_assert!(alarms.insert(n.outage_id.clone()), "two alarms for {}", n.outage_id);
                }
                for h in &n.hosts {
                    named.insert(h.host.as_str().to_owned());
                }
            }
        }
        for (i, h) in hosts.iter().enumerate() {
            let d = h.down + 10;
            let others_near = hosts
                .iter()
                .enumerate()
                .filter(|&(j, o)| j != i && (o.down + 10).abs_diff(d) <= WAIT_S)
                .count();
            if others_near + 1 < MIN_HOSTS {
                prop_assert!(!held[i], "{} held though alone: {:?}", names[i], hosts);
            }
            if h.back.is_none_or(|b| b > WAIT_S + 1) {
                prop_assert!(named.contains(&names[i]), "{} never named: {:?}", names[i], named);
            }
        }
    }
}

#[test]
fn a_host_alarmed_alone_then_gathered_owes_no_second_alarm_when_the_rest_is_back() {
    let mut g = GroupRecord::new(GroupName::ungrouped());
    // a alarms alone (told); b and c are held, then more than half of 5.
    ask(&mut g, &loose_notice("a", NoticeKind::Alarm, 0, 10), 10);
    ask(&mut g, &loose_notice("b", NoticeKind::Alarm, 2, 12), 12);
    ask(&mut g, &loose_notice("c", NoticeKind::Alarm, 3, 13), 13);
    resolve_at(&mut g, 15, Some(5), &[]);
    assert_eq!(deliver_all(&mut g, 15).len(), 1, "the outage's alarm");
    // b and c come back; a stays silent.
    for (h, last_seen) in [("b", 2), ("c", 3)] {
        let mut back = loose_notice(h, NoticeKind::Recovery, last_seen, 40);
        back.recovered_at = Some(at(40));
        assert_eq!(ask(&mut g, &back, 40), Verdict::Absorbed);
    }
    let mut sent = deliver_all(&mut g, 40);
    sent.extend(deliver_all(&mut g, 50));
    assert_eq!(g.phase, GroupPhase::Quiet, "{sent:#?}");
    let kinds: Vec<_> = sent.iter().map(|n| (n.kind, n.host.as_str())).collect();
    assert!(
        !sent
            .iter()
            .any(|n| !n.is_group() && n.kind == NoticeKind::Alarm),
        "a was told alone already: no second alarm for it: {kinds:?}"
    );
    assert_eq!(
        sent.iter()
            .filter(|n| n.kind == NoticeKind::Recovery)
            .count(),
        1,
        "{kinds:?}"
    );
}
