//! A complete in-memory store, indexed by `due_at`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::heartbeat::{Rearm, apply_heartbeat_with, created_by_heartbeat};
use crate::{
    Event, GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark,
    Silence, Store, StoreError, Timestamp,
};

#[derive(Default)]
struct Inner {
    hosts: BTreeMap<HostId, HostRecord>,
    due: BTreeSet<(Timestamp, HostId)>,
    silences: BTreeMap<String, Silence>,
    mark: MonitorMark,
    events: BTreeMap<HostId, VecDeque<Event>>,
    groups: BTreeMap<GroupName, GroupRecord>,
    group_due: BTreeSet<(Timestamp, GroupName)>,
    /// The hosts of each group: the index [`Store::group_hosts`] reads.
    by_group: BTreeMap<GroupName, BTreeSet<HostId>>,
}

impl Inner {
    fn put(&mut self, rec: HostRecord) {
        let old_group = self.hosts.get(&rec.host).and_then(|old| old.group.clone());
        if old_group != rec.group {
            if let Some(g) = old_group {
                self.unindex(&g, &rec.host);
            }
            if let Some(g) = &rec.group {
                self.by_group
                    .entry(g.clone())
                    .or_default()
                    .insert(rec.host.clone());
            }
        }
        let old_due = self.hosts.get(&rec.host).and_then(|old| old.due_at);
        reindex(&mut self.due, &rec.host, old_due, rec.due_at);
        self.hosts.insert(rec.host.clone(), rec);
    }

    fn unindex(&mut self, group: &GroupName, host: &HostId) {
        if let Some(set) = self.by_group.get_mut(group) {
            set.remove(host);
            if set.is_empty() {
                self.by_group.remove(group);
            }
        }
    }
}

/// Moves `key` in a due index (the hosts' or the groups') from its `old`
/// `due_at` to its `new` one.
fn reindex<K: Ord + Clone>(
    index: &mut BTreeSet<(Timestamp, K)>,
    key: &K,
    old: Option<Timestamp>,
    new: Option<Timestamp>,
) {
    if let Some(d) = old {
        index.remove(&(d, key.clone()));
    }
    if let Some(d) = new {
        index.insert((d, key.clone()));
    }
}

/// The keys of `index` due by `now`, earliest first, at most `limit`.
fn due_keys<K: Ord>(
    index: &BTreeSet<(Timestamp, K)>,
    now: Timestamp,
    limit: usize,
) -> impl Iterator<Item = &K> {
    index
        .iter()
        .take_while(move |(d, _)| *d <= now)
        .take(limit)
        .map(|(_, k)| k)
}

/// The records of `index` due by `now`, earliest first, at most `limit`.
fn due_by<K: Ord, V: Clone>(
    index: &BTreeSet<(Timestamp, K)>,
    records: &BTreeMap<K, V>,
    now: Timestamp,
    limit: usize,
) -> Vec<V> {
    due_keys(index, now, limit)
        .filter_map(|k| records.get(k).cloned())
        .collect()
}

/// Host records in memory: for embedding, tests and benchmarks.
///
/// Every operation is O(log hosts) or O(due); nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    rearm: Rearm,
}

impl MemoryStore {
    /// An empty store that re-arms an up host's `due_at` on every heartbeat.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps an up host's `due_at` while it lies in the
    /// [`LazyWindow`](crate::heartbeat::LazyWindow), as the SQLite, Redis
    /// and DynamoDB stores do to save index writes: for tests of the rule.
    pub fn lazy() -> Self {
        Self {
            rearm: Rearm::Lazily,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many hosts it holds.
    pub fn len(&self) -> usize {
        self.lock().hosts.len()
    }

    /// Whether it holds no host.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory")
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let rearm = self.rearm;
        let mut g = self.lock();
        let Some(old) = g.hosts.get(&hb.host) else {
            if !create {
                return Ok(HeartbeatOutcome::Unknown);
            }
            g.put(created_by_heartbeat(hb, due_if_up));
            return Ok(HeartbeatOutcome::Created);
        };
        let status = old.status;
        let mut rec = old.clone();
        apply_heartbeat_with(&mut rec, hb, due_if_up, rearm);
        g.put(rec);
        Ok(HeartbeatOutcome::Updated { status })
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        let g = self.lock();
        Ok(due_by(&g.due, &g.hosts, now, limit))
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.lock().due.first().map(|(d, _)| *d))
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        Ok(self.lock().hosts.get(host).cloned())
    }

    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let current = g.hosts.get(&next.host).map(|r| r.version);
        if current.unwrap_or(0) != expected {
            return Ok(false);
        }
        g.put(next.clone());
        Ok(true)
    }

    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        use std::ops::Bound;
        let g = self.lock();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(g.hosts
            .range::<HostId, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        let mut g = self.lock();
        g.events.remove(host);
        match g.hosts.remove(host) {
            Some(r) => {
                if let Some(grp) = &r.group {
                    g.unindex(grp, &r.host);
                }
                if let Some(d) = r.due_at {
                    g.due.remove(&(d, r.host));
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.lock()
            .silences
            .insert(silence.id.clone(), silence.clone());
        Ok(())
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        Ok(self.lock().silences.values().cloned().collect())
    }

    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().silences.remove(id).is_some())
    }

    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        let log = g.events.entry(host.clone()).or_default();
        log.push_back(event.clone());
        let excess = log.len().saturating_sub(keep);
        log.drain(..excess);
        Ok(())
    }

    async fn events(&self, host: &HostId, limit: usize) -> Result<Vec<Event>, StoreError> {
        let g = self.lock();
        Ok(g.events
            .get(host)
            .map(|log| log.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        let mut g = self.lock();
        g.mark = g.mark.advance(now, gap);
        Ok(g.mark)
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    async fn group_hosts(
        &self,
        group: &GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        let g = self.lock();
        Ok(Some(g.by_group.get(group).map_or_else(Vec::new, |set| {
            set.iter()
                .take(limit)
                .filter_map(|h| g.hosts.get(h).cloned())
                .collect()
        })))
    }

    fn counts_hosts(&self) -> bool {
        true
    }

    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.len() as u64))
    }

    async fn count_due(&self, until: Timestamp, at_most: u64) -> Result<Option<u64>, StoreError> {
        let g = self.lock();
        let n = due_keys(
            &g.due,
            until,
            usize::try_from(at_most).unwrap_or(usize::MAX),
        )
        .count();
        Ok(Some(n as u64))
    }

    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        Ok(self.lock().groups.get(group).cloned())
    }

    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.lock().groups.get(group).map_or(0, |r| r.version)))
    }

    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let current = g.groups.get(&next.group).map_or(0, |r| r.version);
        if current != expected {
            return Ok(false);
        }
        let old_due = g.groups.get(&next.group).and_then(|old| old.due_at);
        reindex(&mut g.group_due, &next.group, old_due, next.due_at);
        g.groups.insert(next.group.clone(), next.clone());
        Ok(true)
    }

    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let g = self.lock();
        Ok(due_by(&g.group_due, &g.groups, now, limit))
    }

    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.lock().group_due.first().map(|(d, _)| *d))
    }
}
