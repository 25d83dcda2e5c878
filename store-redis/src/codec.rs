//! Host records as Redis hash fields, readable with `redis-cli HGETALL`.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use iamalive_core::{
    Downtime, GroupName, HostId, HostRecord, MonitorMark, Status, StoreError, Timestamp,
    encode_json,
};

use crate::STORE;

/// RFC 3339 in UTC with exactly nine fractional digits: fixed width (for
/// years 0–9999), so the heartbeat script compares instants as strings.
pub(crate) fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An instant as [`ts`] writes it, formatted without allocating for the
/// years 0–9999 (the heartbeat's hot path).
pub(crate) enum TsArg {
    /// The 30 bytes `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    Fixed([u8; 30]),
    /// Anything else (years past 9999, leap seconds), as [`ts`] gives it.
    Other(String),
}

impl TsArg {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Fixed(b) => b,
            Self::Other(s) => s.as_bytes(),
        }
    }
}

/// [`ts`] into a [`TsArg`].
pub(crate) fn ts_arg(t: Timestamp) -> TsArg {
    let (year, ns) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || ns >= 1_000_000_000 {
        return TsArg::Other(ts(t));
    }
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 9, ns);
    TsArg::Fixed(b)
}

/// The up-hash entry of a record: `due_at`, `last_seen` (30 bytes each),
/// then, comma-separated, `version`, `last_seen` again as whole
/// milliseconds and the nanoseconds past them (six digits, so the
/// heartbeat script learns a gap with one subtraction and one string
/// comparison), and the interval's `sent`,
/// `gap` and `prev_gap` in milliseconds (0 for unknown); `None` when the
/// record must have none (not up, a notice owed, no `due_at`, or an
/// instant outside the years 0–9999).
pub(crate) fn up_entry(rec: &HostRecord) -> Option<String> {
    if rec.status != Status::Up || rec.outbox.is_some() {
        return None;
    }
    let (due, seen) = (ts(rec.due_at?), ts(rec.last_seen));
    let (d, s) = crate::scripts::UP_ENTRY;
    let (ms, sub) = split_ms(rec.last_seen);
    let i = &rec.interval;
    (due.len() == d && seen.len() == s - d).then(|| {
        format!(
            "{due}{seen}{},{ms},{sub:06},{},{},{}",
            rec.version, i.sent_ms, i.gap_ms, i.prev_gap_ms
        )
    })
}

/// An instant as whole milliseconds (its score) and the nanoseconds past
/// them, below 1,000,000.
pub(crate) fn split_ms(t: Timestamp) -> (i64, u32) {
    (score(t), t.timestamp_subsec_nanos() % 1_000_000)
}

/// Applies a host's up-hash entry to its record read from the hash: while
/// the entry exists, its `version`, `last_seen` and interval are the true
/// ones. An entry written before it carried the interval (`version`
/// alone after the two instants) leaves the hash's interval in place.
pub(crate) fn merge_up(key: &str, rec: &mut HostRecord, entry: &str) -> Result<(), StoreError> {
    let (d, s) = crate::scripts::UP_ENTRY;
    let (Some(seen), Some(tail)) = (entry.get(d..s), entry.get(s..)) else {
        return Err(corrupt(key, format!("up entry {entry:?}")));
    };
    let bad = |what: &str| corrupt(key, format!("up entry {entry:?}: {what}"));
    // Read on every get, due and list: split without collecting.
    let mut parts = tail.split(',');
    let version = parts.next().unwrap_or_default();
    let version = version.parse().map_err(|e| bad(&format!("version: {e}")))?;
    let rest: [Option<&str>; 6] = std::array::from_fn(|_| parts.next());
    match rest {
        [None, ..] => {}
        [
            Some(_ms),
            Some(_sub),
            Some(sent),
            Some(gap),
            Some(prev),
            None,
        ] => {
            let ms = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| bad(&format!("interval {v:?}: {e}")))
            };
            rec.interval = iamalive_core::beat::Interval {
                sent_ms: ms(sent)?,
                gap_ms: ms(gap)?,
                prev_gap_ms: ms(prev)?,
            };
        }
        _ => return Err(bad("fields")),
    }
    rec.last_seen = parse_ts(key, "up last_seen", seen)?;
    rec.version = version;
    Ok(())
}

