//! The conformance suite against the in-memory store.

use std::sync::Arc;

use iamalive_core::{MemoryStore, Store};

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    iamalive_core::conformance::run_all(|| async {
        Arc::new(MemoryStore::new()) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn a_lazy_memory_store_passes_the_conformance_suite() {
    iamalive_core::conformance::run_all(|| async {
        Arc::new(MemoryStore::lazy()) as Arc<dyn Store>
    })
    .await;
}

/// A store with one broken contract: the suite must fail on it, or it
/// proves nothing.
struct IgnoresVersions(MemoryStore);

/// A lazy store whose window leaves out its first instant (as one backend's
/// script once did): the window test must catch the off-by-one.
struct ExclusiveWindow(MemoryStore);

impl std::fmt::Display for IgnoresVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken")
    }
}

impl std::fmt::Display for ExclusiveWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("exclusive-window")
    }
}

#[async_trait::async_trait]
impl Store for ExclusiveWindow {
    async fn record_heartbeat(
        &self,
        hb: &iamalive_core::Heartbeat,
        due: iamalive_core::Timestamp,
        create: bool,
    ) -> Result<iamalive_core::HeartbeatOutcome, iamalive_core::StoreError> {
        use iamalive_core::{HeartbeatOutcome, LazyWindow, Status};
        let Some(mut rec) = self.0.get(&hb.host).await? else {
            return self.0.record_heartbeat(hb, due, create).await;
        };
        let status = rec.status;
        let w = LazyWindow::new(hb.at, due);
        let keep = rec.status == Status::Up
            && rec.outbox.is_none()
            && rec.due_at.is_some_and(|d| w.from < d && d <= w.until);
        let kept = rec.due_at;
        iamalive_core::apply_heartbeat(&mut rec, hb, due);
        if keep {
            rec.due_at = kept;
        }
        assert!(self.0.compare_and_swap(rec.version - 1, &rec).await?);
        Ok(HeartbeatOutcome::Updated { status })
    }
    async fn due(
        &self,
        now: iamalive_core::Timestamp,
        limit: usize,
    ) -> Result<Vec<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.due(now, limit).await
    }
    async fn next_due(
        &self,
    ) -> Result<Option<iamalive_core::Timestamp>, iamalive_core::StoreError> {
        self.0.next_due().await
    }
    async fn get(
        &self,
        host: &iamalive_core::HostId,
    ) -> Result<Option<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.get(host).await
    }
    async fn compare_and_swap(
        &self,
        expected: u64,
        next: &iamalive_core::HostRecord,
    ) -> Result<bool, iamalive_core::StoreError> {
        self.0.compare_and_swap(expected, next).await
    }
    async fn list(
        &self,
        after: Option<&iamalive_core::HostId>,
        limit: usize,
    ) -> Result<Vec<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.list(after, limit).await
    }
    async fn remove(
        &self,
        host: &iamalive_core::HostId,
    ) -> Result<bool, iamalive_core::StoreError> {
        self.0.remove(host).await
    }
    async fn put_silence(
        &self,
        s: &iamalive_core::Silence,
    ) -> Result<(), iamalive_core::StoreError> {
        self.0.put_silence(s).await
    }
    async fn silences(&self) -> Result<Vec<iamalive_core::Silence>, iamalive_core::StoreError> {
        self.0.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, iamalive_core::StoreError> {
        self.0.remove_silence(id).await
    }
    async fn mark_run(
        &self,
        now: iamalive_core::Timestamp,
        gap: std::time::Duration,
    ) -> Result<iamalive_core::MonitorMark, iamalive_core::StoreError> {
        self.0.mark_run(now, gap).await
    }
}

#[async_trait::async_trait]
impl Store for IgnoresVersions {
    async fn record_heartbeat(
        &self,
        hb: &iamalive_core::Heartbeat,
        due: iamalive_core::Timestamp,
        create: bool,
    ) -> Result<iamalive_core::HeartbeatOutcome, iamalive_core::StoreError> {
        self.0.record_heartbeat(hb, due, create).await
    }
    async fn due(
        &self,
        now: iamalive_core::Timestamp,
        limit: usize,
    ) -> Result<Vec<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.due(now, limit).await
    }
    async fn next_due(
        &self,
    ) -> Result<Option<iamalive_core::Timestamp>, iamalive_core::StoreError> {
        self.0.next_due().await
    }
    async fn get(
        &self,
        host: &iamalive_core::HostId,
    ) -> Result<Option<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.get(host).await
    }
    async fn compare_and_swap(
        &self,
        _expected: u64,
        next: &iamalive_core::HostRecord,
    ) -> Result<bool, iamalive_core::StoreError> {
        let current = self.0.get(&next.host).await?.map_or(0, |r| r.version);
        self.0.compare_and_swap(current, next).await
    }
    async fn list(
        &self,
        after: Option<&iamalive_core::HostId>,
        limit: usize,
    ) -> Result<Vec<iamalive_core::HostRecord>, iamalive_core::StoreError> {
        self.0.list(after, limit).await
    }
    async fn remove(
        &self,
        host: &iamalive_core::HostId,
    ) -> Result<bool, iamalive_core::StoreError> {
        self.0.remove(host).await
    }
    async fn put_silence(
        &self,
        s: &iamalive_core::Silence,
    ) -> Result<(), iamalive_core::StoreError> {
        self.0.put_silence(s).await
    }
    async fn silences(&self) -> Result<Vec<iamalive_core::Silence>, iamalive_core::StoreError> {
        self.0.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, iamalive_core::StoreError> {
        self.0.remove_silence(id).await
    }
    async fn mark_run(
        &self,
        now: iamalive_core::Timestamp,
        gap: std::time::Duration,
    ) -> Result<iamalive_core::MonitorMark, iamalive_core::StoreError> {
        self.0.mark_run(now, gap).await
    }
}

#[tokio::test]
async fn the_suite_fails_a_store_that_ignores_versions() {
    let run = tokio::spawn(iamalive_core::conformance::compare_and_swap_rules(
        Arc::new(IgnoresVersions(MemoryStore::new())),
    ));
    let err = run.await.expect_err("the suite must reject this store");
    assert!(err.is_panic());
    let run = tokio::spawn(
        iamalive_core::conformance::heartbeat_between_read_and_write(Arc::new(IgnoresVersions(
            MemoryStore::new(),
        ))),
    );
    assert!(run.await.is_err(), "the race test must catch a lost update");
}

#[tokio::test]
async fn the_suite_fails_a_lazy_store_whose_window_is_off_by_one() {
    let run = tokio::spawn(iamalive_core::conformance::heartbeat_lazy_window(Arc::new(
        ExclusiveWindow(MemoryStore::new()),
    )));
    let err = run
        .await
        .expect_err("the window test must reject an exclusive start");
    assert!(err.is_panic());
}

#[tokio::test]
async fn a_flapping_site_is_one_notice_on_the_memory_store() {
    iamalive_core::conformance::group_flapping_is_one_notice_then_its_end(Arc::new(
        MemoryStore::new(),
    ))
    .await;
}
