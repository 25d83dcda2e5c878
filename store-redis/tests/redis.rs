//! The Redis store against a real `redis-server` on loopback; every store
//! gets its own random key prefix (never FLUSHDB).

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, Heartbeat, HeartbeatOutcome, HostId, HostPattern, HostRecord, ManualClock, Monitor,
    MonitorOptions, NoticeKind, Outbox, Policy, PolicySet, Silence, Status, Store, add,
    conformance,
};
use iamalive_store_redis::RedisStore;
use iamalive_testkit::Server;

fn prefix() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

async fn store_on(server: &Server, timeout: Duration) -> RedisStore {
    RedisStore::builder()
        .url(server.redis_url())
        .prefix(prefix())
        .timeout(timeout)
        .build()
        .await
        .expect("connect to the test redis-server")
}

async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

fn t(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).unwrap()
}

async fn beat(s: &RedisStore, host: &HostId, at: i64, due: i64) -> HeartbeatOutcome {
    s.record_heartbeat(&Heartbeat::new(host.clone(), t(at)), t(due), true)
        .await
        .unwrap()
}

async fn get(s: &RedisStore, host: &HostId) -> HostRecord {
    s.get(host).await.unwrap().expect("record exists")
}

/// Writes `rec` with its status/outbox changed, as a monitor would.
async fn set(s: &RedisStore, rec: &HostRecord, f: impl FnOnce(&mut HostRecord)) -> HostRecord {
    let mut next = rec.clone();
    f(&mut next);
    next.version = rec.version + 1;
    assert!(s.compare_and_swap(rec.version, &next).await.unwrap());
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let server = iamalive_testkit::redis();
    let url = server.redis_url();
    conformance::run_all(|| {
        let url = url.clone();
        async move {
            let s = RedisStore::from_url(&url, &prefix())
                .await
                .expect("connect");
            Arc::new(s) as Arc<dyn Store>
        }
    })
    .await;
}

/// The suite's flapping case alone (also in [`conformance_suite`]), so a
/// failure elsewhere in the suite does not hide it.
#[tokio::test]
async fn flapping_conformance_case() {
    let server = iamalive_testkit::redis();
    let s = RedisStore::from_url(&server.redis_url(), &prefix())
        .await
        .expect("connect");
    conformance::flapping_is_one_notice_then_its_end(Arc::new(s)).await;
}

#[tokio::test]
async fn settings_are_validated() {
    let bad = |r: Result<RedisStore, iamalive_core::StoreError>| {
        let e = r.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        e.to_string()
    };
    let e = bad(RedisStore::builder().build().await);
    assert!(e.contains("url"), "{e}");
    let e = bad(RedisStore::from_url("http://x/", "p").await);
    assert!(e.contains("redis url"), "{e}");
    let e = bad(RedisStore::from_url("redis://127.0.0.1:1/", "a{b}").await);
    assert!(e.contains("prefix"), "{e}");
    // Nothing listens: a transient error, not a hang or a panic.
    let port = iamalive_testkit::free_port();
    let e = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{port}/"))
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    let dbg = format!("{:?}", RedisStore::builder().url("redis://u:secret@h/"));
    assert!(!dbg.contains("secret"), "{dbg}");
}

