//! Group outage records: `{prefix}:g:<group>`, a hash of `version` and
//! `body` (the record as JSON), and `{prefix}:gdue`, a sorted set of groups
//! scored by `due_at` in milliseconds. A swap is one script: the version
//! check, the write and the due index move together.

use std::sync::LazyLock;

use iamalive_core::{GroupName, GroupRecord, StoreError, Timestamp, encode_json};
use redis::Script;

use crate::codec::{corrupt, score};
use crate::{RedisStore, STORE};

/// KEYS: the group's hash, the due set. ARGV: expected version (0: only
/// if absent), new version, body, due score (empty: not due), group name.
static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HGET', KEYS[1], 'version') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'body', ARGV[3])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
return 1
",
    )
});

impl RedisStore {
    fn group_key(&self, g: &str) -> String {
        format!("{{{}}}:g:{g}", self.c.prefix)
    }

    fn group_due_key(&self) -> String {
        format!("{{{}}}:gdue", self.c.prefix)
    }

    pub(crate) async fn group(&self, g: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        let key = self.group_key(g.as_str());
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&key).arg("version").arg("body");
        let (v, body): (Option<String>, Option<String>) = self.c.query(true, &cmd).await?;
        let (Some(v), Some(body)) = (v, body) else {
            return Ok(None);
        };
        let mut rec: GroupRecord = serde_json::from_str(&body)
            .map_err(|e| corrupt(&key, format!("not a group record: {e}")))?;
        rec.version = v
            .parse()
            .map_err(|e| corrupt(&key, format!("version {v:?}: {e}")))?;
        Ok(Some(rec))
    }

    pub(crate) async fn group_version_of(&self, g: &GroupName) -> Result<u64, StoreError> {
        let key = self.group_key(g.as_str());
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&key).arg("version");
        let v: Option<String> = self.c.query(true, &cmd).await?;
        v.map_or(Ok(0), |v| {
            v.parse()
                .map_err(|e| corrupt(&key, format!("version {v:?}: {e}")))
        })
    }

    pub(crate) async fn swap_group_record(
        &self,
        expected: u64,
        next: &GroupRecord,
    ) -> Result<bool, StoreError> {
        let body = encode_json(STORE, "group record", next)?;
        let mut inv = SWAP.prepare_invoke();
        inv.key(self.group_key(next.group.as_str()))
            .key(self.group_due_key())
            .arg(expected.to_string())
            .arg(next.version.to_string())
            .arg(body)
            .arg(
                next.due_at
                    .map(|d| score(d).to_string())
                    .unwrap_or_default(),
            )
            .arg(next.group.as_str());
        // Never repeated: a swap that landed but whose answer was lost would
        // report a conflict the second time.
        let n: i64 = self.c.invoke(false, &inv).await?;
        Ok(n == 1)
    }

    pub(crate) async fn groups_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let names = self
            .c
            .due_members(&self.group_due_key(), now, limit)
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let g = GroupName::stored(&n)
                .map_err(|e| corrupt(&self.group_due_key(), format!("{n:?}: {e}")))?;
            if let Some(r) = self.group(&g).await?
                && r.due_at.is_some_and(|d| d <= now)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// How many hosts there are: `ZCARD` of the host index, O(1).
    pub(crate) async fn count_hosts(&self) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(&self.c.keys.hosts);
        let cmd = &cmd;
        self.c
            .call(true, |mut c| {
                Box::pin(async move { cmd.query_async(&mut c).await })
            })
            .await
    }

    pub(crate) async fn group_next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.c.first_due(&self.group_due_key()).await
    }
}
