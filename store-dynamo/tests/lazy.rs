//! The lazy heartbeat: an up host's heartbeat leaves `dueAt` alone while it
//! lies in the lazy window `[at + timeout/2, at + timeout]`, so DynamoDB
//! writes nothing to the due index. Checked against moto, with every
//! request the store sends recorded.
//!
//! moto's `ConsumedCapacity` is a constant per operation (0.5 for any
//! UpdateItem, whether an index key moves or not, and nothing for the
//! index), so the write units here are counted from the recorded requests
//! by DynamoDB's documented rules instead: an UpdateItem of an item under
//! 1 KB costs 1 WRU, failed condition or not, plus 2 WRU in a `KEYS_ONLY`
//! index when it changes the index's key (delete the old entry, put the
//! new one) and nothing there when it does not; an eventually consistent
//! GetItem costs 0.5 RRU.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use chrono::{DateTime, Utc};
use iamalive_core::conformance::{at, monitor};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{
    Clock, Heartbeat, HeartbeatOutcome, HostId, ManualClock, NoticeKind, Status, Store, Timestamp,
};
use iamalive_store_dynamo::DynamoStore;
use iamalive_testkit::Server;

/// One request as the store sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// GetItem, strongly consistent or not.
    Get { consistent: bool },
    /// UpdateItem: whether it sets `dueAt` (moves the index entry), and
    /// whether it succeeded.
    Update { sets_due: bool, ok: bool },
    /// PutItem (a whole item, conditional on `version`), and whether it
    /// succeeded.
    Put { ok: bool },
    /// Any other operation.
    Other,
}

/// Records every request of a client. Requests are matched to their
/// outcome in order, so use it for calls made one at a time.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<(Vec<Call>, usize)>>);

impl Recorder {
    /// The calls since the last `take`.
    fn take(&self) -> Vec<Call> {
        let mut g = self.0.lock().unwrap();
        g.1 = 0;
        std::mem::take(&mut g.0)
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "request recorder"
    }

    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = ctx.input();
        let call = if let Some(u) = input.downcast_ref::<UpdateItemInput>() {
            let set = u.update_expression().unwrap_or_default();
            let sets_due = set.contains("dueAt =")
                || u.expression_attribute_names()
                    .into_iter()
                    .flatten()
                    .any(|(k, v)| v == "dueAt" && set.contains(&format!("{k} =")));
            Call::Update {
                sets_due,
                ok: false,
            }
        } else if let Some(g) = input.downcast_ref::<GetItemInput>() {
            Call::Get {
                consistent: g.consistent_read() == Some(true),
            }
        } else if input.downcast_ref::<PutItemInput>().is_some() {
            Call::Put { ok: false }
        } else {
            Call::Other
        };
        self.0.lock().unwrap().0.push(call);
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let succeeded = ctx.output_or_error().is_some_and(|r| r.is_ok());
        let mut g = self.0.lock().unwrap();
        let i = g.1;
        g.1 += 1;
        if let Some(Call::Update { ok, .. } | Call::Put { ok }) = g.0.get_mut(i) {
            *ok = succeeded;
        }
        Ok(())
    }
}

/// Write request units of `calls` by DynamoDB's rules for items under
/// 1 KB and a `KEYS_ONLY` index, counting each `Update` that set `dueAt`
/// as moving the index entry (a different value); `None` if a PutItem is
/// among them (its index cost depends on the item before).
fn wru(calls: &[Call]) -> Option<u32> {
    calls
        .iter()
        .map(|c| match *c {
            Call::Get { .. } | Call::Other => Some(0),
            Call::Update { sets_due, ok } => Some(if sets_due && ok { 3 } else { 1 }),
            Call::Put { .. } => None,
        })
        .sum()
}

/// A client that records its requests.
fn recording(moto: &Server) -> (Client, Recorder) {
    let rec = Recorder::default();
    let conf = common::client(moto)
        .config()
        .to_builder()
        .interceptor(rec.clone())
        .build();
    (Client::from_conf(conf), rec)
}

