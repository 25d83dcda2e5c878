//! Nobody without a key can blind the watcher: over real HTTP on loopback,
//! requests without a valid key spend their own budget, never a host's
//! alarm text, never more than a few log lines, and never leak a key into
//! the log.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ADMIN, AGENT, Captured, Conn, Server};
use iamalive_core::{HostId, NoticeKind};
use tokio::sync::watch;

const FLOOD: usize = 20_000;
const FLOODERS: usize = 4;
const VALID: usize = 40;

/// One flooding task: `n` requests without a valid key over one keep-alive
/// connection, in turns: no key, a wrong key, a malformed header, a ping
/// URL with a wrong key. Returns (401s, 429s).
async fn flood(
    server: std::net::SocketAddr,
    n: usize,
    done: Arc<AtomicUsize>,
    tx: watch::Sender<usize>,
) -> (usize, usize) {
    let mut conn = Conn::open(server).await.unwrap();
    let (mut unauthorized, mut limited) = (0, 0);
    for i in 0..n {
        let a = match i % 4 {
            0 => conn.heartbeat(None, "web-01").await,
            1 => conn.heartbeat(Some("wrong-key-0123456789"), "web-01").await,
            2 => {
                conn.request(
                    "POST",
                    "/v1/heartbeat",
                    Some("x y z"),
                    r#"{"host":"web-01"}"#,
                )
                .await
            }
            _ => {
                conn.request("GET", "/ping/wrong-key-0123456789/web-01", None, "")
                    .await
            }
        };
        let a = match a {
            Ok(a) => a,
            // The server may close a connection after an answer it sent
            // without reading the body; open another.
            Err(_) => {
                conn = Conn::open(server).await.unwrap();
                continue;
            }
        };
        match a.status {
            401 => unauthorized += 1,
            429 => limited += 1,
            other => panic!("a request without a valid key got {other}: {}", a.body),
        }
        let total = done.fetch_add(1, Ordering::SeqCst) + 1;
        tx.send_replace(total);
    }
    (unauthorized, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_key_flood_never_costs_a_valid_heartbeat() {
    // A small authenticated budget, so a flood charged to it would empty it
    // many times over.
    let server = Server::start(&[
        ("IAMALIVE_RATE_LIMIT_GLOBAL", "300/1s"),
        ("IAMALIVE_RATE_LIMIT_UNAUTHENTICATED", "50/1s"),
    ])
    .await;
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = watch::channel(0usize);
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            tokio::spawn(flood(
                server.addr,
                FLOOD / FLOODERS,
                Arc::clone(&done),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    // The agent sends one heartbeat each time the flood has made another
    // 1/VALID of its way, so every heartbeat lands inside the flood.
    let mut agent = Conn::open(server.addr).await.unwrap();
    let mut answers = Vec::new();
    for i in 0..VALID {
        let want = i * (FLOOD / VALID) / 2;
        let _ = rx.wait_for(|n| *n >= want).await;
        let host = format!("web-{:02}", i % 4);
        answers.push(agent.heartbeat(Some(AGENT), &host).await.unwrap());
    }
    let (mut unauthorized, mut limited) = (0, 0);
    for f in flooders {
        let (u, l) = f.await.unwrap();
        unauthorized += u;
        limited += l;
    }
    let failed: Vec<_> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {VALID} valid heartbeats failed during the flood: {failed:?}",
        failed.len()
    );
    assert!(
        unauthorized + limited >= FLOOD * 9 / 10,
        "{unauthorized} + {limited}"
    );
    assert!(limited > 0, "the unauthenticated budget never ran out");
    assert!(unauthorized > 0);
    // Counted apart, never against a host.
    assert_eq!(server.state.rejections().tracked_hosts(), 0);
    assert!(server.state.rejections().unattributed() <= unauthorized as u64);
    server.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_key_never_reach_a_hosts_alarm() {
    let server = Server::start(&[("IAMALIVE_RATE_LIMIT_PER_KEY", "2/1h")]).await;
    let mut c = Conn::open(server.addr).await.unwrap();
    for host in ["web-01", "web-02"] {
        assert_eq!(c.heartbeat(Some(ADMIN), host).await.unwrap().status, 200);
    }
    // Strangers try to plant "the host may be alive" into web-01's alarm.
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(1));
        let mut c = Conn::open(server.addr).await.unwrap();
        assert_eq!(c.heartbeat(None, "web-01").await.unwrap().status, 401);
        let mut c = Conn::open(server.addr).await.unwrap();
        let a = c.heartbeat(Some("forged-key-0123456789"), "web-01").await;
        assert_eq!(a.unwrap().status, 401);
        let mut c = Conn::open(server.addr).await.unwrap();
        let a = c
            .request("POST", "/v1/heartbeat", Some("a b"), r#"{"host":"web-01"}"#)
            .await;
        assert_eq!(a.unwrap().status, 401);
        let mut c = Conn::open(server.addr).await.unwrap();
        let a = c
            .request("GET", "/ping/forged-key-0123456789/web-01", None, "")
            .await;
        assert_eq!(a.unwrap().status, 401);
    }
    // web-02's own agent is turned away by its key's rate limit: that is
    // the watcher going blind, and its alarm must say so.
    let mut c = Conn::open(server.addr).await.unwrap();
    let a = c.heartbeat(Some(AGENT), "web-02").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let a = c.heartbeat(Some(AGENT), "web-02").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let a = c.heartbeat(Some(AGENT), "web-02").await.unwrap();
    assert_eq!(a.status, 429, "{}", a.body);

    server.clock.advance(Duration::from_secs(30));
    let _ = server.state.monitor().sweep().await.unwrap();
    let alarms: Vec<_> = server
        .channel
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    let alarm = |h: &str| {
        alarms
            .iter()
            .find(|n| n.host == HostId::new(h).unwrap())
            .unwrap()
    };
    assert_eq!(
        alarm("web-01").blind,
        None,
        "a stranger wrote into web-01's alarm"
    );
    assert!(!alarm("web-01").body().contains("rejected"));
    let blind = alarm("web-02").blind.as_deref().unwrap_or_default();
    assert!(
        blind.contains("1 heartbeat for this host was rejected by the watcher at "),
        "{blind}"
    );
    assert!(blind.contains("rate limit of its key"), "{blind}");
    assert_eq!(server.state.rejections().tracked_hosts(), 1);
    assert_eq!(server.state.rejections().unattributed(), 12);
    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_no_key_flood_writes_a_bounded_log() {
    let log = Captured::default();
    let _guard = tracing::subscriber::set_default(log.subscriber(tracing::Level::INFO));
    let server = Server::start(&[("IAMALIVE_RATE_LIMIT_UNAUTHENTICATED", "100/1h")]).await;
    let tasks: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (tx, _rx) = watch::channel(0);
            tokio::spawn(flood(
                server.addr,
                FLOOD / FLOODERS,
                Arc::new(AtomicUsize::new(0)),
                tx,
            ))
        })
        .collect();
    let mut answered = 0;
    for t in tasks {
        let (u, l) = t.await.unwrap();
        answered += u + l;
    }
    assert!(answered >= FLOOD * 9 / 10, "{answered}");
    let lines = log.lines();
    // 3 lines per reason (4 reasons and the unauthenticated rate limit).
    assert!(
        lines.len() <= 15,
        "{} log lines for a flood of {FLOOD}:\n{}",
        lines.len(),
        lines[..lines.len().min(20)].join("\n")
    );
    // The window ends: the next rejection sums the flood up in one line.
    server.clock.advance(iamalive_server::LOG_WINDOW);
    let mut c = Conn::open(server.addr).await.unwrap();
    assert_eq!(c.heartbeat(None, "web-01").await.unwrap().status, 429);
    let summary = log
        .lines()
        .into_iter()
        .find(|l| l.contains("requests rejected in the last 10s"))
        .unwrap_or_else(|| panic!("no summary line:\n{}", log.text()));
    assert!(
        summary.contains(&format!("{answered} requests rejected")),
        "{summary}"
    );
    assert!(summary.contains("unauthenticated rate limit"), "{summary}");
    assert!(log.lines().len() <= 17, "{}", log.text());
    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn keys_in_odd_ping_paths_never_reach_the_debug_log() {
    let log = Captured::default();
    let _guard = tracing::subscriber::set_default(log.subscriber(tracing::Level::TRACE));
    let server = Server::start(&[]).await;
    let mut c = Conn::open(server.addr).await.unwrap();
    let paths = [
        format!("/ping/{AGENT}/web-01"),
        format!("//ping/{AGENT}/web-01"),
        format!("/Ping/{AGENT}/web-01"),
        format!("/PING/{AGENT}/web-01/fail"),
        format!("/ping%2F{AGENT}/web-01"),
        format!("/ping%2f{AGENT}%2fweb-01"),
        format!("/%70ing/{AGENT}/web-01"),
        format!("/ping//{AGENT}/web-01"),
        format!("/ping/{AGENT}"),
        format!("/x/ping/{AGENT}/web-01"),
    ];
    for p in &paths {
        let a = c.request("GET", p, None, "").await.unwrap();
        assert!(matches!(a.status, 200 | 401 | 404), "{p}: {a:?}");
    }
    let text = log.text();
    assert!(
        text.contains("<key>"),
        "the requests were not logged at all:\n{text}"
    );
    assert!(
        !text.contains("agent-key-0123456789"),
        "a key reached the log:\n{text}"
    );
    server.stop().await;
}