#[tokio::test]
async fn heartbeat_script_follows_the_contract() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    assert_eq!(s.to_string(), format!("redis({})", s.prefix()));
    let a = h("web-1");

    let hb = Heartbeat::new(a.clone(), t(0));
    assert_eq!(
        s.record_heartbeat(&hb, t(10), false).await.unwrap(),
        HeartbeatOutcome::Unknown
    );
    assert!(
        s.get(&a).await.unwrap().is_none(),
        "nothing written without create"
    );

    assert_eq!(beat(&s, &a, 0, 10_000).await, HeartbeatOutcome::Created);
    let r = get(&s, &a).await;
    let mut want = HostRecord::new(a.clone(), t(0), Duration::from_secs(10));
    want.due_at = Some(t(10_000));
    assert_eq!(r, want);

    // Up: last_seen moves, version bumps, due_at follows due_if_up.
    assert_eq!(
        beat(&s, &a, 5_001, 15_001).await,
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let r = get(&s, &a).await;
    assert_eq!(
        (r.version, r.last_seen, r.due_at),
        (2, t(5_001), Some(t(15_001)))
    );
    // An older heartbeat never moves last_seen back.
    beat(&s, &a, 1_000, 11_000).await;
    let r = get(&s, &a).await;
    assert_eq!((r.version, r.last_seen), (3, t(5_001)));

    // Message and report are replaced when given, kept otherwise.
    let mut hb = Heartbeat::new(a.clone(), t(6_000));
    hb.message = Some("hello".into());
    hb.report = Some(r#"{"failed_attempts":3}"#.into());
    s.record_heartbeat(&hb, t(16_000), true).await.unwrap();
    beat(&s, &a, 7_000, 17_000).await;
    let r = get(&s, &a).await;
    assert_eq!(r.message.as_deref(), Some("hello"));
    assert_eq!(r.report.as_deref(), Some(r#"{"failed_attempts":3}"#));

    // Missing and alarmed: due now.
    for status in [Status::Missing, Status::Alarmed] {
        let r = get(&s, &a).await;
        set(&s, &r, |n| {
            n.status = status;
            n.due_at = Some(t(99_000));
        })
        .await;
        assert_eq!(
            beat(&s, &a, 20_000, 30_000).await,
            HeartbeatOutcome::Updated { status }
        );
        assert_eq!(get(&s, &a).await.due_at, Some(t(20_000)), "{status}");
    }
    // Paused: due_at untouched (none).
    let r = get(&s, &a).await;
    set(&s, &r, |n| {
        n.status = Status::Paused;
        n.due_at = None;
    })
    .await;
    beat(&s, &a, 21_000, 31_000).await;
    assert_eq!(get(&s, &a).await.due_at, None);
    assert!(
        s.next_due().await.unwrap().is_none(),
        "paused hosts are not in the due index"
    );
    // Up with a recovery still owed: due_at untouched.
    let r = get(&s, &a).await;
    let notice = iamalive_core::Notice {
        last_seen: t(0),
        missing_since: t(10_000),
        recovered_at: Some(t(21_000)),
        silent_for: Duration::from_secs(21),
        alarm_count: 1,
        ..iamalive_core::Notice::new(
            "n1".into(),
            "o1".into(),
            NoticeKind::Recovery,
            a.clone(),
            t(21_000),
        )
    };
    set(&s, &r, |n| {
        n.status = Status::Up;
        n.due_at = Some(t(22_000));
        n.outbox = Some(Box::new(Outbox::new(notice)));
    })
    .await;
    beat(&s, &a, 23_000, 33_000).await;
    assert_eq!(get(&s, &a).await.due_at, Some(t(22_000)));

    // The hash is readable with redis-cli, and the index agrees with it.
    let mut c = raw(&server).await;
    let key = s.host_key(&a);
    assert!(key.starts_with(&format!("{{{}}}:h:", s.prefix())), "{key}");
    let status: String = redis::cmd("HGET")
        .arg(&key)
        .arg("status")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(status, "up");
    let seen: String = redis::cmd("HGET")
        .arg(&key)
        .arg("last_seen")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(seen, "2026-01-01T00:00:23.000000000Z");
    let score: f64 = redis::cmd("ZSCORE")
        .arg(s.due_key())
        .arg("web-1")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(score as i64, t(22_000).timestamp_millis());
}

#[tokio::test]
async fn due_index_and_swaps() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    for (i, name) in ["c", "a", "b", "d"].iter().enumerate() {
        beat(&s, &h(name), 0, 1_000 * (i as i64 + 1)).await;
    }
    assert_eq!(s.next_due().await.unwrap(), Some(t(1_000)));
    let due = |now, limit| {
        let s = &s;
        async move {
            s.due(t(now), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.host.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(due(999, 10).await.is_empty());
    assert_eq!(due(1_000, 10).await, ["c"]);
    assert_eq!(due(3_000, 10).await, ["c", "a", "b"]);
    assert_eq!(due(9_000, 2).await, ["c", "a"]);
    assert!(due(9_000, 0).await.is_empty());
    // Sub-millisecond: due_at a fraction of a ms after now is not yet due.
    let r = get(&s, &h("d")).await;
    let frac = add(t(500), Duration::from_micros(300));
    set(&s, &r, |n| n.due_at = Some(frac)).await;
    assert!(!due(500, 10).await.contains(&"d".to_string()));
    assert!(due(501, 10).await.contains(&"d".to_string()));
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(t(500)),
        "early, never late"
    );

    // Compare-and-swap: wrong version, absent host, create with 0.
    let r = get(&s, &h("a")).await;
    let mut next = r.clone();
    next.version = r.version + 1;
    next.due_at = None;
    assert!(!s.compare_and_swap(r.version + 1, &next).await.unwrap());
    assert_eq!(get(&s, &h("a")).await, r, "a lost swap writes nothing");
    assert!(s.compare_and_swap(r.version, &next).await.unwrap());
    assert!(
        !due(9_000, 10).await.contains(&"a".to_string()),
        "due index follows due_at"
    );
    let fresh = HostRecord::new(h("new"), t(0), Duration::from_secs(1));
    let mut bumped = fresh.clone();
    bumped.version = 5;
    assert!(
        !s.compare_and_swap(4, &bumped).await.unwrap(),
        "absent and expected != 0"
    );
    assert!(s.compare_and_swap(0, &fresh).await.unwrap());
    assert!(
        !s.compare_and_swap(0, &fresh).await.unwrap(),
        "0 only creates"
    );
    assert_eq!(get(&s, &h("new")).await, fresh);

    // list pages by id; remove drops the record and its index entries.
    let page = s.list(None, 3).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.host.to_string()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let page = s.list(Some(&h("c")), 10).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.host.to_string()).collect();
    assert_eq!(ids, ["d", "new"]);
    assert!(s.remove(&h("new")).await.unwrap());
    assert!(!s.remove(&h("new")).await.unwrap());
    assert!(s.get(&h("new")).await.unwrap().is_none());
    assert!(!due(1_000_000, 10).await.contains(&"new".to_string()));
}

#[tokio::test]
async fn silences_and_mark() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    let si = Silence::new(
        "maint",
        HostPattern::new("db-*").unwrap(),
        t(0),
        t(60_000),
        "patching",
    )
    .unwrap();
    s.put_silence(&si).await.unwrap();
    s.put_silence(&si).await.unwrap();
    assert_eq!(s.silences().await.unwrap(), vec![si]);
    assert!(s.remove_silence("maint").await.unwrap());
    assert!(!s.remove_silence("maint").await.unwrap());
    assert!(s.silences().await.unwrap().is_empty());

    let gap = Duration::from_secs(10);
    let m = s.mark_run(t(0), gap).await.unwrap();
    assert_eq!((m.last_run, m.downtime), (Some(t(0)), None));
    let m = s.mark_run(t(5_000), gap).await.unwrap();
    assert_eq!(m.downtime, None);
    let m = s.mark_run(t(60_000), gap).await.unwrap();
    let d = m.downtime.expect("a gap longer than 10 s is downtime");
    assert_eq!((d.from, d.until), (t(5_000), t(60_000)));
    // An older mark never moves last_run back, and keeps the downtime.
    let m = s.mark_run(t(59_000), gap).await.unwrap();
    assert_eq!(m.last_run, Some(t(60_000)));
    assert!(m.downtime.is_some());
    // Many monitors at once: the latest instant wins.
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.mark_run(t(61_000 + i * 10), gap).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let m = s.mark_run(t(0), gap).await.unwrap();
    assert_eq!(m.last_run, Some(t(61_190)));
}

/// Redis goes away in the middle of a run: every call fails transiently
/// (and returns), then Redis comes back on the same port and monitoring
/// carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_redis_restart() {
    let mut server = iamalive_testkit::redis();
    let port = server.addr.port();
    let store: Arc<dyn Store> = Arc::new(store_on(&server, Duration::from_millis(500)).await);
    let clock = ManualClock::new(t(0));
    let rec = Arc::new(RecordingNotifier::new("rec"));
    let policy = Policy {
        timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    let monitor = Monitor::new(
        store.clone(),
        vec![rec.clone()],
        clock.clone(),
        PolicySet::new(policy),
        MonitorOptions::default(),
    )
    .expect("channel names are unique");
    let a = h("db-1");
    monitor
        .heartbeat(&Heartbeat::new(a.clone(), clock.now()))
        .await
        .unwrap();
    let _ = monitor.sweep().await.unwrap();

    server.stop();
    // Every call returns (never hangs) with a transient error.
    let bounded = Duration::from_secs(20);
    for _ in 0..3 {
        let hb = tokio::time::timeout(
            bounded,
            monitor.heartbeat(&Heartbeat::new(a.clone(), clock.now())),
        )
        .await
        .expect("a heartbeat returns while Redis is down");
        assert!(hb.unwrap_err().is_transient());
        let e = tokio::time::timeout(bounded, monitor.sweep())
            .await
            .expect("a sweep returns while Redis is down")
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        let e = tokio::time::timeout(bounded, store.get(&a))
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("redis"), "{e}");
    }

    // Back on the same port (empty: no persistence in tests).
    let server = iamalive_testkit::redis_on(port);
    // The reconnect happens in the background; poll until a heartbeat lands.
    let mut landed = false;
    for _ in 0..100 {
        if monitor
            .heartbeat(&Heartbeat::new(a.clone(), clock.now()))
            .await
            .is_ok()
        {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(landed, "heartbeats land again after Redis is back");
    clock.advance(Duration::from_secs(11));
    let report = monitor.sweep().await.expect("a sweep works again");
    assert_eq!(report.evaluated, 1);
    assert_eq!(
        rec.count(NoticeKind::Alarm),
        1,
        "the silent host is alarmed"
    );
    assert_eq!(get_status(&*store, &a).await, Status::Alarmed);
    monitor
        .heartbeat(&Heartbeat::new(a.clone(), clock.now()))
        .await
        .unwrap();
    let _ = monitor.sweep().await.unwrap();
    assert_eq!(rec.count(NoticeKind::Recovery), 1);
    drop(server);
}

async fn get_status(s: &dyn Store, host: &HostId) -> Status {
    s.get(host).await.unwrap().unwrap().status
}

/// Heartbeats for many hosts at once are grouped into batches; each one
/// still gets its own outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_heartbeats_keep_their_own_outcomes() {
    let server = iamalive_testkit::redis();
    let s = Arc::new(store_on(&server, Duration::from_secs(10)).await);
    beat(&s, &h("known-0"), 0, 10_000).await;
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let host = if i % 2 == 0 {
                    format!("known-{}", i % 4)
                } else {
                    format!("stranger-{i}")
                };
                let mut hb = Heartbeat::new(h(&host), t(i));
                hb.message = Some(format!("m{i}"));
                let out = s
                    .record_heartbeat(&hb, t(i + 10_000), i % 4 != 1)
                    .await
                    .unwrap();
                (i, out)
            })
        })
        .collect();
    for task in tasks {
        let (i, out) = task.await.unwrap();
        match i % 4 {
            1 => assert_eq!(out, HeartbeatOutcome::Unknown, "{i}"),
            3 => assert_eq!(out, HeartbeatOutcome::Created, "{i}"),
            _ => assert!(
                matches!(
                    out,
                    HeartbeatOutcome::Updated { status: Status::Up } | HeartbeatOutcome::Created
                ),
                "{i}: {out:?}"
            ),
        }
    }
    assert!(s.get(&h("stranger-1")).await.unwrap().is_none());
    assert_eq!(
        get(&s, &h("stranger-3")).await.message.as_deref(),
        Some("m3")
    );
    let k0 = get(&s, &h("known-0")).await;
    assert_eq!(k0.version, 101, "one creation and 100 bumps");
    assert_eq!(k0.last_seen, t(396));
    assert_eq!(get(&s, &h("known-2")).await.version, 100);
}

