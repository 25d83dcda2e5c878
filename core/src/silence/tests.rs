//! Silences to the millisecond: local times, one-off and repeating windows,
//! and the nights the clocks change in Europe/Berlin.

use super::*;

const BERLIN: &str = "Europe/Berlin";

fn utc(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .to_utc()
}

fn ms(t: Timestamp, ms: i64) -> Timestamp {
    t + chrono::TimeDelta::milliseconds(ms)
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn any() -> HostPattern {
    HostPattern::any()
}

fn host(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

#[test]
fn instants_in_rfc3339_or_local_time_with_a_zone() {
    let want = utc("2026-11-26T18:00:00Z");
    assert_eq!(parse_instant("2026-11-26T18:00:00Z", None), Ok(want));
    assert_eq!(parse_instant("2026-11-26T19:00:00+01:00", None), Ok(want));
    // An offset wins over tz; tz is only for local times.
    assert_eq!(
        parse_instant("2026-11-26T19:00:00+01:00", Some("UTC")),
        Ok(want)
    );
    for local in [
        "2026-11-26 19:00",
        "2026-11-26T19:00",
        "2026-11-26 19:00:00",
        " 2026-11-26T19:00:00 ",
    ] {
        assert_eq!(parse_instant(local, Some(BERLIN)), Ok(want), "{local}");
    }
    assert_eq!(
        parse_instant("2026-11-26 19:00:00.250", Some(BERLIN)),
        Ok(ms(want, 250))
    );
    // Summer time: 19:00 in Berlin is 17:00 UTC.
    assert_eq!(
        parse_instant("2026-07-01 19:00", Some(BERLIN)),
        Ok(utc("2026-07-01T17:00:00Z"))
    );
    assert_eq!(
        parse_instant("2026-07-01 19:00", Some("UTC")),
        Ok(utc("2026-07-01T19:00:00Z"))
    );
}

#[test]
fn local_times_that_cannot_be_read_are_refused_with_a_reason() {
    let e = parse_instant("2026-11-26 19:00", None).unwrap_err();
    assert!(e.contains("no UTC offset") && e.contains("tz"), "{e}");
    let e = parse_instant("2026-11-26 19:00", Some("Mars/Olympus")).unwrap_err();
    assert!(e.contains("unknown time zone 'Mars/Olympus'"), "{e}");
    assert!(check_tz("Mars/Olympus").is_err());
    assert!(check_tz("Europe/Berlin").is_ok() && check_tz("UTC").is_ok());
    let e = parse_instant("tomorrow evening", Some(BERLIN)).unwrap_err();
    assert!(e.contains("neither RFC 3339"), "{e}");
    // 02:30 does not happen in Berlin on the night the clocks go forward.
    let e = parse_instant("2026-03-29 02:30", Some(BERLIN)).unwrap_err();
    assert!(e.contains("does not exist in Europe/Berlin"), "{e}");
    // It happens twice on the night they go back: the first is taken.
    assert_eq!(
        parse_instant("2026-10-25 02:30", Some(BERLIN)),
        Ok(utc("2026-10-25T00:30:00Z"))
    );
}

#[test]
fn a_one_off_window_to_the_millisecond() {
    let (start, end) = (utc("2026-11-26T18:00:00Z"), utc("2026-11-26T19:00:00Z"));
    let s = Silence::new(
        "mw",
        HostPattern::new("web-*").unwrap(),
        start,
        end,
        "images",
    )
    .unwrap();
    let web = host("web-1");
    assert!(!s.covers(&web, ms(start, -1)));
    assert!(s.covers(&web, start));
    assert!(s.covers(&web, ms(end, -1)));
    assert!(!s.covers(&web, end));
    assert!(!s.covers(&host("db-1"), start));
    assert_eq!(s.end_for(&web, start), Some(end));
    assert_eq!(s.end_for(&host("db-1"), start), None);
    assert_eq!(s.next_window(ms(start, -5000)), Some((start, end)));
    assert_eq!(s.next_window(end), None);
    assert!(!s.is_over(ms(end, -1)));
    assert!(s.is_over(end));
    assert!(Silence::new("mw", any(), end, start, "").is_err());
    assert!(Silence::new("", any(), start, end, "").is_err());
}

#[test]
fn one_off_json_is_unchanged_and_old_json_still_reads() {
    let s = Silence::new(
        "mw",
        any(),
        utc("2026-11-26T18:00:00Z"),
        utc("2026-11-26T19:00:00Z"),
        "r",
    )
    .unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("repeat").is_none(), "{json}");
    // As stored before repeats existed.
    let old = r#"{"id":"mw","hosts":"*","starts_at":"2026-11-26T18:00:00Z",
                  "ends_at":"2026-11-26T19:00:00Z","reason":"r"}"#;
    assert_eq!(serde_json::from_str::<Silence>(old).unwrap(), s);
}

