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
    /// The configured HTTP proxy could not be reached, or it answered
    /// itself instead of relaying the watcher's answer (its error page,
    /// a 407, a refused tunnel); the detail names the proxy.
    Proxy,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// `dns`, `connect`, `tls`, `timeout`, `http`, `proxy` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Http => "http",
            FailureKind::Proxy => "proxy",
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
    /// The proxy the request went through (shown without credentials),
    /// `None` for a direct connection.
    pub proxy: Option<String>,
    /// The request went through a `CONNECT` tunnel (an `https://` watcher
    /// behind a proxy): an HTTP status then came from the watcher itself.
    pub tunneled: bool,
    /// Response headers that tell who answered (lower-case names): `server`,
    /// `via`, `proxy-status`, `x-squid-error`, `proxy-authenticate`.
    pub headers: Vec<(String, String)>,
    /// The `<title>` of an HTML error page, if one came.
    pub title: Option<String>,
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
            ..Default::default()
        }
    }

    /// The facts of an HTTP answer that was not a success.
    pub fn from_status(status: u16) -> Self {
        ErrorFacts {
            status: Some(status),
            ..Default::default()
        }
    }

    /// These facts for a request that went through `proxy` (shown as
    /// given: redact it first), through a `CONNECT` tunnel if `tunneled`.
    pub fn via_proxy(self, proxy: &str, tunneled: bool) -> Self {
        ErrorFacts {
            proxy: Some(proxy.to_owned()),
            tunneled,
            ..self
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The response headers [`classify`] looks at to tell a proxy's own answer
/// from a relayed one.
pub const TELLING_HEADERS: [&str; 5] = [
    "server",
    "via",
    "proxy-status",
    "x-squid-error",
    "proxy-authenticate",
];

/// Forward proxies whose `Server` header marks an answer as their own: a
/// relayed answer keeps the watcher's `Server` header.
const PROXY_SERVERS: [&str; 4] = ["tinyproxy", "squid", "privoxy", "ziproxy"];

/// The `<title>` of an HTML page, whitespace collapsed, at most 80 bytes.
pub fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let t = body[open_end..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let t = cut_to(&t, 80);
    (!t.is_empty()).then_some(t)
}

/// Why an HTTP answer is the proxy's own rather than the watcher's, or
/// `None` if it is (as far as can be told) the watcher's.
fn proxy_evidence(f: &ErrorFacts, status: u16) -> Option<String> {
    if status == 407 {
        return Some("proxy authentication required".into());
    }
    if f.tunneled {
        // Inside a TLS tunnel the proxy cannot answer for the watcher.
        return None;
    }
    for h in ["x-squid-error", "proxy-status"] {
        if let Some(v) = f.header(h) {
            return Some(format!("{h}: {v}"));
        }
    }
    if let Some(v) = f.header("server")
        && PROXY_SERVERS
            .iter()
            .any(|p| v.to_ascii_lowercase().contains(p))
    {
        return Some(format!("server: {v}"));
    }
    // A proxy adds `Via` to every answer it relays (RFC 9110, 7.6.3); a
    // gateway error without one is the proxy's own.
    if matches!(status, 502..=504) && f.header("via").is_none() {
        return Some("no via header".into());
    }
    None
}

/// A failure to be blamed on the proxy, if one was in use.
fn classify_proxy(f: &ErrorFacts, proxy: &str) -> Option<(FailureKind, String)> {
    if let Some(s) = f.status {
        let why = proxy_evidence(f, s)?;
        let title = f
            .title
            .as_deref()
            .map(|t| format!(" \"{t}\""))
            .unwrap_or_default();
        return Some((
            FailureKind::Proxy,
            cut(&format!("proxy {proxy} answered HTTP {s}{title} ({why})")),
        ));
    }
    let all = f.chain.join(": ").to_ascii_lowercase();
    // hyper's CONNECT errors: "tunnel error: unsuccessful", "… proxy
    // authorization required", "… unexpected end of file"; failing to
    // reach the proxy at all is "… failed to create underlying connection".
    if let Some(i) = all.find("tunnel error: ")
        && !all.contains("failed to create underlying connection")
    {
        let what = all[i + "tunnel error: ".len()..]
            .split(':')
            .next()
            .unwrap_or_default()
            .trim();
        let what = if what == "unsuccessful" {
            "a non-200 answer"
        } else {
            what
        };
        return Some((
            FailureKind::Proxy,
            cut(&format!(
                "proxy {proxy} refused the tunnel (CONNECT): {what}"
            )),
        ));
    }
    // Every connection goes to the proxy: failing to resolve or reach a
    // host is failing to reach the proxy.
    let (kind, detail) = classify_direct(f);
    match kind {
        FailureKind::Dns | FailureKind::Connect => Some((
            FailureKind::Proxy,
            cut(&format!("proxy {proxy} unreachable: {detail}")),
        )),
        FailureKind::Timeout if f.connect => Some((
            FailureKind::Proxy,
            cut(&format!("proxy {proxy} unreachable: connect timed out")),
        )),
        _ => None,
    }
}

fn contains_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// Classifies a failed request: its kind and a short detail.
///
/// Through a proxy, the proxy is blamed (kind `proxy`, the detail naming it
/// and what it answered) when it could not be reached or resolved, when it
/// refused the `CONNECT` tunnel, and when an HTTP answer is its own rather
/// than the watcher's: any 407; an answer with `X-Squid-Error` or
/// `Proxy-Status`, or whose `Server` names a known forward proxy
/// (tinyproxy, Squid, Privoxy); a 502, 503 or 504 without the `Via` header
/// a proxy adds to what it relays. Inside a tunnel other statuses are the
/// watcher's.
///
/// Otherwise the order matters: an HTTP status wins, then name resolution
/// (a DNS failure is reported by clients as a connect error), then TLS
/// (also surfaced while connecting), then timeouts, then other connect
/// errors.
pub fn classify(f: &ErrorFacts) -> (FailureKind, String) {
    if let Some(proxy) = &f.proxy
        && let Some(found) = classify_proxy(f, proxy)
    {
        return found;
    }
    classify_direct(f)
}

fn classify_direct(f: &ErrorFacts) -> (FailureKind, String) {
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
    cut_to(s, MAX_DETAIL)
}

fn cut_to(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
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
                "proxy" => FailureKind::Proxy,
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
            chain: chain.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
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

    fn answer(status: u16, headers: &[(&str, &str)]) -> ErrorFacts {
        ErrorFacts {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..ErrorFacts::from_status(status)
        }
    }

    const P: &str = "http://127.0.0.1:3128";

    #[test]
    fn proxy_classification() {
        // Not reaching the proxy names the proxy, not the watcher.
        let refused = facts(
            &[
                "error sending request for url (http://watch.example/v1/heartbeat)",
                "client error (Connect)",
                "tcp connect error",
                "Connection refused (os error 111)",
            ],
            true,
            false,
        );
        assert_eq!(
            classify(&refused.clone().via_proxy(P, false)),
            (
                FailureKind::Proxy,
                "proxy http://127.0.0.1:3128 unreachable: Connection refused (os error 111)".into()
            )
        );
        assert_eq!(
            classify(&refused).0,
            FailureKind::Connect,
            "direct: unchanged"
        );
        let tunnel_refused = facts(
            &[
                "error sending request",
                "client error (Connect)",
                "tunnel error: failed to create underlying connection",
                "tcp connect error",
                "Connection refused (os error 111)",
            ],
            true,
            false,
        )
        .via_proxy(P, true);
        let (kind, detail) = classify(&tunnel_refused);
        assert_eq!(kind, FailureKind::Proxy);
        assert!(
            detail.contains("unreachable") && detail.contains("refused"),
            "{detail}"
        );
        let dns = facts(
            &[
                "error sending request",
                "dns error",
                "failed to lookup address information",
            ],
            true,
            false,
        )
        .via_proxy("http://proxy.corp:3128", false);
        let (kind, detail) = classify(&dns);
        assert_eq!(kind, FailureKind::Proxy);
        assert!(
            detail.starts_with("proxy http://proxy.corp:3128 unreachable"),
            "{detail}"
        );
        let connect_timeout =
            facts(&["error sending request", "timeout"], true, true).via_proxy(P, false);
        assert_eq!(classify(&connect_timeout).0, FailureKind::Proxy);
        // A slow answer after connecting may be the watcher's: a timeout.
        let slow = facts(
            &["error sending request", "operation timed out"],
            false,
            true,
        )
        .via_proxy(P, false);
        assert_eq!(classify(&slow).0, FailureKind::Timeout);
        // A TLS failure is end to end through the tunnel.
        let tls = facts(
            &[
                "error sending request",
                "invalid peer certificate: UnknownIssuer",
            ],
            true,
            false,
        )
        .via_proxy(P, true);
        assert_eq!(classify(&tls).0, FailureKind::Tls);

        // The proxy refused the CONNECT tunnel.
        for (msg, what) in [
            ("tunnel error: unsuccessful", "a non-200 answer"),
            (
                "tunnel error: proxy authorization required",
                "proxy authorization required",
            ),
        ] {
            let f = facts(
                &["error sending request", "client error (Connect)", msg],
                true,
                false,
            )
            .via_proxy(P, true);
            assert_eq!(
                classify(&f),
                (
                    FailureKind::Proxy,
                    format!("proxy http://127.0.0.1:3128 refused the tunnel (CONNECT): {what}")
                )
            );
        }

        // tinyproxy's own error page.
        let page = ErrorFacts {
            title: Some("500 Unable to connect".into()),
            ..answer(500, &[("server", "tinyproxy/1.11.1")])
        }
        .via_proxy(P, false);
        assert_eq!(
            classify(&page),
            (
                FailureKind::Proxy,
                "proxy http://127.0.0.1:3128 answered HTTP 500 \"500 Unable to connect\" (server: tinyproxy/1.11.1)".into()
            )
        );
        let squid = answer(
            503,
            &[
                ("via", "1.1 p (squid/5.7)"),
                ("x-squid-error", "ERR_CONNECT_FAIL 111"),
            ],
        )
        .via_proxy(P, false);
        let (kind, detail) = classify(&squid);
        assert_eq!(kind, FailureKind::Proxy);
        assert!(
            detail.contains("x-squid-error: ERR_CONNECT_FAIL 111"),
            "{detail}"
        );
        assert_eq!(
            classify(&answer(407, &[]).via_proxy(P, false)).0,
            FailureKind::Proxy
        );
        assert_eq!(
            classify(&answer(502, &[]).via_proxy(P, false)).0,
            FailureKind::Proxy
        );
        assert_eq!(
            classify(
                &answer(504, &[("proxy-status", "p; error=connection_timeout")])
                    .via_proxy(P, false)
            )
            .0,
            FailureKind::Proxy
        );

        // The watcher's own answers, relayed: still `http`.
        for f in [
            answer(503, &[("via", "1.1 tinyproxy (tinyproxy/1.11.1)")]),
            answer(500, &[("server", "nginx")]),
            answer(401, &[]),
            answer(502, &[("server", "tinyproxy/1.11.1")]).via_proxy(P, true),
        ] {
            let f = if f.proxy.is_some() {
                f
            } else {
                f.via_proxy(P, false)
            };
            assert_eq!(
                classify(&f),
                (FailureKind::Http, format!("HTTP {}", f.status.unwrap()))
            );
        }
        // Without a proxy nothing is blamed on one.
        assert_eq!(
            classify(&answer(502, &[("server", "tinyproxy")])).0,
            FailureKind::Http
        );
    }

    #[test]
    fn titles() {
        assert_eq!(
            html_title("<html><head><TITLE>\n 500  Unable to connect\n</title>").as_deref(),
            Some("500 Unable to connect")
        );
        assert_eq!(html_title("<title></title>"), None);
        assert_eq!(html_title("no html"), None);
        assert_eq!(html_title("<title>never closed"), None);
        assert!(
            html_title(&format!("<title>{}</title>", "é".repeat(100)))
                .unwrap()
                .len()
                <= 80
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

        log.record(
            FailureKind::Proxy,
            "proxy http://p:3128 unreachable",
            at(310),
        );
        let back = FailureLog::from_report(&log.report().unwrap()).unwrap();
        assert_eq!(back.report(), log.report());
        assert!(FailureLog::from_report(&json!({"since": "yesterday"})).is_none());

        log.clear();
        assert!(log.is_empty() && log.report().is_none());
    }
}
