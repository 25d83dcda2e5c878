#![doc = include_str!("../README.md")]

mod codec;
mod error;
mod groups;
mod heartbeat;
mod hint;
pub mod settings;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
};
use iamalive_core::{
    Event, GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, LazyWindow,
    MonitorMark, Silence, Status, Store, StoreError, Timestamp, apply_heartbeat,
    created_by_heartbeat, encode_json,
};

use codec::*;
use hint::{Hints, Known};

/// The store's name in errors.
const STORE: &str = "dynamo";

/// The default number of write shards of the due index.
pub const DEFAULT_SHARDS: u16 = 4;

/// The name of the sparse due index.
pub const DUE_INDEX: &str = "due";

/// The name of the sparse group index: the hosts of a group by their
/// `group` attribute (keys only, so a heartbeat that keeps its group
/// writes nothing to it), read only when a group decides its outage.
pub const GROUP_INDEX: &str = "group";

/// How often a read-modify-write is retried after losing a race before the
/// call gives up with a transient error.
const MAX_ROUNDS: usize = 64;

/// Host records in one DynamoDB table, due records found through a sparse,
/// write-sharded global secondary index.
///
/// Cheap to clone: clones share the SDK client. See the crate docs for the
/// table layout and what each operation costs.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    shards: u16,
    /// What this process last knew of each host, to pick the heartbeat's
    /// write (see the crate docs, "The heartbeat").
    hints: Arc<Hints>,
}

impl fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dynamo({})", self.table)
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item holding `host`'s event log (the list attribute [`EVENTS`],
/// oldest first). `#` keeps it out of host listings, and host ids cannot
/// contain it.
fn events_key(host: &HostId) -> String {
    format!("#events/{host}")
}

/// The list attribute of an events item.
const EVENTS: &str = "events";

fn key(k: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(k))])
}

fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// The bounds on each call when the client sets none: 2 s to connect, 2 s
/// an attempt, 5 s for a call with its retries. Past them the call fails
/// as the store unavailable (503 with Retry-After, store trouble counted),
/// as Redis's timeout does.
pub const DEFAULT_TIMEOUTS: DefaultTimeouts = DefaultTimeouts {
    connect: Duration::from_secs(2),
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(5),
};

/// The timeouts [`DynamoStore::new`] gives a client that sets none.
#[derive(Debug, Clone, Copy)]
pub struct DefaultTimeouts {
    /// To open a connection.
    pub connect: Duration,
    /// One attempt of a call.
    pub attempt: Duration,
    /// A call, its retries included.
    pub operation: Duration,
}

impl DefaultTimeouts {
    fn build(self) -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
        aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

impl DynamoStore {
    /// A store over `table` through `client`, with [`DEFAULT_SHARDS`] due
    /// shards. No request is made; see
    /// [`create_table_if_missing`](Self::create_table_if_missing).
    ///
    /// A client without an operation timeout gets [`DEFAULT_TIMEOUTS`]: the
    /// SDK's own default waits on an endpoint that stops answering for as
    /// long as the connection lives, and a watcher whose store hangs is
    /// blind without knowing it. A client that sets one keeps its own.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let client = if client
            .config()
            .timeout_config()
            .is_some_and(|t| t.operation_timeout().is_some())
        {
            client
        } else {
            Client::from_conf(
                client
                    .config()
                    .to_builder()
                    .timeout_config(DEFAULT_TIMEOUTS.build())
                    .build(),
            )
        };
        Self {
            client,
            table: table.into(),
            shards: DEFAULT_SHARDS,
            hints: Arc::default(),
        }
    }

