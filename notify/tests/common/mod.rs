//! Shared helpers for the channel tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::{Duration, Instant};

use iamalive_core::{HostId, Notice, NoticeKind};

/// A notice as the monitor would make it.
pub fn notice(host: &str, kind: NoticeKind) -> Notice {
    let last_seen = "2024-05-01T12:00:00Z".parse().unwrap();
    let missing_since = "2024-05-01T12:10:00Z".parse().unwrap();
    let created_at = "2024-05-01T12:10:05Z".parse().unwrap();
    let outage_id = format!("{host}@1714565400000");
    let (id, recovered_at, next_reminder, count) = match kind {
        NoticeKind::Alarm => (
            format!("{outage_id}/alarm/1"),
            None,
            Some("2024-05-01T13:10:05Z".parse().unwrap()),
            1,
        ),
        NoticeKind::Reminder => (
            format!("{outage_id}/reminder/2"),
            None,
            Some("2024-05-01T14:10:05Z".parse().unwrap()),
            2,
        ),
        NoticeKind::Recovery => (
            format!("{outage_id}/recovery"),
            Some("2024-05-01T12:30:00Z".parse().unwrap()),
            None,
            2,
        ),
        other => (format!("{outage_id}/{other}/1"), None, None, 1),
    };
    Notice {
        last_seen,
        missing_since,
        recovered_at,
        silent_for: Duration::from_secs(if recovered_at.is_some() { 1800 } else { 605 }),
        alarm_count: count,
        next_reminder,
        message: Some("nightly build box".into()),
        report: (kind == NoticeKind::Recovery).then(|| {
            r#"{"since":"2024-05-01T12:01:00.000Z","failed_attempts":5,"failures":[{"kind":"dns","detail":"no such host","first":"2024-05-01T12:01:00.000Z","last":"2024-05-01T12:25:00.000Z","count":5}]}"#.to_owned()
        }),
        ..Notice::new(id, outage_id, kind, HostId::new(host).unwrap(), created_at)
    }
}

/// Waits (bounded) until `dir` holds at least `n` message files, and
/// returns them, headers unfolded.
pub fn wait_for_mail(dir: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let msgs = iamalive_testkit::read_messages(dir);
        if msgs.len() >= n || start.elapsed() > Duration::from_secs(15) {
            return msgs
                .into_iter()
                .map(|m| {
                    m.replace("\r\n", "\n")
                        .replace("\n ", " ")
                        .replace("\n\t", " ")
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
