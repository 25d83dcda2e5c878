//! Host records, notices, heartbeats and silences.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{GroupName, HostId, Policy};

/// An instant, in UTC.
pub type Timestamp = DateTime<Utc>;

/// `t + d`, saturating at the end of chrono's range.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `later - earlier`, zero when `later` is not later.
pub fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

/// Where a host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Heard from within its timeout.
    Up,
    /// Silent past its timeout; the alarm is owed but not yet delivered
    /// (pending delivery, silenced, or retrying).
    Missing,
    /// The alarm was delivered; reminders follow, throttled.
    Alarmed,
    /// Monitoring is off for this host.
    Paused,
}

impl Status {
    /// The lowercase name used in APIs and stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Missing => "missing",
            Status::Alarmed => "alarmed",
            Status::Paused => "paused",
        }
    }

    /// Parses [`Status::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "up" => Status::Up,
            "missing" => Status::Missing,
            "alarmed" => Status::Alarmed,
            "paused" => Status::Paused,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a notice announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The host fell silent past its timeout.
    Alarm,
    /// The host is still silent (throttled by the reminder interval).
    Reminder,
    /// The host reports again after an alarm was delivered.
    Recovery,
    /// The watcher itself is in trouble: a channel refuses notices, or its
    /// store keeps failing. `host` is the watcher, `message` says what.
    Degraded,
    /// A trouble of the watcher's is over.
    Restored,
    /// A test notice an operator asked for, to check the wiring.
    Test,
    /// The host keeps going silent and coming back (more outages than the
    /// flapping setting allows within its window): one notice, then no
    /// per-flip notice until it is stable (see [`crate::flap`]).
    Flapping,
    /// A flapping host has stayed up for the stable time: the episode is
    /// over. (One that stayed down gets an alarm instead.)
    Stable,
}

impl NoticeKind {
    /// `alarm`, `reminder` or `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Alarm => "alarm",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Recovery => "recovery",
            NoticeKind::Degraded => "degraded",
            NoticeKind::Restored => "restored",
            NoticeKind::Test => "test",
            NoticeKind::Flapping => "flapping",
            NoticeKind::Stable => "stable",
        }
    }

    /// Whether the notice is about the watcher itself rather than a host.
    pub fn is_watcher(self) -> bool {
        matches!(
            self,
            NoticeKind::Degraded | NoticeKind::Restored | NoticeKind::Test
        )
    }

    /// Whether it reports a problem (alarm, reminder, degraded, flapping)
    /// rather than its end or a test.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            NoticeKind::Alarm | NoticeKind::Reminder | NoticeKind::Degraded | NoticeKind::Flapping
        )
    }

    /// The upper-case tag of subjects: `ALARM`, `RECOVERED`, `DEGRADED`…
    pub fn tag(self) -> &'static str {
        match self {
            NoticeKind::Alarm => "ALARM",
            NoticeKind::Reminder => "REMINDER",
            NoticeKind::Recovery => "RECOVERED",
            NoticeKind::Degraded => "WATCHER DEGRADED",
            NoticeKind::Restored => "WATCHER RESTORED",
            NoticeKind::Test => "TEST",
            NoticeKind::Flapping => "FLAPPING",
            NoticeKind::Stable => "STABLE",
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message to the team: an alarm, a reminder or an all-clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable across redeliveries: receivers may deduplicate on it.
    pub id: String,
    /// Stable for the whole outage (alarm, reminders and recovery share it),
    /// e.g. a PagerDuty `dedup_key`.
    pub outage_id: String,
    /// Alarm, reminder or recovery.
    pub kind: NoticeKind,
    /// The host concerned.
    pub host: HostId,
    /// When the monitor decided this notice was owed.
    pub created_at: Timestamp,
    /// The last heartbeat before the silence began.
    pub last_seen: Timestamp,
    /// When the host was declared missing (one timeout after `last_seen`,
    /// later if a startup grace applied).
    pub missing_since: Timestamp,
    /// For a recovery: the heartbeat that ended the silence.
    pub recovered_at: Option<Timestamp>,
    /// How long the host had been silent: until `created_at` for an alarm or
    /// reminder, until `recovered_at` for a recovery.
    #[serde(with = "humantime_serde")]
    pub silent_for: Duration,
    /// Alarms and reminders delivered for this outage, this one included
    /// (for a recovery: how many were delivered in all).
    pub alarm_count: u32,
    /// When the next reminder would come if the host stays silent.
    pub next_reminder: Option<Timestamp>,
    /// The host's last heartbeat message, if it sent one.
    pub message: Option<String>,
    /// The agent's own account of the outage (what failed, from inside the
    /// site), sent with its first heartbeat that got through.
    pub report: Option<String>,
    /// Why the watcher itself may have been blind (e.g. heartbeats for this
    /// host were being rejected).
    pub blind: Option<String>,
    /// The group (site) the host belongs to, if any; `null` in JSON when
    /// none. Absent from notices stored before groups existed.
    #[serde(default)]
    pub group: Option<GroupName>,
    /// For a group notice (one notice for a group's outage): every host it
    /// names; empty for a single host's notice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<crate::group_outage::GroupHost>,
    /// For a job: the failure it reported, or for an all-clear the
    /// failures it ends and the duration of the run that ended them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<crate::job::JobNote>>,
    /// For a `flapping` or `stable` notice, or the alarm that ends a
    /// flapping episode: how much the host flapped (see [`crate::flap`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<Box<crate::flap::FlapNote>>,
    /// For the watcher-blind notice (several sites fell silent within one
    /// group wait: the likeliest cause is the watcher's own ingress): the
    /// sites and how many hosts went silent. See
    /// [`crate::group_outage::blind`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blind_spot: Option<Box<crate::group_outage::blind::BlindSpot>>,
}

