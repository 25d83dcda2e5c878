//! The agent's record of what failed while it could not get through: a
//! pure, bounded data structure and the pure classification of errors.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// At most this many distinct failures are kept; when a new one comes, the
/// one seen least recently makes room.
pub const MAX_FAILURES: usize = 8;
/// Failure details are cut to this many bytes.
pub const MAX_DETAIL: usize = 200;

/// What kind of failure kept a heartbeat from getting through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The endpoint's name did not resolve (broken DNS, a captive firewall).
    Dns,
    /// No TCP connection (refused, unreachable, reset).
    Connect,
    /// The TLS handshake failed (certificate, interception proxy).
    Tls,
    /// No answer in time.
    Timeout,
    /// The endpoint answered with a non-success HTTP status.
    Http,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// `dns`, `connect`, `tls`, `timeout`, `http` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Http => "http",
            FailureKind::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of one failed request, independent of the HTTP client:
/// the input of [`classify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFacts {
    /// The client reported a timeout.
    pub timeout: bool,
    /// The client reported a failure while connecting.
    pub connect: bool,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The error's messages, outermost first (its `source()` chain).
    pub chain: Vec<String>,
}

impl ErrorFacts {
    /// The facts of a `reqwest` error.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let mut chain = vec![e.to_string()];
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push(s.to_string());
            src = s.source();
        }
        ErrorFacts {
            timeout: e.is_timeout(),
            connect: e.is_connect(),
            status: e.status().map(|s| s.as_u16()),
            chain,
        }
    }

    /// The facts of an HTTP answer that was not a success.
    pub fn from_status(status: u16) -> Self {
        ErrorFacts {
            status: Some(status),
            ..Default::default()
        }
    }
}

fn contains_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// Classifies a failed request: its kind and a short detail.
///
/// The order matters: an HTTP status wins, then name resolution (a DNS
/// failure is reported by clients as a connect error), then TLS (also
/// surfaced while connecting), then timeouts, then other connect errors.
pub fn classify(f: &ErrorFacts) -> (FailureKind, String) {
    if let Some(s) = f.status {
        return (FailureKind::Http, format!("HTTP {s}"));
    }
    let all = f.chain.join(": ").to_ascii_lowercase();
    // The innermost message is the most specific ("Connection refused (os error 111)").
    let inner = f.chain.last().cloned().unwrap_or_default();
    let kind = if contains_any(
        &all,
        &[
            "dns error",
            "failed to lookup address",
            "name or service not known",
            "no address associated",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no record found",
        ],
    ) {
        FailureKind::Dns
    } else if contains_any(
        &all,
        &[
            "certificate",
            "tls",
            "ssl",
            "handshake",
            "unknownissuer",
            "invalid peer",
            "corrupt message",
            "invalidcontenttype",
        ],
    ) {
        FailureKind::Tls
    } else if f.timeout || contains_any(&all, &["timed out", "timeout"]) {
        FailureKind::Timeout
    } else if f.connect
        || contains_any(
            &all,
            &[
                "connection refused",
                "connection reset",
                "network is unreachable",
                "no route to host",
                "broken pipe",
            ],
        )
    {
        FailureKind::Connect
    } else {
        FailureKind::Other
    };
    let detail = if kind == FailureKind::Timeout && inner.is_empty() {
        "timed out".to_owned()
    } else {
        inner
    };
    (kind, cut(&detail))
}

