//! A store that does nothing and answers at once: the HTTP ceiling.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use iamalive_core::{
    Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark, Silence, Status, Store,
    StoreError, Timestamp,
};

/// A [`Store`] that stores nothing: every heartbeat "updates" an up host,
/// nothing is ever due. Serving the router over it measures what the
/// machine's HTTP stack and our handler cost without any storage.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl fmt::Display for NullStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null")
    }
}

#[async_trait]
impl Store for NullStore {
    async fn record_heartbeat(
        &self,
        _hb: &Heartbeat,
        _due_if_up: Timestamp,
        _create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        Ok(HeartbeatOutcome::Updated { status: Status::Up })
    }

    async fn due(&self, _now: Timestamp, _limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(None)
    }

    async fn get(&self, _host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        Ok(None)
    }

    async fn compare_and_swap(
        &self,
        _expected: u64,
        _next: &HostRecord,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn list(
        &self,
        _after: Option<&HostId>,
        _limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn remove(&self, _host: &HostId) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn put_silence(&self, _silence: &Silence) -> Result<(), StoreError> {
        Ok(())
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        Ok(Vec::new())
    }

    async fn remove_silence(&self, _id: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        Ok(MonitorMark::default().advance(now, gap))
    }
}
