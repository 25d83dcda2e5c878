//! Dashboard sessions: held in this process's memory, found by the SHA-256
//! of a random token that only the browser's cookie holds.
//!
//! With a shared session secret the token also carries its own proof: the
//! key it logged in with, its end and a random nonce, signed with
//! HMAC-SHA256. Every process with the same secret (several watchers
//! behind a load balancer, Lambda instances) then accepts it and derives
//! the same CSRF token from it; a logout is remembered by the process that
//! saw it, and the cookie is cleared.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use iamalive_core::{Timestamp, add};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The most sessions kept at once; a new login past it ends the session
/// that would expire first.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// One login.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The index of the key that logged in, in the key ring.
    pub(crate) key: usize,
    /// The start of that key's hash, so a session never outlives a change
    /// of the key at its index.
    pub(crate) key_tag: String,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    /// When the login ends, however much it is used.
    pub(crate) expires: Timestamp,
    /// A message for the next page shown (what the last action did).
    pub(crate) flash: Option<Flash>,
}

/// What an action did, shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Whether it failed.
    pub(crate) error: bool,
    /// The words.
    pub(crate) text: String,
}

/// The sessions of this process.
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    /// Signs tokens so other processes accept them; `None`: this process's
    /// sessions only.
    secret: Option<crate::config::Secret>,
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    /// Signed tokens logged out here, until they would have expired.
    revoked: Mutex<HashMap<[u8; 32], Timestamp>>,
}

fn random_hex_of(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn random_hex() -> String {
    random_hex_of(32)
}

fn mac(secret: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for p in parts {
        m.update(p);
        m.update(&[0]);
    }
    m.finalize().into_bytes().into()
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub(crate) fn new(ttl: Duration, secret: Option<crate::config::Secret>) -> Self {
        Self {
            ttl,
            secret,
            by_hash: Mutex::default(),
            revoked: Mutex::default(),
        }
    }

    /// The CSRF token of a signed session: derived, so every process
    /// agrees on it.
    fn signed_csrf(secret: &str, payload: &str) -> String {
        hex::encode(mac(secret, &[b"csrf", payload.as_bytes()]))
    }

    /// A signed token's session, if its signature holds, it has not ended
    /// and was not logged out here.
    fn verify(&self, token: &str, now: Timestamp) -> Option<Session> {
        let secret = self.secret.as_ref()?.expose();
        let (payload, sig) = token.rsplit_once('.')?;
        let want = hex::encode(&mac(secret, &[b"session", payload.as_bytes()])[..16]);
        if !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return None;
        }
        let mut parts = payload.split('.');
        let (key, tag, expires, _nonce) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires = chrono::DateTime::from_timestamp_millis(expires.parse().ok()?)?;
        if expires <= now || self.revoked_at(token, now) {
            return None;
        }
        Some(Session {
            key: key.parse().ok()?,
            key_tag: tag.to_owned(),
            csrf: Self::signed_csrf(secret, payload),
            expires,
            flash: None,
        })
    }

    fn revoked_at(&self, token: &str, now: Timestamp) -> bool {
        let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|_, until| *until > now);
        r.contains_key(&hash(token))
    }

    /// How long a session lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for key number `key` (whose hash starts with
    /// `key_tag`); the cookie's token.
    pub(crate) fn open(&self, key: usize, key_tag: &str, now: Timestamp) -> String {
        let expires = add(now, self.ttl);
        let (token, csrf) = match &self.secret {
            Some(secret) => {
                let payload = format!(
                    "{key}.{key_tag}.{}.{}",
                    expires.timestamp_millis(),
                    random_hex_of(16)
                );
                let sig =
                    hex::encode(&mac(secret.expose(), &[b"session", payload.as_bytes()])[..16]);
                let csrf = Self::signed_csrf(secret.expose(), &payload);
                (format!("{payload}.{sig}"), csrf)
            }
            None => (random_hex(), random_hex()),
        };
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(first) = map.iter().min_by_key(|(_, s)| s.expires).map(|(h, _)| *h)
        {
            map.remove(&first);
        }
        map.insert(
            hash(&token),
            Session {
                key,
                key_tag: key_tag.to_owned(),
                csrf,
                expires,
                flash: None,
            },
        );
        token
    }

    /// The live session of `token`, its flash message taken.
    pub(crate) fn get(&self, token: &str, now: Timestamp) -> Option<Session> {
        let h = hash(token);
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&h) {
            // Signed by another process with the same secret?
            let s = self.verify(token, now)?;
            if map.len() >= MAX_SESSIONS {
                map.retain(|_, s| s.expires > now);
            }
            if map.len() < MAX_SESSIONS {
                map.insert(h, s.clone());
            }
            return Some(s);
        }
        let s = map.get_mut(&h)?;
        if s.expires <= now {
            map.remove(&h);
            return None;
        }
        let out = s.clone();
        s.flash = None;
        Some(out)
    }

    /// Sets the message the next page of `token`'s session shows.
    pub(crate) fn flash(&self, token: &str, flash: Flash) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(&hash(token)) {
            s.flash = Some(flash);
        }
    }

    /// Ends `token`'s session.
    pub(crate) fn close(&self, token: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.remove(&hash(token))
            && self.secret.is_some()
        {
            let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() >= MAX_SESSIONS
                && let Some(first) = r.iter().min_by_key(|(_, t)| **t).map(|(h, _)| *h)
            {
                r.remove(&first);
            }
            r.insert(hash(token), s.expires);
        }
    }
}

