//! Real servers for tests, each on a free loopback port, stopped on drop.
//!
//! A missing server is a test failure, never a skip: `./scripts/test.sh`
//! installs them (redis-server and redis-cli from Debian, moto and
//! aiosmtpd into `.test-env/venv`, or wherever `IAMALIVE_TEST_VENV`
//! points).

#[cfg(feature = "receiver")]
mod receiver;
#[cfg(feature = "receiver")]
pub use receiver::Receiver;
/// Watcher binaries run end to end (feature `receiver`).
#[cfg(feature = "receiver")]
pub mod watcher;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod flags;
pub use flags::assert_help_and_version;
mod observability;
pub use observability::{alertmanager, prometheus};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The Python virtualenv holding moto and aiosmtpd.
pub fn venv() -> PathBuf {
    std::env::var_os("IAMALIVE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".test-env")
                .join("venv")
        })
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: run ./scripts/test.sh, which installs the test servers",
        path.display()
    );
}

/// A command running the test virtualenv's python (`with`: the packages
/// the caller needs from it, for the message when it is missing).
pub(crate) fn venv_python(with: &str) -> Command {
    let python = venv().join("bin").join("python");
    require(
        &python,
        &format!("the test virtualenv's python (with {with})"),
    );
    Command::new(python)
}

/// aiosmtpd on 127.0.0.1:`port` with the handler class `handler`
/// (`module.Class`), run in `dir`; the caller adds its own options, then
/// the handler's argument (a maildir for `Mailbox`).
pub(crate) fn aiosmtpd(port: u16, handler: &str, dir: &Path) -> Command {
    let mut cmd = venv_python("aiosmtpd");
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", handler])
        .current_dir(dir);
    cmd
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// A scratch directory that lives as long as the server.
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Spawns `cmd` (which must listen on `port`) and waits up to 20 s for
    /// the port to accept connections.
    pub fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir, what: &str) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let mut server = Self { child, addr, dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{what} exited before listening on {addr}: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} did not listen on {addr} within 20 s");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server now (e.g. to test an outage of it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `redis-server` on a free port, no persistence.
pub fn redis() -> Server {
    redis_on(free_port())
}

/// `redis-server` on `port` (to restart one where it was).
pub fn redis_on(port: u16) -> Server {
    let bin = which("redis-server").unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    require(&bin, "redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "redis-server")
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports,
/// each `redis-server` stopped on drop. Its 16384 slots are split evenly:
/// the first node owns 0–5460, the second 5461–10922, the third
/// 10923–16383.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, in slot order.
    pub nodes: Vec<Server>,
}

impl RedisCluster {
    /// Every node's `redis://127.0.0.1:PORT/`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::redis_url).collect()
    }

    /// Starts node `i` again (after [`Server::stop`]) on its port with its
    /// cluster config file, so it rejoins owning the same slots (empty: no
    /// persistence), and waits until every node reports
    /// `cluster_state:ok`.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.stop();
        let port = node.addr.port();
        let dir = std::mem::replace(&mut node.dir, tempfile::tempdir().expect("tempdir"));
        self.nodes[i] = cluster_node(&redis_server_bin(), port, dir);
        wait_cluster_ok(&self.nodes);
    }
}

fn redis_server_bin() -> PathBuf {
    let bin = which("redis-server").unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    require(&bin, "redis-server");
    bin
}

fn redis_cli_bin() -> PathBuf {
    let bin = which("redis-cli").unwrap_or_else(|| PathBuf::from("/usr/bin/redis-cli"));
    require(&bin, "redis-cli");
    bin
}

/// One cluster-enabled `redis-server` on `port`, its state in `dir`.
fn cluster_node(bin: &Path, port: u16, dir: tempfile::TempDir) -> Server {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .arg("--cluster-config-file")
        .arg(dir.path().join(format!("nodes-{port}.conf")))
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "redis-server (cluster node)")
}

