//! Host records to DynamoDB items and back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use iamalive_core::{
    Downtime, GroupName, HostId, HostRecord, MonitorMark, Outbox, Status, Timestamp,
};

use crate::STORE;
use iamalive_core::{StoreError, encode_json};

/// One item as the SDK sees it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Partition key: the host id (or a reserved key starting with `#`).
pub(crate) const PK: &str = "server";
/// Due index partition key: the write shard.
pub(crate) const DUE_SHARD: &str = "dueShard";
/// Due index sort key: epoch milliseconds.
pub(crate) const DUE_AT: &str = "dueAt";
/// The compare-and-swap token.
pub(crate) const VERSION: &str = "version";

pub(crate) const STATUS: &str = "status";
pub(crate) const LAST_SEEN: &str = "lastSeen";
pub(crate) const WATCH_FROM: &str = "watchFrom";
pub(crate) const LAST_CHECKED: &str = "lastChecked";
pub(crate) const MISSING_SINCE: &str = "missingSince";
pub(crate) const SILENT_SINCE: &str = "silentSince";
pub(crate) const LAST_ALARM: &str = "lastAlarm";
pub(crate) const ALARM_COUNT: &str = "alarmCount";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const MESSAGE: &str = "message";
pub(crate) const REPORT: &str = "report";
/// The host's group (site); absent on items written before groups existed.
pub(crate) const GROUP: &str = "group";
pub(crate) const JOB: &str = "job";
/// A host's stored policy (set through the API), as JSON.
pub(crate) const POLICY: &str = "policy";
/// A host's recent outage starts, as JSON (bounded by the flapping
/// setting: a few hundred bytes at most); absent when it has none.
pub(crate) const FLIPS: &str = "flips";
/// A host's flapping episode, as JSON; absent when it is not flapping
/// (the heartbeat's fast path requires it absent).
pub(crate) const FLAPPING: &str = "flapping";

/// The interval the host's latest beat sent, in milliseconds; absent when
/// it sent none (see `iamalive_core::beat`).
pub(crate) const INTERVAL: &str = "interval";
/// The gap before the host's latest beat, in milliseconds (the fast path
/// writes `:at - lastSeen`, so it may have decimals); absent when unknown.
pub(crate) const GAP: &str = "gap";
/// The gap before that one.
pub(crate) const PREV_GAP: &str = "prevGap";

/// The item holding every silence, one map entry per silence id.
pub(crate) const SILENCES_KEY: &str = "#silences";
/// The map attribute of [`SILENCES_KEY`].
pub(crate) const SILENCES: &str = "silences";
/// The item holding the monitors' mark.
pub(crate) const MARK_KEY: &str = "#mark";
pub(crate) const LAST_RUN: &str = "lastRun";
pub(crate) const DOWNTIME_FROM: &str = "downtimeFrom";
pub(crate) const DOWNTIME_UNTIL: &str = "downtimeUntil";

/// An instant as epoch milliseconds, with up to six decimals when it is not
/// a whole millisecond, so it round-trips to the nanosecond and sorts as a
/// DynamoDB Number.
pub(crate) fn millis(t: Timestamp) -> String {
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (ms, frac) = (abs / 1_000_000, abs % 1_000_000);
    if frac == 0 {
        format!("{sign}{ms}")
    } else {
        let f = format!("{frac:06}");
        format!("{sign}{ms}.{}", f.trim_end_matches('0'))
    }
}

/// Parses [`millis`]'s output (any decimal number of milliseconds).
pub(crate) fn parse_millis(s: &str) -> Option<Timestamp> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i128 = whole.parse().ok()?;
    let frac_nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let mut nanos = ms.checked_mul(1_000_000)?.checked_add(frac_nanos)?;
    if neg {
        nanos = -nanos;
    }
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    DateTime::<Utc>::from_timestamp(secs, sub)
}

/// A number attribute holding an instant.
pub(crate) fn n_time(t: Timestamp) -> AttributeValue {
    AttributeValue::N(millis(t))
}

/// The write shard of a host in the due index: FNV-1a of the id, so every
/// process and every version agrees on it.
pub(crate) fn shard_of(host: &str, shards: u16) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))).to_string()
}

