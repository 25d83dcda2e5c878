//! Group (site) settings: the `[grouping]` defaults, the `[[groups]]`
//! entries and their `IAMALIVE_GROUP_*` variables, and the rule that
//! decides a host's group.
//!
//! A host belongs to at most one group. The first `[[groups]]` entry whose
//! `hosts` glob matches the host id gives it its group, whatever the host
//! says; a host no entry matches keeps the group it names itself (`"group"`
//! in a JSON heartbeat, `?group=` on a ping URL, the agent's `--group`).
//!
//! `min_hosts` and `wait` decide when hosts of a group silent together are
//! one group outage; `flap_flips`, `flap_window` and `flap_stable` (the
//! `[flapping]` settings unless an entry overrides them) when a group's
//! outages are flapping; `blind_detection` (`IAMALIVE_GROUP_BLIND`, default
//! on) gathers the outages of two or more groups that begin within one
//! `wait` into one "watcher may be blind" notice.

use std::time::Duration;

use iamalive_core::flap::FlapPolicy;
use iamalive_core::{GroupName, HostId, HostPattern};
use serde::Deserialize;

use crate::config::ConfigError;

/// The default of [`GroupingSettings::min_hosts`].
pub const DEFAULT_GROUP_MIN_HOSTS: u32 = 2;
/// The default of [`GroupingSettings::wait`].
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// The longest `wait` accepted: one day.
const MAX_GROUP_WAIT: Duration = Duration::from_secs(86_400);

/// The `[grouping]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupingTable {
    min_hosts: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    wait: Option<Duration>,
    blind_detection: Option<bool>,
}

/// One `[[groups]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupTable {
    name: String,
    hosts: String,
    min_hosts: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    wait: Option<Duration>,
    /// More group outages than this within `flap_window` is flapping.
    flap_flips: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    flap_window: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    flap_stable: Option<Duration>,
}

/// How hosts of a group are gathered into one outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupingSettings {
    /// How many hosts of a group falling silent together make a group
    /// outage (`IAMALIVE_GROUP_MIN_HOSTS`). Default 2, at least 1.
    pub min_hosts: u32,
    /// The longest the first notice of a group outage may be held to gather
    /// the hosts that fall silent with it (`IAMALIVE_GROUP_WAIT`). Default
    /// 30 s, at most one day.
    pub wait: Duration,
}

impl Default for GroupingSettings {
    fn default() -> Self {
        Self {
            min_hosts: DEFAULT_GROUP_MIN_HOSTS,
            wait: DEFAULT_GROUP_WAIT,
        }
    }
}

/// One configured group: its name, the hosts it takes, its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// The group's name.
    pub name: GroupName,
    /// The hosts it takes (a glob over host ids, `ber-*`).
    pub hosts: HostPattern,
    /// `[grouping]` with this entry's overrides applied.
    pub settings: GroupingSettings,
    /// When this group's outages are flapping: `[flapping]` with this
    /// entry's `flap_flips`, `flap_window` and `flap_stable` applied.
    pub flapping: FlapPolicy,
}

/// Every group setting of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// The defaults of every group (`[grouping]`).
    pub defaults: GroupingSettings,
    /// Whether two or more groups' outages beginning within one `wait`
    /// (the `[grouping]` one) are one "watcher may be blind" notice
    /// (`[grouping] blind_detection`, `IAMALIVE_GROUP_BLIND`). Default on.
    pub blind_detection: bool,
    /// The `[[groups]]` entries, in the order written (the first match
    /// wins).
    pub groups: Vec<GroupConfig>,
    /// When a group's outages are flapping, for groups without an entry
    /// (the `[flapping]` settings, `IAMALIVE_FLAP_*`).
    pub flapping: FlapPolicy,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            defaults: GroupingSettings::default(),
            blind_detection: true,
            groups: Vec::new(),
            flapping: FlapPolicy::default(),
        }
    }
}