/// A notice's stable id (receivers deduplicate on it): `<outage>/recovery`
/// for the all-clear, `<outage>/<kind>/<count>` for an alarm or reminder.
pub(crate) fn notice_id(outage_id: &str, kind: NoticeKind, count: u32) -> String {
    use std::fmt::Write as _;
    // Sized once: `format!` guesses from the literal parts alone and grows
    // the string as it goes (a reallocation on every alarm).
    let mut id = String::with_capacity(outage_id.len() + 24);
    id.push_str(outage_id);
    id.push('/');
    id.push_str(kind.as_str());
    if kind != NoticeKind::Recovery {
        let _ = write!(id, "/{count}");
    }
    id
}

/// The outage id of `host`'s outage missing since `since`:
/// `host@<unix millis>`.
pub(crate) fn outage_id(host: &HostId, since: Timestamp) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(host.as_str().len() + 21);
    id.push_str(host.as_str());
    let _ = write!(id, "@{}", since.timestamp_millis());
    id
}

impl Notice {
    /// A notice `id` of `outage_id`, of `kind`, about `host`, made at
    /// `created_at`, saying nothing else yet: silent since `created_at`
    /// and for no time, no count, no text, no group, no details. Callers
    /// fill in what their kind says (`Notice { .., ..Notice::new(..) }`).
    pub fn new(
        id: String,
        outage_id: String,
        kind: NoticeKind,
        host: HostId,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            outage_id,
            kind,
            host,
            created_at,
            last_seen: created_at,
            missing_since: created_at,
            recovered_at: None,
            silent_for: Duration::ZERO,
            alarm_count: 0,
            next_reminder: None,
            message: None,
            report: None,
            blind: None,
            group: None,
            hosts: Vec::new(),
            job: None,
            flap: None,
            blind_spot: None,
        }
    }

    /// `[iamalive] ALARM build-01`-style one-line summary, with the site
    /// when the host has one: `[iamalive] ALARM db-1 (site office-berlin)`.
    pub fn subject(&self) -> String {
        if self.is_group() || self.is_blind() {
            return format!("[iamalive] {} {}", self.kind.tag(), self.headline());
        }
        if self.kind.is_watcher() {
            return format!("[iamalive] {}: {}", self.kind.tag(), self.headline());
        }
        if let Some(detail) = self.flap_detail() {
            return format!(
                "[iamalive] {} {}: {detail}",
                self.kind.tag(),
                self.host_label()
            );
        }
        format!("[iamalive] {} {}", self.kind.tag(), self.host_label())
    }

    /// "5 outages in 1h" for a `flapping` notice, "stable again, up since
    /// 10:42 UTC" for a `stable` one; `None` for other kinds.
    pub fn flap_detail(&self) -> Option<String> {
        let f = self.flap.as_deref()?;
        match self.kind {
            NoticeKind::Flapping => Some(crate::flap::describe(f.flips, f.window)),
            NoticeKind::Stable => {
                let at = self.recovered_at.unwrap_or(self.created_at);
                Some(format!("stable again, up since {} UTC", at.format("%H:%M")))
            }
            _ => None,
        }
    }

    /// Whether this is a group notice, speaking for several hosts of a
    /// group at once ([`hosts`](Self::hosts) names them).
    pub fn is_group(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Whether this is the watcher-blind notice (or its all-clear):
    /// [`blind_spot`](Self::blind_spot) names the sites.
    pub fn is_blind(&self) -> bool {
        self.blind_spot.is_some()
    }

    /// "site office-berlin: 10 hosts silent" for a group notice.
    fn group_headline(&self) -> Option<String> {
        if !self.is_group() {
            return None;
        }
        let site = self
            .group
            .as_ref()
            .map_or_else(|| "site ?".to_owned(), GroupName::label);
        let n = match self.kind {
            NoticeKind::Recovery => self.hosts.len(),
            _ => self.hosts.iter().filter(|h| h.back_at.is_none()).count(),
        };
        let hosts = if n == 1 {
            "1 host".to_owned()
        } else {
            format!("{n} hosts")
        };
        let back = self.hosts.iter().filter(|h| h.back_at.is_some()).count();
        // "(8 missed a beat, 1 silent past its timeout)" when some of them
        // are named on a missed beat alone.
        let missed = crate::group_outage::missed::describe(&self.hosts);
        Some(match self.kind {
            NoticeKind::Alarm => match missed {
                Some(m) => format!("{site}: {hosts} silent ({m})"),
                None => format!("{site}: {hosts} silent"),
            },
            // A flapping site: "site office-berlin: 5 outages in 1h (10
            // hosts)"; its end: "site office-berlin: stable again, up
            // since 10:42 UTC".
            NoticeKind::Flapping | NoticeKind::Stable => {
                let detail = self.flap_detail().unwrap_or_else(|| self.kind.to_string());
                match self.kind {
                    NoticeKind::Flapping => format!("{site}: {detail} ({hosts})"),
                    _ => format!("{site}: {detail}"),
                }
            }
            NoticeKind::Reminder => {
                let new = self.hosts.iter().filter(|h| h.new).count();
                let mut notes: Vec<String> = missed.into_iter().collect();
                if new > 0 {
                    notes.push(format!("{new} new"));
                }
                if notes.is_empty() {
                    format!("{site}: {hosts} still silent")
                } else {
                    format!("{site}: {hosts} still silent ({})", notes.join("; "))
                }
            }
            _ => {
                let dark =
                    humantime::format_duration(Duration::from_secs(self.silent_for.as_secs()));
                if back == n {
                    format!("{site}: {hosts} back after {dark}")
                } else {
                    format!("{site}: {back} of {hosts} back after {dark}")
                }
            }
        })
    }

    /// The host as notices name it: `db-1`, or `db-1 (site office-berlin)`
    /// when it belongs to a group.
    pub fn host_label(&self) -> String {
        match &self.group {
            Some(g) => format!("{} (site {g})", self.host),
            None => self.host.to_string(),
        }
    }

    /// For a job that never succeeded (created by a start or a failure,
    /// no success since): `Some` with the start of its oldest open run, if
    /// one is open. Its `last_seen` is then its creation, not a success:
    /// notices say "started at …, never finished" or "never succeeded"
    /// instead. `None` for every other notice.
    pub fn never_succeeded(&self) -> Option<Option<Timestamp>> {
        let j = self.job.as_deref().filter(|j| j.never_succeeded)?;
        Some(j.started)
    }

    /// For an alarm or reminder of a job that has succeeded before: the
    /// start of its oldest run still open (a run that started and has not
    /// finished is why it went silent). `None` for a job that
    /// [never succeeded](Self::never_succeeded), which says so instead.
    pub fn open_run(&self) -> Option<Timestamp> {
        self.job
            .as_deref()
            .filter(|j| !j.never_succeeded)
            .filter(|_| matches!(self.kind, NoticeKind::Alarm | NoticeKind::Reminder))
            .and_then(|j| j.started)
    }

    /// "started at 2024-05-01T02:00:00Z, never finished" or "never
    /// succeeded", for a job that [never succeeded](Self::never_succeeded).
    pub fn never_succeeded_text(&self) -> Option<String> {
        Some(match self.never_succeeded()? {
            Some(at) => format!(
                "started at {}, never finished",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "never succeeded".to_owned(),
        })
    }

    /// Whether a reported failure (not silence) caused the outage this
    /// notice is about: an alarm says "reported a failure", an all-clear
    /// "succeeded again after failing for …".
    pub fn after_failure(&self) -> bool {
        self.job.as_deref().is_some_and(|j| j.failed)
    }

    /// For a notice [after a failure](Self::after_failure): how long the
    /// job has been failing, from the failure (`missing_since`) to its
    /// success (`recovered_at`) or to this notice. `None` otherwise (a
    /// silence is [`silent_for`](Self::silent_for)).
    pub fn failing_for(&self) -> Option<Duration> {
        self.after_failure().then(|| {
            crate::since(
                self.recovered_at.unwrap_or(self.created_at),
                self.missing_since,
            )
        })
    }

    /// One short sentence: "build-01 has gone silent", or for a watcher
    /// notice the first sentence of its message.
    pub fn headline(&self) -> String {
        if let Some(b) = &self.blind_spot {
            return b.headline(self.kind, self.missing_since, self.silent_for);
        }
        if let Some(h) = self.group_headline() {
            return h;
        }
        let failed = self.job.as_deref().filter(|j| j.failed);
        let reported = |j: &crate::job::JobNote| match &j.failure {
            Some(reason) => format!("{} reported a failure: {reason}", self.host_label()),
            None => format!("{} reported a failure", self.host_label()),
        };
        match (self.kind, failed) {
            (NoticeKind::Alarm, Some(j)) => reported(j),
            (NoticeKind::Reminder, Some(j)) if j.new_failure => reported(j),
            (NoticeKind::Reminder, Some(_)) => format!("{} is still failing", self.host_label()),
            (NoticeKind::Recovery, Some(_)) => format!("{} succeeded again", self.host_label()),
            _ => self.plain_headline(),
        }
    }

    fn plain_headline(&self) -> String {
        match self.kind {
            NoticeKind::Alarm => format!("{} has gone silent", self.host_label()),
            NoticeKind::Reminder => format!("{} is still silent", self.host_label()),
            NoticeKind::Recovery => format!("{} reports again", self.host_label()),
            NoticeKind::Flapping => format!(
                "{} keeps going silent and coming back: {}",
                self.host_label(),
                self.flap_detail().unwrap_or_default()
            ),
            NoticeKind::Stable => format!(
                "{} stable again (up since {})",
                self.host_label(),
                self.recovered_at
                    .unwrap_or(self.created_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            NoticeKind::Degraded | NoticeKind::Restored | NoticeKind::Test => {
                let m = self.message.as_deref().unwrap_or("");
                let first = m.split_once(". ").map_or(m, |(a, _)| a);
                first.trim_end_matches('.').to_owned()
            }
        }
    }

    /// The agent's account of the outage for people: sentences (see
    /// [`describe_report`](crate::describe_report)), or the report as it
    /// came when it is not the agent's JSON. `None` without a report.
    pub fn report_text(&self) -> Option<String> {
        let r = self.report.as_deref()?;
        Some(crate::describe_report(r, self.recovered_at).unwrap_or_else(|| r.to_owned()))
    }

    /// A plain-text body naming who, since when, for how long and why.
    pub fn body(&self) -> String {
        use std::fmt::Write;
        let ts = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let human =
            |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
        let mut b = String::new();
        if let Some(spot) = &self.blind_spot {
            spot.write_body(&mut b, self);
            return b;
        }
        if self.kind.is_watcher() {
            let _ = writeln!(b, "{}", self.message.as_deref().unwrap_or(""));
            let _ = writeln!(b);
            let _ = writeln!(b, "since:         {}", ts(&self.missing_since));
            let _ = writeln!(b, "at:            {}", ts(&self.created_at));
            let _ = writeln!(b, "\nnotice id: {}", self.id);
            return b;
        }
        if self.is_group() {
            let _ = writeln!(b, "{}.", self.headline());
            let _ = writeln!(b);
            let dark_since = ts(&self.missing_since);
            let _ = writeln!(b, "dark since:    {dark_since}");
            if let Some(f) = self.flap.as_deref() {
                if self.kind == NoticeKind::Flapping {
                    let _ = writeln!(
                        b,
                        "The site keeps going dark and coming back. No group alarm or all-clear is sent for each of its outages until it has stayed up (or down) for {}; then one notice says how it ended.",
                        human(f.stable_for)
                    );
                }
                let _ = writeln!(b, "flapping since: {}", ts(&f.since));
                let _ = writeln!(b, "outages:       {} (window {})", f.flips, human(f.window));
            }
            if let Some(r) = &self.recovered_at {
                let label = if self.kind == NoticeKind::Stable {
                    "up since:     "
                } else {
                    "back at:      "
                };
                let _ = writeln!(b, "{label} {}", ts(r));
            }
            if self.kind != NoticeKind::Stable {
                let _ = writeln!(b, "dark for:      {}", human(self.silent_for));
            }
            let _ = writeln!(b);
            for h in &self.hosts {
                let state = match h.back_at {
                    Some(at) => format!("back at {}", ts(&at)),
                    None if self.kind == NoticeKind::Recovery => "still silent".to_owned(),
                    None if h.missed_beat => format!(
                        "missed a beat, silent for {} (its timeout has not run out)",
                        human(h.silent_for)
                    ),
                    None => format!("silent for {}", human(h.silent_for)),
                };
                let new = if h.new { " (new)" } else { "" };
                let _ = writeln!(
                    b,
                    "  {}{new}: last seen {}, {state}",
                    h.host,
                    ts(&h.last_seen)
                );
            }
            if let Some(r) = &self.report {
                let _ = writeln!(b, "\nWhat the agents reported:\n{r}");
            }
            let _ = writeln!(b, "\noutage id: {}\nnotice id: {}", self.outage_id, self.id);
            return b;
        }
        if let (NoticeKind::Flapping | NoticeKind::Stable, Some(f)) =
            (self.kind, self.flap.as_deref())
        {
            let _ = writeln!(b, "Host {}.", self.headline());
            let _ = writeln!(b);
            if self.kind == NoticeKind::Flapping {
                let _ = writeln!(
                    b,
                    "No alarm or all-clear is sent for each of its outages until it has stayed up (or down) for {}; then one notice says how it ended.",
                    human(f.stable_for)
                );
                let _ = writeln!(b);
            }
            let _ = writeln!(b, "host:          {}", self.host);
            if let Some(g) = &self.group {
                let _ = writeln!(b, "site (group):  {g}");
            }
            let _ = writeln!(b, "flapping since: {}", ts(&f.since));
            let _ = writeln!(b, "outages:       {} (window {})", f.flips, human(f.window));
            let _ = writeln!(b, "last seen:     {}", ts(&self.last_seen));
            if let Some(r) = &self.recovered_at {
                let _ = writeln!(b, "up since:      {}", ts(r));
            } else {
                let _ = writeln!(b, "down since:    {}", ts(&self.missing_since));
            }
            let _ = writeln!(b, "\noutage id: {}\nnotice id: {}", self.outage_id, self.id);
            return b;
        }
        let failed = self.after_failure();
        let _ = match (self.kind, failed) {
            (NoticeKind::Alarm | NoticeKind::Reminder | NoticeKind::Recovery, true) => {
                writeln!(b, "Host {}.", self.headline())
            }
            (NoticeKind::Alarm, false) => {
                writeln!(b, "Host {} has gone silent.", self.host_label())
            }
            (NoticeKind::Reminder, false) => {
                writeln!(b, "Host {} is still silent.", self.host_label())
            }
            _ => writeln!(b, "Host {} reports again.", self.host_label()),
        };
        let _ = writeln!(b);
        let _ = writeln!(b, "host:          {}", self.host);
        if let Some(g) = &self.group {
            let _ = writeln!(b, "site (group):  {g}");
        }
        match self.never_succeeded() {
            Some(Some(at)) => writeln!(b, "started at:    {}, never finished", ts(&at)),
            Some(None) => writeln!(b, "last success:  none yet"),
            None => writeln!(b, "last seen:     {}", ts(&self.last_seen)),
        }
        .ok();
        if let Some(at) = self.open_run() {
            let _ = writeln!(b, "run started:   {}, not finished", ts(&at));
        }
        let _ = writeln!(b, "missing since: {}", ts(&self.missing_since));
        let (how, span) = match self.failing_for() {
            Some(d) => ("failing for:  ", d),
            None => ("silent for:   ", self.silent_for),
        };
        if let Some(r) = &self.recovered_at {
            let _ = writeln!(b, "back at:       {}", ts(r));
            let _ = writeln!(b, "{how} {} in all", human(span));
        } else {
            let _ = writeln!(b, "{how} {}", human(span));
        }
        if let Some(f) = self
            .flap
            .as_deref()
            .filter(|_| self.kind == NoticeKind::Alarm)
        {
            let _ = writeln!(
                b,
                "flapped:       {} outages, flapping since {}, before this one",
                f.flips,
                ts(&f.since)
            );
        }
        let _ = writeln!(b, "alarm count:   {}", self.alarm_count);
        if let Some(n) = &self.next_reminder {
            let _ = writeln!(b, "next reminder: {} if still silent", ts(n));
        }
        if let Some(m) = &self.message {
            let _ = writeln!(b, "last message:  {m}");
        }
        if let Some(j) = &self.job {
            if let Some(s) = &j.summary {
                let _ = writeln!(b, "job:           {s}");
            } else if let Some(f) = &j.failure {
                let _ = writeln!(b, "failure:       {f}");
            }
            if let Some(d) = j.run_duration {
                let _ = writeln!(b, "run took:      {}", humantime::format_duration(d));
            }
        }
        if let Some(why) = &self.blind {
            let _ = writeln!(b, "watcher note:  {why}");
        }
        if let Some(f) = &self.flap {
            let _ = writeln!(
                b,
                "flapping:      {} outage(s) since {}; it stayed down for {}, so the episode ends with this alarm",
                f.flips,
                ts(&f.since),
                human(f.stable_for)
            );
        }
        if let Some(r) = self.report_text() {
            let _ = writeln!(b, "\nThe agent's account of the outage:\n{r}");
        }
        let _ = writeln!(b, "\nnotice id: {}", self.id);
        b
    }
}

/// Who holds the right to deliver an owed notice, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The monitor that won the compare-and-swap.
    pub owner: String,
    /// After this instant another monitor may take the notice over.
    pub until: Timestamp,
}

/// A notice owed by a host record: the outbox inside the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// The notice.
    pub notice: Notice,
    /// Channels that have taken it.
    #[serde(default)]
    pub delivered: Vec<String>,
    /// Channels that refused it for good (it is not retried there).
    #[serde(default)]
    pub failed: Vec<String>,
    /// Delivery rounds that left some channel still owed.
    #[serde(default)]
    pub attempts: u32,
    /// Earliest instant of the next delivery round.
    pub next_attempt: Timestamp,
    /// The current owner's lease, if one holds it.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// The latest refusal of each channel that refused it and is still
    /// tried (no channel has taken the notice yet), for the API to show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
}

impl Outbox {
    /// A fresh outbox for `notice`, deliverable at once.
    pub fn new(notice: Notice) -> Self {
        Self {
            next_attempt: notice.created_at,
            notice,
            delivered: Vec::new(),
            failed: Vec::new(),
            attempts: 0,
            lease: None,
            refusals: Vec::new(),
        }
    }

    /// Whether a live lease holds it at `now`.
    pub fn leased_at(&self, now: Timestamp) -> bool {
        self.lease.as_ref().is_some_and(|l| l.until > now)
    }

    /// Whether `channel` still needs it.
    pub fn owed_to(&self, channel: &str) -> bool {
        !self.delivered.iter().any(|c| c == channel) && !self.failed.iter().any(|c| c == channel)
    }
}

/// A channel's refusal of an owed notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The channel.
    pub channel: String,
    /// What it said.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// Everything the watcher knows of one host.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host.
    pub host: HostId,
    /// Where it stands.
    pub status: Status,
    /// Its most recent heartbeat.
    pub last_seen: Timestamp,
    /// Monitoring (re)started at this instant: the host is given a full
    /// timeout from here even if `last_seen` is older (set on registration
    /// and on resume).
    pub watch_from: Timestamp,
    /// When a monitor last evaluated it.
    pub last_checked: Option<Timestamp>,
    /// When it was declared missing, during an outage.
    pub missing_since: Option<Timestamp>,
    /// Its last heartbeat before the current outage's silence began.
    pub silent_since: Option<Timestamp>,
    /// When the last alarm or reminder was delivered.
    pub last_alarm: Option<Timestamp>,
    /// Alarms and reminders delivered in the current outage.
    pub alarm_count: u32,
    /// The next instant a monitor must look at it; `None` when nothing can
    /// happen without a heartbeat or an operator (paused indefinitely,
    /// reminders capped). For a paused host: the end of its pause, when a
    /// monitor resumes it.
    pub due_at: Option<Timestamp>,
    /// Bumped by every write; the compare-and-swap token.
    pub version: u64,
    /// A notice owed and not yet delivered everywhere. Boxed: most records
    /// owe nothing, and a record without it is half the size to copy.
    pub outbox: Option<Box<Outbox>>,
    /// The message of the last heartbeat that carried one.
    pub message: Option<String>,
    /// The agent's last outage report.
    pub report: Option<String>,
    /// The group (site) it belongs to: set by configuration or by the host
    /// itself, kept until a heartbeat names another.
    pub group: Option<GroupName>,
    /// Job state (a reported failure, open runs, the last run), when the
    /// host is a job that sent more than successes. Boxed like the outbox.
    pub job: Option<Box<crate::job::Job>>,
    /// A policy set for this host through the API (a timeout or a
    /// schedule), stored with it so every monitor applies it; it wins over
    /// the configuration's policy for the host. `None`: the configuration's.
    pub policy: Option<Box<crate::HostPolicy>>,
    /// Its recent outages and flapping episode (see [`crate::flap`]);
    /// `None` until its first outage. Written only with a transition.
    pub flap: Option<Box<crate::flap::Flap>>,
    /// Its heartbeat interval, sent by its agent or learned from the gaps
    /// between its beats (see [`crate::beat`]); written by the heartbeat.
    #[serde(default)]
    pub interval: crate::beat::Interval,
}

