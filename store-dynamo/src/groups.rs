//! Group outage records: one item per group, keyed `#g:<group>` (so host
//! listings skip it), holding `version`, `body` (the record as JSON) and,
//! while due, `dueAt` under the due index's own shard `g`, which host
//! queries (shards `0`…`n-1`) never read. A swap is one conditional put.

use aws_sdk_dynamodb::types::AttributeValue;
use iamalive_core::{GroupName, GroupRecord, StoreError, Timestamp};

use crate::codec::*;
use crate::{DUE_INDEX, DynamoStore, STORE, error, key, s};

/// The due index shard of group records.
const GROUP_SHARD: &str = "g";
/// The attribute holding a group record's JSON.
const BODY: &str = "body";

fn group_key(g: &str) -> String {
    format!("#g:{g}")
}

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        store: STORE,
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn decode(item: &Item) -> Result<GroupRecord, StoreError> {
    let k = get_s(item, PK).unwrap_or("#g:?");
    let body = get_s(item, BODY).ok_or_else(|| corrupt(k, "no body"))?;
    let mut g: GroupRecord =
        serde_json::from_str(body).map_err(|e| corrupt(k, format!("not a group record: {e}")))?;
    g.version = get_u64(item, k, VERSION)?;
    Ok(g)
}

impl DynamoStore {
    pub(crate) async fn group(&self, g: &GroupName) -> Result<Option<GroupRecord>, StoreError> {
        self.get_item(&group_key(g.as_str()))
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    pub(crate) async fn swap_group_item(
        &self,
        expected: u64,
        next: &GroupRecord,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(next).map_err(|e| StoreError::InvalidInput {
            store: STORE,
            reason: format!("group record cannot be encoded: {e}"),
        })?;
        let mut item = key(group_key(next.group.as_str()));
        item.insert(VERSION.into(), AttributeValue::N(next.version.to_string()));
        item.insert(BODY.into(), s(body));
        if let Some(d) = next.due_at {
            item.insert(DUE_AT.into(), n_time(d));
            item.insert(DUE_SHARD.into(), s(GROUP_SHARD));
        }
        self.put_if_version(item, expected).await
    }

    pub(crate) async fn groups_due(
        &self,
        now: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<GroupRecord>, StoreError> {
        let want = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .expression_attribute_names("#shard", DUE_SHARD)
            .expression_attribute_values(":shard", s(GROUP_SHARD))
            .scan_index_forward(true)
            .limit(want);
        req = match now {
            Some(now) => req
                .key_condition_expression("#shard = :shard AND #due <= :now")
                .expression_attribute_names("#due", DUE_AT)
                .expression_attribute_values(":now", n_time(now)),
            None => req.key_condition_expression("#shard = :shard"),
        };
        let page = req.send().await.map_err(error::map)?;
        let mut out = Vec::new();
        for it in page.items() {
            let Some(k) = get_s(it, PK) else { continue };
            // The index may lag: read the item itself.
            if let Some(item) = self.get_item(k).await? {
                let g = decode(&item)?;
                if now.is_none_or(|now| g.due_at.is_some_and(|d| d <= now)) {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }
}
