#![doc = include_str!("../README.md")]

mod codec;
mod files;
mod groups;
mod heartbeat;
mod schema;
pub mod settings;
mod worker;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use iamalive_core::{
    Event, GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark,
    Silence, Store, StoreError, Timestamp, encode_json,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

pub use crate::files::{BackupReport, Checkpoint, backup};

use crate::codec::{COLS, opt_ts, outbox_json, record_from_row, ts};
use crate::heartbeat::HeartbeatJob;
use crate::worker::{Channels, ReadJob, WriteJob, read_job, write_job};

/// The name this store gives in errors.
pub(crate) const STORE: &str = "sqlite";

/// Whether a SQLite error is worth a retry (locked, busy, I/O, full).
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | OutOfMemory)
    )
}

/// Wraps a SQLite error, transient or not.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> StoreError {
    if is_transient(&e) {
        StoreError::unavailable(STORE, e)
    } else {
        StoreError::backend(STORE, e)
    }
}

/// How hard SQLite works to make a commit survive a power cut
/// (`PRAGMA synchronous`).
///
/// Either way a caller hears "stored" only after its batch has committed,
/// and a committed write survives the process crashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Commits are written to the WAL file and fsynced at checkpoints: a
    /// power cut or kernel crash (not a process crash) may lose the last
    /// commits before the checkpoint. The default: an fsync per batch would
    /// cap heartbeats at the disk's fsync rate times the batch size, and a
    /// watcher that lost power restarts with the startup grace anyway.
    #[default]
    Normal,
    /// Every commit is fsynced before its callers hear "stored": one fsync
    /// per group-committed batch, not per heartbeat.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Configures a [`SqliteStore`]; [`build`](Self::build) validates and opens.
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: Option<PathBuf>,
    busy_timeout: Duration,
    readers: usize,
    max_batch: usize,
    synchronous: Synchronous,
    cache_mib: u32,
    create: bool,
    signs: Vec<PathBuf>,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self {
            path: None,
            busy_timeout: Duration::from_secs(5),
            readers: 2,
            max_batch: 4096,
            synchronous: Synchronous::default(),
            cache_mib: 32,
            create: false,
            signs: Vec::new(),
        }
    }
}