#[test]
fn a_repeating_silence_round_trips_as_json() {
    let start = parse_instant("2026-11-26 19:00", Some(BERLIN)).unwrap();
    let r = Repeat::daily(start, BERLIN, hour(), Some(utc("2027-01-01T00:00:00Z"))).unwrap();
    assert_eq!(r.cron, "0 19 * * *");
    let s = Silence::repeating("images", any(), start, r, "recovery images").unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""duration":"1h""#), "{json}");
    assert_eq!(serde_json::from_str::<Silence>(&json).unwrap(), s);
}

/// Each listed day's window of `s` (start and end in UTC), and that it
/// covers nothing a millisecond around it.
fn assert_windows(s: &Silence, windows: &[(&str, &str)]) {
    let h = host("web-1");
    for (from, to) in windows {
        let (from, to) = (utc(from), utc(to));
        assert!(!s.covers(&h, ms(from, -1)), "not before {from}");
        assert_eq!(s.window_at(from), Some((from, to)), "from {from}");
        assert!(s.covers(&h, ms(to, -1)), "until just before {to}");
        assert_eq!(s.end_for(&h, ms(to, -1)), Some(to));
        assert!(!s.covers(&h, to), "not at {to}");
        assert_eq!(
            s.next_window(ms(from, -3_600_000)),
            Some((from, to)),
            "the next window an hour before {from}"
        );
    }
}

#[test]
fn a_daily_1900_berlin_window_stays_at_1900_local_across_both_changes() {
    let first = parse_instant("2026-03-27 19:00", Some(BERLIN)).unwrap();
    let r = Repeat::daily(first, BERLIN, hour(), None).unwrap();
    let s = Silence::repeating("images", any(), first, r, "").unwrap();
    assert_eq!(
        s.ends_at,
        utc("2026-03-27T19:00:00Z"),
        "the first window's end"
    );
    assert_windows(
        &s,
        &[
            // Winter time (UTC+1) before the clocks go forward on 29 March…
            ("2026-03-27T18:00:00Z", "2026-03-27T19:00:00Z"),
            ("2026-03-28T18:00:00Z", "2026-03-28T19:00:00Z"),
            // …summer time (UTC+2) from that very evening.
            ("2026-03-29T17:00:00Z", "2026-03-29T18:00:00Z"),
            ("2026-03-30T17:00:00Z", "2026-03-30T18:00:00Z"),
            // Back on 25 October.
            ("2026-10-24T17:00:00Z", "2026-10-24T18:00:00Z"),
            ("2026-10-25T18:00:00Z", "2026-10-25T19:00:00Z"),
            ("2026-10-26T18:00:00Z", "2026-10-26T19:00:00Z"),
        ],
    );
    let h = host("web-1");
    assert!(
        !s.covers(&h, utc("2026-03-29T18:30:00Z")),
        "19:00 UTC+1 is over"
    );
    assert!(
        !s.covers(&h, utc("2026-10-25T17:30:00Z")),
        "19:00 UTC+2 is not yet"
    );
    assert!(
        !s.is_over(utc("2100-01-01T00:00:00Z")),
        "no end, never over"
    );
}

#[test]
fn a_daily_0230_berlin_window_on_the_nights_the_clocks_change() {
    let first = parse_instant("2026-03-27 02:30", Some(BERLIN)).unwrap();
    let r = Repeat::daily(first, BERLIN, hour(), None).unwrap();
    assert_eq!(r.cron, "30 2 * * *");
    let s = Silence::repeating("backup", any(), first, r, "").unwrap();
    assert_windows(
        &s,
        &[
            ("2026-03-28T01:30:00Z", "2026-03-28T02:30:00Z"),
            // 02:30 never comes on 29 March (02:00 CET jumps to 03:00 CEST):
            // the window starts at the first instant after the gap, 03:00
            // CEST, and still lasts its hour.
            ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
            ("2026-03-30T00:30:00Z", "2026-03-30T01:30:00Z"),
            ("2026-10-24T00:30:00Z", "2026-10-24T01:30:00Z"),
            // 02:30 comes twice on 25 October (03:00 CEST goes back to
            // 02:00 CET): the window opens once, at the first.
            ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"),
            ("2026-10-26T01:30:00Z", "2026-10-26T02:30:00Z"),
        ],
    );
    let h = host("db-1");
    assert!(
        !s.covers(&h, utc("2026-10-25T01:30:00Z")),
        "not again at the second 02:30"
    );
    assert!(!s.covers(&h, utc("2026-10-25T02:29:59.999Z")));
    assert!(
        !s.covers(&h, utc("2026-03-29T00:30:00Z")),
        "nothing at the 02:30 that is skipped"
    );
}

