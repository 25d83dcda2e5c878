//! Routes: which channels a host's notice goes to.
//!
//! The rule is pure and small: routes are tried in order and the first
//! whose host pattern, group pattern and kinds match the notice decides its
//! channels (a route with `groups` matches only notices of a grouped host or
//! a group's outage; a group notice matches `hosts` when one of the hosts it
//! names does); a
//! notice no route matches goes to every channel, so a gap in the routes
//! never drops a notice. Watcher notices (degraded, restored, test) are
//! about the watcher, not a host, and always go to every channel.

use serde::Deserialize;

use crate::{HostPattern, Notice, NoticeKind};

/// One route: notices of matching hosts and kinds go to `channels`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The hosts this route is for; every host when `None`.
    #[serde(default)]
    pub hosts: Option<HostPattern>,
    /// The groups (sites) this route is for, as a glob over group names
    /// (`"office-*"`); every notice when `None`, only notices of a host in
    /// a matching group (or of that group's outage) otherwise.
    #[serde(default)]
    pub groups: Option<HostPattern>,
    /// The notice kinds this route is for (`alarm`, `reminder`,
    /// `recovery`); every kind when `None`.
    #[serde(default)]
    pub kinds: Option<Vec<NoticeKind>>,
    /// The names of the channels that get the matching notices.
    pub channels: Vec<String>,
}

impl Route {
    /// Whether this route decides where `notice` goes.
    pub fn matches(&self, notice: &Notice) -> bool {
        let group = notice.group.as_ref();
        // A group notice concerns every host it names: `hosts` matches it
        // when one of them matches.
        self.hosts.as_ref().is_none_or(|p| {
            if notice.is_group() {
                notice.hosts.iter().any(|h| p.matches(&h.host))
            } else {
                p.matches(&notice.host)
            }
        }) && self
            .groups
            .as_ref()
            .is_none_or(|p| group.is_some_and(|g| p.matches_group(g)))
            && self.kinds.as_ref().is_none_or(|k| k.contains(&notice.kind))
    }
}

/// The routes of a deployment, in order. The empty set sends every notice
/// to every channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

/// A route names a channel that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routes[{route}] names channel {channel:?}, which is not configured (channels: {known})")]
pub struct UnknownChannel {
    /// The route's position (from 0).
    pub route: usize,
    /// The name it gave.
    pub channel: String,
    /// The configured channel names, comma-separated.
    pub known: String,
}

impl Routes {
    /// `routes`, checked against the configured channel names: each name a
    /// route gives must be one of `channels`.
    pub fn new(routes: Vec<Route>, channels: &[String]) -> Result<Self, UnknownChannel> {
        for (i, r) in routes.iter().enumerate() {
            if let Some(c) = r.channels.iter().find(|c| !channels.contains(c)) {
                return Err(UnknownChannel {
                    route: i,
                    channel: c.clone(),
                    known: channels.join(", "),
                });
            }
        }
        Ok(Self(routes))
    }

    /// The routes, in order.
    pub fn as_slice(&self) -> &[Route] {
        &self.0
    }

    /// What an operator should hear at start about these routes: a route
    /// whose `kinds` take some of an outage's notices (alarm, reminder,
    /// all-clear) but not all sends the rest to the next route that
    /// matches, so a channel there may hear reminders of an alarm it never
    /// got, or an outage that never ends for it.
    pub fn warnings(&self) -> Vec<String> {
        const OUTAGE: [NoticeKind; 3] = [
            NoticeKind::Alarm,
            NoticeKind::Reminder,
            NoticeKind::Recovery,
        ];
        let mut out = Vec::new();
        for (i, r) in self.0.iter().enumerate() {
            let Some(kinds) = &r.kinds else { continue };
            let (taken, left): (Vec<NoticeKind>, Vec<NoticeKind>) =
                OUTAGE.iter().partition(|k| kinds.contains(k));
            if taken.is_empty() || left.is_empty() {
                continue;
            }
            let names = |ks: &[NoticeKind]| {
                ks.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "routes[{i}] sends {} of its hosts' outages to {} but not {}: those go to the next route that matches (or to every channel), which then hears {} of an outage without its {}; list all three kinds in one route, or none",
                names(&taken),
                r.channels.join(", "),
                names(&left),
                names(&left),
                names(&taken),
            ));
        }
        out
    }

    /// Whether `channel` gets `notice`: named by the first route matching
    /// the notice, or any channel when no route matches (and for watcher
    /// notices, the watcher-blind one included: it is about every site).
    pub fn sends_to(&self, notice: &Notice, channel: &str) -> bool {
        if notice.kind.is_watcher() || notice.is_blind() {
            return true;
        }
        match self.0.iter().find(|r| r.matches(notice)) {
            Some(r) => r.channels.iter().any(|c| c == channel),
            None => true,
        }
    }

    /// The channels of `all` that get `notice`, in the order of `all`.
    pub fn channels_for(&self, notice: &Notice, all: &[String]) -> Vec<String> {
        all.iter()
            .filter(|c| self.sends_to(notice, c))
            .cloned()
            .collect()
    }
}

