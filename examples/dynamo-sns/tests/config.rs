//! The deployment's own settings: the due index's shard count.

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use iamalive_server::Config;
use iamalive_store_dynamo::{DEFAULT_SHARDS, DynamoStore};

fn store() -> DynamoStore {
    // No request is made: the client only has to exist.
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "t")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn shard_count_from_the_environment_or_the_file() {
    let c = Config::from_sources(None, env(&[("IAMALIVE_DYNAMO_SHARDS", "16")])).unwrap();
    assert_eq!(c.dynamo.shards, Some(16));
    assert_eq!(dynamo_sns::configure(store(), &c).shards(), 16);

    let c = Config::from_sources(Some("[dynamo]\ntable = \"t\"\nshards = 8\n"), env(&[])).unwrap();
    assert_eq!(c.dynamo.shards, Some(8));
    assert_eq!(dynamo_sns::configure(store(), &c).shards(), 8);

    let c = Config::from_sources(None, env(&[])).unwrap();
    assert_eq!(c.dynamo.shards, None);
    assert_eq!(dynamo_sns::configure(store(), &c).shards(), DEFAULT_SHARDS);
}

#[test]
fn a_bad_shard_count_is_refused_naming_the_key() {
    for raw in ["0", "1001", "70000", "-1", "four", ""] {
        let e = Config::from_sources(None, env(&[("IAMALIVE_DYNAMO_SHARDS", raw)])).expect_err(raw);
        assert!(
            e.to_string().contains("IAMALIVE_DYNAMO_SHARDS"),
            "{raw:?}: {e}"
        );
    }
    for toml in [
        "[dynamo]\nshards = 0\n",
        "[dynamo]\nshards = 100000\n",
        "[dynamo]\nshards = \"8\"\n",
        "[dynamo]\nshards = 2.5\n",
    ] {
        let e = Config::from_sources(Some(toml), env(&[])).expect_err(toml);
        assert!(e.to_string().contains("dynamo.shards"), "{toml:?}: {e}");
    }
    let e = Config::from_sources(Some("[dynamo]\nshard = 8\n"), env(&[])).unwrap_err();
    assert!(e.to_string().contains("shard"), "unknown key: {e}");
}

#[test]
fn other_deployments_refuse_the_setting() {
    let c = Config::from_sources(None, env(&[("IAMALIVE_DYNAMO_SHARDS", "8")])).unwrap();
    let e = c.refuse_unused("sqlite-smtp", &["smtp"]).unwrap_err();
    assert_eq!(e.key, "dynamo.shards (IAMALIVE_DYNAMO_SHARDS)");
    c.refuse_unused("dynamo-sns", &["dynamo", "sns"]).unwrap();
}
