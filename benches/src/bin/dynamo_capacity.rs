//! DynamoDB capacity per operation: what each heartbeat and sweep of the
//! DynamoDB store sends, the `ConsumedCapacity` the server reports for it
//! (every request asks `ReturnConsumedCapacity = INDEXES`, set by an SDK
//! interceptor, so the store's code is the one in production), and the
//! units by AWS's published rules from the items' sizes and index moves.
//!
//! ```text
//! IAMALIVE_TEST_VENV=… cargo run --release -p iamalive-benches --bin dynamo-capacity
//! ```
//!
//! It starts moto (the test venv's) on loopback. moto answers
//! `ConsumedCapacity` with a constant per operation (it does not look at
//! item sizes or the index), so the AWS-rule columns are the figures to
//! price with; both are printed so the difference shows. Then a
//! simulation: hosts beating every `--interval` (± a tenth, the agent's
//! default jitter) against the default 10-minute timeout with a sweep a
//! minute, counting write and read units per heartbeat by the same rules,
//! from the requests sent and the index entries each one moved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::update_item::{
    UpdateItemError, UpdateItemInput, UpdateItemOutput,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use clap::Parser;
use iamalive_core::{
    Clock, Heartbeat, HostId, ManualClock, Monitor, MonitorOptions, Policy, PolicySet,
};
use iamalive_store_dynamo::DynamoStore;
use rand::Rng;

#[derive(Parser, Debug)]
#[command(about = "DynamoDB request units per heartbeat and per sweep, on moto")]
struct Args {
    /// Hosts in the simulation.
    #[arg(long, default_value_t = 40)]
    hosts: usize,
    /// Simulated time.
    #[arg(long, default_value = "3h", value_parser = humantime::parse_duration)]
    span: Duration,
    /// Heartbeat interval in the simulation (the timeout is the default 10 minutes).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// One request as sent and answered.
#[derive(Debug, Clone)]
struct Request {
    op: &'static str,
    /// A consistent read (GetItem, BatchGetItem).
    consistent: bool,
    /// The write's condition failed.
    condition_failed: bool,
    /// What the server said it consumed: (total, table, index).
    reported: Option<(f64, f64, f64)>,
    /// Items a BatchGetItem returned.
    items: usize,
}

/// Sets `ReturnConsumedCapacity = INDEXES` on every request and records
/// each request with what came back.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Request>>>);

impl Recorder {
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

fn split(c: Option<&ConsumedCapacity>) -> Option<(f64, f64, f64)> {
    let c = c?;
    let table = c.table().and_then(|t| t.capacity_units()).unwrap_or(0.0);
    let index: f64 = c
        .global_secondary_indexes()
        .map(|m| m.values().filter_map(|v| v.capacity_units()).sum())
        .unwrap_or(0.0);
    Some((c.capacity_units().unwrap_or(0.0), table, index))
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "capacity-recorder"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let want = Some(ReturnConsumedCapacity::Indexes);
        let input = ctx.input_mut();
        let (op, consistent) = if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = want;
            ("UpdateItem", false)
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = want;
            ("PutItem", false)
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = want;
            ("GetItem", i.consistent_read == Some(true))
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = want;
            ("Query", i.consistent_read == Some(true))
        } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
            i.return_consumed_capacity = want;
            let consistent = i
                .request_items
                .as_ref()
                .is_some_and(|m| m.values().all(|k| k.consistent_read == Some(true)));
            ("BatchGetItem", consistent)
        } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
            i.return_consumed_capacity = want;
            ("DeleteItem", false)
        } else {
            ("other", false)
        };
        self.0.lock().expect("not poisoned").push(Request {
            op,
            consistent,
            condition_failed: false,
            reported: None,
            items: 0,
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (op, reported, failed, items) = match ctx.output_or_error() {
            Ok(out) => {
                if let Some(o) = out.downcast_ref::<UpdateItemOutput>() {
                    ("UpdateItem", split(o.consumed_capacity()), false, 0)
                } else if let Some(o) = out.downcast_ref::<PutItemOutput>() {
                    ("PutItem", split(o.consumed_capacity()), false, 0)
                } else if let Some(o) = out.downcast_ref::<GetItemOutput>() {
                    ("GetItem", split(o.consumed_capacity()), false, 0)
                } else if let Some(o) = out.downcast_ref::<QueryOutput>() {
                    ("Query", split(o.consumed_capacity()), false, 0)
                } else if let Some(o) = out.downcast_ref::<BatchGetItemOutput>() {
                    let n = o
                        .responses()
                        .map(|m| m.values().map(Vec::len).sum())
                        .unwrap_or(0);
                    (
                        "BatchGetItem",
                        split(o.consumed_capacity().first()),
                        false,
                        n,
                    )
                } else {
                    return Ok(());
                }
            }
            Err(e) => {
                let Some(err) = e.as_operation_error() else {
                    return Ok(());
                };
                if let Some(u) = err.downcast_ref::<UpdateItemError>() {
                    let failed = matches!(u, UpdateItemError::ConditionalCheckFailedException(_));
                    ("UpdateItem", None, failed, 0)
                } else if let Some(p) = err.downcast_ref::<PutItemError>() {
                    let failed = matches!(p, PutItemError::ConditionalCheckFailedException(_));
                    ("PutItem", None, failed, 0)
                } else {
                    return Ok(());
                }
            }
        };
        let mut reqs = self.0.lock().expect("not poisoned");
        if let Some(r) = reqs
            .iter_mut()
            .rev()
            .find(|r| r.op == op && r.reported.is_none() && !r.condition_failed && r.items == 0)
        {
            r.reported = reported;
            r.condition_failed = failed;
            r.items = items;
        }
        Ok(())
    }
}

