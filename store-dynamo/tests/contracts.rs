//! The Store contracts, checked one by one against a real moto server, each
//! test in its own table.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use iamalive_core::{
    Heartbeat, HeartbeatOutcome, HostId, HostPattern, HostRecord, Silence, Status, Store, Timestamp,
};
use iamalive_store_dynamo::DynamoStore;
use iamalive_testkit::Server;

async fn store(moto: &Server, shards: u16) -> DynamoStore {
    let table = format!("iamalive-{}", uuid::Uuid::new_v4());
    let st = DynamoStore::new(common::client(moto), table).with_shards(shards);
    assert!(st.create_table_if_missing().await.unwrap());
    assert!(!st.create_table_if_missing().await.unwrap());
    st
}

fn t(ms: i64) -> Timestamp {
    DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

fn hb(host: &str, at: i64) -> Heartbeat {
    Heartbeat::new(h(host), t(at))
}

#[tokio::test]
async fn heartbeat_creates_updates_and_keeps_the_later_last_seen() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;

    assert_eq!(
        st.record_heartbeat(&hb("a", 0), t(10_000), false)
            .await
            .unwrap(),
        HeartbeatOutcome::Unknown
    );
    assert_eq!(st.get(&h("a")).await.unwrap(), None);

    let mut first = hb("a", 0);
    first.message = Some("hello".into());
    assert_eq!(
        st.record_heartbeat(&first, t(10_000), true).await.unwrap(),
        HeartbeatOutcome::Created
    );
    let rec = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
    assert_eq!(rec.last_seen, t(0));
    assert_eq!(rec.due_at, Some(t(10_000)));
    assert_eq!(rec.version, 1);
    assert_eq!(rec.message.as_deref(), Some("hello"));

    // The fast path: one UpdateItem. The stored due_at (10 s) lies in the
    // lazy window [5 s + 5 s, 15 s], so it is kept; tests/lazy.rs checks
    // the window in detail.
    assert_eq!(
        st.record_heartbeat(&hb("a", 5_000), t(15_000), true)
            .await
            .unwrap(),
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let rec = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!(
        (rec.last_seen, rec.due_at, rec.version),
        (t(5_000), Some(t(10_000)), 2)
    );
    assert_eq!(rec.message.as_deref(), Some("hello"), "kept when absent");

    // An older heartbeat arriving late bumps the version but never moves
    // last_seen back.
    let mut late = hb("a", 1_000);
    late.report = Some("{\"failed_attempts\":3}".into());
    assert_eq!(
        st.record_heartbeat(&late, t(11_000), true).await.unwrap(),
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let rec = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!(rec.last_seen, t(5_000));
    assert_eq!(rec.version, 3);
    assert_eq!(rec.report.as_deref(), Some("{\"failed_attempts\":3}"));
}

#[tokio::test]
async fn heartbeat_of_a_missing_host_makes_it_due_now_and_paused_stays_put() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    for (host, status) in [
        ("m", Status::Missing),
        ("al", Status::Alarmed),
        ("p", Status::Paused),
    ] {
        let mut rec = HostRecord::new(h(host), t(0), Duration::from_secs(10));
        rec.status = status;
        rec.missing_since = Some(t(10_000));
        rec.due_at = if status == Status::Paused {
            None
        } else {
            Some(t(70_000))
        };
        assert!(st.compare_and_swap(0, &rec).await.unwrap());
        assert_eq!(
            st.record_heartbeat(&hb(host, 30_000), t(40_000), true)
                .await
                .unwrap(),
            HeartbeatOutcome::Updated { status }
        );
        let got = st.get(&h(host)).await.unwrap().unwrap();
        assert_eq!(got.version, 2);
        assert_eq!(got.last_seen, t(30_000));
        assert_eq!(got.status, status, "the monitor decides the recovery");
        let want = if status == Status::Paused {
            None
        } else {
            Some(t(30_000))
        };
        assert_eq!(got.due_at, want, "{host}");
    }
    let due: Vec<String> = st
        .due(t(30_000), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.host.to_string())
        .collect();
    assert_eq!(due, ["al", "m"]);
}

#[tokio::test]
async fn concurrent_heartbeats_never_lose_a_bump() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = Arc::new(store(&moto, 4).await);
    assert_eq!(
        st.record_heartbeat(&hb("c", 0), t(10_000), true)
            .await
            .unwrap(),
        HeartbeatOutcome::Created
    );
    // Half of them hit the slow path (a missing host).
    let mut rec = st.get(&h("c")).await.unwrap().unwrap();
    rec.status = Status::Missing;
    rec.version = 2;
    assert!(st.compare_and_swap(1, &rec).await.unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let st = st.clone();
            tokio::spawn(
                async move { st.record_heartbeat(&hb("c", i * 10), t(99_000), true).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let got = st.get(&h("c")).await.unwrap().unwrap();
    assert_eq!(got.version, 22);
    assert_eq!(got.last_seen, t(190));
}

#[tokio::test]
async fn due_returns_only_due_records_earliest_first_across_shards() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 8).await;
    assert_eq!(st.next_due().await.unwrap(), None);
    assert!(st.due(t(1_000_000), 10).await.unwrap().is_empty());
    // 40 hosts due at 1000, 2000, ...; every fourth has nothing due.
    for i in 0..40i64 {
        let mut rec = HostRecord::new(h(&format!("host-{i:02}")), t(0), Duration::ZERO);
        rec.due_at = (i % 4 != 3).then(|| t((40 - i) * 1_000));
        assert!(st.compare_and_swap(0, &rec).await.unwrap());
    }
    assert_eq!(st.next_due().await.unwrap(), Some(t(2_000)));

    let due = st.due(t(10_000), 100).await.unwrap();
    let hosts: Vec<String> = due.iter().map(|r| r.host.to_string()).collect();
    // due_at <= 10_000 means i >= 30, minus i % 4 == 3 (31, 35, 39).
    assert_eq!(
        hosts,
        [
            "host-38", "host-37", "host-36", "host-34", "host-33", "host-32", "host-30"
        ]
    );
    let limited = st.due(t(10_000), 3).await.unwrap();
    assert_eq!(limited, due[..3].to_vec());
    assert!(st.due(t(1_999), 100).await.unwrap().is_empty());
    // Every record with a due_at is found, none without.
    let all = st.due(t(1_000_000), 1000).await.unwrap();
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0].due_at <= w[1].due_at));
}