/// An up host's index entry is rewritten only once its stored `due_at` is
/// less than half a timeout away, and never left later than `due_if_up`.
#[tokio::test]
async fn up_hosts_are_re_armed_lazily_but_never_late() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    let a = h("chatty");
    let due = |s: &RedisStore| {
        let s = s.clone();
        let a = a.clone();
        async move { get(&s, &a).await.due_at }
    };
    beat(&s, &a, 0, 10_000).await;
    beat(&s, &a, 1_000, 11_000).await;
    assert_eq!(
        due(&s).await,
        Some(t(10_000)),
        "still more than half a timeout away: kept"
    );
    assert_eq!(s.next_due().await.unwrap(), Some(t(10_000)), "index agrees");
    beat(&s, &a, 6_000, 16_000).await;
    assert_eq!(
        due(&s).await,
        Some(t(16_000)),
        "less than half a timeout away: re-armed"
    );
    // A shorter timeout (config change): never keep a later due_at.
    beat(&s, &a, 7_000, 8_000).await;
    assert_eq!(due(&s).await, Some(t(8_000)));
    assert_eq!(s.next_due().await.unwrap(), Some(t(8_000)));
}

/// The raw state of a host: its hash's `version` and its up entry.
async fn raw_state(
    c: &mut redis::aio::MultiplexedConnection,
    s: &RedisStore,
    host: &HostId,
) -> (Option<String>, Option<String>) {
    let v: Option<String> = redis::cmd("HGET")
        .arg(s.host_key(host))
        .arg("version")
        .query_async(c)
        .await
        .unwrap();
    let e: Option<String> = redis::cmd("HGET")
        .arg(s.up_key())
        .arg(host.as_str())
        .query_async(c)
        .await
        .unwrap();
    (v, e)
}

