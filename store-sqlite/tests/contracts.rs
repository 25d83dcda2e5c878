//! The store's own tests of each `Store` contract, against real files.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use iamalive_core::{
    GroupName, Heartbeat, HeartbeatOutcome, HostId, HostPattern, HostRecord, MonitorMark, Notice,
    NoticeKind, Outbox, Silence, Status, Store, StoreError, Timestamp, add,
};
use iamalive_store_sqlite::SqliteStore;
use rusqlite::Connection;
use tempfile::TempDir;

/// The schema version this build writes (one per migration).
const SCHEMA_VERSION: i64 = 6;

fn t(secs: u64) -> Timestamp {
    add(
        DateTime::<Utc>::from_timestamp(1_767_225_600, 0).expect("2026-01-01"),
        Duration::from_secs(secs),
    )
}

fn host(s: &str) -> HostId {
    HostId::new(s).expect("valid host")
}

fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("t.db")).expect("open");
    (dir, store)
}

fn raw(store: &SqliteStore) -> Connection {
    let c = Connection::open(store.path()).expect("raw connection");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c
}

async fn beat(store: &SqliteStore, h: &HostId, at: Timestamp) -> HeartbeatOutcome {
    store
        .record_heartbeat(
            &Heartbeat::new(h.clone(), at),
            add(at, Duration::from_secs(10)),
            true,
        )
        .await
        .expect("heartbeat")
}

async fn get(store: &SqliteStore, h: &HostId) -> HostRecord {
    store.get(h).await.expect("get").expect("present")
}

async fn set(store: &SqliteStore, rec: &HostRecord, f: impl FnOnce(&mut HostRecord)) -> HostRecord {
    let mut next = rec.clone();
    f(&mut next);
    next.version = rec.version + 1;
    assert!(
        store
            .compare_and_swap(rec.version, &next)
            .await
            .expect("cas")
    );
    next
}

fn notice(h: &HostId, kind: NoticeKind) -> Notice {
    Notice {
        last_seen: t(0),
        missing_since: t(10),
        silent_for: Duration::from_secs(30),
        alarm_count: 1,
        next_reminder: Some(t(90)),
        message: Some("disk \"full\"\n✓".into()),
        ..Notice::new(
            format!("{h}@0/{kind}/1"),
            format!("{h}@0"),
            kind,
            h.clone(),
            t(30),
        )
    }
}

async fn due_hosts(store: &SqliteStore, now: Timestamp, limit: usize) -> Vec<String> {
    store
        .due(now, limit)
        .await
        .expect("due")
        .into_iter()
        .map(|r| r.host.to_string())
        .collect()
}

#[tokio::test]
async fn opens_with_wal_schema_version_and_display() {
    let (dir, store) = fresh();
    let path = dir.path().join("t.db");
    assert_eq!(store.to_string(), format!("sqlite({})", path.display()));
    let c = raw(&store);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    // Reopening an existing file keeps its data and does not migrate again.
    beat(&store, &host("a"), t(0)).await;
    drop(store);
    let again = SqliteStore::builder()
        .path(&path)
        .busy_timeout(Duration::from_millis(500))
        .build()
        .expect("reopen");
    assert_eq!(get(&again, &host("a")).await.version, 1);
}

