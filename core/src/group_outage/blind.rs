//! The watcher's own blind spot: an outage of groups.
//!
//! When two or more groups' outages begin within one group wait, the
//! likeliest cause is not every site at once but the watcher's own ingress
//! (its DNS name, TLS certificate, load balancer, proxy or request quota).
//! The team then gets **one** "watcher may be blind" notice naming the
//! sites, how many hosts went silent and since when, instead of one group
//! alarm per site.
//!
//! It is the group machine one level up. The watcher's record is a
//! [`GroupRecord`] stored like a group's under the reserved name
//! [`WATCHER_GROUP`](crate::WATCHER_GROUP) (`~watcher`, which no group
//! name can take), whose members are sites ([`Site`]) instead of hosts.
//! A group's first alarm, once leased, asks it ([`consult`]) before it
//! goes out:
//!
//! | watcher phase | the group's notice | verdict |
//! |---|---|---|
//! | quiet | first group alarm | the site is *held*; the watcher gathers until the site's first deadline plus twice the wait: **hold** (the monitor asks only when another site is gathering within one wait of it; otherwise the alarm goes out alone, on time) |
//! | gathering, before its end | first group alarm | held with the others: **hold** |
//! | gathering, its end reached | any | [`resolve`] it first: **resolve** |
//! | outage (or ending) | alarm of a site in it | the blind notice spoke for it: **absorbed** |
//! | outage (or ending) | all-clear of a site in it | counted back: **absorbed** |
//! | any | a site alone, a site that went dark later, a group reminder | **alone**: the group's notice goes out |
//!
//! [`resolve`] ends a gathering: with at least [`MIN_SITES`] held sites
//! still dark it owes **one** blind notice; otherwise each site is alone
//! and its group alarm goes out when it next asks (at the hold's end).
//!
//! After the blind notice each site's group behaves as before: its
//! reminders go out per group, throttled as usual (the watcher itself sends
//! no reminders). A site's group all-clear is absorbed; when fewer than
//! [`MIN_SITES`] sites are still dark the watcher waits one more `wait` for
//! stragglers, then owes **one** all-clear for the blind notice naming who
//! came back; a site still dark then is alone, and its own group all-clear
//! goes out when it returns. Why the hold is twice the wait: a group
//! resolves its own gathering one wait after its first host's deadline, so
//! a site whose outage began within one wait of the first one's asks the
//! watcher by then.
//!
//! The record has the guarantees of a group's: every write is a
//! compare-and-swap on its `version`, the blind notice sits in its outbox
//! under a lease, and a held group alarm stays owed in the group's own
//! record (its next attempt at the hold's end), so nothing is lost when a
//! monitor dies and several monitors send the blind notice once.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Fate, GroupPhase, GroupRecord, Verdict};
use crate::model::{add, since};
use crate::{GroupName, HostId, Notice, NoticeKind, Outbox, Timestamp};

/// How many sites whose outages begin within one group wait make the
/// watcher suspect its own ingress. A single site is one site, however
/// large a share of the hosts it holds.
pub const MIN_SITES: usize = 2;

/// One site as the watcher's record knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The group.
    pub group: GroupName,
    /// The group's outage (`site:<group>@<ms>`).
    pub outage_id: String,
    /// What became of it: held while the watcher gathers, in the blind
    /// outage, or alone.
    pub fate: Fate,
    /// How many of its hosts its first group alarm names.
    pub hosts_silent: u32,
    /// Those hosts.
    #[serde(default)]
    pub hosts: Vec<HostId>,
    /// Its first host's deadline: when the site went dark.
    pub first_silent_at: Timestamp,
    /// When its group's all-clear came, once back.
    #[serde(default)]
    pub back_at: Option<Timestamp>,
    /// Those of its hosts still silent when its group's all-clear came
    /// (each alarms on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_silent: Vec<HostId>,
}

