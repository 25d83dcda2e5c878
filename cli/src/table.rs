//! Plain-text tables and times for people (the `--json` forms are for
//! scripts).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// "4m ago", "in 2h", or "-" for no time.
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let (d, past) = match (now - t).to_std() {
        Ok(d) => (d, true),
        Err(_) => ((t - now).to_std().unwrap_or_default(), false),
    };
    // Under a second either way (a clock a few milliseconds apart): now.
    if d < Duration::from_secs(1) {
        return "now".to_owned();
    }
    let d = short(d);
    if past {
        format!("{d} ago")
    } else {
        format!("in {d}")
    }
}

/// The largest one or two units of `d`: `45s`, `4m`, `2h 5m`, `3d 4h`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ if s % 86_400 / 3600 == 0 => format!("{}d", s / 86_400),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn parse(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An API time as `2026-11-26 19:00 UTC (in 2h)`, or `-`.
pub(crate) fn when(v: &Value, now: DateTime<Utc>) -> String {
    match parse(v) {
        Some(t) => format!("{} ({})", t.format("%Y-%m-%d %H:%M UTC"), relative(t, now)),
        None => "-".to_owned(),
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "alarmed" => 0,
        "missing" => 1,
        "up" => 2,
        _ => 3,
    }
}

/// A job's failure that no success has answered yet: `failed: disk
/// full`, `failed 3 times: disk full` (the reason cut to one short line).
fn failure(h: &Value) -> Option<String> {
    // A failure a later success answered waits only for its all-clear.
    if h["failing"] == false {
        return None;
    }
    let f = h["job"]["failure"].as_object()?;
    let mut s = match f.get("count").and_then(Value::as_u64) {
        Some(n) if n > 1 => format!("failed {n} times"),
        _ => "failed".to_owned(),
    };
    if let Some(r) = f.get("reason").and_then(Value::as_str) {
        let line = r.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = line.chars().take(60).collect();
        let more = if cut.len() < line.len() { "…" } else { "" };
        let _ = write!(s, ": {cut}{more}");
    }
    Some(s)
}

/// What holds a host's notices back, or what is owed.
fn note(h: &Value, now: DateTime<Utc>) -> String {
    let mut parts = Vec::new();
    if let Some(f) = failure(h) {
        parts.push(f);
    }
    if h["flapping"] == true {
        let flips = h["flips"].as_u64().unwrap_or(0);
        let window = h["flap_window_s"].as_u64().unwrap_or(3600);
        let window = humantime::format_duration(std::time::Duration::from_secs(window));
        parts.push(format!("flapping ({flips} in {window})"));
    }
    if h["missed_beat"] == true {
        let mut s = "missed a beat".to_owned();
        if let Some(t) = parse(&h["expected_by"]) {
            let _ = write!(s, " (expected {})", relative(t, now));
        }
        parts.push(s);
    }
    if h["status"] == "paused" {
        parts.push(match parse(&h["paused_until"]) {
            Some(t) => format!("paused, resumes {}", relative(t, now)),
            None => "paused until resumed".to_owned(),
        });
    }
    if let Some(t) = parse(&h["silenced_until"]) {
        let reason = h["silence"]["reason"].as_str().unwrap_or("");
        let mut s = format!("silenced, ends {}", relative(t, now));
        if !reason.is_empty() {
            let _ = write!(s, " ({reason})");
        }
        parts.push(s);
    }
    if let Some(kind) = h["owed_notice"]["kind"].as_str() {
        parts.push(format!("{kind} being delivered"));
    }
    parts.join("; ")
}

fn pad(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The hosts, problems first (alarmed, missing, up, paused), then by id.
pub(crate) fn hosts(list: &[Value], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no hosts yet\n".to_owned();
    }
    let mut sorted: Vec<&Value> = list.iter().collect();
    sorted.sort_by(|a, b| {
        let (sa, sb) = (
            a["status"].as_str().unwrap_or(""),
            b["status"].as_str().unwrap_or(""),
        );
        rank(sa)
            .cmp(&rank(sb))
            .then_with(|| a["host"].as_str().cmp(&b["host"].as_str()))
    });
    let mut rows = vec![vec![
        "HOST".to_owned(),
        "STATUS".to_owned(),
        "LAST SEEN".to_owned(),
        "NOTE".to_owned(),
    ]];
    for h in sorted {
        rows.push(vec![
            h["host"].as_str().unwrap_or("?").to_owned(),
            h["status"].as_str().unwrap_or("?").to_owned(),
            parse(&h["last_seen"]).map_or_else(|| "-".to_owned(), |t| relative(t, now)),
            note(h, now),
        ]);
    }
    pad(&rows)
}