/// An item's size by AWS's rules: each attribute's name in UTF-8 bytes
/// plus its value (a string's UTF-8 bytes; a number about one byte per two
/// significant digits plus one).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n
                .trim_start_matches('-')
                .replace('.', "")
                .trim_start_matches('0')
                .trim_end_matches('0')
                .len();
            digits.div_ceil(2) + 1
        }
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        _ => 0,
    }
}

/// Every item of the table by host id (a raw client, not recorded).
async fn snapshot(
    client: &Client,
    table: &str,
) -> HashMap<String, HashMap<String, AttributeValue>> {
    let mut all = HashMap::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for it in out.items() {
            if let Some(AttributeValue::S(k)) = it.get("server") {
                all.insert(k.clone(), it.clone());
            }
        }
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => return all,
        }
    }
}

fn index_key(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    match (item.get("dueShard"), item.get("dueAt")) {
        (Some(AttributeValue::S(s)), Some(AttributeValue::N(d))) => Some((s.clone(), d.clone())),
        _ => None,
    }
}

/// Index writes between two snapshots: a changed key is a delete and a
/// put (2), an entry that appears or goes is 1.
fn index_writes(
    before: &HashMap<String, HashMap<String, AttributeValue>>,
    after: &HashMap<String, HashMap<String, AttributeValue>>,
) -> u64 {
    let mut n = 0;
    for (k, a) in after {
        match (before.get(k).and_then(index_key), index_key(a)) {
            (Some(x), Some(y)) if x != y => n += 2,
            (None, Some(_)) | (Some(_), None) => n += 1,
            _ => {}
        }
    }
    for (k, b) in before {
        if !after.contains_key(k) && index_key(b).is_some() {
            n += 1;
        }
    }
    n
}

/// Units by AWS's rules for items under 1 KB (every item here is; the
/// bench checks): a write 1 WRU on the table whether its condition holds
/// or not; a read 0.5 RRU eventually consistent, 1 consistent, per item
/// up to 4 KB; a Query 0.5 RRU per 4 KB read, at least 0.5.
#[derive(Debug, Default, Clone, Copy)]
struct Units {
    table_wru: f64,
    index_wru: f64,
    rru: f64,
    moto: f64,
}

impl Units {
    fn of(reqs: &[Request], index_writes: u64) -> Units {
        let mut u = Units {
            index_wru: index_writes as f64,
            ..Units::default()
        };
        for r in reqs {
            match r.op {
                "UpdateItem" | "PutItem" | "DeleteItem" => u.table_wru += 1.0,
                "GetItem" => u.rru += if r.consistent { 1.0 } else { 0.5 },
                "Query" => u.rru += 0.5,
                "BatchGetItem" => u.rru += r.items as f64 * if r.consistent { 1.0 } else { 0.5 },
                _ => {}
            }
            u.moto += r.reported.map(|(t, _, _)| t).unwrap_or(0.0);
        }
        u
    }