impl Site {
    /// The site a group notice speaks for (`None` for a notice that is not
    /// a group's).
    pub fn of(notice: &Notice) -> Option<Self> {
        let group = notice.group.clone().filter(|_| notice.is_group())?;
        let hosts: Vec<HostId> = notice
            .hosts
            .iter()
            .filter(|h| h.back_at.is_none())
            .map(|h| h.host.clone())
            .collect();
        Some(Self {
            group,
            outage_id: notice.outage_id.clone(),
            fate: Fate::Held,
            hosts_silent: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
            hosts,
            first_silent_at: notice.missing_since,
            back_at: None,
            still_silent: Vec::new(),
        })
    }
}

/// One site as the blind notice names it (JSON `groups[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindSite {
    /// The group.
    pub group: GroupName,
    /// How many of its hosts went silent.
    pub hosts_silent: u32,
    /// Those hosts.
    #[serde(default)]
    pub hosts: Vec<HostId>,
    /// When its first host's deadline passed.
    pub first_silent_at: Timestamp,
    /// For the all-clear: when its group came back (`None`: still dark).
    #[serde(default)]
    pub back_at: Option<Timestamp>,
    /// For the all-clear: those of its hosts still silent when its group
    /// came back (each alarms on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_silent: Vec<HostId>,
}

/// What the watcher-blind notice says beyond a notice's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindSpot {
    /// The sites, by name.
    pub sites: Vec<BlindSite>,
    /// How many hosts of those sites went silent.
    pub hosts_silent: u64,
    /// How many hosts the store holds, if it can tell cheaply
    /// ([`Store::host_count`](crate::Store::host_count)).
    #[serde(default)]
    pub hosts_total: Option<u64>,
}

fn hhmmss(t: Timestamp) -> String {
    t.format("%H:%M:%SZ").to_string()
}

impl BlindSpot {
    /// Whether the hosts without a group are part of it ([`super::loose`]).
    fn has_ungrouped(&self) -> bool {
        self.sites.iter().any(|s| s.group.is_ungrouped())
    }

    /// "2 sites, 20 of 30 hosts"; "2 sites and hosts without a group,
    /// …"; only "9 of 10 hosts" when no site is in it.
    fn counts(&self) -> String {
        let named = self.sites.len() - usize::from(self.has_ungrouped());
        let sites = match named {
            0 => String::new(),
            1 => "1 site".to_owned(),
            n => format!("{n} sites"),
        };
        let sites = match (sites.is_empty(), self.has_ungrouped()) {
            (false, true) => format!("{sites} and hosts without a group, "),
            (false, false) => format!("{sites}, "),
            (true, _) => String::new(),
        };
        let hosts = match (self.hosts_total, self.hosts_silent) {
            (Some(total), n) => format!("{n} of {total} hosts"),
            (None, 1) => "1 host".to_owned(),
            (None, n) => format!("{n} hosts"),
        };
        format!("{sites}{hosts}")
    }

    /// "watcher may be blind: 2 sites, 20 of 30 hosts silent since
    /// 10:02:11Z", or for its all-clear "watcher sees again: 2 sites back
    /// after 12m".
    pub fn headline(&self, kind: NoticeKind, since_at: Timestamp, dark: Duration) -> String {
        match kind {
            NoticeKind::Recovery => {
                let back = self.sites.iter().filter(|s| s.back_at.is_some()).count();
                let dark = humantime::format_duration(Duration::from_secs(dark.as_secs()));
                let still: Vec<&str> = self
                    .sites
                    .iter()
                    .flat_map(|s| s.still_silent.iter().map(HostId::as_str))
                    .collect();
                if back == self.sites.len() && still.is_empty() {
                    format!("watcher sees again: {} back after {dark}", self.counts())
                } else if back == self.sites.len() {
                    format!(
                        "watcher sees again: {} of {} silent hosts back after {dark}, {} still silent ({})",
                        self.hosts_silent.saturating_sub(still.len() as u64),
                        self.hosts_silent,
                        still.len(),
                        still.join(", ")
                    )
                } else {
                    format!(
                        "watcher sees again: {back} of {} sites back after {dark}",
                        self.sites.len()
                    )
                }
            }
            _ => format!(
                "watcher may be blind: {} silent since {}",
                self.counts(),
                hhmmss(since_at)
            ),
        }
    }

