#![doc = include_str!("../README.md")]

mod codec;
mod groups;
mod heartbeat;
mod scripts;
pub mod settings;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iamalive_core::{
    Event, GroupName, GroupRecord, Heartbeat, HeartbeatOutcome, HostId, HostRecord, MonitorMark,
    Silence, Status, Store, StoreError, Timestamp, encode_json,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Script,
    ScriptInvocation, ServerErrorKind, Value,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::codec::{
    decode, decode_mark, encode, encode_mark, from_score, merge_up, score, split_ms, ts_arg,
    up_entry,
};
use crate::heartbeat::{Pending, batcher};

/// The name this store gives in errors.
pub(crate) const STORE: &str = "redis";

/// Heartbeats sent to Redis in one script call, at most.
const BATCH: usize = 256;
/// Heartbeat batches in flight on the connection at once.
const IN_FLIGHT: usize = 8;
/// Heartbeats waiting for a batch, at most (then callers wait).
const QUEUE: usize = 16 * 1024;

/// How often `mark_run` retries its optimistic swap before giving up.
const MARK_ROUNDS: usize = 64;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = RedisResult<T>> + Send + 'a>>;

/// The keys of one deployment, all under one hash tag.
#[derive(Debug)]
struct Keys {
    /// `{prefix}:h:` — followed by the host id.
    host: String,
    due: String,
    hosts: String,
    /// `{prefix}:up` — host id → the fast-path entry of an up host.
    up: String,
    silences: String,
    mark: String,
    /// `{prefix}:deployment` — written at start; its absence later means
    /// Redis lost the data.
    deployment: String,
    /// `{prefix}:e:` — followed by the host id: its event log, a list,
    /// newest first.
    events: String,
    /// `{prefix}:gm:` — followed by a group name: the set of its hosts
    /// (kept by the heartbeat, swap and remove scripts when a host's
    /// group changes), read when the group decides its outage.
    members: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        Self {
            host: format!("{tag}:h:"),
            due: format!("{tag}:due"),
            hosts: format!("{tag}:hosts"),
            up: format!("{tag}:up"),
            silences: format!("{tag}:silences"),
            mark: format!("{tag}:mark"),
            deployment: format!("{tag}:deployment"),
            events: format!("{tag}:e:"),
            members: format!("{tag}:gm:"),
        }
    }

    fn events(&self, host: &HostId) -> String {
        format!("{}{}", self.events, host.as_str())
    }

    fn host(&self, host: &HostId) -> String {
        let mut k = String::with_capacity(self.host.len() + host.as_str().len());
        k.push_str(&self.host);
        k.push_str(host.as_str());
        k
    }
}

/// Host records in Redis: one hash per host, a sorted set as the due index.
///
/// Cheap to clone (clones share one multiplexed connection). See the crate
/// docs for the key layout.
#[derive(Clone)]
pub struct RedisStore {
    c: Conn,
    beats: mpsc::Sender<Pending>,
    /// The deployment marker's value as this process last saw it.
    marker: Arc<std::sync::Mutex<String>>,
}

/// The connection to Redis: one server, or a Redis Cluster.
///
/// An enum rather than a type parameter keeps `RedisStore` one type for
/// its users; each call costs one branch before it goes to the same
/// connection type as before, which is negligible next to a round trip.
#[derive(Clone)]
enum Link {
    /// One server (or a primary behind a failover address).
    Single(ConnectionManager),
    /// A Redis Cluster: the `redis` crate routes each command to the node
    /// owning its key's slot and follows `MOVED`/`ASK` redirects.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection and the keys: what the store and its heartbeat batcher
/// share.
#[derive(Clone)]
struct Conn {
    conn: Link,
    prefix: Arc<str>,
    keys: Arc<Keys>,
    timeout: Duration,
}

impl fmt::Display for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis({})", self.prefix)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.c.prefix)
            .field("timeout", &self.c.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.c.fmt(f)
    }
}

/// Configures and connects a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: Option<String>,
    cluster: Option<Vec<String>>,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &self.url.as_deref().map(redact))
            .field(
                "cluster",
                &self
                    .cluster
                    .as_ref()
                    .map(|c| c.iter().map(|u| redact(u)).collect::<Vec<_>>()),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `redis://user:secret@host/` → `redis://***@host/`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            cluster: None,
            prefix: RedisStore::DEFAULT_PREFIX.to_owned(),
            timeout: RedisStore::DEFAULT_TIMEOUT,
        }
    }
}

