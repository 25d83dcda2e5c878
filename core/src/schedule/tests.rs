use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use proptest::prelude::*;

use super::*;
use crate::testing::RecordingNotifier;
use crate::{
    Heartbeat, HostPattern, ManualClock, MemoryStore, MonitorOptions, NoticeKind, Notifier, Policy,
    PolicyOverride, PolicySet,
};

fn utc(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s).expect("test time").to_utc()
}

fn berlin_0230() -> Schedule {
    Schedule::new("30 2 * * *", "Europe/Berlin", Duration::from_secs(1800)).unwrap()
}

#[test]
fn bad_schedules_say_which_part_is_wrong() {
    let e = Schedule::new("0 25 * * *", "UTC", DEFAULT_GRACE).unwrap_err();
    assert!(
        e.starts_with("schedule: invalid cron expression '0 25 * * *'"),
        "{e}"
    );
    let e = Schedule::new("0 2 * * *", "Europe/Berln", DEFAULT_GRACE).unwrap_err();
    assert!(e.starts_with("tz: unknown time zone 'Europe/Berln'"), "{e}");
    let e = Schedule::new("every day", "UTC", DEFAULT_GRACE).unwrap_err();
    assert!(e.contains("invalid cron expression"), "{e}");
}

#[test]
fn a_policy_body_is_a_timeout_or_a_schedule() {
    let p: HostPolicy =
        serde_json::from_str(r#"{"schedule": "0 2 * * *", "tz": "Europe/Berlin", "grace": "30m"}"#)
            .unwrap();
    let HostPolicy::Schedule(s) = &p else {
        panic!("{p:?}")
    };
    assert_eq!(
        (s.cron(), s.tz(), s.grace()),
        ("0 2 * * *", "Europe/Berlin", Duration::from_secs(1800))
    );
    // Round trip, as every store writes it.
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<HostPolicy>(&json).unwrap(), p);
    let t: HostPolicy = serde_json::from_str(r#"{"timeout": "5m"}"#).unwrap();
    assert_eq!(t, HostPolicy::Timeout(Duration::from_secs(300)));
    // Defaults: UTC, one hour.
    let d: HostPolicy = serde_json::from_str(r#"{"schedule": "@daily"}"#).unwrap();
    let HostPolicy::Schedule(d) = d else { panic!() };
    assert_eq!((d.tz(), d.grace()), ("UTC", DEFAULT_GRACE));

    for (body, says) in [
        (r#"{"timeout": "5m", "schedule": "0 2 * * *"}"#, "not both"),
        (r#"{"grace": "5m"}"#, "give schedule too"),
        (r#"{}"#, "needs timeout"),
        (r#"{"timeout": "0s"}"#, "greater than zero"),
        (r#"{"schedule": "0 2 * *"}"#, "invalid cron"),
        (
            r#"{"schedule": "0 2 * * *", "tz": "Mars/Olympus"}"#,
            "unknown time zone",
        ),
        (
            r#"{"schedule": "0 2 * * *", "grace": "soon"}"#,
            "grace: 'soon' is not a duration",
        ),
        (r#"{"schedul": "0 2 * * *"}"#, "schedul"),
        (
            r#"{"timeout": "999y"}"#,
            "timeout: '999y' is longer than the 1 year allowed",
        ),
        (
            r#"{"schedule": "0 2 * * *", "grace": "100y"}"#,
            "grace: '100y' is longer than the 1 year allowed",
        ),
    ] {
        let e = serde_json::from_str::<HostPolicy>(body)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
}

#[test]
fn the_spring_forward_night_runs_a_skipped_0230_at_0300() {
    // 29 March 2026: Berlin's clocks jump from 02:00 CET to 03:00 CEST, so
    // 02:30 does not happen; the run is expected at 03:00 CEST (01:00 UTC).
    let s = berlin_0230();
    let before = utc("2026-03-28T12:00:00Z");
    assert_eq!(s.next_run(before), Some(utc("2026-03-29T01:00:00Z")));
    assert_eq!(s.deadline(before), utc("2026-03-29T01:30:00Z"));
    // The night before and after are ordinary: 02:30 CET (01:30 UTC), then
    // 02:30 CEST (00:30 UTC).
    assert_eq!(
        s.next_run(utc("2026-03-27T12:00:00Z")),
        Some(utc("2026-03-28T01:30:00Z"))
    );
    assert_eq!(
        s.next_run(utc("2026-03-29T01:00:00Z")),
        Some(utc("2026-03-30T00:30:00Z"))
    );
}

#[test]
fn the_fall_back_night_runs_a_repeated_0230_once_at_its_first_pass() {
    // 25 October 2026: Berlin's clocks go back from 03:00 CEST to 02:00
    // CET, so 02:30 happens twice (00:30 and 01:30 UTC); the job runs once,
    // at the first.
    let s = berlin_0230();
    let before = utc("2026-10-24T12:00:00Z");
    assert_eq!(s.next_run(before), Some(utc("2026-10-25T00:30:00Z")));
    assert_eq!(s.deadline(before), utc("2026-10-25T01:00:00Z"));
    // A success at the first pass expects nothing at the second.
    assert_eq!(
        s.next_run(utc("2026-10-25T00:31:00Z")),
        Some(utc("2026-10-26T01:30:00Z"))
    );
}

fn monitor_with(
    policies: PolicySet,
    clock: &ManualClock,
    ch: &RecordingNotifier,
) -> Monitor<MemoryStore, ManualClock> {
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(ch.clone())];
    let opts = MonitorOptions {
        owner: "m".into(),
        ingest_in_process: false,
        downtime_gap: Some(Duration::from_secs(30 * 86_400)),
        ..MonitorOptions::default()
    };
    Monitor::new(
        Arc::new(MemoryStore::new()),
        channels,
        clock.clone(),
        policies,
        opts,
    )
    .unwrap()
}

fn backup_policies() -> PolicySet {
    PolicySet {
        default: Policy::default(),
        overrides: vec![PolicyOverride {
            schedule: Some(berlin_0230()),
            ..PolicyOverride::new(HostPattern::new("backup-*").unwrap())
        }],
    }
}

/// On the manual clock through the monitor: a success the evening before
/// the changeover, then silence; the alarm comes at tick + grace (with the
/// tick on the changed clock), not a second earlier.
async fn alarms_at(success: &str, last_quiet: &str, alarm_at: &str) {
    let clock = ManualClock::new(utc(success));
    let ch = RecordingNotifier::new("ch");
    let m = monitor_with(backup_policies(), &clock, &ch);
    let h = HostId::new("backup-db").unwrap();
    m.heartbeat(&Heartbeat::new(h.clone(), utc(success)))
        .await
        .unwrap();
    let rec = m.host(&h).await.unwrap().unwrap();
    assert_eq!(
        rec.due_at,
        Some(utc(alarm_at)),
        "the heartbeat armed the schedule's deadline"
    );
    clock.set(utc(last_quiet));
    let _ = m.sweep().await.unwrap();
    assert_eq!(
        ch.count(NoticeKind::Alarm),
        0,
        "still in grace at {last_quiet}"
    );
    clock.set(utc(alarm_at));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 1, "alarmed at {alarm_at}");
    assert_eq!(ch.notices()[0].missing_since, utc(alarm_at));
}

#[tokio::test]
async fn a_0230_berlin_job_alarms_at_tick_plus_grace_on_both_changeover_nights() {
    // Spring: the run is due at 03:00 CEST (01:00 UTC), missing at 01:30 UTC.
    alarms_at(
        "2026-03-28T18:00:00Z",
        "2026-03-29T01:29:59Z",
        "2026-03-29T01:30:00Z",
    )
    .await;
    // Autumn: due at the first 02:30 (00:30 UTC), missing at 01:00 UTC,
    // before the second 02:30 comes.
    alarms_at(
        "2026-10-24T18:00:00Z",
        "2026-10-25T00:59:59Z",
        "2026-10-25T01:00:00Z",
    )
    .await;
    // An ordinary night: 02:30 CET is 01:30 UTC, missing at 02:00 UTC.
    alarms_at(
        "2026-11-25T18:00:00Z",
        "2026-11-26T01:59:59Z",
        "2026-11-26T02:00:00Z",
    )
    .await;
}

#[tokio::test]
async fn a_run_that_succeeds_in_grace_is_not_missing_and_waits_for_the_next_tick() {
    let clock = ManualClock::new(utc("2026-11-25T18:00:00Z"));
    let ch = RecordingNotifier::new("ch");
    let m = monitor_with(backup_policies(), &clock, &ch);
    let h = HostId::new("backup-db").unwrap();
    m.heartbeat(&Heartbeat::new(h.clone(), clock.now()))
        .await
        .unwrap();
    // The 02:30 CET run (01:30 UTC) finishes at 01:50 UTC, inside grace.
    clock.set(utc("2026-11-26T01:50:00Z"));
    m.heartbeat(&Heartbeat::new(h.clone(), clock.now()))
        .await
        .unwrap();
    let rec = m.host(&h).await.unwrap().unwrap();
    assert_eq!(rec.due_at, Some(utc("2026-11-27T02:00:00Z")));
    clock.set(utc("2026-11-27T01:59:59Z"));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 0);
    clock.set(utc("2026-11-27T02:00:00Z"));
    let _ = m.sweep().await.unwrap();
    assert_eq!(ch.count(NoticeKind::Alarm), 1);
}

#[test]
fn toml_overrides_take_a_flat_schedule_and_name_the_pattern_when_wrong() {
    let set: PolicySet = serde_json::from_str(
        r#"{"overrides": [{"hosts": "backup-*", "schedule": "30 2 * * *",
                           "tz": "Europe/Berlin", "grace": "30m"}]}"#,
    )
    .unwrap();
    assert_eq!(set, backup_policies());
    let h = HostId::new("backup-db").unwrap();
    let heard = utc("2026-11-25T18:00:00Z");
    assert_eq!(set.deadline_for(&h, heard), utc("2026-11-26T02:00:00Z"));
    assert_eq!(
        set.for_host(&h).deadline_after(heard),
        utc("2026-11-26T02:00:00Z")
    );
    let other = HostId::new("web-1").unwrap();
    assert_eq!(
        set.deadline_for(&other, heard),
        add(heard, Duration::from_secs(600))
    );
    for (body, says) in [
        (
            r#"{"hosts": "backup-*", "schedule": "0 2 * * *", "timeout": "1h"}"#,
            "not both",
        ),
        (r#"{"hosts": "backup-*", "tz": "UTC"}"#, "give schedule too"),
        (
            r#"{"hosts": "backup-*", "schedule": "61 2 * * *"}"#,
            "policy for hosts 'backup-*': schedule: invalid cron",
        ),
    ] {
        let e = serde_json::from_str::<PolicyOverride>(body)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
}

#[test]
fn a_stored_policy_wins_over_the_configured_one() {
    let set = backup_policies();
    let h = HostId::new("backup-db").unwrap();
    let t0 = utc("2026-11-25T18:00:00Z");
    let mut rec = HostRecord::new(h, t0, Duration::ZERO);
    assert!(set.for_record(&rec).schedule.is_some());
    rec.policy = Some(Box::new(HostPolicy::Timeout(Duration::from_secs(60))));
    let p = set.for_record(&rec);
    assert_eq!(
        (p.schedule.is_none(), p.timeout),
        (true, Duration::from_secs(60))
    );
    assert_eq!(rec.deadline(&p), add(t0, Duration::from_secs(60)));
}

proptest! {
    /// The deadline is after the success and never earlier for a later
    /// success: what lets a store keep an older `due_at` (early, never
    /// late) on the heartbeat path.
    #[test]
    fn the_deadline_never_moves_back(a in 0i64..200_000_000, gap in 0i64..10_000_000,
                                     which in 0usize..4) {
        let exprs = ["30 2 * * *", "*/15 * * * *", "0 9 * * 1-5", "0 0 1 * *"];
        let s = Schedule::new(exprs[which], "Europe/Berlin", Duration::from_secs(600)).unwrap();
        let base = utc("2026-01-01T00:00:00Z");
        let first = base + chrono::TimeDelta::seconds(a);
        let later = first + chrono::TimeDelta::seconds(gap);
        let (d1, d2) = (s.deadline(first), s.deadline(later));
        prop_assert!(d1 <= d2, "{first} → {d1}, {later} → {d2}");
        prop_assert!(d1 > first);
        let tick = s.next_run(first).unwrap();
        prop_assert!(tick > first);
        prop_assert_eq!(add(tick, Duration::from_secs(600)), d1);
        // No tick lies strictly between the success and the expected run.
        prop_assert!(s.previous_run(tick - chrono::TimeDelta::seconds(1))
            .is_none_or(|p| p <= first));
    }
}
