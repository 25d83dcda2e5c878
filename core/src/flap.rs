//! Flapping: a host that keeps going silent and coming back gets one
//! notice that says so, not one alarm and one all-clear per flip.
//!
//! The rule, pure like [`decide`](crate::decide):
//!
//! - A **flip** is an outage of the host beginning (`up → missing` at its
//!   deadline). Outages a job *reported* (`/fail`) are not flips: a
//!   reported failure is news of its own and is always told (see below).
//! - The record keeps the starts of its most recent outages, at most
//!   [`FlapPolicy::flips`] + 1 of them and none older than the window: that
//!   is all "more than N within W" needs, so the history is bounded by the
//!   setting, not by the host's past.
//! - When an outage begins and more than [`flips`](FlapPolicy::flips)
//!   outages (this one included) began within the
//!   [`window`](FlapPolicy::window), a **flapping episode** begins: the
//!   team gets one notice of kind `flapping` in place of that outage's
//!   alarm ("`[iamalive] FLAPPING web-3: 5 outages in 1h`").
//! - During the episode no per-flip notice goes out: a new outage owes no
//!   alarm, a return owes no all-clear, and no reminder comes (the host is
//!   never `alarmed` by a flip in an episode).
//! - The episode ends once the host has stayed in one state for
//!   [`stable`](FlapPolicy::stable): no outage began or ended for that
//!   long. Then one notice with its state: if it is up, a `stable` notice
//!   ("web-3 stable again (up since …)"); if it is down, the alarm, like
//!   any other alarm (reminders and the all-clear follow as usual). A
//!   flapping host that goes down and stays down is therefore alarmed at
//!   its last outage's start (its deadline) plus `stable`, at the latest.
//!   The history is forgotten when an episode ends: a host that proved
//!   stable for `stable` gets its next outage's alarm at once.
//! - A silence still wins: a flapping or stable notice owed while a
//!   silence covers the host is dropped like an alarm. A `stable` notice
//!   is owed only when the `flapping` notice reached someone (whoever was
//!   told it flaps is told it stopped; nobody else).
//!
//! Everything here is written by the compare-and-swap of the transition it
//! belongs to (an outage beginning or ending), so an up host's heartbeat
//! path writes nothing more.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{add, since};
use crate::{HostRecord, Timestamp};

/// When a host counts as flapping, and when it is stable again.
///
/// ```
/// use std::time::Duration;
/// use iamalive_core::flap::FlapPolicy;
/// let p = FlapPolicy::default();
/// assert_eq!((p.flips, p.window, p.stable), (4, Duration::from_secs(3600), Duration::from_secs(1800)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlapPolicy {
    /// Whether flapping is detected at all. Default true.
    pub enabled: bool,
    /// More than this many outages within `window` is flapping. Default 4.
    pub flips: u32,
    /// The window the outages are counted in. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A flapping host is stable again once it has stayed up (or down) this
    /// long. Default 30 minutes.
    #[serde(with = "humantime_serde")]
    pub stable: Duration,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            flips: 4,
            window: Duration::from_secs(3600),
            stable: Duration::from_secs(1800),
        }
    }
}

/// The most outages a window may count (a bound on a record's history).
pub const MAX_FLIPS: u32 = 100;

impl FlapPolicy {
    /// Detection turned off.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Checks for values that cannot work; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.flips == 0 || self.flips > MAX_FLIPS {
            return Err(format!(
                "flips must be between 1 and {MAX_FLIPS} (more outages than this within the window is flapping), not {}",
                self.flips
            ));
        }
        if self.window.is_zero() {
            return Err("window must be greater than zero".into());
        }
        if self.stable.is_zero() {
            return Err("stable must be greater than zero".into());
        }
        Ok(())
    }
}

/// A host's recent outages and its flapping episode, stored with its
/// record (`None` until its first outage).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flap {
    /// Starts of its most recent outages, oldest first: at most
    /// [`FlapPolicy::flips`] + 1, none older than the window as of the
    /// latest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flips: Vec<Timestamp>,
    /// The episode in progress, if the host is flapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
}

/// A flapping episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// When it began: the start of the outage that made the host flapping.
    pub since: Timestamp,
    /// Outages counted in it: those within the window when it began, and
    /// every one since.
    pub outages: u32,
    /// When the host last changed state (an outage began or ended): it is
    /// stable once this lies [`FlapPolicy::stable`] in the past.
    pub changed: Timestamp,
    /// Whether the `flapping` notice reached a channel (then its end is
    /// told too).
    #[serde(default)]
    pub told: bool,
}

impl Episode {
    /// The id its notices share (`web-3@<ms>/flapping`).
    pub fn outage_id(&self, host: &crate::HostId) -> String {
        format!("{host}@{}/flapping", self.since.timestamp_millis())
    }
}

/// What a flap adds to a notice: how much the host flapped, and the
/// settings that judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlapNote {
    /// Outages counted (within the window for a `flapping` notice; in the
    /// whole episode for the notice that ends it).
    pub flips: u32,
    /// The window they were counted in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long the host must stay in one state to be stable again.
    #[serde(with = "humantime_serde")]
    pub stable_for: Duration,
    /// When the episode began.
    pub since: Timestamp,
}

/// What the start of an outage owes, as far as flapping goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOutage {
    /// Not flapping: the alarm, as always.
    Alarm,
    /// This outage made the host flapping: the `flapping` notice instead.
    Flapping,
    /// The host is flapping already: nothing.
    Quiet,
}

fn episode(r: &HostRecord) -> Option<&Episode> {
    r.flap.as_deref().and_then(|f| f.episode.as_ref())
}

/// Whether `r` is in a flapping episode.
pub fn flapping(r: &HostRecord) -> bool {
    episode(r).is_some()
}