/// A store and a raw connection on `server`, with `name` up after two
/// heartbeats (at 0 and 1 s, timeout 10 s): on the fast path.
async fn up_host(
    server: &Server,
    name: &str,
) -> (RedisStore, redis::aio::MultiplexedConnection, HostId) {
    let s = store_on(server, Duration::from_secs(5)).await;
    let c = raw(server).await;
    let a = h(name);
    beat(&s, &a, 0, 10_000).await;
    beat(&s, &a, 1_000, 11_000).await;
    (s, c, a)
}

/// Writes fields of a hash directly, as another release or an operator
/// would.
async fn hset(c: &mut redis::aio::MultiplexedConnection, key: &str, fields: &[(&str, &str)]) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(fields)
        .query_async(c)
        .await
        .unwrap();
}

/// An up host with nothing owed beats on the fast path (only its entry in
/// `{prefix}:up` changes); every read sees the bumped version and the later
/// `last_seen` at once.
#[tokio::test]
async fn fast_path_heartbeats_are_read_back_at_once() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    let mut c = raw(&server).await;
    let a = h("fast-1");
    assert_eq!(beat(&s, &a, 0, 10_000).await, HeartbeatOutcome::Created);
    let (v, e) = raw_state(&mut c, &s, &a).await;
    assert_eq!(v.as_deref(), Some("1"));
    assert!(e.is_some(), "a created up host gets an up entry");

    for (i, at) in [1_000, 2_000, 1_500, 3_000].into_iter().enumerate() {
        assert_eq!(
            beat(&s, &a, at, at + 10_000).await,
            HeartbeatOutcome::Updated { status: Status::Up }
        );
        let r = get(&s, &a).await;
        assert_eq!(r.version, 2 + i as u64, "get right after a fast heartbeat");
        let seen = if at == 1_500 { 2_000 } else { at };
        assert_eq!(r.last_seen, t(seen), "last_seen never goes backwards");
        assert_eq!(r.due_at, Some(t(10_000)), "due_at left alone (lazy)");
    }
    let (v, _) = raw_state(&mut c, &s, &a).await;
    assert_eq!(
        v.as_deref(),
        Some("1"),
        "the fast path leaves the hash alone"
    );
    // list and due merge the entry too.
    let listed = s.list(None, 10).await.unwrap();
    assert_eq!((listed[0].version, listed[0].last_seen), (5, t(3_000)));
    let due = s.due(t(10_000), 10).await.unwrap();
    assert_eq!((due[0].version, due[0].last_seen), (5, t(3_000)));

    // A heartbeat with a message takes the slow path and folds the entry
    // into the hash.
    let mut hb = Heartbeat::new(a.clone(), t(2_500));
    hb.message = Some("hi".into());
    s.record_heartbeat(&hb, t(12_500), true).await.unwrap();
    let (v, e) = raw_state(&mut c, &s, &a).await;
    assert_eq!(v.as_deref(), Some("6"));
    assert!(e.is_some(), "still up with nothing owed: entry kept");
    let r = get(&s, &a).await;
    assert_eq!(
        (r.version, r.last_seen, r.message.as_deref()),
        (6, t(3_000), Some("hi"))
    );
    // Re-arming (less than half a timeout left) also takes the slow path.
    beat(&s, &a, 6_000, 16_000).await;
    let r = get(&s, &a).await;
    assert_eq!((r.version, r.due_at), (7, Some(t(16_000))));
    assert_eq!(s.next_due().await.unwrap(), Some(t(16_000)));
    assert_eq!(
        raw_state(&mut c, &s, &a).await.0.as_deref(),
        Some("7"),
        "the slow path writes the hash"
    );
}

