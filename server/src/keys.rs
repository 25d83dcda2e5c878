//! API keys: held only as SHA-256 hashes, compared in constant time.

use std::fmt;
use std::str::FromStr;

use iamalive_core::{HostId, HostPattern};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send heartbeats and use the whole management API.
    Admin,
    /// Send heartbeats only.
    Heartbeat,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "heartbeat" => Ok(Role::Heartbeat),
            other => Err(format!(
                "unknown role {other:?}; expected \"admin\" or \"heartbeat\""
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Heartbeat => "heartbeat",
        })
    }
}

/// The SHA-256 of a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a plain key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_digits: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out)
            .map_err(|e| format!("sha256 hash must be 64 hex digits: {e}"))?;
        Ok(Self(out))
    }

    /// `sha256:<hex>`, the form that may be written into configuration.
    pub fn to_config_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 4 bytes of the hash identify a key in logs without
        // revealing anything useful about it.
        write!(f, "sha256:{}…", hex::encode(&self.0[..4]))
    }
}

/// One accepted key: its hash, role and the hosts it may speak for.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// A label for logs and rate-limit messages (never the key itself).
    pub name: String,
    /// The key's SHA-256.
    pub hash: KeyHash,
    /// What it may do.
    pub role: Role,
    /// Which hosts it may send heartbeats for (and, for an admin key, manage).
    pub hosts: HostPattern,
    /// Whether its heartbeats may create hosts the watcher does not know
    /// yet (auto-registration). `false` limits it to existing hosts: a
    /// heartbeat for an unknown host is refused with 403.
    pub register: bool,
}

impl ApiKey {
    /// An admin key for every host, from its hash.
    pub fn admin(name: impl Into<String>, hash: KeyHash) -> Self {
        Self {
            name: name.into(),
            hash,
            role: Role::Admin,
            hosts: HostPattern::any(),
            register: true,
        }
    }

    /// Parses the compact form used in `IAMALIVE_API_KEYS`:
    /// `<key or sha256:hex>[;role=admin|heartbeat][;hosts=<pattern>][;register=true|false][;name=<label>]`.
    ///
    /// `index` names the entry when it has no `name=`.
    pub fn parse_compact(entry: &str, index: usize) -> Result<Self, String> {
        let mut parts = entry.trim().split(';');
        let secret = parts.next().unwrap_or_default().trim();
        let hash = parse_secret(secret)?;
        let mut key = ApiKey::admin(format!("key-{}", index + 1), hash);
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected name=value after ';', found {part:?}"))?;
            match k.trim() {
                "role" => key.role = v.trim().parse()?,
                "hosts" => {
                    key.hosts = HostPattern::new(v.trim())
                        .map_err(|e| format!("bad host pattern {v:?}: {e}"))?;
                }
                "name" => key.name = v.trim().to_owned(),
                "register" => {
                    key.register = match v.trim() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(format!("register must be true or false, not {other:?}"));
                        }
                    };
                }
                other => {
                    return Err(format!(
                        "unknown key option {other:?}; expected role, hosts, register or name"
                    ));
                }
            }
        }
        Ok(key)
    }
}

/// A plain key, or `sha256:<hex>` for a hash.
pub(crate) fn parse_secret(secret: &str) -> Result<KeyHash, String> {
    if let Some(h) = secret.strip_prefix("sha256:") {
        return KeyHash::from_hex(h);
    }
    if secret.len() < 16 {
        return Err(format!(
            "a key must be at least 16 characters long (this one has {})",
            secret.len()
        ));
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a key must not contain whitespace".into());
    }
    Ok(KeyHash::of(secret))
}

/// The set of accepted keys.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<ApiKey>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self { keys }
    }

    /// The keys.
    pub fn keys(&self) -> &[ApiKey] {
        &self.keys
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The index of the key whose hash matches `presented`'s, checking every
    /// entry in constant time (no early exit).
    pub fn find(&self, presented: &str) -> Option<usize> {
        let h = KeyHash::of(presented);
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            if k.hash.ct_eq(&h) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }

    /// The key at `index`.
    pub fn get(&self, index: usize) -> Option<&ApiKey> {
        self.keys.get(index)
    }
}

impl ApiKey {
    /// Whether this key may act for `host`.
    pub fn allows(&self, host: &HostId) -> bool {
        self.hosts.matches(host)
    }
}

/// A fresh random key: 32 characters of `[A-Za-z0-9]` (about 190 bits).
pub fn generate_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_entries() {
        let k = ApiKey::parse_compact("0123456789abcdef0123", 0).unwrap();
        assert_eq!(k.role, Role::Admin);
        assert_eq!(k.name, "key-1");
        assert!(k.hash.ct_eq(&KeyHash::of("0123456789abcdef0123")));
        let h = KeyHash::of("secret-secret-secret").to_config_string();
        let k =
            ApiKey::parse_compact(&format!("{h};role=heartbeat;hosts=web-*;name=web"), 3).unwrap();
        assert_eq!(k.role, Role::Heartbeat);
        assert_eq!(k.name, "web");
        assert!(k.allows(&HostId::new("web-1").unwrap()));
        assert!(!k.allows(&HostId::new("db-1").unwrap()));
        assert!(k.register);
        let k = ApiKey::parse_compact("0123456789abcdef0123;register=false", 0).unwrap();
        assert!(!k.register);
        assert!(
            ApiKey::parse_compact("short", 0)
                .unwrap_err()
                .contains("16")
        );
        assert!(ApiKey::parse_compact("sha256:zz", 0).is_err());
        assert!(
            ApiKey::parse_compact("0123456789abcdef0123;rol=admin", 0)
                .unwrap_err()
                .contains("rol")
        );
        assert!(
            ApiKey::parse_compact("0123456789abcdef0123;role=root", 0)
                .unwrap_err()
                .contains("root")
        );
    }

    #[test]
    fn ring_finds_by_hash_and_debug_redacts() {
        let ring = KeyRing::new(vec![
            ApiKey::admin("a", KeyHash::of("first-key-aaaaaaaa")),
            ApiKey::admin("b", KeyHash::of("second-key-bbbbbbb")),
        ]);
        assert_eq!(ring.find("second-key-bbbbbbb"), Some(1));
        assert_eq!(ring.find("nope"), None);
        let dbg = format!("{ring:?}");
        assert!(!dbg.contains("second-key"), "{dbg}");
        let g = generate_key();
        assert_eq!(g.len(), 32);
        assert!(parse_secret(&g).is_ok());
    }
}
