//! The flapping rule, alone and through the state machine, to the
//! millisecond; property tests over random flapping histories.

use std::time::Duration;

use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::decide::{ChannelOutcome, RetryPolicy, Round, claim, settle};
use crate::{Context, HostId, HostPattern, Notice, NoticeKind, Policy, Silence, Status, evaluate};

const CH: &str = "ch";

fn t(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).expect("in range")
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Timeout 10 s; flapping: more than 4 outages in 60 s, stable after 30 s.
fn policy() -> Policy {
    Policy {
        timeout: s(10),
        reminder_interval: s(20),
        flapping: FlapPolicy {
            enabled: true,
            flips: 4,
            window: s(60),
            stable: s(30),
        },
        ..Policy::default()
    }
}

fn rec() -> HostRecord {
    HostRecord::new(HostId::new("web-3").unwrap(), t(0), policy().timeout)
}

/// One monitor pass at `now`: evaluate, claim, deliver to the one channel,
/// settle; again while the record is due. Returns the notices delivered.
fn pass(r: &mut HostRecord, now: Timestamp, p: &Policy, c: &Context<'_>) -> Vec<Notice> {
    let mut out = Vec::new();
    for _ in 0..8 {
        let d = evaluate(r, now, p, c);
        *r = d.next;
        let Some(claimed) = claim(r, "me", now, s(30)) else {
            break;
        };
        let notice = claimed.outbox.clone().unwrap().notice;
        out.push(notice.clone());
        *r = settle(
            &claimed,
            &Round {
                notice_id: &notice.id,
                results: &[(CH.to_owned(), ChannelOutcome::Delivered)],
                channels: &[CH.to_owned()],
            },
            now,
            p,
            &RetryPolicy::default(),
            c,
        )
        .expect("owner settles")
        .next;
        if r.due_at.is_none_or(|d| d > now) {
            break;
        }
    }
    out
}

fn kinds(ns: &[Notice]) -> Vec<NoticeKind> {
    ns.iter().map(|n| n.kind).collect()
}

/// Beats at `at` (the store's heartbeat write: `last_seen`, due now).
fn beat(r: &mut HostRecord, at: Timestamp) {
    r.last_seen = at;
    r.due_at = Some(at);
}

/// Runs `n` outages of the host, each: silent until its deadline (10 s
/// after the last beat), a pass, then a beat 2 s later and a pass. Starts
/// at `from` (ms), the host having beaten at `from`. Returns the notices
/// and the ms of the last beat.
fn flips(r: &mut HostRecord, from: i64, n: usize, p: &Policy) -> (Vec<Notice>, i64) {
    let c = Context::default();
    let mut out = Vec::new();
    let mut at = from;
    for _ in 0..n {
        at += 10_000;
        out.extend(pass(r, t(at), p, &c));
        at += 2_000;
        beat(r, t(at));
        out.extend(pass(r, t(at), p, &c));
    }
    (out, at)
}

#[test]
fn the_rule_counts_outages_within_the_window_and_keeps_at_most_n_plus_one() {
    let p = policy().flapping;
    let mut r = rec();
    for i in 0..4 {
        assert_eq!(outage_began(&mut r, t(i * 10_000), &p), OnOutage::Alarm);
    }
    assert_eq!(recent_flips(&r, t(30_000), &p), 4);
    // The fifth within 60 s: flapping.
    assert_eq!(outage_began(&mut r, t(40_000), &p), OnOutage::Flapping);
    assert!(flapping(&r));
    assert_eq!(outage_began(&mut r, t(50_000), &p), OnOutage::Quiet);
    let f = r.flap.as_deref().unwrap();
    assert_eq!(f.flips.len(), 5, "bounded at flips + 1");
    assert_eq!(f.episode.as_ref().unwrap().outages, 6);
    assert_eq!(stable_at(&r, &p), Some(t(80_000)));
    came_back(&mut r, t(55_000));
    assert_eq!(stable_at(&r, &p), Some(t(85_000)));
    assert!(holding(&r, t(84_999), &p));
    assert!(!holding(&r, t(85_000), &p) && ended(&r, t(85_000), &p));
    assert_eq!(end(&mut r).map(|e| e.since), Some(t(40_000)));
    assert!(r.flap.is_none(), "history forgotten with the episode");
}