/// A heartbeat that lands on the fast path between a monitor's read and
/// its swap makes the swap fail.
#[tokio::test]
async fn fast_heartbeat_between_read_and_swap_fails_the_swap() {
    let server = iamalive_testkit::redis();
    let s = store_on(&server, Duration::from_secs(5)).await;
    let a = h("racy");
    beat(&s, &a, 0, 10_000).await;
    beat(&s, &a, 1_000, 11_000).await;
    let read = get(&s, &a).await;
    assert_eq!(read.version, 2);
    beat(&s, &a, 2_000, 12_000).await;
    let mut next = read.clone();
    next.status = Status::Missing;
    next.version = read.version + 1;
    assert!(
        !s.compare_and_swap(read.version, &next).await.unwrap(),
        "the heartbeat got there first"
    );
    let r = get(&s, &a).await;
    assert_eq!(
        (r.status, r.version, r.last_seen),
        (Status::Up, 3, t(2_000))
    );
    // Against the merged version the swap goes through.
    let mut next = r.clone();
    next.last_checked = Some(t(2_500));
    next.version = r.version + 1;
    assert!(s.compare_and_swap(r.version, &next).await.unwrap());
    assert_eq!(get(&s, &a).await, next);
    // ... and the host stays on the fast path afterwards.
    beat(&s, &a, 3_000, 13_000).await;
    let r = get(&s, &a).await;
    assert_eq!((r.version, r.last_seen), (5, t(3_000)));
}

