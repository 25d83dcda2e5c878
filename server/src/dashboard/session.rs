//! Dashboard sessions: held in this process's memory, found by the SHA-256
//! of a random token that only the browser's cookie holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_hash: Mutex::default(),
        }
    }

    /// How long a session lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for key number `key`; the cookie's token.
    pub(crate) fn open(&self, key: usize, now: Timestamp) -> String {
        let token = random_hex();
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
                csrf: random_hex(),
                expires: add(now, self.ttl),
                flash: None,
            },
        );
        token
    }

    /// The live session of `token`, its flash message taken.
    pub(crate) fn get(&self, token: &str, now: Timestamp) -> Option<Session> {
        let h = hash(token);
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
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
        map.remove(&hash(token));
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
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.open(3, clock.now());
        assert_eq!(s.get(&t, clock.now()).map(|x| x.key), Some(3));
        assert!(s.get("not-a-token", clock.now()).is_none());
        clock.advance(Duration::from_secs(59));
        assert!(s.get(&t, clock.now()).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(s.get(&t, clock.now()).is_none(), "expired at its end");
        let t2 = s.open(0, clock.now());
        s.close(&t2);
        assert!(s.get(&t2, clock.now()).is_none(), "logged out");
    }

    #[test]
    fn flash_is_shown_once_and_csrf_must_match() {
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.open(0, clock.now());
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
    fn the_session_count_is_bounded() {
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let s = Sessions::new(Duration::from_secs(3600));
        let first = s.open(0, clock.now());
        clock.advance(Duration::from_secs(1));
        for _ in 1..MAX_SESSIONS {
            s.open(0, clock.now());
        }
        let last = s.open(0, clock.now());
        assert!(s.get(&first, clock.now()).is_none(), "the oldest made room");
        assert!(s.get(&last, clock.now()).is_some());
        assert!(s.by_hash.lock().unwrap().len() <= MAX_SESSIONS);
    }
}