/// The sorted-set score of an instant: whole milliseconds, rounded down
/// (a score is never later than the instant it stands for).
pub(crate) fn score(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The instant a score stands for (at or before the true instant).
pub(crate) fn from_score(s: f64) -> Option<Timestamp> {
    DateTime::from_timestamp_millis(s.floor() as i64)
}

pub(crate) fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::corrupt(STORE, key, reason)
}

fn parse_ts(key: &str, field: &str, v: &str) -> Result<Timestamp, StoreError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        // Years past 9999 (a saturated "never") carry a sign RFC 3339 lacks.
        .or_else(|_| v.parse::<DateTime<Utc>>())
        .map_err(|e| corrupt(key, format!("field {field} = {v:?}: {e}")))
}

/// The field/value pairs of a record; `None` fields are left out.
pub(crate) fn encode(rec: &HostRecord) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut f = vec![
        ("host", rec.host.as_str().to_owned()),
        ("status", rec.status.as_str().to_owned()),
        ("last_seen", ts(rec.last_seen)),
        ("watch_from", ts(rec.watch_from)),
        ("alarm_count", rec.alarm_count.to_string()),
        ("version", rec.version.to_string()),
    ];
    let opt = [
        ("last_checked", rec.last_checked),
        ("missing_since", rec.missing_since),
        ("silent_since", rec.silent_since),
        ("last_alarm", rec.last_alarm),
        ("due_at", rec.due_at),
    ];
    f.extend(opt.into_iter().filter_map(|(k, v)| Some((k, ts(v?)))));
    if let Some(o) = &rec.outbox {
        let json = encode_json(STORE, format_args!("outbox of {}", rec.host), o)?;
        f.push(("outbox", json));
    }
    if let Some(m) = &rec.message {
        f.push(("message", m.clone()));
    }
    if let Some(r) = &rec.report {
        f.push(("report", r.clone()));
    }
    if let Some(g) = &rec.group {
        f.push(("group", g.as_str().to_owned()));
    }
    if let Some(j) = &rec.job {
        let json = encode_json(STORE, format_args!("job state of {}", rec.host), j)?;
        f.push(("job", json));
    }
    if let Some(p) = &rec.policy {
        let json = encode_json(STORE, format_args!("policy of {}", rec.host), p)?;
        f.push(("policy", json));
    }
    // Two fields: the heartbeat script keeps `due_at` while `flapping` is
    // there.
    let (flips, flapping) = iamalive_core::flap::to_stored(rec.flap.as_deref()).map_err(|e| {
        StoreError::InvalidInput {
            store: STORE,
            reason: format!("flip history of {} cannot be encoded: {e}", rec.host),
        }
    })?;
    f.extend(flips.map(|j| ("flips", j)));
    f.extend(flapping.map(|j| ("flapping", j)));
    // The interval in milliseconds, each field only when known.
    let i = &rec.interval;
    for (name, ms) in [
        ("interval", i.sent_ms),
        ("gap", i.gap_ms),
        ("prev_gap", i.prev_gap_ms),
    ] {
        if ms > 0 {
            f.push((name, ms.to_string()));
        }
    }
    Ok(f)
}