async fn new_table(client: Client) -> DynamoStore {
    let table = format!("iamalive-lazy-{}", uuid::Uuid::new_v4());
    let st = DynamoStore::new(client, table);
    st.create_table_if_missing().await.unwrap();
    st
}

fn t(ms: i64) -> Timestamp {
    DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

/// A heartbeat at `at` ms with a 10 s timeout.
async fn beat(st: &DynamoStore, host: &str, at: i64) -> HeartbeatOutcome {
    st.record_heartbeat(&Heartbeat::new(h(host), t(at)), t(at + 10_000), true)
        .await
        .unwrap()
}

/// `dueAt` of `host` as the due index holds it (moto updates it at once).
async fn index_due(st: &DynamoStore, host: &str) -> Option<String> {
    common::index_entries(st)
        .await
        .into_iter()
        .find_map(|(server, due)| (server == host).then_some(due))
}

fn millis(ms: i64) -> Option<String> {
    Some(t(ms).timestamp_millis().to_string())
}

#[tokio::test]
async fn inside_the_window_due_at_is_kept_outside_it_is_rearmed() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let (client, calls) = recording(&moto);
    let st = new_table(client).await;
    assert_eq!(beat(&st, "a", 0).await, HeartbeatOutcome::Created);
    assert_eq!(index_due(&st, "a").await, millis(10_000));
    calls.take();

    // At 3 s the window is [8 s, 13 s]: 10 s is kept. One UpdateItem that
    // sets no index key: 1 WRU.
    let mut hb = Heartbeat::new(h("a"), t(3_000));
    hb.message = Some("lazy".into());
    assert_eq!(
        st.record_heartbeat(&hb, t(13_000), true).await.unwrap(),
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let sent = calls.take();
    assert_eq!(
        sent,
        [Call::Update {
            sets_due: false,
            ok: true
        }]
    );
    assert_eq!(wru(&sent), Some(1));
    let r = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.last_seen, r.version, r.due_at),
        (Status::Up, t(3_000), 2, Some(t(10_000)))
    );
    assert_eq!(r.message.as_deref(), Some("lazy"));
    assert_eq!(index_due(&st, "a").await, millis(10_000), "index untouched");
    calls.take();

    // At 6 s the window is [11 s, 16 s]: 10 s is too early, re-armed to
    // 16 s. One UpdateItem moving the index entry: 3 WRU.
    assert_eq!(
        beat(&st, "a", 6_000).await,
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let sent = calls.take();
    assert_eq!(
        sent,
        [Call::Update {
            sets_due: true,
            ok: true
        }]
    );
    assert_eq!(wru(&sent), Some(3));
    let r = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!(
        (r.last_seen, r.version, r.due_at),
        (t(6_000), 3, Some(t(16_000)))
    );
    assert_eq!(index_due(&st, "a").await, millis(16_000));
    calls.take();

    // Never late: a shorter timeout (due_if_up 12 s, before the stored
    // 16 s) re-arms to it.
    st.record_heartbeat(&Heartbeat::new(h("a"), t(7_000)), t(12_000), true)
        .await
        .unwrap();
    let r = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!((r.version, r.due_at), (4, Some(t(12_000))));
    assert_eq!(
        calls.take()[0],
        Call::Update {
            sets_due: true,
            ok: true
        }
    );

    // Out of order: last_seen stays, the version moves, due_at is not
    // pushed past the later heartbeat's deadline.
    beat(&st, "a", 6_500).await;
    let r = st.get(&h("a")).await.unwrap().unwrap();
    assert_eq!((r.last_seen, r.version), (t(7_000), 5));
    assert!(r.due_at.is_some_and(|d| d <= t(17_000)));
}

