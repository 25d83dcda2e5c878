//! The monitor's side of "missed a beat" evidence in a group's outage
//! (see [`crate::group_outage::missed`]): reading the group's hosts when
//! its gathering ends, and looking again at the hosts named on a missed
//! beat when their own deadlines come.

use super::{Monitor, SweepReport};
use crate::group_outage::missed;
use crate::{Clock, GroupPolicy, GroupRecord, Policy, Store, StoreError, Timestamp};

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// `g`, a gathering about to resolve, with each host of its group that
    /// missed its expected beat at `now` added as evidence: one read of
    /// the group's hosts by the store's group index (O(group size)), only
    /// when a group decides. Unchanged on a store that cannot read a
    /// group's hosts without a scan.
    pub(super) async fn with_evidence(
        &self,
        g: &GroupRecord,
        now: Timestamp,
    ) -> Result<GroupRecord, StoreError> {
        let Some(hosts) = self
            .store
            .group_hosts(&g.group, missed::MAX_GROUP_HOSTS)
            .await?
        else {
            return Ok(g.clone());
        };
        if hosts.len() >= missed::MAX_GROUP_HOSTS {
            tracing::warn!(group = %g.group, read = hosts.len(), "group has more hosts than are read for missed-beat evidence; some are not counted");
        }
        // A host under a silence is expected to be quiet: its missed beat
        // is no evidence of its site's outage (its own alarm is silenced
        // too). The silences are read only here, when a group decides.
        let silences = self.store.silences().await?;
        let hosts: Vec<_> = hosts
            .into_iter()
            .filter(|r| !silences.iter().any(|s| s.covers(&r.host, now)))
            .collect();
        Ok(missed::add_evidence(g, &hosts, now, |r| {
            self.policies.for_record(r)
        }))
    }

    /// Looks at the members of `g` named on a missed beat whose own
    /// deadline came (one read per such host) and writes what became of
    /// them; `true` when it wrote or lost the swap (read the group again).
    pub(super) async fn check_missed(
        &self,
        g: &GroupRecord,
        now: Timestamp,
        gp: &GroupPolicy,
        policy: &Policy,
        report: &mut SweepReport,
    ) -> Result<bool, StoreError> {
        let hosts = missed::to_check(g, now);
        if hosts.is_empty() {
            return Ok(false);
        }
        let mut records = Vec::with_capacity(hosts.len());
        for h in hosts {
            let rec = self.store.get(&h).await?;
            records.push((h, rec));
        }
        let Some(mut next) = missed::check(g, &records, now, gp, policy) else {
            return Ok(false);
        };
        next.version = g.version + 1;
        if !self.write_group(g.version, &next).await? {
            report.conflicts += 1;
        }
        Ok(true)
    }
}
