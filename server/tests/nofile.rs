//! Every connection is an open file: `serve` raises the soft open-file
//! limit to the hard limit at start. (Its own test binary: it changes a
//! limit of the whole process.)

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::{MemoryStore, Store};
use iamalive_server::{Config, serve_until};
use rlimit::Resource;

#[tokio::test]
async fn serve_raises_the_open_file_limit_to_the_hard_limit() {
    let (_, hard) = Resource::NOFILE.get().unwrap();
    assert!(
        hard > 256,
        "the hard open-file limit ({hard}) is too low for this test"
    );
    // Start from a low soft limit, as a default `ulimit -n` of 1024 would.
    Resource::NOFILE.set(256, hard).unwrap();
    assert_eq!(Resource::NOFILE.get_soft().unwrap(), 256);

    let config = Config::from_sources(
        None,
        [
            ("IAMALIVE_API_KEYS", "nofile-test-key-0123456789"),
            ("IAMALIVE_LISTEN", "127.0.0.1:0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_until(config, store, vec![], async {
        let _ = rx.await;
    }));
    // Bounded: the limit is raised before the server listens.
    let mut soft = 256;
    for _ in 0..250 {
        soft = Resource::NOFILE.get_soft().unwrap();
        if soft == hard {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    assert_eq!(soft, hard, "the soft open-file limit was not raised");
}