/// A swap to missing, paused, or up with a notice owed removes the entry,
/// so the next heartbeat takes the slow path (a recovery is still due at
/// once); a swap back to up with nothing owed restores it; remove deletes
/// it.
#[tokio::test]
async fn swaps_and_remove_keep_the_up_entry_exact() {
    let server = iamalive_testkit::redis();
    let (s, mut c, a) = up_host(&server, "swapped").await;

    // Missing: no entry; the heartbeat is a recovery, due now.
    let r = get(&s, &a).await;
    let r = set(&s, &r, |n| {
        n.status = Status::Missing;
        n.missing_since = Some(t(10_000));
        n.due_at = Some(t(40_000));
    })
    .await;
    assert_eq!(raw_state(&mut c, &s, &a).await.1, None);
    assert_eq!(
        beat(&s, &a, 12_000, 22_000).await,
        HeartbeatOutcome::Updated {
            status: Status::Missing
        }
    );
    let got = get(&s, &a).await;
    assert_eq!(
        (got.version, got.due_at, got.last_seen),
        (r.version + 1, Some(t(12_000)), t(12_000))
    );
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(t(12_000)),
        "recovery due now"
    );
    assert_eq!(
        raw_state(&mut c, &s, &a).await.1,
        None,
        "a missing host gets no entry from a heartbeat"
    );

    // Up with a recovery owed: no entry, due_at untouched by heartbeats.
    let notice = iamalive_core::Notice {
        last_seen: t(1_000),
        missing_since: t(10_000),
        recovered_at: Some(t(12_000)),
        silent_for: Duration::from_secs(11),
        alarm_count: 1,
        ..iamalive_core::Notice::new(
            "n1".into(),
            "o1".into(),
            NoticeKind::Recovery,
            a.clone(),
            t(12_000),
        )
    };
    let r = set(&s, &got, |n| {
        n.status = Status::Up;
        n.missing_since = None;
        n.due_at = Some(t(13_000));
        n.outbox = Some(Box::new(Outbox::new(notice)));
    })
    .await;
    assert_eq!(raw_state(&mut c, &s, &a).await.1, None);
    beat(&s, &a, 12_500, 22_500).await;
    let got = get(&s, &a).await;
    assert_eq!((got.version, got.due_at), (r.version + 1, Some(t(13_000))));
    assert!(got.outbox.is_some());

    // Delivered: up with nothing owed gets its entry back from the swap.
    let r = set(&s, &got, |n| n.outbox = None).await;
    let (_, e) = raw_state(&mut c, &s, &a).await;
    assert!(e.is_some());
    // due_at 13_000 is less than half a timeout ahead: the slow path
    // re-arms it, and the host is back on the fast path after that.
    beat(&s, &a, 13_000, 23_000).await;
    beat(&s, &a, 14_000, 24_000).await;
    let got = get(&s, &a).await;
    assert_eq!(
        (got.version, got.due_at, got.last_seen),
        (r.version + 2, Some(t(23_000)), t(14_000))
    );
    assert_eq!(
        raw_state(&mut c, &s, &a).await.0,
        Some((r.version + 1).to_string()),
        "the second heartbeat took the fast path"
    );

    // Paused: no entry, heartbeats leave due_at alone.
    let r = set(&s, &got, |n| {
        n.status = Status::Paused;
        n.due_at = None;
    })
    .await;
    assert_eq!(raw_state(&mut c, &s, &a).await.1, None);
    assert_eq!(
        beat(&s, &a, 15_000, 25_000).await,
        HeartbeatOutcome::Updated {
            status: Status::Paused
        }
    );
    let got = get(&s, &a).await;
    assert_eq!((got.version, got.due_at), (r.version + 1, None));
    assert_eq!(raw_state(&mut c, &s, &a).await.1, None);

    // Up again, then removed: the entry goes with the host.
    set(&s, &got, |n| {
        n.status = Status::Up;
        n.due_at = Some(t(25_000));
    })
    .await;
    assert!(raw_state(&mut c, &s, &a).await.1.is_some());
    assert!(s.remove(&a).await.unwrap());
    assert_eq!(raw_state(&mut c, &s, &a).await, (None, None));
    assert_eq!(
        s.record_heartbeat(&Heartbeat::new(a.clone(), t(16_000)), t(26_000), false)
            .await
            .unwrap(),
        HeartbeatOutcome::Unknown
    );
    assert_eq!(
        beat(&s, &a, 16_000, 26_000).await,
        HeartbeatOutcome::Created
    );
    assert_eq!(get(&s, &a).await.version, 1);
}

