//! Core: `evaluate` throughput. (The sweep's cost on every store, the
//! memory store included, is in `benches/stores.rs`.)
//!
//! `cargo bench -p iamalive-benches --bench core`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iamalive_benches::t0;
use iamalive_core::{Context, HostId, HostRecord, Policy, add, evaluate, evaluate_in_place};

// `Bencher::iter` passes each result through `black_box` itself; wrapping it
// in a second one made every iteration copy the 200-byte `Decision` once
// more (about 19 ns of the 64 ns measured before).
fn bench_evaluate(c: &mut Criterion) {
    let policy = Policy::default();
    let ctx = Context::default();
    let rec = HostRecord::new(HostId::new("build-01").unwrap(), t0(), policy.timeout);
    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(1));
    let before = add(t0(), Duration::from_secs(60));
    g.bench_function("up_not_due", |b| {
        b.iter(|| evaluate(black_box(&rec), black_box(before), &policy, &ctx))
    });
    // What a sweep does with a record it owns: decide in place, no copy.
    let mut owned = rec.clone();
    g.bench_function("in_place_up_not_due", |b| {
        b.iter(|| evaluate_in_place(black_box(&mut owned), black_box(before), &policy, &ctx))
    });
    let after = add(t0(), Duration::from_secs(601));
    g.bench_function("up_to_missing_with_alarm", |b| {
        b.iter(|| evaluate(black_box(&rec), black_box(after), &policy, &ctx))
    });
    g.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