#[tokio::test]
async fn compare_and_swap_is_conditional_and_moves_the_index() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    let mut rec = HostRecord::new(h("x"), t(0), Duration::from_secs(1));
    assert!(
        !st.compare_and_swap(1, &rec).await.unwrap(),
        "absent, expected 1"
    );
    assert!(st.compare_and_swap(0, &rec).await.unwrap());
    assert!(
        !st.compare_and_swap(0, &rec).await.unwrap(),
        "exists, expected 0"
    );
    assert_eq!(st.get(&h("x")).await.unwrap(), Some(rec.clone()));

    let mut next = rec.clone();
    next.version = 2;
    next.status = Status::Paused;
    next.due_at = None;
    assert!(!st.compare_and_swap(5, &next).await.unwrap());
    assert!(st.compare_and_swap(1, &next).await.unwrap());
    assert_eq!(st.get(&h("x")).await.unwrap(), Some(next.clone()));
    assert!(st.due(t(1_000_000), 10).await.unwrap().is_empty());
    assert_eq!(st.next_due().await.unwrap(), None);

    rec = next.clone();
    rec.version = 3;
    rec.due_at = Some(t(500));
    assert!(st.compare_and_swap(2, &rec).await.unwrap());
    assert_eq!(st.next_due().await.unwrap(), Some(t(500)));
    assert_eq!(st.due(t(500), 10).await.unwrap(), vec![rec]);

    // Racing swaps from one version: exactly one wins.
    let st = Arc::new(st);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let st = st.clone();
            tokio::spawn(async move {
                let mut r = st.get(&h("x")).await.unwrap().unwrap();
                r.alarm_count = i;
                r.version = 4;
                st.compare_and_swap(3, &r).await.unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn list_pages_in_host_order_and_remove_deletes() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    // Silences and the mark share the table; list must not show them.
    st.mark_run(t(0), Duration::from_secs(60)).await.unwrap();
    let sil = Silence::new("s1", HostPattern::any(), t(0), t(1_000), "x").unwrap();
    st.put_silence(&sil).await.unwrap();
    let mut names: Vec<String> = (0..25).map(|i| format!("n{:02}", (i * 7) % 25)).collect();
    for n in &names {
        st.record_heartbeat(&hb(n, 0), t(1_000), true)
            .await
            .unwrap();
    }
    names.sort();
    let mut seen = Vec::new();
    let mut after: Option<HostId> = None;
    loop {
        let page = st.list(after.as_ref(), 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|r| r.host.clone());
        seen.extend(page.into_iter().map(|r| r.host.to_string()));
    }
    assert_eq!(seen, names);

    assert!(st.remove(&h("n03")).await.unwrap());
    assert!(!st.remove(&h("n03")).await.unwrap());
    assert_eq!(st.get(&h("n03")).await.unwrap(), None);
    assert_eq!(st.list(None, 100).await.unwrap().len(), 24);
    assert_eq!(st.due(t(5_000), 100).await.unwrap().len(), 24);
}

#[tokio::test]
async fn silences_are_stored_replaced_and_removed() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    assert!(st.silences().await.unwrap().is_empty());
    assert!(!st.remove_silence("nope").await.unwrap());
    let a = Silence::new(
        "a",
        HostPattern::new("web-*").unwrap(),
        t(0),
        t(1_000),
        "deploy",
    )
    .unwrap();
    let b = Silence::new(
        "b.2#x",
        HostPattern::any(),
        t(0),
        t(2_000),
        "dots and hashes",
    )
    .unwrap();
    st.put_silence(&a).await.unwrap();
    st.put_silence(&b).await.unwrap();
    let a2 = Silence::new("a", HostPattern::any(), t(0), t(5_000), "longer").unwrap();
    st.put_silence(&a2).await.unwrap();
    let mut got = st.silences().await.unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, vec![a2, b.clone()]);
    assert!(st.remove_silence("a").await.unwrap());
    assert!(!st.remove_silence("a").await.unwrap());
    assert_eq!(st.silences().await.unwrap(), vec![b]);
}