/// The whole item for `rec`; `due_at == None` leaves the due attributes out
/// (sparse index).
pub(crate) fn to_item(rec: &HostRecord, shards: u16) -> Result<Item, StoreError> {
    let mut item = Item::new();
    let host = rec.host.as_str();
    item.insert(PK.into(), AttributeValue::S(host.into()));
    item.insert(STATUS.into(), AttributeValue::S(rec.status.as_str().into()));
    item.insert(LAST_SEEN.into(), n_time(rec.last_seen));
    item.insert(WATCH_FROM.into(), n_time(rec.watch_from));
    let opt = |item: &mut Item, k: &str, v: Option<Timestamp>| {
        if let Some(t) = v {
            item.insert(k.into(), n_time(t));
        }
    };
    opt(&mut item, LAST_CHECKED, rec.last_checked);
    opt(&mut item, MISSING_SINCE, rec.missing_since);
    opt(&mut item, SILENT_SINCE, rec.silent_since);
    opt(&mut item, LAST_ALARM, rec.last_alarm);
    item.insert(
        ALARM_COUNT.into(),
        AttributeValue::N(rec.alarm_count.to_string()),
    );
    if let Some(d) = rec.due_at {
        item.insert(DUE_AT.into(), n_time(d));
        item.insert(DUE_SHARD.into(), AttributeValue::S(shard_of(host, shards)));
    }
    item.insert(VERSION.into(), AttributeValue::N(rec.version.to_string()));
    if let Some(o) = &rec.outbox {
        let json = encode_json(STORE, format_args!("outbox of {host}"), o)?;
        item.insert(OUTBOX.into(), AttributeValue::S(json));
    }
    if let Some(m) = &rec.message {
        item.insert(MESSAGE.into(), AttributeValue::S(m.clone()));
    }
    if let Some(r) = &rec.report {
        item.insert(REPORT.into(), AttributeValue::S(r.clone()));
    }
    if let Some(g) = &rec.group {
        item.insert(GROUP.into(), AttributeValue::S(g.as_str().to_owned()));
    }
    if let Some(j) = &rec.job {
        let json = encode_json(STORE, format_args!("job state of {host}"), j)?;
        item.insert(JOB.into(), AttributeValue::S(json));
    }
    if let Some(p) = &rec.policy {
        let json = encode_json(STORE, format_args!("policy of {host}"), p)?;
        item.insert(POLICY.into(), AttributeValue::S(json));
    }
    let (flips, flapping) = iamalive_core::flap::to_stored(rec.flap.as_deref())
        .map_err(|e| StoreError::backend(STORE, e))?;
    if let Some(j) = flips {
        item.insert(FLIPS.into(), AttributeValue::S(j));
    }
    if let Some(j) = flapping {
        item.insert(FLAPPING.into(), AttributeValue::S(j));
    }
    let i = &rec.interval;
    for (name, ms) in [
        (INTERVAL, i.sent_ms),
        (GAP, i.gap_ms),
        (PREV_GAP, i.prev_gap_ms),
    ] {
        if ms > 0 {
            item.insert(name.into(), AttributeValue::N(ms.to_string()));
        }
    }
    Ok(item)
}

pub(crate) fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::corrupt(STORE, key, reason)
}

/// A string attribute, if present.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .map(String::as_str)
}

/// An optional instant attribute.
pub(crate) fn opt_time(
    item: &Item,
    key: &str,
    name: &str,
) -> Result<Option<Timestamp>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => parse_millis(n)
            .map(Some)
            .ok_or_else(|| corrupt(key, format!("{name} is not epoch milliseconds: {n:?}"))),
        Some(_) => Err(corrupt(key, format!("{name} is not a number"))),
    }
}

fn req_time(item: &Item, key: &str, name: &str) -> Result<Timestamp, StoreError> {
    opt_time(item, key, name)?.ok_or_else(|| corrupt(key, format!("{name} is missing")))
}

/// A required unsigned number attribute.
pub(crate) fn get_u64(item: &Item, key: &str, name: &str) -> Result<u64, StoreError> {
    let n = get_n(item, name).ok_or_else(|| corrupt(key, format!("{name} is missing")))?;
    n.parse()
        .map_err(|_| corrupt(key, format!("{name} is not an unsigned integer: {n:?}")))
}

/// A millisecond count attribute (0 when absent): whole milliseconds,
/// rounded down, at least 1 when positive (core's `beat::to_ms`).
fn get_ms(item: &Item, key: &str, name: &str) -> Result<u64, StoreError> {
    let Some(n) = get_n(item, name) else {
        return Ok(0);
    };
    let v: f64 = n
        .parse()
        .map_err(|_| corrupt(key, format!("{name} is not a number: {n:?}")))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(corrupt(key, format!("{name} is negative: {n:?}")));
    }
    let whole = v.floor() as u64;
    Ok(if whole == 0 && v > 0.0 { 1 } else { whole })
}