/// A record from its hash; `None` for an empty hash (an absent key).
pub(crate) fn decode(
    key: &str,
    mut m: HashMap<String, String>,
) -> Result<Option<HostRecord>, StoreError> {
    if m.is_empty() {
        return Ok(None);
    }
    let mut take = |f: &str| m.remove(f);
    let need = |f: &str, v: Option<String>| v.ok_or_else(|| corrupt(key, format!("no field {f}")));
    let host = need("host", take("host"))?;
    let host = HostId::new(&host).map_err(|e| corrupt(key, format!("host {host:?}: {e}")))?;
    let status = need("status", take("status"))?;
    let status =
        Status::parse(&status).ok_or_else(|| corrupt(key, format!("status {status:?}")))?;
    let req_ts = |f: &str, v: Option<String>| parse_ts(key, f, &need(f, v)?);
    let opt_ts = |f: &str, v: Option<String>| v.map(|v| parse_ts(key, f, &v)).transpose();
    let last_seen = req_ts("last_seen", take("last_seen"))?;
    let watch_from = req_ts("watch_from", take("watch_from"))?;
    let last_checked = opt_ts("last_checked", take("last_checked"))?;
    let missing_since = opt_ts("missing_since", take("missing_since"))?;
    let silent_since = opt_ts("silent_since", take("silent_since"))?;
    let last_alarm = opt_ts("last_alarm", take("last_alarm"))?;
    let due_at = opt_ts("due_at", take("due_at"))?;
    let alarm_count = need("alarm_count", take("alarm_count"))?;
    let alarm_count = alarm_count
        .parse()
        .map_err(|e| corrupt(key, format!("alarm_count {alarm_count:?}: {e}")))?;
    let version = need("version", take("version"))?;
    let version = version
        .parse()
        .map_err(|e| corrupt(key, format!("version {version:?}: {e}")))?;
    let outbox = take("outbox")
        .map(|j| serde_json::from_str(&j).map_err(|e| corrupt(key, format!("outbox: {e}"))))
        .transpose()?;
    // Absent in hashes written before groups existed.
    let group = take("group")
        .map(|g| GroupName::new(&g).map_err(|e| corrupt(key, format!("group {g:?}: {e}"))))
        .transpose()?;
    let job = take("job")
        .map(|j| serde_json::from_str(&j).map_err(|e| corrupt(key, format!("job: {e}"))))
        .transpose()?;
    let policy = take("policy")
        .map(|j| serde_json::from_str(&j).map_err(|e| corrupt(key, format!("policy: {e}"))))
        .transpose()?
        .map(Box::new);
    // Absent until the host's first outage (and in hashes written before
    // flapping existed).
    let flap =
        iamalive_core::flap::from_stored(take("flips").as_deref(), take("flapping").as_deref())
            .map_err(|e| corrupt(key, e))?;
    // Absent in hashes written before intervals were kept.
    let mut ms = |f: &str| -> Result<u64, StoreError> {
        take(f).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|e| corrupt(key, format!("{f} {v:?}: {e}")))
        })
    };
    let interval = iamalive_core::beat::Interval {
        sent_ms: ms("interval")?,
        gap_ms: ms("gap")?,
        prev_gap_ms: ms("prev_gap")?,
    };
    Ok(Some(HostRecord {
        interval,
        host,
        status,
        last_seen,
        watch_from,
        last_checked,
        missing_since,
        silent_since,
        last_alarm,
        alarm_count,
        due_at,
        version,
        outbox,
        message: take("message"),
        report: take("report"),
        group,
        job,
        policy,
        flap,
    }))
}

/// The monitors' mark and its version (0 when absent).
pub(crate) fn decode_mark(
    key: &str,
    m: &HashMap<String, String>,
) -> Result<(MonitorMark, u64), StoreError> {
    let get = |f: &str| m.get(f).map(|v| parse_ts(key, f, v)).transpose();
    let version = match m.get("version") {
        Some(v) => v
            .parse()
            .map_err(|e| corrupt(key, format!("version {v:?}: {e}")))?,
        None => 0,
    };
    let downtime = match (get("downtime_from")?, get("downtime_until")?) {
        (Some(from), Some(until)) => Some(Downtime { from, until }),
        _ => None,
    };
    Ok((
        MonitorMark {
            last_run: get("last_run")?,
            downtime,
        },
        version,
    ))
}

