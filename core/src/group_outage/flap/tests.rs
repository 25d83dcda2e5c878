//! Group flapping on a manual timeline, and its invariants under random
//! outage sequences (proptest).

use std::time::Duration;

use proptest::prelude::*;

use super::super::tests::{at, deliver_all, group, notice, policy};
use super::super::{GroupPhase, GroupPolicy, GroupRecord, Verdict, consult, resolve};
use crate::flap::FlapPolicy;
use crate::{NoticeKind, Timestamp};

/// Two outages within the hour are allowed; the third is flapping; stable
/// after 10 minutes.
fn gp() -> GroupPolicy {
    GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        flap: FlapPolicy {
            enabled: true,
            flips: 2,
            window: Duration::from_secs(3600),
            stable: Duration::from_secs(600),
        },
    }
}

fn ask(g: &mut GroupRecord, n: &crate::Notice, now: u64) -> Verdict {
    let (w, v) = consult(g, n, at(now), &gp(), &policy());
    if let Some(w) = w {
        *g = w;
    }
    v
}

/// Hosts `a` and `b` go silent together (last seen `t`, deadline `t +
/// 10`): both alarms asked at the deadline, the gathering resolved at its
/// end, the owed group notices delivered. Returns what was delivered.
fn dark(g: &mut GroupRecord, t: u64, kind: NoticeKind) -> Vec<crate::Notice> {
    for h in ["a", "b"] {
        assert!(matches!(
            ask(g, &notice(h, kind, t, t + 10), t + 10),
            Verdict::Hold(_)
        ));
    }
    if let Some(w) = resolve(g, at(t + 15), &gp(), &policy(), |_| true) {
        *g = w;
    }
    for h in ["a", "b"] {
        assert_eq!(
            ask(g, &notice(h, kind, t, t + 15), t + 15),
            Verdict::Absorbed,
            "{h} joins its group's outage"
        );
    }
    deliver_all(g, t + 15)
}

/// Both hosts heard again at `now` (silent since `t`).
fn back(g: &mut GroupRecord, t: u64, now: u64) -> Vec<crate::Notice> {
    for h in ["a", "b"] {
        let _ = ask(g, &notice(h, NoticeKind::Recovery, t, now), now);
    }
    deliver_all(g, now)
}

fn kinds(ns: &[crate::Notice]) -> Vec<NoticeKind> {
    ns.iter().map(|n| n.kind).collect()
}

#[test]
fn a_flapping_site_is_one_flapping_notice_then_one_stable_notice() {
    let mut g = GroupRecord::new(group());
    // Outages 1 and 2: a group alarm and a group all-clear each.
    for t in [0, 100] {
        assert_eq!(
            kinds(&dark(&mut g, t, NoticeKind::Alarm)),
            [NoticeKind::Alarm]
        );
        assert_eq!(kinds(&back(&mut g, t, t + 40)), [NoticeKind::Recovery]);
    }
    // Outage 3 within the hour: the flapping notice instead of the alarm.
    let sent = dark(&mut g, 200, NoticeKind::Alarm);
    assert_eq!(kinds(&sent), [NoticeKind::Flapping]);
    let f = &sent[0];
    assert!(f.is_group() && f.hosts.len() == 2);
    assert_eq!(
        f.outage_id,
        format!("site:office-berlin@{}/flapping", at(210).timestamp_millis())
    );
    assert_eq!(f.flap.as_ref().map(|n| n.flips), Some(3));
    assert_eq!(
        f.headline(),
        "site office-berlin: 3 outages in 1h (2 hosts)"
    );
    assert_eq!(
        f.subject(),
        "[iamalive] FLAPPING site office-berlin: 3 outages in 1h (2 hosts)"
    );
    assert!(
        f.body().contains("No group alarm or all-clear"),
        "{}",
        f.body()
    );
    assert!(g.flapping());
    // Its return and two more flips: nothing at all.
    assert!(
        back(&mut g, 200, 240).is_empty(),
        "no all-clear while flapping"
    );
    for t in [300, 400] {
        assert!(
            dark(&mut g, t, NoticeKind::Alarm).is_empty(),
            "no group alarm while flapping"
        );
        assert!(
            deliver_all(&mut g, t + 100).is_empty(),
            "no reminder while flapping"
        );
        assert!(back(&mut g, t, t + 50).is_empty());
    }
    assert_eq!(g.flap_outages(), Some(5));
    // Stable 10 minutes after its last return (450): one stable notice.
    assert_eq!(
        g.due_at,
        Some(at(1050)),
        "looked at again when it would be stable"
    );
    assert!(deliver_all(&mut g, 1049).is_empty());
    let sent = deliver_all(&mut g, 1050);
    assert_eq!(kinds(&sent), [NoticeKind::Stable]);
    let s = &sent[0];
    assert_eq!(s.outage_id, f.outage_id, "one dedup key per episode");
    assert!(s.is_group() && s.hosts.len() == 2);
    assert_eq!(
        s.headline(),
        "site office-berlin: stable again, up since 00:07 UTC"
    );
    assert!(!g.flapping() && g.flap.is_none(), "history forgotten");
    assert_eq!(g.due_at, None);
    // Proven stable: its next outage is an alarm at once.
    assert_eq!(
        kinds(&dark(&mut g, 2000, NoticeKind::Alarm)),
        [NoticeKind::Alarm]
    );
}