impl RedisStoreBuilder {
    /// The server, e.g. `redis://127.0.0.1:6379/0` or
    /// `rediss://user:password@redis.example:6380/`. Required, unless
    /// [`cluster`](Self::cluster) is used instead.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Connects to a Redis Cluster instead of one server: `seeds` are the
    /// urls of one or more of its nodes, e.g.
    /// `["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"]`. Any one
    /// reachable node is enough; the others are discovered from it, and
    /// each command goes to the node owning its keys' slot (redirects after
    /// resharding are followed). Several seeds only help when some are
    /// down at connect time. Give credentials and `rediss://` in the urls
    /// as for [`url`](Self::url); the database must be 0.
    ///
    /// All of one deployment's keys share the hash tag `{prefix}`, so they
    /// live on one node; deployments with different prefixes spread over
    /// the cluster. Use either this or [`url`](Self::url), not both.
    pub fn cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster = Some(seeds.into_iter().map(Into::into).collect());
        self
    }

    /// The key prefix of this deployment (default `iamalive`): every key
    /// is `{prefix}:…`. 1–128 printable ASCII characters, no `{`, `}` or
    /// spaces.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any one store call may take, connecting included
    /// (default 2 s). While Redis is down every call fails with
    /// [`StoreError::Unavailable`] within this time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the settings and connects.
    ///
    /// Fails with [`StoreError::InvalidInput`] naming the bad setting, or
    /// [`StoreError::Unavailable`] if Redis cannot be reached within the
    /// timeout.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        check_prefix(&self.prefix).map_err(invalid)?;
        if self.timeout.is_zero() {
            return Err(invalid("redis timeout: must be greater than zero".into()));
        }
        let conn = match (self.url, self.cluster) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "redis url and redis cluster: give one, not both".into(),
                ));
            }
            (None, None) => return Err(invalid("redis url: not set".into())),
            (Some(url), None) => Link::Single(connect_single(&url, self.timeout).await?),
            (None, Some(seeds)) => Link::Cluster(connect_cluster(&seeds, self.timeout).await?),
        };
        let c = Conn {
            conn,
            keys: Arc::new(Keys::new(&self.prefix)),
            prefix: self.prefix.into(),
            timeout: self.timeout,
        };
        let marker = c.ensure_marker().await?;
        let (beats, queue) = mpsc::channel(QUEUE);
        tokio::spawn(batcher(c.clone(), queue));
        Ok(RedisStore {
            c,
            beats,
            marker: Arc::new(std::sync::Mutex::new(marker)),
        })
    }
}

fn invalid(reason: String) -> StoreError {
    StoreError::InvalidInput {
        store: STORE,
        reason,
    }
}

/// Awaits `f` within `t`, mapping its error.
async fn within<T>(t: Duration, f: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(map_err(e)),
        Err(_) => Err(timed_out(t)),
    }
}

async fn connect_single(url: &str, timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let client =
        redis::Client::open(url).map_err(|e| invalid(format!("redis url {}: {e}", redact(url))))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(timeout.min(Duration::from_secs(1)));
    within(timeout, ConnectionManager::new_with_config(client, config)).await
}

async fn connect_cluster(
    seeds: &[String],
    timeout: Duration,
) -> Result<ClusterConnection, StoreError> {
    if seeds.is_empty() {
        return Err(invalid("redis cluster: no seed url given".into()));
    }
    let mut infos = Vec::with_capacity(seeds.len());
    for url in seeds {
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
            .map_err(|e| invalid(format!("redis cluster url {}: {e}", redact(url))))?;
        if info.redis_settings().db() != 0 {
            return Err(invalid(format!(
                "redis cluster url {}: a cluster has only database 0",
                redact(url)
            )));
        }
        infos.push(info);
    }
    // Redirects and topology changes are retried inside the cluster
    // client, with short waits; the store's own time limit still bounds
    // every call.
    let client = ClusterClientBuilder::new(infos)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(8)
        .min_retry_wait(10)
        .max_retry_wait(timeout.min(Duration::from_secs(1)).as_millis() as u64)
        .build()
        .map_err(|e| invalid(format!("redis cluster: {e}")))?;
    within(timeout, client.get_async_connection()).await
}

fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 128 {
        return Err(format!("redis prefix {p:?}: must be 1 to 128 characters"));
    }
    if let Some(c) = p
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '{' | '}'))
    {
        return Err(format!(
            "redis prefix {p:?}: {c:?} is not allowed (printable ASCII without '{{', '}}' or spaces)"
        ));
    }
    Ok(())
}

fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || transient_server_kind(e.kind())
        || e.code() == Some("OOM")
        // A transaction (or pipeline) aborted by the server names each
        // command's error: aborted because Redis is loading its data or out
        // of memory, it is as unavailable as a refused connection.
        || e.clone().into_server_errors().is_some_and(|errs| {
            errs.iter().any(|(_, se)| {
                se.code() == "OOM"
                    || se
                        .kind()
                        .is_some_and(|k| transient_server_kind(ErrorKind::Server(k)))
            })
        })
}

/// Server answers that say "not now" rather than "never": loading its
/// data, a cluster or replica in transition, a slot moving.
fn transient_server_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        )
    )
}

fn map_err(e: RedisError) -> StoreError {
    if transient(&e) {
        StoreError::unavailable(STORE, e)
    } else {
        StoreError::backend(STORE, e)
    }
}

fn timed_out(t: Duration) -> StoreError {
    StoreError::unavailable(STORE, format!("no answer within {t:?}"))
}

impl RedisStore {
    /// The prefix used when none is given.
    pub const DEFAULT_PREFIX: &'static str = "iamalive";
    /// The per-call time limit used when none is given.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to `url` with keys under `prefix` and default settings.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), iamalive_core::StoreError> {
    /// let store = iamalive_store_redis::RedisStore::from_url("redis://127.0.0.1/", "prod").await?;
    /// assert_eq!(store.to_string(), "redis(prod)");
    /// # Ok(()) }
    /// ```
    pub async fn from_url(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        Self::builder().url(url).prefix(prefix).build().await
    }

    /// A builder with the default prefix and timeout.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.c.prefix
    }

    /// The hash key holding `host`'s record (`{prefix}:h:<host>`).
    pub fn host_key(&self, host: &HostId) -> String {
        self.c.keys.host(host)
    }

    /// The sorted set indexing hosts by `due_at` in milliseconds
    /// (`{prefix}:due`).
    pub fn due_key(&self) -> &str {
        &self.c.keys.due
    }

    /// The hash of up hosts' fast-path entries (`{prefix}:up`): host id →
    /// `due_at`, `last_seen` and `version`; while a host has an entry, its
    /// `version` and `last_seen` there are the true ones.
    pub fn up_key(&self) -> &str {
        &self.c.keys.up
    }
}

