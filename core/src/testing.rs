//! For tests: a notifier that records and can be made to fail, and
//! [`Hooked`], a store that passes every call to the store it wraps after
//! a [`Hook`] has seen it: [`StallingStore`] (heartbeat writes made to
//! hang, every call made to fail, the data reported lost) and
//! [`CountingStore`] (group-record calls counted) are two such hooks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Event, GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark,
    Notice, NoticeKind, Notifier, NotifyError, Silence, Store, StoreError, Timestamp,
};

/// Records every notice it is given. Clones share the same log, so several
/// monitors can stand for one real channel.
#[derive(Debug, Clone)]
pub struct RecordingNotifier {
    name: String,
    log: Arc<Mutex<Vec<Notice>>>,
    mode: Arc<AtomicU8>,
}

const OK: u8 = 0;
const TRANSIENT: u8 = 1;
const PERMANENT: u8 = 2;

impl RecordingNotifier {
    /// A channel called `name` that takes everything.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            log: Arc::default(),
            mode: Arc::default(),
        }
    }

    /// Makes every delivery fail transiently (`true`) or succeed (`false`).
    pub fn set_down(&self, down: bool) {
        self.mode
            .store(if down { TRANSIENT } else { OK }, Ordering::SeqCst);
    }

    /// Makes every delivery fail permanently.
    pub fn set_refusing(&self) {
        self.mode.store(PERMANENT, Ordering::SeqCst);
    }

    /// Every notice delivered so far, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many of `kind` were delivered.
    pub fn count(&self, kind: NoticeKind) -> usize {
        self.notices().iter().filter(|n| n.kind == kind).count()
    }

    /// Forgets what was delivered.
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        match self.mode.load(Ordering::SeqCst) {
            TRANSIENT => Err(NotifyError::transient(&self.name, "test channel is down")),
            PERMANENT => Err(NotifyError::permanent(&self.name, "test channel refuses")),
            _ => {
                self.log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(notice.clone());
                Ok(())
            }
        }
    }
}

/// The [`Store`] call a [`Hooked`] store is about to pass on, with what
/// a hook may want to look at.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`Store::record_heartbeat`].
    RecordHeartbeat(&'a Heartbeat),
    /// [`Store::due`].
    Due,
    /// [`Store::next_due`].
    NextDue,
    /// [`Store::get`].
    Get(&'a HostId),
    /// [`Store::compare_and_swap`] of this record.
    CompareAndSwap(&'a HostRecord),
    /// [`Store::list`].
    List,
    /// [`Store::remove`].
    Remove(&'a HostId),
    /// [`Store::put_silence`].
    PutSilence,
    /// [`Store::silences`].
    Silences,
    /// [`Store::remove_silence`].
    RemoveSilence,
    /// [`Store::mark_run`].
    MarkRun,
    /// [`Store::append_event`].
    AppendEvent(&'a HostId),
    /// [`Store::events`].
    Events(&'a HostId),
    /// [`Store::check`].
    Check,
    /// [`Store::host_count`].
    HostCount,
    /// [`Store::count_due`].
    CountDue,
    /// [`Store::group_hosts`].
    GroupHosts(&'a GroupName),
    /// [`Store::get_group`].
    GetGroup(&'a GroupName),
    /// [`Store::group_version`].
    GroupVersion(&'a GroupName),
    /// [`Store::swap_group`] of this record.
    SwapGroup(&'a GroupRecord),
    /// [`Store::due_groups`].
    DueGroups,
    /// [`Store::next_group_due`].
    NextGroupDue,
}

/// What a [`Hooked`] store does before each call reaches the store it
/// wraps: count it, hold it, fail it, or slip another write in first.
#[async_trait]
pub trait Hook: Send + Sync + 'static {
    /// Runs before `call` is passed on; an error fails the call without
    /// passing it on.
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError>;

    /// What the store's name is wrapped in (`stalling(memory)`); `None`
    /// shows the wrapped store's name alone.
    fn label(&self) -> Option<&'static str> {
        None
    }
}

/// A store that passes every [`Store`] call, the optional ones included,
/// to the store it wraps once its [`Hook`] has let it through: one
/// forwarding wrapper for every test store that needs to watch or
/// disturb the calls a monitor makes.
pub struct Hooked<S: ?Sized, H> {
    inner: Arc<S>,
    hook: H,
}

impl<S: Store + ?Sized, H: Hook> Hooked<S, H> {
    /// Wraps a shared store.
    pub fn over(inner: Arc<S>, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The wrapped store, to look at what was written.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<S: Store + ?Sized, H: Hook> fmt::Display for Hooked<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hook.label() {
            Some(label) => write!(f, "{label}({})", self.inner),
            None => write!(f, "{}", self.inner),
        }
    }
}

impl<S: Store + ?Sized, H: Hook> fmt::Debug for Hooked<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hooked").field(&self.to_string()).finish()
    }
}

#[async_trait]
impl<S: Store + ?Sized, H: Hook> Store for Hooked<S, H> {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.hook.before(Call::RecordHeartbeat(hb)).await?;
        self.inner.record_heartbeat(hb, due_if_up, create).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        self.hook.before(Call::Due).await?;
        self.inner.due(now, limit).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.hook.before(Call::NextDue).await?;
        self.inner.next_due().await
    }
    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.hook.before(Call::Get(host)).await?;
        self.inner.get(host).await
    }
    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        self.hook.before(Call::CompareAndSwap(next)).await?;
        self.inner.compare_and_swap(expected, next).await
    }
    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        self.hook.before(Call::List).await?;
        self.inner.list(after, limit).await
    }
    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        self.hook.before(Call::Remove(host)).await?;
        self.inner.remove(host).await
    }
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.hook.before(Call::PutSilence).await?;
        self.inner.put_silence(silence).await
    }
    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.hook.before(Call::Silences).await?;
        self.inner.silences().await
    }
    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        self.hook.before(Call::RemoveSilence).await?;
        self.inner.remove_silence(id).await
    }
    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        self.hook.before(Call::MarkRun).await?;
        self.inner.mark_run(now, gap).await
    }
    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        self.hook.before(Call::AppendEvent(host)).await?;
        self.inner.append_event(host, event, keep).await
    }
    async fn events(&self, host: &HostId, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.hook.before(Call::Events(host)).await?;
        self.inner.events(host, limit).await
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.hook.before(Call::Check).await?;
        self.inner.check().await
    }
    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        self.hook.before(Call::HostCount).await?;
        self.inner.host_count().await
    }
    fn counts_hosts(&self) -> bool {
        self.inner.counts_hosts()
    }
    async fn count_due(&self, until: Timestamp, at_most: u64) -> Result<Option<u64>, StoreError> {
        self.hook.before(Call::CountDue).await?;
        self.inner.count_due(until, at_most).await
    }
    async fn group_hosts(
        &self,
        group: &GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        self.hook.before(Call::GroupHosts(group)).await?;
        self.inner.group_hosts(group, limit).await
    }
    fn keeps_groups(&self) -> bool {
        self.inner.keeps_groups()
    }
    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.hook.before(Call::GetGroup(group)).await?;
        self.inner.get_group(group).await
    }
    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        self.hook.before(Call::GroupVersion(group)).await?;
        self.inner.group_version(group).await
    }
    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        self.hook.before(Call::SwapGroup(next)).await?;
        self.inner.swap_group(expected, next).await
    }
    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        self.hook.before(Call::DueGroups).await?;
        self.inner.due_groups(now, limit).await
    }
    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.hook.before(Call::NextGroupDue).await?;
        self.inner.next_group_due().await
    }
}

