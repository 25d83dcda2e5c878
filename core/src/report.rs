//! The agent's outage report, told in sentences for people.
//!
//! An agent that could not reach the watcher keeps a record of what failed
//! and sends it with the first heartbeat that gets through, as JSON:
//! `{"since": …, "failed_attempts": n, "failures": [{"kind": "dns",
//! "detail": …, "first": …, "last": …, "count": n}, …]}`. The JSON webhook
//! passes it on as it came; every format a person reads (email, chat,
//! SNS, the log) shows [`describe_report`]'s sentences instead.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::Timestamp;

/// The longest failure detail quoted in a sentence; longer ones are cut.
const MAX_DETAIL: usize = 160;

fn time(v: &Value) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn times(n: u64) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

/// One failure entry: "DNS lookups failed 12 times (…)".
fn entry(f: &Value) -> Option<String> {
    let kind = f["kind"].as_str()?;
    let count = f["count"].as_u64().unwrap_or(1);
    let detail = f["detail"].as_str().unwrap_or("").trim();
    let refused = detail.to_ascii_lowercase().contains("refused");
    let (what, show_detail) = match kind {
        "dns" => ("DNS lookups failed", true),
        "connect" if refused => ("the connection was refused", false),
        "connect" => ("the connection failed", true),
        "tls" => ("the TLS handshake failed", true),
        "timeout" => ("requests timed out", false),
        "http" => ("the watcher answered with an error", true),
        "proxy" => ("the proxy failed", true),
        _ => ("requests failed", true),
    };
    let what = if count == 1 {
        match kind {
            "dns" => "a DNS lookup failed",
            "timeout" => "a request timed out",
            "other" => "a request failed",
            _ => what,
        }
    } else {
        what
    };
    let mut s = format!("{what} {}", times(count));
    if show_detail && !detail.is_empty() {
        let d = crate::text::cut_chars_marked(detail, MAX_DETAIL);
        s.push_str(&format!(" ({d})"));
    }
    Some(s)
}

