//! What this process last knew of each host's item: the hint that picks a
//! heartbeat's write without reading first.
//!
//! A hint is only ever a guess. Every write it chooses carries a condition
//! that DynamoDB checks atomically, so a wrong or stale hint costs a failed
//! (1 WRU) or a dearer write, never a broken contract.

use std::collections::HashMap;
use std::sync::Mutex;

use iamalive_core::{HostRecord, Status, Timestamp};

/// How many hosts the hints remember at most (two generations of half
/// that). About 100 bytes each: some 6.5 MB when full.
pub(crate) const HINT_HOSTS: usize = 65_536;

/// The last known state of one host's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// Up with nothing owed; its `dueAt`.
    Up(Timestamp),
    /// Up with nothing owed, and a stored policy or a flapping episode: a
    /// heartbeat leaves its `dueAt` (the monitor arms it).
    UpKeeping,
    /// Off the fast path: missing, alarmed, paused, or a notice owed.
    Other,
}

impl Known {
    /// What `rec`, as written or read, tells about the next heartbeat.
    pub(crate) fn of(rec: &HostRecord) -> Self {
        match (rec.status, &rec.outbox, rec.due_at) {
            // A stored policy's deadline is the monitor's to arm: the
            // heartbeat keeps `dueAt` (so does a flapping host's).
            (Status::Up, None, _) if iamalive_core::heartbeat::monitor_arms_due(rec) => {
                Self::UpKeeping
            }
            (Status::Up, None, Some(d)) => Self::Up(d),
            _ => Self::Other,
        }
    }
}

/// A bounded map host → [`Known`], shared by a store's clones.
///
/// Two generations: entries go into `current`; when it holds half the
/// bound, it becomes `previous` (dropping the older one). A host heard from
/// at least once per generation stays known; memory never exceeds the bound.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<String, Known>,
    previous: HashMap<String, Known>,
}

impl Hints {
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave a hint unsafe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last known state of `host`, if this process has one.
    pub(crate) fn get(&self, host: &str) -> Option<Known> {
        let g = self.lock();
        g.current
            .get(host)
            .or_else(|| g.previous.get(host))
            .copied()
    }

    /// Remembers `known` for `host`.
    pub(crate) fn set(&self, host: &str, known: Known) {
        let mut g = self.lock();
        if let Some(k) = g.current.get_mut(host) {
            *k = known;
            return;
        }
        if g.current.len() >= HINT_HOSTS / 2 {
            g.previous = std::mem::take(&mut g.current);
        }
        g.previous.remove(host);
        g.current.insert(host.to_owned(), known);
    }

    /// Forgets `host` (its state is unknown now).
    pub(crate) fn forget(&self, host: &str) {
        let mut g = self.lock();
        g.current.remove(host);
        g.previous.remove(host);
    }

    /// How many hosts are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn remembers_replaces_and_forgets() {
        let h = Hints::default();
        let t = DateTime::from_timestamp(1, 0).unwrap();
        assert_eq!(h.get("a"), None);
        h.set("a", Known::Up(t));
        assert_eq!(h.get("a"), Some(Known::Up(t)));
        h.set("a", Known::Other);
        assert_eq!(h.get("a"), Some(Known::Other));
        h.forget("a");
        assert_eq!(h.get("a"), None);
    }

    #[test]
    fn bounded_and_keeps_the_recent_generation() {
        let h = Hints::default();
        let t = DateTime::from_timestamp(1, 0).unwrap();
        for i in 0..HINT_HOSTS * 3 {
            h.set(&format!("host-{i}"), Known::Up(t));
            assert!(h.len() <= HINT_HOSTS);
        }
        // The last half-bound of hosts is still known; the first is not.
        assert_eq!(
            h.get(&format!("host-{}", HINT_HOSTS * 3 - 1)),
            Some(Known::Up(t))
        );
        assert_eq!(h.get("host-0"), None);
        // A host moved from the previous generation is not counted twice.
        let old = format!("host-{}", HINT_HOSTS * 3 - HINT_HOSTS / 2 - 1);
        assert!(h.get(&old).is_some());
        h.set(&old, Known::Other);
        assert!(h.len() <= HINT_HOSTS);
        assert_eq!(h.get(&old), Some(Known::Other));
    }
}
