//! Missed-beat evidence on a manual timeline: ten hosts, interval 60 s,
//! timeout 10 min.

use std::time::Duration;

use super::*;
use crate::decide::{RetryPolicy, Round};
use crate::group_outage::{GroupPolicy, all_delivered, consult, resolve, settle, step};
use crate::{GroupName, HostId};

fn at(secs: u64) -> Timestamp {
    let t0 = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    add(t0, Duration::from_secs(secs))
}

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(600),
        reminder_interval: Duration::from_secs(3600),
        ..Policy::default()
    }
}

fn gp(min_hosts: u32) -> GroupPolicy {
    GroupPolicy {
        min_hosts,
        wait: Duration::from_secs(30),
        ..GroupPolicy::default()
    }
}

fn group() -> GroupName {
    GroupName::new("office-berlin").unwrap()
}

/// An up host of the group last seen at `seen`, sending a 60 s interval.
fn up(name: &str, seen: u64) -> HostRecord {
    let mut r = HostRecord::new(HostId::new(name).unwrap(), at(seen), policy().timeout);
    r.group = Some(group());
    r.interval.on_heartbeat(Some(Duration::from_secs(60)), None);
    r
}

/// The host's own alarm at its deadline.
fn alarm(name: &str, seen: u64) -> Notice {
    let mut r = up(name, seen);
    let owed = crate::evaluate_in_place(
        &mut r,
        at(seen + 600),
        &policy(),
        &crate::Context::default(),
    );
    owed[0].clone()
}

/// A gathering held for `ber-0` (silent since 0, deadline 600).
fn gathering() -> GroupRecord {
    let g = GroupRecord::new(group());
    let (w, v) = consult(&g, &alarm("ber-0", 0), at(600), &gp(5), &policy());
    assert_eq!(v, Verdict::Hold(at(630)));
    w.unwrap()
}

