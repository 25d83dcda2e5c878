//! The whole core conformance suite, each test on a fresh database file
//! named after it.

use std::sync::{Arc, Mutex};

use iamalive_core::Store;
use iamalive_core::conformance::{run_all_named, suite_names};
use iamalive_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Arc::new(Mutex::new(Vec::new()));
    let ran = run_all_named(|name| {
        let path = dir.path().join(format!("{name}.db"));
        let opened = Arc::clone(&opened);
        async move {
            assert!(!path.exists(), "{name} got a file another test used");
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
            opened.lock().unwrap().push(name);
            store
        }
    })
    .await;
    assert_eq!(ran, suite_names(), "every suite function ran, in order");
    assert_eq!(
        *opened.lock().unwrap(),
        ran,
        "each ran on a database file of its own"
    );
    for name in ran {
        assert!(
            dir.path().join(format!("{name}.db")).exists(),
            "{name}: its file holds what it wrote"
        );
    }
}
