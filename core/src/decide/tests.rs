//! Unit tests of every transition, to the millisecond, and property tests
//! over random sequences of heartbeats, sweeps, silences and clock jumps.

use std::time::Duration;

use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::{HostPattern, Silence};

const CH: &str = "ch";

fn t(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).expect("in range")
}

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(10),
        reminder_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

fn rec_at(ms: i64) -> HostRecord {
    HostRecord::new(HostId::new("h1").unwrap(), t(ms), policy().timeout)
}

fn ctx() -> Context<'static> {
    Context::default()
}

fn channels() -> Vec<String> {
    vec![CH.to_owned()]
}

/// Evaluates, claims and delivers with `outcome`, like one monitor pass.
fn pass(
    r: &HostRecord,
    now: Timestamp,
    p: &Policy,
    c: &Context<'_>,
    outcome: ChannelOutcome,
) -> (HostRecord, Vec<Notice>) {
    let d = evaluate(r, now, p, c);
    let mut rec = d.next;
    let mut delivered = Vec::new();
    if let Some(claimed) = claim(&rec, "me", now, Duration::from_secs(30)) {
        let notice = claimed.outbox.clone().unwrap().notice;
        if outcome == ChannelOutcome::Delivered {
            delivered.push(notice.clone());
        }
        let results = vec![(CH.to_owned(), outcome)];
        rec = settle(
            &claimed,
            &Round {
                notice_id: &notice.id,
                results: &results,
                channels: &channels(),
            },
            now,
            p,
            &RetryPolicy::default(),
            c,
        )
        .expect("owned")
        .next;
    }
    (rec, delivered)
}

#[test]
fn up_until_the_deadline_to_the_millisecond() {
    let r = rec_at(0);
    let d = evaluate(&r, t(9_999), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Up);
    assert_eq!(d.next.due_at, Some(t(10_000)));
    assert!(d.notices.is_empty());
    assert_eq!(d.next.last_checked, Some(t(9_999)));
    let d = evaluate(&r, t(10_000), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Missing);
    assert_eq!(d.notices.len(), 1);
}

#[test]
fn alarm_notice_says_who_since_when_and_how_long() {
    let r = rec_at(0);
    let d = evaluate(&r, t(12_345), &policy(), &ctx());
    let n = &d.notices[0];
    assert_eq!(n.kind, NoticeKind::Alarm);
    assert_eq!(n.host.as_str(), "h1");
    assert_eq!(n.last_seen, t(0));
    assert_eq!(n.missing_since, t(10_000));
    assert_eq!(n.silent_for, Duration::from_millis(12_345));
    assert_eq!(n.alarm_count, 1);
    assert_eq!(n.next_reminder, Some(t(72_345)));
    assert_eq!(n.outage_id, format!("h1@{}", t(10_000).timestamp_millis()));
    assert_eq!(n.id, format!("{}/alarm/1", n.outage_id));
    assert_eq!(
        d.next.outbox.as_ref().unwrap().notice,
        *n,
        "the notice sits in the outbox"
    );
    assert_eq!(d.next.due_at, Some(t(12_345)), "owed now");
    assert_eq!(d.next.silent_since, Some(t(0)));
    assert!(n.body().contains("silent for:    12s"), "{}", n.body());
    assert_eq!(n.subject(), "[iamalive] ALARM h1");
}

#[test]
fn a_leased_notice_is_left_to_its_owner() {
    let r = rec_at(0);
    let d = evaluate(&r, t(10_000), &policy(), &ctx());
    let claimed = claim(&d.next, "a", t(10_000), Duration::from_secs(30)).unwrap();
    assert_eq!(claimed.due_at, Some(t(40_000)));
    assert!(claim(&claimed, "b", t(39_999), Duration::from_secs(30)).is_none());
    let e = evaluate(&claimed, t(20_000), &policy(), &ctx());
    assert_eq!(e.next.outbox, claimed.outbox);
    assert_eq!(e.next.due_at, Some(t(40_000)));
    // After the lease, anyone may take it over.
    let taken = claim(&claimed, "b", t(40_000), Duration::from_secs(30)).unwrap();
    assert_eq!(taken.outbox.unwrap().lease.unwrap().owner, "b");
}

#[test]
fn delivered_alarm_makes_alarmed_and_arms_the_reminder() {
    let (r, sent) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.last_alarm, Some(t(10_000)));
    assert_eq!(r.alarm_count, 1);
    assert_eq!(r.outbox, None);
    assert_eq!(r.due_at, Some(t(70_000)));
}

#[test]
fn reminders_are_throttled_backed_off_and_capped() {
    let p = Policy {
        reminder_backoff: 2.0,
        max_reminders: Some(2),
        ..policy()
    };
    let (r, _) = pass(&rec_at(0), t(10_000), &p, &ctx(), ChannelOutcome::Delivered);
    let (r2, sent) = pass(&r, t(69_999), &p, &ctx(), ChannelOutcome::Delivered);
    assert!(sent.is_empty(), "not a millisecond early");
    assert_eq!(r2.due_at, Some(t(70_000)));
    let (r, sent) = pass(&r2, t(70_000), &p, &ctx(), ChannelOutcome::Delivered);
    assert_eq!(sent[0].kind, NoticeKind::Reminder);
    assert_eq!(sent[0].alarm_count, 2);
    assert_eq!(sent[0].id, format!("{}/reminder/2", sent[0].outage_id));
    assert_eq!(r.due_at, Some(t(190_000)), "second wait is doubled");
    let (r, sent) = pass(&r, t(190_000), &p, &ctx(), ChannelOutcome::Delivered);
    assert_eq!(sent[0].alarm_count, 3);
    assert_eq!(sent[0].next_reminder, None, "the cap is reached");
    assert_eq!(r.due_at, None, "nothing more without a heartbeat");
}

