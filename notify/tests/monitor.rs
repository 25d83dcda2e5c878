//! End to end through core's Monitor (manual clock, in-memory store) with
//! real channels: an outage while the SMTP relay is down still yields one
//! alarm email once it is back, and the webhook that took the alarm at
//! once is not repeated.
#![cfg(all(feature = "smtp", feature = "webhook"))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use common::wait_for_mail;
use iamalive_core::{
    Heartbeat, HostId, ManualClock, MemoryStore, Monitor, MonitorOptions, Notifier, Policy,
    PolicySet,
};
use iamalive_notify::{SmtpNotifier, WebhookFormat, WebhookNotifier};
use serde_json::Value;

type Got = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State(g): State<Got>, body: String| async move {
                g.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_survives_a_relay_outage_once_per_channel() {
    let smtp_port = iamalive_testkit::free_port();
    let (hook, got) = receiver().await;
    let channels: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(
            SmtpNotifier::from_url(
                &format!("smtp://127.0.0.1:{smtp_port}?timeout=5s"),
                "iamalive@example.com",
                &["ops@example.com".to_string()],
            )
            .unwrap(),
        ),
        Arc::new(WebhookNotifier::new(&hook, WebhookFormat::Json, None).unwrap()),
    ];
    let clock = ManualClock::new("2024-05-01T12:00:00Z".parse().unwrap());
    let policy = Policy {
        timeout: Duration::from_secs(600),
        reminder_interval: Duration::from_secs(3600),
        ..Policy::default()
    };
    let monitor = Monitor::new(
        Arc::new(MemoryStore::new()),
        channels,
        clock.clone(),
        PolicySet::new(policy),
        MonitorOptions::default(),
    )
    .expect("channel names are unique");
    let host = HostId::new("web-1").unwrap();
    let now = |c: &ManualClock| iamalive_core::Clock::now(c);
    monitor
        .heartbeat(&Heartbeat::new(host.clone(), now(&clock)))
        .await
        .unwrap();

    // The host falls silent; the runner sweeps every minute. The relay is down.
    let mut failed = 0;
    for _ in 0..11 {
        clock.advance(Duration::from_secs(60));
        failed += monitor.sweep().await.unwrap().failed_deliveries;
    }
    assert!(
        failed >= 1,
        "the SMTP delivery failed (transient) and is retried"
    );
    let alarms = |g: &Got| {
        g.lock()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == "alarm")
            .count()
    };
    assert_eq!(alarms(&got), 1, "the webhook took the alarm at once");

    // The relay comes back; the next rounds deliver the owed email only.
    let relay = iamalive_testkit::smtp_on(smtp_port, None);
    let mut failed = 0;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(30));
        failed += monitor.sweep().await.unwrap().failed_deliveries;
    }
    assert_eq!(failed, 0);
    let mails = wait_for_mail(&relay.maildir_new(), 1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("Subject: [iamalive] ALARM web-1"));
    assert_eq!(alarms(&got), 1, "the webhook is not repeated");

    // The host returns: one all-clear per channel.
    monitor
        .heartbeat(&Heartbeat::new(host.clone(), now(&clock)))
        .await
        .unwrap();
    for _ in 0..3 {
        let _ = monitor.sweep().await.unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let mails = wait_for_mail(&relay.maildir_new(), 2);
    assert_eq!(mails.len(), 2, "alarm and all-clear, nothing doubled");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: [iamalive] RECOVERED web-1"))
    );
    let kinds: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["alarm", "recovery"]);
}