impl SqliteStoreBuilder {
    /// The database file; created (with its schema) if absent, unless
    /// there are signs that one was there before (see
    /// [`create`](Self::create)). Required.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// How long a connection waits for another process's lock before a call
    /// fails as unavailable. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Read connections, each on its own thread. Default 2.
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }

    /// The most writes applied in one transaction (group commit). Default 4096.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Durability of each commit. Default [`Synchronous::Normal`].
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// The writer connection's page cache, in MiB. Default 32.
    pub fn cache_mib(mut self, mib: u32) -> Self {
        self.cache_mib = mib;
        self
    }

    /// Allows a new, empty database where signs say one existed before
    /// (its `-wal`, `-shm` or `-journal` file, the `.<name>.deployment`
    /// marker this store keeps beside it, or a [`deployment_sign`]). Off
    /// by default: then [`build`](Self::build) refuses with
    /// [`StoreError::Lost`] naming the path and the signs, since a silently
    /// re-created database forgets every host. A first start with nothing
    /// there creates the file either way. When on, orphaned side files are
    /// renamed aside (`…-wal.orphaned-<time>`) before the new file is made.
    ///
    /// [`deployment_sign`]: Self::deployment_sign
    pub fn create(mut self, allow: bool) -> Self {
        self.create = allow;
        self
    }

    /// Another file whose presence says a deployment ran here before (the
    /// server's generated key file), counted by [`create`](Self::create).
    pub fn deployment_sign(mut self, path: impl Into<PathBuf>) -> Self {
        self.signs.push(path.into());
        self
    }

    /// Checks the settings, opens the file (WAL, busy timeout), brings its
    /// schema up to date and starts the writer and reader threads.
    pub fn build(self) -> Result<SqliteStore, StoreError> {
        // Several processes opening one new file at once can find it
        // locked while another switches it to WAL or migrates it, and
        // SQLite does not always wait on its busy handler there: retry a
        // transient failure for as long as the busy timeout allows.
        let deadline = std::time::Instant::now() + self.busy_timeout;
        loop {
            match self.clone().build_once() {
                Err(e) if e.is_transient() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }

    fn build_once(self) -> Result<SqliteStore, StoreError> {
        let invalid = |reason: String| StoreError::InvalidInput {
            store: STORE,
            reason,
        };
        let path = self
            .path
            .ok_or_else(|| invalid("path: a database file is required".into()))?;
        let shown = path.display().to_string();
        if shown.is_empty() || shown == ":memory:" || shown.contains("mode=memory") {
            return Err(invalid(format!(
                "path: {shown:?} is not a file; an in-memory database cannot be shared by \
                 the store's connections (use iamalive_core::MemoryStore instead)"
            )));
        }
        if self.readers == 0 {
            return Err(invalid(
                "readers: at least one read connection is needed".into(),
            ));
        }
        if self.max_batch == 0 {
            return Err(invalid("max_batch: must be at least 1".into()));
        }
        let opening = |e: rusqlite::Error| {
            let transient = is_transient(&e);
            let msg = format!("cannot open {shown}: {e}");
            if transient {
                StoreError::unavailable(STORE, msg)
            } else {
                StoreError::backend(STORE, msg)
            }
        };
        if !path.exists() {
            let signs = files::signs_of_a_deployment(&path, &self.signs);
            // Another process may have created it meanwhile (its side files
            // follow the file itself).
            if !signs.is_empty() && !path.exists() {
                let listed = signs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                if !self.create {
                    return Err(StoreError::lost(
                        STORE,
                        format!(
                            "the database {shown} does not exist, but a deployment ran here \
                             before (found {listed}): it was deleted or moved, and a new empty \
                             database would silently forget every host. Restore it from a \
                             backup, or set sqlite.create = true (IAMALIVE_SQLITE_CREATE=true) \
                             to start empty on purpose"
                        ),
                    ));
                }
                tracing::warn!(path = %shown, found = %listed, "creating a new, empty database where one existed before (create is on)");
                files::set_aside_orphans(&path)?;
            }
        }
        files::check_writable(&path)?;
        let mut writer = Connection::open(&path).map_err(opening)?;
        writer.busy_timeout(self.busy_timeout).map_err(opening)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(opening)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(
                STORE,
                format!("{shown}: could not switch to WAL (journal mode is {mode})"),
            ));
        }
        writer
            .pragma_update(None, "synchronous", self.synchronous.pragma())
            .map_err(opening)?;
        writer
            .pragma_update(None, "cache_size", -(i64::from(self.cache_mib) * 1024))
            .map_err(opening)?;
        // The WAL file is reused after each checkpoint; cap what it keeps.
        writer
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(opening)?;
        writer.set_prepared_statement_cache_capacity(32);
        match schema::migrate(&writer) {
            Ok(from) if from < schema::LATEST => {
                tracing::info!(path = %shown, from, to = schema::LATEST, "sqlite schema migrated");
            }
            Ok(_) => {}
            Err(schema::MigrateError::TooNew(v)) => {
                return Err(StoreError::backend(
                    STORE,
                    format!(
                        "{shown} has schema version {v}, newer than this build knows ({}); \
                         upgrade iamalive",
                        schema::LATEST
                    ),
                ));
            }
            Err(schema::MigrateError::Sqlite(e)) => return Err(opening(e)),
        }
        files::keep_marker(&path);
        let file_id = files::FileId::at(&path)
            .map_err(|e| StoreError::backend(STORE, format!("cannot stat {shown}: {e}")))?;

        let mut readers = Vec::with_capacity(self.readers);
        for _ in 0..self.readers {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(opening)?;
            conn.busy_timeout(self.busy_timeout).map_err(opening)?;
            readers.push(conn);
        }

        let spawn_failed = |e: std::io::Error| StoreError::backend(STORE, e);
        // Checkpoints (copying the WAL back into the file, with its fsyncs)
        // run on their own connection and thread, so the writer never stalls
        // on them; the writer only signals when the WAL has grown.
        let checkpointer = Connection::open(&path).map_err(opening)?;
        checkpointer
            .busy_timeout(self.busy_timeout)
            .map_err(opening)?;
        let (ctx, crx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || worker::checkpoint_loop(checkpointer, crx))
            .map_err(spawn_failed)?;
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= worker::CHECKPOINT_PAGES {
                    let behind = pages >= worker::CHECKPOINT_PAGES * 4;
                    if ctx.try_send(()).is_err() && behind {
                        // The checkpointer is gone or far behind: do it here.
                        let _ = wal.checkpoint();
                    }
                }
                // Never an error: the commit has happened either way.
                Ok(())
            }))
            .map_err(opening)?;
        let (wtx, wrx) = mpsc::channel::<WriteJob>();
        let max_batch = self.max_batch;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || worker::writer_loop(writer, wrx, max_batch))
            .map_err(spawn_failed)?;
        let (rtx, rrx) = mpsc::channel::<ReadJob>();
        let rrx = Arc::new(Mutex::new(rrx));
        for (i, conn) in readers.into_iter().enumerate() {
            let rrx = Arc::clone(&rrx);
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || worker::reader_loop(conn, rrx))
                .map_err(spawn_failed)?;
        }
        Ok(SqliteStore {
            path,
            file_id,
            busy_timeout: self.busy_timeout,
            ch: Channels {
                writer: wtx,
                reader: rtx,
            },
        })
    }
}

