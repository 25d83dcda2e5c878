//! Times and agent reports as people read them: "4 min ago", "2 h 5 min",
//! "Could not reach the watcher from 03:12 to 04:02 UTC: …" (core's
//! sentences, in the dashboard's time zone).

use std::time::Duration;

use chrono_tz::Tz;
use iamalive_core::Timestamp;

/// A length in at most two units: `45 s`, `4 min`, `2 h 5 min`, `3 d 4 h`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (d_, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{m} min"),
        3600..86_400 if m == 0 => format!("{h} h"),
        3600..86_400 => format!("{h} h {m} min"),
        _ if h == 0 => format!("{d_} d"),
        _ => format!("{d_} d {h} h"),
    }
}

/// How long ago `t` was at `now`: `just now`, `4 min ago`; a time ahead
/// reads `in 4 min`.
pub(crate) fn ago(t: Timestamp, now: Timestamp) -> String {
    if t > now {
        let d = (t - now).to_std().unwrap_or_default();
        return format!("in {}", span(d));
    }
    let d = (now - t).to_std().unwrap_or_default();
    if d < Duration::from_secs(5) {
        "just now".into()
    } else {
        format!("{} ago", span(d))
    }
}

/// How long from `now` until `t`: `in 2 h`, or `ended` for a time passed.
pub(crate) fn until(t: Timestamp, now: Timestamp) -> String {
    if t <= now {
        "ended".into()
    } else {
        format!("in {}", span((t - now).to_std().unwrap_or_default()))
    }
}

/// An exact time in `tz` for a tooltip: `2026-11-26 03:12:04 UTC`,
/// `2026-11-26 04:12:04 CET`.
pub(crate) fn exact(t: Timestamp, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A short time of day in `tz`, with the date when it is not `now`'s day
/// there: `03:12` or `Nov 24 03:12`.
pub(crate) fn clock(t: Timestamp, now: Timestamp, tz: Tz) -> String {
    let (t, now) = (t.with_timezone(&tz), now.with_timezone(&tz));
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M").to_string()
    } else {
        t.format("%b %-d %H:%M").to_string()
    }
}

/// The agent's last report in words ([`iamalive_core::describe_report_in`],
/// the sentences every notice uses, with times in `tz`); anything else the
/// agent sent is shown as it came, cut to a readable length.
pub(crate) fn report(raw: &str, tz: Tz) -> String {
    iamalive_core::describe_report_in(raw, None, tz).unwrap_or_else(|| cut(raw))
}

/// Anything else the agent sent, cut to a readable length.
fn cut(s: &str) -> String {
    iamalive_core::text::cut_chars_marked(s, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn spans_and_ago() {
        assert_eq!(span(Duration::from_secs(45)), "45 s");
        assert_eq!(span(Duration::from_secs(4 * 60 + 59)), "4 min");
        assert_eq!(span(Duration::from_secs(2 * 3600)), "2 h");
        assert_eq!(span(Duration::from_secs(2 * 3600 + 5 * 60)), "2 h 5 min");
        assert_eq!(span(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3 d 4 h");
        let now = at("2026-11-26T04:00:00Z");
        assert_eq!(ago(at("2026-11-26T03:56:00Z"), now), "4 min ago");
        assert_eq!(ago(at("2026-11-26T03:59:58Z"), now), "just now");
        assert_eq!(until(at("2026-11-26T06:00:00Z"), now), "in 2 h");
        assert_eq!(until(at("2026-11-26T03:00:00Z"), now), "ended");
        assert_eq!(clock(at("2026-11-26T03:12:00Z"), now, Tz::UTC), "03:12");
        assert_eq!(
            clock(at("2026-11-24T03:12:00Z"), now, Tz::UTC),
            "Nov 24 03:12"
        );
        let berlin = Tz::Europe__Berlin;
        assert_eq!(clock(at("2026-11-26T03:12:00Z"), now, berlin), "04:12");
        assert_eq!(
            exact(at("2026-11-26T03:12:04Z"), berlin),
            "2026-11-26 04:12:04 CET"
        );
        assert_eq!(
            exact(at("2026-11-26T03:12:04Z"), Tz::UTC),
            "2026-11-26 03:12:04 UTC"
        );
    }

    #[test]
    fn an_agent_report_reads_as_core_tells_it_in_the_dashboards_zone() {
        let raw = r#"{"since":"2026-11-26T03:12:00Z","failed_attempts":14,"failures":[
            {"kind":"connect","detail":"connection refused","first":"2026-11-26T03:58:00Z","last":"2026-11-26T04:02:00Z","count":2},
            {"kind":"dns","detail":"","first":"2026-11-26T03:12:00Z","last":"2026-11-26T03:55:00Z","count":12}]}"#;
        assert_eq!(
            report(raw, Tz::Europe__Berlin),
            "Could not reach the watcher from 04:12 to 05:02 CET: DNS lookups failed 12 times, \
             then the connection was refused twice."
        );
        assert_eq!(report(r#"{"note":"x"}"#, Tz::UTC), r#"{"note":"x"}"#);
        let long = "x".repeat(400);
        assert_eq!(report(&long, Tz::UTC).chars().count(), 301);
    }
}
