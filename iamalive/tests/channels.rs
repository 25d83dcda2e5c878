//! The `iamalive` binary end to end with several channels and routes, on
//! real servers: DynamoDB and SNS on moto (SNS delivering to a real local
//! HTTP subscriber), webhooks to real local receivers, and SQLite.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use iamalive_testkit::Receiver;

use iamalive_testkit::watcher::{KEY, Watcher};

const WAIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_iamalive");

/// `iamalive serve --config <config>` in `dir`, listening.
async fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Watcher {
    Watcher::start(BIN, &["serve"], dir, config, env).await
}

fn command(dir: &Path, config: &str, env: &[(&str, &str)]) -> Command {
    iamalive_testkit::watcher::command(BIN, &["serve"], dir, config, env)
}

/// What each channel got for `host`: (alarms, all-clears).
fn got(r: &Receiver, host: &str) -> (usize, usize) {
    (
        r.count(&[&format!("[iamalive] ALARM {host}\"")]),
        r.count(&[&format!("[iamalive] RECOVERED {host}\"")]),
    )
}

/// The origin's setup: DynamoDB, SNS (email in real life; here a local
/// HTTP subscriber of the topic on moto) and a Teams webhook, every alarm
/// both ways; plus a `db-*` route to the DBAs' own webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_setup_on_dynamo_with_sns_and_teams_routed() {
    let moto = iamalive_testkit::moto();
    let endpoint = format!("http://{}", moto.addr);
    let sdk = {
        let mut l = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "test", "test", None, None, "test",
            ));
        l = l.timeout_config(aws_config::timeout::TimeoutConfig::disabled());
        l.load().await
    };
    let sns = aws_sdk_sns::Client::new(&sdk);
    let email = Receiver::start().await;
    let topic = sns
        .create_topic()
        .name(format!("alarms-{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&email.url)
        .send()
        .await
        .unwrap();
    let teams = Receiver::start().await;
    let dba = Receiver::start().await;
    let table = format!("iamalive-{}", uuid::Uuid::new_v4());
    let config = format!(
        r#"
[dynamo]
table = "{table}"

[[channels]]
name = "email"
kind = "sns"
topic_arn = "{topic}"

[[channels]]
name = "team-chat"
kind = "webhook"
format = "teams"
url = "{teams}"
secret = "team-chat-signing-secret"

[[channels]]
name = "dba"
kind = "webhook"
format = "json"
url = "{dba}"

[[routes]]
hosts = "db-*"
channels = ["dba"]

[[routes]]
channels = ["email", "team-chat"]
"#,
        teams = teams.url,
        dba = dba.url,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = iamalive_testkit::aws_test_env_vars().to_vec();
    env.push(("AWS_ENDPOINT_URL", &endpoint));
    // moto under a loaded machine answers slowly: a timeout well above a
    // heartbeat's round trip, so only the outage the test makes is one.
    env.push(("IAMALIVE_TIMEOUT", "3s"));
    let p = start(dir.path(), &config, &env).await;

    // The chat channel fails its first three attempts; it is retried alone.
    teams.fail_next(3);
    p.beat("web-1").await;
    p.beat("db-1").await;
    assert!(
        email.wait_for(&["ALARM web-1"], 1, WAIT).await,
        "no alarm by SNS:\n{}",
        p.log()
    );
    assert!(
        teams.wait_for(&["ALARM web-1"], 1, WAIT).await,
        "no alarm to Teams:\n{}",
        p.log()
    );
    assert!(
        dba.wait_for(&["\"kind\":\"alarm\"", "db-1"], 1, WAIT).await,
        "{}",
        p.log()
    );
    assert_eq!(teams.refused(), 3, "the failing channel was retried");

    // Both report again, and keep reporting until the test is done.
    let p = std::sync::Arc::new(p);
    let beater = std::sync::Arc::clone(&p);
    let beating = tokio::spawn(async move {
        for _ in 0..600 {
            beater.beat("web-1").await;
            beater.beat("db-1").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    assert!(
        email.wait_for(&["RECOVERED web-1"], 1, WAIT).await,
        "{}",
        p.log()
    );
    assert!(
        teams.wait_for(&["RECOVERED web-1"], 1, WAIT).await,
        "{}",
        p.log()
    );
    assert!(
        dba.wait_for(&["\"kind\":\"recovery\"", "db-1"], 1, WAIT)
            .await,
        "{}",
        p.log()
    );
    // Let any duplicate show before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got(&email, "web-1"), (1, 1), "SNS: {:?}", email.bodies());
    assert_eq!(got(&teams, "web-1"), (1, 1), "Teams: {:?}", teams.bodies());
    // The db-* route sends only to its channel.
    assert_eq!(got(&email, "db-1"), (0, 0), "SNS: {:?}", email.bodies());
    assert_eq!(got(&teams, "db-1"), (0, 0), "Teams: {:?}", teams.bodies());
    assert_eq!(dba.bodies().len(), 2, "dba: {:?}", dba.bodies());
    assert!(dba.bodies().iter().all(|b| !b.contains("web-1")));
    // The SNS subscriber got SNS notifications.
    assert!(
        email
            .bodies()
            .iter()
            .all(|b| b.contains("\"Notification\""))
    );
    beating.abort();
}

/// Zero-config store (SQLite), two webhooks of one format under the
/// user's names, and the legacy single-channel variable as one more
/// channel named after its kind; no route matches, so every channel hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webhooks_of_one_kind_and_a_legacy_channel_on_sqlite() {
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let legacy = Receiver::start().await;
    let config = format!(
        r#"
[[channels]]
name = "slack-ops"
kind = "webhook"
format = "slack"
url = "{a}"

[[channels]]
name = "slack-dev"
kind = "webhook"
format = "slack"
url = "{b}"

[[routes]]
hosts = "nothing-*"
channels = ["slack-ops"]
"#,
        a = a.url,
        b = b.url,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = start(
        dir.path(),
        &config,
        &[
            ("IAMALIVE_WEBHOOK_URL", legacy.url.as_str()),
            ("IAMALIVE_WEBHOOK_FORMAT", "json"),
        ],
    )
    .await;
    p.beat("build-1").await;
    for r in [&a, &b] {
        assert!(r.wait_for(&["ALARM build-1"], 1, WAIT).await, "{}", p.log());
    }
    assert!(
        legacy.wait_for(&["\"kind\":\"alarm\""], 1, WAIT).await,
        "{}",
        p.log()
    );
    assert!(
        dir.path().join("iamalive.db").exists(),
        "SQLite is the default store"
    );
    // The start line lists every channel by name (the legacy one as
    // `webhook`); read from that line only, as later lines name channels
    // too.
    let log = p.log();
    let channels: Vec<&str> = log
        .lines()
        .find(|l| l.contains("is watching"))
        .and_then(|l| l.split(" channels=").nth(1))
        .and_then(|rest| rest.split(" timeout=").next())
        .map(|list| list.split(", ").collect())
        .unwrap_or_default();
    assert_eq!(channels, ["slack-ops", "slack-dev", "webhook"], "{log}");
}

/// Each configuration error exits 2 naming the key, before serving.
#[test]
fn configuration_errors_exit_2_naming_the_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "two stores",
            "[sqlite]\npath = \"a.db\"\n[redis]\nurl = \"redis://127.0.0.1:1/\"\n",
            &["[sqlite]", "[redis]"],
        ),
        (
            "duplicate channel name",
            "[[channels]]\nname = \"email\"\nkind = \"stdout\"\n[[channels]]\nname = \"email\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n",
            &["\"email\""],
        ),
        (
            "unknown channel in a route",
            "[[channels]]\nname = \"email\"\nkind = \"stdout\"\n[[routes]]\nhosts = \"db-*\"\nchannels = [\"dbas\"]\n",
            &["routes[0].channels", "\"dbas\""],
        ),
        (
            "unknown key inside a channel",
            "[[channels]]\nname = \"email\"\nkind = \"sns\"\ntopci_arn = \"arn:aws:sns:us-east-1:1:t\"\n",
            &["topci_arn"],
        ),
        (
            "a key of another kind",
            "[[channels]]\nname = \"chat\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\ntopic_arn = \"x\"\n",
            &["channels[0].topic_arn"],
        ),
        (
            "a channel missing its required key",
            "[[channels]]\nname = \"chat\"\nkind = \"webhook\"\nformat = \"teams\"\n",
            &["channels[0].url"],
        ),
        (
            "the legacy name taken twice",
            "[[channels]]\nname = \"smtp\"\nkind = \"stdout\"\n[smtp]\nurl = \"smtp://127.0.0.1:1\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n",
            &["\"smtp\""],
        ),
        (
            "an unknown key in a store's section",
            "[redis]\nurll = \"redis://127.0.0.1:1/\"\n",
            &["urll"],
        ),
        (
            "a bad value in a store's section",
            "[dynamo]\ntable = \"t\"\nshards = 0\n",
            &["dynamo.shards"],
        ),
    ];
    let from_env: &[(&str, (&str, &str), &[&str])] = &[
        (
            "two URLs in the legacy webhook variable",
            (
                "IAMALIVE_WEBHOOK_URL",
                "http://a.example/x,http://b.example/y",
            ),
            &["IAMALIVE_WEBHOOK_URL", "two URLs"],
        ),
        (
            "channels that are not a JSON array",
            ("IAMALIVE_CHANNELS", "{\"name\": \"a\"}"),
            &["IAMALIVE_CHANNELS"],
        ),
        (
            "a channel missing its required key, from the environment",
            ("IAMALIVE_CHANNELS", r#"[{"name": "a", "kind": "smtp"}]"#),
            &["channels[0].url"],
        ),
        (
            "an unknown channel in a route, from the environment",
            ("IAMALIVE_ROUTES", r#"[{"channels": ["dbas"]}]"#),
            &["routes[0].channels", "\"dbas\""],
        ),
    ];
    let cases = cases
        .iter()
        .map(|(what, config, named)| (*what, *config, None, *named))
        .chain(
            from_env
                .iter()
                .map(|(what, var, named)| (*what, "", Some(*var), *named)),
        );
    for (what, config, var, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("IAMALIVE_API_KEYS", KEY)];
        env.extend(var);
        let out = command(dir.path(), config, &env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        for n in named {
            assert!(stderr.contains(n), "{what}: {n} not named in: {stderr}");
        }
        assert!(
            !dir.path().join("iamalive.db").exists(),
            "{what}: nothing may be created"
        );
    }
}

#[test]
fn help_and_version_exit_0_and_unknown_arguments_2() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_iamalive"))
            .args(args)
            .output()
            .unwrap()
    };
    iamalive_testkit::assert_help_and_version(
        std::path::Path::new(env!("CARGO_BIN_EXE_iamalive")),
        "iamalive",
        env!("CARGO_PKG_VERSION"),
        &[
            &["serve"],
            &["backup"],
            &["hosts"],
            &["host"],
            &["silence", "add"],
            &["silence", "ls"],
            &["silence", "rm"],
            &["pause"],
            &["resume"],
            &["rm"],
            &["policy"],
        ],
    );
    let h = run(&["--help"]);
    assert!(String::from_utf8_lossy(&h.stdout).contains("serve"));
    assert_eq!(run(&["serve", "--bogus"]).status.code(), Some(2));
    assert_eq!(run(&["bogus"]).status.code(), Some(2));
    // The client options go before the subcommand too: an unreachable
    // watcher is 5, not a usage error.
    let o = run(&["--url", "http://127.0.0.1:9", "--key", "k", "hosts"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Serving's own options with a client subcommand are refused, not
    // ignored.
    let o = run(&["--test-notice", "hosts"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--test-notice"));
}