/// A [`Store`] in one SQLite file: WAL, a partial index on `due_at`,
/// compare-and-swap on `version`, group-committed heartbeats.
///
/// Several processes may open the same file; every write runs in a
/// `BEGIN IMMEDIATE` transaction, so their compare-and-swaps exclude each
/// other. Dropping the store lets its threads finish what is queued and
/// close their connections; a process that exits without waiting for them
/// should call [`checkpoint`](SqliteStore::checkpoint) first, so the file
/// alone holds every write.
///
/// [`Store::check`] compares the file at the path with the one opened
/// (device and inode): deleted or replaced, it is [`StoreError::Lost`].
pub struct SqliteStore {
    path: PathBuf,
    file_id: files::FileId,
    busy_timeout: Duration,
    ch: Channels,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl fmt::Display for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sqlite({})", self.path.display())
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable(STORE, "the store's connection threads have stopped")
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const CAS_UPDATE_SQL: &str = "UPDATE hosts SET
        status = ?2, last_seen = ?3, watch_from = ?4, last_checked = ?5, missing_since = ?6,
        silent_since = ?7, last_alarm = ?8, alarm_count = ?9, due_at = ?10, version = ?11,
        outbox = ?12, message = ?13, report = ?14, job = ?15, policy = ?16, group_name = ?17,
        flips = ?18, flapping = ?19, interval_ms = ?20, gap_ms = ?21, prev_gap_ms = ?22
    WHERE host = ?1 AND version = ?23";

const CAS_CREATE_SQL: &str = "INSERT INTO hosts (host, status, last_seen, watch_from,
        last_checked, missing_since, silent_since, last_alarm, alarm_count, due_at, version,
        outbox, message, report, job, policy, group_name, flips, flapping, interval_ms, gap_ms,
        prev_gap_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
        ?20, ?21, ?22)
    ON CONFLICT (host) DO UPDATE SET
        status = excluded.status, last_seen = excluded.last_seen,
        watch_from = excluded.watch_from, last_checked = excluded.last_checked,
        missing_since = excluded.missing_since, silent_since = excluded.silent_since,
        last_alarm = excluded.last_alarm, alarm_count = excluded.alarm_count,
        due_at = excluded.due_at, version = excluded.version, outbox = excluded.outbox,
        message = excluded.message, report = excluded.report, job = excluded.job,
        policy = excluded.policy, group_name = excluded.group_name,
        flips = excluded.flips, flapping = excluded.flapping,
        interval_ms = excluded.interval_ms, gap_ms = excluded.gap_ms,
        prev_gap_ms = excluded.prev_gap_ms
    WHERE hosts.version = 0";

