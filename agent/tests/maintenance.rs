//! `iamalive-agent maintenance` against the real server on loopback.

use std::sync::Arc;

use iamalive_core::{MemoryStore, Notifier, SystemClock};
use iamalive_server::{AppState, Config, serve_listener};
use serde_json::Value;

const ADMIN: &str = "maint-admin-key-0123456789";
const AGENT: &str = "maint-agent-key-0123456789";

async fn agent(url: &str, args: &[&str]) -> (i32, String, String) {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamalive-agent"))
        .arg("--url")
        .arg(url)
        .args(["--key", AGENT, "--host", "web-1"])
        .args(args)
        .env_remove("IAMALIVE_AGENT_KEY_FILE")
        .env_remove("IAMALIVE_AGENT_HOST")
        .output()
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_starts_and_ends_its_hosts_maintenance() {
    let env = vec![
        (
            "IAMALIVE_API_KEYS".to_owned(),
            format!("{ADMIN};name=ops,{AGENT};role=heartbeat;hosts=web-*;name=agents"),
        ),
        ("IAMALIVE_MAX_SELF_SILENCE".to_owned(), "2h".to_owned()),
    ];
    let config = Config::from_sources(None, env).unwrap();
    let channels: Vec<Arc<dyn Notifier>> = Vec::new();
    let state = AppState::new(
        Arc::new(MemoryStore::new()),
        channels,
        Arc::new(SystemClock),
        &config,
    )
    .expect("channel names are unique");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_listener(listener, state, async {
        let _ = rx.await;
    }));

    // The host is known once its first heartbeat got through.
    let (code, _, err) = agent(&url, &["--once"]).await;
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = agent(&url, &["maintenance", "90m", "--reason", "recovery image"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("maintenance of web-1 until "), "{out}");
    let silences: Value = reqwest::Client::new()
        .get(format!("{url}/v1/silences"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &silences["silences"][0];
    assert_eq!(s["id"], "maintenance-web-1");
    assert_eq!(s["hosts"], "web-1");
    assert_eq!(s["reason"], "recovery image");
    assert_eq!(s["active"], true);

    // Beyond the bound for a heartbeat key: refused, and said why.
    let (code, _, err) = agent(&url, &["maintenance", "3h"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("IAMALIVE_MAX_SELF_SILENCE"), "{err}");
    // Bad usage.
    let (code, _, _) = agent(&url, &["maintenance"]).await;
    assert_eq!(code, 2);
    let (code, _, _) = agent(&url, &["maintenance", "1h", "--end"]).await;
    assert_eq!(code, 2);

    let (code, out, err) = agent(&url, &["maintenance", "--end"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "maintenance of web-1 ended\n"),
        "{err}"
    );
    let (code, _, err) = agent(&url, &["maintenance", "--end"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no maintenance in progress"), "{err}");

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
