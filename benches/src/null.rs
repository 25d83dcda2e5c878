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

/// The [`NullStore`] behind the same hand-off the SQLite store's writer
/// uses: each heartbeat is queued on a channel to one thread, which takes
/// whatever is queued as a batch, does no work, and answers each caller on
/// a oneshot. Comparing it with [`NullStore`] measures what *any* store
/// that completes on another thread costs the HTTP path (the handler
/// suspends, a cross-thread wake resumes it) before it stores anything.
///
/// [`HandoffStore::yielding`] is the same store without the thread: the
/// handler suspends once and is resumed by its own runtime, which
/// separates the cost of suspending from that of the cross-thread wake.
#[derive(Debug, Clone)]
pub struct HandoffStore {
    /// `None`: yield once instead of handing off.
    queue: Option<std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>>,
}

impl HandoffStore {
    /// The store that suspends once and resumes on the same runtime.
    pub fn yielding() -> Self {
        Self { queue: None }
    }

    /// Starts the answering thread; it stops when the store is dropped.
    pub fn new() -> std::io::Result<Self> {
        let (queue, jobs) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
        std::thread::Builder::new()
            .name("handoff".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Ok(first) = jobs.recv() {
                    batch.push(first);
                    batch.extend(jobs.try_iter());
                    for reply in batch.drain(..) {
                        let _ = reply.send(());
                    }
                }
            })?;
        Ok(Self { queue: Some(queue) })
    }
}

impl fmt::Display for HandoffStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.queue.is_some() {
            "handoff"
        } else {
            "yield"
        })
    }
}

#[async_trait]
impl Store for HandoffStore {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let Some(queue) = &self.queue else {
            tokio::task::yield_now().await;
            return NullStore.record_heartbeat(hb, due_if_up, create).await;
        };
        let (reply, done) = tokio::sync::oneshot::channel();
        queue
            .send(reply)
            .map_err(|_| StoreError::unavailable("handoff", "the thread has stopped"))?;
        done.await
            .map_err(|_| StoreError::unavailable("handoff", "the thread has stopped"))?;
        NullStore.record_heartbeat(hb, due_if_up, create).await
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        NullStore.due(now, limit).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        NullStore.next_due().await
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        NullStore.get(host).await
    }

    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        NullStore.compare_and_swap(expected, next).await
    }

    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        NullStore.list(after, limit).await
    }

    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        NullStore.remove(host).await
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        NullStore.put_silence(silence).await
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        NullStore.silences().await
    }

    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        NullStore.remove_silence(id).await
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        NullStore.mark_run(now, gap).await
    }
}
