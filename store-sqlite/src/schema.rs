//! Versioned schema migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`. Append only:
/// a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: hosts with a partial due index, silences, the monitors' mark.
    "CREATE TABLE hosts (
        host          TEXT PRIMARY KEY NOT NULL,
        status        TEXT NOT NULL,
        last_seen     INTEGER NOT NULL,
        watch_from    INTEGER NOT NULL,
        last_checked  INTEGER,
        missing_since INTEGER,
        silent_since  INTEGER,
        last_alarm    INTEGER,
        alarm_count   INTEGER NOT NULL,
        due_at        INTEGER,
        version       INTEGER NOT NULL,
        outbox        TEXT,
        message       TEXT,
        report        TEXT
    ) WITHOUT ROWID;
    CREATE INDEX hosts_due ON hosts (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE silences (
        id   TEXT PRIMARY KEY NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE monitor_mark (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        last_run   INTEGER,
        down_from  INTEGER,
        down_until INTEGER
    );
    INSERT INTO monitor_mark (id) VALUES (1);",
    // 2: a host's job state (a reported failure, open runs, the last run)
    // and each host's bounded event log.
    "ALTER TABLE hosts ADD COLUMN job TEXT;
    CREATE TABLE events (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX events_host ON events (host, seq);",
    // 3: the group (site) a host belongs to (NULL for rows written before),
    // and one row per group with an outage in progress: its state as JSON,
    // a compare-and-swap version and the instant it next needs the sweep.
    "ALTER TABLE hosts ADD COLUMN group_name TEXT;
    CREATE TABLE groups (
        name    TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL,
        due_at  INTEGER,
        body    TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX groups_due ON groups (due_at) WHERE due_at IS NOT NULL;",
    // 4: a policy set for one host through the API (a timeout or a cron
    // schedule), as JSON; NULL means the configuration's policy applies.
    "ALTER TABLE hosts ADD COLUMN policy TEXT;",
    // 5: a host's recent outage starts (flips) and its flapping episode,
    // as JSON; each NULL when it has none. The heartbeat keeps `due_at`
    // while `flapping` is set (the monitor armed it for the stable time).
    "ALTER TABLE hosts ADD COLUMN flips TEXT;
    ALTER TABLE hosts ADD COLUMN flapping TEXT;",
    // 6: a host's heartbeat interval (see `iamalive_core::beat`): the one
    // its latest beat sent and the last two gaps between its beats, in
    // milliseconds (NULL for none), written by the heartbeat's own UPDATE;
    // and the hosts of a group by an index on it, read only when a group
    // decides its outage (hosts past their expected beat are evidence).
    "ALTER TABLE hosts ADD COLUMN interval_ms INTEGER;
    ALTER TABLE hosts ADD COLUMN gap_ms INTEGER;
    ALTER TABLE hosts ADD COLUMN prev_gap_ms INTEGER;
    CREATE INDEX hosts_group ON hosts (group_name) WHERE group_name IS NOT NULL;",
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The file was written by a newer build.
    TooNew(i64),
    /// SQLite failed.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

/// Brings the schema up to [`LATEST`] in one write transaction, so several
/// processes opening a new file at once migrate it exactly once.
pub(crate) fn migrate(conn: &Connection) -> Result<i64, MigrateError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > LATEST {
            return Err(MigrateError::TooNew(current));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        Ok(current)
    })();
    match result {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