impl Conn {
    /// Runs one Redis call under the time limit. With `retry`, a call that
    /// failed on a dropped connection (e.g. the first call after a Redis
    /// restart) is tried once more on the reconnected one, within the same
    /// time limit; only for calls that are safe to repeat.
    /// Writes the deployment marker if it is absent (`SET NX`) and
    /// returns its value: `<nanoseconds>-<pid>@<time written>`.
    async fn ensure_marker(&self) -> Result<String, StoreError> {
        let now = chrono::Utc::now();
        let value = format!(
            "{}-{}@{}",
            now.timestamp_nanos_opt().unwrap_or_default(),
            std::process::id(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let key = &self.keys.deployment;
        let value = &value;
        self.call(true, |mut c| {
            Box::pin(async move {
                let (v,): (String,) = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(key)
                    .query_async(&mut c)
                    .await?;
                Ok(v)
            })
        })
        .await
    }

    /// The deployment marker's value, `None` if it is gone.
    async fn read_marker(&self) -> Result<Option<String>, StoreError> {
        let key = &self.keys.deployment;
        self.call(true, |mut c| {
            Box::pin(async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
        })
        .await
    }

    async fn call<'a, T>(
        &'a self,
        retry: bool,
        f: impl Fn(Link) -> BoxFut<'a, T>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut tries = if retry { 2 } else { 1 };
        loop {
            tries -= 1;
            match tokio::time::timeout_at(deadline, f(self.conn.clone())).await {
                Err(_) => return Err(timed_out(self.timeout)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if tries > 0 && e.is_unrecoverable_error() => {
                    tracing::debug!(store = %self, error = %e, "redis connection lost; trying again");
                }
                Ok(Err(e)) => return Err(map_err(e)),
            }
        }
    }

    /// Runs `cmd` through [`call`](Self::call) (`retry`: whether it is
    /// safe to send twice).
    async fn query<T: FromRedisValue + Send>(
        &self,
        retry: bool,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.call(retry, |mut c| {
            Box::pin(async move { cmd.query_async(&mut c).await })
        })
        .await
    }

    /// Runs a prepared script (`EVALSHA`, the script loaded first when
    /// Redis does not know it) through [`call`](Self::call).
    async fn invoke<T: FromRedisValue + Send>(
        &self,
        retry: bool,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.call(retry, |mut c| {
            Box::pin(async move { inv.invoke_async(&mut c).await })
        })
        .await
    }

    /// The first `limit` members of the sorted set `key` scored at most
    /// `now` (a due index: hosts' or groups').
    async fn due_members(
        &self,
        key: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(key)
            .arg("-inf")
            .arg(score(now))
            .arg("LIMIT")
            .arg(0)
            .arg(limit.min(i64::MAX as usize));
        self.query(true, &cmd).await
    }

    /// The lowest score of the sorted set `key` (a due index) as an
    /// instant; `None` when it is empty.
    async fn first_due(&self, key: &str) -> Result<Option<Timestamp>, StoreError> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key).arg(0).arg(0).arg("WITHSCORES");
        let first: Vec<(String, f64)> = self.query(true, &cmd).await?;
        Ok(first.first().and_then(|(_, s)| from_score(*s)))
    }

    /// The records of `hosts`, read in one transaction (`MULTI`): the up
    /// entries (`HMGET {prefix}:up`) and one `HGETALL` per host, merged.
    /// Absent hosts are skipped.
    async fn records(&self, hosts: &[String]) -> Result<Vec<HostRecord>, StoreError> {
        if hosts.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = hosts
            .iter()
            .map(|h| format!("{}{h}", self.keys.host))
            .collect();
        let values: Vec<Value> = match self.conn {
            Link::Single(_) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                pipe.cmd("HMGET").arg(&self.keys.up).arg(hosts);
                for k in &keys {
                    pipe.cmd("HGETALL").arg(k);
                }
                let pipe = &pipe;
                self.call(true, |mut c| {
                    Box::pin(async move { pipe.query_async(&mut c).await })
                })
                .await?
            }
            // A transaction is not redirected as a whole when its slot
            // moves; a script is (and retried while the slot is half
            // moved), and it is one atomic step all the same.
            Link::Cluster(_) => {
                let mut inv = scripts::RECORDS.prepare_invoke();
                inv.key(&self.keys.up);
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(hosts);
                self.invoke(true, &inv).await?
            }
        };
        let mut values = values.into_iter();
        let ups: Vec<Option<String>> = parse(&self.keys.up, values.next())?;
        let mut out = Vec::with_capacity(keys.len());
        for ((k, v), up) in keys.iter().zip(values).zip(ups) {
            let m: HashMap<String, String> = parse(k, Some(v))?;
            if let Some(mut r) = decode(k, m)? {
                if let Some(e) = up {
                    merge_up(k, &mut r, &e)?;
                }
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// One reply of a transaction, converted.
fn parse<T: FromRedisValue>(key: &str, v: Option<Value>) -> Result<T, StoreError> {
    let v = v.ok_or_else(|| StoreError::Corrupt {
        store: STORE,
        key: key.to_owned(),
        reason: "no reply".into(),
    })?;
    redis::from_redis_value(v).map_err(|e| StoreError::Corrupt {
        store: STORE,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Runs a prepared `EVALSHA` of `script`, loading the script first when
/// Redis does not know it (a restart emptied its script cache).
async fn eval<T: FromRedisValue>(conn: &mut Link, script: &Script, cmd: &Cmd) -> RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        r => r,
    }
}

#[async_trait]
impl Store for RedisStore {
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
        let hosts = self.c.due_members(&self.c.keys.due, now, limit).await?;
        let mut recs = self.c.records(&hosts).await?;
        // Scores are whole milliseconds: drop the few due within the
        // current millisecond but after `now`.
        recs.retain(|r| r.due_at.is_some_and(|d| d <= now));
        Ok(recs)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.c.first_due(&self.c.keys.due).await
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        Ok(self.c.records(&[host.as_str().to_owned()]).await?.pop())
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    /// The group's set `{prefix}:gm:<group>`, then its hosts' records in
    /// one round trip: O(group size).
    async fn group_hosts(
        &self,
        group: &iamalive_core::GroupName,
        limit: usize,
    ) -> Result<Option<Vec<HostRecord>>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(format!("{}{group}", self.c.keys.members));
        let mut hosts: Vec<String> = self.c.query(true, &cmd).await?;
        hosts.sort();
        hosts.truncate(limit);
        Ok(Some(self.c.records(&hosts).await?))
    }

    fn counts_hosts(&self) -> bool {
        true
    }

    async fn host_count(&self) -> Result<Option<u64>, StoreError> {
        self.count_hosts().await.map(Some)
    }

    /// `ZCOUNT` on the due index: O(log hosts). Scores are whole
    /// milliseconds, so a host due later within `until`'s millisecond
    /// counts too.
    async fn count_due(&self, until: Timestamp, at_most: u64) -> Result<Option<u64>, StoreError> {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(&self.c.keys.due).arg("-inf").arg(score(until));
        let n: u64 = self.c.query(true, &cmd).await?;
        Ok(Some(n.min(at_most)))
    }

    async fn get_group(&self, group: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.group(group).await
    }

    /// `HGET version` of the group's hash, the body left on the server.
    async fn group_version(&self, group: &GroupName) -> Result<Option<u64>, StoreError> {
        self.group_version_of(group).await.map(Some)
    }

    async fn swap_group(&self, expected: u64, next: &GroupRecord) -> Result<bool, StoreError> {
        self.swap_group_record(expected, next).await
    }

    async fn due_groups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        self.groups_due(now, limit).await
    }

    async fn next_group_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.group_next_due().await
    }

    async fn compare_and_swap(&self, expected: u64, next: &HostRecord) -> Result<bool, StoreError> {
        let mut inv = scripts::CAS.prepare_invoke();
        inv.key(self.c.keys.host(&next.host))
            .key(&self.c.keys.due)
            .key(&self.c.keys.hosts)
            .key(&self.c.keys.up)
            .arg(expected.to_string())
            .arg(next.host.as_str())
            .arg(
                next.due_at
                    .map(|d| score(d).to_string())
                    .unwrap_or_default(),
            )
            .arg(up_entry(next).unwrap_or_default())
            .arg(next.group.as_ref().map_or("", |g| g.as_str()))
            .arg(&self.c.keys.members);
        for (k, v) in encode(next)? {
            inv.arg(k).arg(v);
        }
        let inv = &inv;
        // Never repeated: a swap that landed but whose answer was lost would
        // report a conflict the second time.
        let n: i64 = self.c.invoke(false, inv).await?;
        Ok(n == 1)
    }

    async fn list(
        &self,
        after: Option<&HostId>,
        limit: usize,
    ) -> Result<Vec<HostRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let min = after.map_or_else(|| "-".to_owned(), |h| format!("({h}"));
        let mut cmd = redis::cmd("ZRANGEBYLEX");
        cmd.arg(&self.c.keys.hosts)
            .arg(min)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.min(i64::MAX as usize));
        let hosts: Vec<String> = self.c.query(true, &cmd).await?;
        self.c.records(&hosts).await
    }

