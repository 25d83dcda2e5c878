//! The conformance suite against the in-memory store.

use std::sync::Arc;

use iamalive_core::{MemoryStore, Store};

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    iamalive_core::conformance::run_all(|| async {
        Arc::new(MemoryStore::new()) as Arc<dyn Store>
    })
    .await;
}
