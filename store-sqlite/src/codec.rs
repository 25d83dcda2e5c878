//! Rows to records and back: timestamps, statuses and the outbox as JSON.

use chrono::{DateTime, Utc};
use iamalive_core::beat::Interval;
use iamalive_core::{
    GroupName, HostId, HostRecord, MonitorMark, Outbox, Status, StoreError, Timestamp, encode_json,
};
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::STORE;

/// The columns of `hosts`, in the order [`record_from_row`] reads them.
pub(crate) const COLS: &str = "host, status, last_seen, watch_from, last_checked, \
     missing_since, silent_since, last_alarm, alarm_count, due_at, version, outbox, message, report, job, \
     policy, group_name, flips, flapping, interval_ms, gap_ms, prev_gap_ms";

/// An instant as integer nanoseconds since the Unix epoch.
///
/// Instants outside the years 1677–2262 saturate to `i64::MIN`/`i64::MAX`,
/// which read back as chrono's `MIN_UTC`/`MAX_UTC` (the values
/// `iamalive_core::add` saturates to), so those round-trip exactly.
pub(crate) fn ts(t: Timestamp) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() > 0 {
        i64::MAX
    } else {
        i64::MIN
    })
}

/// The inverse of [`ts`].
pub(crate) fn from_ts(n: i64) -> Timestamp {
    match n {
        i64::MAX => DateTime::<Utc>::MAX_UTC,
        i64::MIN => DateTime::<Utc>::MIN_UTC,
        n => DateTime::from_timestamp_nanos(n),
    }
}

/// An optional instant for a nullable column.
pub(crate) fn opt_ts(t: Option<Timestamp>) -> Option<i64> {
    t.map(ts)
}

/// A version as SQLite's signed integer.
pub(crate) fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput {
        store: STORE,
        reason: format!("version {v} does not fit a signed 64-bit integer"),
    })
}

/// The outbox as JSON text.
pub(crate) fn outbox_json(o: Option<&Outbox>) -> Result<Option<String>, StoreError> {
    o.map(|o| encode_json(STORE, "outbox", o)).transpose()
}

/// The job state as JSON text.
pub(crate) fn job_json(j: Option<&iamalive_core::job::Job>) -> Result<Option<String>, StoreError> {
    j.map(|j| encode_json(STORE, "job state", j)).transpose()
}

/// A host's stored policy as JSON text.
pub(crate) fn policy_json(
    p: Option<&iamalive_core::HostPolicy>,
) -> Result<Option<String>, StoreError> {
    p.map(|p| encode_json(STORE, "policy", p)).transpose()
}

/// A host's flip history and flapping episode as the JSON text of the
/// `flips` and `flapping` columns.
pub(crate) fn flap_json(
    f: Option<&iamalive_core::flap::Flap>,
) -> Result<(Option<String>, Option<String>), StoreError> {
    iamalive_core::flap::to_stored(f).map_err(|e| {
        StoreError::invalid_input(STORE, format!("flip history cannot be encoded: {e}"))
    })
}

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::corrupt(STORE, key, reason)
}

fn value<'a>(
    row: &'a Row<'_>,
    idx: usize,
    key: &str,
    name: &str,
) -> Result<ValueRef<'a>, StoreError> {
    row.get_ref(idx)
        .map_err(|e| corrupt(key, format!("column {name}: {e}")))
}

fn int(row: &Row<'_>, idx: usize, key: &str, name: &str) -> Result<i64, StoreError> {
    opt_int(row, idx, key, name)?.ok_or_else(|| corrupt(key, format!("{name} is NULL")))
}

fn opt_int(row: &Row<'_>, idx: usize, key: &str, name: &str) -> Result<Option<i64>, StoreError> {
    match value(row, idx, key, name)? {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(i) => Ok(Some(i)),
        other => Err(corrupt(
            key,
            format!("{name} should be an integer, found {}", other.data_type()),
        )),
    }
}

fn opt_text(
    row: &Row<'_>,
    idx: usize,
    key: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    match value(row, idx, key, name)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Some(s.to_owned()))
            .map_err(|e| corrupt(key, format!("{name} is not UTF-8: {e}"))),
        other => Err(corrupt(
            key,
            format!("{name} should be text, found {}", other.data_type()),
        )),
    }
}

/// A status as stored.
pub(crate) fn status(s: &str, key: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| corrupt(key, format!("unknown status {s:?}")))
}

