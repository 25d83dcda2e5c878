//! The Redis store against a real three-master Redis Cluster on loopback
//! (three `redis-server`s joined by `redis-cli --cluster create`).

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, Heartbeat, HeartbeatOutcome, HostId, ManualClock, Monitor, MonitorOptions, NoticeKind,
    Policy, PolicySet, Status, Store, StoreError, conformance,
};
use iamalive_store_redis::RedisStore;
use iamalive_testkit::RedisCluster;
use redis::Value;
use redis::aio::MultiplexedConnection;

fn prefix() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

fn t(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_000 + ms).unwrap()
}

async fn store(seeds: Vec<String>, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .cluster(seeds)
        .prefix(prefix)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("connect to the test cluster")
}

/// A plain (not cluster-aware) connection to one node: it sees `MOVED`
/// instead of following it, which is what shows where keys live.
async fn node(cluster: &RedisCluster, i: usize) -> MultiplexedConnection {
    redis::Client::open(cluster.nodes[i].redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn node_id(cluster: &RedisCluster, i: usize) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut node(cluster, i).await)
        .await
        .unwrap()
}

async fn keyslot(cluster: &RedisCluster, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut node(cluster, 0).await)
        .await
        .unwrap()
}

/// The index of the node owning `slot`, as `CLUSTER SLOTS` on node `ask`
/// reports it.
async fn owner(cluster: &RedisCluster, ask: usize, slot: u16) -> usize {
    let ranges: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut node(cluster, ask).await)
        .await
        .unwrap();
    for r in ranges {
        let Value::Array(r) = r else {
            panic!("CLUSTER SLOTS: {r:?}")
        };
        let from: u16 = redis::from_redis_value(r[0].clone()).unwrap();
        let to: u16 = redis::from_redis_value(r[1].clone()).unwrap();
        if (from..=to).contains(&slot) {
            let Value::Array(master) = &r[2] else {
                panic!("CLUSTER SLOTS: {r:?}")
            };
            let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
            return cluster
                .nodes
                .iter()
                .position(|n| n.addr.port() == port)
                .expect("the owner is one of our nodes");
        }
    }
    panic!("no node owns slot {slot}");
}

/// A fresh prefix whose keys live on node `want`.
async fn prefix_on(cluster: &RedisCluster, want: usize) -> String {
    for _ in 0..200 {
        let p = prefix();
        let slot = keyslot(cluster, &format!("{{{p}}}:due")).await;
        if owner(cluster, 0, slot).await == want {
            return p;
        }
    }
    panic!("no prefix on node {want} in 200 tries");
}

/// `EXISTS key` asked of node `i` directly: `Ok(n)` if it owns the key's
/// slot, `Err` (a `MOVED` redirect) if it does not.
async fn exists_on(cluster: &RedisCluster, i: usize, key: &str) -> redis::RedisResult<i64> {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut node(cluster, i).await)
        .await
}

async fn beat(s: &RedisStore, host: &HostId, at: i64, due: i64) -> HeartbeatOutcome {
    s.record_heartbeat(&Heartbeat::new(host.clone(), t(at)), t(due), true)
        .await
        .unwrap()
}

