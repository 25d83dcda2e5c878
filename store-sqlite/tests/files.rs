//! The database as a file: deleted or replaced while open, deleted before a
//! start, checkpointed for a stop, backed up while in use, and side files
//! that SQLite cannot write.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use iamalive_core::{Heartbeat, HostId, Store, StoreError, add};
use iamalive_store_sqlite::SqliteStore;

fn host(i: usize) -> HostId {
    HostId::new(format!("host-{i:05}")).expect("valid host")
}

async fn fill(store: &SqliteStore, n: usize) {
    let now = Utc::now();
    let due = add(now, Duration::from_secs(600));
    let beats = (0..n).map(|i| {
        let hb = Heartbeat::new(host(i), now);
        async move { store.record_heartbeat(&hb, due, true).await }
    });
    for r in futures::future::join_all(beats).await {
        r.expect("heartbeat stored");
    }
}

async fn count(store: &SqliteStore) -> usize {
    let mut after: Option<HostId> = None;
    let mut n = 0;
    loop {
        let page = store.list(after.as_ref(), 1000).await.expect("list");
        let Some(last) = page.last() else { break };
        after = Some(last.host.clone());
        n += page.len();
    }
    n
}

fn lost_reason(r: Result<(), StoreError>) -> String {
    match r {
        Err(e @ StoreError::Lost { .. }) => e.to_string(),
        other => panic!("expected a loss, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_deleted_or_replaced_while_open_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, 3).await;
    store.check().await.expect("the file is the one opened");

    std::fs::remove_file(&path).unwrap();
    let why = lost_reason(store.check().await);
    assert!(why.contains("was deleted") && why.contains("w.db"), "{why}");
    // Heartbeats still land in the file it holds (SQLite's reads of a
    // deleted WAL database may fail meanwhile: "disk I/O error").
    fill(&store, 4).await;

    // Another database put in its place is not the one this process uses.
    std::fs::write(&path, b"").unwrap();
    let why = lost_reason(store.check().await);
    assert!(why.contains("was replaced"), "{why}");
}

#[tokio::test]
async fn a_start_refuses_to_replace_a_deleted_database_with_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    // The first start ever, with nothing there, needs no setting.
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, 5).await;
    drop(store);
    std::fs::remove_file(&path).unwrap();

    let e = SqliteStore::open(&path).expect_err("refused");
    let text = e.to_string();
    assert!(e.is_lost(), "{e:?}");
    assert!(
        text.contains(&path.display().to_string()) && text.contains("IAMALIVE_SQLITE_CREATE"),
        "{text}"
    );
    assert!(!path.exists(), "nothing was created");

    // A sign given by the caller counts too (the server's key file).
    let dir2 = tempfile::tempdir().unwrap();
    let key = dir2.path().join("w.db.key");
    std::fs::write(&key, "sha256:00\n").unwrap();
    let e = SqliteStore::builder()
        .path(dir2.path().join("w.db"))
        .deployment_sign(&key)
        .build()
        .expect_err("refused");
    assert!(e.to_string().contains("w.db.key"), "{e}");

    // On purpose: a fresh, empty store.
    let store = SqliteStore::builder()
        .path(&path)
        .create(true)
        .build()
        .unwrap();
    assert_eq!(count(&store).await, 0);
}

#[tokio::test]
async fn a_stale_wal_is_set_aside_not_replayed_into_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    std::fs::write(dir.path().join("w.db-wal"), b"stale").unwrap();
    let e = SqliteStore::open(&path).expect_err("a -wal with no database is a sign");
    assert!(e.to_string().contains("w.db-wal"), "{e}");
    let store = SqliteStore::builder()
        .path(&path)
        .create(true)
        .build()
        .unwrap();
    fill(&store, 1).await;
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("w.db-wal.orphaned-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

fn wal_len(path: &Path) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
}

#[tokio::test]
async fn a_checkpoint_leaves_everything_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, 2000).await;
    assert!(wal_len(&path) > 0, "the writes sit in the WAL");
    let c = store.checkpoint().await.unwrap();
    assert!(c.complete, "{c:?}");
    assert_eq!(wal_len(&path), 0, "truncated");
    // The file alone, copied, holds every host.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM hosts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2000);
}

#[tokio::test]
async fn a_backup_taken_while_the_store_writes_holds_every_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, 3000).await;
    // Writes keep landing while the backup runs.
    let writing = fill(&store, 3000);
    let to = dir.path().join("backup.db");
    let (from, dest) = (path.clone(), to.clone());
    let backup = tokio::task::spawn_blocking(move || iamalive_store_sqlite::backup(&from, &dest));
    let ((), report) = tokio::join!(writing, backup);
    let report = report.unwrap().unwrap();
    assert_eq!(report.hosts, 3000, "{report:?}");
    assert!(!to.with_extension("db.partial").exists());
    let copy = SqliteStore::open(&to).unwrap();
    assert_eq!(count(&copy).await, 3000);
    let e = iamalive_store_sqlite::backup(&path, &to).expect_err("never overwrites");
    assert!(e.to_string().contains("exists"), "{e}");
}

/// `chattr` needs root and a file system with inode flags; under CI that
/// is required, elsewhere the test says why it did nothing.
fn chattr(flag: &str, path: &Path) -> bool {
    let ok = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chattr {flag} {} failed; CI must run this as root on a file system with inode flags",
            path.display()
        );
        eprintln!("skipped: chattr {flag} is not available here");
    }
    ok
}

struct Mutable(PathBuf);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// An immutable, empty `-shm` made SQLite map it read-only and the process
/// die of SIGBUS; now the open fails naming the file.
#[tokio::test]
async fn an_immutable_shm_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, 10).await;
    store.checkpoint().await.unwrap();
    drop(store);
    std::thread::sleep(Duration::from_millis(200));
    let shm = dir.path().join("w.db-shm");
    let _ = std::fs::remove_file(&shm);
    std::fs::write(&shm, b"").unwrap();
    if !chattr("+i", &shm) {
        return;
    }
    let _guard = Mutable(shm.clone());
    let e = SqliteStore::open(&path).expect_err("refused at open");
    let text = e.to_string();
    assert!(
        text.contains("w.db-shm") && text.contains("cannot be opened for writing"),
        "{text}"
    );
}