#[test]
fn a_flapping_site_that_stays_down_gets_a_group_alarm_after_the_stable_time() {
    let mut g = GroupRecord::new(group());
    for t in [0, 100] {
        let _ = dark(&mut g, t, NoticeKind::Alarm);
        let _ = back(&mut g, t, t + 40);
    }
    assert_eq!(
        kinds(&dark(&mut g, 200, NoticeKind::Alarm)),
        [NoticeKind::Flapping]
    );
    // It never comes back: the alarm at its outage's start plus stable.
    assert_eq!(g.due_at, Some(at(210 + 600)));
    let sent = deliver_all(&mut g, 810);
    assert_eq!(kinds(&sent), [NoticeKind::Alarm]);
    assert!(sent[0].is_group() && sent[0].hosts.len() == 2);
    assert!(sent[0].flap.is_some(), "the alarm says it flapped before");
    assert!(!g.flapping());
    // Then reminders and the all-clear as usual.
    assert_eq!(kinds(&deliver_all(&mut g, 870)), [NoticeKind::Reminder]);
    assert_eq!(kinds(&back(&mut g, 200, 900)), [NoticeKind::Recovery]);
}

#[test]
fn members_flapping_on_their_own_are_the_groups_flapping() {
    let mut g = GroupRecord::new(group());
    for t in [0, 100] {
        let _ = dark(&mut g, t, NoticeKind::Alarm);
        let _ = back(&mut g, t, t + 40);
    }
    // Outage 3: each host's own episode began with it too, so each owes
    // its own `flapping` notice: the group gathers them and speaks once.
    let sent = dark(&mut g, 200, NoticeKind::Flapping);
    assert_eq!(kinds(&sent), [NoticeKind::Flapping]);
    assert!(sent[0].is_group());
    let flappers: Vec<&str> = g
        .flap
        .as_ref()
        .unwrap()
        .flappers
        .iter()
        .map(|h| h.as_str())
        .collect();
    assert_eq!(flappers, ["a", "b"]);
    // Their returns are no longer told by them: the group counts them back.
    assert_eq!(g.phase, GroupPhase::Quiet);
    // Stable time reached while they still flap: the monitor reads them
    // and the group waits for the latest.
    assert!(super::needs_prune(&g, at(215 + 600)));
    let later = at(2000);
    let w = super::prune(&g, |_| Some(later), &policy()).unwrap();
    g = w;
    assert_eq!(g.due_at, Some(later));
    assert!(deliver_all(&mut g, 1000).is_empty());
    // Each host's own `stable` notice is the group's.
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Stable, 0, 1990), 1990),
        Verdict::Absorbed
    );
    assert_eq!(
        ask(&mut g, &notice("b", NoticeKind::Stable, 0, 1995), 1995),
        Verdict::Absorbed
    );
    let sent = deliver_all(&mut g, 2000);
    assert_eq!(
        kinds(&sent),
        [NoticeKind::Stable],
        "one stable notice for the site"
    );
    assert!(g.flap.is_none());
    // A host's stable notice the group did not take is its own.
    assert_eq!(
        ask(&mut g, &notice("c", NoticeKind::Stable, 0, 2100), 2100),
        Verdict::Alone
    );
}

