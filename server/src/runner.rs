//! The runner: sweeps when something is due, sleeps otherwise, and wakes at
//! once when a heartbeat needs a decision.
//!
//! It sleeps on the monitor's [`Clock`] ([`Clock::sleep_until`]), never on
//! a timer of its own: with a manual clock, moving the clock is what wakes
//! it, so its cadence is tested on the same clock as the decisions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use iamalive_core::{Clock, Timestamp, add, since};
use tokio::sync::Notify;

use crate::api::{AppState, DynMonitor};

/// The shortest pause between two sweeps, so a record that stays due (a
/// store error, a notice leased to another monitor) cannot spin the loop.
pub const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Drives the monitor: `loop { sweep; sleep until the next due instant,
/// capped, or until woken }`.
#[derive(Clone)]
pub struct Runner {
    state: AppState,
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
            state: state.clone(),
            monitor: Arc::clone(state.monitor()),
            wake: Arc::clone(state.wake_signal()),
            max_sleep: max_sleep.max(MIN_SLEEP),
        }
    }

    /// One sweep, then how long to sleep before the next.
    pub async fn step(&self, failures: &mut u32) -> Duration {
        let at = self.step_until(failures).await;
        since(at, self.monitor.clock().now())
    }

    /// One sweep, then the instant to sweep again: the next due record or
    /// self-mark, at least [`MIN_SLEEP`] and at most `max_sleep` from now;
    /// after a failure, a backoff.
    async fn step_until(&self, failures: &mut u32) -> Timestamp {
        let clock = self.monitor.clock();
        let started = std::time::Instant::now();
        match self.state.sweep().await {
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
                    return add(clock.now(), self.backoff(1));
                }
            }
            Err(e) => {
                *failures += 1;
                tracing::warn!(store = %self.monitor.store(), error = %e, "sweep failed; retrying");
                return add(clock.now(), self.backoff(*failures));
            }
        }
        let next = self.monitor.next_wakeup().await;
        let now = clock.now();
        match next {
            Ok(at) => at.clamp(add(now, MIN_SLEEP), add(now, self.max_sleep)),
            Err(e) => {
                *failures += 1;
                tracing::warn!(store = %self.monitor.store(), error = %e, "could not read the next due instant");
                add(now, self.backoff(*failures))
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
            let at = self.step_until(&mut failures).await;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = self.monitor.clock().sleep_until(at) => {}
            }
        }
        self.monitor.mark_stopping().await;
        tracing::info!("runner stopped");
    }
}
