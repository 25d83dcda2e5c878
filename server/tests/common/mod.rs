//! The real server on loopback, and a small HTTP/1.1 client that can also
//! misbehave (bind another loopback address, send a request head slowly).

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{ManualClock, MemoryStore, Notifier, Store};
use iamalive_server::{AppState, Config, serve_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin-key-0123456789";
pub const AGENT: &str = "agent-key-0123456789";

/// `serve_listener` over a memory store and a manual clock, on 127.0.0.1.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    pub clock: ManualClock,
    pub channel: RecordingNotifier,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(extra_env: &[(&str, &str)]) -> Self {
        Self::start_with(extra_env, Arc::new(MemoryStore::new())).await
    }

    pub async fn start_with(extra_env: &[(&str, &str)], store: Arc<dyn Store>) -> Self {
        Self::start_full(extra_env, store, |s| s).await
    }

    /// [`start`](Self::start), with `adjust` applied to the state before
    /// it is served (e.g. `with_metrics`).
    pub async fn start_with_state(
        extra_env: &[(&str, &str)],
        adjust: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        Self::start_full(extra_env, Arc::new(MemoryStore::new()), adjust).await
    }

    pub async fn start_full(
        extra_env: &[(&str, &str)],
        store: Arc<dyn Store>,
        adjust: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let mut env = vec![
            (
                "IAMALIVE_API_KEYS".to_owned(),
                format!("{ADMIN};name=ops,{AGENT};role=heartbeat;hosts=web-*;name=web-agents"),
            ),
            ("IAMALIVE_TIMEOUT".to_owned(), "10s".to_owned()),
            ("IAMALIVE_REMINDER_INTERVAL".to_owned(), "60s".to_owned()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_sources(None, env).unwrap();
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let channel = RecordingNotifier::new("test");
        let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(channel.clone())];
        let state = adjust(
            AppState::new(store, channels, Arc::new(clock.clone()), &config)
                .expect("channel names are unique"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Self {
            addr,
            state,
            clock,
            channel,
            stop: Some(tx),
            task,
        }
    }

    /// Stops the server; it must return within 15 s.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            stream: TcpStream::connect(addr).await?,
            buf: Vec::new(),
        })
    }

    /// A connection from another loopback address (127.0.0.x on Linux).
    pub async fn open_from(local: IpAddr, addr: SocketAddr) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(local, 0))?;
        Ok(Self {
            stream: socket.connect(addr).await?,
            buf: Vec::new(),
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> std::io::Result<Answer> {
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await?;
        self.read_answer().await
    }

    pub async fn heartbeat(&mut self, key: Option<&str>, host: &str) -> std::io::Result<Answer> {
        self.request(
            "POST",
            "/v1/heartbeat",
            key,
            &format!(r#"{{"host":"{host}"}}"#),
        )
        .await
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_answer(&mut self) -> std::io::Result<Answer> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad answer: {head:?}")))?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).into_owned();
        self.buf.drain(..head_end + len);
        Ok(Answer { status, body })
    }

    /// Whether the server closes this connection within `limit` (reading
    /// and dropping anything it sends first).
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// A `tracing` writer into memory, to count and search log lines.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    /// A subscriber writing here at `level` and above, without colours.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
