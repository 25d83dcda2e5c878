//! Opening each store under test in its own namespace.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use iamalive_core::{MemoryStore, Store, StoreError};
use iamalive_store_redis::RedisStore;
use iamalive_store_sqlite::SqliteStore;

use crate::{HandoffStore, NullStore};

/// Which store a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`NullStore`]: nothing stored.
    Null,
    /// [`MemoryStore`].
    Memory,
    /// [`SqliteStore`] in a fresh temporary file.
    Sqlite,
    /// [`RedisStore`] with a fresh key prefix.
    Redis,
    /// [`HandoffStore`]: nothing stored, but answered from another thread
    /// like the SQLite store's writer (not in [`Backend::ALL`]; ask for it).
    Handoff,
    /// [`HandoffStore::yielding`]: nothing stored, the handler suspended
    /// once and resumed on its own runtime (not in [`Backend::ALL`]).
    Yield,
}

impl Backend {
    /// Every backend, the null one first.
    pub const ALL: [Backend; 4] = [
        Backend::Null,
        Backend::Memory,
        Backend::Sqlite,
        Backend::Redis,
    ];

    /// The stores users run: memory, SQLite, Redis.
    pub const STORES: [Backend; 3] = [Backend::Memory, Backend::Sqlite, Backend::Redis];

    /// `null`, `memory`, `sqlite`, `redis`, `handoff` or `yield`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Null => "null",
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
            Backend::Handoff => "handoff",
            Backend::Yield => "yield",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Backend::ALL
            .into_iter()
            .chain([Backend::Handoff, Backend::Yield])
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown store {s:?}: expected null, memory, sqlite, redis, handoff or yield"
                )
            })
    }
}

/// A store under test, with whatever must live as long as it (its
/// temporary directory).
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The SQLite file, for footprint figures.
    pub sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

/// A redis-server on loopback shared by the Redis runs of one process;
/// each store gets its own key prefix on it.
pub fn redis_server() -> iamalive_testkit::Server {
    iamalive_testkit::redis()
}

/// The stores a harness runs on, and the redis-server they need.
#[derive(Debug)]
pub struct Selected {
    /// The stores, in order.
    pub stores: Vec<Backend>,
    /// The redis-server of the Redis runs (stopped when dropped), if any.
    pub redis: Option<iamalive_testkit::Server>,
    /// Its URL, for [`open`].
    pub redis_url: Option<String>,
}

impl Selected {
    /// The URL of the redis-server started, if any, for [`open`].
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }
}

/// The stores `chosen` on the command line, `default` when none was, with
/// a redis-server started when one of them is [`Backend::Redis`].
pub fn select(chosen: &[Backend], default: &[Backend]) -> Selected {
    let stores = if chosen.is_empty() {
        default.to_vec()
    } else {
        chosen.to_vec()
    };
    let redis = stores.contains(&Backend::Redis).then(redis_server);
    let redis_url = redis.as_ref().map(|r| r.redis_url());
    Selected {
        stores,
        redis,
        redis_url,
    }
}

/// Opens a fresh, empty store. `redis_url` is needed for
/// [`Backend::Redis`]; call from inside the runtime that will use the
/// store (the Redis connection lives there).
pub async fn open(backend: Backend, redis_url: Option<&str>) -> Result<Opened, StoreError> {
    let n: u64 = rand_suffix();
    Ok(match backend {
        Backend::Null => Opened {
            store: Arc::new(NullStore),
            sqlite_path: None,
            _dir: None,
        },
        Backend::Handoff => Opened {
            store: Arc::new(HandoffStore::new().map_err(|e| StoreError::backend("bench", e))?),
            sqlite_path: None,
            _dir: None,
        },
        Backend::Yield => Opened {
            store: Arc::new(HandoffStore::yielding()),
            sqlite_path: None,
            _dir: None,
        },
        Backend::Memory => Opened {
            store: Arc::new(MemoryStore::new()),
            sqlite_path: None,
            _dir: None,
        },
        Backend::Sqlite => {
            let dir = tempfile::tempdir().map_err(|e| StoreError::backend("bench", e))?;
            let path = dir.path().join("iamalive.db");
            let store = SqliteStore::builder().path(&path).build()?;
            Opened {
                store: Arc::new(store),
                sqlite_path: Some(path),
                _dir: Some(dir),
            }
        }
        Backend::Redis => {
            let url = redis_url.ok_or_else(|| StoreError::InvalidInput {
                store: "bench",
                reason: "the redis store needs a redis-server".into(),
            })?;
            let store = RedisStore::from_url(url, &format!("bench-{n:x}")).await?;
            Opened {
                store: Arc::new(store),
                sqlite_path: None,
                _dir: None,
            }
        }
    })
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// An SDK configuration for DynamoDB on moto at `url` (fake credentials,
/// `us-east-1`); add interceptors before building it.
pub fn moto_config(url: &str) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
}