// Written out rather than derived so the rare parts (an owed notice, a
// message, a job, a host policy, a flip history) are cloned out of line:
// the derived clone inlined the outbox's clone into an 872-byte stack
// frame that every clone paid for.
impl Clone for HostRecord {
    fn clone(&self) -> Self {
        Self {
            host: self.host.clone(),
            status: self.status,
            last_seen: self.last_seen,
            watch_from: self.watch_from,
            last_checked: self.last_checked,
            missing_since: self.missing_since,
            silent_since: self.silent_since,
            last_alarm: self.last_alarm,
            alarm_count: self.alarm_count,
            due_at: self.due_at,
            version: self.version,
            outbox: self.outbox.as_deref().map(clone_boxed),
            message: self.message.as_deref().map(clone_text),
            report: self.report.as_deref().map(clone_text),
            group: self.group.clone(),
            job: self.job.as_deref().map(clone_boxed),
            policy: self.policy.as_deref().map(clone_boxed),
            flap: self.flap.as_deref().map(clone_boxed),
            interval: self.interval,
        }
    }
}

#[cold]
#[inline(never)]
fn clone_boxed<T: Clone>(o: &T) -> Box<T> {
    Box::new(o.clone())
}

#[cold]
#[inline(never)]
fn clone_text(s: &str) -> String {
    s.to_owned()
}