/// One host, a line per fact.
pub(crate) fn host(h: &Value, now: DateTime<Utc>) -> String {
    let mut rows = vec![
        vec![
            "host:".to_owned(),
            h["host"].as_str().unwrap_or("?").to_owned(),
        ],
        vec![
            "status:".to_owned(),
            h["status"].as_str().unwrap_or("?").to_owned(),
        ],
        vec!["last seen:".to_owned(), when(&h["last_seen"], now)],
    ];
    if !h["missing_since"].is_null() {
        rows.push(vec![
            "missing since:".to_owned(),
            when(&h["missing_since"], now),
        ]);
        rows.push(vec![
            "alarms sent:".to_owned(),
            h["alarm_count"].to_string(),
        ]);
    }
    if let Some(m) = h["message"].as_str() {
        rows.push(vec!["message:".to_owned(), m.to_owned()]);
    }
    if let Some(p) = policy(&h["policy"]) {
        rows.push(vec!["policy:".to_owned(), p]);
    }
    if let Some(i) = h["interval"].as_f64() {
        let every =
            humantime::format_duration(std::time::Duration::from_millis((i * 1000.0) as u64));
        let from = h["interval_source"].as_str().unwrap_or("sent");
        rows.push(vec!["interval:".to_owned(), format!("{every} ({from})")]);
    }
    if !h["expected_by"].is_null() {
        rows.push(vec![
            "expected by:".to_owned(),
            when(&h["expected_by"], now),
        ]);
    }
    if !h["next_run"].is_null() {
        rows.push(vec!["next run:".to_owned(), when(&h["next_run"], now)]);
    }
    // Only an up host has a deadline ahead; a paused one has none, and a
    // missing one says since when in its status.
    if !h["deadline"].is_null() && h["status"].as_str() == Some("up") {
        rows.push(vec!["missing at:".to_owned(), when(&h["deadline"], now)]);
    }
    let n = note(h, now);
    if !n.is_empty() {
        rows.push(vec!["note:".to_owned(), n]);
    }
    pad(&rows)
}

/// `schedule 0 2 * * * in Europe/Berlin, grace 30m (set by API)` or
/// `timeout 10m (from config)`.
fn policy(p: &Value) -> Option<String> {
    let source = match p["source"].as_str()? {
        "api" => "set by API",
        _ => "from config",
    };
    Some(match p["schedule"].as_str() {
        Some(cron) => format!(
            "schedule {cron} in {}, grace {} ({source})",
            p["tz"].as_str().unwrap_or("UTC"),
            p["grace"].as_str().unwrap_or("?")
        ),
        None => format!(
            "timeout {} ({source})",
            p["timeout"].as_str().unwrap_or("?")
        ),
    })
}

