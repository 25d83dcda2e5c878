//! The threads that own the connections: one writer doing group commit,
//! and a few readers. Async callers talk to them through channels and wait
//! on a oneshot, so no runtime worker ever blocks on SQLite.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use iamalive_core::StoreError;
use rusqlite::{Connection, Statement};
use tokio::sync::oneshot;

use crate::heartbeat::{self, HeartbeatJob};
use crate::{STORE, is_transient};

/// Why a whole batch failed (BEGIN or COMMIT did not go through): every
/// caller of the batch is answered with it ([`StoreError::replicate`]).
fn batch_failure(what: &str, e: &rusqlite::Error) -> StoreError {
    let message = format!("{what}: {e}");
    if is_transient(e) {
        StoreError::unavailable(STORE, message)
    } else {
        StoreError::backend(STORE, message)
    }
}

/// What the writer is asked to do.
pub(crate) enum WriteJob {
    /// The hot path, kept unboxed and run with a statement prepared once.
    Heartbeat(HeartbeatJob),
    /// Any other write.
    Other(Box<dyn Job>),
}

impl WriteJob {
    fn run(&mut self, conn: &Connection, up: Option<&mut Statement<'_>>) {
        match self {
            WriteJob::Heartbeat(j) => {
                if catch_unwind(AssertUnwindSafe(|| j.run(conn, up))).is_err() {
                    tracing::error!("a sqlite heartbeat panicked");
                }
            }
            WriteJob::Other(j) => j.run(conn),
        }
    }

    fn finish(self, failure: Option<&StoreError>) {
        match self {
            WriteJob::Heartbeat(j) => j.finish(failure.map(StoreError::replicate)),
            WriteJob::Other(j) => j.finish(failure),
        }
    }
}

/// One write: run inside the batch's transaction, answered after COMMIT.
pub(crate) trait Job: Send {
    /// Does the write; its result is held until the batch commits.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller: the held result if the batch committed, the
    /// batch's failure otherwise.
    fn finish(self: Box<Self>, failure: Option<&StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            let r = catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(StoreError::backend(STORE, "a write panicked")));
            self.result = Some(r);
        }
    }

    fn finish(self: Box<Self>, failure: Option<&StoreError>) {
        let r = match (failure, self.result) {
            (Some(f), _) => Err(f.replicate()),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError::backend(STORE, "a write was never run")),
        };
        let _ = self.reply.send(r);
    }
}

/// Wraps `work` as a job and the receiver its caller awaits.
pub(crate) fn write_job<T, F>(work: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job = Pending {
        work: Some(work),
        result: None,
        reply,
    };
    (Box::new(job), rx)
}

/// The writer's loop: take everything queued (up to `max_batch`), apply it
/// in one `BEGIN IMMEDIATE … COMMIT`, then answer every caller.
pub(crate) fn writer_loop(conn: Connection, rx: Receiver<WriteJob>, max_batch: usize) {
    // Prepared once for the writer's life; if that fails each heartbeat
    // falls back to the statement cache and reports the error itself.
    let mut up = conn.prepare(heartbeat::LAZY_SQL).ok();
    let mut batch: Vec<WriteJob> = Vec::with_capacity(max_batch.min(16_384));
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter().take(max_batch - 1));
        run_batch(&conn, up.as_mut(), &mut batch);
    }
    drop(up);
    tracing::debug!("sqlite writer stopped");
}

fn run_batch(conn: &Connection, mut up: Option<&mut Statement<'_>>, batch: &mut Vec<WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let failure = batch_failure("could not begin a write transaction", &e);
        tracing::warn!(error = %e, jobs = batch.len(), "sqlite batch not started");
        for job in batch.drain(..) {
            job.finish(Some(&failure));
        }
        return;
    }
    for job in batch.iter_mut() {
        job.run(conn, up.as_deref_mut());
    }
    // Some errors (disk full, I/O, out of memory) roll the whole
    // transaction back on their own: then nothing of this batch is stored.
    let failure = if conn.is_autocommit() {
        Some(StoreError::unavailable(
            STORE,
            "the write transaction was rolled back by SQLite",
        ))
    } else {
        match conn.execute_batch("COMMIT") {
            Ok(()) => None,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Some(batch_failure("commit failed", &e))
            }
        }
    };
    if let Some(f) = &failure {
        tracing::warn!(error = %f, jobs = batch.len(), "sqlite batch not stored");
    }
    for job in batch.drain(..) {
        job.finish(failure.as_ref());
    }
}

/// WAL size, in pages, at which the writer asks for a checkpoint: 64 MiB.
/// SQLite's own default (1000 pages) made the checkpoint copy each hot page
/// back into the database about every thousand commits of it; letting the
/// WAL hold many versions of the same page before one copy-back took SQLite
/// from 0.44–0.50 to 0.61–0.64 of the HTTP ceiling (BENCHMARKS.md). The
/// WAL file is cut back to `journal_size_limit` after each checkpoint.
pub(crate) const CHECKPOINT_PAGES: i32 = 16_000;

/// The checkpointer's loop: a passive checkpoint each time the writer
/// signals a grown WAL. Passive means it never blocks readers or the writer.
pub(crate) fn checkpoint_loop(conn: Connection, rx: Receiver<()>) {
    while rx.recv().is_ok() {
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match r {
            Ok((log, done)) => tracing::trace!(log, done, "sqlite checkpoint"),
            Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed; will retry"),
        }
    }
}

/// One read, run on a reader thread.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A reader's loop: take the next read from the shared queue and run it.
pub(crate) fn reader_loop(conn: Connection, rx: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.recv()
        };
        match job {
            Ok(job) => {
                if catch_unwind(AssertUnwindSafe(|| job(&conn))).is_err() {
                    tracing::error!("a sqlite read panicked");
                }
            }
            Err(_) => break,
        }
    }
}

/// Wraps `work` as a read job and the receiver its caller awaits.
pub(crate) fn read_job<T, F>(work: F) -> (ReadJob, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: ReadJob = Box::new(move |conn| {
        let _ = reply.send(work(conn));
    });
    (job, rx)
}

/// The sending halves held by the store.
pub(crate) struct Channels {
    pub(crate) writer: Sender<WriteJob>,
    pub(crate) reader: Sender<ReadJob>,
}