impl GroupSettings {
    /// Validates the tables (absent: the defaults), naming the bad key;
    /// `flapping` is the `[flapping]` section, every group's default.
    pub(crate) fn resolve(
        grouping: Option<GroupingTable>,
        groups: Option<Vec<GroupTable>>,
        flapping: FlapPolicy,
    ) -> Result<Self, ConfigError> {
        let g = grouping.unwrap_or_default();
        let defaults = check(
            "grouping",
            " (IAMALIVE_GROUP_MIN_HOSTS)",
            " (IAMALIVE_GROUP_WAIT)",
            GroupingSettings::default(),
            g.min_hosts,
            g.wait,
        )?;
        let mut out: Vec<GroupConfig> = Vec::new();
        for (i, t) in groups.unwrap_or_default().into_iter().enumerate() {
            let at = format!("groups[{i}]");
            let name =
                GroupName::new(&t.name).map_err(|e| ConfigError::new(format!("{at}.name"), e))?;
            if out.iter().any(|o| o.name == name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("group {name:?} is configured twice; give it one entry"),
                ));
            }
            let hosts = HostPattern::new(&t.hosts)
                .map_err(|e| ConfigError::new(format!("{at}.hosts"), e))?;
            let settings = check(&at, "", "", defaults, t.min_hosts, t.wait)?;
            let flap = FlapPolicy {
                flips: t.flap_flips.unwrap_or(flapping.flips),
                window: t.flap_window.unwrap_or(flapping.window),
                stable: t.flap_stable.unwrap_or(flapping.stable),
                ..flapping
            };
            flap.validate().map_err(|e| {
                // The reason starts with the field's name.
                let field = e.split_whitespace().next().unwrap_or("flips");
                ConfigError::new(format!("{at}.flap_{field}"), e)
            })?;
            out.push(GroupConfig {
                name,
                hosts,
                settings,
                flapping: flap,
            });
        }
        Ok(Self {
            defaults,
            blind_detection: g.blind_detection.unwrap_or(true),
            groups: out,
            flapping,
        })
    }

    /// The configured group of `host`: the first entry whose glob matches.
    pub fn configured(&self, host: &HostId) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.hosts.matches(host))
    }

    /// The group `host` belongs to: configuration wins over `claimed`,
    /// what the host says of itself.
    pub fn group_of(&self, host: &HostId, claimed: Option<GroupName>) -> Option<GroupName> {
        match self.configured(host) {
            Some(g) => Some(g.name.clone()),
            None => claimed,
        }
    }

    /// Each group's `min_hosts`, `wait` and flapping settings, for
    /// [`Monitor::with_grouping`](iamalive_core::Monitor::with_grouping).
    pub fn grouping(&self) -> iamalive_core::Grouping {
        let me = self.clone();
        std::sync::Arc::new(move |g| {
            let s = me.settings_of(g);
            iamalive_core::GroupPolicy {
                min_hosts: s.min_hosts,
                wait: s.wait,
                flap: me.flapping_of(g),
            }
        })
    }

    /// When `group`'s outages are flapping: its entry's settings, else
    /// `[flapping]`.
    pub fn flapping_of(&self, group: &GroupName) -> FlapPolicy {
        self.groups
            .iter()
            .find(|g| &g.name == group)
            .map_or(self.flapping, |g| g.flapping)
    }

    /// The watcher-blind detection's wait (the `[grouping]` one), or `None`
    /// when it is turned off, for
    /// [`Monitor::with_blind_detection`](iamalive_core::Monitor::with_blind_detection).
    pub fn blind_wait(&self) -> Option<Duration> {
        self.blind_detection.then_some(self.defaults.wait)
    }

    /// The settings that apply to `group`: its entry's, else the defaults.
    pub fn settings_of(&self, group: &GroupName) -> GroupingSettings {
        self.groups
            .iter()
            .find(|g| &g.name == group)
            .map_or(self.defaults, |g| g.settings)
    }
}