    /// The plain-text body: what happened, why the watcher suspects
    /// itself, what to check, and each site.
    pub(crate) fn write_body(&self, b: &mut String, n: &Notice) {
        let ts = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = writeln!(b, "{}.", n.headline());
        let _ = writeln!(b);
        if let Some(m) = &n.message {
            let _ = writeln!(b, "{m}");
            let _ = writeln!(b);
        }
        let _ = writeln!(b, "dark since:    {}", ts(&n.missing_since));
        if let Some(r) = &n.recovered_at {
            let _ = writeln!(b, "back at:       {}", ts(r));
        }
        let _ = writeln!(b);
        for s in &self.sites {
            let state = match s.back_at {
                Some(at) if s.still_silent.is_empty() => format!(", back at {}", ts(&at)),
                Some(at) => format!(
                    ", back at {} but for {} (still silent)",
                    ts(&at),
                    s.still_silent
                        .iter()
                        .map(HostId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None if n.kind == NoticeKind::Recovery => ", still dark".to_owned(),
                None => String::new(),
            };
            let hosts = if s.hosts_silent == 1 { "host" } else { "hosts" };
            let _ = writeln!(
                b,
                "  {}: {} {hosts} silent since {}{state}",
                s.group.label(),
                s.hosts_silent,
                ts(&s.first_silent_at)
            );
            let names: Vec<&str> = s.hosts.iter().map(HostId::as_str).collect();
            if !names.is_empty() {
                let _ = writeln!(b, "    {}", names.join(", "));
            }
        }
        let _ = writeln!(b, "\noutage id: {}\nnotice id: {}", n.outage_id, n.id);
    }
}

/// Why the watcher suspects itself and what to check: the blind notice's
/// message when sites fell silent together.
pub const WHY: &str = "Several sites fell silent within one group wait. Sites rarely fail \
together; the watcher's own ingress does: its DNS name, its TLS certificate, the load \
balancer or proxy in front of it, or a request quota that rejects heartbeats. Check that \
the agents can still reach the watcher's URL (DNS, certificate expiry, proxy and load \
balancer health, rejected or throttled requests in its logs and metrics) before \
suspecting the sites. Each site's own reminders and all-clear follow as usual.";

/// The message when more than half of all hosts fell silent and fewer
/// than two sites are among them ([`super::loose`]): [`WHY`] with its
/// first sentence about hosts instead of sites.
pub fn why_hosts() -> String {
    let rest = WHY.split_once(". ").map_or(WHY, |(_, rest)| rest);
    let rest = rest
        .replace("Sites rarely", "Hosts rarely")
        .replace("the sites", "the hosts");
    format!("More than half of all monitored hosts fell silent within one group wait. {rest}")
}

/// Asks the watcher's record `w` what to do with a group's leased
/// `notice` (its first alarm, a reminder or its all-clear) at `now`: the
/// record to write (if it changed) and the verdict. See the
/// [module table](self).
pub fn consult(
    w: &GroupRecord,
    notice: &Notice,
    now: Timestamp,
    wait: Duration,
) -> (Option<GroupRecord>, Verdict) {
    consult_with(w, notice, now, wait, true)
}

/// [`consult`], told whether another site is gathering its outage
/// (`others`): without one, the first alarm of the hosts without a group
/// ([`super::loose`], a blind spot by itself) is resolved at once rather
/// than held for other sites.
pub fn consult_with(
    w: &GroupRecord,
    notice: &Notice,
    now: Timestamp,
    wait: Duration,
    others: bool,
) -> (Option<GroupRecord>, Verdict) {
    let Some(site) = Site::of(notice) else {
        return (None, Verdict::Alone);
    };
    let mut next = w.clone();
    let known = w
        .sites
        .iter()
        .find(|s| s.group == site.group && s.outage_id == site.outage_id)
        .map(|s| s.fate);
    let verdict = match (notice.kind, known, w.phase) {
        (NoticeKind::Alarm, None, GroupPhase::Quiet) => {
            let until = if site.group.is_ungrouped() && !others {
                now
            } else {
                add(site.first_silent_at, wait.saturating_mul(2))
            };
            next.sites.retain(|s| s.group != site.group);
            next.sites.push(site);
            next.phase = GroupPhase::Gathering { until };
            next.since = Some(notice.missing_since);
            if until <= now {
                Verdict::Resolve
            } else {
                Verdict::Hold(until)
            }
        }
        (_, _, GroupPhase::Gathering { until }) if until <= now => Verdict::Resolve,
        (NoticeKind::Alarm, None | Some(Fate::Held), GroupPhase::Gathering { until }) => {
            next.sites.retain(|s| s.group != site.group);
            next.sites.push(site);
            Verdict::Hold(until)
        }
        (NoticeKind::Alarm, Some(Fate::Outage), _) => Verdict::Absorbed,
        (NoticeKind::Recovery, Some(Fate::Outage), _) => {
            if let Some(s) = next
                .sites
                .iter_mut()
                .find(|s| s.group == site.group && s.outage_id == site.outage_id)
            {
                s.back_at = Some(notice.recovered_at.unwrap_or(now));
                s.still_silent = notice
                    .hosts
                    .iter()
                    .filter(|h| h.back_at.is_none())
                    .map(|h| h.host.clone())
                    .collect();
            }
            recount(&mut next, now, wait);
            Verdict::Absorbed
        }
        (NoticeKind::Recovery, Some(Fate::Alone), _) => {
            next.sites.retain(|s| s.group != site.group);
            Verdict::Alone
        }
        // A site that went dark after the gathering, a reminder, a site
        // alone: its group speaks for itself.
        _ => Verdict::Alone,
    };
    next.due_at = super::due_at(&next, &crate::Policy::default());
    let changed = next != *w;
    (changed.then_some(next), verdict)
}

/// Ends the watcher's gathering (`now` at or past its end): with at least
/// [`MIN_SITES`] held sites `still_dark` it owes one blind notice
/// (`hosts_total` from the store, if it can tell); otherwise each site is
/// alone. A held site no longer dark is dropped (its group came back
/// before anyone was told). `None` when `w` is not a gathering past its
/// end.
pub fn resolve(
    w: &GroupRecord,
    now: Timestamp,
    hosts_total: Option<u64>,
    still_dark: impl Fn(&Site) -> bool,
) -> Option<GroupRecord> {
    let GroupPhase::Gathering { until } = w.phase else {
        return None;
    };
    if now < until {
        return None;
    }
    let mut next = w.clone();
    next.sites.retain(|s| s.fate != Fate::Held || still_dark(s));
    // More than half of the hosts without a group silent is a blind spot
    // by itself (loose); otherwise it takes two sites.
    let alone_enough = next
        .sites
        .iter()
        .any(|s| s.fate == Fate::Held && s.group.is_ungrouped());
    let min = if alone_enough { 1 } else { MIN_SITES };
    let since = super::conclude(next.sites.iter_mut(), min);
    if super::begin_or_quiet(&mut next, since, |t| {
        format!("watcher-blind@{}", t.timestamp_millis())
    }) {
        next.hosts_total = hosts_total;
        let n = blind_notice(&next, NoticeKind::Alarm, now);
        next.outbox.push(Outbox::new(n));
    }
    next.due_at = super::due_at(&next, &crate::Policy::default());
    Some(next)
}

impl super::Gathered for Site {
    fn fate(&self) -> Fate {
        self.fate
    }
    fn set_fate(&mut self, fate: Fate) {
        self.fate = fate;
    }
    fn silent_at(&self) -> Timestamp {
        self.first_silent_at
    }
}

/// After a site came back: with none dark the blind outage is over; with
/// fewer than [`MIN_SITES`] it is ending (one more `wait` for
/// stragglers); with enough again it is an outage again.
fn recount(w: &mut GroupRecord, now: Timestamp, wait: Duration) {
    let dark = w.silent_sites().count();
    // The hosts without a group still dark keep it a blind spot (loose).
    let enough = dark >= MIN_SITES || w.silent_sites().any(|s| s.group.is_ungrouped());
    match w.phase {
        GroupPhase::Outage | GroupPhase::Ending { .. } if dark == 0 => finish(w, now),
        GroupPhase::Outage if !enough => {
            w.phase = GroupPhase::Ending {
                until: add(now, wait),
            };
        }
        GroupPhase::Ending { .. } if enough => w.phase = GroupPhase::Outage,
        _ => {}
    }
}

/// The blind outage is over: one all-clear owed if its notice went out
/// (or may have: a lease was taken), the sites back forgotten, a site
/// still dark alone (its own group all-clear goes out when it returns).
pub(super) fn finish(w: &mut GroupRecord, now: Timestamp) {
    let alarm = |o: &Outbox| o.notice.kind == NoticeKind::Alarm && o.notice.is_blind();
    let told = w.alarm_count > 0
        || w.outbox
            .iter()
            .any(|o| alarm(o) && (!o.delivered.is_empty() || o.lease.is_some()));
    if told {
        let n = blind_notice(w, NoticeKind::Recovery, now);
        w.outbox.push(Outbox::new(n));
    } else {
        w.outbox.retain(|o| !alarm(o));
    }
    w.sites
        .retain(|s| s.fate == Fate::Alone || s.back_at.is_none());
    for s in &mut w.sites {
        s.fate = Fate::Alone;
    }
    w.phase = GroupPhase::Quiet;
    w.since = None;
    w.outage_id = None;
    w.alarm_count = 0;
    w.last_alarm = None;
    w.hosts_total = None;
}

/// The blind notice of `kind` (alarm or all-clear) for `w` at `now`.
fn blind_notice(w: &GroupRecord, kind: NoticeKind, now: Timestamp) -> Notice {
    let since_at = w.since.unwrap_or(now);
    let outage_id = w
        .outage_id
        .clone()
        .unwrap_or_else(|| format!("watcher-blind@{}", since_at.timestamp_millis()));
    let mut sites: Vec<BlindSite> = w
        .sites
        .iter()
        .filter(|s| s.fate == Fate::Outage)
        .map(|s| BlindSite {
            group: s.group.clone(),
            hosts_silent: s.hosts_silent,
            hosts: s.hosts.clone(),
            first_silent_at: s.first_silent_at,
            back_at: s.back_at,
            still_silent: s.still_silent.clone(),
        })
        .collect();
    sites.sort_by(|a, b| a.group.cmp(&b.group));
    let hosts_silent = sites.iter().map(|s| u64::from(s.hosts_silent)).sum();
    let last_back = sites.iter().filter_map(|s| s.back_at).max();
    let recovery = kind == NoticeKind::Recovery;
    let end = if recovery {
        last_back.unwrap_or(now)
    } else {
        now
    };
    let id = if recovery {
        format!("{outage_id}/recovery")
    } else {
        format!("{outage_id}/alarm/1")
    };
    Notice {
        last_seen: since_at,
        missing_since: since_at,
        recovered_at: recovery.then_some(end),
        silent_for: since(end, since_at),
        alarm_count: 1,
        message: (!recovery).then(|| {
            let two_sites = sites.iter().filter(|s| !s.group.is_ungrouped()).count() >= MIN_SITES;
            if two_sites {
                WHY.to_owned()
            } else {
                why_hosts()
            }
        }),
        blind_spot: Some(Box::new(BlindSpot {
            sites,
            hosts_silent,
            hosts_total: w.hosts_total,
        })),
        ..Notice::new(id, outage_id, kind, crate::health::watcher_host(), now)
    }
}

impl GroupRecord {
    /// The watcher's record, quiet, nothing stored yet.
    pub fn watcher() -> Self {
        Self::new(GroupName::watcher())
    }

    /// Whether this is the watcher's own record (an outage of groups).
    pub fn is_watcher(&self) -> bool {
        self.group.is_watcher()
    }

    /// Sites of the blind outage still dark.
    pub fn silent_sites(&self) -> impl Iterator<Item = &Site> {
        self.sites
            .iter()
            .filter(|s| s.fate == Fate::Outage && s.back_at.is_none())
    }
}

#[cfg(test)]
mod tests;
