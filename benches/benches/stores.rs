//! The sweep's cost on the memory, SQLite and Redis stores: O(due), not
//! O(hosts).
//!
//! For N = 10k, 100k and 1M hosts (`IAMALIVE_BENCH_QUICK=1` stops at
//! 100k): one sweep with nothing due, the naive full scan of the same data
//! beside it (and their ratio, printed after each size), and one sweep
//! with a fixed 100 hosts due, which must cost the same at every N.
//! Redis runs on a `redis-server` this bench starts on a free loopback port.
//!
//! `cargo bench -p iamalive-benches --bench stores`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use iamalive_benches::stats::{median, timed};
use iamalive_benches::{Backend, backend, fill, full_scan, host, quick, t0};
use iamalive_core::{
    Clock, Heartbeat, ManualClock, Monitor, MonitorOptions, Policy, PolicySet, add,
};

fn sizes() -> Vec<usize> {
    if quick() {
        vec![10_000, 100_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

fn bench_store(c: &mut Criterion, b: Backend, redis_url: Option<&str>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let timeout = Duration::from_secs(600);
    let mut g = c.benchmark_group(format!("{}_sweep", b.name()));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(2));
    g.sampling_mode(SamplingMode::Flat);
    for &n in &sizes() {
        let opened = rt.block_on(backend::open(b, redis_url)).unwrap();
        let store = Arc::clone(&opened.store);
        let t = Instant::now();
        rt.block_on(fill(&*store, n, 0, timeout)).unwrap();
        eprintln!(
            "{b}: {n} hosts filled in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let clock = ManualClock::new(add(t0(), Duration::from_secs(1)));
        let monitor = Monitor::new(
            Arc::clone(&store),
            vec![],
            clock.clone(),
            PolicySet::new(Policy::default()),
            MonitorOptions::default(),
        )
        .expect("channel names are unique");
        let sweep_times = Mutex::new(Vec::new());
        let scan_times = Mutex::new(Vec::new());
        // Nothing due: the sweep must not look at any host.
        g.bench_with_input(BenchmarkId::new("nothing_due", n), &n, |bch, _| {
            bch.iter_custom(|iters| {
                timed(iters, &sweep_times, || {
                    let t = Instant::now();
                    let r = rt.block_on(monitor.sweep()).unwrap();
                    assert_eq!(r.evaluated, 0);
                    t.elapsed()
                })
            })
        });
        // What a store without a due index would do each sweep.
        g.bench_with_input(BenchmarkId::new("naive_full_scan", n), &n, |bch, _| {
            bch.iter_custom(|iters| {
                timed(iters, &scan_times, || {
                    let t = Instant::now();
                    let due = rt.block_on(full_scan(&*store, clock.now())).unwrap();
                    assert_eq!(due, 0);
                    t.elapsed()
                })
            })
        });
        // A fixed 100 due, re-armed before each sweep: must not grow with n.
        g.bench_with_input(BenchmarkId::new("100_due", n), &n, |bch, _| {
            bch.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    rt.block_on(async {
                        let now = clock.now();
                        let hbs = (0..100).map(|i| {
                            let store = &store;
                            async move {
                                store
                                    .record_heartbeat(&Heartbeat::new(host(i), now), now, true)
                                    .await
                            }
                        });
                        for r in futures::future::join_all(hbs).await {
                            r.unwrap();
                        }
                    });
                    let t = Instant::now();
                    let r = rt.block_on(monitor.sweep()).unwrap();
                    total += t.elapsed();
                    assert_eq!(r.evaluated, 100);
                }
                total
            })
        });
        let sweep = median(&sweep_times.lock().unwrap());
        let scan = median(&scan_times.lock().unwrap());
        eprintln!(
            "{b} n={n}: sweep with nothing due {:.1} µs, naive full scan {:.1} ms: ratio {:.0}x",
            sweep * 1e6,
            scan * 1e3,
            scan / sweep
        );
        drop(monitor);
        drop(store);
        rt.block_on(async move { drop(opened) });
    }
    g.finish();
}

fn bench_memory(c: &mut Criterion) {
    bench_store(c, Backend::Memory, None);
}

fn bench_sqlite(c: &mut Criterion) {
    bench_store(c, Backend::Sqlite, None);
}

fn bench_redis(c: &mut Criterion) {
    let server = backend::redis_server();
    bench_store(c, Backend::Redis, Some(&server.redis_url()));
}

criterion_group!(benches, bench_memory, bench_sqlite, bench_redis);
criterion_main!(benches);