/// Whether `given` is the session's CSRF token, in constant time.
pub(crate) fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| g.as_bytes().ct_eq(session.csrf.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamalive_core::{Clock, ManualClock};

    #[test]
    fn a_session_ends_after_its_life_and_on_logout() {
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let s = Sessions::new(Duration::from_secs(60), None);
        let t = s.open(3, "tag", clock.now());
        assert_eq!(s.get(&t, clock.now()).map(|x| x.key), Some(3));
        assert!(s.get("not-a-token", clock.now()).is_none());
        clock.advance(Duration::from_secs(59));
        assert!(s.get(&t, clock.now()).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(s.get(&t, clock.now()).is_none(), "expired at its end");
        let t2 = s.open(0, "tag", clock.now());
        s.close(&t2);
        assert!(s.get(&t2, clock.now()).is_none(), "logged out");
    }

    #[test]
    fn flash_is_shown_once_and_csrf_must_match() {
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let s = Sessions::new(Duration::from_secs(60), None);
        let t = s.open(0, "tag", clock.now());
        s.flash(
            &t,
            Flash {
                error: false,
                text: "done".into(),
            },
        );
        let first = s.get(&t, clock.now()).unwrap();
        assert_eq!(first.flash.as_ref().map(|f| f.text.as_str()), Some("done"));
        let second = s.get(&t, clock.now()).unwrap();
        assert!(second.flash.is_none());
        assert!(csrf_ok(&second, Some(&second.csrf.clone())));
        assert!(!csrf_ok(&second, Some("forged")));
        assert!(!csrf_ok(&second, None));
    }

    #[test]
    fn a_signed_session_is_accepted_by_every_process_with_the_secret() {
        use crate::config::Secret;
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let secret = Some(Secret::new("shared-session-secret-0123"));
        let a = Sessions::new(Duration::from_secs(60), secret.clone());
        let b = Sessions::new(Duration::from_secs(60), secret);
        let other = Sessions::new(
            Duration::from_secs(60),
            Some(Secret::new("another-secret-0123456789")),
        );
        let alone = Sessions::new(Duration::from_secs(60), None);
        let t = a.open(2, "abcd1234", clock.now());
        let (sa, sb) = (
            a.get(&t, clock.now()).unwrap(),
            b.get(&t, clock.now()).unwrap(),
        );
        assert_eq!((sb.key, sb.key_tag.as_str()), (2, "abcd1234"));
        assert_eq!(sa.csrf, sb.csrf, "both derive the same CSRF token");
        assert_eq!(sa.csrf.len(), 64);
        assert!(other.get(&t, clock.now()).is_none(), "another secret");
        assert!(alone.get(&t, clock.now()).is_none(), "no secret");
        // Tampering with what the token says breaks its signature.
        let forged = t.replacen("2.", "0.", 1);
        assert!(
            Sessions::new(
                Duration::from_secs(60),
                Some(Secret::new("shared-session-secret-0123"))
            )
            .get(&forged, clock.now())
            .is_none()
        );
        // A logout is remembered where it happened.
        b.close(&t);
        assert!(b.get(&t, clock.now()).is_none());
        clock.advance(Duration::from_secs(60));
        assert!(a.get(&t, clock.now()).is_none(), "expired everywhere");
        let fresh = Sessions::new(
            Duration::from_secs(60),
            Some(Secret::new("shared-session-secret-0123")),
        );
        assert!(fresh.get(&t, clock.now()).is_none());
    }

    #[test]
    fn the_session_count_is_bounded() {
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let s = Sessions::new(Duration::from_secs(3600), None);
        let first = s.open(0, "tag", clock.now());
        clock.advance(Duration::from_secs(1));
        for _ in 1..MAX_SESSIONS {
            s.open(0, "tag", clock.now());
        }
        let last = s.open(0, "tag", clock.now());
        assert!(s.get(&first, clock.now()).is_none(), "the oldest made room");
        assert!(s.get(&last, clock.now()).is_some());
        assert!(s.by_hash.lock().unwrap().len() <= MAX_SESSIONS);
    }
}
