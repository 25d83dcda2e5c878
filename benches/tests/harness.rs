//! The harness itself works: heartbeats posted by the load generator reach
//! the store through the real router. (No speed is asserted here.)

use std::time::Duration;

use iamalive_benches::http::{LoadSpec, app_state, bench_config, drive, serve};
use iamalive_benches::{Backend, backend, host};
use iamalive_core::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_heartbeats_reach_the_store() {
    let opened = backend::open(Backend::Memory, None).await.unwrap();
    let state = app_state(opened.store.clone(), vec![], &bench_config());
    let (addr, _serving) = serve(state).await.unwrap();
    let spec = LoadSpec {
        addr,
        connections: 4,
        hosts: 50,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(300),
    };
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
    let spec = LoadSpec {
        addr,
        connections: 2,
        hosts: 10,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(200),
    };
    let r = drive(&spec).await.unwrap();
    assert_eq!(r.errors, 0);
    assert!(r.ok > 0);
    assert!(opened.store.get(&host(0)).await.unwrap().is_none());
}