fn cut(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_DETAIL {
        return s.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One distinct failure, with when it was first and last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureEntry {
    /// Its kind.
    pub kind: FailureKind,
    /// A short description (`Connection refused (os error 111)`, `HTTP 503`).
    pub detail: String,
    /// The first time it happened.
    pub first: DateTime<Utc>,
    /// The last time it happened.
    pub last: DateTime<Utc>,
    /// How often.
    pub count: u64,
}

/// A short, bounded record of the failures since the last heartbeat that
/// got through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureLog {
    since: Option<DateTime<Utc>>,
    attempts: u64,
    entries: Vec<FailureEntry>,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl FailureLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing failed since the last success.
    pub fn is_empty(&self) -> bool {
        self.attempts == 0
    }

    /// Failed attempts since the last success.
    pub fn failed_attempts(&self) -> u64 {
        self.attempts
    }

    /// The distinct failures kept, oldest first.
    pub fn entries(&self) -> &[FailureEntry] {
        &self.entries
    }

    /// Notes one failed attempt at `at`.
    pub fn record(&mut self, kind: FailureKind, detail: &str, at: DateTime<Utc>) {
        let detail = cut(detail);
        self.attempts += 1;
        self.since = Some(self.since.map_or(at, |s| s.min(at)));
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.kind == kind && e.detail == detail)
        {
            e.count += 1;
            e.last = e.last.max(at);
            return;
        }
        if self.entries.len() >= MAX_FAILURES
            && let Some(i) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last)
                .map(|(i, _)| i)
        {
            self.entries.remove(i);
        }
        self.entries.push(FailureEntry {
            kind,
            detail,
            first: at,
            last: at,
            count: 1,
        });
    }

    /// The report sent with the next heartbeat, or `None` when nothing
    /// failed: `{"since", "failed_attempts", "failures": [{"kind",
    /// "detail", "first", "last", "count"}]}`.
    pub fn report(&self) -> Option<Value> {
        let since = self.since?;
        Some(json!({
            "since": rfc3339(&since),
            "failed_attempts": self.attempts,
            "failures": self.entries.iter().map(|e| json!({
                "kind": e.kind.as_str(),
                "detail": e.detail,
                "first": rfc3339(&e.first),
                "last": rfc3339(&e.last),
                "count": e.count,
            })).collect::<Vec<_>>(),
        }))
    }

    /// Forgets everything (after a heartbeat carried the report through).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Rebuilds a log from its [`report`](Self::report) (as saved in a
    /// state file); `None` if `v` is not such a report.
    pub fn from_report(v: &Value) -> Option<FailureLog> {
        let time = |v: &Value| -> Option<DateTime<Utc>> {
            Some(
                DateTime::parse_from_rfc3339(v.as_str()?)
                    .ok()?
                    .with_timezone(&Utc),
            )
        };
        let kind = |s: &str| {
            Some(match s {
                "dns" => FailureKind::Dns,
                "connect" => FailureKind::Connect,
                "tls" => FailureKind::Tls,
                "timeout" => FailureKind::Timeout,
                "http" => FailureKind::Http,
                "other" => FailureKind::Other,
                _ => return None,
            })
        };
        let mut entries = Vec::new();
        for f in v.get("failures")?.as_array()? {
            entries.push(FailureEntry {
                kind: kind(f.get("kind")?.as_str()?)?,
                detail: cut(f.get("detail")?.as_str()?),
                first: time(f.get("first")?)?,
                last: time(f.get("last")?)?,
                count: f.get("count")?.as_u64()?,
            });
        }
        entries.truncate(MAX_FAILURES);
        Some(FailureLog {
            since: Some(time(v.get("since")?)?),
            attempts: v.get("failed_attempts")?.as_u64()?,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(chain: &[&str], connect: bool, timeout: bool) -> ErrorFacts {
        ErrorFacts {
            timeout,
            connect,
            status: None,
            chain: chain.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn classification() {
        let refused = facts(
            &[
                "error sending request for url (http://127.0.0.1:9/v1/heartbeat)",
                "client error (Connect)",
                "tcp connect error",
                "Connection refused (os error 111)",
            ],
            true,
            false,
        );
        assert_eq!(
            classify(&refused),
            (
                FailureKind::Connect,
                "Connection refused (os error 111)".into()
            )
        );
        let dns = facts(
            &[
                "error sending request",
                "client error (Connect)",
                "dns error",
                "failed to lookup address information: Name or service not known",
            ],
            true,
            false,
        );
        assert_eq!(classify(&dns).0, FailureKind::Dns);
        let tls = facts(
            &[
                "error sending request",
                "client error (Connect)",
                "invalid peer certificate: UnknownIssuer",
            ],
            true,
            false,
        );
        assert_eq!(classify(&tls).0, FailureKind::Tls);
        let slow = facts(
            &["error sending request", "operation timed out"],
            false,
            true,
        );
        assert_eq!(classify(&slow).0, FailureKind::Timeout);
        let connect_timeout = facts(
            &["error sending request", "client error (Connect)", "timeout"],
            true,
            true,
        );
        assert_eq!(classify(&connect_timeout).0, FailureKind::Timeout);
        assert_eq!(
            classify(&ErrorFacts::from_status(503)),
            (FailureKind::Http, "HTTP 503".into())
        );
        assert_eq!(
            classify(&facts(&["weird"], false, false)).0,
            FailureKind::Other
        );
        assert_eq!(
            classify(&facts(&[], false, true)),
            (FailureKind::Timeout, "timed out".into())
        );
    }

    #[test]
    fn log_merges_bounds_and_clears() {
        let t0: DateTime<Utc> = "2024-05-01T12:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + chrono::TimeDelta::seconds(s);
        let mut log = FailureLog::new();
        assert!(log.report().is_none());
        log.record(FailureKind::Dns, "no such host", at(0));
        log.record(FailureKind::Dns, "no such host", at(60));
        log.record(FailureKind::Http, "HTTP 503", at(120));
        let r = log.report().unwrap();
        assert_eq!(r["since"], "2024-05-01T12:00:00.000Z");
        assert_eq!(r["failed_attempts"], 3);
        assert_eq!(r["failures"][0]["kind"], "dns");
        assert_eq!(r["failures"][0]["count"], 2);
        assert_eq!(r["failures"][0]["first"], "2024-05-01T12:00:00.000Z");
        assert_eq!(r["failures"][0]["last"], "2024-05-01T12:01:00.000Z");
        assert_eq!(r["failures"][1]["detail"], "HTTP 503");

        for i in 0..20 {
            log.record(FailureKind::Other, &format!("e{i}"), at(200 + i));
        }
        assert_eq!(log.entries().len(), MAX_FAILURES);
        assert_eq!(log.failed_attempts(), 23);
        // The least recently seen made room; `since` still names the start.
        assert_eq!(log.entries().last().unwrap().detail, "e19");
        assert_eq!(log.report().unwrap()["since"], "2024-05-01T12:00:00.000Z");

        log.record(FailureKind::Other, &"x".repeat(1000), at(300));
        assert!(log.entries().iter().all(|e| e.detail.len() <= MAX_DETAIL));

        let back = FailureLog::from_report(&log.report().unwrap()).unwrap();
        assert_eq!(back.report(), log.report());
        assert!(FailureLog::from_report(&json!({"since": "yesterday"})).is_none());

        log.clear();
        assert!(log.is_empty() && log.report().is_none());
    }
}
