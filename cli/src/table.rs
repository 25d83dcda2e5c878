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

/// What holds a host's notices back, or what is owed.
fn note(h: &Value, now: DateTime<Utc>) -> String {
    let mut parts = Vec::new();
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
    let n = note(h, now);
    if !n.is_empty() {
        rows.push(vec!["note:".to_owned(), n]);
    }
    pad(&rows)
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
        "REASON".to_owned(),
    ]];
    for s in list {
        let (from, to) = match s["next_window"].as_object() {
            Some(w) => (&w["starts_at"], &w["ends_at"]),
            None => (&s["starts_at"], &s["ends_at"]),
        };
        rows.push(vec![
            s["id"].as_str().unwrap_or("?").to_owned(),
            s["hosts"].as_str().unwrap_or("?").to_owned(),
            if s["active"] == true { "yes" } else { "no" }.to_owned(),
            when(from, now),
            when(to, now),
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
}