#[test]
fn outages_spread_wider_than_the_window_never_flap() {
    let p = policy().flapping;
    let mut r = rec();
    for i in 0..20 {
        // One every 15 s: four within any 60 s, never five.
        assert_eq!(
            outage_began(&mut r, t(i * 15_000), &p),
            OnOutage::Alarm,
            "outage {i}"
        );
    }
    assert_eq!(r.flap.as_deref().unwrap().flips.len(), 4);
}

#[test]
fn turned_off_it_keeps_no_history() {
    let p = FlapPolicy::off();
    let mut r = rec();
    for i in 0..10 {
        assert_eq!(outage_began(&mut r, t(i), &p), OnOutage::Alarm);
    }
    assert!(r.flap.is_none());
}

#[test]
fn bad_settings_are_named() {
    let bad = |f: fn(&mut FlapPolicy)| {
        let mut p = FlapPolicy::default();
        f(&mut p);
        p.validate().unwrap_err()
    };
    assert!(bad(|p| p.flips = 0).contains("flips"));
    assert!(bad(|p| p.flips = 1000).contains("flips"));
    assert!(bad(|p| p.window = Duration::ZERO).contains("window"));
    assert!(bad(|p| p.stable = Duration::ZERO).contains("stable"));
    assert!(FlapPolicy::default().validate().is_ok());
    assert_eq!(describe(5, s(3600)), "5 outages in 1h");
}

#[test]
fn five_flips_then_one_flapping_notice_then_one_stable_notice() {
    let p = policy();
    let mut r = rec();
    // Four outages: alarm and all-clear each.
    let (first, at) = flips(&mut r, 0, 4, &p);
    assert_eq!(
        kinds(&first),
        [NoticeKind::Alarm, NoticeKind::Recovery].repeat(4)
    );
    // The fifth outage within 60 s: the flapping notice, not its alarm.
    let (fifth, at) = flips(&mut r, at, 1, &p);
    assert_eq!(kinds(&fifth), [NoticeKind::Flapping]);
    let f = &fifth[0];
    assert_eq!(f.subject(), "[iamalive] FLAPPING web-3: 5 outages in 1m");
    let note = f.flap.as_deref().unwrap();
    assert_eq!(
        (note.flips, note.window, note.stable_for),
        (5, s(60), s(30))
    );
    assert_eq!(r.status, Status::Up, "back, quietly");
    // Three more flips: nothing at all.
    let (more, at) = flips(&mut r, at, 3, &p);
    assert!(more.is_empty(), "per-flip notices while flapping: {more:?}");
    assert!(flapping(&r) && r.alarm_count == 0);
    // Up and beating for 30 s after its last return: one stable notice.
    let back = at;
    let c = Context::default();
    let mut stable = Vec::new();
    for k in 1..=3 {
        let now = back + k * 8_000;
        beat(&mut r, t(now));
        stable.extend(pass(&mut r, t(now), &p, &c));
    }
    // Due exactly at the stable time, too.
    assert!(stable.is_empty(), "not stable before 30 s: {stable:?}");
    stable.extend(pass(&mut r, t(back + 30_000), &p, &c));
    assert_eq!(kinds(&stable), [NoticeKind::Stable]);
    assert_eq!(
        stable[0].recovered_at,
        Some(t(back)),
        "up since its last return"
    );
    assert_eq!(stable[0].outage_id, f.outage_id, "one episode, one id");
    assert!(
        stable[0]
            .headline()
            .starts_with("web-3 stable again (up since "),
        "{}",
        stable[0].headline()
    );
    assert!(r.flap.is_none(), "episode over, history forgotten");
    // The next outage alarms at once.
    let (next, _) = flips(&mut r, back + 30_000, 1, &p);
    assert_eq!(kinds(&next), [NoticeKind::Alarm, NoticeKind::Recovery]);
}

