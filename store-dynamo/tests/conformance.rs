//! The core's whole Store conformance suite against a real moto server,
//! each suite function on a fresh table.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use iamalive_core::Store;
use iamalive_store_dynamo::DynamoStore;

#[tokio::test]
async fn conformance_on_moto() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(moto.http_url())
        .build();
    let client = Client::from_conf(conf);
    iamalive_core::conformance::run_all(|| {
        let client = client.clone();
        async move {
            let table = format!("iamalive-conf-{}", uuid::Uuid::new_v4());
            let store = DynamoStore::new(client, table);
            store.create_table_if_missing().await.expect("create table");
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

/// The suite again with a single shard and with many: the shard count
/// must not change behaviour.
#[tokio::test]
async fn conformance_with_one_and_sixteen_shards() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(moto.http_url())
        .build();
    let client = Client::from_conf(conf);
    for shards in [1, 16] {
        iamalive_core::conformance::run_all(|| {
            let client = client.clone();
            async move {
                let table = format!("iamalive-conf-{}", uuid::Uuid::new_v4());
                let store = DynamoStore::new(client, table).with_shards(shards);
                store.create_table_if_missing().await.expect("create table");
                Arc::new(store) as Arc<dyn Store>
            }
        })
        .await;
    }
}
