//! HTTP ingest load harness: serves the real `iamalive_server::router` on
//! loopback over each store and posts heartbeats for many distinct hosts
//! over keep-alive HTTP/1.1 connections, reporting req/s, p50/p99 latency
//! and the ratio to the null store (the HTTP ceiling), all in one run.
//!
//! `cargo run --release -p iamalive-benches --bin load -- --hosts 100000 --duration 10s --connections 64`

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use iamalive_benches::http::{LoadSpec, Service, app_state, bench_config, drive, serve};
use iamalive_benches::stats::{median, ms};
use iamalive_benches::{Backend, backend, host};
use iamalive_core::Heartbeat;
use iamalive_server::Runner;

#[derive(Parser, Debug)]
#[command(about = "Posts heartbeats through the real HTTP service with each store")]
struct Args {
    /// Stores to measure, in order (null, memory, sqlite, redis; or handoff: the
    /// null store answered from another thread, yield: suspended once and
    /// resumed on its runtime); default the first four.
    #[arg(long = "store", value_delimiter = ',')]
    stores: Vec<Backend>,
    /// Distinct hosts the heartbeats cycle through.
    #[arg(long, default_value_t = 100_000)]
    hosts: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The measured window per store and run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before the measured window (not counted).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Runs of the whole set; the report gives the median of each figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Only serve one store (the first given) with its hosts registered,
    /// print the address, and wait for Ctrl-C or SIGTERM (then stop the
    /// redis-server it started, if any): for wrk or oha.
    #[arg(long)]
    serve: bool,
}

struct Row {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let selected = backend::select(&args.stores, &Backend::ALL);
    let stores = &selected.stores;
    let server_rt = iamalive_benches::runtime(args.server_threads, "server")?;
    let client_rt = iamalive_benches::runtime(args.client_threads, "client")?;

    if args.serve {
        let b = stores[0];
        return server_rt.block_on(async {
            let opened = backend::open(b, selected.redis_url()).await?;
            let state = app_state(opened.store.clone(), vec![], &bench_config());
            register(&state, args.hosts).await?;
            let (addr, _h) = serve(state.clone()).await?;
            tokio::spawn(Runner::new(&state, Duration::from_secs(1)).run(std::future::pending()));
            println!(
                "serving {} on http://{addr}/v1/heartbeat with {} hosts; key {}",
                opened.store,
                args.hosts,
                iamalive_benches::http::BENCH_KEY
            );
            // SIGTERM too (`kill PID`): returning drops the redis-server
            // this harness started, which a killed process would leave
            // running.
            iamalive_server::shutdown_signal().await;
            Ok(())
        });
    }

    println!(
        "{} hosts, {} connections, {:?} warm-up + {:?} measured per store, {} run(s); server {} threads, client {} threads",
        args.hosts,
        args.connections,
        args.warmup,
        args.duration,
        args.runs,
        args.server_threads,
        args.client_threads
    );
    let mut rows: Vec<Row> = stores
        .iter()
        .map(|_| Row {
            rate: vec![],
            p50: vec![],
            p99: vec![],
            errors: 0,
        })
        .collect();
    for run in 0..args.runs {
        for (i, &b) in stores.iter().enumerate() {
            let (opened, state) = server_rt.block_on(async {
                let opened = backend::open(b, selected.redis_url()).await?;
                let state = app_state(opened.store.clone(), vec![], &bench_config());
                register(&state, args.hosts).await?;
                Ok::<_, Box<dyn std::error::Error>>((opened, state))
            })?;
            let service = server_rt.block_on(Service::start(&state))?;
            let addr = service.addr;
            let spec = LoadSpec::flat_out(
                addr,
                args.connections,
                args.hosts,
                args.warmup,
                args.duration,
            );
            let mut r = client_rt.block_on(drive(&spec))?;
            server_rt.block_on(service.stop());
            drop(state);
            let (p50, p99) = (r.latencies.percentile(50.0), r.latencies.percentile(99.0));
            println!(
                "run {run} {:<7} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  ({})",
                b.name(),
                r.rate(),
                ms(p50),
                ms(p99),
                r.errors,
                opened.store
            );
            rows[i].rate.push(r.rate());
            rows[i].p50.push(ms(p50));
            rows[i].p99.push(ms(p99));
            rows[i].errors += r.errors;
            server_rt.block_on(async move { drop(opened) });
        }
    }
    let ceiling = stores
        .iter()
        .position(|&b| b == Backend::Null)
        .map(|i| median(&rows[i].rate));
    println!("\nmedian of {} run(s):", args.runs);
    println!("store      req/s     p50 ms   p99 ms   vs null   errors");
    for (b, row) in stores.iter().zip(&rows) {
        let rate = median(&row.rate);
        let ratio = ceiling.map_or("-".to_owned(), |c| format!("{:.2}x", rate / c));
        println!(
            "{:<8} {:>9.0} {:>8.2} {:>8.2} {:>8} {:>8}",
            b.name(),
            rate,
            median(&row.p50),
            median(&row.p99),
            ratio,
            row.errors
        );
    }
    drop(selected);
    Ok(())
}

/// Registers every host with a heartbeat now, so the measured heartbeats
/// update known hosts (the steady state) rather than create them.
async fn register(
    state: &iamalive_server::AppState,
    hosts: usize,
) -> Result<(), iamalive_core::StoreError> {
    let monitor = Arc::clone(state.monitor());
    let futs = (0..hosts).map(|i| {
        let monitor = Arc::clone(&monitor);
        async move {
            monitor
                .heartbeat(&Heartbeat::new(host(i), chrono::Utc::now()))
                .await
        }
    });
    let mut s = futures::stream::iter(futs).buffer_unordered(4096);
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}