/// Whether `kind` is one a route can name (a host's notice).
pub fn routable(kind: NoticeKind) -> bool {
    !kind.is_watcher()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostId;

    #[test]
    fn a_route_that_splits_an_outage_is_warned_of() {
        let all = ["dba".to_owned(), "all".to_owned()];
        let split: Vec<Route> = serde_json::from_str(
            r#"[{"hosts": "db-*", "kinds": ["alarm", "recovery"], "channels": ["dba"]},
                {"channels": ["all"]}]"#,
        )
        .unwrap();
        let w = Routes::new(split, &all).unwrap().warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "routes[0] sends alarm, recovery of its hosts' outages to dba but not reminder"
            ),
            "{}",
            w[0]
        );
        let whole: Vec<Route> = serde_json::from_str(
            r#"[{"hosts": "db-*", "kinds": ["alarm", "reminder", "recovery"], "channels": ["dba"]},
                {"kinds": ["flapping"], "channels": ["all"]}, {"channels": ["all"]}]"#,
        )
        .unwrap();
        assert!(Routes::new(whole, &all).unwrap().warnings().is_empty());
    }

    fn notice(host: &str, kind: NoticeKind) -> Notice {
        let t: crate::Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let mut n =
            crate::health::watcher_notice(NoticeKind::Degraded, "x", 1, t, t, String::new());
        n.host = HostId::new(host).unwrap();
        n.kind = kind;
        n
    }

    fn route(hosts: Option<&str>, kinds: Option<&[NoticeKind]>, channels: &[&str]) -> Route {
        Route {
            hosts: hosts.map(|h| HostPattern::new(h).unwrap()),
            groups: None,
            kinds: kinds.map(<[_]>::to_vec),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn first_match_decides_and_no_match_goes_everywhere() {
        let all = names(&["email", "chat", "dba"]);
        let routes = Routes::new(
            vec![
                route(Some("db-*"), None, &["dba"]),
                route(None, Some(&[NoticeKind::Recovery]), &["chat"]),
                route(Some("db-*"), None, &["email"]),
            ],
            &all,
        )
        .unwrap();
        let to = |h, k| routes.channels_for(&notice(h, k), &all);
        assert_eq!(to("db-1", NoticeKind::Alarm), ["dba"]);
        assert_eq!(to("db-1", NoticeKind::Recovery), ["dba"]);
        assert_eq!(to("web-1", NoticeKind::Recovery), ["chat"]);
        assert_eq!(to("web-1", NoticeKind::Alarm), all);
        // Watcher notices are not routed.
        assert_eq!(to("db-1", NoticeKind::Degraded), all);
        assert_eq!(
            Routes::default().channels_for(&notice("a", NoticeKind::Alarm), &all),
            all
        );
        assert!(routable(NoticeKind::Reminder) && !routable(NoticeKind::Test));
    }

    #[test]
    fn groups_route_grouped_hosts_and_group_notices() {
        let all = names(&["email", "berlin", "dba"]);
        let by_site = Route {
            groups: Some(HostPattern::new("office-*").unwrap()),
            ..route(None, None, &["berlin"])
        };
        let routes = Routes::new(vec![route(Some("db-*"), None, &["dba"]), by_site], &all).unwrap();
        let grouped = |h: &str, g: Option<&str>| {
            let mut n = notice(h, NoticeKind::Alarm);
            n.group = g.map(|g| crate::GroupName::new(g).unwrap());
            n
        };
        // A grouped host's own notice goes by its group.
        assert_eq!(
            routes.channels_for(&grouped("ber-1", Some("office-berlin")), &all),
            ["berlin"]
        );
        // A host of no group, or of another group, is not matched by it.
        assert_eq!(routes.channels_for(&grouped("web-1", None), &all), all);
        assert_eq!(
            routes.channels_for(&grouped("web-1", Some("dc-1")), &all),
            all
        );
        // A group notice: matched by its group, and by `hosts` when one of
        // the hosts it names matches.
        let mut site = grouped("ber-1", Some("office-berlin"));
        site.hosts = ["ber-1", "ber-2"]
            .iter()
            .map(|h| crate::group_outage::GroupHost {
                host: HostId::new(h).unwrap(),
                last_seen: site.last_seen,
                silent_for: std::time::Duration::from_secs(60),
                report: None,
                new: false,
                back_at: None,
                missed_beat: false,
            })
            .collect();
        assert!(site.is_group());
        assert_eq!(routes.channels_for(&site, &all), ["berlin"]);
        site.hosts[1].host = HostId::new("db-9").unwrap();
        assert_eq!(routes.channels_for(&site, &all), ["dba"]);
    }

    #[test]
    fn an_unknown_channel_is_named() {
        let e = Routes::new(
            vec![route(None, None, &["email"]), route(None, None, &["dbas"])],
            &names(&["email", "dba"]),
        )
        .unwrap_err();
        assert_eq!((e.route, e.channel.as_str()), (1, "dbas"));
        assert!(e.to_string().contains("email, dba"), "{e}");
    }
}
