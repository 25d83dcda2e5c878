//! Group outage records: one item per group, keyed `#g:<group>` (so host
//! listings skip it), holding `version`, the record as JSON and, while
//! due, `dueAt` under the due index's own shard `g`, which host queries
//! (shards `0`…`n-1`) never read. A swap is one conditional put of that
//! item.
//!
//! **Large groups.** A site of thousands of hosts makes a record of
//! megabytes, and DynamoDB refuses an item over 400 KB. A body up to
//! [`INLINE_MAX`] sits in the item (`body`); a longer one is written
//! first as immutable *parts* of at most [`PART_MAX`] bytes each, keyed
//! `#g:<group>#p:<write id>#<i>` under a fresh random write id, and the
//! group's item names them (`partsId`, `parts`). The conditional put of
//! the group's item stays the one step that decides a swap, so the
//! compare-and-swap is exactly as honest as for a small record: parts are
//! invisible until the put that names them wins; a writer that lost
//! deletes its own parts, and the winner deletes the parts of the record
//! it replaced (read back with `ReturnValues=ALL_OLD`, at no extra cost).
//! A reader that finds a part gone (replaced meanwhile) reads the group's
//! item again. A writer that dies between its parts and its put leaves
//! parts no item names: unread, only their storage is lost.
//!
//! Why parts rather than one item per member: a sweep batch changes
//! hundreds of members at once, and a transaction holds at most 100
//! items, so per-member items could not be swapped atomically with the
//! group's phase and outbox; parts keep one conditional put deciding
//! everything. Why not compression alone: it only moves the limit.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use iamalive_core::{GroupName, GroupRecord, StoreError, Timestamp, encode_json};

use crate::codec::*;
use crate::{DynamoStore, STORE, error, key, n, s};

/// The longest record body kept in the group's own item (DynamoDB's item
/// limit is 400 KB, key and attribute names included).
pub(crate) const INLINE_MAX: usize = 350 * 1024;
/// The longest part of a longer body.
pub(crate) const PART_MAX: usize = 350 * 1024;
/// The attribute naming a record's parts: its write id.
const PARTS_ID: &str = "partsId";
/// The attribute counting a record's parts.
const PARTS: &str = "parts";
/// A part's bytes.
const PART: &str = "part";
/// How often a reader reads a group's item again after finding one of
/// its parts replaced.
const READ_ROUNDS: usize = 8;

fn part_key(g: &str, id: &str, i: usize) -> String {
    format!("#g:{g}#p:{id}#{i}")
}

/// The due index shard of group records.
const GROUP_SHARD: &str = "g";
/// The attribute holding a group record's JSON.
const BODY: &str = "body";

fn group_key(g: &str) -> String {
    format!("#g:{g}")
}

fn decode(k: &str, body: &str, version: u64) -> Result<GroupRecord, StoreError> {
    let mut g: GroupRecord =
        serde_json::from_str(body).map_err(|e| corrupt(k, format!("not a group record: {e}")))?;
    g.version = version;
    Ok(g)
}

/// Where a group item's body is: in it, or in parts.
enum Body<'a> {
    Inline(&'a str),
    Parts { id: &'a str, count: usize },
}

fn body_of<'a>(k: &str, item: &'a Item) -> Result<Body<'a>, StoreError> {
    if let Some(b) = get_s(item, BODY) {
        return Ok(Body::Inline(b));
    }
    let id = get_s(item, PARTS_ID).ok_or_else(|| corrupt(k, "no body"))?;
    let count = usize::try_from(get_u64(item, k, PARTS)?).map_err(|_| corrupt(k, "parts"))?;
    Ok(Body::Parts { id, count })
}

impl DynamoStore {
    pub(crate) async fn group(&self, g: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.group_at(&group_key(g.as_str())).await
    }

    /// The group record whose item is `k`: its body read from the item or
    /// from its parts, the item read again if a part was replaced
    /// meanwhile.
    async fn group_at(&self, k: &str) -> Result<Option<GroupRecord>, StoreError> {
        for _ in 0..READ_ROUNDS {
            let Some(item) = self.get_item(k).await? else {
                return Ok(None);
            };
            let version = get_u64(&item, k, VERSION)?;
            match body_of(k, &item)? {
                Body::Inline(body) => return decode(k, body, version).map(Some),
                Body::Parts { id, count } => {
                    let group = k.strip_prefix("#g:").unwrap_or(k);
                    if let Some(body) = self.read_parts(group, id, count).await? {
                        return decode(k, &body, version).map(Some);
                    }
                }
            }
        }
        Err(StoreError::Contended {
            key: k.to_owned(),
            rounds: READ_ROUNDS,
        })
    }

