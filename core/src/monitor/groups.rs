//! The monitor's side of group outages: asking a host's group what to do
//! with its notice, and sweeping due group records (see
//! [`crate::group_outage`] for the transitions).

use std::collections::HashMap;
use std::sync::Arc;

use super::{MAX_ROUNDS, Monitor, SweepReport};
use crate::decide::{ChannelOutcome, Round};
use crate::group_outage::{self, GroupPhase, Verdict};
use crate::{
    Clock, GroupName, GroupPolicy, GroupRecord, HostRecord, Notice, NoticeKind, Policy, Status,
    Store, StoreError, Timestamp,
};

/// The [`GroupPolicy`] of each group (its `min_hosts` and `wait`).
pub type Grouping = Arc<dyn Fn(&GroupName) -> GroupPolicy + Send + Sync>;

/// What became of a host's leased notice once its group was asked.
pub(super) enum Routed {
    /// Deliver it to the channels.
    Deliver,
    /// Held until then; the host's record says so (nothing more to do now).
    Held(Timestamp),
    /// The group speaks for it: settle it as taken by every channel.
    Absorbed,
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// Sends a grouped host's alarms, reminders and all-clears through its
    /// group's record ([`crate::group_outage`]): one notice per outage of a
    /// group. Needs a store that [keeps groups](Store::keeps_groups);
    /// otherwise every host's notices go out on their own.
    pub fn with_grouping(mut self, grouping: Grouping) -> Self {
        self.grouping = Some(grouping);
        self
    }