fn check(
    at: &str,
    min_env: &str,
    wait_env: &str,
    base: GroupingSettings,
    min_hosts: Option<u32>,
    wait: Option<Duration>,
) -> Result<GroupingSettings, ConfigError> {
    let min_hosts = min_hosts.unwrap_or(base.min_hosts);
    if min_hosts < 1 {
        return Err(ConfigError::new(
            format!("{at}.min_hosts{min_env}"),
            "must be at least 1",
        ));
    }
    let wait = wait.unwrap_or(base.wait);
    if wait > MAX_GROUP_WAIT {
        return Err(ConfigError::new(
            format!("{at}.wait{wait_env}"),
            "must be at most one day (24h)",
        ));
    }
    Ok(GroupingSettings { min_hosts, wait })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> HostId {
        HostId::new(s).unwrap()
    }

    #[test]
    fn configuration_wins_and_entries_inherit_the_defaults() {
        let grouping: GroupingTable = toml::from_str("min_hosts = 3\nwait = \"45s\"").unwrap();
        let groups: Vec<GroupTable> = toml::from_str::<toml::Table>(
            "[[g]]\nname = \"Office-Berlin\"\nhosts = \"ber-*\"\n\
             [[g]]\nname = \"lab\"\nhosts = \"lab-?\"\nwait = \"5s\"",
        )
        .unwrap()["g"]
            .clone()
            .try_into()
            .unwrap();
        let s =
            GroupSettings::resolve(Some(grouping), Some(groups), FlapPolicy::default()).unwrap();
        let berlin = GroupName::new("office-berlin").unwrap();
        let own = GroupName::new("mine").unwrap();
        assert_eq!(
            s.group_of(&h("ber-db-1"), Some(own.clone())),
            Some(berlin.clone())
        );
        assert_eq!(s.group_of(&h("x"), Some(own.clone())), Some(own));
        assert_eq!(s.group_of(&h("x"), None), None);
        assert_eq!(s.settings_of(&berlin).min_hosts, 3);
        assert_eq!(s.settings_of(&berlin).wait, Duration::from_secs(45));
        let lab = s.configured(&h("lab-1")).unwrap();
        assert_eq!(lab.settings.wait, Duration::from_secs(5));
        assert_eq!(lab.settings.min_hosts, 3);
        assert!(s.configured(&h("lab-12")).is_none());
    }

    #[test]
    fn variables_and_tables_reach_the_resolved_config() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let file = "[grouping]\nmin_hosts = 5\n[[groups]]\nname = \"lab\"\nhosts = \"lab-*\"\n";
        let c = crate::Config::from_sources(
            Some(file),
            env(&[
                ("IAMALIVE_GROUP_MIN_HOSTS", "4"),
                ("IAMALIVE_GROUP_WAIT", "90s"),
            ]),
        )
        .unwrap();
        let want = GroupingSettings {
            min_hosts: 4,
            wait: Duration::from_secs(90),
        };
        assert_eq!(c.groups.defaults, want, "variables override the file");
        assert_eq!(c.groups.groups[0].settings, want, "entries inherit them");
        assert_eq!(crate::Config::default().groups, GroupSettings::default());
        assert_eq!(
            c.groups.blind_wait(),
            Some(Duration::from_secs(90)),
            "on by default"
        );
        let off =
            crate::Config::from_sources(None, env(&[("IAMALIVE_GROUP_BLIND", "false")])).unwrap();
        assert!(!off.groups.blind_detection && off.groups.blind_wait().is_none());
        let off =
            crate::Config::from_sources(Some("[grouping]\nblind_detection = false\n"), env(&[]))
                .unwrap();
        assert_eq!(off.groups.blind_wait(), None);
        let e = crate::Config::from_sources(None, env(&[("IAMALIVE_GROUP_BLIND", "maybe")]))
            .unwrap_err();
        assert_eq!(e.key, "IAMALIVE_GROUP_BLIND");
        let e = crate::Config::from_sources(None, env(&[("IAMALIVE_GROUP_MIN_HOSTS", "0")]))
            .unwrap_err();
        assert_eq!(e.key, "grouping.min_hosts (IAMALIVE_GROUP_MIN_HOSTS)");
        let e =
            crate::Config::from_sources(None, env(&[("IAMALIVE_GROUP_WAIT", "soon")])).unwrap_err();
        assert_eq!(e.key, "IAMALIVE_GROUP_WAIT");
        let e = crate::Config::from_sources(Some("[grouping]\nsize = 3\n"), env(&[])).unwrap_err();
        assert!(e.reason.contains("size"), "{e}");
    }

    #[test]
    fn group_flapping_settings_default_to_flapping_and_are_overridable_per_group() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let file = "[flapping]\nflips = 6\n\
                    [[groups]]\nname = \"lab\"\nhosts = \"lab-*\"\nflap_flips = 2\nflap_stable = \"5m\"\n\
                    [[groups]]\nname = \"ber\"\nhosts = \"ber-*\"\n";
        let c = crate::Config::from_sources(Some(file), env(&[("IAMALIVE_FLAP_WINDOW", "2h")]))
            .unwrap();
        let lab = GroupName::new("lab").unwrap();
        let ber = GroupName::new("ber").unwrap();
        let other = GroupName::new("elsewhere").unwrap();
        let want_default = FlapPolicy {
            flips: 6,
            window: Duration::from_secs(7200),
            ..FlapPolicy::default()
        };
        assert_eq!(c.groups.flapping_of(&ber), want_default);
        assert_eq!(c.groups.flapping_of(&other), want_default);
        assert_eq!(
            c.groups.flapping_of(&lab),
            FlapPolicy {
                flips: 2,
                stable: Duration::from_secs(300),
                ..want_default
            }
        );
        assert_eq!((c.groups.grouping())(&lab).flap.flips, 2);
        let off = crate::Config::from_sources(
            Some("[flapping]\nenabled = false\n[[groups]]\nname = \"lab\"\nhosts = \"lab-*\"\nflap_flips = 2\n"),
            env(&[]),
        )
        .unwrap();
        assert!(
            !off.groups.flapping_of(&lab).enabled,
            "[flapping] enabled = false turns it off for groups too"
        );
        let e = crate::Config::from_sources(
            Some("[[groups]]\nname = \"lab\"\nhosts = \"lab-*\"\nflap_flips = 0\n"),
            env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.key, "groups[0].flap_flips");
        let e = crate::Config::from_sources(
            Some("[[groups]]\nname = \"lab\"\nhosts = \"lab-*\"\nflap_stable = \"0s\"\n"),
            env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.key, "groups[0].flap_stable");
    }

    #[test]
    fn defaults_and_bad_values() {
        let s = GroupSettings::resolve(None, None, FlapPolicy::default()).unwrap();
        assert_eq!(s.defaults.min_hosts, 2);
        assert_eq!(s.defaults.wait, Duration::from_secs(30));
        let bad = |name: &str, hosts: &str, min: Option<u32>| {
            GroupSettings::resolve(
                None,
                Some(vec![GroupTable {
                    name: name.into(),
                    hosts: hosts.into(),
                    min_hosts: min,
                    wait: None,
                    flap_flips: None,
                    flap_window: None,
                    flap_stable: None,
                }]),
                FlapPolicy::default(),
            )
            .unwrap_err()
        };
        assert_eq!(bad("a b", "*", None).key, "groups[0].name");
        assert_eq!(bad("a", "a b", None).key, "groups[0].hosts");
        assert_eq!(bad("a", "*", Some(0)).key, "groups[0].min_hosts");
        let e = GroupSettings::resolve(
            Some(GroupingTable {
                min_hosts: None,
                wait: Some(Duration::from_secs(100_000)),
                blind_detection: None,
            }),
            None,
            FlapPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "grouping.wait (IAMALIVE_GROUP_WAIT)");
    }
}