/// A record's columns, encoded on the caller's thread.
struct Row {
    host: String,
    status: &'static str,
    last_seen: i64,
    watch_from: i64,
    last_checked: Option<i64>,
    missing_since: Option<i64>,
    silent_since: Option<i64>,
    last_alarm: Option<i64>,
    alarm_count: i64,
    due_at: Option<i64>,
    version: i64,
    outbox: Option<String>,
    message: Option<String>,
    report: Option<String>,
    job: Option<String>,
    policy: Option<String>,
    group: Option<String>,
    flips: Option<String>,
    flapping: Option<String>,
    /// The host's interval (see `iamalive_core::beat`), NULL for none.
    interval: [Option<i64>; 3],
}

impl Row {
    fn encode(r: &HostRecord) -> Result<Self, StoreError> {
        let flap = codec::flap_json(r.flap.as_deref())?;
        Ok(Self {
            host: r.host.as_str().to_owned(),
            status: r.status.as_str(),
            last_seen: ts(r.last_seen),
            watch_from: ts(r.watch_from),
            last_checked: opt_ts(r.last_checked),
            missing_since: opt_ts(r.missing_since),
            silent_since: opt_ts(r.silent_since),
            last_alarm: opt_ts(r.last_alarm),
            alarm_count: i64::from(r.alarm_count),
            due_at: opt_ts(r.due_at),
            version: codec::version(r.version)?,
            outbox: outbox_json(r.outbox.as_deref())?,
            message: r.message.clone(),
            report: r.report.clone(),
            job: codec::job_json(r.job.as_deref())?,
            policy: codec::policy_json(r.policy.as_deref())?,
            group: r.group.as_ref().map(|g| g.as_str().to_owned()),
            flips: flap.0,
            flapping: flap.1,
            interval: codec::interval_cols(&r.interval),
        })
    }
}

fn compare_and_swap(conn: &Connection, expected: i64, r: &Row) -> Result<bool, StoreError> {
    let cols = params![
        r.host,
        r.status,
        r.last_seen,
        r.watch_from,
        r.last_checked,
        r.missing_since,
        r.silent_since,
        r.last_alarm,
        r.alarm_count,
        r.due_at,
        r.version,
        r.outbox,
        r.message,
        r.report,
        r.job,
        r.policy,
        r.group,
        r.flips,
        r.flapping,
        r.interval[0],
        r.interval[1],
        r.interval[2],
    ];
    let changed = if expected == 0 {
        conn.prepare_cached(CAS_CREATE_SQL)
            .and_then(|mut s| s.execute(cols))
    } else {
        let mut args = cols.to_vec();
        args.push(&expected);
        conn.prepare_cached(CAS_UPDATE_SQL)
            .and_then(|mut s| s.execute(args.as_slice()))
    }
    .map_err(sqlite_error)?;
    Ok(changed == 1)
}

fn mark_run(conn: &Connection, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
    let old = conn
        .prepare_cached("SELECT last_run, down_from, down_until FROM monitor_mark WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok(codec::mark_from_row(r))).optional())
        .map_err(sqlite_error)?
        .transpose()?
        .unwrap_or_default();
    let next = old.advance(now, gap);
    let down = next.downtime;
    conn.prepare_cached(
        "INSERT INTO monitor_mark (id, last_run, down_from, down_until) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET last_run = excluded.last_run,
             down_from = excluded.down_from, down_until = excluded.down_until",
    )
    .and_then(|mut s| {
        s.execute(params![
            opt_ts(next.last_run),
            opt_ts(down.map(|d| d.from)),
            opt_ts(down.map(|d| d.until)),
        ])
    })
    .map_err(sqlite_error)?;
    Ok(next)
}

fn query_records(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<HostRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut rows = stmt.query(args).map_err(sqlite_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        out.push(record_from_row(row)?);
    }
    Ok(out)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with default settings.
    ///
    /// ```no_run
    /// let store = iamalive_store_sqlite::SqliteStore::open("iamalive.db")?;
    /// assert_eq!(store.to_string(), "sqlite(iamalive.db)");
    /// # Ok::<(), iamalive_core::StoreError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::builder().path(path.as_ref()).build()
    }

    /// A builder for the settings beyond the path.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies every write in the WAL back into the database file and
    /// truncates the WAL to zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`),
    /// on a connection of its own; waits up to the busy timeout for other
    /// writers. For a graceful stop: afterwards the database file alone
    /// holds everything.
    pub async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let path = self.path.clone();
        let busy = self.busy_timeout;
        tokio::task::spawn_blocking(move || files::checkpoint_truncate(&path, busy))
            .await
            .map_err(|e| StoreError::backend(STORE, format!("checkpoint task: {e}")))?
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = write_job(work);
        self.ch
            .writer
            .send(WriteJob::Other(job))
            .map_err(|_| stopped())?;
        await_reply(rx).await
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = read_job(work);
        self.ch.reader.send(job).map_err(|_| stopped())?;
        await_reply(rx).await
    }
}