/// The field/value pairs of a mark (without its version).
pub(crate) fn encode_mark(mark: &MonitorMark) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    if let Some(t) = mark.last_run {
        f.push(("last_run", ts(t)));
    }
    if let Some(d) = mark.downtime {
        f.push(("downtime_from", ts(d.from)));
        f.push(("downtime_until", ts(d.until)));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        let a = DateTime::from_timestamp_millis(1_767_225_600_001).unwrap();
        let b = DateTime::from_timestamp(1_767_225_600, 123_456_789).unwrap();
        assert_eq!(ts(a).len(), ts(b).len());
        assert!(ts(a) < ts(b), "{} {}", ts(a), ts(b));
        for t in [a, b, DateTime::UNIX_EPOCH, DateTime::<Utc>::MAX_UTC] {
            assert_eq!(parse_ts("k", "f", &ts(t)).unwrap(), t, "{}", ts(t));
        }
        let back = from_score(score(b) as f64).unwrap();
        assert!(back <= b && b - back < chrono::TimeDelta::milliseconds(1));
    }

    #[test]
    fn fast_timestamps_match_rfc3339() {
        let mut t = DateTime::from_timestamp(0, 0).unwrap();
        let step = chrono::TimeDelta::nanoseconds(7_919_000_123_457);
        for _ in 0..300_000 {
            assert_eq!(ts_arg(t).as_bytes(), ts(t).as_bytes());
            t += step;
        }
        for t in [
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
            DateTime::from_timestamp(1_767_225_599, 999_999_999).unwrap(),
        ] {
            assert_eq!(ts_arg(t).as_bytes(), ts(t).as_bytes());
        }
        assert!(matches!(ts_arg(DateTime::<Utc>::MAX_UTC), TsArg::Other(_)));
    }

    #[test]
    fn up_entries_round_trip() {
        let t = DateTime::from_timestamp(1_767_225_600, 5).unwrap();
        let mut r = HostRecord::new(HostId::new("a-1").unwrap(), t, std::time::Duration::ZERO);
        r.version = 42;
        r.interval.gap_ms = 60_000;
        r.interval.prev_gap_ms = 59_999;
        let e = up_entry(&r).unwrap();
        assert_eq!(
            &e[60..],
            "42,1767225600000,000005,0,60000,59999",
            "version, last_seen in ms and ns past them, the interval"
        );
        let mut back = r.clone();
        back.version = 1;
        back.last_seen = DateTime::UNIX_EPOCH;
        back.interval = Default::default();
        merge_up("k", &mut back, &e).unwrap();
        assert_eq!(back, r);
        r.status = Status::Missing;
        assert_eq!(up_entry(&r), None);
        assert!(merge_up("k", &mut back, "short").is_err());
        let bad = format!("{}7,1,2,3", &e[..60]);
        assert!(merge_up("k", &mut back, &bad).is_err(), "{bad}");
        let long = format!("{e},9");
        assert!(merge_up("k", &mut back, &long).is_err(), "{long}");
    }

    /// An entry written before entries carried the interval: its version
    /// and `last_seen` apply, the interval read from the hash stays.
    #[test]
    fn an_entry_without_the_interval_keeps_the_hashs() {
        let t = DateTime::from_timestamp(1_767_225_600, 5).unwrap();
        let mut r = HostRecord::new(HostId::new("a-1").unwrap(), t, std::time::Duration::ZERO);
        r.interval.sent_ms = 30_000;
        let old = format!("{}9", &up_entry(&r).unwrap()[..60]);
        merge_up("k", &mut r, &old).unwrap();
        assert_eq!((r.version, r.interval.sent_ms), (9, 30_000));
    }

    #[test]
    fn split_ms_adds_back_up_to_the_instant() {
        for (secs, ns) in [
            (1_767_225_600, 5),
            (1_767_225_600, 999_999_999),
            (-1, 1_500_000),
        ] {
            let t = DateTime::from_timestamp(secs, ns).unwrap();
            let (ms, sub) = split_ms(t);
            let back = DateTime::from_timestamp_millis(ms).unwrap()
                + chrono::TimeDelta::nanoseconds(i64::from(sub));
            assert_eq!(back, t, "{secs} {ns}");
            assert!(sub < 1_000_000);
        }
    }

    #[test]
    fn records_round_trip() {
        let t = DateTime::from_timestamp(1_767_225_600, 5).unwrap();
        let mut r = HostRecord::new(HostId::new("a-1").unwrap(), t, std::time::Duration::ZERO);
        r.message = Some(String::new());
        r.due_at = None;
        let m = encode(&r).unwrap();
        let m = m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(decode("k", m).unwrap().unwrap(), r);
        assert_eq!(decode("k", HashMap::new()).unwrap(), None);
    }
}
