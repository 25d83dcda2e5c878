//! SnsNotifier against moto on loopback, read back through an http
//! subscription to an axum receiver.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use common::notice;
use iamalive_core::{NoticeKind, Notifier};
use iamalive_notify::SnsNotifier;
use iamalive_notify::aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

fn client(endpoint: &str) -> iamalive_notify::aws_sdk_sns::Client {
    let conf = iamalive_notify::aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    iamalive_notify::aws_sdk_sns::Client::from_conf(conf)
}

type Got = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let app = Router::new()
        .route(
            "/sns",
            post(|State(g): State<Got>, body: String| async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    g.lock().unwrap().push(v);
                }
                "ok"
            }),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/sns"), got)
}

async fn wait_for(got: &Got, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let v: Vec<Value> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["Type"] == "Notification")
            .cloned()
            .collect();
        if v.len() >= n || start.elapsed() > Duration::from_secs(15) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_subject_body_and_attributes() {
    let moto = iamalive_testkit::moto();
    let sns = client(&moto.http_url());
    let topic = format!("iamalive-test-{}", std::process::id());
    let arn = sns
        .create_topic()
        .name(&topic)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (endpoint, got) = receiver().await;
    sns.subscribe()
        .topic_arn(&arn)
        .protocol("http")
        .endpoint(&endpoint)
        .send()
        .await
        .unwrap();

    let n = SnsNotifier::new(sns.clone(), &arn);
    assert_eq!(n.name(), "sns");
    n.deliver(&notice("build-01", NoticeKind::Alarm))
        .await
        .unwrap();
    n.deliver(&notice("build-01", NoticeKind::Recovery))
        .await
        .unwrap();
    let mut grouped = notice("db-1", NoticeKind::Alarm);
    grouped.group = Some(iamalive_core::GroupName::new("office-berlin").unwrap());
    n.deliver(&grouped).await.unwrap();

    let msgs = wait_for(&got, 3).await;
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(
        msgs[2]["Subject"],
        "[iamalive] ALARM db-1 (site office-berlin)"
    );
    let alarm = &msgs[0];
    assert_eq!(alarm["Subject"], "[iamalive] ALARM build-01");
    let body = alarm["Message"].as_str().unwrap();
    assert!(body.contains("host:          build-01"), "{body}");
    assert!(
        body.contains("notice id: build-01@1714565400000/alarm/1"),
        "{body}"
    );
    assert_eq!(msgs[1]["Subject"], "[iamalive] RECOVERED build-01");

    // moto's http delivery leaves message attributes out; what it received
    // is in its state dump: [message id, message, subject, attributes, group].
    let dump: Value = reqwest::get(format!("{}/moto-api/data.json", moto.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topic = dump["sns"]["Topic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["arn"] == arn.as_str())
        .expect("the topic is in moto's state");
    let sent = topic["sent_notifications"].as_array().unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2][3]["group"]["Value"], "office-berlin");
    assert!(sent[0][3].get("group").is_none(), "no group, no attribute");
    let attrs = &sent[0][3];
    assert_eq!(attrs["kind"]["Type"], "String");
    assert_eq!(attrs["kind"]["Value"], "alarm");
    assert_eq!(attrs["host"]["Type"], "String");
    assert_eq!(attrs["host"]["Value"], "build-01");
    assert_eq!(
        attrs["notice_id"]["Value"],
        "build-01@1714565400000/alarm/1"
    );
    assert_eq!(sent[1][3]["kind"]["Value"], "recovery");
    assert_eq!(sent[1][2], "[iamalive] RECOVERED build-01");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_is_permanent_and_a_dead_endpoint_transient() {
    let moto = iamalive_testkit::moto();
    let sns = client(&moto.http_url());
    let n = SnsNotifier::new(
        sns,
        "arn:aws:sns:us-east-1:123456789012:no-such-topic-iamalive",
    );
    let e = n
        .deliver(&notice("db-1", NoticeKind::Alarm))
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");

    let dead = client(&format!(
        "http://127.0.0.1:{}",
        iamalive_testkit::free_port()
    ));
    let n = SnsNotifier::new(dead, "arn:aws:sns:us-east-1:123456789012:t")
        .with_timeout(Duration::from_secs(10));
    let e = n
        .deliver(&notice("db-1", NoticeKind::Alarm))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}