/// The record stored in `item`.
pub(crate) fn from_item(item: &Item) -> Result<HostRecord, StoreError> {
    let key = get_s(item, PK).ok_or_else(|| corrupt("?", "item has no server key"))?;
    let host = HostId::new(key).map_err(|e| corrupt(key, e.to_string()))?;
    let status = get_s(item, STATUS)
        .and_then(Status::parse)
        .ok_or_else(|| corrupt(key, "status is missing or unknown"))?;
    let outbox = match get_s(item, OUTBOX) {
        Some(json) => Some(
            serde_json::from_str::<Outbox>(json)
                .map_err(|e| corrupt(key, format!("outbox is not valid JSON: {e}")))?,
        ),
        None => None,
    };
    let job = match get_s(item, JOB) {
        Some(json) => Some(
            serde_json::from_str(json)
                .map_err(|e| corrupt(key, format!("job is not valid JSON: {e}")))?,
        ),
        None => None,
    };
    let policy = match get_s(item, POLICY) {
        Some(json) => {
            Some(Box::new(serde_json::from_str(json).map_err(|e| {
                corrupt(key, format!("policy is not a valid policy: {e}"))
            })?))
        }
        None => None,
    };
    let flap = iamalive_core::flap::from_stored(get_s(item, FLIPS), get_s(item, FLAPPING))
        .map_err(|e| corrupt(key, e))?;
    let alarm_count = get_u64(item, key, ALARM_COUNT)?;
    Ok(HostRecord {
        status,
        last_seen: req_time(item, key, LAST_SEEN)?,
        watch_from: req_time(item, key, WATCH_FROM)?,
        last_checked: opt_time(item, key, LAST_CHECKED)?,
        missing_since: opt_time(item, key, MISSING_SINCE)?,
        silent_since: opt_time(item, key, SILENT_SINCE)?,
        last_alarm: opt_time(item, key, LAST_ALARM)?,
        alarm_count: u32::try_from(alarm_count)
            .map_err(|_| corrupt(key, "alarmCount is out of range"))?,
        due_at: opt_time(item, key, DUE_AT)?,
        version: get_u64(item, key, VERSION)?,
        outbox: outbox.map(Box::new),
        message: get_s(item, MESSAGE).map(str::to_owned),
        report: get_s(item, REPORT).map(str::to_owned),
        group: get_s(item, GROUP)
            .map(|g| GroupName::new(g).map_err(|e| corrupt(key, format!("group {g:?}: {e}"))))
            .transpose()?,
        job,
        policy,
        flap,
        interval: iamalive_core::beat::Interval {
            sent_ms: get_ms(item, key, INTERVAL)?,
            gap_ms: get_ms(item, key, GAP)?,
            prev_gap_ms: get_ms(item, key, PREV_GAP)?,
        },
        host,
    })
}

/// The mark stored in the mark item (default when absent).
pub(crate) fn mark_from_item(item: &Item) -> Result<MonitorMark, StoreError> {
    let from = opt_time(item, MARK_KEY, DOWNTIME_FROM)?;
    let until = opt_time(item, MARK_KEY, DOWNTIME_UNTIL)?;
    Ok(MonitorMark {
        last_run: opt_time(item, MARK_KEY, LAST_RUN)?,
        downtime: from
            .zip(until)
            .map(|(from, until)| Downtime { from, until }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        for (secs, nanos) in [
            (0, 0),
            (1_700_000_000, 0),
            (1_700_000_000, 123_000_000),
            (1_700_000_000, 123_456_789),
            (-5, 500_000),
            (-1, 999_999_999),
        ] {
            let t = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
            let s = millis(t);
            assert_eq!(parse_millis(&s), Some(t), "{s}");
        }
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(parse_millis(&millis(max)), Some(max));
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(parse_millis(&millis(min)), Some(min));
        assert_eq!(
            millis(DateTime::<Utc>::from_timestamp(1, 5_000_000).unwrap()),
            "1005"
        );
        assert_eq!(
            millis(DateTime::<Utc>::from_timestamp(1, 5_500_000).unwrap()),
            "1005.5"
        );
    }

    #[test]
    fn millis_sort_as_numbers() {
        let a: f64 = millis(DateTime::<Utc>::from_timestamp(10, 1).unwrap())
            .parse()
            .unwrap();
        let b: f64 = millis(DateTime::<Utc>::from_timestamp(10, 2_000_000).unwrap())
            .parse()
            .unwrap();
        assert!(a < b);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard_of("build-01", 1), "0");
        let s: u16 = shard_of("build-01", 8).parse().unwrap();
        assert!(s < 8);
        assert_eq!(shard_of("build-01", 8), shard_of("build-01", 8));
    }

    #[test]
    fn record_round_trip() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 1).unwrap();
        let mut rec = HostRecord::new(
            HostId::new("a.b-c_d").unwrap(),
            t,
            std::time::Duration::from_secs(60),
        );
        rec.message = Some(String::new());
        rec.report = Some("{\"since\":1}".into());
        assert_eq!(from_item(&to_item(&rec, 4).unwrap()).unwrap(), rec);
        rec.due_at = None;
        let item = to_item(&rec, 4).unwrap();
        assert!(!item.contains_key(DUE_AT) && !item.contains_key(DUE_SHARD));
        assert_eq!(from_item(&item).unwrap(), rec);
    }
}