    async fn remove(&self, host: &HostId) -> Result<bool, StoreError> {
        let mut inv = scripts::REMOVE.prepare_invoke();
        inv.key(self.c.keys.host(host))
            .key(&self.c.keys.due)
            .key(&self.c.keys.hosts)
            .key(&self.c.keys.up)
            .arg(host.as_str())
            .arg(&self.c.keys.members);
        let n: i64 = self.c.invoke(false, &inv).await?;
        let mut del = redis::cmd("DEL");
        del.arg(self.c.keys.events(host));
        self.c.query::<()>(true, &del).await?;
        Ok(n == 1)
    }

    async fn append_event(
        &self,
        host: &HostId,
        event: &Event,
        keep: usize,
    ) -> Result<(), StoreError> {
        let json = encode_json(STORE, format_args!("event of {host}"), event)?;
        let key = self.c.keys.events(host);
        let last = isize::try_from(keep).unwrap_or(isize::MAX) - 1;
        let mut pipe = redis::pipe();
        // MULTI/EXEC: the push and the trim are one step.
        pipe.atomic()
            .cmd("LPUSH")
            .arg(&key)
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(last)
            .ignore();
        let pipe = &pipe;
        // Not retried: a retry after a lost answer could log twice.
        self.c
            .call(false, |mut c| {
                Box::pin(async move { pipe.query_async::<()>(&mut c).await })
            })
            .await
    }

