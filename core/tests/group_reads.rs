//! A site's record is read once and then only its version, batch after
//! batch, while this monitor is its only writer; after another monitor
//! writes it, the record is read again (never a stale copy).

use std::sync::Arc;
use std::time::Duration;

use iamalive_core::conformance::{at, monitor};
use iamalive_core::testing::{CountingStore, RecordingNotifier};
use iamalive_core::{
    GroupName, GroupPolicy, Grouping, Heartbeat, HostId, ManualClock, MemoryStore, Notice,
    NoticeKind, Notifier, Store,
};

const SITE: usize = 640;

fn beat(g: &GroupName, i: usize, secs: u64) -> Heartbeat {
    let mut hb = Heartbeat::new(HostId::new(format!("ber-{i}")).unwrap(), at(secs));
    hb.group = Some(g.clone());
    hb
}

#[tokio::test]
async fn a_site_record_is_read_once_then_by_its_version() {
    let store = Arc::new(CountingStore::new(MemoryStore::new()));
    let dyn_store: Arc<dyn Store> = store.clone();
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let grouping: Grouping = Arc::new(|_| GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    });
    // Batches of 64: the site's 640 hosts come due in 10 batches.
    let a = monitor(dyn_store.clone(), &clock, channels(), "a").with_grouping(grouping.clone());
    let b = monitor(dyn_store, &clock, channels(), "b").with_grouping(grouping);
    let site = GroupName::new("office-berlin").unwrap();
    for i in 0..SITE {
        a.heartbeat(&beat(&site, i, 0)).await.unwrap();
    }
    // All silent from 0, deadline 10: monitor a alone sweeps them in.
    clock.set(at(10));
    let reads = store.group_reads();
    let writes = store.group_writes();
    let report = a.sweep().await.unwrap();
    assert_eq!(report.due, SITE, "every host came due in this sweep");
    let (reads, writes) = (store.group_reads() - reads, store.group_writes() - writes);
    assert!(
        writes >= 10,
        "one write per batch at least: {writes} writes"
    );
    assert!(
        reads <= 1,
        "the record is read once, then known by its version: {reads} reads for {writes} writes"
    );
    assert!(
        store.group_version_reads() >= writes,
        "the version is asked instead"
    );

    // Monitor b ends the gathering and sends the alarm (writing the
    // record); then a host comes back and a, whose copy is older, reads
    // the record again rather than deciding on its copy.
    for s in 11..=16 {
        clock.set(at(s));
        let _ = b.sweep().await.unwrap();
    }
    a.heartbeat(&beat(&site, 0, 17)).await.unwrap();
    clock.set(at(17));
    let before = store.group_reads();
    let report = a.sweep().await.unwrap();
    assert!(
        store.group_reads() > before,
        "a record another monitor wrote is read again"
    );
    assert_eq!(
        report.conflicts, 0,
        "and read before deciding: no swap lost to a stale copy"
    );
    let alarms: Vec<Notice> = ch
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 1, "one group alarm: {alarms:?}");
    assert!(alarms[0].is_group());
    assert_eq!(alarms[0].hosts.len(), SITE, "naming every host");
}