async fn await_reply<T>(rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    rx.await.map_err(|_| stopped())?
}

#[async_trait]
impl Store for SqliteStore {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let (job, rx) = HeartbeatJob::new(hb, due_if_up, create);
        self.ch
            .writer
            .send(WriteJob::Heartbeat(job))
            .map_err(|_| stopped())?;
        await_reply(rx).await
    }

    async fn due(&self, now: Timestamp, limit_n: usize) -> Result<Vec<HostRecord>, StoreError> {
        let now = ts(now);
        let n = limit(limit_n);
        self.read(move |conn| {
            query_records(
                conn,
                &format!("SELECT {COLS} FROM hosts WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"),
                params![now, n],
            )
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            let v: Option<rusqlite::types::Value> = conn
                .prepare_cached(
                    "SELECT due_at FROM hosts WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1",
                )
                .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
                .map_err(sqlite_error)?;
            match v {
                None => Ok(None),
                Some(rusqlite::types::Value::Integer(n)) => Ok(Some(codec::from_ts(n))),
                Some(other) => Err(StoreError::Corrupt {
                    store: STORE,
                    key: "hosts.due_at".into(),
                    reason: format!("earliest due_at is not an integer: {other:?}"),
                }),
            }
        })
        .await
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let host = host.as_str().to_owned();
        self.read(move |conn| {
            let mut v = query_records(
                conn,
                &format!("SELECT {COLS} FROM hosts WHERE host = ?1"),
                [&host],
            )?;
            Ok(v.pop())
        })
        .await
    }

    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        let expected = codec::version(expected)?;
        let row = Row::encode(next)?;
        self.write(move |conn| compare_and_swap(conn, expected, &row))
            .await
    }

    async fn list(
        &self,
        after: Option<&HostId>,
        limit_n: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let after = after.map(|h| h.as_str().to_owned());
        let n = limit(limit_n);
        self.read(move |conn| match after {
            Some(a) => query_records(
                conn,
                &format!("SELECT {COLS} FROM hosts WHERE host > ?1 ORDER BY host LIMIT ?2"),
                params![a, n],
            ),
            None => query_records(
                conn,
                &format!("SELECT {COLS} FROM hosts ORDER BY host LIMIT ?1"),
                [n],
            ),
        })
        .await
    }

    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        let host = host.as_str().to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM events WHERE host = ?1")
                .and_then(|mut s| s.execute([&host]))
                .map_err(sqlite_error)?;
            conn.prepare_cached("DELETE FROM hosts WHERE host = ?1")
                .and_then(|mut s| s.execute([&host]))
                .map(|n| n > 0)
                .map_err(sqlite_error)
        })
        .await
    }

    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        let host = host.as_str().to_owned();
        let body = encode_json(STORE, "event", event)?;
        let keep = limit(keep);
        // One write job: the writer runs it inside its transaction, so the
        // insert and the trim land together.
        self.write(move |conn| {
            conn.prepare_cached("INSERT INTO events (host, body) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![host, body]))
                .map_err(sqlite_error)?;
            conn.prepare_cached(
                "DELETE FROM events WHERE host = ?1 AND seq <= (
                    SELECT seq FROM events WHERE host = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            )
            .and_then(|mut s| s.execute(params![host, keep]))
            .map(drop)
            .map_err(sqlite_error)
        })
        .await
    }

    async fn events(&self, host: &HostId, limit_to: usize) -> Result<Vec<Event>, StoreError> {
        let host = host.as_str().to_owned();
        let n = limit(limit_to);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM events WHERE host = ?1 ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(sqlite_error)?;
            let rows = stmt
                .query_map(params![host, n], |r| r.get::<_, String>(0))
                .map_err(sqlite_error)?;
            let mut out = Vec::new();
            for row in rows {
                let body = row.map_err(sqlite_error)?;
                let e: Event = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                    store: STORE,
                    key: format!("event of {host}"),
                    reason: e.to_string(),
                })?;
                out.push(e);
            }
            Ok(out)
        })
        .await
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let id = silence.id.clone();
        let body = encode_json(STORE, "silence", silence)?;
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO silences (id, body) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )
            .and_then(|mut s| s.execute([&id, &body]))
            .map(drop)
            .map_err(sqlite_error)
        })
        .await
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, body FROM silences ORDER BY id")
                .map_err(sqlite_error)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0), r.get::<_, String>(1))))
                .map_err(sqlite_error)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body) = row.map_err(sqlite_error)?;
                let id = id.unwrap_or_else(|e| format!("<unreadable id: {e}>"));
                let corrupt = |reason: String| StoreError::Corrupt {
                    store: STORE,
                    key: format!("silence {id}"),
                    reason,
                };
                let body = body.map_err(|e| corrupt(e.to_string()))?;
                let s: Silence = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                if s.id != id {
                    return Err(corrupt(format!("its body names id {:?}", s.id)));
                }
                out.push(s);
            }
            Ok(out)
        })
        .await
    }

    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM silences WHERE id = ?1")
                .and_then(|mut s| s.execute([&id]))
                .map(|n| n > 0)
                .map_err(sqlite_error)
        })
        .await
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        self.write(move |conn| mark_run(conn, now, gap)).await
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    fn counts_hosts(&self) -> bool {
        true
    }

    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        self.count_hosts().await.map(Some)
    }

    /// By the index on `due_at`, reading at most `at_most` of its entries.
    async fn count_due(&self, until: Timestamp, at_most: u64) -> Result<Option<u64>, StoreError> {
        let until = ts(until);
        let n = limit(usize::try_from(at_most).unwrap_or(usize::MAX));
        self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM hosts WHERE due_at <= ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.query_row(params![until, n], |r| r.get(0)))
                .map_err(sqlite_error)?;
            Ok(Some(u64::try_from(n).unwrap_or(0)))
        })
        .await
    }

    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.group(group).await
    }

    /// By the partial index `hosts_group` (migration 6): O(group size).
    async fn group_hosts(
        &self,
        group: &GroupName,
        limit_n: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        let group = group.as_str().to_owned();
        let n = limit(limit_n);
        self.read(move |conn| {
            query_records(
                conn,
                &format!("SELECT {COLS} FROM hosts WHERE group_name = ?1 LIMIT ?2"),
                params![group, n],
            )
        })
        .await
        .map(Some)
    }

    /// From the `groups` row's `version` column, the body left unread.
    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        self.group_version_of(group).await.map(Some)
    }

    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        self.swap_group_row(expected, next).await
    }

    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        self.groups_due(now, limit).await
    }

    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.group_next_due().await
    }

    async fn check(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let now = tokio::task::spawn_blocking(move || files::FileId::at(&path))
            .await
            .map_err(|e| StoreError::unavailable(STORE, format!("check task: {e}")))?;
        let shown = self.path.display();
        const KEEP: &str = "this process keeps working on the file it opened, but a restart \
            would find no database (or another one) and every host would be forgotten: \
            restore the file from a backup before restarting";
        match now {
            Ok(id) if id == self.file_id => Ok(()),
            Ok(_) => Err(StoreError::lost(
                STORE,
                format!(
                    "the database file {shown} was replaced by another file while open; {KEEP}"
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::lost(
                STORE,
                format!("the database file {shown} was deleted while open; {KEEP}"),
            )),
            Err(e) => Err(StoreError::unavailable(
                STORE,
                format!("cannot stat {shown}: {e}"),
            )),
        }
    }
}