#[test]
fn a_members_flapping_notice_in_a_group_that_is_not_flapping_is_its_own() {
    let mut g = GroupRecord::new(group());
    // The group's first outage, but a's own fifth: a's flapping notice is
    // gathered with b's alarm; the group alarms, a speaks for itself.
    let _ = ask(&mut g, &notice("a", NoticeKind::Flapping, 0, 10), 10);
    let _ = ask(&mut g, &notice("b", NoticeKind::Alarm, 0, 10), 10);
    g = resolve(&g, at(15), &gp(), &policy(), |_| true).unwrap();
    assert_eq!(
        ask(&mut g, &notice("a", NoticeKind::Flapping, 0, 15), 15),
        Verdict::Alone
    );
    assert_eq!(
        ask(&mut g, &notice("b", NoticeKind::Alarm, 0, 15), 15),
        Verdict::Absorbed
    );
    // A flapping notice too late to gather (the group is quiet, its wait
    // over): its own, never a gathering of its own.
    let mut q = GroupRecord::new(group());
    assert_eq!(
        ask(&mut q, &notice("a", NoticeKind::Flapping, 0, 30), 30),
        Verdict::Alone
    );
    assert_eq!(q.phase, GroupPhase::Quiet);
}

#[test]
fn flapping_detection_off_keeps_every_outage_told() {
    let mut g = GroupRecord::new(group());
    let off = GroupPolicy {
        flap: FlapPolicy::off(),
        ..gp()
    };
    for t in [0, 100, 200, 300] {
        for h in ["a", "b"] {
            let (w, _) = consult(
                &g,
                &notice(h, NoticeKind::Alarm, t, t + 10),
                at(t + 10),
                &off,
                &policy(),
            );
            g = w.unwrap_or(g);
        }
        g = resolve(&g, at(t + 15), &off, &policy(), |_| true).unwrap();
        assert_eq!(kinds(&deliver_all(&mut g, t + 15)), [NoticeKind::Alarm]);
        let _ = back(&mut g, t, t + 40);
        assert!(g.flap.is_none());
    }
}

/// A group's outage in a random sequence: it begins `gap` seconds after
/// the previous one ended and lasts `len` seconds.
fn sequences() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((20u64..900, 20u64..900), 1..14)
}

/// What the group said over a random sequence, checked as it is said.
#[derive(Default)]
struct Tally {
    in_episode: bool,
    told: u32,
    ended: u32,
}

impl Tally {
    fn check(&mut self, ns: Vec<crate::Notice>) -> Result<(), TestCaseError> {
        for n in ns {
            prop_assert!(n.is_group(), "only group notices here: {n:?}");
            match n.kind {
                NoticeKind::Flapping => {
                    prop_assert!(!self.in_episode, "two flapping notices in one episode");
                    self.in_episode = true;
                    self.told += 1;
                }
                NoticeKind::Stable => {
                    prop_assert!(self.in_episode, "stable without flapping");
                    self.in_episode = false;
                    self.ended += 1;
                }
                NoticeKind::Alarm if n.flap.is_some() => {
                    prop_assert!(self.in_episode, "an episode's alarm without its episode");
                    self.in_episode = false;
                    self.ended += 1;
                }
                k => prop_assert!(!self.in_episode, "{k} while flapping"),
            }
        }
        Ok(())
    }

    /// Every instant the group asks to be looked at, up to `until`.
    fn run_until(&mut self, g: &mut GroupRecord, until: u64) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            let Some(d) = g.due_at.filter(|d| *d <= at(until)) else {
                break;
            };
            let sent = deliver_all(g, secs(d));
            self.check(sent)?;
        }
        Ok(())
    }
}

proptest! {
    /// At most one `flapping` notice per episode; no group alarm,
    /// reminder or all-clear between an episode's `flapping` notice and
    /// its end; an episode whose notice went out ends with exactly one
    /// `stable` notice or one group alarm.
    #[test]
    fn group_flap_invariants(seq in sequences()) {
        let mut g = GroupRecord::new(group());
        let mut tally = Tally::default();
        let mut t = 0u64;
        for (gap, len) in seq {
            let start = t + gap;
            tally.run_until(&mut g, start + 10)?;
            tally.check(dark(&mut g, start, NoticeKind::Alarm))?;
            let end = start + 15 + len;
            tally.run_until(&mut g, end)?;
            tally.check(back(&mut g, start, end))?;
            t = end;
        }
        // Long after: every episode told has ended.
        tally.run_until(&mut g, t + 100_000)?;
        prop_assert!(!tally.in_episode, "episode never ended");
        prop_assert_eq!(tally.told, tally.ended);
        prop_assert!(!g.flapping());
    }
}

fn secs(t: Timestamp) -> u64 {
    crate::model::since(t, at(0)).as_secs()
}
