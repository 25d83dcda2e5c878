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
