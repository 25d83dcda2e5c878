//! The core's whole Store conformance suite against a real moto server,
//! each suite function on a fresh table.

mod common;

use std::sync::Arc;

use iamalive_core::Store;
use iamalive_store_dynamo::DynamoStore;

/// The suite on `shards` due-index shards (`None`: the default).
async fn run(shards: Option<u16>) {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let client = common::client(&moto);
    iamalive_core::conformance::run_all(|| {
        let client = client.clone();
        async move {
            let table = format!("iamalive-conf-{}", uuid::Uuid::new_v4());
            let store = DynamoStore::new(client, table);
            let store = match shards {
                Some(n) => store.with_shards(n),
                None => store,
            };
            store.create_table_if_missing().await.expect("create table");
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test]
async fn conformance_on_moto() {
    run(None).await;
}

/// The suite again with a single shard and with many: the shard count
/// must not change behaviour.
#[tokio::test]
async fn conformance_with_one_and_sixteen_shards() {
    run(Some(1)).await;
    run(Some(16)).await;
}