#[test]
fn a_cron_silence_is_cut_to_its_start_and_until() {
    // Weekdays 19:00-20:00 Berlin, from a Thursday 19:30 until the next
    // Tuesday 19:15.
    let starts = parse_instant("2026-11-26 19:30", Some(BERLIN)).unwrap();
    let until = parse_instant("2026-12-01 19:15", Some(BERLIN)).unwrap();
    let r = Repeat::new("0 19 * * MON-FRI", BERLIN, hour(), Some(until)).unwrap();
    let s = Silence::repeating("wk", any(), starts, r, "").unwrap();
    let h = host("web-1");
    // Created inside the Thursday window: it covers the rest of it.
    assert_eq!(
        s.window_at(starts),
        Some((starts, utc("2026-11-26T19:00:00Z")))
    );
    assert_eq!(s.ends_at, utc("2026-11-26T19:00:00Z"));
    assert!(!s.covers(&h, ms(starts, -1)), "nothing before starts_at");
    // Friday yes, the weekend no, Monday yes.
    assert!(s.covers(&h, utc("2026-11-27T18:30:00Z")));
    assert!(!s.covers(&h, utc("2026-11-28T18:30:00Z")));
    assert!(!s.covers(&h, utc("2026-11-29T18:30:00Z")));
    assert_eq!(
        s.next_window(utc("2026-11-28T12:00:00Z")),
        Some((utc("2026-11-30T18:00:00Z"), utc("2026-11-30T19:00:00Z")))
    );
    // Tuesday's window is cut short at until.
    assert_eq!(
        s.window_at(utc("2026-12-01T18:00:00Z")),
        Some((utc("2026-12-01T18:00:00Z"), until))
    );
    assert!(!s.covers(&h, until));
    assert_eq!(s.next_window(until), None);
    assert!(!s.is_over(ms(until, -1)));
    assert!(s.is_over(until));
}

#[test]
fn occurrences_that_touch_are_one_window() {
    let r = Repeat::new("0 19,20 * * *", "UTC", hour(), None).unwrap();
    let s = Silence::repeating("x", any(), utc("2026-11-26T00:00:00Z"), r, "").unwrap();
    assert_eq!(
        s.window_at(utc("2026-11-26T19:30:00Z")).map(|w| w.1),
        Some(utc("2026-11-26T21:00:00Z"))
    );
    assert_eq!(
        s.window_at(utc("2026-11-26T20:30:00Z")),
        Some((utc("2026-11-26T20:00:00Z"), utc("2026-11-26T21:00:00Z")))
    );
}

#[test]
fn bad_schedules_are_refused_with_a_reason() {
    let e = Repeat::new("0 25 * * *", BERLIN, hour(), None).unwrap_err();
    assert!(e.contains("invalid cron expression '0 25 * * *'"), "{e}");
    let e = Repeat::new("every evening", BERLIN, hour(), None).unwrap_err();
    assert!(e.contains("invalid cron expression"), "{e}");
    let e = Repeat::new("0 19 * * *", "Berlin", hour(), None).unwrap_err();
    assert!(e.contains("unknown time zone 'Berlin'"), "{e}");
    let e = Repeat::new("0 19 * * *", BERLIN, Duration::ZERO, None).unwrap_err();
    assert!(e.contains("greater than zero"), "{e}");
    // Until before the first occurrence: it would never cover anything.
    let starts = utc("2026-11-26T12:00:00Z");
    let r = Repeat::new(
        "0 19 * * *",
        BERLIN,
        hour(),
        Some(utc("2026-11-26T17:00:00Z")),
    )
    .unwrap();
    let e = Silence::repeating("x", any(), starts, r, "").unwrap_err();
    assert!(e.contains("never covers anything"), "{e}");
}

#[test]
fn a_stored_schedule_that_no_longer_reads_covers_nothing() {
    let r = Repeat::new("0 19 * * *", "UTC", hour(), None).unwrap();
    let mut s = Silence::repeating("x", any(), utc("2026-11-26T00:00:00Z"), r, "").unwrap();
    s.repeat.as_mut().unwrap().cron = "not cron".into();
    assert!(!s.covers(&host("a"), utc("2026-11-26T19:30:00Z")));
    assert_eq!(s.next_window(utc("2026-11-26T19:30:00Z")), None);
}

#[test]
fn occurrences_that_never_leave_a_gap_are_refused() {
    let from = utc("2026-11-26T00:00:00Z");
    for (cron, length) in [
        ("0 * * * *", hour() * 2),
        ("0 * * * *", hour()),
        ("0 9 * * *", hour() * 25),
        ("0 9 * * MON-FRI", hour() * 72),
    ] {
        let r = Repeat::new(cron, "UTC", length, None).unwrap();
        let e = Silence::repeating("x", any(), from, r, "").unwrap_err();
        assert!(e.contains("would never end"), "{cron} for {length:?}: {e}");
        assert!(e.contains(cron), "{e}");
    }
    // Touching within a day, with a gap after: one window a day.
    let r = Repeat::new("0 19,20 * * *", "UTC", hour(), None).unwrap();
    assert!(Silence::repeating("x", any(), from, r, "").is_ok());
    // Endless in itself, but cut by `until`: it ends.
    let until = Some(utc("2026-11-29T00:00:00Z"));
    let r = Repeat::new("0 * * * *", "UTC", hour() * 2, until).unwrap();
    let s = Silence::repeating("x", any(), from, r, "").unwrap();
    assert_eq!(s.next_window(from).map(|w| w.1), until);
}