/// A process that knows nothing of a host looks before it writes; a stale
/// hint costs a dearer or a failed write, never a contract.
#[tokio::test]
async fn cold_process_looks_first_and_stale_hints_stay_safe() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let (client_a, calls_a) = recording(&moto);
    let a = new_table(client_a).await;
    // A second process on the same table: its own hints.
    let (client_b, calls_b) = recording(&moto);
    let b = DynamoStore::new(client_b, a.table());
    beat(&a, "c", 0).await;
    calls_a.take();

    // Cold: an eventually consistent GetItem (0.5 RRU), then the lazy
    // UpdateItem (1 WRU).
    beat(&b, "c", 3_000).await;
    let sent = calls_b.take();
    assert_eq!(
        sent,
        [
            Call::Get { consistent: false },
            Call::Update {
                sets_due: false,
                ok: true
            }
        ]
    );
    assert_eq!(wru(&sent), Some(1));
    // Warm: B re-arms at 6 s without a read.
    beat(&b, "c", 6_000).await;
    assert_eq!(
        calls_b.take(),
        [Call::Update {
            sets_due: true,
            ok: true
        }]
    );
    assert_eq!(
        b.get(&h("c")).await.unwrap().unwrap().due_at,
        Some(t(16_000))
    );
    calls_b.take();

    // A still believes 10 s, before its window [12 s, 17 s]: it re-arms
    // (3 WRU where 1 would have done) and nothing fails. dueAt only grows
    // while a host is up, so a stale hint errs this way only.
    beat(&a, "c", 7_000).await;
    assert_eq!(
        calls_a.take(),
        [Call::Update {
            sets_due: true,
            ok: true
        }]
    );
    let r = a.get(&h("c")).await.unwrap().unwrap();
    assert_eq!((r.version, r.due_at), (4, Some(t(17_000))));
    calls_a.take();

    // B's monitor declares it missing; A believes it up with 17 s inside
    // its window, tries the lazy write, fails it (1 WRU) and applies the
    // heartbeat to the item that came back: due now, for the monitor to
    // decide the recovery.
    let mut missing = b.get(&h("c")).await.unwrap().unwrap();
    missing.status = Status::Missing;
    missing.missing_since = Some(t(17_000));
    missing.due_at = Some(t(20_000));
    missing.version = 5;
    assert!(b.compare_and_swap(4, &missing).await.unwrap());
    assert_eq!(
        beat(&a, "c", 8_000).await,
        HeartbeatOutcome::Updated {
            status: Status::Missing
        }
    );
    // The failed write returns the item (ALL_OLD): no read between.
    assert_eq!(
        calls_a.take(),
        [
            Call::Update {
                sets_due: false,
                ok: false
            },
            Call::Put { ok: true }
        ]
    );
    let r = a.get(&h("c")).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.version, r.last_seen, r.due_at),
        (Status::Missing, 6, t(8_000), Some(t(8_000)))
    );
    calls_a.take();
    // A now knows it is off the fast path: the next heartbeat reads
    // consistently and writes once, with no failed write.
    assert_eq!(
        beat(&a, "c", 9_000).await,
        HeartbeatOutcome::Updated {
            status: Status::Missing
        }
    );
    assert_eq!(
        calls_a.take(),
        [Call::Get { consistent: true }, Call::Put { ok: true }]
    );
}

/// A heartbeat inside the window leaves the record due early; the sweep
/// re-arms it without alarming, and a host that then stops alarms at its
/// true deadline, last heartbeat + timeout, not at the early due_at.
#[tokio::test]
async fn sweep_rearms_an_early_record_and_a_silent_host_alarms_on_time() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let st: Arc<dyn Store> = Arc::new(new_table(common::client(&moto)).await);
    let clock = ManualClock::new(at(0));
    let rec = RecordingNotifier::new("rec");
    let m = monitor(st.clone(), &clock, vec![Arc::new(rec.clone())], "m1");
    let host = h("quiet");
    // The suite's policy: a 10 s timeout.
    m.heartbeat(&Heartbeat::new(host.clone(), clock.now()))
        .await
        .unwrap();
    clock.set(at(4));
    m.heartbeat(&Heartbeat::new(host.clone(), clock.now()))
        .await
        .unwrap();
    let r = st.get(&host).await.unwrap().unwrap();
    assert_eq!(r.due_at, Some(at(10)), "kept: inside [9 s, 14 s]");

    // Silent from 4 s on. At 10 s the record is due, but the host is not
    // missing before 14 s: the sweep re-arms it and tells nobody.
    clock.set(at(10));
    let report = m.sweep().await.unwrap();
    assert_eq!(report.evaluated, 1);
    assert!(rec.notices().is_empty());
    let r = st.get(&host).await.unwrap().unwrap();
    assert_eq!((r.status, r.due_at), (Status::Up, Some(at(14))));

    clock.set(at(14) - chrono::TimeDelta::milliseconds(1));
    assert_eq!(m.sweep().await.unwrap().evaluated, 0);
    assert!(rec.notices().is_empty(), "1 ms before the deadline");
    clock.set(at(14));
    assert_eq!(m.sweep().await.unwrap().evaluated, 1);
    assert_eq!(rec.count(NoticeKind::Alarm), 1, "alarm at the deadline");
    let r = st.get(&host).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Alarmed);
    assert_eq!(r.missing_since, Some(at(14)));
}