fn deliver(g: &mut GroupRecord, now: u64) -> Vec<Notice> {
    let mut out = Vec::new();
    for _ in 0..10 {
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

/// The gathering resolved at 630 with ber-1…9 (last seen at 60) as
/// evidence.
fn outage(min_hosts: u32, others: usize) -> GroupRecord {
    let hosts: Vec<HostRecord> = (1..=others).map(|i| up(&format!("ber-{i}"), 60)).collect();
    let g = add_evidence(&gathering(), &hosts, at(630), |_| policy());
    let mut g = resolve(&g, at(630), &gp(min_hosts), &policy(), |_| true).unwrap();
    drop_unproven(&mut g);
    g
}

#[test]
fn one_timed_out_and_nine_missed_beats_are_one_alarm_naming_ten() {
    let mut g = outage(5, 9);
    assert_eq!(g.phase, GroupPhase::Outage);
    let sent = deliver(&mut g, 630);
    assert_eq!(sent.len(), 1);
    let a = &sent[0];
    assert_eq!(a.kind, NoticeKind::Alarm);
    assert_eq!(a.hosts.len(), 10);
    assert_eq!(a.hosts.iter().filter(|h| h.missed_beat).count(), 9);
    assert!(
        a.hosts
            .iter()
            .all(|h| h.missed_beat == (h.host.as_str() != "ber-0"))
    );
    assert_eq!(
        a.headline(),
        "site office-berlin: 10 hosts silent (9 missed a beat, 1 silent past its timeout)"
    );
    assert!(
        a.body().contains("missed a beat, silent for 9m 30s"),
        "{}",
        a.body()
    );
    // The group looks at them again at their own deadline (660).
    assert_eq!(g.due_at, Some(at(660)));
}

#[test]
fn too_few_with_the_evidence_leaves_each_alone_and_names_nobody() {
    let g = outage(5, 2);
    assert_eq!(g.phase, GroupPhase::Quiet);
    assert_eq!(g.members.len(), 1, "only the held host, now alone");
    assert_eq!(g.members.first().unwrap().fate, Fate::Alone);
}

#[test]
fn a_host_that_only_missed_a_beat_is_not_evidence_before_its_expected_beat() {
    // Last seen at 600: expected by 690, so at 630 it has not missed one.
    let late = up("ber-1", 600);
    let g = add_evidence(&gathering(), &[late], at(630), |_| policy());
    assert_eq!(g.members.len(), 1);
}

#[test]
fn at_its_own_timeout_a_named_host_is_absorbed_and_one_that_beat_is_back() {
    let mut g = outage(5, 9);
    let _ = deliver(&mut g, 630);
    // At 660 ber-1…8 reach their timeouts: their alarms are absorbed.
    for i in 1..=8 {
        let (w, v) = consult(
            &g,
            &alarm(&format!("ber-{i}"), 60),
            at(660),
            &gp(5),
            &policy(),
        );
        assert_eq!(v, Verdict::Absorbed, "ber-{i}");
        g = w.unwrap();
    }
    let m = g
        .members
        .iter()
        .find(|m| m.host.as_str() == "ber-1")
        .unwrap();
    assert!(!m.missed_beat && !m.outage_id.is_empty() && m.named);
    // ber-9 beat at 640: at its deadline the group sees it back.
    assert_eq!(to_check(&g, at(660)), [HostId::new("ber-9").unwrap()]);
    let mut back = up("ber-9", 640);
    back.version = 7;
    let w = check(
        &g,
        &[(back.host.clone(), Some(back))],
        at(660),
        &gp(5),
        &policy(),
    )
    .unwrap();
    let m = w
        .members
        .iter()
        .find(|m| m.host.as_str() == "ber-9")
        .unwrap();
    assert_eq!(m.back_at, Some(at(640)));
    assert_eq!(w.phase, GroupPhase::Outage, "nine still silent");
    assert!(
        deliver(&mut w.clone(), 660).is_empty(),
        "nothing to say yet"
    );
}

#[test]
fn a_named_host_not_yet_evaluated_is_looked_at_again_and_one_marked_missing_awaits_its_alarm() {
    let g = outage(5, 9);
    let h = HostId::new("ber-1").unwrap();
    let w = check(
        &g,
        &[(h.clone(), Some(up("ber-1", 60)))],
        at(660),
        &gp(5),
        &policy(),
    )
    .unwrap();
    let m = w.members.iter().find(|m| m.host == h).unwrap();
    assert!(
        m.missed_beat && m.missing_since == at(661),
        "checked again at 661"
    );
    let mut missing = up("ber-1", 60);
    missing.status = crate::Status::Missing;
    let w = check(
        &w,
        &[(h.clone(), Some(missing))],
        at(661),
        &gp(5),
        &policy(),
    )
    .unwrap();
    let m = w.members.iter().find(|m| m.host == h).unwrap();
    assert!(!m.missed_beat && m.outage_id.is_empty(), "awaits its alarm");
    assert_eq!(
        next_check(&w),
        Some(at(660)),
        "the others are still pending"
    );
}

#[test]
fn when_the_group_is_back_a_pending_host_is_left_to_its_own_notices() {
    let mut g = outage(2, 1);
    let _ = deliver(&mut g, 630);
    // ber-0 comes back; ber-1 (named on a missed beat) has not reached its
    // timeout: the group ends after the wait with one all-clear, and sends
    // no alarm for ber-1 (its own record owes one at its deadline if it
    // stays silent).
    let mut back = alarm("ber-0", 0);
    back.kind = NoticeKind::Recovery;
    back.recovered_at = Some(at(640));
    let (w, v) = consult(&g, &back, at(640), &gp(2), &policy());
    assert_eq!(v, Verdict::Absorbed);
    g = w.unwrap();
    assert!(matches!(g.phase, GroupPhase::Ending { .. }));
    let sent = deliver(&mut g, 670);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    assert_eq!(g.phase, GroupPhase::Quiet);
    assert!(g.members.iter().all(|m| m.host.as_str() != "ber-1"));
}