    fn wru(&self) -> f64 {
        self.table_wru + self.index_wru
    }
}

fn describe(reqs: &[Request]) -> String {
    let parts: Vec<String> = reqs
        .iter()
        .map(|r| {
            let mut s = r.op.to_string();
            if r.consistent {
                s.push_str(" (consistent)");
            }
            if r.condition_failed {
                s.push_str(" (condition failed)");
            }
            s
        })
        .collect();
    parts.join(" + ")
}

fn reported(reqs: &[Request]) -> String {
    let parts: Vec<String> = reqs
        .iter()
        .map(|r| match r.reported {
            Some((t, table, index)) => format!("{t} (table {table}, index {index})"),
            None => "none".into(),
        })
        .collect();
    parts.join(" + ")
}

type Mon = Monitor<DynamoStore, ManualClock>;

fn monitor(store: &DynamoStore, clock: &ManualClock) -> Mon {
    Monitor::new(
        Arc::new(store.clone()),
        vec![],
        clock.clone(),
        PolicySet::new(Policy::default()),
        MonitorOptions::default(),
    )
    .expect("no channels")
}

fn client(url: &str, rec: Option<&Recorder>) -> Client {
    let mut conf = iamalive_benches::backend::moto_config(url);
    if let Some(r) = rec {
        conf = conf.interceptor(r.clone());
    }
    Client::from_conf(conf.build())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let url = moto.http_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&args, &url))
}

