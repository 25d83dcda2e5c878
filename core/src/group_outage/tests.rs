//! The group transitions on a manual timeline, and their invariants under
//! random outages (proptest).

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

pub(super) fn at(secs: u64) -> Timestamp {
    let t0 = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    add(t0, Duration::from_secs(secs))
}

pub(super) fn host(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

pub(super) fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(10),
        reminder_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

fn gp(min_hosts: u32) -> GroupPolicy {
    GroupPolicy {
        min_hosts,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    }
}

pub(super) fn group() -> GroupName {
    GroupName::new("office-berlin").unwrap()
}

/// A host's own notice of `kind`, silent since `last_seen` (deadline 10 s
/// later).
pub(super) fn notice(h: &str, kind: NoticeKind, last_seen: u64, now: u64) -> Notice {
    let missing_since = at(last_seen + 10);
    let outage_id = format!("{h}@{}", missing_since.timestamp_millis());
    Notice {
        last_seen: at(last_seen),
        missing_since,
        recovered_at: (kind == NoticeKind::Recovery).then(|| at(now)),
        silent_for: Duration::from_secs(now - last_seen),
        alarm_count: 1,
        group: Some(group()),
        ..Notice::new(
            format!("{outage_id}/{kind}"),
            outage_id,
            kind,
            host(h),
            at(now),
        )
    }
}

/// Asks and applies (as the monitor does after a successful swap).
fn ask(g: &mut GroupRecord, n: &Notice, now: u64, min_hosts: u32) -> Verdict {
    let (w, v) = consult(g, n, at(now), &gp(min_hosts), &policy());
    if let Some(w) = w {
        *g = w;
    }
    v
}

/// Delivers every owed group notice at `now` (every channel takes it).
pub(super) fn deliver_all(g: &mut GroupRecord, now: u64) -> Vec<Notice> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let (w, leased) = step(g, at(now), &policy(), "m", Duration::from_secs(30));
        if let Some(w) = w {
            *g = w;
        }
        let Some(ob) = leased else { break };
        let channels = vec!["ch".to_owned()];
        let results = all_delivered(&channels);
        let round = Round {
            notice_id: &ob.notice.id,
            results: &results,
            channels: &channels,
        };
        *g = settle(g, &round, at(now), &policy(), &RetryPolicy::default()).unwrap();
        out.push(ob.notice);
    }
    out
}

fn resolve_all_silent(g: &mut GroupRecord, now: u64, min_hosts: u32) {
    if let Some(w) = resolve(g, at(now), &gp(min_hosts), &policy(), |_| true) {
        *g = w;
    }
}

#[test]
fn hosts_silent_together_are_one_alarm_one_reminder_one_all_clear() {
    let mut g = GroupRecord::new(group());
    // Deadline 10: the first is held until 15, the others join the hold.
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 10), 10, 2),
        Verdict::Hold(at(15))
    );
    assert_eq!(
        ask(&mut g, &notice("b", NoticeKind::Alarm, 1, 11), 11, 2),
        Verdict::Hold(at(15))
    );
    assert_eq!(g.due_at, Some(at(15)), "due when the hold ends");
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 15), 15, 2),
        Verdict::Resolve
    );
    resolve_all_silent(&mut g, 15, 2);
    assert_eq!(g.phase, GroupPhase::Outage);
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 15), 15, 2),
        Verdict::Absorbed
    );
    let sent = deliver_all(&mut g, 15);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Alarm);
    assert_eq!(sent[0].headline(), "site office-berlin: 2 hosts silent");
    // A member that reports a failure: its news goes out on its own; its
    // ordinary reminder is the group's.
    let mut news = notice("b", NoticeKind::Reminder, 1, 20);
    news.job = Some(Box::new(crate::job::JobNote {
        failure: Some("db corrupted".into()),
        failed: true,
        new_failure: true,
        ..crate::job::JobNote::default()
    }));
    assert_eq!(
        news.headline(),
        "b (site office-berlin) reported a failure: db corrupted"
    );
    assert_eq!(ask(&mut g, &news, 20, 2), Verdict::Alone);
    assert_eq!(
        ask(&mut g, &notice("b", NoticeKind::Reminder, 1, 21), 21, 2),
        Verdict::Absorbed
    );
    // A third host falls silent later: absorbed, named (new) in the reminder.
    assert_eq!(
        ask(&mut g, &notice("c", NoticeKind::Alarm, 30, 40), 40, 2),
        Verdict::Absorbed
    );
    assert!(
        deliver_all(&mut g, 40).is_empty(),
        "no notice before the reminder"
    );
    assert_eq!(g.due_at, Some(at(75)), "the group's reminder is due");
    let sent = deliver_all(&mut g, 75);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Reminder);
    assert_eq!(sent[0].hosts.len(), 3);
    assert!(
        sent[0]
            .hosts
            .iter()
            .any(|h| h.host.as_str() == "c" && h.new)
    );
    // All back: one all-clear naming the three.
    for (h, s) in [("a", 0), ("b", 1), ("c", 30)] {
        assert_eq!(
            ask(&mut g, &notice(h, NoticeKind::Recovery, s, 80), 80, 2),
            Verdict::Absorbed
        );
    }
    let sent = deliver_all(&mut g, 80);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    assert_eq!(sent[0].hosts.len(), 3);
    assert_eq!(sent[0].outage_id, sent[0].outage_id);
    assert_eq!(g.phase, GroupPhase::Quiet);
    assert_eq!(g.due_at, None);
}

