//! The database file as a file: its identity while open (deleted or
//! replaced under a running watcher), the signs that a deployment existed
//! before it (so a deleted file is not silently replaced by an empty one),
//! the side files SQLite maps into memory, the checkpoint on close, and
//! online backups.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use iamalive_core::StoreError;
use rusqlite::{Connection, OpenFlags};

use crate::STORE;

/// A file's identity: device and inode (where the platform has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Self {}
        }
    }

    /// The identity of the file at `path` now.
    pub(crate) fn at(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|m| Self::of(&m))
    }
}

/// `path` with `suffix` appended to its file name (`x.db` → `x.db-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The marker kept beside the database: `.<name>.deployment`, hidden so a
/// `rm iamalive.db*` leaves it, and so a deleted database is noticed.
pub(crate) fn marker_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "iamalive.db".into());
    path.with_file_name(format!(".{name}.deployment"))
}

/// Writes the marker if it is not there yet. Best effort: a directory that
/// cannot take it only weakens the detection of a deleted database.
pub(crate) fn keep_marker(path: &Path) {
    let marker = marker_path(path);
    if marker.exists() {
        return;
    }
    let text = format!(
        "This directory holds the iamalive database {name}.\n\
         While this file exists, iamalive refuses to start on a new, empty database in its\n\
         place (the old one was deleted or moved, and every host with it). Restore the\n\
         database from a backup, or set sqlite.create = true (IAMALIVE_SQLITE_CREATE=true)\n\
         once to start empty on purpose.\n",
        name = path.display()
    );
    if let Err(e) = std::fs::write(&marker, text) {
        tracing::warn!(marker = %marker.display(), error = %e, "cannot write the deployment marker beside the database; a deleted database could go unnoticed at start");
    }
}

/// With the database file absent: the files that say a deployment ran
/// here before (SQLite's side files, the marker, and `extra` given by the
/// caller, such as the server's generated key file).
pub(crate) fn signs_of_a_deployment(path: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut candidates = vec![
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
        with_suffix(path, "-journal"),
        marker_path(path),
    ];
    candidates.extend(extra.iter().cloned());
    candidates.into_iter().filter(|p| p.exists()).collect()
}

/// Moves SQLite's side files of a database that is gone out of the way, so
/// a fresh database never replays an old write-ahead log.
pub(crate) fn set_aside_orphans(path: &Path) -> Result<(), StoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    for suffix in ["-wal", "-shm", "-journal"] {
        let p = with_suffix(path, suffix);
        if p.exists() {
            let to = with_suffix(path, &format!("{suffix}.orphaned-{stamp}"));
            std::fs::rename(&p, &to).map_err(|e| {
                StoreError::backend(
                    STORE,
                    format!("cannot move the orphaned {} aside: {e}", p.display()),
                )
            })?;
            tracing::warn!(from = %p.display(), to = %to.display(), "moved an orphaned SQLite file aside");
        }
    }
    Ok(())
}

/// SQLite maps `-shm` into memory and writes the database and `-wal`
/// through file descriptors: a side file that exists but cannot be opened
/// for writing (immutable, read-only, another owner) makes SQLite fall back
/// to a read-only mapping that can kill the process with SIGBUS, or fail
/// every write later. Found at open, it is an error naming the file.
pub(crate) fn check_writable(path: &Path) -> Result<(), StoreError> {
    for p in [
        path.to_owned(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        // Opened and closed before SQLite opens anything: no lock of this
        // process can be dropped by the close.
        match std::fs::OpenOptions::new().write(true).open(&p) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::backend(
                    STORE,
                    format!(
                        "{} cannot be opened for writing ({e}); SQLite needs to write the \
                         database and its -wal and -shm files (check the permissions, the \
                         immutable attribute with lsattr, and whether the file system is \
                         mounted read-only)",
                        p.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What a checkpoint did: WAL frames in the log, and copied back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Frames in the WAL when it ran (-1 if the database is not in WAL mode).
    pub log_frames: i64,
    /// Frames copied back into the database file.
    pub checkpointed: i64,
    /// Whether every frame was copied and the WAL truncated to zero bytes.
    pub complete: bool,
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` on a connection of its own.
pub(crate) fn checkpoint_truncate(
    path: &Path,
    busy: std::time::Duration,
) -> Result<Checkpoint, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(crate::sqlite_error)?;
    conn.busy_timeout(busy).map_err(crate::sqlite_error)?;
    // A checkpoint the store's own checkpointer is running makes this one
    // answer "busy" at once (the busy handler is not asked): try again
    // until the busy timeout.
    let deadline = std::time::Instant::now() + busy;
    let (busy, log, done) = loop {
        let r: (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(crate::sqlite_error)?;
        if r.0 == 0 || std::time::Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(Checkpoint {
        log_frames: log,
        checkpointed: done,
        complete: busy == 0 && log == done,
    })
}

/// What [`backup`](crate::backup) wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Hosts in it.
    pub hosts: u64,
    /// Silences in it.
    pub silences: u64,
}

/// Writes a consistent copy of the database at `from` to `to` with
/// `VACUUM INTO`, while other processes keep using `from`: the copy is one
/// read transaction's snapshot, WAL included, compacted, in rollback-journal
/// mode (a single file). It is written beside `to` and renamed into place
/// only once complete and checked; `to` must not exist.
pub fn backup(from: &Path, to: &Path) -> Result<BackupReport, StoreError> {
    let fail = |what: String| StoreError::backend(STORE, what);
    if to.exists() {
        return Err(fail(format!(
            "{} exists; a backup never overwrites a file",
            to.display()
        )));
    }
    if !from.exists() {
        return Err(fail(format!("{} does not exist", from.display())));
    }
    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(format!("cannot open {}: {e}", from.display())))?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(crate::sqlite_error)?;
    let target = partial
        .to_str()
        .ok_or_else(|| fail(format!("{} is not valid UTF-8", partial.display())))?;
    src.execute("VACUUM INTO ?1", [target])
        .map_err(|e| fail(format!("VACUUM INTO {}: {e}", partial.display())))?;
    drop(src);
    let counted = (|| {
        let copy = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let ok: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let hosts: i64 = copy.query_row("SELECT count(*) FROM hosts", [], |r| r.get(0))?;
        let silences: i64 = copy.query_row("SELECT count(*) FROM silences", [], |r| r.get(0))?;
        Ok::<_, rusqlite::Error>((ok, hosts, silences))
    })();
    let (ok, hosts, silences) = match counted {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(fail(format!("the copy does not read back: {e}")));
        }
    };
    if ok != "ok" {
        let _ = std::fs::remove_file(&partial);
        return Err(fail(format!("the copy fails its check: {ok}")));
    }
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&partial, to))
        .map_err(|e| fail(format!("cannot move the copy into {}: {e}", to.display())))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: to.to_owned(),
        bytes,
        hosts: u64::try_from(hosts).unwrap_or(0),
        silences: u64::try_from(silences).unwrap_or(0),
    })
}
