//! Detection latency: from a host's deadline to its alarm reaching the
//! notifier, with many hosts monitored, on each store, idle and under
//! heartbeat load — the real runner on the system clock, one process.
//!
//! `cargo run --release -p iamalive-benches --bin latency -- --hosts 100000 --outages 1000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use iamalive_benches::http::{LoadSpec, Service, app_state, bench_config, drive};
use iamalive_benches::stats::{Latencies, median, ms};
use iamalive_benches::{Backend, Stamper, backend, host};
use iamalive_core::{Heartbeat, HostId, HostPattern, NoticeKind, PolicyOverride, add};

#[derive(Parser, Debug)]
#[command(about = "Measures deadline-to-notifier latency of alarms")]
struct Args {
    /// Stores to measure (memory, sqlite, redis); default all three.
    #[arg(long = "store", value_delimiter = ',')]
    stores: Vec<Backend>,
    /// Hosts monitored in all (the outage hosts included).
    #[arg(long, default_value_t = 100_000)]
    hosts: usize,
    /// Hosts that fall silent, their deadlines spread evenly over `--spread`.
    #[arg(long, default_value_t = 1_000)]
    outages: usize,
    /// The stretch the outages' deadlines are spread over.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    spread: Duration,
    /// The outage hosts' timeout (the others have an hour).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Keep-alive connections posting heartbeats for the other hosts in
    /// the loaded mode.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Which modes: idle, load, or both (default).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["idle".to_owned(), "load".to_owned()])]
    mode: Vec<String>,
    /// Runs of the whole set; the summary gives the median of each figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Per store and mode: [p50, p99, max] of each run, and heartbeats/s.
type Summary = (Backend, String, Vec<[f64; 3]>, Vec<f64>);

struct Outcome {
    lat: Latencies,
    alarms: usize,
    early: usize,
    heartbeats_per_s: f64,
}

fn outage_host(i: usize) -> HostId {
    HostId::new(format!("out-{i:05}")).expect("valid")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let selected = backend::select(&args.stores, &Backend::STORES);
    let server_rt = iamalive_benches::runtime(2, "server")?;
    let client_rt = iamalive_benches::runtime(2, "client")?;
    println!(
        "{} hosts monitored, {} outages with deadlines spread over {:?}, timeout {:?}; {} run(s)",
        args.hosts, args.outages, args.spread, args.timeout, args.runs
    );
    let mut summary: Vec<Summary> = Vec::new();
    // Runs in which an alarm did not come, or came before its deadline:
    // their figures describe the alarms that did, not the outages.
    let mut incomplete = 0;
    for run in 0..args.runs {
        for &b in &selected.stores {
            for mode in &args.mode {
                let load = mode == "load";
                let o = one(&args, b, load, &server_rt, &client_rt, selected.redis_url())?;
                let mut lat = o.lat;
                let f = [
                    ms(lat.percentile(50.0)),
                    ms(lat.percentile(99.0)),
                    ms(lat.max()),
                ];
                println!(
                    "run {run} {:<7} {:<5} alarms {}/{}  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  early {}  heartbeats {:.0}/s",
                    b.name(),
                    mode,
                    o.alarms,
                    args.outages,
                    f[0],
                    f[1],
                    f[2],
                    o.early,
                    o.heartbeats_per_s
                );
                if o.alarms != args.outages || o.early > 0 {
                    incomplete += 1;
                }
                match summary.iter_mut().find(|s| s.0 == b && &s.1 == mode) {
                    Some(s) => {
                        s.2.push(f);
                        s.3.push(o.heartbeats_per_s);
                    }
                    None => summary.push((b, mode.clone(), vec![f], vec![o.heartbeats_per_s])),
                }
            }
        }
    }
    println!("\nmedian of {} run(s):", args.runs);
    println!("store    mode     p50 ms   p99 ms   max ms   heartbeats/s");
    for (b, mode, fs, hb) in &summary {
        let col = |k: usize| median(&fs.iter().map(|f| f[k]).collect::<Vec<_>>());
        println!(
            "{:<8} {:<5} {:>8.2} {:>8.2} {:>8.2} {:>12.0}",
            b.name(),
            mode,
            col(0),
            col(1),
            col(2),
            median(hb)
        );
    }
    drop(selected);
    if incomplete > 0 {
        return Err(format!(
            "{incomplete} run(s) did not get one alarm per outage, each after its deadline: \
             the figures above are not detection latencies"
        )
        .into());
    }
    Ok(())
}

fn one(
    args: &Args,
    b: Backend,
    load: bool,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    redis_url: Option<&str>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut config = bench_config();
    config.policies.default.timeout = Duration::from_secs(3600);
    config.policies.overrides.push(PolicyOverride {
        timeout: Some(args.timeout),
        reminder_interval: Some(Duration::from_secs(3600)),
        ..PolicyOverride::new(HostPattern::new("out-*")?)
    });
    let stamper = Arc::new(Stamper::default());
    let others = args.hosts - args.outages;
    let (opened, state) = server_rt.block_on(async {
        let opened = backend::open(b, redis_url).await?;
        let state = app_state(opened.store.clone(), vec![stamper.clone()], &config);
        let monitor = Arc::clone(state.monitor());
        let now = chrono::Utc::now();
        let mut s = futures::stream::iter((0..others).map(|i| {
            let monitor = Arc::clone(&monitor);
            async move { monitor.heartbeat(&Heartbeat::new(host(i), now)).await }
        }))
        .buffer_unordered(4096);
        while let Some(r) = s.next().await {
            r?;
        }
        Ok::<_, Box<dyn std::error::Error>>((opened, state))
    })?;
    let service = server_rt.block_on(Service::start(&state))?;
    let addr = service.addr;

    // The heartbeat load for the other hosts, over HTTP, for the whole run.
    let window = args.spread + args.timeout + Duration::from_secs(1);
    let loader = load.then(|| {
        let spec = LoadSpec::flat_out(addr, args.connections, others, Duration::ZERO, window);
        client_rt.spawn(async move { drive(&spec).await })
    });

    // The outage hosts: each heard from once, at its own instant, then silent.
    let monitor = Arc::clone(state.monitor());
    let n = args.outages;
    let spread = args.spread;
    client_rt.block_on(async {
        let start = tokio::time::Instant::now();
        for i in 0..n {
            tokio::time::sleep_until(start + spread.mul_f64(i as f64 / n as f64)).await;
            monitor
                .heartbeat(&Heartbeat::new(outage_host(i), chrono::Utc::now()))
                .await?;
        }
        // Until every alarm arrived, or well past the last deadline.
        let give_up = Instant::now() + args.timeout + Duration::from_secs(5);
        while stamper.count(NoticeKind::Alarm) < n && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, iamalive_core::StoreError>(())
    })?;
    let heartbeats_per_s = match loader {
        Some(l) => client_rt.block_on(l)??.rate(),
        None => 0.0,
    };
    server_rt.block_on(service.stop());
    drop(state);
    server_rt.block_on(async move { drop(opened) });

    let got: Vec<_> = stamper
        .take()
        .into_iter()
        .filter(|(n, _)| n.kind == NoticeKind::Alarm)
        .collect();
    let mut lat = Latencies::default();
    let mut early = 0;
    for (notice, arrived) in &got {
        let deadline = add(notice.last_seen, args.timeout);
        match (*arrived - deadline).to_std() {
            Ok(d) => lat.record(d),
            Err(_) => early += 1,
        }
    }
    Ok(Outcome {
        lat,
        alarms: got.len(),
        early,
        heartbeats_per_s,
    })
}
