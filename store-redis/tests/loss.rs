//! A Redis restarted without persistence loses every host; the store's
//! deployment marker makes the watcher say so on every channel, and
//! `/healthz`'s report carries it, instead of going blind quietly.

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{Clock, Heartbeat, HostId, ManualClock, NoticeKind, Store, conformance};
use iamalive_store_redis::RedisStore;

#[tokio::test]
async fn a_redis_restarted_without_persistence_is_announced_as_data_lost() {
    let port = iamalive_testkit::free_port();
    let mut server = iamalive_testkit::redis_on(port);
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let store = Arc::new(
        RedisStore::builder()
            .url(server.redis_url())
            .prefix(&prefix)
            .timeout(Duration::from_secs(2))
            .build()
            .await
            .unwrap(),
    );
    // A second process on the same deployment (another monitor).
    let peer = RedisStore::builder()
        .url(server.redis_url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    store.check().await.expect("the marker is there");
    peer.check().await.expect("the peer sees the same marker");

    let clock = ManualClock::new(conformance::at(0));
    let ops = RecordingNotifier::new("ops");
    let chat = RecordingNotifier::new("chat");
    let m = conformance::monitor(
        store.clone() as Arc<dyn Store>,
        &clock,
        vec![Arc::new(ops.clone()), Arc::new(chat.clone())],
        "m",
    );
    let step = m
        .options()
        .mark_interval
        .expect("the test monitor's mark interval")
        * 2;
    for h in ["db-1", "db-2"] {
        let hb = Heartbeat::new(HostId::new(h).unwrap(), clock.now());
        m.heartbeat(&hb).await.unwrap();
    }
    let _ = m.sweep().await.unwrap();
    assert!(ops.notices().is_empty());

    // Redis restarts with nothing saved.
    server.stop();
    let _server = iamalive_testkit::redis_on(port);
    clock.set(clock.now() + step);
    let mut swept = false;
    for _ in 0..50 {
        // The first calls may meet the dropped connection.
        if m.sweep().await.is_ok() {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the store reconnects");
    for ch in [&ops, &chat] {
        let n = ch.notices();
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].kind, NoticeKind::Degraded);
        let text = n[0].message.clone().unwrap_or_default();
        assert!(
            text.contains("lost its data") && text.contains("report again"),
            "{text}"
        );
    }
    let health = m.health();
    assert!(health.store_down(), "{health:?}");
    assert!(
        health.reasons().iter().any(|r| r.contains("data lost")),
        "{health:?}"
    );
    assert!(
        m.host(&HostId::new("db-1").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // The marker is written again: the next check passes, and the peer,
    // which had the old marker, reports the loss too (once).
    let e = peer.check().await.expect_err("the peer notices");
    assert!(e.is_lost() && e.to_string().contains("replaced"), "{e}");
    peer.check().await.expect("once");
    clock.set(clock.now() + step);
    let _ = m.sweep().await.unwrap();
    assert_eq!(ops.count(NoticeKind::Restored), 1, "{:?}", ops.notices());
    assert!(!m.health().degraded());
}