/// Reads one `hosts` row selected with [`COLS`]; anything malformed is
/// [`StoreError::Corrupt`] naming the row.
pub(crate) fn record_from_row(row: &Row<'_>) -> Result<HostRecord, StoreError> {
    let key = match row.get_ref(0) {
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Ok(other) => format!("<host of type {}>", other.data_type()),
        Err(e) => return Err(corrupt("<unknown host>", e.to_string())),
    };
    let key = key.as_str();
    let host = HostId::new(key).map_err(|e| corrupt(key, format!("host: {e}")))?;
    if host.as_str() != key {
        return Err(corrupt(key, "host id is not in canonical (lowercase) form"));
    }
    let status_text =
        opt_text(row, 1, key, "status")?.ok_or_else(|| corrupt(key, "status is NULL"))?;
    let alarm_count = int(row, 8, key, "alarm_count")?;
    let version = int(row, 10, key, "version")?;
    let outbox = match opt_text(row, 11, key, "outbox")? {
        None => None,
        Some(j) => Some(
            serde_json::from_str::<Outbox>(&j)
                .map_err(|e| corrupt(key, format!("outbox is not a valid notice: {e}")))?,
        ),
    };
    let job = match opt_text(row, 14, key, "job")? {
        None => None,
        Some(j) => Some(
            serde_json::from_str(&j)
                .map_err(|e| corrupt(key, format!("job is not valid job state: {e}")))?,
        ),
    };
    let policy = match opt_text(row, 15, key, "policy")? {
        None => None,
        Some(j) => Some(Box::new(serde_json::from_str(&j).map_err(|e| {
            corrupt(key, format!("policy is not a valid policy: {e}"))
        })?)),
    };
    Ok(HostRecord {
        status: status(&status_text, key)?,
        last_seen: from_ts(int(row, 2, key, "last_seen")?),
        watch_from: from_ts(int(row, 3, key, "watch_from")?),
        last_checked: opt_int(row, 4, key, "last_checked")?.map(from_ts),
        missing_since: opt_int(row, 5, key, "missing_since")?.map(from_ts),
        silent_since: opt_int(row, 6, key, "silent_since")?.map(from_ts),
        last_alarm: opt_int(row, 7, key, "last_alarm")?.map(from_ts),
        alarm_count: u32::try_from(alarm_count)
            .map_err(|_| corrupt(key, format!("alarm_count {alarm_count} is out of range")))?,
        due_at: opt_int(row, 9, key, "due_at")?.map(from_ts),
        version: u64::try_from(version)
            .map_err(|_| corrupt(key, format!("version {version} is negative")))?,
        outbox: outbox.map(Box::new),
        message: opt_text(row, 12, key, "message")?,
        report: opt_text(row, 13, key, "report")?,
        job,
        policy,
        group: match opt_text(row, 16, key, "group_name")? {
            None => None,
            Some(g) => Some(
                GroupName::new(&g).map_err(|e| corrupt(key, format!("group_name {g:?}: {e}")))?,
            ),
        },
        flap: iamalive_core::flap::from_stored(
            opt_text(row, 17, key, "flips")?.as_deref(),
            opt_text(row, 18, key, "flapping")?.as_deref(),
        )
        .map_err(|e| corrupt(key, e))?,
        interval: Interval {
            sent_ms: ms_col(row, 19, key, "interval_ms")?,
            gap_ms: ms_col(row, 20, key, "gap_ms")?,
            prev_gap_ms: ms_col(row, 21, key, "prev_gap_ms")?,
        },
        host,
    })
}

/// A host's interval as its three nullable columns (`interval_ms`,
/// `gap_ms`, `prev_gap_ms`; NULL for none).
pub(crate) fn interval_cols(i: &Interval) -> [Option<i64>; 3] {
    let col = |ms: u64| (ms > 0).then(|| i64::try_from(ms).unwrap_or(i64::MAX));
    [col(i.sent_ms), col(i.gap_ms), col(i.prev_gap_ms)]
}

fn ms_col(row: &Row<'_>, idx: usize, key: &str, name: &str) -> Result<u64, StoreError> {
    Ok(opt_int(row, idx, key, name)?.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Reads the `monitor_mark` row (`last_run, down_from, down_until`).
pub(crate) fn mark_from_row(row: &Row<'_>) -> Result<MonitorMark, StoreError> {
    let key = "monitor_mark";
    let last_run = opt_int(row, 0, key, "last_run")?.map(from_ts);
    let from = opt_int(row, 1, key, "down_from")?.map(from_ts);
    let until = opt_int(row, 2, key, "down_until")?.map(from_ts);
    Ok(MonitorMark {
        last_run,
        downtime: from
            .zip(until)
            .map(|(from, until)| iamalive_core::Downtime { from, until }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_saturated_ends() {
        for t in [
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
            DateTime::from_timestamp_nanos(0),
            DateTime::from_timestamp_nanos(1_767_225_600_123_456_789),
            DateTime::from_timestamp_nanos(-5),
        ] {
            assert_eq!(from_ts(ts(t)), t);
        }
        // Order is kept, so the due index sorts correctly.
        let a = DateTime::from_timestamp_nanos(1_000);
        assert!(ts(a) < ts(DateTime::<Utc>::MAX_UTC));
        assert!(ts(DateTime::<Utc>::MIN_UTC) < ts(a));
    }
}