impl HostRecord {
    /// A newly registered, up host first heard at `at`.
    pub fn new(host: HostId, at: Timestamp, timeout: Duration) -> Self {
        Self {
            host,
            status: Status::Up,
            last_seen: at,
            watch_from: at,
            last_checked: None,
            missing_since: None,
            silent_since: None,
            last_alarm: None,
            alarm_count: 0,
            due_at: Some(add(at, timeout)),
            version: 1,
            outbox: None,
            message: None,
            report: None,
            group: None,
            job: None,
            policy: None,
            flap: None,
            interval: crate::beat::Interval::default(),
        }
    }

    /// The instant the host becomes missing unless heard from (before any
    /// startup grace).
    pub fn deadline(&self, policy: &Policy) -> Timestamp {
        policy.deadline_after(self.last_seen.max(self.watch_from))
    }

    /// How long it has been silent at `now`.
    pub fn silent_for(&self, now: Timestamp) -> Duration {
        since(now, self.last_seen)
    }
}

/// One heartbeat as the ingest received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Who.
    pub host: HostId,
    /// When the watcher received it (its own clock, never the agent's).
    pub at: Timestamp,
    /// An optional short message from the agent.
    pub message: Option<String>,
    /// The agent's account of an outage it lived through, if any.
    pub report: Option<String>,
    /// The group the host belongs to, when the heartbeat (or configuration,
    /// which wins) names one; `None` keeps the stored group.
    #[serde(default)]
    pub group: Option<GroupName>,
    /// The heartbeat interval the agent sent with it, if any; `None`
    /// lets the store learn it from the gap since the previous beat (see
    /// [`crate::beat`]).
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
}

