//! Times and agent reports as people read them: "4 min ago", "2 h 5 min",
//! "could not reach the watcher from 03:12 to 04:02 UTC: …".

use std::time::Duration;

use chrono_tz::Tz;
use iamalive_core::Timestamp;
use serde_json::Value;

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

/// What went wrong, as a phrase about `count` attempts of `kind`.
fn failure_phrase(kind: &str, count: u64) -> String {
    let times = match count {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    match kind {
        "dns" => format!("DNS lookups failed {times}"),
        "connect" => format!("the connection failed {times}"),
        "tls" => format!("the TLS handshake failed {times}"),
        "timeout" => format!("requests timed out {times}"),
        "http" => format!("the watcher's address answered with an error {times}"),
        "proxy" => format!("the proxy failed {times}"),
        other => format!("{other} failures {times}"),
    }
}

fn time_of(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The agent's outage report (`{"since", "failed_attempts", "failures":
/// [{"kind", "detail", "first", "last", "count"}]}`) in words, and the
/// stretch of time it covers (first to last failure). Anything else the
/// agent sent is shown as it came, cut to a readable length.
pub(crate) fn report(
    raw: &str,
    now: Timestamp,
    tz: Tz,
) -> (String, Option<(Timestamp, Timestamp)>) {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return (cut(raw), None);
    };
    let Some(failures) = v.get("failures").and_then(Value::as_array) else {
        return (cut(raw), None);
    };
    let mut entries: Vec<(Timestamp, Timestamp, String, u64, String)> = failures
        .iter()
        .filter_map(|f| {
            Some((
                time_of(f.get("first"))?,
                time_of(f.get("last"))?,
                f.get("kind")?.as_str()?.to_owned(),
                f.get("count").and_then(Value::as_u64).unwrap_or(1),
                f.get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ))
        })
        .collect();
    entries.sort_by_key(|e| e.0);
    let from = time_of(v.get("since")).or_else(|| entries.first().map(|e| e.0));
    let to = entries.iter().map(|e| e.1).max();
    let mut out = match (from, to) {
        (Some(f), Some(t)) => format!(
            "could not reach the watcher from {} to {}",
            clock(f, now, tz),
            clock(t, now, tz)
        ),
        (Some(f), None) => format!("could not reach the watcher from {}", clock(f, now, tz)),
        _ => "could not reach the watcher".to_owned(),
    };
    let phrases: Vec<String> = entries
        .iter()
        .map(|(_, _, kind, count, detail)| {
            let p = failure_phrase(kind, *count);
            if detail.is_empty() {
                p
            } else {
                format!("{p} ({})", cut_to(detail, 80))
            }
        })
        .collect();
    if !phrases.is_empty() {
        out.push_str(": ");
        out.push_str(&join_then(&phrases));
    }
    out.push('.');
    (out, from.zip(to))
}

/// `a`, `a, then b`, `a, then b, then c`.
fn join_then(p: &[String]) -> String {
    p.join(", then ")
}

fn cut(s: &str) -> String {
    cut_to(s, 300)
}

fn cut_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
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
    fn an_agent_report_reads_as_a_sentence() {
        let raw = r#"{"since":"2026-11-26T03:12:00Z","failed_attempts":14,"failures":[
            {"kind":"connect","detail":"connection refused","first":"2026-11-26T03:58:00Z","last":"2026-11-26T04:02:00Z","count":2},
            {"kind":"dns","detail":"","first":"2026-11-26T03:12:00Z","last":"2026-11-26T03:55:00Z","count":12}]}"#;
        let (text, stretch) = report(raw, at("2026-11-26T05:00:00Z"), Tz::UTC);
        assert_eq!(
            text,
            "could not reach the watcher from 03:12 to 04:02: DNS lookups failed 12 times, \
             then the connection failed twice (connection refused)."
        );
        assert_eq!(
            stretch,
            Some((at("2026-11-26T03:12:00Z"), at("2026-11-26T04:02:00Z")))
        );
        let (text, stretch) = report(r#"{"note":"x"}"#, at("2026-11-26T05:00:00Z"), Tz::UTC);
        assert_eq!(text, r#"{"note":"x"}"#);
        assert!(stretch.is_none());
    }
}
