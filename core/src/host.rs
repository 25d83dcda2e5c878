//! Host identifiers and host patterns.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest host id accepted, in bytes (the longest DNS name).
pub const MAX_HOST_LEN: usize = 253;

/// Why a string is not a valid [`HostId`] or [`HostPattern`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidHost {
    /// The string was empty.
    #[error("host id is empty")]
    Empty,
    /// The string was longer than [`MAX_HOST_LEN`] bytes.
    #[error("host id is {len} bytes long; at most {MAX_HOST_LEN} are allowed")]
    TooLong {
        /// The length that was given.
        len: usize,
    },
    /// The string held a character outside `[A-Za-z0-9._-]`.
    #[error(
        "host id has {found:?} at byte {at}; only letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar {
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The string was made only of dots (`.`, `..`, ...): names that
    /// paths, URLs and mail tools read as "this" or "the parent".
    #[error("host id {0:?} is made only of dots; it needs a letter, digit, '_' or '-'")]
    OnlyDots(String),
}

fn check(s: &str, extra: &[u8]) -> Result<(), InvalidHost> {
    if s.is_empty() {
        return Err(InvalidHost::Empty);
    }
    if s.len() > MAX_HOST_LEN {
        return Err(InvalidHost::TooLong { len: s.len() });
    }
    for (at, found) in s.char_indices() {
        let ok = found.is_ascii_alphanumeric()
            || matches!(found, '.' | '_' | '-')
            || (found.is_ascii() && extra.contains(&(found as u8)));
        if !ok {
            return Err(InvalidHost::BadChar { found, at });
        }
    }
    Ok(())
}

/// A validated host id: 1–253 bytes of `[A-Za-z0-9._-]`, not only dots,
/// folded to lowercase.
///
/// ```
/// use iamalive_core::HostId;
/// let h = HostId::new("Build-01.example").unwrap();
/// assert_eq!(h.as_str(), "build-01.example");
/// assert!(HostId::new("bad host").is_err());
/// ```
///
/// The text is shared (`Arc<str>`): cloning a host id bumps a reference
/// count instead of allocating, so cloning a
/// [`HostRecord`](crate::HostRecord) with no message, report or owed
/// notice allocates nothing ([`evaluate`](crate::evaluate) clones one per
/// decision).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(Arc<str>);

impl Serialize for HostId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl HostId {
    /// Validates `s` and folds it to lowercase.
    pub fn new(s: impl AsRef<str>) -> Result<Self, InvalidHost> {
        let s = s.as_ref();
        check(s, b"")?;
        if s.bytes().all(|b| b == b'.') {
            return Err(InvalidHost::OnlyDots(s.to_owned()));
        }
        // One allocation: copy into the shared buffer, then fold in place.
        let mut id: Arc<str> = Arc::from(s);
        Arc::get_mut(&mut id)
            .expect("a new Arc has no other owner")
            .make_ascii_lowercase();
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for HostId {
    type Err = InvalidHost;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for HostId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HostId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A glob over host ids: `*` matches any run of characters, `?` one character.
///
/// Used by silences, per-host policies and keys limited to some hosts.
/// Matching is case-insensitive, like host ids.
///
/// ```
/// use iamalive_core::{HostId, HostPattern};
/// let p = HostPattern::new("db-*.eu").unwrap();
/// assert!(p.matches(&HostId::new("DB-01.eu").unwrap()));
/// assert!(!p.matches(&HostId::new("web-01.eu").unwrap()));
/// ```
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct HostPattern {
    text: String,
    #[serde(skip)]
    glob: wildmatch::WildMatch,
}

impl HostPattern {
    /// Validates a pattern: host-id characters plus `*` and `?`.
    pub fn new(s: impl AsRef<str>) -> Result<Self, InvalidHost> {
        let s = s.as_ref();
        check(s, b"*?")?;
        let text = s.to_ascii_lowercase();
        Ok(Self {
            glob: wildmatch::WildMatch::new(&text),
            text,
        })
    }

    /// The pattern that matches every host.
    pub fn any() -> Self {
        Self::new("*").expect("'*' is a valid pattern")
    }

    /// Whether `host` matches.
    pub fn matches(&self, host: &HostId) -> bool {
        self.glob.matches(host.as_str())
    }

    /// Whether a group name (a site, folded to lowercase like a host id)
    /// matches: routes use the same glob for `groups` as for `hosts`.
    pub fn matches_group(&self, group: &crate::GroupName) -> bool {
        self.glob.matches(group.as_str())
    }

    /// The pattern as written (lowercased).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for HostPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for HostPattern {}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for HostPattern {
    type Err = InvalidHost;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_validated_and_folded() {
        assert_eq!(HostId::new("A.b_C-9").unwrap().as_str(), "a.b_c-9");
        assert_eq!(HostId::new(""), Err(InvalidHost::Empty));
        assert_eq!(
            HostId::new("a".repeat(254)),
            Err(InvalidHost::TooLong { len: 254 })
        );
        assert!(HostId::new("a".repeat(253)).is_ok());
        assert_eq!(
            HostId::new("ab/c"),
            Err(InvalidHost::BadChar { found: '/', at: 2 })
        );
        assert!(matches!(
            HostId::new("hé"),
            Err(InvalidHost::BadChar { found: 'é', .. })
        ));
        assert!(HostId::new("a*").is_err());
        for dots in [".", "..", "..."] {
            assert_eq!(HostId::new(dots), Err(InvalidHost::OnlyDots(dots.into())));
        }
        assert!(HostId::new(".a").is_ok() && HostId::new("a..").is_ok());
        let e = HostId::new("a b").unwrap_err().to_string();
        assert!(e.contains("' '") && e.contains("byte 1"), "{e}");
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<HostId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<HostId>("\"not ok\"").is_err());
        let p: HostPattern = serde_json::from_str("\"Web-*\"").unwrap();
        assert!(p.matches(&HostId::new("web-7").unwrap()));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"web-*\"");
    }

    #[test]
    fn patterns() {
        let h = |s| HostId::new(s).unwrap();
        assert!(HostPattern::any().matches(&h("x")));
        let p = HostPattern::new("db-?.eu").unwrap();
        assert!(p.matches(&h("db-1.eu")));
        assert!(!p.matches(&h("db-12.eu")));
        assert!(HostPattern::new("a b*").is_err());
    }
}