    /// A store over `table` with the SDK's standard configuration from the
    /// environment: `AWS_REGION`, credentials (environment, profile, role,
    /// instance metadata), and `AWS_ENDPOINT_URL` /
    /// `AWS_ENDPOINT_URL_DYNAMODB` to talk to something other than AWS.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&conf), table)
    }

    /// Sets the number of write shards of the due index (1 to 1000).
    ///
    /// Every process sharing a table must use the same number, and it may
    /// only ever grow: a record written under a shard beyond a smaller count
    /// would never be found due. A sweep with nothing due costs one Query
    /// per shard; each shard takes up to 1,000 index writes per second.
    pub fn with_shards(mut self, shards: u16) -> Self {
        self.shards = shards.clamp(1, 1000);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The number of due-index shards.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with its due index (on-demand billing) unless it
    /// exists, and waits until it is active. Returns `true` if it created it.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => {
                let active =
                    out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active);
                let has_group_index = out.table().is_some_and(|t| {
                    t.global_secondary_indexes()
                        .iter()
                        .any(|i| i.index_name() == Some(GROUP_INDEX))
                });
                if !has_group_index {
                    self.add_group_index().await?;
                }
                if !active || !has_group_index {
                    self.wait_active().await?;
                }
                return Ok(false);
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => return Err(error::map(e)),
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK, ScalarAttributeType::S)?)
            .attribute_definitions(attribute(DUE_SHARD, ScalarAttributeType::S)?)
            .attribute_definitions(attribute(DUE_AT, ScalarAttributeType::N)?)
            .attribute_definitions(attribute(GROUP, ScalarAttributeType::S)?)
            .key_schema(key_schema(PK, KeyType::Hash)?)
            .global_secondary_indexes(keys_only_index(
                DUE_INDEX,
                &[(DUE_SHARD, KeyType::Hash), (DUE_AT, KeyType::Range)],
            )?)
            .global_secondary_indexes(group_index()?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Someone else created it in the meantime.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(error::map(e)),
        }
        self.wait_active().await?;
        Ok(true)
    }

    /// Adds the [`GROUP_INDEX`] to a table created before it existed
    /// (DynamoDB backfills it from the items' `group` attribute).
    async fn add_group_index(&self) -> Result<(), StoreError> {
        // The same definition as a new table's, as an index to add.
        let index = group_index()?;
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(index.index_name)
            .set_key_schema(Some(index.key_schema))
            .set_projection(index.projection)
            .build()
            .map_err(|e| StoreError::backend(STORE, e))?;
        let out = self
            .client
            .update_table()
            .table_name(&self.table)
            .attribute_definitions(attribute(GROUP, ScalarAttributeType::S)?)
            .global_secondary_index_updates(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                    .create(create)
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Another process is adding it (or the table is being updated).
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(error::map(e)),
        }
    }

    /// The hosts of `group` by the [`GROUP_INDEX`] (keys, eventually
    /// consistent), then their items read consistently in batches of 100:
    /// O(group size). `None` when the table has no such index.
    pub(crate) async fn hosts_of_group(
        &self,
        group: &iamalive_core::GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = i32::try_from(limit.saturating_sub(keys.len()).max(1)).unwrap_or(i32::MAX);
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GROUP_INDEX)
                .key_condition_expression("#grp = :grp")
                .expression_attribute_names("#grp", GROUP)
                .expression_attribute_values(":grp", s(group.as_str().to_owned()))
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e)
                    if e.as_service_error().is_some_and(|e| {
                        aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e)
                            == Some("ValidationException")
                    }) =>
                {
                    tracing::warn!(table = %self.table, "the table has no group index yet: run create_table_if_missing to add it; no missed-beat evidence meanwhile");
                    return Ok(None);
                }
                Err(e) => return Err(error::map(e)),
            };
            keys.extend(
                page.items()
                    .iter()
                    .filter_map(|it| get_s(it, PK))
                    .filter(|k| !k.starts_with('#'))
                    .map(str::to_owned),
            );
            match page.last_evaluated_key {
                Some(k) if keys.len() < limit && !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        keys.truncate(limit);
        let items = self.batch_get(keys).await?;
        let mut out = Vec::with_capacity(items.len());
        for it in &items {
            let rec = from_item(it)?;
            // The index lags the table: a host that just moved is left out.
            if rec.group.as_ref() == Some(group) {
                out.push(rec);
            }
        }
        Ok(Some(out))
    }

    async fn wait_active(&self) -> Result<(), StoreError> {
        // Bounded: DynamoDB creates a small on-demand table in seconds.
        for _ in 0..300 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(error::map)?;
            let t = out.table();
            let table_active = t.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
            let index_active = t
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| {
                    i.index_status()
                        .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
                });
            if table_active && index_active {
                return Ok(());
            }
            tokio_sleep(Duration::from_secs(1)).await;
        }
        Err(StoreError::unavailable(
            STORE,
            format!(
                "table {} did not become active within 5 minutes",
                self.table
            ),
        ))
    }

    /// Deletes the table (tests, teardown). Irreversible.
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(error::map)?;
        Ok(())
    }

    async fn get_item(&self, k: &str) -> Result<Option<Item>, StoreError> {
        self.read_item(k, true).await
    }

    /// One item, read strongly consistently (1 RRU) or eventually (0.5).
    async fn read_item(&self, k: &str, consistent: bool) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(k)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(error::map)?;
        Ok(out.item)
    }

    /// Writes `item` if the stored version is `expected` (0: absent).
    async fn put_if_version(&self, item: Item, expected: u64) -> Result<bool, StoreError> {
        Ok(self
            .put_if_version_old(item, expected, false)
            .await?
            .is_some())
    }

    /// [`put_if_version`](Self::put_if_version), answering `None` when
    /// another writer won, and otherwise the item it replaced if `old` is
    /// asked for (`ReturnValues=ALL_OLD`, at no extra cost).
    async fn put_if_version_old(
        &self,
        item: Item,
        expected: u64,
        old: bool,
    ) -> Result<Option<Option<Item>>, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if old {
            req = req.return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        }
        req = if expected == 0 {
            req.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            req.condition_expression("#v = :expected")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":expected", n(expected))
        };
        match req.send().await {
            Ok(out) => Ok(Some(out.attributes)),
            Err(e) if is_condition_failed::<PutItemError, _>(&e) => Ok(None),
            Err(e) => Err(error::map(e)),
        }
    }

    /// One item read eventually consistently (0.5 RRU): a cold process's
    /// look before it picks a heartbeat's write. May be stale; whatever it
    /// leads to is a conditional write.
    async fn peek_item(&self, k: &str) -> Result<Option<Item>, StoreError> {
        self.read_item(k, false).await
    }

    /// A Query of the due index's partition `shard` (a host shard's number
    /// or the groups' shard), earliest `due_at` first, at most `limit` keys
    /// per page: those due by `now`, or all of the partition's with `None`.
    fn due_index_query(
        &self,
        shard: String,
        now: Option<Timestamp>,
        limit: i32,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .expression_attribute_names("#shard", DUE_SHARD)
            .expression_attribute_values(":shard", s(shard))
            .scan_index_forward(true)
            .limit(limit);
        match now {
            Some(now) => req
                .key_condition_expression("#shard = :shard AND #due <= :now")
                .expression_attribute_names("#due", DUE_AT)
                .expression_attribute_values(":now", n_time(now)),
            None => req.key_condition_expression("#shard = :shard"),
        }
    }

    /// Queries one shard of the due index for keys due by `now`, earliest
    /// first, at most `limit`.
    async fn query_shard(
        &self,
        shard: u16,
        now: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = self
                .due_index_query(shard.to_string(), now, want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(error::map)?;
            for it in page.items() {
                let Some(k) = get_s(it, PK) else { continue };
                if let Some(d) = opt_time(it, k, DUE_AT)? {
                    out.push((d, k.to_owned()));
                }
            }
            match page.last_evaluated_key {
                Some(k) if out.len() < limit && !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Reads `keys` with consistent reads, in batches of 100.
    async fn batch_get(&self, keys: Vec<String>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk.iter().map(|k| key(k.clone())).collect();
            // Unprocessed keys come back under throttling; bounded retries.
            for round in 0..MAX_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio_sleep(Duration::from_millis(20 << round.min(6))).await;
                }
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::backend(STORE, e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(error::map)?;
                if let Some(mut r) = out.responses {
                    items.extend(r.remove(&self.table).unwrap_or_default());
                }
                if let Some(ka) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = ka.keys;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::unavailable(
                    STORE,
                    "BatchGetItem kept returning unprocessed keys",
                ));
            }
        }
        Ok(items)
    }
}