/// A host with a stored policy takes the one-request path too: one
/// UpdateItem that leaves `dueAt` (the monitor arms it from the policy;
/// core's heartbeat rule), no read, no PutItem. A cold process looks
/// first, once; a hint gone stale (the policy removed elsewhere) costs a
/// failed condition and the write the item calls for, never a late
/// `dueAt`.
#[tokio::test]
async fn a_host_with_a_stored_policy_is_one_update_that_keeps_due_at() {
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let (client_a, calls_a) = recording(&moto);
    let a = new_table(client_a).await;
    let (client_b, calls_b) = recording(&moto);
    let b = DynamoStore::new(client_b, a.table());
    beat(&a, "job", 0).await;
    // Its own policy, armed by the monitor at 1 h (an early `dueAt` would
    // do as well: it only has to be not late).
    let mut r = a.get(&h("job")).await.unwrap().unwrap();
    let expected = r.version;
    r.policy = Some(Box::new(iamalive_core::HostPolicy::Timeout(
        std::time::Duration::from_secs(3_600),
    )));
    r.due_at = Some(t(3_600_000));
    r.version += 1;
    assert!(a.compare_and_swap(expected, &r).await.unwrap());
    calls_a.take();

    // Warm (A wrote the policy): one UpdateItem, no index write, 1 WRU.
    let mut hb = Heartbeat::new(h("job"), t(5_000));
    hb.message = Some("kept".into());
    assert_eq!(
        a.record_heartbeat(&hb, t(15_000), true).await.unwrap(),
        HeartbeatOutcome::Updated { status: Status::Up }
    );
    let sent = calls_a.take();
    assert_eq!(
        sent,
        [Call::Update {
            sets_due: false,
            ok: true
        }]
    );
    assert_eq!(wru(&sent), Some(1));
    let got = a.get(&h("job")).await.unwrap().unwrap();
    assert_eq!(
        (got.last_seen, got.version, got.due_at),
        (t(5_000), r.version + 1, Some(t(3_600_000)))
    );
    assert_eq!(got.message.as_deref(), Some("kept"));
    assert!(got.policy.is_some(), "the policy stays");
    assert_eq!(index_due(&a, "job").await, millis(3_600_000));
    calls_a.take();

    // Cold (B has no hint): a look, then the same one UpdateItem; warm
    // after that.
    beat(&b, "job", 6_000).await;
    assert_eq!(
        calls_b.take(),
        [
            Call::Get { consistent: false },
            Call::Update {
                sets_due: false,
                ok: true
            }
        ]
    );
    beat(&b, "job", 7_000).await;
    assert_eq!(
        calls_b.take(),
        [Call::Update {
            sets_due: false,
            ok: true
        }]
    );

    // A removes the policy; B's hint is stale. Its conditional write
    // fails, and the item it gets back calls for a re-arm to due_if_up.
    let mut r = a.get(&h("job")).await.unwrap().unwrap();
    let expected = r.version;
    r.policy = None;
    r.version += 1;
    assert!(a.compare_and_swap(expected, &r).await.unwrap());
    beat(&b, "job", 8_000).await;
    assert_eq!(
        calls_b.take(),
        [
            Call::Update {
                sets_due: false,
                ok: false
            },
            Call::Update {
                sets_due: true,
                ok: true
            }
        ]
    );
    assert_eq!(
        b.get(&h("job")).await.unwrap().unwrap().due_at,
        Some(t(18_000))
    );
}
