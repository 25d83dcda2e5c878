//! Start-up with many hosts: from starting the watcher process to
//! `/healthz` answering with a sweep done.
//!
//! ```text
//! cargo build --release -p sqlite-smtp -p redis-webhook -p iamalive-benches
//! cargo run --release -p iamalive-benches --bin startup -- --store sqlite --store redis --hosts 1000000 --runs 3
//! ```
//!
//! Seeds the store once with `--hosts` up hosts (heartbeats now, due in an
//! hour, so the first sweep finds nothing due), then for each run starts
//! the preset binary (`sqlite-smtp` on the file, `redis-webhook` on the
//! same Redis prefix; by default the ones built beside this binary) as an
//! operator would, with `IAMALIVE_*` variables, and polls `GET /healthz`
//! every millisecond until it answers 200 with `last_sweep_at` set. The
//! time is from just before `spawn` to that answer; the process is then
//! stopped with SIGTERM and waited for. It also prints the process's CPU
//! time (user + system, from `/proc/PID/stat`) at that instant.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use iamalive_benches::process::Spawned;
use iamalive_benches::stats::median;
use iamalive_core::{Heartbeat, Store, add};
use iamalive_store_redis::RedisStore;
use iamalive_store_sqlite::SqliteStore;

#[derive(Parser, Debug)]
#[command(about = "Watcher start-up time with many hosts in the store")]
struct Args {
    /// Stores (sqlite, redis).
    #[arg(long = "store", value_delimiter = ',', default_values_t = ["sqlite".to_string(), "redis".to_string()])]
    stores: Vec<String>,
    /// Hosts to seed.
    #[arg(long, default_value_t = 1_000_000)]
    hosts: usize,
    /// Start-ups per store.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The SQLite preset binary [default: sqlite-smtp beside this one].
    #[arg(long)]
    sqlite_bin: Option<PathBuf>,
    /// The Redis preset binary [default: redis-webhook beside this one].
    #[arg(long)]
    redis_bin: Option<PathBuf>,
    /// Heartbeats in flight while seeding [default: 4096 on SQLite, whose
    /// writer commits them in groups; 512 on Redis, two of its batches, so
    /// a busy machine does not push a batch past the store's answer
    /// timeout].
    #[arg(long)]
    in_flight: Option<usize>,
}

const KEY: &str = "startup-bench-key-0123456789";
const PREFIX: &str = "startup";

fn beside(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.parent().expect("a directory").join(name)
}

/// Heartbeats `n` hosts now, due one hour later, `in_flight` at a time.
async fn seed(
    store: &dyn Store,
    n: usize,
    in_flight: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let now = chrono::Utc::now();
    let due = add(now, Duration::from_secs(3600));
    let futs = (0..n).map(|i| async move {
        let hb = Heartbeat::new(iamalive_benches::host(i), now);
        store.record_heartbeat(&hb, due, true).await
    });
    let mut stream = futures::stream::iter(futs).buffer_unordered(in_flight);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(())
}

/// `GET /healthz`: the status code and body, or `None` when nothing
/// answers yet.
fn healthz(addr: SocketAddr) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((code, body))
}

fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0 // USER_HZ is 100 on Linux
}

/// One start-up: (time to a healthy answer with a sweep done, CPU ms).
fn start_once(
    bin: &Path,
    env: &[(&str, String)],
    dir: &Path,
) -> Result<(Duration, f64), Box<dyn std::error::Error>> {
    let port = iamalive_testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(bin);
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_") || k.starts_with("AWS_"))
    {
        cmd.env_remove(k);
    }
    let log = std::fs::File::create(dir.join("watcher.log"))?;
    cmd.current_dir(dir)
        .env("IAMALIVE_LISTEN", addr.to_string())
        .env("IAMALIVE_API_KEYS", KEY)
        .env("IAMALIVE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let t = Instant::now();
    let mut started = Spawned::spawn(&mut cmd)?;
    let limit = Duration::from_secs(120);
    loop {
        if let Some((200, body)) = healthz(addr)
            && !body.contains("\"last_sweep_at\":null")
            && body.contains("\"last_sweep_at\"")
        {
            let took = t.elapsed();
            return Ok((took, cpu_ms(started.id())));
        }
        if let Some(status) = started.try_wait()? {
            let log = std::fs::read_to_string(dir.join("watcher.log")).unwrap_or_default();
            return Err(format!("{} exited ({status}):\n{log}", bin.display()).into());
        }
        if t.elapsed() > limit {
            return Err(format!(
                "{} not healthy with a sweep within {limit:?}",
                bin.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn report(store: &str, hosts: usize, runs: &[(Duration, f64)]) {
    let secs: Vec<f64> = runs.iter().map(|r| r.0.as_secs_f64() * 1000.0).collect();
    let cpu: Vec<f64> = runs.iter().map(|r| r.1).collect();
    let all: Vec<String> = secs.iter().map(|s| format!("{s:.0}")).collect();
    println!(
        "{store}: {hosts} hosts: start to healthy with a sweep done, median {:.0} ms (runs: {} ms); process CPU by then, median {:.0} ms",
        median(&secs),
        all.join(", "),
        median(&cpu)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = iamalive_benches::runtime(2, "startup")?;
    for store in &args.stores {
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        // The store seeded, then the binary that serves it and its
        // environment; `_server` (Redis) lives until the runs are done.
        let (_server, bin, env) = match store.as_str() {
            "sqlite" => {
                let path = dir.path().join("iamalive.db");
                rt.block_on(async {
                    let s = Arc::new(SqliteStore::builder().path(&path).build()?);
                    seed(&*s, args.hosts, args.in_flight.unwrap_or(4096)).await?;
                    s.checkpoint().await?;
                    Ok::<_, Box<dyn std::error::Error>>(())
                })?;
                let bin = args
                    .sqlite_bin
                    .clone()
                    .unwrap_or_else(|| beside("sqlite-smtp"));
                let env = vec![("IAMALIVE_SQLITE_PATH", path.display().to_string())];
                (None, bin, env)
            }
            "redis" => {
                let server = iamalive_testkit::redis();
                let url = server.redis_url();
                rt.block_on(async {
                    let s = Arc::new(RedisStore::from_url(&url, PREFIX).await?);
                    seed(&*s, args.hosts, args.in_flight.unwrap_or(512)).await?;
                    Ok::<_, Box<dyn std::error::Error>>(())
                })?;
                let bin = args
                    .redis_bin
                    .clone()
                    .unwrap_or_else(|| beside("redis-webhook"));
                let env = vec![
                    ("IAMALIVE_REDIS_URL", url),
                    ("IAMALIVE_REDIS_PREFIX", PREFIX.to_string()),
                ];
                (Some(server), bin, env)
            }
            other => return Err(format!("unknown store {other:?}: sqlite or redis").into()),
        };
        eprintln!(
            "{store}: seeded {} hosts in {:.1} s",
            args.hosts,
            t.elapsed().as_secs_f64()
        );
        let runs = (0..args.runs)
            .map(|_| start_once(&bin, &env, dir.path()))
            .collect::<Result<Vec<_>, _>>()?;
        report(store, args.hosts, &runs);
    }
    Ok(())
}
