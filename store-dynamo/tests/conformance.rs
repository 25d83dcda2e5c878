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

/// The suite's flapping case alone (also in the whole suite above), on 16
/// shards: a quick check of the `flips`/`flapping` attributes and the
/// heartbeat's fast path keeping a flapping host's `dueAt`.
#[tokio::test]
async fn flapping_case_on_moto() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let client = common::client(&moto);
    let table = format!("iamalive-flap-{}", uuid::Uuid::new_v4());
    let store = DynamoStore::new(client, table).with_shards(16);
    store.create_table_if_missing().await.expect("create table");
    iamalive_core::conformance::flapping_is_one_notice_then_its_end(Arc::new(store)).await;
}

/// The suite's group flapping case alone (also in the whole suite): the
/// group record's `flap` field through a conditional put, on moto.
#[tokio::test]
async fn group_flapping_case_on_moto() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let client = common::client(&moto);
    let table = format!("iamalive-gflap-{}", uuid::Uuid::new_v4());
    let store = DynamoStore::new(client, table).with_shards(16);
    store.create_table_if_missing().await.expect("create table");
    iamalive_core::conformance::group_flapping_is_one_notice_then_its_end(Arc::new(store)).await;
}
