//! A group's members, keyed by host.
//!
//! A site going dark puts every one of its hosts in its group's record, so
//! the record must find, add and drop one host without walking the others:
//! [`Members`] is a map ordered by host. It is stored as the list it
//! replaced (a JSON array of [`Member`]s, in host order), so records
//! written before it read back unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Member;
use crate::HostId;

/// The hosts a group's record knows: held, in the outage, or alone; one
/// entry per host, in host order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members(BTreeMap<HostId, Member>);

impl Members {
    /// No members.
    pub fn new() -> Self {
        Self::default()
    }

    /// `host`'s entry, if it is a member: O(log n).
    pub fn get(&self, host: &HostId) -> Option<&Member> {
        self.0.get(host)
    }

    /// `host`'s entry to change in place, if it is a member.
    pub fn get_mut(&mut self, host: &HostId) -> Option<&mut Member> {
        self.0.get_mut(host)
    }

    /// Adds `m`, replacing the entry of the same host; returns the one it
    /// replaced.
    pub fn insert(&mut self, m: Member) -> Option<Member> {
        self.0.insert(m.host.clone(), m)
    }

    /// Drops `host`'s entry; returns it.
    pub fn remove(&mut self, host: &HostId) -> Option<Member> {
        self.0.remove(host)
    }

    /// Keeps only the members `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Member) -> bool) {
        self.0.retain(|_, m| keep(m));
    }

    /// Every member, in host order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.0.values()
    }

    /// Every member to change in place, in host order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Member> {
        self.0.values_mut()
    }

    /// The first member in host order.
    pub fn first(&self) -> Option<&Member> {
        self.0.values().next()
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Member> for Members {
    /// The members of `iter`; a host listed twice keeps its last entry.
    fn from_iter<I: IntoIterator<Item = Member>>(iter: I) -> Self {
        Self(iter.into_iter().map(|m| (m.host.clone(), m)).collect())
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a Member;
    type IntoIter = std::collections::btree_map::Values<'a, HostId, Member>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.values()
    }
}

impl<'a> IntoIterator for &'a mut Members {
    type Item = &'a mut Member;
    type IntoIter = std::collections::btree_map::ValuesMut<'a, HostId, Member>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.values_mut()
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Member>::deserialize(d)?.into_iter().collect())
    }
}