    async fn events(&self, host: &HostId, limit: usize) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = self.c.keys.events(host);
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(&key)
            .arg(0)
            .arg(isize::try_from(limit).unwrap_or(isize::MAX) - 1);
        let items: Vec<String> = self.c.query(true, &cmd).await?;
        items
            .iter()
            .map(|j| {
                serde_json::from_str(j).map_err(|e| StoreError::Corrupt {
                    store: STORE,
                    key: key.clone(),
                    reason: format!("event: {e}"),
                })
            })
            .collect()
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let json = encode_json(STORE, format_args!("silence {}", silence.id), silence)?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.c.keys.silences).arg(&silence.id).arg(json);
        self.c.query::<()>(true, &cmd).await
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.c.keys.silences);
        let cmd = &cmd;
        let m: HashMap<String, String> = self.c.query(true, cmd).await?;
        let mut out = Vec::with_capacity(m.len());
        for (id, json) in m {
            out.push(
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    store: STORE,
                    key: format!("{} {id}", self.c.keys.silences),
                    reason: e.to_string(),
                })?,
            );
        }
        out.sort_by(|a: &Silence, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(&self.c.keys.silences).arg(id);
        let n: i64 = self.c.query(false, &cmd).await?;
        Ok(n == 1)
    }

    async fn check(&self) -> Result<(), StoreError> {
        let known = self
            .marker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let found = self.c.read_marker().await?;
        if found.as_deref() == Some(known.as_str()) {
            return Ok(());
        }
        let key = &self.c.keys.deployment;
        let written = known.split_once('@').map_or("?", |(_, t)| t);
        let what = match &found {
            None => {
                let fresh = self.c.ensure_marker().await?;
                *self.marker.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                format!(
                    "the deployment marker {key} (written {written}) is gone, so Redis lost \
                     its data (restarted without persistence, flushed, or evicted); the marker \
                     is written again"
                )
            }
            Some(other) => {
                *self.marker.lock().unwrap_or_else(|e| e.into_inner()) = other.clone();
                format!(
                    "the deployment marker {key} (written {written}) was replaced (now {other}): \
                     Redis lost its data and another watcher noticed first"
                )
            }
        };
        Err(StoreError::lost(
            STORE,
            format!(
                "{what}. Every host record, silence and reminder schedule is gone: hosts that \
                 still run are known again from their next heartbeat; hosts that were silent or \
                 alarmed are not watched (no alarm, no reminder) until they report again, so \
                 check them by hand"
            ),
        ))
    }

    async fn mark_run(&self, now: Timestamp, gap: Duration) -> Result<MonitorMark, StoreError> {
        for _ in 0..MARK_ROUNDS {
            let mut read = redis::cmd("HGETALL");
            read.arg(&self.c.keys.mark);
            let m: HashMap<String, String> = self.c.query(true, &read).await?;
            let (mark, version) = decode_mark(&self.c.keys.mark, &m)?;
            let next = mark.advance(now, gap);
            let mut inv = scripts::MARK.prepare_invoke();
            inv.key(&self.c.keys.mark)
                .arg(version.to_string())
                .arg((version + 1).to_string());
            for (k, v) in encode_mark(&next) {
                inv.arg(k).arg(v);
            }
            // Repeating is harmless: advancing twice to the same instant
            // gives the same mark.
            let n: i64 = self.c.invoke(true, &inv).await?;
            if n == 1 {
                return Ok(next);
            }
        }
        Err(StoreError::unavailable(
            STORE,
            format!(
                "{}: gave up after {MARK_ROUNDS} contended tries",
                self.c.keys.mark
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("prod-eu.1").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a b").is_err());
        assert!(check_prefix(&"x".repeat(129)).is_err());
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("prod");
        assert_eq!(k.host(&HostId::new("Web-1").unwrap()), "{prod}:h:web-1");
        assert_eq!(k.due, "{prod}:due");
        assert_eq!(k.hosts, "{prod}:hosts");
        assert_eq!(k.up, "{prod}:up");
        assert_eq!(k.silences, "{prod}:silences");
        assert_eq!(k.mark, "{prod}:mark");
        assert_eq!(k.events(&HostId::new("web-1").unwrap()), "{prod}:e:web-1");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
    }
}
