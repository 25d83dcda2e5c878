//! Where `now` comes from: the system clock, or a manual one in tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Timestamp;
use crate::model::add;

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told; clones share the same instant.
///
/// ```
/// use std::time::Duration;
/// use iamalive_core::{Clock, ManualClock};
/// let c = ManualClock::at_millis(0);
/// c.advance(Duration::from_millis(1500));
/// assert_eq!(c.now().timestamp_millis(), 1500);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    /// A clock stopped at `ms` milliseconds after the Unix epoch.
    pub fn at_millis(ms: i64) -> Self {
        Self::new(chrono::DateTime::from_timestamp_millis(ms).expect("in range"))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t = add(*t, d);
    }

    /// Sets the clock (it may go backwards: tests of clock jumps).
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