/// Outages of `r` that began within `p.window` before `now`.
pub fn recent_flips(r: &HostRecord, now: Timestamp, p: &FlapPolicy) -> u32 {
    let Some(f) = r.flap.as_deref() else {
        return 0;
    };
    f.flips
        .iter()
        .filter(|&&t| t <= now && since(now, t) < p.window)
        .count() as u32
}

/// An outage of `r` began at `at` (not a reported failure): records the
/// flip, and says what it owes.
pub fn outage_began(r: &mut HostRecord, at: Timestamp, p: &FlapPolicy) -> OnOutage {
    began(&mut r.flap, at, p)
}

/// [`outage_began`] on any record's flap (a host's, or a group's whose
/// outage began: see [`crate::group_outage::flap`]).
pub fn began(slot: &mut Option<Box<Flap>>, at: Timestamp, p: &FlapPolicy) -> OnOutage {
    if !p.enabled {
        *slot = None;
        return OnOutage::Alarm;
    }
    let f = slot.get_or_insert_with(Box::default);
    f.flips.push(at);
    f.flips.retain(|&t| t <= at && since(at, t) < p.window);
    let keep = p.flips as usize + 1;
    let excess = f.flips.len().saturating_sub(keep);
    f.flips.drain(..excess);
    let n = f.flips.len() as u32;
    match &mut f.episode {
        Some(e) => {
            e.outages = e.outages.saturating_add(1);
            e.changed = at;
            OnOutage::Quiet
        }
        None if n > p.flips => {
            f.episode = Some(Episode {
                since: at,
                outages: n,
                changed: at,
                told: false,
            });
            OnOutage::Flapping
        }
        None => OnOutage::Alarm,
    }
}

/// `r` came back (an outage ended) at `at`: its episode, if any, restarts
/// its wait for stability.
pub fn came_back(r: &mut HostRecord, at: Timestamp) {
    changed(&mut r.flap, at);
}

/// [`came_back`] on any record's flap: the episode's last change moves to
/// `at` (never back).
pub fn changed(slot: &mut Option<Box<Flap>>, at: Timestamp) {
    if let Some(e) = slot.as_deref_mut().and_then(|f| f.episode.as_mut()) {
        e.changed = e.changed.max(at);
    }
}

/// When `r`'s episode ends if it stays as it is; `None` when it is not
/// flapping.
pub fn stable_at(r: &HostRecord, p: &FlapPolicy) -> Option<Timestamp> {
    episode(r).map(|e| add(e.changed, p.stable))
}

/// Whether `r` is flapping and not yet stable at `now` (its per-flip
/// notices are held). Never with detection turned off: that ends an
/// episode at its next evaluation.
pub fn holding(r: &HostRecord, now: Timestamp, p: &FlapPolicy) -> bool {
    p.enabled && stable_at(r, p).is_some_and(|at| now < at)
}

/// Whether `r`'s episode is over at `now` (stable, or detection turned
/// off).
pub fn ended(r: &HostRecord, now: Timestamp, p: &FlapPolicy) -> bool {
    flapping(r) && !holding(r, now, p)
}

/// Ends `r`'s episode and forgets its history; returns the episode.
pub fn end(r: &mut HostRecord) -> Option<Episode> {
    r.flap.take().and_then(|f| f.episode)
}

/// The `flapping` notice has reached a channel.
pub fn told(r: &mut HostRecord) {
    if let Some(e) = r.flap.as_deref_mut().and_then(|f| f.episode.as_mut()) {
        e.told = true;
    }
}

/// Whether the `flapping` notice of `r`'s episode reached someone.
pub fn was_told(r: &HostRecord) -> bool {
    episode(r).is_some_and(|e| e.told)
}

/// What a notice made from `r` during (or at the end of) its episode says
/// of the flapping.
pub fn note(r: &HostRecord, p: &FlapPolicy) -> Option<FlapNote> {
    let e = episode(r)?;
    Some(FlapNote {
        flips: e.outages,
        window: p.window,
        stable_for: p.stable,
        since: e.since,
    })
}

/// When the host changed state last in its episode (for "up since").
pub fn changed_at(r: &HostRecord) -> Option<Timestamp> {
    episode(r).map(|e| e.changed)
}

/// "5 outages in 1h".
pub fn describe(flips: u32, window: Duration) -> String {
    let w = humantime::format_duration(Duration::from_secs(window.as_secs()));
    match flips {
        1 => format!("1 outage in {w}"),
        n => format!("{n} outages in {w}"),
    }
}

/// A record's flap as stores keep it: the history and the episode in two
/// fields (JSON text), so a store's heartbeat path can tell "in an
/// episode" from one field being present. `(None, None)` for `None`.
pub fn to_stored(f: Option<&Flap>) -> Result<(Option<String>, Option<String>), serde_json::Error> {
    let Some(f) = f else {
        return Ok((None, None));
    };
    let flips = (!f.flips.is_empty())
        .then(|| serde_json::to_string(&f.flips))
        .transpose()?;
    let episode = f.episode.as_ref().map(serde_json::to_string).transpose()?;
    Ok((flips, episode))
}

/// The inverse of [`to_stored`]; the error says which field is bad.
pub fn from_stored(
    flips: Option<&str>,
    episode: Option<&str>,
) -> Result<Option<Box<Flap>>, String> {
    let flips: Vec<Timestamp> = match flips {
        Some(j) => serde_json::from_str(j).map_err(|e| format!("flips: {e}"))?,
        None => Vec::new(),
    };
    let episode: Option<Episode> = episode
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("flapping: {e}"))?;
    Ok((!flips.is_empty() || episode.is_some()).then(|| Box::new(Flap { flips, episode })))
}

#[cfg(test)]
mod tests;
