//! Connections cannot be hoarded: slow request heads and idle keep-alive
//! connections are closed, and connections past the per-address or total
//! cap are closed at once while agents still get in. Real sockets on
//! loopback; 127.0.0.x addresses stand for other clients (Linux).

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{AGENT, Conn, Server};
use iamalive_core::MemoryStore;
use iamalive_core::testing::StallingStore;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off_at_the_header_timeout() {
    let server = Server::start(&[
        ("IAMALIVE_HEADER_TIMEOUT", "300ms"),
        ("IAMALIVE_IDLE_TIMEOUT", "1h"),
    ])
    .await;
    let mut c = Conn::open(server.addr).await.unwrap();
    let started = Instant::now();
    c.stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // One byte of a header line every 100 ms, for at most 5 s: the client
    // never stops sending, but never finishes the head either.
    let mut closed = false;
    for _ in 0..50 {
        if c.stream.write_all(b"X").await.is_err()
            || c.closed_within(Duration::from_millis(100)).await
        {
            closed = true;
            break;
        }
    }
    let after = started.elapsed();
    assert!(
        closed,
        "a connection sending its head one byte at a time was never closed"
    );
    assert!(
        after >= Duration::from_millis(300),
        "closed too early: {after:?}"
    );
    assert!(after < Duration::from_secs(3), "closed late: {after:?}");
    // A silent connection is cut off the same way.
    let mut silent = Conn::open(server.addr).await.unwrap();
    assert!(silent.closed_within(Duration::from_secs(5)).await);
    // The service goes on.
    let mut agent = Conn::open(server.addr).await.unwrap();
    assert_eq!(
        agent.heartbeat(Some(AGENT), "web-01").await.unwrap().status,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_not_a_busy_one() {
    let store = Arc::new(StallingStore::new(MemoryStore::new()));
    let server = Server::start_with(
        &[
            ("IAMALIVE_IDLE_TIMEOUT", "300ms"),
            ("IAMALIVE_HEADER_TIMEOUT", "1h"),
            ("IAMALIVE_REQUEST_TIMEOUT", "1500ms"),
        ],
        store.clone(),
    )
    .await;
    let mut c = Conn::open(server.addr).await.unwrap();
    assert_eq!(
        c.heartbeat(Some(AGENT), "web-01").await.unwrap().status,
        200
    );
    let idle_since = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "an idle keep-alive connection was never closed"
    );
    let after = idle_since.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed too early: {after:?}"
    );

    // A request that takes longer than the idle timeout (the store hangs
    // until the request timeout) still gets its answer.
    store.set_stalled(true);
    let mut c = Conn::open(server.addr).await.unwrap();
    let a = c.heartbeat(Some(AGENT), "web-01").await.unwrap();
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("request took longer"), "{}", a.body);
    store.set_stalled(false);
    server.stop().await;
}

#[tokio::test]
async fn past_the_per_address_cap_connections_are_closed_at_once_and_agents_get_in() {
    let server = Server::start(&[
        ("IAMALIVE_MAX_CONNECTIONS_PER_IP", "8"),
        ("IAMALIVE_MAX_CONNECTIONS", "100"),
        ("IAMALIVE_HEADER_TIMEOUT", "1h"),
        ("IAMALIVE_IDLE_TIMEOUT", "1h"),
    ])
    .await;
    let hoarder = ip("127.0.0.2");
    // Eight connections from one address are served and held open...
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut c = Conn::open_from(hoarder, server.addr).await.unwrap();
        assert_eq!(
            c.request("GET", "/healthz", None, "").await.unwrap().status,
            200
        );
        held.push(c);
    }
    // ...the next ones from it are closed at once, without an answer.
    for i in 0..12 {
        let mut c = Conn::open_from(hoarder, server.addr).await.unwrap();
        assert!(
            c.closed_within(Duration::from_secs(2)).await,
            "connection {} from one address was kept",
            9 + i
        );
    }
    // An agent at another address gets in.
    let mut agent = Conn::open(server.addr).await.unwrap();
    assert_eq!(
        agent.heartbeat(Some(AGENT), "web-01").await.unwrap().status,
        200
    );
    // The held ones still work, and a closed one frees its place.
    assert_eq!(
        held[0]
            .request("GET", "/healthz", None, "")
            .await
            .unwrap()
            .status,
        200
    );
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..50 {
        let mut c = Conn::open_from(hoarder, server.addr).await.unwrap();
        if let Ok(a) = c.request("GET", "/healthz", None, "").await {
            assert_eq!(a.status, 200);
            admitted = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(admitted, "a closed connection never freed its place");
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn past_the_total_cap_the_oldest_idle_connection_makes_room_for_an_agent() {
    let server = Server::start(&[
        ("IAMALIVE_MAX_CONNECTIONS_PER_IP", "4"),
        ("IAMALIVE_MAX_CONNECTIONS", "8"),
        ("IAMALIVE_HEADER_TIMEOUT", "1h"),
        ("IAMALIVE_IDLE_TIMEOUT", "1h"),
    ])
    .await;
    // Every place is taken by connections that sit idle.
    let mut held = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..4 {
            let mut c = Conn::open_from(ip(from), server.addr).await.unwrap();
            assert_eq!(
                c.request("GET", "/healthz", None, "").await.unwrap().status,
                200
            );
            held.push(c);
        }
    }
    // An agent still gets in: the oldest idle connection is closed for it.
    let mut agent = Conn::open_from(ip("127.0.0.4"), server.addr).await.unwrap();
    let a = agent.heartbeat(Some(AGENT), "web-01").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        held[0].closed_within(Duration::from_secs(2)).await,
        "no idle connection made room"
    );
    for c in &mut held[1..] {
        let a = c.request("GET", "/healthz", None, "").await.unwrap();
        assert_eq!(a.status, 200);
    }
    drop(held);
    server.stop().await;
}