/// `03:12` in `tz`, with the date when `t` is not on `other`'s day there.
fn clock(t: Timestamp, other: Timestamp, tz: Tz) -> String {
    let (t, other) = (t.with_timezone(&tz), other.with_timezone(&tz));
    if t.date_naive() == other.date_naive() {
        t.format("%H:%M").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// The zone's abbreviation at `t`: `UTC`, `CET`, `CEST`.
fn zone(t: Timestamp, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Z").to_string()
}

/// The report's failures, oldest first, if `report` is an agent's report.
fn failures(v: &Value) -> Option<Vec<&Value>> {
    let mut entries: Vec<&Value> = v["failures"].as_array()?.iter().collect();
    entries.sort_by_key(|f| time(&f["first"]));
    Some(entries)
}

/// When the outage began (the report's `since`, else its first failure)
/// and its last failure, from a report and its sorted failures.
fn bounds(v: &Value, entries: &[&Value]) -> (Option<Timestamp>, Option<Timestamp>) {
    let since = time(&v["since"]).or_else(|| entries.first().and_then(|f| time(&f["first"])));
    let last = entries.iter().filter_map(|f| time(&f["last"])).max();
    (since, last)
}

/// When the outage `report` tells of began (its `since`, else its first
/// failure) and its last failure: the stretch a view marks as the last
/// outage. `None` when `report` is not an agent's report or has no times.
pub fn report_span(report: &str) -> Option<(Timestamp, Timestamp)> {
    let v: Value = serde_json::from_str(report).ok()?;
    let entries = failures(&v)?;
    let (since, last) = bounds(&v, &entries);
    since.zip(last)
}

/// The agent's report `report` (its JSON text) as sentences: "Could not
/// reach the watcher from 03:12 to 04:02 UTC: DNS lookups failed 12 times,
/// then the connection was refused twice." `until` is when a heartbeat got
/// through (the recovery); without it the last failure ends the span.
/// `None` when `report` is not such a report (then show it as it is).
pub fn describe_report(report: &str, until: Option<Timestamp>) -> Option<String> {
    describe_report_in(report, until, Tz::UTC)
}

/// [`describe_report`] with its times in `tz` ("from 04:12 to 05:02 CET"),
/// for a view whose reader lives there.
pub fn describe_report_in(report: &str, until: Option<Timestamp>, tz: Tz) -> Option<String> {
    let v: Value = serde_json::from_str(report).ok()?;
    let entries = failures(&v)?;
    let parts: Vec<String> = entries.iter().filter_map(|f| entry(f)).collect();
    let (since, last) = bounds(&v, &entries);
    let end = until.or(last);
    let mut s = String::from("Could not reach the watcher");
    match (since, end) {
        // Within one minute: to the second ("from 07:33 to 07:33" says
        // nothing).
        (Some(a), Some(b)) if clock(a, b, tz) == clock(b, a, tz) => s.push_str(&format!(
            " from {} to {} {}",
            a.with_timezone(&tz).format("%H:%M:%S"),
            b.with_timezone(&tz).format("%H:%M:%S"),
            zone(b, tz)
        )),
        (Some(a), Some(b)) => s.push_str(&format!(
            " from {} to {} {}",
            clock(a, b, tz),
            clock(b, a, tz),
            zone(b, tz)
        )),
        (Some(a), None) => s.push_str(&format!(
            " from {} {}",
            a.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            zone(a, tz)
        )),
        _ => {}
    }
    let attempts = v["failed_attempts"].as_u64();
    if parts.is_empty() {
        match attempts {
            Some(n) => s.push_str(&format!(": {} failed.", plural_attempts(n))),
            None => s.push('.'),
        }
        return Some(s);
    }
    s.push_str(": ");
    s.push_str(&parts.join(", then "));
    s.push('.');
    let listed: u64 = entries
        .iter()
        .map(|f| f["count"].as_u64().unwrap_or(1))
        .sum();
    if let Some(n) = attempts.filter(|n| *n > listed) {
        s.push_str(&format!(" {} failed in all.", plural_attempts(n)));
    }
    Some(s)
}

fn plural_attempts(n: u64) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_report_reads_as_sentences() {
        let r = r#"{"since":"2026-11-26T03:12:04Z","failed_attempts":14,"failures":[
            {"kind":"connect","detail":"tcp connect error: Connection refused (os error 111)","first":"2026-11-26T03:58:00Z","last":"2026-11-26T04:01:00Z","count":2},
            {"kind":"dns","detail":"failed to lookup address information: Name or service not known","first":"2026-11-26T03:12:04Z","last":"2026-11-26T03:55:00Z","count":12}]}"#;
        assert_eq!(
            describe_report(r, Some(at("2026-11-26T04:02:10Z"))).unwrap(),
            "Could not reach the watcher from 03:12 to 04:02 UTC: DNS lookups failed 12 times \
             (failed to lookup address information: Name or service not known), then the \
             connection was refused twice."
        );
    }

    #[test]
    fn an_outage_within_one_minute_is_told_to_the_second() {
        let r = r#"{"since":"2026-11-27T07:33:05Z","failures":[
            {"kind":"connect","first":"2026-11-27T07:33:05Z","last":"2026-11-27T07:33:40Z","count":68}]}"#;
        assert_eq!(
            describe_report(r, Some(at("2026-11-27T07:33:41Z"))).unwrap(),
            "Could not reach the watcher from 07:33:05 to 07:33:41 UTC: the connection failed 68 times."
        );
    }

    #[test]
    fn single_failures_spans_over_midnight_and_uncounted_attempts() {
        let r = r#"{"since":"2026-11-25T23:50:00Z","failed_attempts":5,"failures":[
            {"kind":"timeout","detail":"operation timed out","first":"2026-11-25T23:50:00Z","last":"2026-11-25T23:50:00Z","count":1},
            {"kind":"http","detail":"503 Service Unavailable","first":"2026-11-26T00:05:00Z","last":"2026-11-26T00:05:00Z","count":1}]}"#;
        assert_eq!(
            describe_report(r, None).unwrap(),
            "Could not reach the watcher from 2026-11-25 23:50 to 2026-11-26 00:05 UTC: a request \
             timed out once, then the watcher answered with an error once (503 Service \
             Unavailable). 5 attempts failed in all."
        );
    }

    #[test]
    fn in_a_time_zone_and_the_span_a_view_marks() {
        let r = r#"{"since":"2026-11-26T03:12:00Z","failures":[
            {"kind":"dns","first":"2026-11-26T03:12:00Z","last":"2026-11-26T04:02:00Z","count":3}]}"#;
        assert_eq!(
            describe_report_in(r, None, Tz::Europe__Berlin).unwrap(),
            "Could not reach the watcher from 04:12 to 05:02 CET: DNS lookups failed 3 times."
        );
        assert_eq!(
            report_span(r),
            Some((at("2026-11-26T03:12:00Z"), at("2026-11-26T04:02:00Z")))
        );
        assert_eq!(report_span("the link was down"), None);
    }

    #[test]
    fn anything_else_is_not_described() {
        assert_eq!(describe_report("the link was down", None), None);
        assert_eq!(describe_report(r#"{"a": 1}"#, None), None);
    }
}
