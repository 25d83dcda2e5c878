//! An endpoint that accepts connections and never answers: every call
//! returns, as the store unavailable, within the default bounds. Not a
//! DynamoDB: a listener on loopback that holds its connections.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use iamalive_core::{HostId, Store};
use iamalive_store_dynamo::{DEFAULT_TIMEOUTS, DynamoStore};

fn client(endpoint: &str, timeouts: Option<TimeoutConfig>) -> Client {
    let mut b = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint);
    if let Some(t) = timeouts {
        b = b.timeout_config(t);
    }
    Client::from_conf(b.build())
}

#[tokio::test]
async fn a_silent_endpoint_is_unavailable_within_the_default_bounds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = DynamoStore::new(client(&format!("http://{addr}"), None), "t");
    let op = store
        .client()
        .config()
        .timeout_config()
        .and_then(|t| t.operation_timeout());
    assert_eq!(op, Some(DEFAULT_TIMEOUTS.operation));
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        store.get(&HostId::new("web-1").unwrap()),
    )
    .await
    .expect("the call returns while the endpoint hangs")
    .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("dynamo"), "{e}");
    holder.abort();

    // A client that sets its own operation timeout keeps it.
    let own = TimeoutConfig::builder()
        .operation_timeout(Duration::from_secs(42))
        .build();
    let store = DynamoStore::new(client(&format!("http://{addr}"), Some(own)), "t");
    assert_eq!(
        store
            .client()
            .config()
            .timeout_config()
            .and_then(|t| t.operation_timeout()),
        Some(Duration::from_secs(42))
    );
}