/// Fast and slow heartbeats for one host mixed in the same batches never
/// lose a bump, and `last_seen` ends at the latest instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_fast_and_slow_heartbeats_never_lose_a_bump() {
    let server = iamalive_testkit::redis();
    let s = Arc::new(store_on(&server, Duration::from_secs(10)).await);
    let a = h("mixed");
    beat(&s, &a, 0, 100_000).await;
    let tasks: Vec<_> = (1..=600)
        .map(|i| {
            let s = s.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let mut hb = Heartbeat::new(a, t(i));
                if i % 7 == 0 {
                    hb.message = Some(format!("m{i}"));
                }
                // Every 50th re-arms (a shorter timeout: its due_if_up is
                // earlier than the stored due_at).
                let due = if i % 50 == 0 { 60_000 + i } else { 100_000 + i };
                s.record_heartbeat(&hb, t(due), true).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            HeartbeatOutcome::Updated { status: Status::Up }
        );
    }
    let r = get(&s, &a).await;
    assert_eq!((r.version, r.last_seen), (601, t(600)));
    let d = r.due_at.unwrap();
    assert!(d >= t(60_050) && d <= t(100_600), "{d}");
    assert_eq!(s.next_due().await.unwrap(), Some(d), "index agrees");
}

/// The suite's group flapping case alone (also in [`conformance_suite`]).
#[tokio::test]
async fn group_flapping_conformance_case() {
    let server = iamalive_testkit::redis();
    let s = RedisStore::from_url(&server.redis_url(), &prefix())
        .await
        .expect("connect");
    conformance::group_flapping_is_one_notice_then_its_end(Arc::new(s)).await;
}

