//! The harness itself works: heartbeats posted by the load generator reach
//! the store through the real router. (No speed is asserted here.)

use std::time::Duration;

use iamalive_benches::http::{LoadSpec, app_state, bench_config, burst, drive, serve};
use iamalive_benches::{Backend, backend, host};
use iamalive_core::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_heartbeats_reach_the_store() {
    let opened = backend::open(Backend::Memory, None).await.unwrap();
    let state = app_state(opened.store.clone(), vec![], &bench_config());
    let (addr, _serving) = serve(state).await.unwrap();
    let spec = LoadSpec::flat_out(addr, 4, 50, Duration::ZERO, Duration::from_millis(300));
    let mut r = drive(&spec).await.unwrap();
    assert_eq!(r.errors, 0);
    assert!(r.ok > 0, "no request answered");
    assert!(r.latencies.percentile(99.0) >= r.latencies.percentile(50.0));
    // Every connection started on its own host: the first four exist.
    for i in 0..4 {
        let rec = opened.store.get(&host(i)).await.unwrap().expect("created");
        assert_eq!(rec.status, Status::Up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_store_answers_every_heartbeat() {
    let opened = backend::open(Backend::Null, None).await.unwrap();
    let state = app_state(opened.store.clone(), vec![], &bench_config());
    let (addr, _serving) = serve(state).await.unwrap();
    let spec = LoadSpec::flat_out(addr, 2, 10, Duration::ZERO, Duration::from_millis(200));
    let r = drive(&spec).await.unwrap();
    assert_eq!(r.errors, 0);
    assert!(r.ok > 0);
    assert!(opened.store.get(&host(0)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_keeps_to_its_rate_and_stamps_each_answer() {
    let opened = backend::open(Backend::Memory, None).await.unwrap();
    let state = app_state(opened.store.clone(), vec![], &bench_config());
    let (addr, _serving) = serve(state).await.unwrap();
    let mut spec = LoadSpec::flat_out(addr, 4, 50, Duration::ZERO, Duration::from_millis(500));
    spec.rate = Some(100.0);
    spec.timeline = true;
    let started = std::time::Instant::now();
    let r = drive(&spec).await.unwrap();
    assert_eq!(r.errors, 0);
    // 100/s for half a second: 50 requests, give or take one per connection.
    assert!(
        (46..=54).contains(&r.ok),
        "{} requests at 100/s in 0.5 s",
        r.ok
    );
    assert_eq!(r.timeline.len() as u64, r.ok);
    assert!(
        r.timeline
            .iter()
            .all(|(done, lat)| *done > started && *lat < Duration::from_secs(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_posts_each_heartbeat_once() {
    let opened = backend::open(Backend::Memory, None).await.unwrap();
    let state = app_state(opened.store.clone(), vec![], &bench_config());
    let (addr, _serving) = serve(state).await.unwrap();
    let bodies: Vec<_> = (0..101)
        .map(iamalive_benches::http::heartbeat_body)
        .collect();
    let ok = burst(addr, std::sync::Arc::new(bodies), 4).await.unwrap();
    assert_eq!(ok, 101);
    assert!(opened.store.get(&host(100)).await.unwrap().is_some());
    assert!(opened.store.get(&host(101)).await.unwrap().is_none());
    assert_eq!(opened.store.list(None, 1000).await.unwrap().len(), 101);
}
