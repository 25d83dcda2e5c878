//! Shared by the store's test files: a client for a local moto server.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use iamalive_testkit::Server;

/// A DynamoDB client for `moto`, with the fake credentials and region moto
/// accepts, set on the client rather than in the process environment.
pub(crate) fn client(moto: &Server) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(moto.http_url())
        .build();
    Client::from_conf(conf)
}

/// Every entry of the due index as `(server, dueAt)`, all shards read.
#[allow(dead_code)] // not every test file looks at the index
pub(crate) async fn index_entries(
    st: &iamalive_store_dynamo::DynamoStore,
) -> Vec<(String, String)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut entries = Vec::new();
    for shard in 0..st.shards() {
        let out = st
            .client()
            .query()
            .table_name(st.table())
            .index_name(iamalive_store_dynamo::DUE_INDEX)
            .key_condition_expression("dueShard = :s")
            .expression_attribute_values(":s", AttributeValue::S(shard.to_string()))
            .send()
            .await
            .unwrap();
        for it in out.items() {
            entries.push((
                it["server"].as_s().unwrap().clone(),
                it["dueAt"].as_n().unwrap().clone(),
            ));
        }
    }
    entries
}
