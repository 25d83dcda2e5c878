//! A site going dark at scale: many hosts monitored, every host of one
//! group falls silent at once. Measures, per store, over repeated
//! outage/recovery cycles on the same seeded store:
//!
//! - the one group alarm's arrival at the notifier after the group's wait
//!   ends (its `missing_since` plus `wait`);
//! - how long the sweep takes to work through the group's host records:
//!   from the last host's deadline until none is due (each held), and from
//!   the wait's end until none is due (each absorbed into the outage);
//! - the group all-clear's arrival after the last host is back (its
//!   `recovered_at`), and how long the returns take to work through;
//! - the latency of the other hosts' heartbeats, posted over HTTP at a
//!   steady rate the whole time, inside those windows.
//!
//! One process: the real router on loopback (the site's hosts heartbeat
//! over HTTP, so the router puts them in their configured group) and the
//! real runner on the system clock; the notifier timestamps each notice as
//! it arrives. Whether a record is due is read with the store's own
//! `next_due`/`next_group_due` every 2 ms, which the runner reads too.
//!
//! `cargo run --release -p iamalive-benches --bin site-dark -- --store memory --reps 20`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use iamalive_benches::http::{LoadSpec, Service, app_state, bench_config, burst, drive};
use iamalive_benches::stats::{Latencies, median, ms};
use iamalive_benches::{Backend, Stamper, backend, host};
use iamalive_core::{
    GroupName, Heartbeat, HostPattern, NoticeKind, PolicyOverride, Store, StoreError, Timestamp,
    add,
};
use iamalive_server::{GroupConfig, GroupingSettings};

#[derive(Parser, Debug)]
#[command(about = "One site of many hosts going dark: group alarm and all-clear timing")]
struct Args {
    /// Stores to measure (memory, sqlite, redis, dynamo); default the first three.
    #[arg(long = "store", value_delimiter = ',')]
    stores: Vec<String>,
    /// Hosts monitored in all (the site's included).
    #[arg(long, default_value_t = 100_000)]
    hosts: usize,
    /// Hosts of the site that goes dark (`site-00000` …, group `site-a`).
    #[arg(long, default_value_t = 10_000)]
    site: usize,
    /// Outage/recovery cycles on the same store.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// The site hosts' timeout (the others have an hour). Longer than the
    /// site's return burst (3-4 s for 10,000 hosts here): with a shorter
    /// one the first hosts back time out again before the last are back,
    /// so the site is never all back and its outage rightly goes on.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The group's `wait`.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// Heartbeats per second posted for the other hosts the whole time.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Keep-alive connections those heartbeats use.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Connections the site's hosts heartbeat over (all at once).
    #[arg(long, default_value_t = 32)]
    burst_connections: usize,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    give_up: Duration,
}

/// One cycle's figures (milliseconds); `None` where it did not happen.
#[derive(Debug, Default, Clone)]
struct Rep {
    /// Posting the site's heartbeats (the returns).
    burst: f64,
    /// All-clear arrival − its `recovered_at`.
    all_clear: Option<f64>,
    /// Last return answered → nothing due.
    returns_done: Option<f64>,
    /// Last deadline → nothing due (every host held).
    held_done: Option<f64>,
    /// Group alarm arrival − (`missing_since` + wait).
    alarm: Option<f64>,
    /// Hosts the group alarm named.
    alarm_hosts: usize,
    /// Wait's end → nothing due (every host absorbed).
    absorbed_done: Option<f64>,
    /// Notices other than the group's in this cycle.
    others: usize,
    /// Others' heartbeat latencies inside the processing windows.
    window_lat: Latencies,
}