impl Heartbeat {
    /// A bare heartbeat.
    pub fn new(host: HostId, at: Timestamp) -> Self {
        Self {
            host,
            at,
            message: None,
            report: None,
            group: None,
            interval: None,
        }
    }
}

/// A stretch during which no monitor ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downtime {
    /// The last run before the gap.
    pub from: Timestamp,
    /// The first run after it.
    pub until: Timestamp,
}

/// The monitors' shared mark of when any of them last ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MonitorMark {
    /// The latest run of any monitor.
    pub last_run: Option<Timestamp>,
    /// The most recent gap longer than the gap threshold.
    pub downtime: Option<Downtime>,
}

impl MonitorMark {
    /// The mark after a run at `now`: a gap longer than `gap` since the
    /// previous run is recorded as downtime. A gap that begins where the
    /// recorded downtime ended continues it rather than replacing it: the
    /// second of two watchers restarted together, or the marks of a store
    /// that refuses heartbeats meanwhile, extend the stretch nobody
    /// listened, never shrink it to its last few seconds. Backends call
    /// this inside whatever makes their read-modify-write atomic.
    pub fn advance(self, now: Timestamp, gap: Duration) -> Self {
        let mut next = self;
        if let Some(prev) = self.last_run
            && now > add(prev, gap)
        {
            let from = match self.downtime {
                Some(d) if d.until >= prev => d.from.min(prev),
                _ => prev,
            };
            next.downtime = Some(Downtime { from, until: now });
        }
        next.last_run = Some(self.last_run.map_or(now, |p| p.max(now)));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, evaluate_in_place};