#[test]
fn recovery_only_after_a_delivered_alarm() {
    // Alarm delivered, then heard: recovery owed.
    let (mut r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    r.last_seen = t(15_000);
    let (r, sent) = pass(&r, t(15_000), &policy(), &ctx(), ChannelOutcome::Delivered);
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    assert_eq!(sent[0].recovered_at, Some(t(15_000)));
    assert_eq!(sent[0].last_seen, t(0));
    assert_eq!(sent[0].silent_for, Duration::from_secs(15));
    assert_eq!(sent[0].id, format!("{}/recovery", sent[0].outage_id));
    assert_eq!(
        (r.status, r.missing_since, r.alarm_count),
        (Status::Up, None, 0)
    );
    assert_eq!(r.due_at, Some(t(25_000)));

    // Alarm never got out (channel down), then heard: quiet.
    let (mut r, sent) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Transient { retry_after: None },
    );
    assert!(sent.is_empty());
    assert_eq!(r.status, Status::Missing);
    r.last_seen = t(11_000);
    let d = evaluate(&r, t(11_000), &policy(), &ctx());
    assert!(d.notices.is_empty(), "recovers quietly");
    assert_eq!((d.next.status, d.next.outbox.as_ref()), (Status::Up, None));
    assert_eq!(d.next.due_at, Some(t(21_000)));
}