fn site_host(i: usize) -> String {
    format!("site-{i:05}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let stores = if args.stores.is_empty() {
        vec!["memory".to_owned(), "sqlite".to_owned(), "redis".to_owned()]
    } else {
        args.stores.clone()
    };
    let redis = stores
        .iter()
        .any(|s| s == "redis")
        .then(backend::redis_server);
    let redis_url = redis.as_ref().map(|r| r.redis_url());
    let moto = stores
        .iter()
        .any(|s| s == "dynamo")
        .then(iamalive_testkit::moto);
    let moto_url = moto.as_ref().map(|m| m.http_url());
    println!(
        "{} hosts, site of {} (timeout {:?}, group wait {:?}), {} heartbeats/s for the others, {} rep(s); load average {}",
        args.hosts,
        args.site,
        args.timeout,
        args.wait,
        args.rate,
        args.reps,
        loadavg()
    );
    for s in &stores {
        run_store(&args, s, redis_url.as_deref(), moto_url.as_deref())?;
    }
    drop(redis);
    drop(moto);
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A store and whatever must live as long as it.
type Opened = (Arc<dyn Store>, Box<dyn std::any::Any + Send>);

async fn open(
    name: &str,
    redis_url: Option<&str>,
    moto_url: Option<&str>,
) -> Result<Opened, Box<dyn std::error::Error>> {
    if name == "dynamo" {
        let url = moto_url.ok_or("no moto")?;
        let client = aws_sdk_dynamodb::Client::from_conf(backend::moto_config(url).build());
        let store = iamalive_store_dynamo::DynamoStore::new(client, "site-dark");
        store.create_table_if_missing().await?;
        return Ok((Arc::new(store), Box::new(())));
    }
    let b: Backend = name.parse()?;
    let opened = backend::open(b, redis_url).await?;
    Ok((opened.store.clone(), Box::new(opened)))
}

/// Whether any host or group record is due at `now`.
async fn backlog(store: &dyn Store, now: Timestamp) -> Result<bool, StoreError> {
    Ok(store.next_due().await?.is_some_and(|d| d <= now)
        || store.next_group_due().await?.is_some_and(|d| d <= now))
}

/// Polls every 2 ms until nothing is due; the instant it saw that.
async fn until_done(store: &dyn Store, give_up: Duration) -> Result<Option<Timestamp>, StoreError> {
    let end = Instant::now() + give_up;
    while Instant::now() < end {
        let now = chrono::Utc::now();
        if !backlog(store, now).await? {
            return Ok(Some(now));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(None)
}

async fn sleep_until(at: Timestamp) {
    if let Ok(d) = (at - chrono::Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

fn ms_between(from: Timestamp, to: Timestamp) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn run_store(
    args: &Args,
    name: &str,
    redis_url: Option<&str>,
    moto_url: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let server_rt = iamalive_benches::runtime(2, "server")?;
    let client_rt = iamalive_benches::runtime(2, "client")?;
    let mut config = bench_config();
    // Every cycle is an outage of the same site: with flapping detection
    // on, the fifth within an hour would be one `flapping` notice instead
    // of a group alarm (as a user would want, not what is measured).
    config.groups.flapping.enabled = false;
    config.policies.default.flapping.enabled = false;
    config.policies.default.timeout = Duration::from_secs(3600);
    config.policies.default.reminder_interval = Duration::from_secs(3600);
    config.policies.overrides.push(PolicyOverride {
        timeout: Some(args.timeout),
        reminder_interval: Some(Duration::from_secs(3600)),
        ..PolicyOverride::new(HostPattern::new("site-*")?)
    });
    config.groups.groups.push(GroupConfig {
        name: GroupName::new("site-a")?,
        hosts: HostPattern::new("site-*")?,
        settings: GroupingSettings {
            min_hosts: 2,
            wait: args.wait,
        },
        flapping: config.groups.flapping,
    });
    let stamper = Arc::new(Stamper::default());
    let others = args.hosts - args.site;

    // Seed the others once, in-process (they are not what is measured).
    let seed_start = Instant::now();
    let (store, keep, state) = server_rt.block_on(async {
        let (store, keep) = open(name, redis_url, moto_url).await?;
        let state = app_state(store.clone(), vec![stamper.clone()], &config);
        let monitor = Arc::clone(state.monitor());
        let now = chrono::Utc::now();
        let in_flight = if name == "dynamo" { 64 } else { 512 };
        let mut s = futures::stream::iter((0..others).map(|i| {
            let monitor = Arc::clone(&monitor);
            async move { monitor.heartbeat(&Heartbeat::new(host(i), now)).await }
        }))
        .buffer_unordered(in_flight);
        while let Some(r) = s.next().await {
            r?;
        }
        Ok::<_, Box<dyn std::error::Error>>((store, keep, state))
    })?;
    println!(
        "\n== {name}: {others} other hosts seeded in {:.1} s",
        seed_start.elapsed().as_secs_f64()
    );
    let service = server_rt.block_on(Service::start(&state))?;
    let addr = service.addr;

    // The others' heartbeats, at a steady rate, for the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let mut spec = LoadSpec::flat_out(
        addr,
        args.connections,
        others,
        Duration::ZERO,
        Duration::from_secs(86_400),
    );
    spec.rate = Some(args.rate);
    spec.timeline = true;
    spec.stop = Some(Arc::clone(&stop));
    let loader = client_rt.spawn(async move { drive(&spec).await });

    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..args.site)
            .map(|i| Bytes::from(format!("{{\"host\":\"{}\"}}", site_host(i))))
            .collect(),
    );
    // Wall clock ↔ monotonic, for the loader's timeline.
    let base = (Instant::now(), chrono::Utc::now());
    let to_instant = |t: Timestamp| match (t - base.1).to_std() {
        Ok(d) => base.0 + d,
        Err(_) => base.0,
    };
    let mut reps: Vec<Rep> = Vec::new();
    let mut windows: Vec<(usize, Timestamp, Timestamp)> = Vec::new();
    let r: Result<(), Box<dyn std::error::Error>> = client_rt.block_on(async {
        // One more cycle than asked: the first return is the first heartbeat.
        for rep in 0..=args.reps {
            let mut out = Rep::default();
            let seen_before = stamper.len();
            let t_start = chrono::Utc::now();
            let ok = burst(addr, Arc::clone(&bodies), args.burst_connections).await?;
            let t_end = chrono::Utc::now();
            assert_eq!(ok, args.site);
            out.burst = ms_between(t_start, t_end);
            if rep > 0 {
                // The returns: every host back, so the all-clear goes at once.
                let give_up = Instant::now() + args.give_up;
                let done = until_done(&*store, args.give_up).await?;
                out.returns_done = done.map(|d| ms_between(t_end, d));
                if let Some(d) = done {
                    windows.push((rep, t_start, d));
                }
                while stamper.find_group(NoticeKind::Recovery, seen_before).is_none()
                    && Instant::now() < give_up
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if let Some((_, n, at)) = stamper.find_group(NoticeKind::Recovery, seen_before) {
                    out.all_clear = n.recovered_at.map(|r| ms_between(r, at));
                }
            }
            if rep == args.reps {
                reps.push(out);
                break;
            }
            // The silence: deadlines from the first to the last heartbeat
            // plus the timeout.
            let last_deadline = add(t_end, args.timeout);
            sleep_until(last_deadline).await;
            let done = until_done(&*store, args.give_up).await?;
            out.held_done = done.map(|d| ms_between(last_deadline, d));
            if let Some(d) = done {
                windows.push((rep, last_deadline, d));
            }
            let give_up = Instant::now() + args.give_up;
            let mut alarm = None;
            while alarm.is_none() && Instant::now() < give_up {
                alarm = stamper.find_group(NoticeKind::Alarm, seen_before);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if let Some((_, n, at)) = alarm {
                let wait_end = add(n.missing_since, args.wait);
                out.alarm = Some(ms_between(wait_end, at));
                out.alarm_hosts = n.hosts.len();
                sleep_until(wait_end).await;
                let done = until_done(&*store, args.give_up).await?;
                out.absorbed_done = done.map(|d| ms_between(wait_end, d));
                if let Some(d) = done {
                    windows.push((rep, wait_end, d));
                }
            }
            out.others = stamper.hosts_own_since(seen_before);
            println!(
                "rep {rep:>2}: burst {:>6.0} ms | all-clear {} | returns done {} | held done {} | alarm {} naming {} | absorbed done {} | other notices {} | load {}",
                out.burst,
                opt(out.all_clear),
                opt(out.returns_done),
                opt(out.held_done),
                opt(out.alarm),
                out.alarm_hosts,
                opt(out.absorbed_done),
                out.others,
                loadavg()
            );
            reps.push(out);
        }
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    let load = client_rt.block_on(loader)??;
    server_rt.block_on(service.stop());
    drop(state);
    server_rt.block_on(async move {
        drop(store);
        drop(keep);
    });
    r?;

    // The others' heartbeats inside each processing window.
    let mut all = load.latencies.clone();
    for (rep, from, to) in &windows {
        let (from, to) = (to_instant(*from), to_instant(*to));
        for (done, lat) in &load.timeline {
            if *done >= from && *done <= to {
                reps[*rep].window_lat.record(*lat);
            }
        }
    }
    let mut in_windows = Latencies::default();
    for r in &reps {
        in_windows.merge(r.window_lat.clone());
    }
    let col = |f: fn(&Rep) -> Option<f64>| -> Vec<f64> { reps.iter().filter_map(f).collect() };
    let summary = |label: &str, v: Vec<f64>| {
        let mut l = Latencies::default();
        for x in &v {
            l.record(Duration::from_secs_f64(x.max(0.0) / 1000.0));
        }
        println!(
            "  {label:<34} n={:<3} median {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
            v.len(),
            median(&v),
            ms(l.percentile(99.0)),
            ms(l.max())
        );
    };
    println!("{name}: over {} cycle(s)", args.reps);
    summary("group alarm after wait end", col(|r| r.alarm));
    summary("held: last deadline → none due", col(|r| r.held_done));
    summary("absorbed: wait end → none due", col(|r| r.absorbed_done));
    summary("all-clear after last return", col(|r| r.all_clear));
    summary("returns: last answered → none due", col(|r| r.returns_done));
    summary(
        "site burst (10k heartbeats posted)",
        reps.iter().map(|r| r.burst).collect(),
    );
    println!(
        "  group alarm named {:?} host(s); notices other than the group's: {}",
        reps.iter()
            .filter(|r| r.alarm.is_some())
            .map(|r| r.alarm_hosts)
            .collect::<std::collections::BTreeSet<_>>(),
        reps.iter().map(|r| r.others).sum::<usize>()
    );
    println!(
        "  other hosts' heartbeats: {} answered ({:.0}/s), {} errors; p50 {:.2} ms p99 {:.2} ms max {:.2} ms over the run; inside the processing windows ({} answers) p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        load.ok,
        load.rate(),
        load.errors,
        ms(all.percentile(50.0)),
        ms(all.percentile(99.0)),
        ms(all.max()),
        in_windows.len(),
        ms(in_windows.percentile(50.0)),
        ms(in_windows.percentile(99.0)),
        ms(in_windows.max())
    );
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "    —".to_owned(), |v| format!("{v:>7.1} ms"))
}
