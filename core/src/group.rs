//! Group names: the site a host belongs to.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

/// The name under which hosts without a group are listed (the dashboard's
/// heading, status page and badge for them). Reserved: no group may take
/// it, so it never means two things.
pub const UNGROUPED: &str = "ungrouped";

/// The name under which the watcher's own record is stored beside the
/// groups' (see [`crate::group_outage::blind`]): an outage of groups, when
/// the likeliest cause is the watcher's own ingress. The `~` is outside
/// the characters a group name may hold, so no user's group can take it.
pub const WATCHER_GROUP: &str = "~watcher";

/// The longest group name accepted, in bytes.
pub const MAX_GROUP_LEN: usize = 128;

/// Why a string is not a valid [`GroupName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidGroup {
    /// The string was empty.
    #[error("group name is empty")]
    Empty,
    /// The string was longer than [`MAX_GROUP_LEN`] bytes.
    #[error("group name is {len} bytes long; at most {MAX_GROUP_LEN} are allowed")]
    TooLong {
        /// The length that was given.
        len: usize,
    },
    /// The string held a character outside `[A-Za-z0-9._-]`.
    #[error(
        "group name has {found:?} at byte {at}; only letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar {
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The string was made only of dots.
    #[error("group name {0:?} is made only of dots; it needs a letter, digit, '_' or '-'")]
    OnlyDots(String),
    /// The name is [`UNGROUPED`], which stands for the hosts without a group.
    #[error("group name \"ungrouped\" is reserved for the hosts without a group; choose another")]
    Reserved,
}

/// A validated group (site) name: 1–128 bytes of `[A-Za-z0-9._-]`, not
/// only dots, folded to lowercase — the rules of host ids, shorter — and
/// not [`UNGROUPED`] (in any case), which names the hosts without a group.
///
/// A host belongs to at most one group: the one configuration gives it
/// (`[[groups]]`), else the one the host says it is in.
///
/// ```
/// use iamalive_core::GroupName;
/// let g = GroupName::new("Office-Berlin").unwrap();
/// assert_eq!(g.as_str(), "office-berlin");
/// assert!(GroupName::new("office berlin").is_err());
/// assert!(GroupName::new("Ungrouped").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(Arc<str>);

impl GroupName {
    /// Validates `s` and folds it to lowercase.
    pub fn new(s: impl AsRef<str>) -> Result<Self, InvalidGroup> {
        let s = s.as_ref();
        if s.is_empty() {
            return Err(InvalidGroup::Empty);
        }
        if s.len() > MAX_GROUP_LEN {
            return Err(InvalidGroup::TooLong { len: s.len() });
        }
        if let Some((at, found)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(InvalidGroup::BadChar { found, at });
        }
        if s.bytes().all(|b| b == b'.') {
            return Err(InvalidGroup::OnlyDots(s.to_owned()));
        }
        let folded = s.to_ascii_lowercase();
        if folded == UNGROUPED {
            return Err(InvalidGroup::Reserved);
        }
        Ok(Self(Arc::from(folded)))
    }

    /// The reserved name of the watcher's own record ([`WATCHER_GROUP`]),
    /// which [`new`](Self::new) refuses.
    pub fn watcher() -> Self {
        Self(Arc::from(WATCHER_GROUP))
    }

    /// The reserved name of the record that gathers the silences of hosts
    /// without a group for the watcher-blind detection ([`UNGROUPED`];
    /// see [`crate::group_outage::loose`]), which [`new`](Self::new)
    /// refuses.
    pub fn ungrouped() -> Self {
        Self(Arc::from(UNGROUPED))
    }

    /// Whether this is [`UNGROUPED`]: the hosts without a group.
    pub fn is_ungrouped(&self) -> bool {
        &*self.0 == UNGROUPED
    }

    /// How notices name it: "site office-berlin", or "hosts without a
    /// group" for [`UNGROUPED`].
    pub fn label(&self) -> String {
        if self.is_ungrouped() {
            "hosts without a group".to_owned()
        } else {
            format!("site {}", self.0)
        }
    }

    /// A name read back from a store: [`new`](Self::new)'s rules, and
    /// also [`WATCHER_GROUP`] and [`UNGROUPED`] (their records are stored
    /// beside the groups'). Never for user input.
    pub fn stored(s: &str) -> Result<Self, InvalidGroup> {
        if s == WATCHER_GROUP {
            return Ok(Self::watcher());
        }
        if s == UNGROUPED {
            return Ok(Self::ungrouped());
        }
        Self::new(s)
    }

    /// Whether this is [`WATCHER_GROUP`].
    pub fn is_watcher(&self) -> bool {
        &*self.0 == WATCHER_GROUP
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for GroupName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Stored records name the watcher's own record; user input is
        // parsed with `new`, which refuses it.
        Self::stored(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for GroupName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for GroupName {
    type Err = InvalidGroup;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_validated_and_folded() {
        assert_eq!(
            GroupName::new("Office-Berlin").unwrap().as_str(),
            "office-berlin"
        );
        assert_eq!(GroupName::new(""), Err(InvalidGroup::Empty));
        assert_eq!(
            GroupName::new("a".repeat(129)),
            Err(InvalidGroup::TooLong { len: 129 })
        );
        assert!(GroupName::new("a".repeat(128)).is_ok());
        assert_eq!(
            GroupName::new("a\nb"),
            Err(InvalidGroup::BadChar { found: '\n', at: 1 })
        );
        assert!(GroupName::new("a b").is_err() && GroupName::new("é").is_err());
        assert_eq!(
            GroupName::new(".."),
            Err(InvalidGroup::OnlyDots("..".into()))
        );
        assert!(serde_json::from_str::<GroupName>("\"x y\"").is_err());
        // The dashboard's name for hosts without a group is no group's.
        assert_eq!(GroupName::new("UnGrouped"), Err(InvalidGroup::Reserved));
        assert!(GroupName::new("ungrouped-2").is_ok());
        // The watcher's own record: no user can name a group so, stored
        // records read it back.
        assert!(matches!(
            GroupName::new(WATCHER_GROUP),
            Err(InvalidGroup::BadChar { found: '~', at: 0 })
        ));
        let w: GroupName = serde_json::from_str("\"~watcher\"").unwrap();
        assert!(w.is_watcher() && w == GroupName::watcher());
        assert!(!GroupName::new("watcher").unwrap().is_watcher());
        assert_eq!(
            serde_json::to_string(&GroupName::new("B").unwrap()).unwrap(),
            "\"b\""
        );
    }
}