#[tokio::test]
async fn mark_run_records_downtime_and_keeps_the_later_run() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = Arc::new(store(&moto, 4).await);
    let gap = Duration::from_secs(60);
    let m = st.mark_run(t(0), gap).await.unwrap();
    assert_eq!((m.last_run, m.downtime), (Some(t(0)), None));
    let m = st.mark_run(t(30_000), gap).await.unwrap();
    assert_eq!(m.downtime, None);
    let m = st.mark_run(t(500_000), gap).await.unwrap();
    let d = m.downtime.unwrap();
    assert_eq!((d.from, d.until), (t(30_000), t(500_000)));
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let st = st.clone();
            tokio::spawn(async move { st.mark_run(t(510_000 + i * 1_000), gap).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let m = st.mark_run(t(505_000), gap).await.unwrap();
    assert_eq!(m.last_run, Some(t(515_000)));
    assert_eq!(
        m.downtime.map(|d| d.until),
        Some(t(500_000)),
        "downtime kept"
    );
}

/// The layout an operator sees in the console, and the sparse index.
#[tokio::test]
async fn item_layout_and_sparse_index() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    st.record_heartbeat(&hb("web-01", 0), t(600_000), true)
        .await
        .unwrap();
    let mut paused = HostRecord::new(h("old"), t(0), Duration::ZERO);
    paused.status = Status::Paused;
    paused.due_at = None;
    assert!(st.compare_and_swap(0, &paused).await.unwrap());

    let item = st
        .client()
        .get_item()
        .table_name(st.table())
        .key("server", AttributeValue::S("web-01".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let names: HashSet<&str> = item.keys().map(String::as_str).collect();
    for want in [
        "server",
        "status",
        "lastSeen",
        "watchFrom",
        "alarmCount",
        "dueAt",
        "dueShard",
        "version",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    assert_eq!(item["status"], AttributeValue::S("up".into()));
    assert_eq!(
        item["lastSeen"],
        AttributeValue::N(t(0).timestamp_millis().to_string())
    );
    assert_eq!(
        item["dueAt"],
        AttributeValue::N(t(600_000).timestamp_millis().to_string())
    );

    // Only the host with a due_at is in the index.
    let in_index: Vec<String> = common::index_entries(&st)
        .await
        .into_iter()
        .map(|(server, _)| server)
        .collect();
    assert_eq!(in_index, ["web-01"]);
}

/// A group record of `n` members in an outage (each with its outage id
/// and a report): about 200 bytes of JSON a member.
fn big_group(n: usize) -> iamalive_core::GroupRecord {
    use iamalive_core::group_outage::{Fate, Member};
    let mut g = iamalive_core::GroupRecord::new(iamalive_core::GroupName::new("site-a").unwrap());
    g.phase = iamalive_core::group_outage::GroupPhase::Outage;
    g.due_at = Some(t(5_000));
    g.members = (0..n)
        .map(|i| Member {
            host: h(&format!("site-{i:05}")),
            outage_id: format!("site-{i:05}@1700000000000"),
            fate: Fate::Outage,
            last_seen: t(0),
            missing_since: t(3_000),
            back_at: None,
            report: Some("power cut in rack 12".into()),
            named: true,
            missed_beat: false,
            alarmed_alone: false,
        })
        .collect();
    g
}

/// The part items stored for group `site-a`.
async fn parts(st: &DynamoStore, moto: &Server) -> usize {
    let client = common::client(moto);
    let mut n = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(st.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        n += page
            .items()
            .iter()
            .filter(|it| {
                matches!(it.get("server"), Some(AttributeValue::S(k)) if k.starts_with("#g:site-a#p:"))
            })
            .count();
        start = page.last_evaluated_key;
        if start.is_none() {
            return n;
        }
    }
}

/// A group of 10,000 members makes a record of about 2 MB, five times
/// DynamoDB's 400 KB item limit: it is stored in parts, read back whole,
/// swapped only from the version read (a stale swap loses and leaves no
/// parts behind), and each swap's winner removes the parts it replaced.
#[tokio::test]
async fn a_group_past_the_item_limit_is_stored_in_parts_and_swapped_honestly() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = store(&moto, 4).await;
    let mut g = big_group(10_000);
    let size = serde_json::to_string(&g).unwrap().len();
    assert!(size > 1_000_000, "the record is {size} bytes");
    g.version = 1;
    assert!(st.swap_group(0, &g).await.unwrap(), "created");
    let back = st.get_group(&g.group).await.unwrap().unwrap();
    assert_eq!(back, g, "read back whole");
    let first_parts = parts(&st, &moto).await;
    assert!(first_parts >= size / (400 * 1024), "{first_parts} parts");
    assert!(!st.swap_group(0, &g).await.unwrap(), "created once");
    assert_eq!(
        parts(&st, &moto).await,
        first_parts,
        "the loser's parts are gone"
    );

    let mut next = back.clone();
    next.version = 2;
    next.members.get_mut(&h("site-00042")).unwrap().back_at = Some(t(9_000));
    next.due_at = Some(t(1_000));
    assert!(
        st.swap_group(1, &next).await.unwrap(),
        "swapped from the version read"
    );
    assert!(
        !st.swap_group(1, &next).await.unwrap(),
        "a stale swap loses"
    );
    assert_eq!(st.get_group(&g.group).await.unwrap().unwrap(), next);
    assert_eq!(
        parts(&st, &moto).await,
        first_parts,
        "the replaced record's parts and the loser's are gone"
    );
    let due = st.due_groups(t(2_000), 10).await.unwrap();
    assert_eq!(due, vec![next.clone()], "due like any group record");

    // Shrunk back under the limit: kept in the item, no parts left.
    let mut small = next.clone();
    small.version = 3;
    small.members.retain(|m| m.host.as_str() < "site-00010");
    assert!(st.swap_group(2, &small).await.unwrap());
    assert_eq!(st.get_group(&g.group).await.unwrap().unwrap(), small);
    assert_eq!(parts(&st, &moto).await, 0, "no parts for a small record");
}

/// A service error reads as its code and message, short enough for a log
/// line and a watcher notice, not the raw response.
#[tokio::test]
async fn a_service_error_is_its_code_and_message() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st = DynamoStore::new(common::client(&moto), "no-such-table");
    let e = st.get(&h("web-1")).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("ResourceNotFoundException"), "{text}");
    assert!(text.len() < 300, "{} bytes: {text}", text.len());
    assert!(!text.contains("headers"), "{text}");
}
