//! Core: `evaluate` throughput, and the sweep's cost on the memory store —
//! O(due), against a naive full scan.
//!
//! `cargo bench -p iamalive-benches --bench core`; `IAMALIVE_BENCH_QUICK=1`
//! stops at 100k hosts.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iamalive_benches::stats::{median, timed};
use iamalive_benches::{fill, full_scan, quick, t0};
use iamalive_core::{
    Context, HostId, HostRecord, ManualClock, MemoryStore, Monitor, MonitorOptions, Policy,
    PolicySet, Store, add, evaluate, evaluate_in_place,
};

fn sizes() -> Vec<usize> {
    if quick() {
        vec![10_000, 100_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

fn bench_evaluate(c: &mut Criterion) {
    let policy = Policy::default();
    let ctx = Context::default();
    let rec = HostRecord::new(HostId::new("build-01").unwrap(), t0(), policy.timeout);
    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(1));
    let before = add(t0(), Duration::from_secs(60));
    g.bench_function("up_not_due", |b| {
        b.iter(|| black_box(evaluate(black_box(&rec), black_box(before), &policy, &ctx)))
    });
    // What a sweep does with a record it owns: decide in place, no copy.
    let mut owned = rec.clone();
    g.bench_function("in_place_up_not_due", |b| {
        b.iter(|| {
            black_box(evaluate_in_place(
                black_box(&mut owned),
                black_box(before),
                &policy,
                &ctx,
            ))
        })
    });
    let after = add(t0(), Duration::from_secs(601));
    g.bench_function("up_to_missing_with_alarm", |b| {
        b.iter(|| black_box(evaluate(black_box(&rec), black_box(after), &policy, &ctx)))
    });
    g.finish();
}

fn bench_sweep(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let timeout = Duration::from_secs(600);
    let mut g = c.benchmark_group("memory_sweep");
    g.sample_size(20);
    // One iteration of the full scan at 1M takes long: the same count of
    // iterations per sample keeps the whole set within minutes.
    g.sampling_mode(criterion::SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    for &n in &sizes() {
        // Nothing due: the sweep must not look at any host.
        let store = Arc::new(MemoryStore::new());
        rt.block_on(fill(&*store, n, 0, timeout)).unwrap();
        let clock = ManualClock::new(add(t0(), Duration::from_secs(1)));
        let monitor = Monitor::new(
            store.clone() as Arc<dyn Store>,
            vec![],
            clock.clone(),
            PolicySet::new(Policy::default()),
            MonitorOptions::default(),
        );
        let sweep_times = Mutex::new(Vec::new());
        let scan_times = Mutex::new(Vec::new());
        g.bench_with_input(BenchmarkId::new("nothing_due", n), &n, |b, _| {
            b.iter_custom(|iters| {
                timed(iters, &sweep_times, || {
                    let t = Instant::now();
                    let r = rt.block_on(monitor.sweep()).unwrap();
                    assert_eq!(r.evaluated, 0);
                    t.elapsed()
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("naive_full_scan", n), &n, |b, _| {
            b.iter_custom(|iters| {
                timed(iters, &scan_times, || {
                    let t = Instant::now();
                    black_box(rt.block_on(full_scan(&*store, clock.now_ts())).unwrap());
                    t.elapsed()
                })
            })
        });
        let sweep = median(&sweep_times.lock().unwrap());
        let scan = median(&scan_times.lock().unwrap());
        eprintln!(
            "memory n={n}: sweep with nothing due {:.2} µs, naive full scan {:.2} ms: ratio {:.0}x",
            sweep * 1e6,
            scan * 1e3,
            scan / sweep
        );
        // A fixed 100 due, re-armed each iteration: cost must not grow with n.
        g.bench_with_input(BenchmarkId::new("100_due", n), &n, |b, _| {
            b.iter_batched(
                || {
                    rt.block_on(async {
                        let now = clock.now_ts();
                        for i in 0..100 {
                            let hb = iamalive_core::Heartbeat::new(iamalive_benches::host(i), now);
                            store.record_heartbeat(&hb, now, true).await.unwrap();
                        }
                    })
                },
                |()| rt.block_on(monitor.sweep()).unwrap(),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

trait NowTs {
    fn now_ts(&self) -> iamalive_core::Timestamp;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> iamalive_core::Timestamp {
        iamalive_core::Clock::now(self)
    }
}

criterion_group!(benches, bench_evaluate, bench_sweep);
criterion_main!(benches);