    #[test]
    fn a_gap_that_continues_the_recorded_downtime_extends_it() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let gap = Duration::from_secs(10);
        let mark = MonitorMark::default().advance(t(0), gap).advance(t(1), gap);
        // Both watchers stop at 1; the first is back at 25 (a downtime).
        let one = mark.advance(t(25), gap);
        let first = Downtime {
            from: t(1),
            until: t(25),
        };
        assert_eq!(one.downtime, Some(first));
        // The second's first mark at 27 (a deaf start: gap zero) continues
        // it, not replaces it with 25..27.
        let two = one.advance(t(27), Duration::ZERO);
        assert_eq!(
            two.downtime,
            Some(Downtime {
                from: t(1),
                until: t(27)
            })
        );
        // Marks in time leave it alone; a later gap is a new downtime.
        let later = two.advance(t(30), gap).advance(t(60), gap);
        assert_eq!(
            later.downtime,
            Some(Downtime {
                from: t(30),
                until: t(60)
            })
        );
    }

    #[test]
    fn a_clone_keeps_every_field_the_rare_ones_included() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let policy = Policy::default();
        let mut rec = HostRecord::new(HostId::new("db-1").unwrap(), t0, policy.timeout);
        let late = add(t0, policy.timeout + Duration::from_secs(1));
        let owed = evaluate_in_place(&mut rec, late, &policy, &Context::default());
        assert_eq!(
            owed.len(),
            1,
            "the alarm is owed, so the record has an outbox"
        );
        rec.message = Some("disk 91%".into());
        rec.report = Some("uplink down 10:02-10:40".into());
        rec.alarm_count = 3;
        rec.version = 42;

        let copy = rec.clone();
        assert_eq!(copy, rec);
        assert!(copy.outbox.is_some() && copy.missing_since.is_some());
        assert_eq!(copy.message.as_deref(), Some("disk 91%"));
        assert_eq!(copy.report.as_deref(), Some("uplink down 10:02-10:40"));
    }
}
