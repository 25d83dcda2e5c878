//! `iamalive backup FILE`, the binary by that name, as an operator runs it
//! beside a watcher that is serving the database: the copy opens as a
//! store and holds the hosts; 0 when written, 1 when it failed (the file
//! already there is left as it was), 2 on a configuration or usage error.

use iamalive_core::{HostId, Store};
use iamalive_store_sqlite::SqliteStore;
use iamalive_testkit::watcher::{Watcher, command};

const BIN: &str = env!("CARGO_BIN_EXE_iamalive");
const CONFIG: &str = "[sqlite]\npath = \"state.db\"\n";
const HOSTS: [&str; 3] = ["web-1", "web-2", "db-1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_served_database_and_exits_0_1_or_2() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = Watcher::start(BIN, &["serve"], dir.path(), CONFIG, &[]).await;
    for h in HOSTS {
        watcher.beat(h).await;
    }
    let backup = |args: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = ["backup"].iter().chain(args).copied().collect();
        command(BIN, &args, dir.path(), CONFIG, env)
            .output()
            .expect("run iamalive backup")
    };

    // Written while the watcher serves: 0, and it says what it copied.
    let o = backup(&["copy.db"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out.contains("3 hosts"), "{out}");
    let copy = dir.path().join("copy.db");
    let store = SqliteStore::builder()
        .path(&copy)
        .create(false)
        .build()
        .expect("the copy opens as a store");
    for h in HOSTS {
        let rec = store
            .get(&HostId::new(h).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{h} is not in the copy"));
        assert_eq!(rec.host.as_str(), h);
    }
    drop(store);

    // A file already there: 1, named, and left as it was.
    let before = std::fs::read(&copy).unwrap();
    let o = backup(&["copy.db"], &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("iamalive: backup failed") && err.contains("copy.db"),
        "{err}"
    );
    assert_eq!(std::fs::read(&copy).unwrap(), before);

    // A configuration error: 2, the setting named, nothing written.
    let o = backup(&["other.db"], &[("IAMALIVE_TIMEOUT", "soon")]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("IAMALIVE_TIMEOUT"));
    assert!(!dir.path().join("other.db").exists());

    // No FILE: a usage error, 2.
    let o = backup(&[], &[]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    drop(watcher);
}