/// The silences, earliest first (as the API lists them).
pub(crate) fn silences(list: &[Value], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no silences\n".to_owned();
    }
    let mut rows = vec![vec![
        "ID".to_owned(),
        "HOSTS".to_owned(),
        "ACTIVE".to_owned(),
        "STARTS".to_owned(),
        "ENDS".to_owned(),
        "REPEATS".to_owned(),
        "REASON".to_owned(),
    ]];
    for s in list {
        let (from, to) = match s["next_window"].as_object() {
            Some(w) => (&w["starts_at"], &w["ends_at"]),
            None => (&s["starts_at"], &s["ends_at"]),
        };
        // A repeating one's schedule, its zone and each window's length.
        let repeats = match s["repeat"].as_object() {
            Some(r) => format!(
                "{} {} for {}",
                r["cron"].as_str().unwrap_or("?"),
                r["tz"].as_str().unwrap_or("UTC"),
                r["duration"].as_str().unwrap_or("?")
            ),
            None => "-".to_owned(),
        };
        rows.push(vec![
            s["id"].as_str().unwrap_or("?").to_owned(),
            s["hosts"].as_str().unwrap_or("?").to_owned(),
            if s["active"] == true { "yes" } else { "no" }.to_owned(),
            when(from, now),
            when(to, now),
            repeats,
            s["reason"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    pad(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn silences_say_whether_they_repeat() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let once = json!({"id": "mw-1", "hosts": "db-*", "active": false,
                          "starts_at": "2026-11-26T19:00:00Z", "ends_at": "2026-11-26T20:00:00Z",
                          "reason": "patching"});
        let nightly = json!({"id": "backup", "hosts": "db-*", "active": false,
                             "starts_at": "2026-11-26T00:00:00Z", "ends_at": "2026-11-26T01:00:00Z",
                             "repeat": {"cron": "30 2 * * SUN", "tz": "Europe/Berlin", "duration": "1h"},
                             "next_window": {"starts_at": "2026-11-29T01:30:00Z", "ends_at": "2026-11-29T02:30:00Z"},
                             "reason": "backups"});
        let text = silences(&[once, nightly], now);
        assert!(text.contains("REPEATS"), "{text}");
        assert!(text.contains("30 2 * * SUN Europe/Berlin for 1h"), "{text}");
        let once_line = text.lines().find(|l| l.starts_with("mw-1")).unwrap();
        assert!(once_line.contains(" - "), "{once_line}");
    }

    #[test]
    fn an_instant_within_a_second_of_now_is_now() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let soon = now + chrono::Duration::milliseconds(300);
        assert_eq!(relative(soon, now), "now");
        assert_eq!(relative(now - chrono::Duration::seconds(90), now), "1m ago");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(240)), "4m");
        assert_eq!(short(Duration::from_secs(7200)), "2h");
        assert_eq!(short(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(short(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
    }

    #[test]
    fn problems_come_first() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = "2026-11-26T11:56:00Z";
        let list = [
            json!({"host": "a", "status": "up", "last_seen": t}),
            json!({"host": "b", "status": "alarmed", "last_seen": t}),
            json!({"host": "c", "status": "missing", "last_seen": t}),
        ];
        let text = hosts(&list, now);
        let order: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(order, ["b", "c", "a"]);
        assert!(text.lines().nth(1).unwrap().contains("4m ago"), "{text}");
    }

    #[test]
    fn a_failed_job_shows_its_failure_in_the_note() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let job = |count: u32| {
            json!({"host": "backup-db", "status": "alarmed", "last_seen": "2026-11-26T02:00:00Z",
                   "job": {"failure": {"first_at": "2026-11-26T02:01:00Z", "last_at": "2026-11-26T02:01:00Z",
                                       "count": count, "reason": "pg_dump: disk\nfull"}}})
        };
        let text = hosts(&[job(1)], now);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("failed: pg_dump: disk full"),
            "{text}"
        );
        let text = host(&job(3), now);
        assert!(text.contains("note:"), "{text}");
        assert!(
            text.contains("failed 3 times: pg_dump: disk full"),
            "{text}"
        );
        // A host that never failed has no such note.
        let ok = json!({"host": "web", "status": "up", "last_seen": "2026-11-26T11:59:00Z"});
        assert!(!hosts(&[ok], now).contains("failed"));
    }

    #[test]
    fn a_flapping_host_says_so_in_the_note() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = json!({"host": "web-3", "status": "up", "last_seen": "2026-11-26T11:59:00Z",
                       "flapping": true, "flips": 5, "flap_window_s": 3600});
        let text = hosts(&[h], now);
        assert!(
            text.lines().nth(1).unwrap().ends_with("flapping (5 in 1h)"),
            "{text}"
        );
        let calm = json!({"host": "web-4", "status": "up", "last_seen": "2026-11-26T11:59:00Z",
                          "flapping": false, "flips": 2, "flap_window_s": 3600});
        assert!(!hosts(&[calm], now).contains("flapping"));
    }

    #[test]
    fn a_host_that_missed_a_beat_says_so() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = json!({"host": "ber-1", "status": "up", "last_seen": "2026-11-26T11:58:00Z",
                       "interval": 60.0, "interval_source": "learned",
                       "expected_by": "2026-11-26T11:59:30Z", "missed_beat": true});
        let text = hosts(std::slice::from_ref(&h), now);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("missed a beat (expected 30s ago)"),
            "{text}"
        );
        let detail = host(&h, now);
        assert!(detail.contains("1m (learned)"), "{detail}");
        assert!(detail.contains("expected by:"), "{detail}");
        let on_time = json!({"host": "ber-2", "status": "up", "last_seen": "2026-11-26T11:59:50Z",
                             "interval": 60.0, "interval_source": "sent",
                             "expected_by": "2026-11-26T12:01:20Z", "missed_beat": false});
        assert!(!hosts(&[on_time], now).contains("missed"));
    }

    #[test]
    fn a_host_shows_its_policy_and_next_run() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = json!({"host": "backup-db", "status": "up", "last_seen": "2026-11-26T01:05:00Z",
                       "policy": {"schedule": "0 2 * * *", "tz": "Europe/Berlin", "grace": "30m", "source": "api"},
                       "next_run": "2026-11-27T01:00:00Z", "deadline": "2026-11-27T01:30:00Z"});
        let text = host(&h, now);
        assert!(
            text.contains(
                "policy:      schedule 0 2 * * * in Europe/Berlin, grace 30m (set by API)"
            ),
            "{text}"
        );
        assert!(
            text.contains("next run:    2026-11-27 01:00 UTC (in 13h)"),
            "{text}"
        );
        assert!(text.contains("missing at:  2026-11-27 01:30 UTC"), "{text}");
        // Paused: no deadline ahead to speak of.
        let mut paused = h.clone();
        paused["status"] = json!("paused");
        assert!(!host(&paused, now).contains("missing at"));
    }
}