/// Every store operation once, checking its answer.
async fn exercise(s: &RedisStore) {
    let a = h("web-1");
    let b = h("web-2");
    assert_eq!(beat(s, &a, 0, 10_000).await, HeartbeatOutcome::Created);
    assert_eq!(beat(s, &b, 0, 20_000).await, HeartbeatOutcome::Created);
    assert_eq!(
        beat(s, &a, 1_000, 11_000).await,
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let rec = s.get(&a).await.unwrap().expect("web-1 exists");
    assert_eq!(rec.last_seen, t(1_000));
    assert_eq!(rec.version, 2);
    assert_eq!(s.next_due().await.unwrap(), Some(t(10_000)));
    let due = s.due(t(15_000), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].host, a);
    let mut next = rec.clone();
    next.status = Status::Missing;
    next.version += 1;
    assert!(s.compare_and_swap(rec.version, &next).await.unwrap());
    assert!(!s.compare_and_swap(rec.version, &next).await.unwrap());
    let all = s.list(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.host.clone()).collect::<Vec<_>>(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(all[0].status, Status::Missing);
    s.mark_run(t(15_000), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s.remove(&b).await.unwrap());
    assert!(s.get(&b).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_cluster() {
    let cluster = iamalive_testkit::redis_cluster();
    let seeds = cluster.urls();
    conformance::run_all(|| {
        let seeds = seeds.clone();
        async move { Arc::new(store(seeds, &prefix()).await) as Arc<dyn Store> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_spread_over_the_nodes_and_each_works() {
    let cluster = iamalive_testkit::redis_cluster();
    for want in 0..3 {
        let p = prefix_on(&cluster, want).await;
        let s = store(cluster.urls(), &p).await;
        exercise(&s).await;
        // The deployment's keys are on node `want` and only there.
        let key = s.host_key(&h("web-1"));
        for i in 0..3 {
            let got = exists_on(&cluster, i, &key).await;
            if i == want {
                assert_eq!(got.unwrap(), 1, "{key} on node {i}");
            } else {
                let e = got.expect_err("another node redirects");
                assert_eq!(e.kind(), redis::ServerErrorKind::Moved.into(), "{e}");
            }
        }
        for k in [s.due_key().to_owned(), format!("{{{p}}}:mark")] {
            assert_eq!(exists_on(&cluster, want, &k).await.unwrap(), 1, "{k}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_that_does_not_own_the_slot_is_enough() {
    let cluster = iamalive_testkit::redis_cluster();
    let p = prefix_on(&cluster, 2).await;
    let s = store(vec![cluster.nodes[0].redis_url()], &p).await;
    exercise(&s).await;
    assert_eq!(
        exists_on(&cluster, 2, &s.host_key(&h("web-1")))
            .await
            .unwrap(),
        1
    );
    assert!(
        exists_on(&cluster, 0, &s.host_key(&h("web-1")))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_its_slot_to_another_node() {
    let cluster = iamalive_testkit::redis_cluster();
    let p = prefix_on(&cluster, 0).await;
    let slot = keyslot(&cluster, &format!("{{{p}}}:due")).await;
    let s = store(cluster.urls(), &p).await;
    let store: Arc<dyn Store> = Arc::new(s.clone());
    let clock = ManualClock::new(t(0));
    let rec = Arc::new(RecordingNotifier::new("rec"));
    let monitor = Monitor::new(
        store.clone(),
        vec![rec.clone()],
        clock.clone(),
        PolicySet::new(Policy {
            timeout: Duration::from_secs(10),
            ..Policy::default()
        }),
        MonitorOptions::default(),
    )
    .expect("channel names are unique");
    let hosts: Vec<HostId> = (0..20).map(|i| h(&format!("db-{i}"))).collect();
    for host in &hosts {
        monitor
            .heartbeat(&Heartbeat::new(host.clone(), clock.now()))
            .await
            .unwrap();
    }
    let _ = monitor.sweep().await.unwrap();

    // Move the slot from node 0 to node 1 the way a resharding does.
    let (from, to) = (node_id(&cluster, 0).await, node_id(&cluster, 1).await);
    let mut src = node(&cluster, 0).await;
    let mut dst = node(&cluster, 1).await;
    let setslot = |state: &str, id: &str| {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg(state).arg(id);
        c
    };
    setslot("IMPORTING", &from)
        .query_async::<()>(&mut dst)
        .await
        .unwrap();
    setslot("MIGRATING", &to)
        .query_async::<()>(&mut src)
        .await
        .unwrap();
    let mut moved = 0;
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut src)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        moved += keys.len();
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(cluster.nodes[1].addr.port())
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query_async::<()>(&mut src)
            .await
            .unwrap();
    }
    // 20 host hashes, the due and hosts indexes, the up hash, the mark,
    // the deployment marker.
    assert_eq!(moved, 25);
    for i in 0..3 {
        setslot("NODE", &to)
            .query_async::<()>(&mut node(&cluster, i).await)
            .await
            .unwrap();
    }
    assert_eq!(owner(&cluster, 1, slot).await, 1);
    let key = s.host_key(&hosts[0]);
    assert_eq!(exists_on(&cluster, 1, &key).await.unwrap(), 1);
    assert!(exists_on(&cluster, 0, &key).await.is_err());

    // The new owner never ran our scripts: they load on first use.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut dst)
        .await
        .unwrap();

    // A read first, while the store's slot map still names node 0 (a
    // `MULTI` transaction would fail here with `MOVED` inside `EXEC`).
    assert_eq!(
        s.get(&hosts[1]).await.unwrap().unwrap().last_seen,
        clock.now()
    );

    // The same store (its slot map now stale) keeps working: heartbeats,
    // reads, and sweeps that swap records and send notices.
    clock.advance(Duration::from_secs(5));
    for host in &hosts[1..] {
        assert_eq!(
            monitor
                .heartbeat(&Heartbeat::new(host.clone(), clock.now()))
                .await
                .unwrap(),
            HeartbeatOutcome::Updated { status: Status::Up }
        );
    }
    assert_eq!(
        s.get(&hosts[1]).await.unwrap().unwrap().last_seen,
        clock.now()
    );
    let report = monitor.sweep().await.unwrap();
    assert_eq!((report.evaluated, report.errors), (0, 0), "{report:?}");
    // hosts[0] fell silent: after its timeout one sweep alarms it alone.
    clock.advance(Duration::from_secs(6));
    let report = monitor.sweep().await.unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(rec.count(NoticeKind::Alarm), 1, "{:?}", rec.notices());
    assert_eq!(
        s.get(&hosts[0]).await.unwrap().unwrap().status,
        Status::Alarmed
    );
    for host in &hosts[1..] {
        assert_eq!(s.get(host).await.unwrap().unwrap().status, Status::Up);
    }
    // Its recovery goes through the moved slot as well.
    monitor
        .heartbeat(&Heartbeat::new(hosts[0].clone(), clock.now()))
        .await
        .unwrap();
    let _ = monitor.sweep().await.unwrap();
    assert_eq!(rec.count(NoticeKind::Recovery), 1, "{:?}", rec.notices());
    assert_eq!(s.get(&hosts[0]).await.unwrap().unwrap().status, Status::Up);
}

#[tokio::test]
async fn bad_cluster_settings_are_refused() {
    let b = RedisStore::builder;
    let cases = [
        (b().cluster(Vec::<String>::new()), "no seed url"),
        (
            b().cluster(["redis://127.0.0.1:1/"])
                .url("redis://127.0.0.1:1/"),
            "not both",
        ),
        (b().cluster(["redis://127.0.0.1:1/3"]), "database 0"),
        (b().cluster(["not a url"]), "redis cluster url"),
    ];
    for (builder, want) in cases {
        let err = builder.build().await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput { .. }),
            "{want}: {err:?}"
        );
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_is_transient_and_the_store_recovers() {
    let mut cluster = iamalive_testkit::redis_cluster();
    let p = prefix_on(&cluster, 2).await;
    let s = RedisStore::builder()
        .cluster(cluster.urls())
        .prefix(&p)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let a = h("db-1");
    assert_eq!(beat(&s, &a, 0, 10_000).await, HeartbeatOutcome::Created);

    // The node owning the deployment's slot goes away (no replica takes
    // over): every call fails transiently within its time limit.
    cluster.nodes[2].stop();
    let bounded = Duration::from_secs(10);
    for _ in 0..2 {
        let e = tokio::time::timeout(
            bounded,
            s.record_heartbeat(&Heartbeat::new(a.clone(), t(1_000)), t(11_000), true),
        )
        .await
        .expect("a heartbeat returns in time")
        .unwrap_err();
        assert!(e.is_transient(), "{e}");
        let e = tokio::time::timeout(bounded, s.get(&a))
            .await
            .expect("a read returns in time")
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        let e = tokio::time::timeout(bounded, s.due(t(20_000), 10))
            .await
            .expect("a sweep's read returns in time")
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
    // A prefix on a node that is still up keeps working meanwhile.
    let other = store(
        vec![cluster.nodes[0].redis_url()],
        &prefix_on(&cluster, 0).await,
    )
    .await;
    assert_eq!(beat(&other, &a, 0, 10_000).await, HeartbeatOutcome::Created);

    // Back on its port with its slots (and no data: no persistence).
    cluster.restart(2);
    let mut landed = None;
    for _ in 0..100 {
        if let Ok(o) = s
            .record_heartbeat(&Heartbeat::new(a.clone(), t(2_000)), t(12_000), true)
            .await
        {
            landed = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        landed,
        Some(HeartbeatOutcome::Created),
        "heartbeats land again"
    );
    let rec = s.get(&a).await.unwrap().expect("recreated");
    assert_eq!(rec.last_seen, t(2_000));
    assert_eq!(s.due(t(20_000), 10).await.unwrap().len(), 1);
}