#[test]
fn a_host_silent_alone_is_held_at_most_the_wait() {
    let mut g = GroupRecord::new(group());
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 10), 10, 2),
        Verdict::Hold(at(15))
    );
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 15), 15, 2),
        Verdict::Resolve
    );
    resolve_all_silent(&mut g, 15, 2);
    assert_eq!(g.phase, GroupPhase::Quiet);
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 15), 15, 2),
        Verdict::Alone
    );
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Recovery, 0, 30), 30, 2),
        Verdict::Alone
    );
    assert!(g.members.is_empty(), "forgotten once back");
}

#[test]
fn a_host_still_silent_when_its_group_is_back_gets_its_own_alarm() {
    let mut g = GroupRecord::new(group());
    for h in ["a", "b", "c"] {
        let _ = ask(&mut g, &notice(h, NoticeKind::Alarm, 0, 10), 10, 2);
    }
    resolve_all_silent(&mut g, 15, 2);
    let _ = deliver_all(&mut g, 15);
    let _ = ask(&mut g, &notice("a", NoticeKind::Recovery, 0, 20), 20, 2);
    let _ = ask(&mut g, &notice("b", NoticeKind::Recovery, 0, 20), 20, 2);
    assert_eq!(
        g.phase,
        GroupPhase::Ending { until: at(25) },
        "fewer than min_hosts silent: the stragglers get the wait"
    );
    let sent = deliver_all(&mut g, 25);
    let kinds: Vec<(NoticeKind, bool)> = sent.iter().map(|n| (n.kind, n.is_group())).collect();
    assert_eq!(
        kinds,
        [(NoticeKind::Recovery, true), (NoticeKind::Alarm, false)],
        "the group all-clear, then c's own alarm: {sent:#?}"
    );
    assert_eq!(sent[1].host.as_str(), "c");
    // c's own reminders and all-clear go out as its own.
    assert_eq!(
        ask(&mut g, &notice("c", NoticeKind::Reminder, 0, 90), 90, 2),
        Verdict::Alone
    );
    assert_eq!(
        ask(&mut g, &notice("c", NoticeKind::Recovery, 0, 95), 95, 2),
        Verdict::Alone
    );
}

#[test]
fn a_held_host_that_came_back_is_left_out() {
    let mut g = GroupRecord::new(group());
    for h in ["a", "b", "c"] {
        let _ = ask(&mut g, &notice(h, NoticeKind::Alarm, 0, 10), 10, 2);
    }
    let w = resolve(&g, at(15), &gp(2), &policy(), |m| m.host.as_str() != "b").unwrap();
    let named: Vec<&str> = w.outbox[0]
        .notice
        .hosts
        .iter()
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(named, ["a", "c"]);
}

#[test]
fn the_all_clear_summarises_the_agents_reports() {
    let mut g = GroupRecord::new(group());
    for h in ["a", "b", "c"] {
        let _ = ask(&mut g, &notice(h, NoticeKind::Alarm, 0, 10), 10, 2);
    }
    resolve_all_silent(&mut g, 15, 2);
    let _ = deliver_all(&mut g, 15);
    for h in ["a", "b", "c"] {
        let mut n = notice(h, NoticeKind::Recovery, 0, 20);
        n.report = Some(
            if h == "c" {
                "connect refused"
            } else {
                "dns failures"
            }
            .into(),
        );
        let _ = ask(&mut g, &n, 20, 2);
    }
    let sent = deliver_all(&mut g, 20);
    let summary = sent[0].report.clone().unwrap_or_default();
    assert!(summary.starts_with("2 agents: dns failures"), "{summary}");
    assert!(summary.contains("1 agent: connect refused"), "{summary}");
}

/// One host's outage in a random scenario: it falls silent at `down` and,
/// if `back` is some, is heard again that many seconds later.
#[derive(Debug, Clone)]
struct Outage {
    down: u64,
    back: Option<u64>,
}

fn outages() -> impl Strategy<Value = (u32, Vec<Outage>)> {
    (
        1u32..4,
        prop::collection::vec(
            (0u64..40, prop::option::of(1u64..120)).prop_map(|(down, back)| Outage { down, back }),
            1..8,
        ),
    )
}

