//! The in-process rig of the manual-clock end-to-end tests: the server's
//! router on a loopback port over a real Redis store and real channels,
//! driven by a [`ManualClock`] and stepped as the binary's runner would
//! (the binary itself reads the system clock, so hours and nights are
//! driven here).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use iamalive_core::{Clock, ManualClock, Store};
use iamalive_notify::ChannelBuilder;
use iamalive_server::{AppState, Config, router};
use serde_json::Value;

/// The API key every rig's configuration lists (`api_keys = ["{KEY}"]`).
pub(crate) const KEY: &str = "rig-test-key-0123456789";

/// A server on loopback whose monitor runs on a manual clock.
pub(crate) struct Rig {
    base: String,
    http: reqwest::Client,
    state: AppState,
    /// The monitor's clock; the tests move it.
    pub(crate) clock: ManualClock,
}

impl Rig {
    /// Builds the Redis store and the channels of the TOML configuration
    /// `toml`, and serves the router on a free loopback port with the
    /// clock at `start`.
    pub(crate) async fn start(toml: &str, start: DateTime<Utc>) -> Rig {
        let config = Config::from_sources(Some(toml), Vec::<(String, String)>::new()).unwrap();
        let store: Arc<dyn Store> = Arc::new(iamalive::stores::redis(&config).await.unwrap());
        let channels = iamalive::channels(&config, &ChannelBuilder::new())
            .await
            .unwrap();
        let clock = ManualClock::new(start);
        let state = AppState::new(store, channels, Arc::new(clock.clone()), &config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
        Rig {
            base,
            http: reqwest::Client::new(),
            state,
            clock,
        }
    }

    /// One API call with [`KEY`]: its status and its JSON body (`null`
    /// when the body is not JSON).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET path`, answered 200: its JSON body.
    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// A heartbeat for `host` through `GET /ping/<key>/<host>`; panics
    /// unless it is accepted.
    pub(crate) async fn ping(&self, host: &str) {
        let res = self
            .http
            .get(format!("{}/ping/{KEY}/{host}", self.base))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }

    /// One sweep at the clock's instant, as the runner does.
    pub(crate) async fn sweep(&self) {
        let _ = self.state.sweep().await.unwrap();
    }

    /// Moves the clock to `until`, `step` at a time, sweeping at each step
    /// as the runner does (steps shorter than the timeout, so none counts
    /// as downtime).
    pub(crate) async fn run_until(&self, until: DateTime<Utc>, step: TimeDelta) {
        while self.clock.now() < until {
            let next = (self.clock.now() + step).min(until);
            self.clock.set(next);
            self.sweep().await;
        }
    }
}