#[tokio::test]
async fn builder_names_the_bad_setting() {
    let err = SqliteStore::builder().build().expect_err("no path");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("path"), "{err}");
    let err = SqliteStore::open(":memory:").expect_err("memory");
    assert!(err.to_string().contains("MemoryStore"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::builder()
        .path(dir.path().join("x.db"))
        .readers(0)
        .build()
        .expect_err("no readers");
    assert!(err.to_string().contains("readers"), "{err}");
    let err = SqliteStore::open(dir.path().join("no/such/dir/x.db")).expect_err("bad dir");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

/// A file written before groups existed (schema 2, no `group_name`
/// or `policy` column) is migrated on open: its hosts read back with no group, keep
/// their data, and take a group from their next heartbeat.
#[tokio::test]
async fn a_file_from_before_groups_is_migrated() {
    let (dir, store) = fresh();
    beat(&store, &host("old-1"), t(0)).await;
    let c = raw(&store);
    drop(store);
    c.execute_batch(
        "DROP INDEX hosts_group; ALTER TABLE hosts DROP COLUMN interval_ms; ALTER TABLE hosts DROP COLUMN gap_ms; ALTER TABLE hosts DROP COLUMN prev_gap_ms;
         ALTER TABLE hosts DROP COLUMN flips; ALTER TABLE hosts DROP COLUMN flapping;
         ALTER TABLE hosts DROP COLUMN policy; ALTER TABLE hosts DROP COLUMN group_name; DROP TABLE groups; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(c);
    let store = SqliteStore::open(dir.path().join("t.db")).expect("reopen");
    let r = get(&store, &host("old-1")).await;
    assert_eq!((r.group, r.last_seen, r.version), (None, t(0), 1));
    let mut hb = Heartbeat::new(host("old-1"), t(1));
    hb.group = Some(GroupName::new("office-berlin").unwrap());
    store.record_heartbeat(&hb, t(11), true).await.unwrap();
    assert_eq!(
        get(&store, &host("old-1"))
            .await
            .group
            .map(|g| g.to_string()),
        Some("office-berlin".to_owned())
    );
    let v: i64 = raw(&store)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_file_from_a_newer_build_is_refused() {
    let (dir, store) = fresh();
    raw(&store).pragma_update(None, "user_version", 99).unwrap();
    drop(store);
    let err = SqliteStore::open(dir.path().join("t.db")).expect_err("too new");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn heartbeat_creates_updates_and_reports_unknown() {
    let (_dir, store) = fresh();
    let h = host("Web-01");
    let hb = Heartbeat::new(h.clone(), t(0));
    let out = store.record_heartbeat(&hb, t(10), false).await.unwrap();
    assert_eq!(out, HeartbeatOutcome::Unknown);
    assert!(store.get(&h).await.unwrap().is_none(), "nothing written");

    let mut hb = Heartbeat::new(h.clone(), t(0));
    hb.message = Some("hello".into());
    let out = store.record_heartbeat(&hb, t(10), true).await.unwrap();
    assert_eq!(out, HeartbeatOutcome::Created);
    let mut expected = HostRecord::new(h.clone(), t(0), Duration::from_secs(10));
    expected.message = Some("hello".into());
    assert_eq!(
        get(&store, &h).await,
        expected,
        "created as HostRecord::new"
    );

    assert_eq!(
        beat(&store, &h, t(5)).await,
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let r = get(&store, &h).await;
    // due 10 already lies between half a timeout from 5 s and the new
    // deadline (15), so it is kept: early is allowed, late never.
    assert_eq!((r.version, r.last_seen, r.due_at), (2, t(5), Some(t(10))));
    assert_eq!(
        r.message.as_deref(),
        Some("hello"),
        "message kept when absent"
    );
    // Out of order: last_seen keeps the later instant, version still moves.
    beat(&store, &h, t(2)).await;
    let r = get(&store, &h).await;
    assert_eq!((r.version, r.last_seen), (3, t(5)));
}

#[tokio::test]
async fn heartbeat_due_rules_by_status_and_outbox() {
    let (_dir, store) = fresh();
    let h = host("db");
    beat(&store, &h, t(0)).await;
    for status in [Status::Missing, Status::Alarmed] {
        let r = get(&store, &h).await;
        set(&store, &r, |n| {
            n.status = status;
            n.due_at = Some(t(500));
        })
        .await;
        let mut hb = Heartbeat::new(h.clone(), t(20));
        hb.report = Some("{\"failed_attempts\":3}".into());
        let out = store.record_heartbeat(&hb, t(30), true).await.unwrap();
        assert_eq!(out, HeartbeatOutcome::Updated { status });
        let r = get(&store, &h).await;
        assert_eq!(r.due_at, Some(t(20)), "{status}: due at the heartbeat");
        assert_eq!(r.status, status, "the heartbeat never changes status");
        assert_eq!(r.report.as_deref(), Some("{\"failed_attempts\":3}"));
        assert_eq!(due_hosts(&store, t(20), 10).await, vec!["db"]);
    }
    // Paused: nothing becomes due.
    let r = get(&store, &h).await;
    set(&store, &r, |n| {
        n.status = Status::Paused;
        n.due_at = None;
    })
    .await;
    beat(&store, &h, t(40)).await;
    let r = get(&store, &h).await;
    assert_eq!(
        (r.status, r.due_at, r.last_seen),
        (Status::Paused, None, t(40))
    );
    assert!(store.next_due().await.unwrap().is_none());
    // Up with a recovery owed: due_at is left alone.
    let r = set(&store, &r, |n| {
        n.status = Status::Up;
        n.due_at = Some(t(41));
        n.outbox = Some(Box::new(Outbox::new(notice(&h, NoticeKind::Recovery))));
    })
    .await;
    beat(&store, &h, t(42)).await;
    let after = get(&store, &h).await;
    assert_eq!(after.due_at, Some(t(41)));
    assert_eq!(after.outbox, r.outbox);
}

#[tokio::test]
async fn an_acknowledged_heartbeat_is_committed() {
    let (_dir, store) = fresh();
    beat(&store, &host("durable"), t(7)).await;
    // A separate connection (another process would see the same) reads it.
    let c = raw(&store);
    let v: i64 = c
        .query_row(
            "SELECT version FROM hosts WHERE host = 'durable'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 1);
}

#[tokio::test]
async fn compare_and_swap_rules() {
    let (_dir, store) = fresh();
    let h = host("cas");
    let rec = HostRecord::new(h.clone(), t(0), Duration::from_secs(10));
    assert!(
        !store.compare_and_swap(5, &rec).await.unwrap(),
        "absent, expected != 0"
    );
    assert!(store.get(&h).await.unwrap().is_none());
    assert!(
        store.compare_and_swap(0, &rec).await.unwrap(),
        "create if absent"
    );
    assert!(
        !store.compare_and_swap(0, &rec).await.unwrap(),
        "present: no create"
    );
    assert_eq!(get(&store, &h).await, rec);

    let mut next = rec.clone();
    next.version = 2;
    next.status = Status::Missing;
    next.missing_since = Some(t(10));
    next.silent_since = Some(t(0));
    next.last_checked = Some(t(11));
    next.due_at = Some(t(11));
    next.outbox = Some(Box::new(Outbox::new(notice(&h, NoticeKind::Alarm))));
    assert!(
        !store.compare_and_swap(7, &next).await.unwrap(),
        "stale version"
    );
    assert_eq!(get(&store, &h).await, rec, "nothing written");
    assert!(store.compare_and_swap(1, &next).await.unwrap());
    assert_eq!(get(&store, &h).await, next, "every field round-trips");
    assert_eq!(
        due_hosts(&store, t(11), 10).await,
        vec!["cas"],
        "index follows"
    );

    // A heartbeat between read and write makes the write fail.
    beat(&store, &h, t(12)).await;
    let mut later = next.clone();
    later.version = 3;
    later.due_at = None;
    assert!(!store.compare_and_swap(2, &later).await.unwrap());
    let r = get(&store, &h).await;
    assert_eq!((r.version, r.last_seen), (3, t(12)));

    // A swap to no due_at takes the record out of the index.
    let mut paused = r.clone();
    paused.version = 4;
    paused.status = Status::Paused;
    paused.due_at = None;
    paused.outbox = None;
    assert!(store.compare_and_swap(3, &paused).await.unwrap());
    assert!(store.due(t(1000), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn due_is_earliest_first_limited_and_indexed() {
    let (_dir, store) = fresh();
    for (name, due) in [("c", 30), ("a", 10), ("b", 20), ("d", 40)] {
        store
            .record_heartbeat(&Heartbeat::new(host(name), t(0)), t(due), true)
            .await
            .unwrap();
    }
    let r = get(&store, &host("d")).await;
    set(&store, &r, |n| n.due_at = None).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t(10)));
    assert!(store.due(t(9), 10).await.unwrap().is_empty());
    assert_eq!(due_hosts(&store, t(30), 10).await, vec!["a", "b", "c"]);
    assert_eq!(due_hosts(&store, t(30), 2).await, vec!["a", "b"]);
    assert_eq!(
        due_hosts(&store, t(1000), 10).await,
        vec!["a", "b", "c"],
        "no due_at, never due"
    );
    assert!(store.due(t(30), 0).await.unwrap().is_empty());
    // Extreme instants keep their order.
    let r = get(&store, &host("a")).await;
    set(&store, &r, |n| n.due_at = Some(DateTime::<Utc>::MAX_UTC)).await;
    assert_eq!(store.next_due().await.unwrap(), Some(t(20)));
    assert_eq!(
        get(&store, &host("a")).await.due_at,
        Some(DateTime::<Utc>::MAX_UTC)
    );

    // O(due): both queries are answered from the partial index.
    let c = raw(&store);
    for sql in [
        "EXPLAIN QUERY PLAN SELECT * FROM hosts WHERE due_at <= 5 ORDER BY due_at LIMIT 10",
        "EXPLAIN QUERY PLAN SELECT due_at FROM hosts WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1",
    ] {
        let plan: Vec<String> = c
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join(" | ");
        assert!(plan.contains("INDEX hosts_due"), "{sql}: {plan}");
        assert!(
            !plan.contains("SCAN hosts") || plan.contains("USING"),
            "{sql}: {plan}"
        );
        assert!(
            !plan.contains("TEMP B-TREE"),
            "{sql}: sorted by the index: {plan}"
        );
    }
}

#[tokio::test]
async fn list_pages_by_host_and_remove() {
    let (_dir, store) = fresh();
    for name in ["b", "a", "d", "c", "e"] {
        beat(&store, &host(name), t(0)).await;
    }
    let names = |v: Vec<HostRecord>| {
        v.into_iter()
            .map(|r| r.host.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(store.list(None, 2).await.unwrap()), vec!["a", "b"]);
    assert_eq!(
        names(store.list(Some(&host("b")), 2).await.unwrap()),
        vec!["c", "d"]
    );
    assert_eq!(
        names(store.list(Some(&host("d")), 10).await.unwrap()),
        vec!["e"]
    );
    assert!(store.list(Some(&host("e")), 10).await.unwrap().is_empty());
    assert!(store.remove(&host("c")).await.unwrap());
    assert!(!store.remove(&host("c")).await.unwrap());
    assert!(store.get(&host("c")).await.unwrap().is_none());
    assert_eq!(
        names(store.due(t(100), 10).await.unwrap()).len(),
        4,
        "gone from the index"
    );
}

#[tokio::test]
async fn silences_are_stored_replaced_and_removed() {
    let (_dir, store) = fresh();
    let pat = HostPattern::new("db-*").unwrap();
    let s1 = Silence::new("m1", pat.clone(), t(0), t(60), "patching \"db\"").unwrap();
    let s2 = Silence::new("m2", pat.clone(), t(10), t(20), "").unwrap();
    store.put_silence(&s1).await.unwrap();
    store.put_silence(&s2).await.unwrap();
    assert_eq!(
        store.silences().await.unwrap(),
        vec![s1.clone(), s2.clone()]
    );
    let s1b = Silence::new("m1", pat, t(0), t(120), "longer").unwrap();
    store.put_silence(&s1b).await.unwrap();
    assert_eq!(store.silences().await.unwrap(), vec![s1b, s2.clone()]);
    assert!(store.remove_silence("m1").await.unwrap());
    assert!(!store.remove_silence("m1").await.unwrap());
    assert_eq!(store.silences().await.unwrap(), vec![s2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_run_advances_and_keeps_downtime() {
    let (_dir, store) = fresh();
    let gap = Duration::from_secs(10);
    let m = store.mark_run(t(0), gap).await.unwrap();
    assert_eq!(m, MonitorMark::default().advance(t(0), gap));
    let m = store.mark_run(t(5), gap).await.unwrap();
    assert_eq!((m.last_run, m.downtime), (Some(t(5)), None));
    let m = store.mark_run(t(100), gap).await.unwrap();
    let d = m.downtime.expect("downtime");
    assert_eq!((d.from, d.until), (t(5), t(100)));
    // Two monitors at once: the later instant wins, the downtime is kept.
    let store = Arc::new(store);
    let (a, b) = tokio::join!(store.mark_run(t(103), gap), store.mark_run(t(102), gap));
    a.unwrap();
    b.unwrap();
    let m = store.mark_run(t(104), gap).await.unwrap();
    assert_eq!(m.last_run, Some(t(104)));
    assert_eq!(m.downtime.map(|d| (d.from, d.until)), Some((t(5), t(100))));
}

#[tokio::test]
async fn garbage_rows_are_corrupt_not_panics() {
    let (_dir, store) = fresh();
    for name in ["status", "outbox", "seen", "count", "ok"] {
        beat(&store, &host(name), t(0)).await;
    }
    let c = raw(&store);
    c.execute_batch(
        "UPDATE hosts SET status = 'exploded' WHERE host = 'status';
         UPDATE hosts SET outbox = '{not json' WHERE host = 'outbox';
         UPDATE hosts SET last_seen = 'yesterday' WHERE host = 'seen';
         UPDATE hosts SET alarm_count = -3 WHERE host = 'count';
         INSERT INTO hosts (host, status, last_seen, watch_from, alarm_count, version)
             VALUES ('BAD HOST', 'up', 0, 0, 0, 1);
         INSERT INTO silences (id, body) VALUES ('junk', '[1,2');",
    )
    .unwrap();
    for (name, what) in [
        ("status", "exploded"),
        ("outbox", "outbox"),
        ("seen", "last_seen"),
        ("count", "alarm_count"),
    ] {
        match store.get(&host(name)).await {
            Err(StoreError::Corrupt { key, reason, .. }) => {
                assert_eq!(key, name);
                assert!(reason.contains(what), "{name}: {reason}");
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
    assert!(
        store.get(&host("ok")).await.unwrap().is_some(),
        "good rows still read"
    );
    assert!(matches!(
        store.list(None, 100).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.due(t(1000), 100).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.silences().await,
        Err(StoreError::Corrupt { ref key, .. }) if key.contains("junk")
    ));
    // A heartbeat for a host whose status is garbage writes nothing.
    for create in [true, false] {
        match store
            .record_heartbeat(&Heartbeat::new(host("status"), t(9)), t(19), create)
            .await
        {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "status"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    let v: i64 = c
        .query_row("SELECT version FROM hosts WHERE host = 'status'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(v, 1, "untouched");
    // An operator can remove the bad row.
    assert!(store.remove(&host("status")).await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn a_locked_file_never_blocks_the_runtime() {
    let (_dir, store) = fresh();
    beat(&store, &host("a"), t(0)).await;
    // Another process holds the write lock.
    let blocker = raw(&store);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let store = Arc::new(store);
    let pending = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { beat(&store, &host("a"), t(1)).await })
    };
    tokio::task::yield_now().await;
    // The single runtime thread is free: reads (WAL) still answer.
    assert_eq!(get(&store, &host("a")).await.version, 1);
    assert!(!pending.is_finished());
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(
        pending.await.unwrap(),
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    assert_eq!(get(&store, &host("a")).await.version, 2);
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::builder()
        .path(dir.path().join("t.db"))
        .busy_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let blocker = raw(&store);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .record_heartbeat(&Heartbeat::new(host("a"), t(0)), t(10), true)
        .await
        .expect_err("locked");
    assert!(err.is_transient(), "{err}");
    blocker.execute_batch("ROLLBACK").unwrap();
    // The writer recovers once the lock is gone.
    assert_eq!(
        beat(&store, &host("a"), t(0)).await,
        HeartbeatOutcome::Created
    );
}

#[tokio::test]
async fn many_openers_of_a_new_file_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SqliteStore::open(path))
        })
        .collect();
    let stores: Vec<SqliteStore> = openers
        .into_iter()
        .map(|t| t.join().unwrap().expect("every opener succeeds"))
        .collect();
    for (i, s) in stores.iter().enumerate() {
        beat(s, &host(&format!("h{i}")), t(0)).await;
    }
    let c = raw(&stores[0]);
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM hosts", [], |r| r.get(0))
        .unwrap();
    let marks: i64 = c
        .query_row("SELECT count(*) FROM monitor_mark", [], |r| r.get(0))
        .unwrap();
    assert_eq!((v, n, marks), (SCHEMA_VERSION, 6, 1));
}

/// An up host's `due_at` is left where it is while it lies between half a
/// timeout from now and the new deadline (no write to the due index), and
/// moved otherwise; it is never later than the new deadline.
#[tokio::test]
async fn up_heartbeat_rearms_the_due_index_lazily_never_late() {
    let (_d, store) = fresh();
    let h = host("lazy");
    beat(&store, &h, t(0)).await; // due 10
    // At 4 s the new deadline is 14, half way is 9: 10 is kept.
    beat(&store, &h, t(4)).await;
    let r = get(&store, &h).await;
    assert_eq!((r.due_at, r.last_seen, r.version), (Some(t(10)), t(4), 2));
    // At 6 s half way is 11: 10 is too early to keep, so it moves to 16.
    beat(&store, &h, t(6)).await;
    assert_eq!(get(&store, &h).await.due_at, Some(t(16)));
    // A shorter timeout than before: the kept due_at would be late, so it moves.
    store
        .record_heartbeat(&Heartbeat::new(h.clone(), t(7)), t(9), true)
        .await
        .expect("heartbeat");
    assert_eq!(get(&store, &h).await.due_at, Some(t(9)));
    // A message still lands on the lazy path.
    // At 8 s with a 2 s timeout half way is 9: 9 is kept.
    let mut hb = Heartbeat::new(h.clone(), t(8));
    hb.message = Some("kept due, new message".into());
    store
        .record_heartbeat(&hb, t(10), true)
        .await
        .expect("heartbeat");
    let r = get(&store, &h).await;
    assert_eq!(r.due_at, Some(t(9)));
    assert_eq!(r.message.as_deref(), Some("kept due, new message"));
}

/// A file written before per-host policies (schema 3, no `policy` column)
/// is migrated on open: its hosts read back with no stored policy, and a
/// policy can then be stored and the heartbeat keeps the monitor's
/// `due_at` for it.
#[tokio::test]
async fn a_file_from_before_policies_migrates_and_keeps_its_hosts() {
    let (dir, store) = fresh();
    let path = dir.path().join("t.db");
    beat(&store, &host("old"), t(0)).await;
    drop(store);
    {
        // Back to what a schema-3 build (groups, no policies) wrote.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP INDEX hosts_group; ALTER TABLE hosts DROP COLUMN interval_ms; ALTER TABLE hosts DROP COLUMN gap_ms; ALTER TABLE hosts DROP COLUMN prev_gap_ms;
         ALTER TABLE hosts DROP COLUMN flips; ALTER TABLE hosts DROP COLUMN flapping;
             ALTER TABLE hosts DROP COLUMN policy; PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).expect("migrates");
    let c = raw(&store);
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let rec = get(&store, &host("old")).await;
    assert_eq!((rec.last_seen, rec.policy.as_deref()), (t(0), None));
    let policy = iamalive_core::HostPolicy::Timeout(Duration::from_secs(3600));
    let rec = set(&store, &rec, |r| {
        r.policy = Some(Box::new(policy.clone()));
        r.due_at = Some(t(3600));
    })
    .await;
    assert_eq!(rec.policy.as_deref(), Some(&policy));
    beat(&store, &host("old"), t(5)).await;
    let after = get(&store, &host("old")).await;
    assert_eq!(after.policy.as_deref(), Some(&policy));
    assert_eq!(
        after.due_at,
        Some(t(3600)),
        "the heartbeat keeps a stored policy's due_at"
    );
}

/// A file written before flapping (schema 4, no `flap` column) is migrated
/// on open: its hosts read back with no flip history, and one can then be
/// stored and read back as written.
#[tokio::test]
async fn a_file_from_before_flapping_migrates_and_keeps_its_hosts() {
    let (dir, store) = fresh();
    let path = dir.path().join("t.db");
    beat(&store, &host("old"), t(0)).await;
    drop(store);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP INDEX hosts_group; ALTER TABLE hosts DROP COLUMN interval_ms; ALTER TABLE hosts DROP COLUMN gap_ms; ALTER TABLE hosts DROP COLUMN prev_gap_ms;
         ALTER TABLE hosts DROP COLUMN flips; ALTER TABLE hosts DROP COLUMN flapping;
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).expect("migrates");
    let v: i64 = raw(&store)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let rec = get(&store, &host("old")).await;
    assert_eq!((rec.last_seen, rec.flap.as_deref()), (t(0), None));
    let flap = iamalive_core::flap::Flap {
        flips: vec![t(10), t(20)],
        episode: None,
    };
    let rec = set(&store, &rec, |r| r.flap = Some(Box::new(flap.clone()))).await;
    assert_eq!(rec.flap.as_deref(), Some(&flap));
    beat(&store, &host("old"), t(25)).await;
    assert_eq!(
        get(&store, &host("old")).await.flap.as_deref(),
        Some(&flap),
        "a heartbeat leaves the history alone"
    );
}

/// A file written before intervals were kept (schema 5) is migrated on
/// open: its hosts read back with no interval, the group index serves
/// their group at once, and an interval sent or learned afterwards
/// survives closing and reopening the file.
#[tokio::test]
async fn a_file_from_before_intervals_migrates_and_keeps_them_across_restarts() {
    let (dir, store) = fresh();
    let path = dir.path().join("t.db");
    let ber = GroupName::new("office-berlin").unwrap();
    let mut hb = Heartbeat::new(host("old"), t(0));
    hb.group = Some(ber.clone());
    store
        .record_heartbeat(&hb, t(10), true)
        .await
        .expect("heartbeat");
    drop(store);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP INDEX hosts_group; ALTER TABLE hosts DROP COLUMN interval_ms;
             ALTER TABLE hosts DROP COLUMN gap_ms; ALTER TABLE hosts DROP COLUMN prev_gap_ms;
             PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).expect("migrates");
    let v: i64 = raw(&store)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(get(&store, &host("old")).await.interval.get(), None);
    let members = store.group_hosts(&ber, 10).await.unwrap().unwrap();
    assert_eq!(members.len(), 1, "the index covers rows written before it");
    // The plan reads the group by its index, not by a walk of the table.
    let plan: String = raw(&store)
        .query_row(
            "EXPLAIN QUERY PLAN SELECT host FROM hosts WHERE group_name = 'x' LIMIT 5",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("hosts_group"), "{plan}");
    // Learned (a beat without one), then sent by another host.
    beat(&store, &host("old"), t(30)).await;
    let mut sent = Heartbeat::new(host("agent"), t(30));
    sent.interval = Some(Duration::from_secs(240));
    store
        .record_heartbeat(&sent, t(40), true)
        .await
        .expect("heartbeat");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopens");
    use iamalive_core::beat::IntervalSource;
    assert_eq!(
        get(&store, &host("old")).await.interval.get(),
        Some((Duration::from_secs(30), IntervalSource::Learned))
    );
    assert_eq!(
        get(&store, &host("agent")).await.interval.get(),
        Some((Duration::from_secs(240), IntervalSource::Sent))
    );
}
