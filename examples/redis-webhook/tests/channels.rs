//! The preset takes the same channels and routes as the `iamalive` binary:
//! two Slack webhooks under the user's names, a `db-*` route to one, and
//! the legacy webhook variable as one more channel named `webhook`.

use std::time::Duration;

use iamalive_testkit::Receiver;
use iamalive_testkit::watcher::Watcher;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_channels_on_the_redis_preset() {
    let redis = iamalive_testkit::redis();
    let ops = Receiver::start().await;
    let dba = Receiver::start().await;
    let legacy = Receiver::start().await;
    let config = format!(
        r#"
[redis]
url = "{redis}"
prefix = "channels-{pid}"

[[channels]]
name = "slack-ops"
kind = "webhook"
format = "slack"
url = "{ops}"

[[channels]]
name = "slack-dba"
kind = "webhook"
format = "slack"
url = "{dba}"

[[routes]]
hosts = "db-*"
channels = ["slack-dba"]
"#,
        redis = redis.redis_url(),
        pid = std::process::id(),
        ops = ops.url,
        dba = dba.url,
    );
    let dir = tempfile::tempdir().unwrap();
    let w = Watcher::start(
        env!("CARGO_BIN_EXE_redis-webhook"),
        &[],
        dir.path(),
        &config,
        &[("IAMALIVE_WEBHOOK_URL", legacy.url.as_str())],
    )
    .await;
    w.beat("web-1").await;
    w.beat("db-1").await;
    // No route matches web-1: every channel hears.
    assert!(ops.wait_for(&["ALARM web-1"], 1, WAIT).await, "{}", w.log());
    assert!(
        legacy
            .wait_for(&["\"kind\":\"alarm\"", "web-1"], 1, WAIT)
            .await,
        "{}",
        w.log()
    );
    assert!(dba.wait_for(&["ALARM web-1"], 1, WAIT).await, "{}", w.log());
    assert!(dba.wait_for(&["ALARM db-1"], 1, WAIT).await, "{}", w.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ops.count(&["db-1"]), 0, "{:?}", ops.bodies());
    assert_eq!(legacy.count(&["db-1"]), 0, "{:?}", legacy.bodies());
}

#[test]
fn help_and_version_exit_0_and_an_unknown_option_2() {
    iamalive_testkit::assert_help_and_version(
        std::path::Path::new(env!("CARGO_BIN_EXE_redis-webhook")),
        "redis-webhook",
        env!("CARGO_PKG_VERSION"),
        &[],
    );
}
