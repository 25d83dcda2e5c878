//! Where `now` comes from, and how to wait for a later one: the system
//! clock, or a manual one in tests.
//!
//! The clock is the only source of time, sleeping included: a runner that
//! waits for the next due record sleeps on [`Clock::sleep_until`], so a
//! [`ManualClock`] moved by a test wakes it exactly as the passing of real
//! time would.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::Timestamp;
use crate::model::{add, since};

/// A source of the current instant, and of waiting for a later one.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// Completes once [`now`](Self::now) has reached `at` (at once if it
    /// already has).
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The operating system's clock; sleeps on Tokio's timer (a Tokio runtime
/// with its timer enabled must drive [`Clock::sleep_until`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let wait = since(at, self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told; clones share the same instant.
/// Moving it wakes every [`sleep_until`](Clock::sleep_until) whose instant
/// it reached; nothing else does.
///
/// ```
/// use std::time::Duration;
/// use iamalive_core::{Clock, ManualClock};
/// let c = ManualClock::at_millis(0);
/// c.advance(Duration::from_millis(1500));
/// assert_eq!(c.now().timestamp_millis(), 1500);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Manual>>);

#[derive(Debug)]
struct Manual {
    now: Timestamp,
    /// Sleeps pending on this clock (by id), woken (and forgotten) at
    /// every move; a sleep that is dropped takes itself out.
    sleepers: Vec<(u64, Waker)>,
    /// The next sleep's id.
    next_id: u64,
}

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(Manual {
            now: t,
            sleepers: Vec::new(),
            next_id: 0,
        })))
    }

    /// A clock stopped at `ms` milliseconds after the Unix epoch.
    pub fn at_millis(ms: i64) -> Self {
        Self::new(chrono::DateTime::from_timestamp_millis(ms).expect("in range"))
    }

    fn lock(&self) -> MutexGuard<'_, Manual> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the clock forward, waking the sleepers it reached.
    pub fn advance(&self, d: Duration) {
        let mut g = self.lock();
        g.now = add(g.now, d);
        wake_all(g);
    }

    /// Sets the clock (it may go backwards: tests of clock jumps), waking
    /// the sleepers it reached.
    pub fn set(&self, t: Timestamp) {
        let mut g = self.lock();
        g.now = t;
        wake_all(g);
    }

    /// How many sleeps are pending on this clock now (for tests that must
    /// know a runner has gone to sleep before they move the clock).
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }
}

/// Wakes every sleeper outside the lock; each checks its own instant and
/// sleeps again if the clock has not reached it.
fn wake_all(mut g: MutexGuard<'_, Manual>) {
    let sleepers = std::mem::take(&mut g.sleepers);
    drop(g);
    for (_, w) in sleepers {
        w.wake();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.lock().now
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let id = {
            let mut g = self.lock();
            g.next_id += 1;
            g.next_id
        };
        Box::pin(ManualSleep {
            clock: self.clone(),
            at,
            id,
        })
    }
}

/// [`ManualClock::sleep_until`]'s future.
struct ManualSleep {
    clock: ManualClock,
    at: Timestamp,
    id: u64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.clock.lock();
        if g.now >= self.at {
            return Poll::Ready(());
        }
        let id = self.id;
        match g.sleepers.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => g.sleepers.push((id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        let id = self.id;
        self.clock.lock().sleepers.retain(|(i, _)| *i != id);
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        (**self).sleep_until(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_reaches_its_instant_and_not_before() {
        let c = ManualClock::at_millis(0);
        let at = chrono::DateTime::from_timestamp_millis(1_000).expect("in range");
        let sleeping = tokio::spawn(c.sleep_until(at));
        // Bounded: the task registers itself within a few scheduler turns.
        for _ in 0..1_000 {
            if c.sleepers() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(c.sleepers(), 1, "the sleeper waits on the clock");
        c.advance(Duration::from_millis(999));
        for _ in 0..1_000 {
            if c.sleepers() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!sleeping.is_finished(), "woken early");
        assert_eq!(c.sleepers(), 1, "went back to sleep");
        c.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(10), sleeping)
            .await
            .expect("woken when the clock reached its instant")
            .unwrap();
        // An instant already reached completes at once.
        c.sleep_until(at).await;
    }
}
