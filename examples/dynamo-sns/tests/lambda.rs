//! The Lambda handler called with real event payloads (the server's tests/fixtures/lambda)
//! against moto's DynamoDB and SNS; published notices are received by an
//! http subscription on a loopback axum server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::State;
use axum::routing::post;
use dynamo_sns::lambda::Handler;
use iamalive_core::{Clock, HostId, ManualClock, Status, Store};
use iamalive_server::Config;
use iamalive_store_dynamo::DynamoStore;
use iamalive_testkit::Server;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const KEY: &str = "test-key-0123456789abcdef";

fn fixture(name: &str) -> Value {
    // The adapter's own fixtures, in the server crate beside its tests.
    let path = format!(
        "{}/../../server/tests/fixtures/lambda/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Env {
    moto: Server,
    dynamo: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
    table: String,
    topic: String,
    config: Config,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Env {
    async fn new() -> Self {
        let moto = iamalive_testkit::moto_serial::moto_serial();
        let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test");
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .credentials_provider(creds.clone())
                .endpoint_url(moto.http_url())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::Config::builder()
                .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
                .region(aws_sdk_sns::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url(moto.http_url())
                .build(),
        );
        let id = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("iamalive-{id}");
        DynamoStore::new(dynamo.clone(), &table)
            .create_table_if_missing()
            .await
            .expect("create table");
        let topic = sns
            .create_topic()
            .name(format!("iamalive-{id}"))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");

        // The subscriber: every SNS Notification JSON moto POSTs.
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/sns",
                post(
                    |State(r): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
                        let v: Value = serde_json::from_str(&body).expect("SNS posts JSON");
                        r.lock().unwrap().push(v);
                    },
                ),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("http")
            .endpoint(format!("http://{addr}/sns"))
            .send()
            .await
            .expect("subscribe");

        let config = Config::from_sources(
            None,
            [
                ("IAMALIVE_API_KEYS", KEY),
                ("IAMALIVE_TIMEOUT", "10s"),
                ("IAMALIVE_REMINDER_INTERVAL", "1h"),
                ("IAMALIVE_DYNAMO_TABLE", table.as_str()),
                ("IAMALIVE_SNS_TOPIC_ARN", topic.as_str()),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .expect("config");
        Self {
            moto,
            dynamo,
            sns,
            table,
            topic,
            config,
            received,
        }
    }

    /// A handler as one Lambda instance would build it.
    async fn handler(&self, clock: &ManualClock) -> Handler {
        self.handler_with(&self.config, clock).await
    }

    /// A handler for `config` over this environment's clients.
    async fn handler_with(&self, config: &Config, clock: &ManualClock) -> Handler {
        let (store, channels) =
            dynamo_sns::from_clients(config, self.dynamo.clone(), self.sns.clone())
                .await
                .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        Handler::new(dynamo_sns::shared(store), channels, clock, config).unwrap()
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(self.dynamo.clone(), &self.table)
    }

    /// moto's record of every Publish to the topic:
    /// `[message id, message, subject, attributes, group]`.
    async fn sent_notifications(&self) -> Vec<Value> {
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", self.moto.http_url()))
            .await
            .expect("moto data API")
            .json()
            .await
            .expect("JSON");
        data["sns"]["Topic"]
            .as_array()
            .expect("topics")
            .iter()
            .find(|t| t["arn"] == self.topic.as_str())
            .and_then(|t| t["sent_notifications"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits (bounded) until at least `n` notifications arrived, returns all.
    async fn notifications(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n || start.elapsed() > Duration::from_secs(10) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The notice kind, from the subject (moto's http delivery leaves the
/// message attributes out; they are checked through moto's data API).
fn kind(n: &Value) -> &str {
    let subject = n["Subject"].as_str().unwrap_or_default();
    match subject.split(' ').nth(1) {
        Some("ALARM") => "alarm",
        Some("REMINDER") => "reminder",
        Some("RECOVERED") => "recovery",
        _ => "?",
    }
}

fn host(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

fn clock() -> ManualClock {
    ManualClock::at_millis(1_767_225_600_000)
}

#[tokio::test]
async fn heartbeats_through_the_handler_are_read_back_from_the_table() {
    let env = Env::new().await;
    let clock = clock();
    let handler = env.handler(&clock).await;
    let store = env.store();

    // REST API (v1) payload, through the Lambda entry point itself.
    let out = handler
        .handle(LambdaEvent::new(
            fixture("apigw-rest-v1-heartbeat.json"),
            Context::default(),
        ))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "created");
    let rec = store
        .get(&host("build-01"))
        .await
        .unwrap()
        .expect("build-01 stored");
    assert_eq!(rec.status, Status::Up);
    assert_eq!(rec.last_seen, clock.now());
    assert_eq!(rec.message.as_deref(), Some("via REST API"));
    assert_eq!(
        rec.due_at,
        Some(clock.now() + chrono::TimeDelta::seconds(10))
    );

    // HTTP API (v2) payload with a base64 body carrying an outage report.
    clock.advance(Duration::from_secs(3));
    let out = handler
        .handle_value(fixture("apigw-http-v2-heartbeat.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    let rec = store
        .get(&host("build-02"))
        .await
        .unwrap()
        .expect("build-02 stored");
    assert!(
        rec.report.as_deref().unwrap().contains("NXDOMAIN"),
        "{rec:?}"
    );

    // The item as an operator sees it.
    let item = env
        .dynamo
        .get_item()
        .table_name(&env.table)
        .key("server", AttributeValue::S("build-02".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item["lastSeen"],
        AttributeValue::N(clock.now().timestamp_millis().to_string())
    );
    assert_eq!(item["status"], AttributeValue::S("up".into()));

    // A wrong key: refused by the server's own router, nothing written.
    let out = handler
        .handle_value(fixture("apigw-http-v2-bad-key.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 401, "{out}");
    assert_eq!(store.get(&host("intruder")).await.unwrap(), None);

    // Not an event the function knows.
    assert!(
        handler
            .handle_value(serde_json::json!({"hello": 1}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn scheduled_sweep_after_an_outage_publishes_to_sns_and_recovery_follows() {
    let env = Env::new().await;
    let clock = clock();
    let handler = env.handler(&clock).await;
    let schedule = fixture("eventbridge-scheduled.json");

    let out = handler
        .handle_value(fixture("apigw-http-v2-heartbeat.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    // Sweeps run more often than the timeout (a gap longer than it would
    // count as monitor downtime and give the host a startup grace).
    clock.advance(Duration::from_secs(5));
    let report = handler.handle_value(schedule.clone()).await.unwrap();
    assert_eq!(report["evaluated"], 0, "nothing due yet: {report}");
    assert!(env.received.lock().unwrap().is_empty());

    // Silent past the 10 s timeout: the scheduled sweep alarms.
    clock.advance(Duration::from_secs(6));
    let report = handler.handle_value(schedule.clone()).await.unwrap();
    assert_eq!(report["completed"], 1, "{report}");
    let got = env.notifications(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["Type"], "Notification");
    assert_eq!(got[0]["Subject"], "[iamalive] ALARM build-02");
    assert_eq!(kind(&got[0]), "alarm");
    // What SNS itself recorded for the Publish: the filterable attributes.
    let sent = env.sent_notifications().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][2], "[iamalive] ALARM build-02");
    assert_eq!(sent[0][3]["kind"]["Value"], "alarm", "{sent:?}");
    assert_eq!(sent[0][3]["host"]["Value"], "build-02", "{sent:?}");
    assert!(got[0]["Message"].as_str().unwrap().contains("build-02"));
    let rec = env.store().get(&host("build-02")).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Alarmed);
    assert_eq!(rec.alarm_count, 1);

    // Another sweep: nothing new (reminders are an hour apart).
    clock.advance(Duration::from_secs(60));
    let _ = handler.handle_value(schedule.clone()).await.unwrap();

    // The host reports again: the heartbeat's own sweep sends the all-clear.
    clock.advance(Duration::from_secs(5));
    let out = handler
        .handle_value(fixture("apigw-http-v2-heartbeat.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    let got = env.notifications(2).await;
    let kinds: Vec<&str> = got.iter().map(kind).collect();
    assert_eq!(kinds, ["alarm", "recovery"], "{got:?}");
    assert_eq!(got[1]["Subject"], "[iamalive] RECOVERED build-02");
    let rec = env.store().get(&host("build-02")).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
    assert!(rec.outbox.is_none());
}

/// `fixture`'s heartbeat, for `host` instead.
fn heartbeat_of(host: &str) -> Value {
    use base64::Engine;
    let mut v = fixture("apigw-http-v2-heartbeat.json");
    let body = serde_json::json!({ "host": host }).to_string();
    v["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    v
}

/// The origin's channels and routes through the Lambda handler: SNS and a
/// Teams webhook for every host, a `db-*` route to the DBAs' webhook only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_routes_through_the_handler() {
    let env = Env::new().await;
    let teams = iamalive_testkit::Receiver::start().await;
    let dba = iamalive_testkit::Receiver::start().await;
    let toml = format!(
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
[[channels]]
name = "dba"
kind = "webhook"
url = "{dba}"
[[routes]]
hosts = "db-*"
channels = ["dba"]
[[routes]]
channels = ["email", "team-chat"]
"#,
        table = env.table,
        topic = env.topic,
        teams = teams.url,
        dba = dba.url,
    );
    let config = Config::from_sources(
        Some(&toml),
        [
            ("IAMALIVE_API_KEYS", KEY),
            ("IAMALIVE_TIMEOUT", "10s"),
            ("IAMALIVE_REMINDER_INTERVAL", "1h"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .expect("config");
    one_outage_routed(&env, &config, &teams, &dba).await;
}

/// The same setup in the variables the SAM template sets: the stack's
/// topic (`IAMALIVE_SNS_TOPIC_ARN`, the channel `sns`), the legacy
/// `IAMALIVE_WEBHOOK_URL` (the channel `webhook`, Teams), the DBAs'
/// channel in `IAMALIVE_CHANNELS` and the routes in `IAMALIVE_ROUTES`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_routes_from_the_template_variables() {
    let env = Env::new().await;
    let teams = iamalive_testkit::Receiver::start().await;
    let dba = iamalive_testkit::Receiver::start().await;
    let channels = serde_json::json!([{ "name": "dba", "kind": "webhook", "url": dba.url }]);
    let config = Config::from_sources(
        None,
        [
            ("IAMALIVE_API_KEYS", KEY),
            ("IAMALIVE_TIMEOUT", "10s"),
            ("IAMALIVE_REMINDER_INTERVAL", "1h"),
            ("IAMALIVE_DYNAMO_TABLE", env.table.as_str()),
            ("IAMALIVE_SNS_TOPIC_ARN", env.topic.as_str()),
            ("IAMALIVE_WEBHOOK_URL", teams.url.as_str()),
            ("IAMALIVE_WEBHOOK_FORMAT", "teams"),
            ("IAMALIVE_CHANNELS", channels.to_string().as_str()),
            (
                "IAMALIVE_ROUTES",
                r#"[{"hosts": "db-*", "channels": ["dba"]}, {"channels": ["sns", "webhook"]}]"#,
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .expect("config");
    let names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["dba", "webhook", "sns"]);
    one_outage_routed(&env, &config, &teams, &dba).await;
}

/// `web-1` and `db-1` go silent and come back: SNS and `teams` hear
/// `web-1` only, `dba` hears `db-1` only, one alarm and one all-clear each.
async fn one_outage_routed(
    env: &Env,
    config: &Config,
    teams: &iamalive_testkit::Receiver,
    dba: &iamalive_testkit::Receiver,
) {
    let clock = clock();
    let handler = env.handler_with(config, &clock).await;
    let schedule = fixture("eventbridge-scheduled.json");
    for h in ["web-1", "db-1"] {
        let out = handler.handle_value(heartbeat_of(h)).await.unwrap();
        assert_eq!(out["statusCode"], 200, "{out}");
    }
    clock.advance(Duration::from_secs(5));
    let _ = handler.handle_value(schedule.clone()).await.unwrap();
    clock.advance(Duration::from_secs(6));
    let report = handler.handle_value(schedule.clone()).await.unwrap();
    assert_eq!(report["completed"], 2, "{report}");
    clock.advance(Duration::from_secs(5));
    for h in ["web-1", "db-1"] {
        let out = handler.handle_value(heartbeat_of(h)).await.unwrap();
        assert_eq!(out["statusCode"], 200, "{out}");
    }
    let got = env.notifications(2).await;
    let subjects: Vec<&str> = got.iter().map(|n| n["Subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        ["[iamalive] ALARM web-1", "[iamalive] RECOVERED web-1"],
        "SNS hears web-1 only"
    );
    assert_eq!(teams.count(&["ALARM web-1"]), 1, "{:?}", teams.bodies());
    assert_eq!(teams.count(&["RECOVERED web-1"]), 1, "{:?}", teams.bodies());
    assert_eq!(teams.count(&["db-1"]), 0, "{:?}", teams.bodies());
    let dba = dba.bodies();
    assert_eq!(dba.len(), 2, "{dba:?}");
    assert!(
        dba[0].contains("\"kind\":\"alarm\"") && dba[0].contains("db-1"),
        "{dba:?}"
    );
    assert!(dba[1].contains("\"kind\":\"recovery\""), "{dba:?}");
}

#[tokio::test]
async fn three_concurrent_sweeps_over_one_outage_publish_once() {
    let env = Env::new().await;
    let clock = clock();
    // Three Lambda instances sharing the table and the topic.
    let mut handlers: Vec<Handler> = Vec::new();
    for _ in 0..3 {
        handlers.push(env.handler(&clock).await);
    }
    let schedule = fixture("eventbridge-scheduled.json");
    let mut expected = 0;
    for round in 0..3u64 {
        let out = handlers[round as usize]
            .handle_value(fixture("apigw-rest-v1-heartbeat.json"))
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 200, "{out}");
        // The schedule keeps running (no monitor downtime), then the host
        // is past its timeout and all three sweep at once.
        clock.advance(Duration::from_secs(6));
        let quiet = handlers[0].handle_value(schedule.clone()).await.unwrap();
        assert_eq!(quiet["completed"], 0, "{quiet}");
        clock.advance(Duration::from_secs(5));
        let reports =
            futures::future::join_all(handlers.iter().map(|h| h.handle_value(schedule.clone())))
                .await;
        let completed: u64 = reports
            .into_iter()
            .map(|r| r.unwrap()["completed"].as_u64().unwrap())
            .sum();
        assert_eq!(completed, 1, "round {round}: one sweep owns the alarm");
        expected += 1;
        let got = env.notifications(expected).await;
        let alarms: Vec<&Value> = got.iter().filter(|n| kind(n) == "alarm").collect();
        assert_eq!(got.len(), expected, "round {round}: {got:?}");
        assert_eq!(alarms.len() as u64, round + 1, "round {round}: {got:?}");
        // Sweeping again changes nothing.
        let again =
            futures::future::join_all(handlers.iter().map(|h| h.handle_value(schedule.clone())))
                .await;
        assert!(again.into_iter().all(|r| r.unwrap()["completed"] == 0));
        // Recovery, via the heartbeat's sweep (sends one all-clear), then a
        // quiet stretch.
        clock.advance(Duration::from_secs(2));
        let out = handlers[(round as usize + 1) % 3]
            .handle_value(fixture("apigw-rest-v1-heartbeat.json"))
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 200, "{out}");
        expected += 1;
        let got = env.notifications(expected).await;
        assert_eq!(got.len(), expected, "round {round}: {got:?}");
        assert_eq!(kind(got.last().unwrap()), "recovery");
    }
    let got = env.notifications(expected).await;
    let ids: std::collections::HashSet<&str> = got
        .iter()
        .map(|n| n["MessageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), got.len());
    assert_eq!(got.len(), 6, "three alarms and three all-clears, no more");
    assert_eq!(
        env.sent_notifications().await.len(),
        6,
        "SNS saw six Publish calls"
    );
}

/// `dynamo-sns --test-notice`: the real binary against moto sends one test
/// notice through SNS (the subscriber gets it) and exits 0; aimed at a
/// topic that does not exist it prints what SNS said and exits 1, so an
/// operator sees the wiring is wrong before an outage does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_checks_its_channels_with_a_test_notice() {
    let env = Env::new().await;
    let run = |topic: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-sns"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
            cmd.env_remove(k);
        }
        cmd.args(["--test-notice"])
            .envs(iamalive_testkit::aws_test_env_vars())
            .env("AWS_ENDPOINT_URL", env.moto.http_url())
            .env("IAMALIVE_API_KEYS", KEY)
            .env("IAMALIVE_DYNAMO_TABLE", &env.table)
            .env("IAMALIVE_SNS_TOPIC_ARN", topic)
            .env("IAMALIVE_LOG", "warn")
            .output()
            .expect("run dynamo-sns")
    };
    let ok = run(&env.topic);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("sns: delivered"), "{out}");
    let got = env.notifications(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["Subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("[iamalive] TEST"),
        "{got:?}"
    );

    let missing = format!("{}-gone", env.topic);
    let bad = run(&missing);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with("sns: refused") || out.starts_with("sns: failed"),
        "{out}"
    );
}

/// The path and body of each request a ping receiver got.
type Pings = Arc<Mutex<Vec<(String, String)>>>;

/// A ping receiver on loopback: the path and body of every request.
async fn ping_receiver() -> (std::net::SocketAddr, Pings) {
    let seen: Pings = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State(s): State<Pings>, uri: axum::http::Uri, body: String| async move {
                s.lock().unwrap().push((uri.path().to_owned(), body));
                "OK"
            },
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// `env`'s configuration over `table` with the function's own heartbeat
/// to `url`.
fn with_self_ping(env: &Env, table: &str, url: &str) -> Config {
    Config::from_sources(
        None,
        [
            ("IAMALIVE_API_KEYS", KEY),
            ("IAMALIVE_TIMEOUT", "10s"),
            ("IAMALIVE_REMINDER_INTERVAL", "1h"),
            ("IAMALIVE_DYNAMO_TABLE", table),
            ("IAMALIVE_SNS_TOPIC_ARN", env.topic.as_str()),
            ("IAMALIVE_SELF_PING_URL", url),
            ("IAMALIVE_SELF_PING_INTERVAL", "50s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .expect("config")
}

/// The function pings after each scheduled sweep (at most once per
/// interval), and the ping has got through when the invocation returns (an
/// instance is frozen after it); a sweep run by a recovering host's
/// heartbeat does not ping (the ping vouches for the schedule).
#[tokio::test]
async fn the_scheduled_sweep_pings_before_the_invocation_returns() {
    let env = Env::new().await;
    let (addr, seen) = ping_receiver().await;
    let config = with_self_ping(
        &env,
        &env.table,
        &format!("http://{addr}/ping/peer-key/iamalive-lambda"),
    );
    let clock = clock();
    let (store, channels) = dynamo_sns::from_clients(&config, env.dynamo.clone(), env.sns.clone())
        .await
        .unwrap();
    let handler = Handler::new(
        dynamo_sns::shared(store),
        channels,
        Arc::new(clock.clone()),
        &config,
    )
    .unwrap();
    let schedule = fixture("eventbridge-scheduled.json");

    handler.handle_value(schedule.clone()).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [("/ping/peer-key/iamalive-lambda".to_owned(), String::new())],
        "sent and answered within the invocation"
    );
    let status = handler.state().self_watch().status();
    assert_eq!(status.last_self_ping_at, Some(clock.now()));
    assert_eq!(status.last_sweep_at, Some(clock.now()));

    // An outage and a recovery inside the interval: the heartbeat's own
    // sweep sends the all-clear, but no ping.
    let out = handler
        .handle_value(fixture("apigw-http-v2-heartbeat.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    for _ in 0..3 {
        clock.advance(Duration::from_secs(5));
        handler.handle_value(schedule.clone()).await.unwrap();
    }
    assert_eq!(env.notifications(1).await.len(), 1, "the alarm");
    clock.advance(Duration::from_secs(5));
    let out = handler
        .handle_value(fixture("apigw-http-v2-heartbeat.json"))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(env.notifications(2).await.len(), 2, "the all-clear");
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());

    // 50 s after the first: the next scheduled sweep pings.
    clock.advance(Duration::from_secs(30));
    handler.handle_value(schedule.clone()).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2, "{:?}", seen.lock().unwrap());
    // The /healthz the function serves says so too.
    let healthz = serde_json::json!({
        "version": "2.0",
        "routeKey": "GET /healthz",
        "rawPath": "/healthz",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r", "routeKey": "GET /healthz", "stage": "$default", "time": "", "timeEpoch": 0,
            "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d"
        },
        "isBase64Encoded": false
    });
    let out = handler.handle_value(healthz).await.unwrap();
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["last_self_ping_at"],
        serde_json::to_value(clock.now()).unwrap(),
        "{body}"
    );
}

/// A function whose store keeps failing: each scheduled invocation fails
/// (CloudWatch's error alarm sees it), and once the fault has lasted
/// `store_fault_after` the ping says so at `/fail`, with the reason.
#[tokio::test]
async fn a_failing_sweep_pings_fail_with_the_reason() {
    let env = Env::new().await;
    let (addr, seen) = ping_receiver().await;
    let config = with_self_ping(
        &env,
        &format!("{}-missing", env.table),
        &format!("http://{addr}/ping/peer-key/iamalive-lambda"),
    );
    let clock = clock();
    let (store, channels) = dynamo_sns::from_clients(&config, env.dynamo.clone(), env.sns.clone())
        .await
        .unwrap();
    let handler = Handler::new(
        dynamo_sns::shared(store),
        channels,
        Arc::new(clock.clone()),
        &config,
    )
    .unwrap();
    let schedule = fixture("eventbridge-scheduled.json");
    assert!(handler.handle_value(schedule.clone()).await.is_err());
    assert!(
        seen.lock().unwrap().is_empty(),
        "a fault this young says nothing"
    );
    clock.advance(Duration::from_secs(31));
    assert!(handler.handle_value(schedule.clone()).await.is_err());
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "/ping/peer-key/iamalive-lambda/fail");
    assert!(got[0].1.contains("store failing since"), "{:?}", got[0].1);
    assert_eq!(handler.state().self_watch().status().last_sweep_at, None);
}
