//! When to try again after a heartbeat did not get through: a pure
//! schedule (exponential backoff with jitter, capped well below the
//! interval) and the bounds of a `--once` run.

use std::time::Duration;

use rand::Rng;

/// The longest wait between two attempts, whatever the interval.
pub const MAX_CAP: Duration = Duration::from_secs(30);
/// The first retry waits at most this long.
pub const MAX_FIRST: Duration = Duration::from_secs(1);

/// Exponential backoff with jitter: retry `n` (0 for the first retry)
/// waits a random time in `[base(n) / 2, base(n)]`, where
/// `base(n) = min(first × 2ⁿ, cap)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The base wait before the first retry.
    pub first: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl Backoff {
    /// The schedule for a heartbeat interval: the cap is `min(interval / 4,
    /// 30 s)`, so at least about four attempts fit in every interval; the
    /// first retry waits `min(1 s, interval / 20)` (never more than the cap).
    pub fn for_interval(interval: Duration) -> Backoff {
        let cap = (interval / 4).min(MAX_CAP);
        Backoff {
            first: (interval / 20).min(MAX_FIRST).min(cap),
            cap,
        }
    }

    /// [`for_interval`](Self::for_interval) with another first wait (still
    /// bounded by the cap, which depends on the interval only).
    pub fn with_first(interval: Duration, first: Duration) -> Backoff {
        let cap = Backoff::for_interval(interval).cap;
        Backoff {
            first: first.min(cap),
            cap,
        }
    }

    /// The wait before retry `n` without jitter: `min(first × 2ⁿ, cap)`.
    pub fn base(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry `n`: uniformly random in `[base(n) / 2,
    /// base(n)]` ("equal jitter"), so agents that lost the watcher together
    /// do not come back in lockstep, and the wait still grows.
    pub fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base(n);
        let half = base / 2;
        if half.is_zero() {
            return base;
        }
        let extra = rng.random_range(0.0..=1.0) * (base - half).as_secs_f64();
        half + Duration::from_secs_f64(extra)
    }
}

/// How long one heartbeat may keep retrying. The long-running agent has no
/// budget (it tries until one gets through); a `--once` run has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// No attempt starts unless it can end (request timeout included) by
    /// this long after the first one started; the first always runs.
    pub deadline: Option<Duration>,
    /// At most this many attempts in all.
    pub max_attempts: Option<u32>,
}

impl Budget {
    /// No bound: retry until a heartbeat gets through.
    pub const UNBOUNDED: Budget = Budget {
        deadline: None,
        max_attempts: None,
    };

    /// Whether another attempt may start `wait` from now, after `attempts`
    /// attempts in `elapsed` time, when one attempt may take up to
    /// `timeout`.
    pub fn allows(
        &self,
        attempts: u32,
        elapsed: Duration,
        wait: Duration,
        timeout: Duration,
    ) -> bool {
        if self.max_attempts.is_some_and(|m| attempts >= m) {
            return false;
        }
        match self.deadline {
            None => true,
            Some(d) => elapsed.saturating_add(wait).saturating_add(timeout) <= d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn defaults_follow_the_interval() {
        // A 5 min interval: 1 s first retry, 30 s cap.
        assert_eq!(
            Backoff::for_interval(S(300)),
            Backoff {
                first: S(1),
                cap: S(30)
            }
        );
        // Short intervals scale down: 2 s → 100 ms first, 500 ms cap.
        assert_eq!(
            Backoff::for_interval(S(2)),
            Backoff {
                first: MS(100),
                cap: MS(500)
            }
        );
        // A long interval does not stretch the cap past 30 s.
        assert_eq!(Backoff::for_interval(S(3600)).cap, S(30));
        // A first wait longer than the cap is cut to it.
        assert_eq!(Backoff::with_first(S(2), S(10)).first, MS(500));
        assert_eq!(Backoff::with_first(S(300), MS(50)).first, MS(50));
    }

    #[test]
    fn the_base_doubles_up_to_the_cap() {
        let b = Backoff::for_interval(S(300));
        let bases: Vec<u64> = (0..8).map(|n| b.base(n).as_secs()).collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Huge retry counts neither overflow nor exceed the cap.
        assert_eq!(b.base(31), S(30));
        assert_eq!(b.base(u32::MAX), S(30));
        let zero = Backoff {
            first: Duration::ZERO,
            cap: S(1),
        };
        assert_eq!(zero.base(5), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_between_half_and_the_base() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let b = Backoff::for_interval(S(300));
        for n in 0..12 {
            let base = b.base(n);
            let mut seen_low = false;
            let mut seen_high = false;
            for _ in 0..500 {
                let d = b.delay(n, &mut rng);
                assert!(d >= base / 2 && d <= base, "retry {n}: {d:?} vs {base:?}");
                assert!(d <= b.cap);
                seen_low |= d < base * 3 / 5;
                seen_high |= d > base * 9 / 10;
            }
            // It is really random across the range, not a constant.
            assert!(seen_low && seen_high, "retry {n}");
        }
        // Over a long outage the waits keep growing to the cap on average.
        let avgs: Vec<Duration> = [0, 2, 4, 10]
            .iter()
            .map(|&n| (0..200).map(|_| b.delay(n, &mut rng)).sum::<Duration>() / 200)
            .collect();
        assert!(avgs.windows(2).all(|w| w[0] < w[1]), "{avgs:?}");
        assert!(avgs[3] >= S(15), "{avgs:?}");
    }

    #[test]
    fn waits_stay_well_below_the_interval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for interval in [MS(1), MS(500), S(2), S(60), S(300), S(86_400)] {
            let b = Backoff::for_interval(interval);
            for n in 0..40 {
                assert!(b.delay(n, &mut rng) <= interval / 4, "{interval:?}");
            }
        }
    }

    #[test]
    fn budgets() {
        let t = S(10);
        assert!(Budget::UNBOUNDED.allows(1_000_000, S(86_400), S(30), t));
        let b = Budget {
            deadline: Some(S(300)),
            max_attempts: None,
        };
        assert!(b.allows(5, S(100), S(30), t));
        assert!(
            b.allows(5, S(260), S(30), t),
            "ends exactly at the deadline"
        );
        assert!(!b.allows(5, S(261), S(30), t));
        let b = Budget {
            deadline: None,
            max_attempts: Some(3),
        };
        assert!(b.allows(2, S(0), S(1), t));
        assert!(!b.allows(3, S(0), S(1), t));
        let one = Budget {
            deadline: Some(S(300)),
            max_attempts: Some(1),
        };
        assert!(!one.allows(1, S(0), S(0), t));
    }
}
