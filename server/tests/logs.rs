//! The log lines about refused requests name the request: its method and
//! its path (a ping URL's key redacted), so an operator can tell a
//! misconfigured agent from a scanner.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::Server;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_logged_with_its_method_and_path() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let s = Server::start(&[]).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", s.addr);

    // No key at all on the heartbeat endpoint.
    let r = http
        .post(format!("{base}/v1/heartbeat"))
        .json(&serde_json::json!({"host": "web-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A wrong key in a ping URL: the key is never logged.
    let r = http
        .get(format!("{base}/ping/not-a-valid-key-at-all/web-1/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let text = logs.text();
    let line = |reason: &str| {
        text.lines()
            .find(|l| l.contains(reason))
            .unwrap_or_else(|| panic!("no line with {reason:?} in:\n{text}"))
            .to_owned()
    };
    let missing = line("missing API key");
    assert!(
        missing.contains("request without a valid key rejected"),
        "{missing}"
    );
    assert!(missing.contains("method=POST"), "{missing}");
    assert!(missing.contains("path=/v1/heartbeat"), "{missing}");
    let invalid = line("reason=invalid API key");
    assert!(invalid.contains("method=GET"), "{invalid}");
    assert!(
        invalid.contains("path=/ping/<key>/web-1/start"),
        "{invalid}"
    );
    assert!(
        !text.contains("not-a-valid-key-at-all"),
        "a ping URL's key is never logged:\n{text}"
    );
    s.stop().await;
}