#[test]
fn partly_delivered_alarm_still_owes_a_recovery() {
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let id = r.outbox.as_ref().unwrap().notice.id.clone();
    let chans = vec!["a".to_owned(), "b".to_owned()];
    let results = vec![
        ("a".to_owned(), ChannelOutcome::Delivered),
        (
            "b".to_owned(),
            ChannelOutcome::Transient {
                retry_after: Some(Duration::from_secs(7)),
            },
        ),
    ];
    let mut r = settle(
        &r,
        &Round {
            notice_id: &id,
            results: &results,
            channels: &chans,
        },
        t(10_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    let ob = r.outbox.clone().unwrap();
    assert_eq!(ob.delivered, ["a"]);
    assert_eq!(
        ob.next_attempt,
        t(17_000),
        "the channel's Retry-After beats the 2 s backoff"
    );
    assert_eq!(r.status, Status::Missing);
    r.last_seen = t(12_000);
    let d = evaluate(&r, t(12_000), &policy(), &ctx());
    assert_eq!(d.notices[0].kind, NoticeKind::Recovery);
}

#[test]
fn a_refusal_with_nobody_told_keeps_the_notice_owed_and_retried() {
    // It used to be given up at once, and the host counted as alarmed with
    // nobody told: one refusal (a relay over its quota) dropped the alarm.
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let id = r.outbox.as_ref().unwrap().notice.id.clone();
    let refused = ChannelOutcome::Permanent {
        reason: "550 daily quota exceeded".into(),
    };
    let results = vec![(CH.to_owned(), refused.clone())];
    let r = settle(
        &r,
        &Round {
            notice_id: &id,
            results: &results,
            channels: &channels(),
        },
        t(10_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    assert_eq!(r.status, Status::Missing, "nobody was told");
    let ob = r.outbox.clone().expect("still owed");
    assert!(ob.owed_to(CH), "retried on the refusing channel");
    assert_eq!(ob.next_attempt, t(12_000), "with the usual backoff");
    assert_eq!(ob.refusals.len(), 1);
    assert_eq!(ob.refusals[0].reason, "550 daily quota exceeded");
    assert_eq!(r.due_at, Some(t(12_000)));
    // The relay accepts mail again: the alarm goes out and takes effect.
    let (r, sent) = pass(&r, t(12_000), &policy(), &ctx(), ChannelOutcome::Delivered);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, id);
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.outbox, None);
}

#[test]
fn a_refusal_beside_a_channel_that_took_it_is_given_up() {
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let id = r.outbox.as_ref().unwrap().notice.id.clone();
    let chans = vec!["a".to_owned(), "b".to_owned()];
    let results = vec![
        ("a".to_owned(), ChannelOutcome::Delivered),
        (
            "b".to_owned(),
            ChannelOutcome::Permanent {
                reason: "404".into(),
            },
        ),
    ];
    let r = settle(
        &r,
        &Round {
            notice_id: &id,
            results: &results,
            channels: &chans,
        },
        t(10_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    assert_eq!(r.outbox, None, "nothing left to try");
    assert_eq!(r.status, Status::Alarmed);
    // A refusal while another channel is still retrying: b is given up
    // once a has the notice.
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let first = vec![
        (
            "a".to_owned(),
            ChannelOutcome::Transient { retry_after: None },
        ),
        (
            "b".to_owned(),
            ChannelOutcome::Permanent {
                reason: "404".into(),
            },
        ),
    ];
    let r = settle(
        &r,
        &Round {
            notice_id: &id,
            results: &first,
            channels: &chans,
        },
        t(10_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    let ob = r.outbox.clone().unwrap();
    assert!(ob.owed_to("a") && ob.owed_to("b"), "nobody told yet");
    let second = vec![
        ("a".to_owned(), ChannelOutcome::Delivered),
        (
            "b".to_owned(),
            ChannelOutcome::Permanent {
                reason: "404".into(),
            },
        ),
    ];
    let r = settle(
        &r,
        &Round {
            notice_id: &id,
            results: &second,
            channels: &chans,
        },
        t(12_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    assert_eq!(r.outbox, None);
    assert_eq!(r.status, Status::Alarmed);
}

#[test]
fn a_channel_still_failing_when_the_next_reminder_would_be_due_is_given_up() {
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let id = r.outbox.as_ref().unwrap().notice.id.clone();
    let chans = vec!["mail".to_owned(), "hook".to_owned()];
    let round = |r: &HostRecord, at: i64, mail: ChannelOutcome| {
        let results = vec![
            ("mail".to_owned(), mail),
            (
                "hook".to_owned(),
                ChannelOutcome::Transient { retry_after: None },
            ),
        ];
        settle(
            r,
            &Round {
                notice_id: &id,
                results: &results,
                channels: &chans,
            },
            t(at),
            &policy(),
            &RetryPolicy::default(),
            &ctx(),
        )
        .unwrap()
        .next
    };
    // mail takes the alarm at 10 s; the webhook keeps failing.
    let r = round(&r, 10_000, ChannelOutcome::Delivered);
    assert!(r.outbox.as_ref().unwrap().owed_to("hook"));
    let r = round(&r, 69_999, ChannelOutcome::Delivered);
    assert!(
        r.outbox.as_ref().unwrap().owed_to("hook"),
        "retried until the next reminder would be due"
    );
    assert_eq!(r.status, Status::Missing);
    // At the reminder interval (60 s after the alarm was made) the webhook
    // is given up for it: the alarm takes effect, reminders go on.
    let r = round(&r, 70_000, ChannelOutcome::Delivered);
    assert_eq!(r.outbox, None, "{:?}", r.outbox);
    assert_eq!(r.status, Status::Alarmed);
    assert!(r.due_at.is_some_and(|d| d > t(70_000)), "the next reminder");
    // Nobody told: nothing is given up, however long it fails.
    let lone = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let failing = vec![
        (
            "mail".to_owned(),
            ChannelOutcome::Transient { retry_after: None },
        ),
        (
            "hook".to_owned(),
            ChannelOutcome::Transient { retry_after: None },
        ),
    ];
    let lone = settle(
        &lone,
        &Round {
            notice_id: &id,
            results: &failing,
            channels: &chans,
        },
        t(900_000),
        &policy(),
        &RetryPolicy::default(),
        &ctx(),
    )
    .unwrap()
    .next;
    let ob = lone.outbox.unwrap();
    assert!(ob.owed_to("mail") && ob.owed_to("hook"));
}

#[test]
fn backoff_doubles_up_to_the_max() {
    let rp = RetryPolicy {
        base: Duration::from_secs(1),
        max: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    let waits: Vec<u64> = (1..=5).map(|a| rp.backoff(a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 5, 5]);
}

#[test]
fn settle_of_a_stale_notice_does_nothing() {
    let r = evaluate(&rec_at(0), t(10_000), &policy(), &ctx()).next;
    let results = vec![(CH.to_owned(), ChannelOutcome::Delivered)];
    assert!(
        settle(
            &r,
            &Round {
                notice_id: "other-id",
                results: &results,
                channels: &channels()
            },
            t(10_000),
            &policy(),
            &RetryPolicy::default(),
            &ctx()
        )
        .is_none()
    );
    assert!(
        settle(
            &rec_at(0),
            &Round {
                notice_id: "x",
                results: &results,
                channels: &channels()
            },
            t(0),
            &policy(),
            &RetryPolicy::default(),
            &ctx()
        )
        .is_none()
    );
}

fn silence(from: i64, to: i64) -> Silence {
    Silence::new(
        "s",
        HostPattern::new("h*").unwrap(),
        t(from),
        t(to),
        "maintenance",
    )
    .unwrap()
}

#[test]
fn silence_holds_the_alarm_until_it_ends() {
    let s = [silence(5_000, 30_000)];
    let c = Context {
        silences: &s,
        ..ctx()
    };
    let d = evaluate(&rec_at(0), t(10_000), &policy(), &c);
    assert!(d.notices.is_empty());
    assert_eq!(d.next.status, Status::Missing);
    assert_eq!(d.next.due_at, Some(t(30_000)));
    let d2 = evaluate(&d.next, t(30_000), &policy(), &c);
    assert_eq!(
        d2.notices[0].kind,
        NoticeKind::Alarm,
        "still missing at the end: alarm"
    );
    assert_eq!(d2.notices[0].missing_since, t(10_000));
    // Other hosts are not covered.
    let other = HostRecord::new(HostId::new("x").unwrap(), t(0), policy().timeout);
    assert_eq!(evaluate(&other, t(10_000), &policy(), &c).notices.len(), 1);
}

#[test]
fn silence_starting_during_retries_holds_an_undelivered_alarm_back() {
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Transient { retry_after: None },
    );
    let s = [silence(11_000, 50_000)];
    let c = Context {
        silences: &s,
        ..ctx()
    };
    let d = evaluate(&r, t(12_000), &policy(), &c);
    assert_eq!(d.next.outbox, None);
    assert_eq!(d.next.due_at, Some(t(50_000)));
}

#[test]
fn reminder_inside_a_silence_waits_for_its_end() {
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    let s = [silence(60_000, 100_000)];
    let c = Context {
        silences: &s,
        ..ctx()
    };
    let d = evaluate(&r, t(70_000), &policy(), &c);
    assert!(d.notices.is_empty());
    assert_eq!(d.next.due_at, Some(t(100_000)));
    let d = evaluate(&d.next, t(100_000), &policy(), &c);
    assert_eq!(d.notices[0].kind, NoticeKind::Reminder);
}

#[test]
fn pause_and_resume() {
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    let p = pause(&r);
    assert_eq!(
        (p.status, p.due_at, p.alarm_count),
        (Status::Paused, None, 0)
    );
    let d = evaluate(&p, t(1_000_000), &policy(), &ctx());
    assert!(d.notices.is_empty());
    assert_eq!(d.next.due_at, None);
    assert!(claim(&p, "m", t(1_000_000), Duration::from_secs(1)).is_none());
    let u = resume(&p, t(1_000_000), &policy());
    assert_eq!((u.status, u.due_at), (Status::Up, Some(t(1_010_000))));
    assert!(
        evaluate(&u, t(1_009_999), &policy(), &ctx())
            .notices
            .is_empty()
    );
    assert_eq!(
        evaluate(&u, t(1_010_000), &policy(), &ctx()).notices.len(),
        1
    );
    assert_eq!(
        resume(&u, t(2_000_000), &policy()),
        u,
        "resuming an up host changes nothing"
    );
}

#[test]
fn a_timed_pause_resumes_by_itself_with_a_full_timeout_from_its_end() {
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    assert_eq!(r.status, Status::Alarmed);
    let p = pause_until(&r, Some(t(100_000)));
    assert_eq!(
        (p.status, p.due_at, p.alarm_count, p.missing_since),
        (Status::Paused, Some(t(100_000)), 0, None),
        "paused until its end, the outage forgotten"
    );
    let d = evaluate(&p, t(99_999), &policy(), &ctx());
    assert!(d.notices.is_empty());
    assert_eq!(
        (d.next.status, d.next.due_at),
        (Status::Paused, Some(t(100_000))),
        "a millisecond before its end it stays paused and due at the end"
    );
    assert!(claim(&p, "m", t(99_999), Duration::from_secs(1)).is_none());
    let d = evaluate(&d.next, t(100_000), &policy(), &ctx());
    assert!(d.notices.is_empty(), "resuming owes nothing");
    assert_eq!(
        (d.next.status, d.next.watch_from, d.next.due_at),
        (Status::Up, t(100_000), Some(t(110_000))),
        "up at its end, with a full timeout from the end"
    );
    assert_eq!(d.next.last_checked, Some(t(100_000)));
    let u = d.next;
    assert!(
        evaluate(&u, t(109_999), &policy(), &ctx())
            .notices
            .is_empty()
    );
    let d = evaluate(&u, t(110_000), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Missing);
    assert_eq!(d.next.missing_since, Some(t(110_000)));
    assert_eq!(d.notices.len(), 1);
    assert_eq!(d.notices[0].kind, NoticeKind::Alarm);
    assert_eq!(d.notices[0].missing_since, t(110_000));
}

#[test]
fn a_sweep_long_after_the_pause_end_resumes_and_alarms_at_once() {
    // Silent through the pause and a whole timeout after it: missing since
    // one timeout after the pause's end, alarmed at the first look.
    let p = pause_until(&rec_at(0), Some(t(100_000)));
    let d = evaluate(&p, t(250_000), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Missing);
    assert_eq!(d.next.watch_from, t(100_000));
    assert_eq!(d.next.missing_since, Some(t(110_000)));
    assert_eq!(d.notices.len(), 1);
    assert_eq!(d.next.due_at, Some(t(250_000)), "owed now");
    // A silence covering the resume holds that alarm back as usual.
    let s = [silence(200_000, 300_000)];
    let c = Context {
        silences: &s,
        ..ctx()
    };
    let d = evaluate(&p, t(250_000), &policy(), &c);
    assert!(d.notices.is_empty());
    assert_eq!(
        (d.next.status, d.next.due_at),
        (Status::Missing, Some(t(300_000)))
    );
}

#[test]
fn heartbeats_during_a_timed_pause_do_not_end_it_but_count_after_it() {
    let mut p = pause_until(&rec_at(0), Some(t(100_000)));
    // The store's heartbeat rule: last_seen moves, due_at stays.
    p.last_seen = t(95_000);
    let d = evaluate(&p, t(96_000), &policy(), &ctx());
    assert_eq!(
        (d.next.status, d.next.due_at),
        (Status::Paused, Some(t(100_000)))
    );
    // Heard after the end but before a sweep got to it: its timeout runs
    // from that heartbeat.
    p.last_seen = t(105_000);
    let d = evaluate(&p, t(106_000), &policy(), &ctx());
    assert_eq!(
        (d.next.status, d.next.due_at),
        (Status::Up, Some(t(115_000)))
    );
    assert!(d.notices.is_empty());
}

#[test]
fn pausing_again_replaces_the_end_and_resume_ends_it_early() {
    let p = pause_until(&rec_at(0), Some(t(100_000)));
    let later = pause_until(&p, Some(t(200_000)));
    assert_eq!(later.due_at, Some(t(200_000)));
    let d = evaluate(&later, t(150_000), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Paused);
    let forever = pause_until(&p, None);
    assert_eq!(forever.due_at, None);
    assert_eq!(
        evaluate(&forever, t(10_000_000), &policy(), &ctx())
            .next
            .status,
        Status::Paused,
        "without an end it never resumes by itself"
    );
    assert_eq!(pause(&p), forever, "pause is pause_until with no end");
    let u = resume(&p, t(50_000), &policy());
    assert_eq!(
        (u.status, u.watch_from, u.due_at),
        (Status::Up, t(50_000), Some(t(60_000))),
        "an operator's resume wins over the planned end"
    );
}

#[test]
fn a_repeating_silence_holds_the_alarm_until_its_occurrence_ends() {
    use crate::Repeat;
    // Every minute at second 5, for 20 s (UTC): [5 s, 25 s), [65 s, 85 s)...
    let r = Repeat::new("5 * * * * *", "UTC", Duration::from_secs(20), None).unwrap();
    let s = [
        Silence::repeating("every-minute", HostPattern::new("h*").unwrap(), t(0), r, "").unwrap(),
    ];
    assert_eq!(s[0].ends_at, t(25_000), "the first window");
    let c = Context {
        silences: &s,
        ..ctx()
    };
    let h = HostId::new("h1").unwrap();
    assert_eq!(c.silence_end(&h, t(4_999)), None);
    assert_eq!(c.silence_end(&h, t(5_000)), Some(t(25_000)));
    assert_eq!(c.silence_end(&h, t(65_000)), Some(t(85_000)));
    // Missing at 10 s, inside the first occurrence: held until 25 s.
    let d = evaluate(&rec_at(0), t(10_000), &policy(), &c);
    assert!(d.notices.is_empty());
    assert_eq!(
        (d.next.status, d.next.due_at),
        (Status::Missing, Some(t(25_000)))
    );
    let d = evaluate(&d.next, t(24_999), &policy(), &c);
    assert!(d.notices.is_empty());
    let (r, sent) = pass(&d.next, t(25_000), &policy(), &c, ChannelOutcome::Delivered);
    assert_eq!(sent.len(), 1, "alarm when the occurrence ends");
    assert_eq!(r.status, Status::Alarmed);
    // The reminder falls due at 85 s (60 s later), just as the second
    // occurrence ends: not covered, it goes out.
    let d = evaluate(&r, t(84_999), &policy(), &c);
    assert!(d.notices.is_empty());
    assert_eq!(d.next.due_at, Some(t(85_000)));
    let d = evaluate(&r, t(85_000), &policy(), &c);
    assert_eq!(d.notices[0].kind, NoticeKind::Reminder);
    // A host silent between occurrences is alarmed at once.
    let d = evaluate(&rec_at(30_000), t(40_000), &policy(), &c);
    assert_eq!(d.notices.len(), 1);
}

#[test]
fn startup_grace_after_a_long_downtime() {
    let long = Downtime {
        from: t(5_000),
        until: t(60_000),
    };
    let c = Context {
        downtime: Some(long),
        ..ctx()
    };
    let r = rec_at(0); // deadline 10 s, inside the downtime
    assert_eq!(deadline_with_grace(&r, &policy(), &c), t(70_000));
    assert!(evaluate(&r, t(69_999), &policy(), &c).notices.is_empty());
    let d = evaluate(&r, t(70_000), &policy(), &c);
    assert_eq!(d.notices.len(), 1);
    assert_eq!(d.notices[0].missing_since, t(70_000));
    // A downtime shorter than the timeout gives back the overlap (4 s of
    // silence fell while nobody listened); it used to give nothing, which
    // raised false alarms after every short restart.
    let short = Context {
        downtime: Some(Downtime {
            from: t(5_000),
            until: t(9_000),
        }),
        ..ctx()
    };
    assert_eq!(deadline_with_grace(&r, &policy(), &short), t(14_000));
    // A host already overdue when the monitor stopped gets none either.
    let late = Context {
        downtime: Some(Downtime {
            from: t(20_000),
            until: t(60_000),
        }),
        ..ctx()
    };
    assert_eq!(deadline_with_grace(&r, &policy(), &late), t(10_000));
}

#[test]
fn a_short_restart_gives_back_the_heartbeats_it_swallowed() {
    // The watcher was down for 3.5 s, from 7 s to 10.5 s (timeout 10 s).
    let c = Context {
        downtime: Some(Downtime {
            from: t(7_000),
            until: t(10_500),
        }),
        ..ctx()
    };
    // Heard at 0: its deadline (10 s) fell inside the downtime; the whole
    // downtime was deaf time, so it moves by 3.5 s.
    let r = rec_at(0);
    assert_eq!(deadline_with_grace(&r, &policy(), &c), t(13_500));
    assert!(evaluate(&r, t(13_499), &policy(), &c).notices.is_empty());
    assert_eq!(evaluate(&r, t(13_500), &policy(), &c).notices.len(), 1);
    // Heard at 3 s: its deadline (13 s) falls after the downtime; it still
    // lost 3.5 s of listening.
    assert_eq!(
        deadline_with_grace(&rec_at(3_000), &policy(), &c),
        t(16_500)
    );
    // Heard during the downtime (a beat another monitor took): only the
    // deaf time after that beat counts.
    assert_eq!(
        deadline_with_grace(&rec_at(9_000), &policy(), &c),
        t(20_500)
    );
    // Heard after the downtime ended: nothing to give back.
    assert_eq!(
        deadline_with_grace(&rec_at(11_000), &policy(), &c),
        t(21_000)
    );
    // Already overdue before the watcher stopped (deadline 5 s < 7 s).
    assert_eq!(
        deadline_with_grace(&rec_at(-5_000), &policy(), &c),
        t(5_000)
    );
    // Exactly at the start of the downtime counts as overdue.
    assert_eq!(
        deadline_with_grace(&rec_at(-3_000), &policy(), &c),
        t(7_000)
    );
}

#[test]
fn a_pending_recovery_goes_out_before_a_new_alarm() {
    let (mut r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    r.last_seen = t(15_000);
    let (r, sent) = pass(
        &r,
        t(15_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Transient { retry_after: None },
    );
    assert!(sent.is_empty());
    assert_eq!(r.outbox.as_ref().unwrap().notice.kind, NoticeKind::Recovery);
    // Silent again past the next deadline while the recovery is still owed.
    let d = evaluate(&r, t(30_000), &policy(), &ctx());
    assert!(d.notices.is_empty());
    assert_eq!(
        d.next.outbox.as_ref().unwrap().notice.kind,
        NoticeKind::Recovery
    );
    let (r, sent) = pass(&r, t(30_000), &policy(), &ctx(), ChannelOutcome::Delivered);
    let kinds: Vec<_> = sent.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NoticeKind::Recovery]);
    // Settling the recovery re-evaluated the record: the new outage's alarm is owed.
    assert_eq!(r.status, Status::Missing);
    assert_eq!(r.outbox.as_ref().unwrap().notice.kind, NoticeKind::Alarm);
    assert_eq!(r.outbox.as_ref().unwrap().notice.missing_since, t(25_000));
}

#[test]
fn blind_reason_reaches_the_notice() {
    let c = Context {
        blind: Some("37 heartbeats rejected: rate limit"),
        ..ctx()
    };
    let d = evaluate(&rec_at(0), t(10_000), &policy(), &c);
    assert_eq!(
        d.notices[0].blind.as_deref(),
        Some("37 heartbeats rejected: rate limit")
    );
    assert!(d.notices[0].body().contains("rate limit"));
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Op {
    Beat,
    Advance(u32),
    /// A sweep whose one channel delivers (0), fails for now (1) or
    /// refuses for good (2).
    Sweep {
        outcome: u8,
    },
    Silence {
        start_in: u32,
        len: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Beat),
        4 => (1u32..40_000).prop_map(Op::Advance),
        5 => (0u8..3).prop_map(|outcome| Op::Sweep { outcome }),
        1 => (0u32..20_000, 1u32..60_000).prop_map(|(start_in, len)| Op::Silence { start_in, len }),
    ]
}

struct Sim {
    rec: HostRecord,
    now: Timestamp,
    policy: Policy,
    silences: Vec<Silence>,
    delivered: Vec<Notice>,
    created: Vec<(Notice, Timestamp)>,
}

impl Sim {
    fn sweep(&mut self, outcome: u8) {
        for _ in 0..8 {
            let c = Context {
                silences: &self.silences,
                ..ctx()
            };
            let before_seen = self.rec.last_seen.max(self.rec.watch_from);
            let d = evaluate(&self.rec, self.now, &self.policy, &c);
            for n in &d.notices {
                if n.kind != NoticeKind::Recovery {
                    // A host heard from within its timeout is never alarmed.
                    assert!(
                        self.now >= add(before_seen, self.policy.timeout),
                        "{:?} at {} for a host seen at {}",
                        n.kind,
                        self.now,
                        before_seen
                    );
                }
                self.created.push((n.clone(), self.now));
            }
            self.rec = d.next;
            let Some(claimed) = claim(&self.rec, "m", self.now, Duration::from_secs(30)) else {
                break;
            };
            let notice = claimed.outbox.clone().unwrap().notice;
            let outcome = match outcome {
                0 => {
                    self.delivered.push(notice.clone());
                    ChannelOutcome::Delivered
                }
                1 => ChannelOutcome::Transient { retry_after: None },
                _ => ChannelOutcome::Permanent {
                    reason: "550 quota".into(),
                },
            };
            self.rec = settle(
                &claimed,
                &Round {
                    notice_id: &notice.id,
                    results: &[(CH.into(), outcome)],
                    channels: &channels(),
                },
                self.now,
                &self.policy,
                &RetryPolicy::default(),
                &c,
            )
            .expect("owner settles")
            .next;
            if self.rec.due_at.is_none_or(|d| d > self.now) {
                break;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_over_random_histories(
        ops in proptest::collection::vec(op(), 1..80),
        backoff in prop_oneof![Just(1.0), Just(1.5)],
        cap in prop_oneof![Just(None), Just(Some(2u32))],
    ) {
        let policy = Policy {
            timeout: Duration::from_secs(10),
            reminder_interval: Duration::from_secs(30),
            reminder_backoff: backoff,
            max_reminders: cap,
            ..Policy::default()
        };
        let mut sim = Sim { rec: rec_at(0), now: t(0), policy, silences: vec![], delivered: vec![], created: vec![] };
        let mut n_silences = 0;
        for op in ops {
            match op {
                Op::Beat => sim.rec.last_seen = sim.rec.last_seen.max(sim.now),
                Op::Advance(ms) => sim.now += TimeDelta::milliseconds(ms.into()),
                Op::Sweep { outcome } => sim.sweep(outcome),
                Op::Silence { start_in, len } => {
                    n_silences += 1;
                    let from = sim.now + TimeDelta::milliseconds(start_in.into());
                    sim.silences.push(Silence::new(format!("s{n_silences}"), HostPattern::any(), from, from + TimeDelta::milliseconds(len.into()), "p").unwrap());
                }
            }
            // At most one alarm or reminder per reminder interval, per outage.
            let mut last: Option<(&str, Timestamp)> = None;
            for n in sim.delivered.iter().filter(|n| n.kind != NoticeKind::Recovery) {
                if let Some((outage, at)) = last
                    && outage == n.outage_id
                {
                    prop_assert!(
                        n.created_at >= add(at, sim.policy.reminder_interval),
                        "reminders too close: {} then {}", at, n.created_at
                    );
                }
                last = Some((&n.outage_id, n.created_at));
            }
            // No alarm or reminder disappears undelivered: while the host is
            // still out and no silence holds it back, it is still owed.
            let out = matches!(sim.rec.status, Status::Missing | Status::Alarmed);
            // Held back by a silence that began: re-decided when it ends.
            let held = sim.rec.outbox.is_none()
                && sim.rec.due_at.is_some()
                && sim.silences.iter().any(|s| s.starts_at <= sim.now);
            for (n, _) in sim.created.iter().filter(|(n, _)| n.kind != NoticeKind::Recovery) {
                let delivered = sim.delivered.iter().any(|d| d.id == n.id);
                let owed = sim.rec.outbox.as_ref().is_some_and(|o| o.notice.outage_id == n.outage_id);
                let this_outage = sim.rec.missing_since == Some(n.missing_since);
                prop_assert!(
                    delivered || owed || !out || !this_outage || held,
                    "{} vanished undelivered", n.id
                );
            }
            // A recovery is delivered only for an outage whose alarm was delivered.
            for r in sim.delivered.iter().filter(|n| n.kind == NoticeKind::Recovery) {
                prop_assert!(sim.delivered.iter().any(|a| a.kind == NoticeKind::Alarm && a.outage_id == r.outage_id));
            }
        }
        // Drain: the host reports, the channel works, time passes past any
        // backoff and silence. Nothing owed may be left, and every outage
        // whose alarm went out gets its recovery.
        sim.silences.clear();
        for _ in 0..40 {
            sim.now += TimeDelta::seconds(9);
            sim.rec.last_seen = sim.now;
            sim.sweep(0);
        }
        prop_assert_eq!(sim.rec.status, Status::Up);
        prop_assert!(sim.rec.outbox.is_none(), "owed notice lost: {:?}", sim.rec.outbox);
        for a in sim.delivered.iter().filter(|n| n.kind == NoticeKind::Alarm) {
            prop_assert!(
                sim.delivered.iter().any(|r| r.kind == NoticeKind::Recovery && r.outage_id == a.outage_id),
                "alarm {} never got its all-clear", a.id
            );
        }
        // And none went out twice.
        let mut ids: Vec<&str> = sim.delivered.iter().map(|n| n.id.as_str()).collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), all, "a notice was delivered twice");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A watcher downtime never causes an alarm for a host that beat until
    /// it began and beats again within its timeout after it ended, however
    /// long the downtime and wherever the sweeps fall after it.
    #[test]
    fn a_watcher_downtime_never_alarms_a_host_that_beat_around_it(
        before in 0i64..5_000,
        len in 1i64..120_000,
        after_frac in 0.0f64..1.0,
        sweeps in proptest::collection::vec(0.0f64..1.0, 1..12),
    ) {
        let p = policy();
        let timeout = 10_000;
        let from = 50_000;
        let until = from + len;
        let c = Context {
            downtime: Some(Downtime { from: t(from), until: t(until) }),
            ..ctx()
        };
        // Last beat `before` ms before the downtime; the next one lands
        // within what is left of its timeout after the downtime ended.
        let after = ((timeout - before - 1) as f64 * after_frac) as i64;
        let mut rec = rec_at(from - before);
        let mut at: Vec<i64> = sweeps.iter().map(|f| until + (after as f64 * f) as i64).collect();
        at.sort_unstable();
        for s in at {
            let d = evaluate(&rec, t(s), &p, &c);
            prop_assert!(d.notices.is_empty(), "alarm at {} (beat at {}, down {}..{})", s, from - before, from, until);
            rec = d.next;
        }
        rec.last_seen = t(until + after);
        let d = evaluate(&rec, t(until + after), &p, &c);
        prop_assert!(d.notices.is_empty());
        prop_assert_eq!(d.next.status, Status::Up);
    }
}

#[test]
fn an_all_clear_carries_only_this_outages_report() {
    // A report from an earlier blip (delivered with a heartbeat, no alarm)
    // is still on the record when the host falls silent for real.
    let mut r = rec_at(0);
    r.report = Some("{\"failed_attempts\": 8}".into());
    let (r, sent) = pass(&r, t(10_000), &policy(), &ctx(), ChannelOutcome::Delivered);
    assert_eq!(sent[0].kind, NoticeKind::Alarm);
    assert_eq!(
        r.report, None,
        "the old account is dropped when the outage begins"
    );
    // The host returns without a report (it was switched off, not cut off).
    let mut back = r.clone();
    back.last_seen = t(12_000);
    let (_, sent) = pass(
        &back,
        t(12_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    assert_eq!(sent[0].kind, NoticeKind::Recovery);
    assert_eq!(sent[0].report, None);
    // Returning with an account of this outage: it rides on the all-clear.
    let mut back = r;
    back.last_seen = t(12_000);
    back.report = Some("{\"failed_attempts\": 3}".into());
    let (_, sent) = pass(
        &back,
        t(12_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    assert_eq!(sent[0].report.as_deref(), Some("{\"failed_attempts\": 3}"));
}

#[test]
fn a_step_writes_nothing_for_a_record_not_due_and_leases_an_owed_notice() {
    let lease = Duration::from_secs(30);
    // Up and not due: nothing to write, nothing to deliver.
    let r = rec_at(0);
    let s = step(&r, t(5_000), &policy(), &ctx(), "m", lease);
    assert_eq!(s.write, None);
    assert_eq!(s.deliver, None);
    // Past the deadline: the alarm is owed and leased in the same write.
    let s = step(&r, t(10_000), &policy(), &ctx(), "m", lease);
    let w = s.write.expect("a write");
    assert_eq!(w.status, Status::Missing);
    let ob = w.outbox.as_deref().expect("owed");
    assert_eq!(ob.lease.as_ref().map(|l| l.owner.as_str()), Some("m"));
    assert_eq!(w.due_at, Some(t(40_000)), "due at the lease's end");
    assert_eq!(Owed::of(&w, t(10_000)), Owed::Leased { until: t(40_000) });
    let d = s.deliver.expect("to deliver");
    assert_eq!(d.notice.kind, NoticeKind::Alarm);
    // Another monitor's step under the live lease changes nothing.
    let s = step(&w, t(20_000), &policy(), &ctx(), "other", lease);
    assert_eq!((s.write, s.deliver), (None, None));
    // After the lease, the owed notice is untold and deliverable again.
    assert_eq!(
        Owed::of(&w, t(40_000)),
        Owed::Untold {
            next_attempt: t(10_000)
        }
    );
    let s = step(&w, t(40_000), &policy(), &ctx(), "other", lease);
    assert!(s.deliver.is_some());
}

#[test]
fn due_at_follows_from_the_resulting_state_in_every_row() {
    // Every reachable record a pass leaves has the due_at its state names:
    // up at the deadline, alarmed at the next reminder, an owed notice at
    // its next attempt.
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Delivered,
    );
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.due_at, Some(t(70_000)));
    let (r, _) = pass(
        &rec_at(0),
        t(10_000),
        &policy(),
        &ctx(),
        ChannelOutcome::Transient { retry_after: None },
    );
    assert_eq!(r.status, Status::Missing);
    let next = r.outbox.as_ref().unwrap().next_attempt;
    assert_eq!(r.due_at, Some(next));
    assert_eq!(Owed::of(&r, t(10_000)), Owed::Untold { next_attempt: next });
    let mut back = r;
    back.last_seen = t(11_000);
    let d = evaluate(&back, t(11_000), &policy(), &ctx());
    assert_eq!(d.next.status, Status::Up);
    assert_eq!(
        d.next.due_at,
        Some(t(21_000)),
        "a quiet recovery: the deadline"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The quiet-up shortcut of `evaluate_in_place` is the table's row
    /// "`up`, nothing, before the deadline" and nothing more: on a record
    /// of any status, heard or not, registered or resumed at any instant,
    /// owing a notice or not, with or without a downtime, a silence or a
    /// schedule, the result is the whole table's to the field.
    #[test]
    fn the_quiet_up_shortcut_decides_as_the_whole_table(
        status in prop_oneof![Just(Status::Up), Just(Status::Missing), Just(Status::Alarmed)],
        seen in 0i64..40_000,
        watch in 0i64..40_000,
        now in 0i64..60_000,
        owed in any::<bool>(),
        down in proptest::option::of((0i64..40_000, 0i64..40_000)),
        silenced in any::<bool>(),
        scheduled in any::<bool>(),
    ) {
        let mut policy = policy();
        if scheduled {
            policy.schedule = Some(crate::Schedule::new("*/1 * * * *", "UTC", Duration::from_secs(5)).unwrap());
        }
        let mut r = rec_at(0);
        r.status = status;
        r.last_seen = t(seen);
        r.watch_from = t(watch);
        if owed {
            let mut first = rec_at(0);
            let _ = evaluate_in_place(&mut first, t(11_000), &policy, &ctx());
            r.outbox = first.outbox;
        }
        let silences = [silence(0, 50_000)];
        let ctx = Context {
            silences: if silenced { &silences } else { &[] },
            downtime: down.map(|(from, len)| crate::Downtime { from: t(from), until: t(from + len) }),
            blind: None,
        };
        let mut fast = r.clone();
        let fast_notices = evaluate_in_place(&mut fast, t(now), &policy, &ctx);
        let mut whole = r.clone();
        whole.last_checked = Some(t(now));
        let whole_owes = decide_in_place(&mut whole, t(now), &policy, &ctx);
        prop_assert_eq!(&fast, &whole);
        // The same notice: the one in the (equal) outbox, when one became owed.
        let whole_notices: Vec<Notice> = whole
            .outbox
            .as_deref()
            .filter(|_| whole_owes)
            .map(|o| vec![o.notice.clone()])
            .unwrap_or_default();
        prop_assert_eq!(fast_notices, whole_notices);
    }
}