async fn run(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rec = Recorder::default();
    let raw = client(url, None);
    let table = "capacity";
    let store = DynamoStore::new(client(url, Some(&rec)), table);
    store.create_table_if_missing().await?;
    let t0 = iamalive_benches::t0();
    let clock = ManualClock::new(t0);
    let mon = monitor(&store, &clock);
    rec.take();

    println!("## Per operation (one host, default policy: 10-minute timeout)\n");
    println!(
        "| operation | requests | moto's ConsumedCapacity | AWS rules: WRU (table + index) | RRU | item size |"
    );
    println!("|---|---|---|---:|---:|---:|");
    let host = HostId::new("web-01.example.org")?;
    let mut before = snapshot(&raw, table).await;
    let mut step =
        |name: &str, reqs: Vec<Request>, after: HashMap<_, HashMap<String, AttributeValue>>| {
            let u = Units::of(&reqs, index_writes(&before, &after));
            let size = after.get(host.as_str()).map(item_size).unwrap_or(0);
            println!(
                "| {name} | {} | {} | {} ({} + {}) | {} | {size} B |",
                describe(&reqs),
                reported(&reqs),
                u.wru(),
                u.table_wru,
                u.index_wru,
                u.rru
            );
            before = after;
        };
    let beat = |at| Heartbeat::new(host.clone(), at);
    for (after, name) in [
        (0, "first heartbeat: creates the host"),
        (60, "heartbeat 1 min later: dueAt kept (lazy window)"),
        (300, "heartbeat 5 min later: dueAt re-armed"),
    ] {
        clock.advance(Duration::from_secs(after));
        mon.heartbeat(&beat(clock.now())).await?;
        step(name, rec.take(), snapshot(&raw, table).await);
    }
    let cold_store = DynamoStore::new(client(url, Some(&rec)), table);
    let cold = monitor(&cold_store, &clock);
    clock.advance(Duration::from_secs(60));
    cold.heartbeat(&beat(clock.now())).await?;
    step(
        "heartbeat to a process that never saw the host (cold), dueAt kept",
        rec.take(),
        snapshot(&raw, table).await,
    );
    let mut msg = beat(clock.now() + chrono::TimeDelta::seconds(1));
    msg.message = Some("nightly backup ok, 42 GB in 311 s".into());
    mon.heartbeat(&msg).await?;
    step(
        "heartbeat with a 33-byte message, dueAt kept",
        rec.take(),
        snapshot(&raw, table).await,
    );
    clock.advance(Duration::from_secs(60));
    let _ = mon.sweep().await?;
    step(
        "sweep, nothing due (4 shards)",
        rec.take(),
        snapshot(&raw, table).await,
    );

    // The simulation.
    println!(
        "\n## Simulation: {} hosts, every {} ± 10 %, timeout 10 min, a sweep a minute, {} simulated\n",
        args.hosts,
        humantime::format_duration(args.interval),
        humantime::format_duration(args.span)
    );
    let table = "capacity-sim";
    let store = DynamoStore::new(client(url, Some(&rec)), table);
    store.create_table_if_missing().await?;
    let clock = ManualClock::new(t0);
    let mon = monitor(&store, &clock);
    let hosts: Vec<HostId> = (0..args.hosts)
        .map(|i| HostId::new(format!("sim-{i:04}.example.org")))
        .collect::<Result<_, _>>()?;
    let mut rng = rand::rng();
    let interval = args.interval.as_secs_f64();
    let jitter = interval / 10.0;
    // Each host's next heartbeat, starting spread over one interval.
    let mut next: Vec<f64> = (0..hosts.len())
        .map(|_| rng.random_range(0.0..interval))
        .collect();
    let mut next_sweep = 60.0;
    let span = args.span.as_secs_f64();
    let warm_up = 30.0 * 60.0;
    let (mut hb_units, mut sweep_units) = (Units::default(), Units::default());
    let (mut beats, mut sweeps, mut max_size) = (0u64, 0u64, 0usize);
    let mut before = snapshot(&raw, table).await;
    rec.take();
    loop {
        let (i, t_hb) = next
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("hosts");
        let t = t_hb.min(next_sweep);
        if t > span {
            break;
        }
        clock.set(t0 + chrono::TimeDelta::milliseconds((t * 1000.0) as i64));
        let is_sweep = next_sweep <= t_hb;
        if is_sweep {
            let _ = mon.sweep().await?;
            next_sweep += 60.0;
        } else {
            mon.heartbeat(&Heartbeat::new(hosts[i].clone(), clock.now()))
                .await?;
            next[i] += interval + rng.random_range(-jitter..=jitter);
        }
        let after = snapshot(&raw, table).await;
        let reqs = rec.take();
        let u = Units::of(&reqs, index_writes(&before, &after));
        max_size = max_size.max(after.values().map(item_size).max().unwrap_or(0));
        before = after;
        if t < warm_up {
            continue;
        }
        let acc = if is_sweep {
            sweeps += 1;
            &mut sweep_units
        } else {
            beats += 1;
            &mut hb_units
        };
        acc.table_wru += u.table_wru;
        acc.index_wru += u.index_wru;
        acc.rru += u.rru;
        acc.moto += u.moto;
    }
    println!("| | count | WRU (table + index) | RRU | per heartbeat |");
    println!("|---|---:|---:|---:|---|");
    let b = beats.max(1) as f64;
    println!(
        "| heartbeats | {beats} | {} ({} + {}) | {} | {:.3} WRU + {:.3} RRU |",
        hb_units.wru(),
        hb_units.table_wru,
        hb_units.index_wru,
        hb_units.rru,
        hb_units.wru() / b,
        hb_units.rru / b
    );
    println!(
        "| sweeps | {sweeps} | {} ({} + {}) | {} | {:.3} WRU + {:.3} RRU (re-arming records left early, and the sweeps' own reads and mark) |",
        sweep_units.wru(),
        sweep_units.table_wru,
        sweep_units.index_wru,
        sweep_units.rru,
        sweep_units.wru() / b,
        sweep_units.rru / b
    );
    println!(
        "\nLargest item: {max_size} B. (The first 30 simulated minutes are a warm-up and not counted.) moto reported {:.1} capacity units for the counted heartbeats in all.",
        hb_units.moto
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_sizes_follow_the_rule() {
        // Trailing zeros trimmed: 8 significant digits, 4 bytes + 1.
        assert_eq!(value_size(&AttributeValue::N("1767225600000".into())), 5);
        assert_eq!(value_size(&AttributeValue::N("1767225600123".into())), 8);
        assert_eq!(value_size(&AttributeValue::N("100".into())), 2);
        assert_eq!(value_size(&AttributeValue::S("héllo".into())), 6);
    }
}
