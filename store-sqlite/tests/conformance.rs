//! The whole core conformance suite, each test on a fresh database file.

use std::sync::{Arc, Mutex};

use iamalive_core::Store;
use iamalive_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = Mutex::new(0u32);
    let stores = Arc::new(Mutex::new(Vec::new()));
    iamalive_core::conformance::run_all(|| {
        let path = {
            let mut n = n.lock().unwrap();
            *n += 1;
            dir.path().join(format!("conformance-{n}.db"))
        };
        let stores = Arc::clone(&stores);
        async move {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
            stores.lock().unwrap().push(path);
            store
        }
    })
    .await;
    assert_eq!(
        stores.lock().unwrap().len(),
        17,
        "every suite function ran on its own file"
    );
}