#[test]
fn a_flapping_host_that_stays_down_alarms_at_its_last_outage_start_plus_stable() {
    let p = policy();
    let mut r = rec();
    let (_, at) = flips(&mut r, 0, 6, &p);
    assert!(flapping(&r));
    // Silent from `at`: its outage begins at at + 10 s, quietly.
    let c = Context::default();
    let down = at + 10_000;
    assert!(pass(&mut r, t(down), &p, &c).is_empty());
    assert_eq!(r.status, Status::Missing);
    assert_eq!(r.due_at, Some(t(down + 30_000)), "looked at when stable");
    assert!(pass(&mut r, t(down + 29_999), &p, &c).is_empty());
    let alarm = pass(&mut r, t(down + 30_000), &p, &c);
    assert_eq!(kinds(&alarm), [NoticeKind::Alarm]);
    assert_eq!(alarm[0].missing_since, t(down));
    assert!(alarm[0].flap.is_some(), "the alarm says it flapped before");
    assert!(alarm[0].body().contains("flapping:"), "{}", alarm[0].body());
    assert_eq!(r.status, Status::Alarmed);
    assert!(r.flap.is_none());
    // Then reminders and the all-clear as for any alarm.
    assert_eq!(
        kinds(&pass(&mut r, t(down + 50_000), &p, &c)),
        [NoticeKind::Reminder]
    );
    beat(&mut r, t(down + 51_000));
    assert_eq!(
        kinds(&pass(&mut r, t(down + 51_000), &p, &c)),
        [NoticeKind::Recovery]
    );
}

#[test]
fn a_silence_wins_and_a_silenced_flapping_notice_ends_quietly() {
    let p = policy();
    let mut r = rec();
    let (_, at) = flips(&mut r, 0, 4, &p);
    let silence = Silence::new("m", HostPattern::any(), t(0), t(1_000_000), "maint").unwrap();
    let silences = [silence];
    let c = Context {
        silences: &silences,
        ..Context::default()
    };
    // The fifth outage under a silence: no flapping notice.
    let mut out = pass(&mut r, t(at + 10_000), &p, &c);
    beat(&mut r, t(at + 12_000));
    out.extend(pass(&mut r, t(at + 12_000), &p, &c));
    assert!(out.is_empty(), "{out:?}");
    assert!(flapping(&r) && !was_told(&r));
    // Stable again: nobody was told it flapped, so nobody is told it stopped.
    let c = Context::default();
    for k in 1..=4 {
        beat(&mut r, t(at + 12_000 + k * 8_000));
        assert!(pass(&mut r, t(at + 12_000 + k * 8_000), &p, &c).is_empty());
    }
    assert!(r.flap.is_none());
}

#[test]
fn a_reported_failure_is_no_flip_and_always_alarms() {
    let p = policy();
    let mut r = rec();
    let (_, at) = flips(&mut r, 0, 5, &p);
    assert!(flapping(&r));
    let c = Context::default();
    let now = t(at + 1_000);
    r = crate::job::fail(&r, now, Some("disk full".into()), None);
    let out = pass(&mut r, now, &p, &c);
    assert_eq!(kinds(&out), [NoticeKind::Alarm]);
    assert!(out[0].job.as_deref().is_some_and(|j| j.failed));
    assert_eq!(r.flap.as_deref().unwrap().flips.len(), 5, "not counted");
}

#[test]
fn a_flapping_notice_owed_when_the_host_returns_still_goes_out() {
    let p = policy();
    let mut r = rec();
    let (_, at) = flips(&mut r, 0, 4, &p);
    let c = Context::default();
    // The fifth outage begins; its flapping notice is not delivered yet.
    let d = evaluate(&r, t(at + 10_000), &p, &c);
    assert_eq!(kinds(&d.notices), [NoticeKind::Flapping]);
    r = d.next;
    beat(&mut r, t(at + 11_000));
    let out = pass(&mut r, t(at + 11_000), &p, &c);
    assert_eq!(
        kinds(&out),
        [NoticeKind::Flapping],
        "kept through the return"
    );
    assert_eq!(r.status, Status::Up);
    assert!(was_told(&r));
}

