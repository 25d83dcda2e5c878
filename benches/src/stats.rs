//! Percentiles and medians.

use std::time::Duration;

/// Recorded latencies, kept exactly (microseconds).
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    us: Vec<u32>,
    sorted: bool,
}

impl Latencies {
    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.us.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
        self.sorted = false;
    }

    /// Adds another set of samples.
    pub fn merge(&mut self, other: Latencies) {
        self.us.extend(other.us);
        self.sorted = false;
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.us.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.us.is_empty()
    }

    /// The `p`-th percentile (0–100), nearest rank.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.us.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.us.sort_unstable();
            self.sorted = true;
        }
        let rank = ((p / 100.0) * self.us.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.us.len()) - 1;
        Duration::from_micros(u64::from(self.us[i]))
    }

    /// The largest sample.
    pub fn max(&mut self) -> Duration {
        self.percentile(100.0)
    }
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's resident set and its peak, in bytes, from
/// `/proc/self/status` (`VmRSS`, `VmHWM`); `None` where unavailable.
pub fn rss() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs `f` `iters` times (each call times itself) and returns the total,
/// keeping every single time in `keep` — for criterion's `iter_custom`
/// when the medians are wanted afterwards (the ratios the benches print).
pub fn timed<F: FnMut() -> Duration>(
    iters: u64,
    keep: &std::sync::Mutex<Vec<f64>>,
    mut f: F,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let d = f();
        keep.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d.as_secs_f64());
        total += d;
    }
    total
}