    /// A body's parts joined; `None` if one is gone (the record was
    /// replaced since its item was read).
    async fn read_parts(
        &self,
        group: &str,
        id: &str,
        count: usize,
    ) -> Result<Option<String>, StoreError> {
        let keys: Vec<String> = (0..count).map(|i| part_key(group, id, i)).collect();
        let items = futures::future::try_join_all(keys.iter().map(|k| self.get_item(k))).await?;
        let mut body = Vec::new();
        for (k, item) in keys.iter().zip(items) {
            let Some(item) = item else { return Ok(None) };
            match item.get(PART) {
                Some(AttributeValue::B(b)) => body.extend_from_slice(b.as_ref()),
                _ => return Err(corrupt(k, "no part")),
            }
        }
        String::from_utf8(body)
            .map(Some)
            .map_err(|_| corrupt(group, "parts are not UTF-8"))
    }

    /// Deletes the parts of one write (best effort: parts no item names
    /// are never read, so a failure costs only their storage).
    async fn delete_parts(&self, group: &str, id: &str, count: usize) {
        let deletes = (0..count).map(|i| {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(part_key(group, id, i))))
                .send()
        });
        for r in futures::future::join_all(deletes).await {
            if let Err(e) = r {
                tracing::debug!(store = %self, group, error = %error::map(e), "could not delete a group record part");
            }
        }
    }

    pub(crate) async fn swap_group_item(
        &self,
        expected: u64,
        next: &GroupRecord,
    ) -> Result<bool, StoreError> {
        let body = encode_json(STORE, "group record", next)?;
        let group = next.group.as_str();
        let mut item = key(group_key(group));
        item.insert(VERSION.into(), AttributeValue::N(next.version.to_string()));
        if let Some(d) = next.due_at {
            item.insert(DUE_AT.into(), n_time(d));
            item.insert(DUE_SHARD.into(), s(GROUP_SHARD));
        }
        let mut written = None;
        if body.len() <= INLINE_MAX {
            item.insert(BODY.into(), s(body));
        } else {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let parts: Vec<&[u8]> = body.as_bytes().chunks(PART_MAX).collect();
            let puts = parts.iter().enumerate().map(|(i, p)| {
                let mut part = key(part_key(group, &id, i));
                part.insert(PART.into(), AttributeValue::B(Blob::new(*p)));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(part))
                    .send()
            });
            let put = futures::future::try_join_all(puts).await;
            if let Err(e) = put {
                self.delete_parts(group, &id, parts.len()).await;
                return Err(error::map(e));
            }
            item.insert(PARTS_ID.into(), s(id.clone()));
            item.insert(PARTS.into(), n(parts.len()));
            written = Some((id, parts.len()));
        }
        let won = self.put_if_version_old(item, expected, true).await;
        match won {
            Ok(Some(old)) => {
                // The replaced record's parts, if it had any.
                let k = group_key(group);
                if let Some(old) = old
                    && let Ok(Body::Parts { id, count }) = body_of(&k, &old)
                {
                    self.delete_parts(group, id, count).await;
                }
                Ok(true)
            }
            other => {
                if let Some((id, count)) = written {
                    self.delete_parts(group, &id, count).await;
                }
                other.map(|_| false)
            }
        }
    }

    pub(crate) async fn groups_due(
        &self,
        now: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let want = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let page = self
            .due_index_query(GROUP_SHARD.to_owned(), now, want)
            .send()
            .await
            .map_err(error::map)?;
        let mut out = Vec::new();
        for it in page.items() {
            let Some(k) = get_s(it, PK) else { continue };
            // The index may lag: read the item itself.
            if let Some(g) = self.group_at(k).await?
                && now.is_none_or(|now| g.due_at.is_some_and(|d| d <= now))
            {
                out.push(g);
            }
        }
        Ok(out)
    }
}
