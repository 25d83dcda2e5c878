//! The runner: sweeps when something is due, sleeps otherwise, and wakes at
//! once when a heartbeat needs a decision.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use iamalive_core::{Clock, since};
use tokio::sync::Notify;

use crate::api::{AppState, DynMonitor};

/// The shortest pause between two sweeps, so a record that stays due (a
/// store error, a notice leased to another monitor) cannot spin the loop.
pub const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Drives the monitor: `loop { sweep; sleep until the next due instant,
/// capped, or until woken }`.
#[derive(Clone)]
pub struct Runner {
    monitor: Arc<DynMonitor>,
    wake: Arc<Notify>,
    max_sleep: Duration,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("store", &self.monitor.store().to_string())
            .field("max_sleep", &self.max_sleep)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner for `state`'s monitor, never sleeping longer than
    /// `max_sleep` (so writes by other processes sharing the store are
    /// noticed).
    pub fn new(state: &AppState, max_sleep: Duration) -> Self {
        Self {
            monitor: Arc::clone(state.monitor()),
            wake: Arc::clone(state.wake_signal()),
            max_sleep: max_sleep.max(MIN_SLEEP),
        }
    }

    /// One sweep, then how long to sleep before the next.
    pub async fn step(&self, failures: &mut u32) -> Duration {
        let started = std::time::Instant::now();
        match self.monitor.sweep().await {
            Ok(report) => {
                *failures = 0;
                crate::host_metrics::record_sweep(started.elapsed(), report.due);
                if report.evaluated > 0 {
                    tracing::debug!(?report, "sweep");
                }
                metrics::counter!("iamalive_sweeps_total").increment(1);
                if report.refused > 0 {
                    metrics::counter!("iamalive_notices_refused_total")
                        .increment(report.refused as u64);
                }
                if report.errors > 0 {
                    return self.backoff(1);
                }
            }
            Err(e) => {
                *failures += 1;
                tracing::warn!(store = %self.monitor.store(), error = %e, "sweep failed; retrying");
                return self.backoff(*failures);
            }
        }
        match self.monitor.next_wakeup().await {
            Ok(at) => since(at, self.monitor.clock().now()).clamp(MIN_SLEEP, self.max_sleep),
            Err(e) => {
                *failures += 1;
                tracing::warn!(store = %self.monitor.store(), error = %e, "could not read the next due instant");
                self.backoff(*failures)
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        (Duration::from_millis(100) * 2u32.saturating_pow(failures.min(10)))
            .clamp(MIN_SLEEP, self.max_sleep)
    }

    /// Runs until `shutdown` completes. A sweep in progress (and the
    /// deliveries in it) is finished before returning.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0;
        loop {
            let wait = self.step(&mut failures).await;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.monitor.mark_stopping().await;
        tracing::info!("runner stopped");
    }
}