fn key_schema(name: &str, t: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .map_err(|e| StoreError::backend(STORE, e))
}

fn attribute(name: &str, t: ScalarAttributeType) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .map_err(|e| StoreError::backend(STORE, e))
}

/// A global secondary index on `keys` that projects only the table's keys
/// (both indexes are read for keys, then the items themselves).
fn keys_only_index(
    name: &str,
    keys: &[(&str, KeyType)],
) -> Result<GlobalSecondaryIndex, StoreError> {
    let mut index = GlobalSecondaryIndex::builder().index_name(name).projection(
        Projection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
    );
    for (attr, t) in keys {
        index = index.key_schema(key_schema(attr, t.clone())?);
    }
    index.build().map_err(|e| StoreError::backend(STORE, e))
}

/// The [`GROUP_INDEX`]'s definition.
fn group_index() -> Result<GlobalSecondaryIndex, StoreError> {
    keys_only_index(GROUP_INDEX, &[(GROUP, KeyType::Hash)])
}

async fn tokio_sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

#[async_trait]
impl Store for DynamoStore {
    async fn record_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.heartbeat(hb, due_if_up, create).await
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<HostRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let queries = (0..self.shards).map(|sh| self.query_shard(sh, Some(now), limit));
        let mut candidates: Vec<(Timestamp, String)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        candidates.sort();
        candidates.truncate(limit);
        // The index is eventually consistent: decide on what the table says.
        let items = self
            .batch_get(candidates.into_iter().map(|(_, k)| k).collect())
            .await?;
        let mut recs = Vec::with_capacity(items.len());
        for it in &items {
            let rec = from_item(it)?;
            if rec.due_at.is_some_and(|d| d <= now) {
                recs.push(rec);
            }
        }
        recs.sort_by(|a, b| (a.due_at, &a.host).cmp(&(b.due_at, &b.host)));
        Ok(recs)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let queries = (0..self.shards).map(|sh| self.query_shard(sh, None, 1));
        Ok(futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .map(|(d, _)| d)
            .min())
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.get_item(host.as_str())
            .await?
            .map(|it| from_item(&it))
            .transpose()
    }

    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        let host = next.host.as_str();
        let swapped = self
            .put_if_version(to_item(next, self.shards)?, expected)
            .await?;
        if swapped {
            self.hints.set(host, Known::of(next));
        } else {
            self.hints.forget(host);
        }
        Ok(swapped)
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    async fn group_hosts(
        &self,
        group: &GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        self.hosts_of_group(group, limit).await
    }

    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.group(group).await
    }

    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        self.swap_group_item(expected, next).await
    }

    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        self.groups_due(Some(now), limit).await
    }

    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .groups_due(None, 1)
            .await?
            .first()
            .and_then(|g| g.due_at))
    }

    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        // An operator action: walks the table (a partition key has no
        // order), keeping only the `limit` smallest ids after `after`.
        let mut best: std::collections::BTreeMap<String, HostRecord> = Default::default();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(a) = after {
                req = req
                    .filter_expression("#pk > :after")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_values(":after", s(a.as_str()));
            }
            let page = req.send().await.map_err(error::map)?;
            for it in page.items() {
                let Some(k) = get_s(it, PK) else { continue };
                if k.starts_with('#') || after.is_some_and(|a| k <= a.as_str()) {
                    continue;
                }
                if best.len() == limit
                    && best.last_key_value().is_some_and(|(l, _)| k >= l.as_str())
                {
                    continue;
                }
                best.insert(k.to_owned(), from_item(it)?);
                if best.len() > limit {
                    best.pop_last();
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(best.into_values().collect())
    }

    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(host.as_str())))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(error::map)?;
        self.hints.forget(host.as_str());
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(events_key(host))))
            .send()
            .await
            .map_err(error::map)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        let json = encode_json(STORE, format_args!("event of {host}"), event)?;
        let k = events_key(host);
        // Read, append, trim, write back if nobody wrote in between.
        for _ in 0..MAX_ROUNDS {
            let item = self.get_item(&k).await?;
            let version = match &item {
                Some(i) => codec::get_u64(i, &k, VERSION)?,
                None => 0,
            };
            let mut list = item
                .as_ref()
                .and_then(|i| i.get(EVENTS))
                .and_then(|v| v.as_l().ok())
                .cloned()
                .unwrap_or_default();
            list.push(s(json.clone()));
            let excess = list.len().saturating_sub(keep);
            list.drain(..excess);
            let next = HashMap::from([
                (PK.to_owned(), s(k.clone())),
                (VERSION.to_owned(), n(version + 1)),
                (EVENTS.to_owned(), AttributeValue::L(list)),
            ]);
            if self.put_if_version(next, version).await? {
                return Ok(());
            }
        }
        Err(StoreError::Contended {
            key: k,
            rounds: MAX_ROUNDS,
        })
    }

    async fn events(&self, host: &HostId, limit: usize) -> Result<Vec<Event>, StoreError> {
        let k = events_key(host);
        let Some(item) = self.get_item(&k).await? else {
            return Ok(Vec::new());
        };
        let Some(list) = item.get(EVENTS).and_then(|v| v.as_l().ok()) else {
            return Ok(Vec::new());
        };
        list.iter()
            .rev()
            .take(limit)
            .map(|v| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    store: STORE,
                    key: k.clone(),
                    reason,
                };
                let json = v
                    .as_s()
                    .map_err(|_| corrupt("an event is not a string".into()))?;
                serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))
            })
            .collect()
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let json = encode_json(STORE, format_args!("silence {}", silence.id), silence)?;
        for _ in 0..MAX_ROUNDS {
            // Into the existing map, or create the map with this entry.
            let into = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(SILENCES_KEY)))
                .update_expression("SET #s.#id = :json")
                .condition_expression("attribute_exists(#s)")
                .expression_attribute_names("#s", SILENCES)
                .expression_attribute_names("#id", &silence.id)
                .expression_attribute_values(":json", s(json.clone()))
                .send()
                .await;
            match into {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failed::<UpdateItemError, _>(&e) => {}
                Err(e) => return Err(error::map(e)),
            }
            let fresh = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(SILENCES_KEY)))
                .update_expression("SET #s = :map")
                .condition_expression("attribute_not_exists(#s)")
                .expression_attribute_names("#s", SILENCES)
                .expression_attribute_values(
                    ":map",
                    AttributeValue::M(HashMap::from([(silence.id.clone(), s(json.clone()))])),
                )
                .send()
                .await;
            match fresh {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failed::<UpdateItemError, _>(&e) => {}
                Err(e) => return Err(error::map(e)),
            }
        }
        Err(StoreError::unavailable(
            STORE,
            "silences item kept changing",
        ))
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let Some(item) = self.get_item(SILENCES_KEY).await? else {
            return Ok(Vec::new());
        };
        let Some(map) = item.get(SILENCES).and_then(|m| m.as_m().ok()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(map.len());
        for (id, v) in map {
            let json = v.as_s().map_err(|_| StoreError::Corrupt {
                store: STORE,
                key: format!("{SILENCES_KEY}.{id}"),
                reason: "not a string".into(),
            })?;
            out.push(serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
                store: STORE,
                key: format!("{SILENCES_KEY}.{id}"),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }

    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(SILENCES_KEY)))
            .update_expression("REMOVE #s.#id")
            .condition_expression("attribute_exists(#s.#id)")
            .expression_attribute_names("#s", SILENCES)
            .expression_attribute_names("#id", id)
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed::<UpdateItemError, _>(&e) => Ok(false),
            Err(e) => Err(error::map(e)),
        }
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let old = self.get_item(MARK_KEY).await?;
            let (mark, version) = match &old {
                Some(it) => (mark_from_item(it)?, get_u64(it, MARK_KEY, VERSION)?),
                None => (MonitorMark::default(), 0),
            };
            let next = mark.advance(now, gap);
            let mut item = key(MARK_KEY);
            item.insert(VERSION.into(), n(version + 1));
            if let Some(t) = next.last_run {
                item.insert(LAST_RUN.into(), n_time(t));
            }
            if let Some(d) = next.downtime {
                item.insert(DOWNTIME_FROM.into(), n_time(d.from));
                item.insert(DOWNTIME_UNTIL.into(), n_time(d.until));
            }
            if self.put_if_version(item, version).await? {
                return Ok(next);
            }
        }
        Err(StoreError::unavailable(STORE, "monitor mark kept changing"))
    }
}