/// An up entry written before entries carried the interval (`due_at`,
/// `last_seen`, `version` only; the interval in the hash): a swap
/// checks its version, reads merge it, and the next heartbeat takes the
/// slow path once, learns from the hash's gaps and writes the entry in
/// today's form, after which heartbeats are fast again.
#[tokio::test]
async fn an_entry_from_before_the_interval_is_upgraded_by_a_heartbeat() {
    let server = iamalive_testkit::redis();
    let (s, mut c, a) = up_host(&server, "old-entry").await;
    let (_, e) = raw_state(&mut c, &s, &a).await;
    let e = e.expect("an up entry");
    // What the previous release wrote: the hash holds the interval, the
    // entry its version (3 after one more fast beat) and nothing after.
    let old = format!("{}3", &e[..60]);
    hset(&mut c, s.up_key(), &[(a.as_str(), &old)]).await;
    hset(
        &mut c,
        &s.host_key(&a),
        &[("gap", "1000"), ("prev_gap", "900")],
    )
    .await;
    // (version, last_seen, gap, prev_gap) as read.
    let read = |r: HostRecord| {
        (
            r.version,
            r.last_seen,
            r.interval.gap_ms,
            r.interval.prev_gap_ms,
        )
    };
    assert_eq!(
        read(get(&s, &a).await),
        (3, t(1_000), 1_000, 900),
        "read: the old entry's version and last_seen, the hash's interval"
    );
    // The next heartbeat folds it (slow path) and learns on from the hash.
    beat(&s, &a, 3_500, 13_500).await;
    assert_eq!(read(get(&s, &a).await), (4, t(3_500), 2_500, 1_000));
    let (v, e) = raw_state(&mut c, &s, &a).await;
    assert_eq!(v.as_deref(), Some("4"), "the slow path wrote the hash");
    let e = e.expect("still up: an entry");
    assert_eq!(
        &e[60..],
        format!("4,{},000000,0,2500,1000", t(3_500).timestamp_millis()),
        "the entry in today's form"
    );
    // Fast again: only the entry changes.
    beat(&s, &a, 4_000, 14_000).await;
    assert_eq!(read(get(&s, &a).await), (5, t(4_000), 500, 2_500));
    assert_eq!(raw_state(&mut c, &s, &a).await.0.as_deref(), Some("4"));
    // A swap checks an old entry's version too.
    hset(
        &mut c,
        s.up_key(),
        &[(a.as_str(), &format!("{}5", &e[..60]))],
    )
    .await;
    let r = get(&s, &a).await;
    assert_eq!(r.version, 5);
    let stale = {
        let mut n = r.clone();
        n.version = 5;
        n
    };
    assert!(
        !s.compare_and_swap(4, &stale).await.unwrap(),
        "stale version"
    );
    set(&s, &r, |n| n.message = Some("swapped".into())).await;
    assert_eq!(get(&s, &a).await.message.as_deref(), Some("swapped"));
}

/// Redis out of memory refuses writes, inside transactions and scripts
/// alike: that is the store unavailable for now (the API's 503 with
/// Retry-After, the monitor's store trouble), not a backend failure (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_unavailable_not_a_failure() {
    let server = iamalive_testkit::redis();
    let store = store_on(&server, Duration::from_secs(2)).await;
    let mut c = raw(&server).await;
    let a = h("oom-1");
    beat(&store, &a, 0, 10_000).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .query_async(&mut c)
        .await
        .unwrap();
    // A known host's heartbeat and a new host's creation.
    let errors = [
        store
            .record_heartbeat(&Heartbeat::new(a.clone(), t(1_000)), t(11_000), true)
            .await
            .unwrap_err(),
        store
            .record_heartbeat(&Heartbeat::new(h("oom-2"), t(1_000)), t(11_000), true)
            .await
            .unwrap_err(),
    ];
    for e in &errors {
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("OOM"), "{e}");
    }
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(matches!(
        beat(&store, &a, 2_000, 12_000).await,
        HeartbeatOutcome::Updated { .. }
    ));
}
