//! Group outage records: one row per group in `groups` (migration 3), its
//! state as JSON, swapped with compare-and-swap on `version`, indexed by
//! `due_at` like the hosts.

use iamalive_core::{GroupName, GroupRecord, StoreError, Timestamp, encode_json};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{from_ts, opt_ts, ts};
use crate::{STORE, SqliteStore, sqlite_error};

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::corrupt(STORE, format!("groups.{key}"), reason)
}

fn decode(name: &str, version: i64, body: &str) -> Result<GroupRecord, StoreError> {
    let mut g: GroupRecord = serde_json::from_str(body)
        .map_err(|e| corrupt(name, format!("not a group record: {e}")))?;
    g.version = u64::try_from(version).map_err(|_| corrupt(name, "negative version"))?;
    Ok(g)
}

/// A group record as its row holds it, encoded before it goes to the
/// writer thread (a site's record is about 1 MB of JSON at 10,000 hosts;
/// encoding it there held up every other write).
struct GroupRow {
    name: String,
    version: i64,
    due: Option<i64>,
    body: String,
}

impl GroupRow {
    fn encode(next: &GroupRecord) -> Result<Self, StoreError> {
        let name = next.group.as_str();
        Ok(Self {
            body: encode_json(STORE, "group record", next)?,
            version: i64::try_from(next.version).map_err(|_| corrupt(name, "version too large"))?,
            due: opt_ts(next.due_at),
            name: name.to_owned(),
        })
    }
}

fn swap(conn: &Connection, expected: u64, next: &GroupRow) -> Result<bool, StoreError> {
    let GroupRow {
        name,
        version,
        due,
        body,
    } = next;
    let expected = i64::try_from(expected).map_err(|_| corrupt(name, "version too large"))?;
    let changed = if expected == 0 {
        conn.prepare_cached(
            "INSERT INTO groups (name, version, due_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![name, version, due, body]))
    } else {
        conn.prepare_cached(
            "UPDATE groups SET version = ?2, due_at = ?3, body = ?4
             WHERE name = ?1 AND version = ?5",
        )
        .and_then(|mut s| s.execute(params![name, version, due, body, expected]))
    }
    .map_err(sqlite_error)?;
    Ok(changed == 1)
}

impl SqliteStore {
    pub(crate) async fn group(&self, g: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        let name = g.as_str().to_owned();
        self.read(move |conn| {
            let row: Option<(i64, String)> = conn
                .prepare_cached("SELECT version, body FROM groups WHERE name = ?1")
                .and_then(|mut s| {
                    s.query_row([&name], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sqlite_error)?;
            row.map(|(v, body)| decode(&name, v, &body)).transpose()
        })
        .await
    }

    pub(crate) async fn group_version_of(&self, g: &GroupName) -> Result<u64, StoreError> {
        let name = g.as_str().to_owned();
        self.read(move |conn| {
            let v: Option<i64> = conn
                .prepare_cached("SELECT version FROM groups WHERE name = ?1")
                .and_then(|mut s| s.query_row([&name], |r| r.get(0)).optional())
                .map_err(sqlite_error)?;
            v.map_or(Ok(0), |v| {
                u64::try_from(v).map_err(|_| corrupt(&name, "negative version"))
            })
        })
        .await
    }

    pub(crate) async fn swap_group_row(
        &self,
        expected: u64,
        next: &GroupRecord,
    ) -> Result<bool, StoreError> {
        let row = GroupRow::encode(next)?;
        self.write(move |conn| swap(conn, expected, &row)).await
    }

    /// How many hosts there are: `COUNT(*)`, which SQLite answers from
    /// its smallest index without reading a row. Asked only when the
    /// watcher's own record ends a gathering (a suspected blind spot),
    /// never per sweep.
    pub(crate) async fn count_hosts(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM hosts")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(sqlite_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    pub(crate) async fn groups_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, version, body FROM groups
                     WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )
                .map_err(sqlite_error)?;
            let rows = stmt
                .query_map(params![ts(now), limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(sqlite_error)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, v, body) = row.map_err(sqlite_error)?;
                out.push(decode(&name, v, &body)?);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn group_next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT due_at FROM groups WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
            .map(|v| v.map(from_ts))
            .map_err(sqlite_error)
        })
        .await
    }
}
