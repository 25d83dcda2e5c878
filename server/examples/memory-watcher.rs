//! The server over a memory store with no channels (notices go nowhere):
//! the smallest real deployment, for load and abuse tests of the HTTP side.
//! Configured like every binary (`IAMALIVE_*`, `--config FILE`).

use std::sync::Arc;

use iamalive_core::{MemoryStore, Store};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    iamalive_server::run_binary(
        "memory-watcher",
        "usage: memory-watcher [--config FILE]",
        &[],
        |_config| async {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            Ok((store, vec![]))
        },
    )
    .await
}