#[test]
fn pausing_ends_an_episode() {
    let p = policy();
    let mut r = rec();
    let (_, _) = flips(&mut r, 0, 5, &p);
    assert!(flapping(&r));
    let paused = crate::decide::pause(&r);
    assert!(paused.flap.is_none());
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    /// The host beats now.
    Beat,
    /// Time passes (ms).
    Advance(u32),
    /// A monitor pass.
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Beat),
        4 => (500u32..25_000).prop_map(Op::Advance),
        4 => Just(Op::Sweep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over random beats, gaps and sweeps of a flapping-prone host: never
    /// more than one flapping notice per episode, at most one stable
    /// notice per episode and only after its flapping notice, and a host
    /// that ends down is alarmed by its last outage's start plus `stable`
    /// (a sweep every second once it stops beating).
    #[test]
    fn one_flapping_notice_per_episode_and_a_host_that_ends_down_is_alarmed(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let p = policy();
        let c = Context::default();
        let mut r = rec();
        let mut now = t(0);
        let mut delivered: Vec<Notice> = Vec::new();
        for op in ops {
            match op {
                Op::Beat => {
                    let at = now.max(r.last_seen);
                    beat(&mut r, at);
                }
                Op::Advance(ms) => now += TimeDelta::milliseconds(ms.into()),
                Op::Sweep => delivered.extend(pass(&mut r, now, &p, &c)),
            }
        }
        // The host stops for good: sweeps every second until well past
        // any episode.
        let last_beat = r.last_seen;
        let stopped = now;
        let mut alarmed_at = None;
        let mut last_flip = None;
        for _ in 0..200 {
            now += TimeDelta::seconds(1);
            let before = r.flap.as_deref().and_then(|f| f.flips.last().copied());
            let out = pass(&mut r, now, &p, &c);
            let after = r.flap.as_deref().and_then(|f| f.flips.last().copied());
            if after.is_some() && after != before {
                last_flip = after;
            }
            if r.missing_since.is_some() && last_flip.is_none() {
                last_flip = r.missing_since;
            }
            if alarmed_at.is_none() && out.iter().any(|n| n.kind == NoticeKind::Alarm) {
                alarmed_at = Some(now);
            }
            delivered.extend(out);
        }
        // Unless an alarm of this very outage went out before the stop.
        let told_already = r.status == Status::Alarmed;
        prop_assert!(alarmed_at.is_some() || told_already, "a host that ended down was never alarmed");
        if let (Some(at), Some(flip)) = (alarmed_at, last_flip) {
            // A sweep every second from the stop on: one second of slack.
            let bound = crate::add(flip.max(crate::add(last_beat, p.timeout)), p.flapping.stable)
                .max(stopped);
            prop_assert!(at <= crate::add(bound, s(1)), "alarmed at {at}, bound {bound}");
        }
        // Per episode (outage id of the flapping notice): one flapping
        // notice, at most one stable notice, after it.
        let mut episodes: Vec<&str> = delivered
            .iter()
            .filter(|n| n.kind == NoticeKind::Flapping)
            .map(|n| n.outage_id.as_str())
            .collect();
        let all = episodes.len();
        episodes.sort_unstable();
        episodes.dedup();
        prop_assert_eq!(episodes.len(), all, "two flapping notices in one episode");
        for st in delivered.iter().filter(|n| n.kind == NoticeKind::Stable) {
            let n_stable = delivered.iter().filter(|n| n.id == st.id).count();
            prop_assert_eq!(n_stable, 1);
            let fl = delivered.iter().position(|n| n.kind == NoticeKind::Flapping && n.outage_id == st.outage_id);
            let sp = delivered.iter().position(|n| n.id == st.id);
            prop_assert!(fl.is_some() && fl < sp, "stable without its flapping notice before it");
        }
        // Between an episode's flapping notice and its end, no alarm or
        // all-clear of a flip.
        let mut in_episode = false;
        for n in &delivered {
            match n.kind {
                NoticeKind::Flapping => in_episode = true,
                NoticeKind::Stable => in_episode = false,
                NoticeKind::Alarm if in_episode => {
                    prop_assert!(n.flap.is_some(), "a per-flip alarm while flapping: {}", n.id);
                    in_episode = false;
                }
                NoticeKind::Recovery | NoticeKind::Reminder if in_episode => {
                    prop_assert!(n.job.is_some(), "a per-flip {} while flapping", n.kind);
                }
                _ => {}
            }
        }
    }
}