/// Waits (up to 30 s) until every node reports `cluster_state:ok`.
fn wait_cluster_ok(nodes: &[Server]) {
    let cli = redis_cli_bin();
    let start = Instant::now();
    loop {
        let ok = nodes.iter().all(|n| {
            Command::new(&cli)
                .args(["-h", "127.0.0.1", "-p", &n.addr.port().to_string()])
                .args(["CLUSTER", "INFO"])
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        });
        if ok {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the redis cluster did not reach cluster_state:ok within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts three cluster-enabled `redis-server`s, joins them into one
/// cluster with `redis-cli --cluster create` and waits (up to 30 s) until
/// every node reports `cluster_state:ok`.
pub fn redis_cluster() -> RedisCluster {
    let server = redis_server_bin();
    let cli = redis_cli_bin();
    let nodes: Vec<Server> = (0..3)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            cluster_node(&server, free_port(), dir)
        })
        .collect();
    let out = Command::new(&cli)
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| n.addr.to_string()))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run redis-cli: {e}"));
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_cluster_ok(&nodes);
    RedisCluster { nodes }
}

impl Server {
    /// `redis://127.0.0.1:PORT/`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// For an SMTP server: the directory each received message lands in
    /// as one file.
    pub fn maildir_new(&self) -> PathBuf {
        self.dir.path().join("mail").join("new")
    }
}

/// moto's server (DynamoDB and SNS) on a free port. Give each test its own
/// table and topic names.
pub fn moto() -> Server {
    let bin = venv().join("bin").join("moto_server");
    require(&bin, "moto_server");
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "moto_server")
}

/// The fake credentials and region for moto, as (name, value) pairs to put
/// into an SDK config or a child process's environment.
pub fn aws_test_env_vars() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// An SMTP server (aiosmtpd) that stores each message as a file in
/// [`Server::maildir_new`]. With `tls = Some((cert, key))` it requires
/// STARTTLS.
pub fn smtp(tls: Option<(&Path, &Path)>) -> Server {
    smtp_on(free_port(), tls)
}

/// [`smtp`] on a given port (to restart one where it was).
pub fn smtp_on(port: u16, tls: Option<(&Path, &Path)>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = aiosmtpd(port, "aiosmtpd.handlers.Mailbox", dir.path());
    if let Some((cert, key)) = tls {
        cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
    }
    cmd.arg(dir.path().join("mail"));
    Server::spawn(cmd, port, dir, "aiosmtpd")
}

/// An SMTP server like [`smtp`] that answers every message with
/// `550 5.7.1 daily sending quota exceeded` while the file
/// [`refusal_flag`] exists in its directory, as a relay over its sending
/// quota does, and stores messages again once the file is gone.
pub fn smtp_refusing() -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("refuser.py"),
        r#"import os
from aiosmtpd.handlers import Mailbox

class Switchable(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.environ["REFUSE_FLAG"]):
            return "550 5.7.1 daily sending quota exceeded"
        return await super().handle_DATA(server, session, envelope)
"#,
    )
    .expect("write handler");
    let flag = refusal_flag(dir.path());
    std::fs::write(&flag, b"").expect("flag");
    let mut cmd = aiosmtpd(port, "refuser.Switchable", dir.path());
    cmd.arg(dir.path().join("mail"))
        .env("PYTHONPATH", dir.path())
        .env("REFUSE_FLAG", &flag);
    Server::spawn(cmd, port, dir, "aiosmtpd (refusing)")
}

/// The file whose presence makes [`smtp_refusing`] refuse mail.
pub fn refusal_flag(server_dir: &Path) -> PathBuf {
    server_dir.join("refuse")
}

/// Reads every message file in `dir` (e.g. [`Server::maildir_new`]).
pub fn read_messages(dir: &Path) -> Vec<String> {
    let mut out: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let t = e.metadata().ok()?.modified().ok()?;
                    Some((t, std::fs::read_to_string(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, s)| s).collect()
}

pub mod moto_serial;
pub mod smtp_auth;
pub mod smtps;