/// A store whose `record_heartbeat` never completes while stalled, as a
/// store behind a dead link would, whose every call can be made to fail as
/// on a full disk, and whose [`Store::check`] can be made to report the
/// data lost; everything else goes straight to the store it wraps. For
/// testing what bounds a hung write (request timeouts), that nothing is
/// written meanwhile, and how store faults are announced.
pub type StallingStore<S> = Hooked<S, Stall>;

/// The [`Hook`] of a [`StallingStore`].
#[derive(Debug, Default)]
pub struct Stall {
    stalled: AtomicBool,
    failing: AtomicBool,
    lost: Mutex<Option<String>>,
}

#[async_trait]
impl Hook for Stall {
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "stalling",
                "database or disk is full",
            ));
        }
        match call {
            Call::RecordHeartbeat(_) if self.stalled.load(Ordering::SeqCst) => {
                std::future::pending::<()>().await;
            }
            Call::Check => {
                let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(reason) = lost {
                    return Err(StoreError::lost("stalling", reason));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn label(&self) -> Option<&'static str> {
        Some("stalling")
    }
}

impl<S: Store> Hooked<S, Stall> {
    /// Wraps `inner`, not stalled, not failing, nothing lost.
    pub fn new(inner: S) -> Self {
        Self::over(Arc::new(inner), Stall::default())
    }

    /// From now on [`Store::check`] reports the data lost, saying `reason`
    /// (`Some`), or passes (`None`).
    pub fn set_lost(&self, reason: Option<&str>) {
        *self.hook.lost.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    /// Every call from now on fails as a full disk would (`true`), or goes
    /// through again.
    pub fn set_failing(&self, failing: bool) {
        self.hook.failing.store(failing, Ordering::SeqCst);
    }

    /// Heartbeat writes started from now on hang (`true`) or go through.
    pub fn set_stalled(&self, stalled: bool) {
        self.hook.stalled.store(stalled, Ordering::SeqCst);
    }
}

/// A store that counts the group-record calls made to it and passes every
/// call to the store it wraps: for tests of how often the monitor reads
/// and writes a group's record.
pub type CountingStore<S> = Hooked<S, Count>;

/// The [`Hook`] of a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Count {
    group_reads: AtomicU64,
    group_version_reads: AtomicU64,
    group_writes: AtomicU64,
}

#[async_trait]
impl Hook for Count {
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        let counter = match call {
            Call::GetGroup(_) => &self.group_reads,
            Call::GroupVersion(_) => &self.group_version_reads,
            Call::SwapGroup(_) => &self.group_writes,
            _ => return Ok(()),
        };
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn label(&self) -> Option<&'static str> {
        Some("counting")
    }
}

impl<S: Store> Hooked<S, Count> {
    /// Wraps `inner`, nothing counted yet.
    pub fn new(inner: S) -> Self {
        Self::over(Arc::new(inner), Count::default())
    }

    /// Calls of [`Store::get_group`] so far.
    pub fn group_reads(&self) -> u64 {
        self.hook.group_reads.load(Ordering::SeqCst)
    }

    /// Calls of [`Store::group_version`] so far.
    pub fn group_version_reads(&self) -> u64 {
        self.hook.group_version_reads.load(Ordering::SeqCst)
    }

    /// Calls of [`Store::swap_group`] so far, won or lost.
    pub fn group_writes(&self) -> u64 {
        self.hook.group_writes.load(Ordering::SeqCst)
    }
}