    /// The group whose record decides `notice`'s fate, if grouping is on.
    fn group_for<'a>(&'a self, notice: &'a Notice) -> Option<(&'a Grouping, &'a GroupName)> {
        let grouping = self.grouping.as_ref()?;
        let group = notice.group.as_ref()?;
        let kinds = matches!(
            notice.kind,
            NoticeKind::Alarm | NoticeKind::Reminder | NoticeKind::Recovery
        );
        // A job's reported failure is its own, never a site's silence.
        let job_failure = notice.job.as_deref().is_some_and(|j| j.failed);
        (kinds && !job_failure && !notice.is_group() && self.store.keeps_groups())
            .then_some((grouping, group))
    }

    /// Asks the host's group what to do with `notice` (leased in the host's
    /// record): a compare-and-swap on the group record, resolving an
    /// expired gathering first.
    pub(super) async fn route_to_group(
        &self,
        notice: &Notice,
        policy: &Policy,
        report: &mut SweepReport,
    ) -> Result<Routed, StoreError> {
        let Some((grouping, group)) = self.group_for(notice) else {
            return Ok(Routed::Deliver);
        };
        let gp = grouping(group);
        for _ in 0..MAX_ROUNDS {
            let now = self.clock.now();
            let g = self
                .store
                .get_group(group)
                .await?
                .unwrap_or_else(|| GroupRecord::new(group.clone()));
            let (write, verdict) = group_outage::consult(&g, notice, now, &gp, policy);
            if verdict == Verdict::Resolve {
                self.process_group(group.clone(), report).await?;
                continue;
            }
            if let Some(mut w) = write {
                w.version = g.version + 1;
                if !self.store.swap_group(g.version, &w).await? {
                    report.conflicts += 1;
                    continue;
                }
            }
            return Ok(match verdict {
                Verdict::Hold(until) => Routed::Held(until),
                Verdict::Absorbed => Routed::Absorbed,
                Verdict::Alone | Verdict::Resolve => Routed::Deliver,
            });
        }
        Err(StoreError::Contended {
            key: format!("group {group}"),
            rounds: MAX_ROUNDS,
        })
    }

    /// Holds `host`'s leased notice `id` until `until` in its record.
    pub(super) async fn hold_host(
        &self,
        written: HostRecord,
        id: &str,
        until: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let host = written.host.clone();
        self.swap(&host, Some(written), &mut report.conflicts, |r| {
            group_outage::hold_host(r, id, until).map(|n| (n, ()))
        })
        .await?;
        Ok(())
    }

    /// Every channel took it: what settling an absorbed notice applies.
    pub(super) fn absorbed(targets: &[String]) -> Vec<(String, ChannelOutcome)> {
        group_outage::all_delivered(targets)
    }

    /// Decides and delivers every due group record (after the hosts).
    pub(super) async fn sweep_groups(
        &self,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        if self.grouping.is_none() || !self.store.keeps_groups() {
            return Ok(());
        }
        let due = self.store.due_groups(now, self.opts.batch).await?;
        for g in due {
            if let Err(e) = self.process_group(g.group.clone(), report).await {
                tracing::warn!(store = %self.store, group = %g.group, error = %e, "could not decide group; it stays due");
                report.errors += 1;
            }
        }
        Ok(())
    }

    /// The policy a group's reminders follow: its first member's.
    fn group_host_policy(&self, g: &GroupRecord) -> Policy {
        g.members.first().map_or_else(
            || self.policies.default.clone(),
            |m| self.policies.for_host(&m.host),
        )
    }

    /// Steps one group until it has nothing more to do now: an expired
    /// gathering resolved (reading its held hosts), a reminder or
    /// all-clear come due, each owed notice leased, delivered and settled.
    pub(super) async fn process_group(
        &self,
        group: GroupName,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let Some(grouping) = self.grouping.as_ref() else {
            return Ok(());
        };
        let gp = grouping(&group);
        let (owner, lease) = (self.opts.owner.as_str(), self.opts.lease);
        for _ in 0..MAX_ROUNDS * 4 {
            let now = self.clock.now();
            let Some(g) = self.store.get_group(&group).await? else {
                return Ok(());
            };
            let policy = self.group_host_policy(&g);
            if let GroupPhase::Gathering { until } = g.phase
                && until <= now
            {
                let silent = self.held_still_silent(&g).await?;
                let resolved = group_outage::resolve(&g, now, &gp, &policy, |m| {
                    silent.get(m.host.as_str()).copied().unwrap_or(false)
                });
                if let Some(mut w) = resolved {
                    w.version = g.version + 1;
                    if !self.store.swap_group(g.version, &w).await? {
                        report.conflicts += 1;
                    }
                }
                continue;
            }
            let (write, leased) = group_outage::step(&g, now, &policy, owner, lease);
            let Some(mut w) = write else {
                return Ok(());
            };
            w.version = g.version + 1;
            if !self.store.swap_group(g.version, &w).await? {
                report.conflicts += 1;
                continue;
            }
            let Some(ob) = leased else {
                if w.due_at.is_none_or(|d| d > now) {
                    return Ok(());
                }
                continue;
            };
            tracing::info!(group = %group, kind = %ob.notice.kind, id = %ob.notice.id, hosts = ob.notice.hosts.len(), "group notice owed");
            let targets = self.routes.channels_for(&ob.notice, &self.names);
            let results = self
                .deliver(&ob.notice, &targets, &ob.delivered, &ob.failed)
                .await;
            report.failed_deliveries += results
                .iter()
                .filter(|(_, o)| *o != ChannelOutcome::Delivered)
                .count();
            let round = Round {
                notice_id: &ob.notice.id,
                results: &results,
                channels: &targets,
            };
            let mut current = Some(w);
            for _ in 0..MAX_ROUNDS {
                let now = self.clock.now();
                let g = match current.take() {
                    Some(g) => g,
                    None => match self.store.get_group(&group).await? {
                        Some(g) => g,
                        None => return Ok(()),
                    },
                };
                let Some(mut s) = group_outage::settle(&g, &round, now, &policy, &self.opts.retry)
                else {
                    break;
                };
                s.version = g.version + 1;
                if self.store.swap_group(g.version, &s).await? {
                    if s.outbox.first().is_none_or(|o| o.notice.id != ob.notice.id) {
                        report.completed += 1;
                    }
                    break;
                }
                report.conflicts += 1;
            }
        }
        Ok(())
    }

    /// For each held member of `g`: whether its host is still silent in
    /// the same outage (read from its record; one read per held host).
    async fn held_still_silent(
        &self,
        g: &GroupRecord,
    ) -> Result<HashMap<String, bool>, StoreError> {
        let mut out = HashMap::new();
        for m in g
            .members
            .iter()
            .filter(|m| m.fate == group_outage::Fate::Held)
        {
            let silent = self.store.get(&m.host).await?.is_some_and(|r| {
                matches!(r.status, Status::Missing | Status::Alarmed)
                    && r.missing_since == Some(m.missing_since)
            });
            out.insert(m.host.as_str().to_owned(), silent);
        }
        Ok(out)
    }
}