proptest! {
    /// Every silent host is named in some delivered notice (its own or a
    /// group notice); at most one group alarm per group outage; no host is
    /// held past the group wait after its deadline.
    #[test]
    fn group_invariants((min_hosts, hosts) in outages()) {
        let mut g = GroupRecord::new(group());
        let names: Vec<String> = (0..hosts.len()).map(|i| format!("h{i}")).collect();
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut held_since: Vec<Option<u64>> = vec![None; hosts.len()];
        let mut told: Vec<bool> = vec![false; hosts.len()];
        let mut back_done: Vec<bool> = vec![false; hosts.len()];
        let mut group_alarms: BTreeSet<String> = BTreeSet::new();
        for now in 0..300u64 {
            for (i, o) in hosts.iter().enumerate() {
                let deadline = o.down + 10;
                let back_at = o.back.map(|b| deadline + b);
                let is_back = back_at.is_some_and(|b| now >= b);
                // The host's own record: an alarm owed from its deadline
                // until told (or until it is back untold: dropped quietly).
                if now >= deadline && !told[i] && !is_back {
                    let n = notice(&names[i], NoticeKind::Alarm, o.down, now);
                    let mut v = ask(&mut g, &n, now, min_hosts);
                    if v == Verdict::Resolve {
                        let silent = |m: &Member| {
                            let j: usize = m.host.as_str()[1..].parse().unwrap();
                            let h = &hosts[j];
                            h.back.is_none_or(|b| now < h.down + 10 + b)
                        };
                        if let Some(w) = resolve(&g, at(now), &gp(min_hosts), &policy(), silent) {
                            g = w;
                        }
                        v = ask(&mut g, &n, now, min_hosts);
                    }
                    match v {
                        Verdict::Hold(until) => {
                            held_since.get_mut(i).unwrap().get_or_insert(now);
                            prop_assert!(until <= at(deadline + 5), "held past the wait");
                        }
                        Verdict::Alone => {
                            told[i] = true;
                            named.insert(names[i].clone());
                        }
                        Verdict::Absorbed => told[i] = true,
                        Verdict::Resolve => prop_assert!(false, "resolve twice"),
                    }
                    if let Some(s) = held_since[i] {
                        prop_assert!(now <= deadline.max(s) + 5 + 1, "{} held too long", names[i]);
                    }
                }
                if is_back && told[i] && !back_done[i] {
                    let n = notice(&names[i], NoticeKind::Recovery, o.down, now);
                    let _ = ask(&mut g, &n, now, min_hosts);
                    back_done[i] = true;
                }
            }
            if let GroupPhase::Gathering { until } = g.phase
                && until <= at(now)
            {
                let silent = |m: &Member| {
                    let j: usize = m.host.as_str()[1..].parse().unwrap();
                    let h = &hosts[j];
                    h.back.is_none_or(|b| now < h.down + 10 + b)
                };
                if let Some(w) = resolve(&g, at(now), &gp(min_hosts), &policy(), silent) {
                    g = w;
                }
            }
            for n in deliver_all(&mut g, now) {
                if n.is_group() && n.kind == NoticeKind::Alarm {
                    prop_assert!(group_alarms.insert(n.outage_id.clone()), "two group alarms for {}", n.outage_id);
                }
                for h in &n.hosts {
                    named.insert(h.host.as_str().to_owned());
                }
                if !n.is_group() {
                    named.insert(n.host.as_str().to_owned());
                }
            }
        }
        for (i, o) in hosts.iter().enumerate() {
            // Silent past its deadline plus the wait (and not back before
            // anyone could be told): named somewhere.
            let silent_long = o.back.is_none_or(|b| b > 5 + 1);
            if silent_long {
                prop_assert!(named.contains(&names[i]), "{} never named: {:?}", names[i], named);
            }
        }
    }
}

#[test]
fn hosts_owed_their_alarms_late_together_are_one_site_outage() {
    // Deadlines at 10, covered by a silence until 60: the alarms are owed
    // at 60, all three, and gather from then.
    let mut g = GroupRecord::new(group());
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 60), 60, 2),
        Verdict::Hold(at(65))
    );
    assert_eq!(
        ask(&mut g, &notice("b", NoticeKind::Alarm, 0, 60), 60, 2),
        Verdict::Hold(at(65))
    );
    assert_eq!(
        ask(&mut g, &notice("c", NoticeKind::Alarm, 0, 61), 61, 2),
        Verdict::Hold(at(65))
    );
    assert_eq!(g.since, Some(at(10)), "dark since the first deadline");
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Alarm, 0, 65), 65, 2),
        Verdict::Resolve
    );
    resolve_all_silent(&mut g, 65, 2);
    assert_eq!(g.phase, GroupPhase::Outage);
    let sent = deliver_all(&mut g, 65);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headline(), "site office-berlin: 3 hosts silent");
}
