//! The zero-config channel: one line per notice on standard output.

use std::io::Write;

use async_trait::async_trait;
use iamalive_core::{Notice, NoticeKind, Notifier, NotifyError};

use crate::{human, ts};

/// Prints one readable line per notice to standard output; the default
/// channel when nothing else is configured.
///
/// ```text
/// [iamalive] ALARM build-01: silent for 10m, last seen 2024-05-01T12:00:00Z, alarm 1, next reminder 2024-05-01T13:10:00Z (id build-01@1714565400000/alarm/1)
/// ```
///
/// A job that reported a failure says so, with its reason, instead of a
/// silence:
///
/// ```text
/// [iamalive] ALARM backup-db: reported a failure: disk full, last success 2024-05-01T02:00:00Z, alarm 1, … (id …)
/// ```
///
/// Its channel name is `stdout`.
#[derive(Debug, Clone, Default)]
pub struct StdoutNotifier {
    _private: (),
}

impl StdoutNotifier {
    /// The stdout channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// The line printed for `notice` (without the newline).
    pub fn line(notice: &Notice) -> String {
        if notice.kind.is_watcher() {
            return format!(
                "[iamalive] {}: {} (notice {})",
                notice.kind.tag(),
                one_line(notice.message.as_deref().unwrap_or_default()),
                notice.id
            );
        }
        // The watcher-blind notice names each site and its hosts, and what
        // to check.
        if let Some(b) = notice.blind_spot.as_deref() {
            let sites: Vec<String> = b
                .sites
                .iter()
                .map(|site| {
                    let hosts: Vec<&str> = site.hosts.iter().map(|h| h.as_str()).collect();
                    let mut back = site
                        .back_at
                        .map(|t| format!(", back at {}", ts(&t)))
                        .unwrap_or_default();
                    if !site.still_silent.is_empty() {
                        let still: Vec<&str> =
                            site.still_silent.iter().map(|h| h.as_str()).collect();
                        back.push_str(&format!(" but for {} (still silent)", still.join(", ")));
                    }
                    format!(
                        "{} ({} silent since {}{back}: {})",
                        site.group.label(),
                        site.hosts_silent,
                        ts(&site.first_silent_at),
                        hosts.join(", ")
                    )
                })
                .collect();
            let mut s = format!("{}: {}", notice.subject(), sites.join("; "));
            if notice.kind != NoticeKind::Recovery {
                s.push_str(
                    "; check the watcher's own ingress (DNS, TLS certificate, load balancer, proxy, quota)",
                );
            }
            return format!("{s} (notice {})", notice.id);
        }
        let mut s = format!("{}: ", notice.subject());
        if let Some(line) = Self::episode_line(notice) {
            s.push_str(&line);
            s.push_str(&format!(" (id {})", notice.id));
            return s;
        }
        match notice.kind {
            NoticeKind::Recovery => {
                // A job that had reported a failure was not silent: it
                // succeeded again.
                if let Some(failing) = notice.failing_for() {
                    s.push_str(&format!(
                        "succeeded again after failing for {}",
                        human(failing)
                    ));
                } else if notice.is_group() {
                    // Its subject already says how long the site was dark.
                    s.push_str(&format!("last seen {}", ts(&notice.last_seen)));
                } else {
                    s.push_str(&format!(
                        "back after {} silent, last seen {}",
                        human(notice.silent_for),
                        ts(&notice.last_seen)
                    ));
                }
                if let Some(at) = &notice.recovered_at {
                    s.push_str(&format!(", back at {}", ts(at)));
                }
                // alarm_count: the alarm and the reminders delivered.
                s.push_str(&match notice.alarm_count.saturating_sub(1) {
                    0 => ", 1 alarm sent".to_owned(),
                    1 => ", 1 alarm and 1 reminder sent".to_owned(),
                    n => format!(", 1 alarm and {n} reminders sent"),
                });
                if let Some(j) = notice.job.as_deref() {
                    if let Some(summary) = &j.summary {
                        s.push_str(&format!(", job {}", one_line(summary)));
                    }
                    if let Some(d) = j.run_duration {
                        s.push_str(&format!(", run took {}", human(d)));
                    }
                }
            }
            _ => {
                let never = notice.never_succeeded_text();
                if notice.after_failure() {
                    // A job that reported a failure is not silent: say
                    // that it failed, and why.
                    s.push_str("reported a failure");
                    if let Some(r) = notice.job.as_deref().and_then(|j| j.failure.as_deref()) {
                        s.push_str(&format!(": {}", one_line(r)));
                    }
                    match never {
                        Some(never) => s.push_str(&format!(", {never}")),
                        None => s.push_str(&format!(", last success {}", ts(&notice.last_seen))),
                    }
                } else {
                    match never {
                        Some(never) => s.push_str(&never),
                        None => s.push_str(&format!(
                            "silent for {}, last seen {}",
                            human(notice.silent_for),
                            ts(&notice.last_seen)
                        )),
                    }
                    if let Some(at) = notice.open_run() {
                        s.push_str(&format!(", run started at {}, not finished", ts(&at)));
                    }
                }
                if let Some(f) = notice
                    .flap
                    .as_deref()
                    .filter(|_| notice.kind == NoticeKind::Alarm)
                {
                    s.push_str(&format!(
                        ", flapped ({} outages, flapping since {}) before it stayed down",
                        f.flips,
                        ts(&f.since)
                    ));
                }
                s.push_str(&format!(", alarm {}", notice.alarm_count));
                if let Some(n) = &notice.next_reminder {
                    s.push_str(&format!(", next reminder {}", ts(n)));
                }
            }
        }
        // A group notice names each of its hosts, so the one line still
        // says who is dark.
        if notice.is_group() {
            let recovery = notice.kind == NoticeKind::Recovery;
            let hosts: Vec<String> = notice
                .hosts
                .iter()
                .map(|h| {
                    let mut d = format!("{} (last seen {}", h.host, ts(&h.last_seen));
                    if h.new {
                        d.push_str(", new");
                    }
                    // Named on a missed beat, before its own timeout ran out.
                    if h.missed_beat && h.back_at.is_none() && !recovery {
                        d.push_str(", missed a beat");
                    }
                    if recovery && h.back_at.is_none() {
                        d.push_str(", still silent");
                    }
                    d.push(')');
                    d
                })
                .collect();
            s.push_str(&format!(", hosts: {}", hosts.join(", ")));
        }
        if let Some(why) = &notice.blind {
            s.push_str(&format!(", watcher note: {}", one_line(why)));
        }
        if let Some(r) = notice.report_text() {
            s.push_str(&format!(", agent report: {}", one_line(&r)));
        }
        s.push_str(&format!(" (id {})", notice.id));
        s
    }
}

impl StdoutNotifier {
    /// The rest of the line for a flapping host's `flapping` and `stable`
    /// notices, which speak for an episode rather than one outage: their
    /// subject already says what happened, and "silent for 0s, alarm 0"
    /// would only add noise, so they say what the team needs next.
    fn episode_line(notice: &Notice) -> Option<String> {
        let f = notice.flap.as_deref()?;
        match notice.kind {
            NoticeKind::Flapping => {
                let now = if notice.recovered_at.is_some() {
                    "up now".to_owned()
                } else {
                    format!("silent for {}", human(notice.silent_for))
                };
                Some(format!(
                    "{now}, last seen {}, flapping since {}; no notice per outage until it stays up or down for {}",
                    ts(&notice.last_seen),
                    ts(&f.since),
                    human(f.stable_for)
                ))
            }
            NoticeKind::Stable => Some(format!(
                // The count includes the outages that began the episode,
                // before `since`.
                "{} outages, flapping since {}, last seen {}",
                f.flips,
                ts(&f.since),
                ts(&notice.last_seen)
            )),
            _ => None,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Notifier for StdoutNotifier {
    fn name(&self) -> &str {
        "stdout"
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        let line = Self::line(notice);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| NotifyError::transient("stdout", format!("cannot write: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use iamalive_core::HostId;
    use std::time::Duration;

    #[test]
    fn episodes_say_what_comes_next_not_alarm_zero() {
        use iamalive_core::flap::FlapNote;
        use iamalive_core::group_outage::blind::{BlindSite, BlindSpot};
        let t = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let base = Notice {
            silent_for: Duration::from_secs(180),
            flap: Some(Box::new(FlapNote {
                flips: 5,
                window: Duration::from_secs(3600),
                stable_for: Duration::from_secs(1800),
                since: t,
            })),
            ..Notice::new(
                "web-3@1/flapping/start".into(),
                "web-3@1/flapping".into(),
                NoticeKind::Flapping,
                HostId::new("web-3").unwrap(),
                t,
            )
        };
        let l = StdoutNotifier::line(&base);
        assert!(l.starts_with("[iamalive] FLAPPING web-3"), "{l}");
        assert!(l.contains("silent for 3m"), "{l}");
        assert!(l.contains("until it stays up or down for 30m"), "{l}");
        assert!(!l.contains("alarm 0"), "{l}");

        // It stayed down: an alarm like any other, saying it flapped.
        let down = Notice {
            kind: NoticeKind::Alarm,
            alarm_count: 1,
            ..base.clone()
        };
        let l = StdoutNotifier::line(&down);
        assert!(
            l.contains(
                "flapped (5 outages, flapping since 2024-05-01T12:00:00Z) before it stayed down, alarm 1"
            ),
            "{l}"
        );
        assert!(
            down.body().contains(
                "flapped:       5 outages, flapping since 2024-05-01T12:00:00Z, before this one"
            ),
            "{}",
            down.body()
        );

        let stable = Notice {
            kind: NoticeKind::Stable,
            recovered_at: Some(t),
            silent_for: Duration::ZERO,
            ..base.clone()
        };
        let l = StdoutNotifier::line(&stable);
        assert!(
            l.contains("5 outages, flapping since 2024-05-01T12:00:00Z"),
            "{l}"
        );
        assert!(
            !l.contains("silent for 0s") && !l.contains("alarm 0"),
            "{l}"
        );

        let blind = Notice {
            kind: NoticeKind::Alarm,
            flap: None,
            blind_spot: Some(Box::new(BlindSpot {
                sites: vec![BlindSite {
                    group: iamalive_core::GroupName::new("office-berlin").unwrap(),
                    hosts_silent: 2,
                    hosts: vec![HostId::new("ber-1").unwrap(), HostId::new("ber-2").unwrap()],
                    first_silent_at: t,
                    back_at: None,
                    still_silent: Vec::new(),
                }],
                hosts_silent: 2,
                hosts_total: Some(5),
            })),
            ..base
        };
        let l = StdoutNotifier::line(&blind);
        assert!(l.contains("check the watcher's own ingress"), "{l}");
        assert!(
            l.contains("site office-berlin (2 silent since 2024-05-01T12:00:00Z: ber-1, ber-2)"),
            "{l}"
        );
        assert!(!l.contains("alarm 1"), "{l}");
    }

    #[test]
    fn one_line_per_notice() {
        let t = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let n = Notice {
            silent_for: Duration::from_secs(600),
            alarm_count: 1,
            next_reminder: Some(t),
            report: Some("{\n  \"a\": 1\n}".into()),
            ..Notice::new(
                "build-01@1/alarm/1".into(),
                "build-01@1".into(),
                NoticeKind::Alarm,
                HostId::new("build-01").unwrap(),
                t,
            )
        };
        let l = StdoutNotifier::line(&n);
        assert!(!l.contains('\n'), "{l}");
        assert!(
            l.starts_with("[iamalive] ALARM build-01: silent for 10m"),
            "{l}"
        );
        assert!(l.contains("last seen 2024-05-01T12:00:00Z"), "{l}");
        assert!(l.ends_with("(id build-01@1/alarm/1)"), "{l}");
        // An all-clear counts the alarm and the reminders apart.
        for (count, said) in [
            (1, ", 1 alarm sent"),
            (2, ", 1 alarm and 1 reminder sent"),
            (13, ", 1 alarm and 12 reminders sent"),
        ] {
            let back = Notice {
                kind: NoticeKind::Recovery,
                recovered_at: Some(t),
                alarm_count: count,
                ..n.clone()
            };
            let l = StdoutNotifier::line(&back);
            assert!(l.contains(said), "{count}: {l}");
        }

        // A job's failure: no "silent for 0s", the reason instead.
        let failed = Notice {
            silent_for: Duration::ZERO,
            report: None,
            job: Some(Box::new(iamalive_core::job::JobNote {
                failure: Some("disk\nfull".into()),
                failed: true,
                ..Default::default()
            })),
            ..n.clone()
        };
        let l = StdoutNotifier::line(&failed);
        assert!(
            l.starts_with("[iamalive] ALARM build-01: reported a failure: disk full, last success 2024-05-01T12:00:00Z, alarm 1"),
            "{l}"
        );
        assert!(!l.contains("silent"), "{l}");
        // Its all-clear says how it failed and how long the run took.
        let back = Notice {
            kind: NoticeKind::Recovery,
            next_reminder: None,
            job: Some(Box::new(iamalive_core::job::JobNote {
                failure: Some("disk full".into()),
                failed: true,
                summary: Some("failed twice since 02:00 UTC: disk full".into()),
                run_duration: Some(Duration::from_secs(95)),
                ..Default::default()
            })),
            // Failing from 12:00:00 to 12:00:07 (silent since 11:59:00).
            recovered_at: Some(t + chrono::TimeDelta::seconds(7)),
            silent_for: Duration::from_secs(67),
            ..failed.clone()
        };
        let l = StdoutNotifier::line(&back);
        assert!(
            l.contains(", job failed twice since 02:00 UTC: disk full, run took 1m 35s"),
            "{l}"
        );
        // It succeeded again after failing: it was never silent.
        assert!(
            l.starts_with("[iamalive] RECOVERED build-01: succeeded again after failing for 7s, back at 2024-05-01T12:00:07Z"),
            "{l}"
        );
        assert!(!l.contains("silent"), "{l}");
        // A job that never succeeded has no last success to name.
        let mut never = failed.clone();
        if let Some(j) = never.job.as_deref_mut() {
            j.never_succeeded = true;
        }
        let l = StdoutNotifier::line(&never);
        assert!(
            l.starts_with(
                "[iamalive] ALARM build-01: reported a failure: disk full, never succeeded, alarm 1"
            ),
            "{l}"
        );
        // Nor one that only ever started: it started and never finished.
        let started = Notice {
            job: Some(Box::new(iamalive_core::job::JobNote {
                never_succeeded: true,
                started: Some(t),
                ..Default::default()
            })),
            ..n.clone()
        };
        let l = StdoutNotifier::line(&started);
        assert!(
            l.starts_with("[iamalive] ALARM build-01: started at 2024-05-01T12:00:00Z, never finished, alarm 1"),
            "{l}"
        );
        assert!(!l.contains("last seen"), "{l}");
        // One that succeeded before and then started a run that did not
        // finish: silent, and why.
        let running = Notice {
            job: Some(Box::new(iamalive_core::job::JobNote {
                started: Some(t + chrono::Duration::minutes(5)),
                ..Default::default()
            })),
            ..n.clone()
        };
        let l = StdoutNotifier::line(&running);
        assert!(
            l.contains("silent for 10m, last seen 2024-05-01T12:00:00Z, run started at 2024-05-01T12:05:00Z, not finished, alarm 1"),
            "{l}"
        );
        assert!(
            running
                .body()
                .contains("run started:   2024-05-01T12:05:00Z, not finished"),
            "{}",
            running.body()
        );
        let mut grouped = n.clone();
        grouped.group = Some(iamalive_core::GroupName::new("office-berlin").unwrap());
        let l = StdoutNotifier::line(&grouped);
        assert!(
            l.starts_with("[iamalive] ALARM build-01 (site office-berlin): silent for 10m"),
            "{l}"
        );
        // A group notice names each host.
        let mut site = grouped.clone();
        site.hosts = ["ber-1", "ber-2"]
            .iter()
            .map(|h| iamalive_core::group_outage::GroupHost {
                host: HostId::new(h).unwrap(),
                last_seen: t,
                silent_for: Duration::from_secs(600),
                report: None,
                new: *h == "ber-2",
                back_at: None,
                missed_beat: false,
            })
            .collect();
        let l = StdoutNotifier::line(&site);
        assert!(
            l.starts_with("[iamalive] ALARM site office-berlin: 2 hosts silent"),
            "{l}"
        );
        assert!(
            l.contains(", hosts: ber-1 (last seen 2024-05-01T12:00:00Z), ber-2 (last seen 2024-05-01T12:00:00Z, new)"),
            "{l}"
        );
        // One named on a missed beat says so, in the headline and its entry.
        site.hosts[0].missed_beat = true;
        let l = StdoutNotifier::line(&site);
        assert!(
            l.starts_with("[iamalive] ALARM site office-berlin: 2 hosts silent (1 missed a beat"),
            "{l}"
        );
        assert!(
            l.contains("ber-1 (last seen 2024-05-01T12:00:00Z, missed a beat)"),
            "{l}"
        );
        // Its all-clear says how long the site was dark once.
        let mut back = site.clone();
        back.kind = NoticeKind::Recovery;
        back.recovered_at = Some(t);
        for h in &mut back.hosts {
            h.back_at = Some(t);
        }
        let l = StdoutNotifier::line(&back);
        assert!(
            l.starts_with("[iamalive] RECOVERED site office-berlin"),
            "{l}"
        );
        assert_eq!(l.matches("back after").count(), 1, "{l}");
        assert!(l.contains(": last seen 2024-05-01T12:00:00Z"), "{l}");
        // The hosts without a group are named as such.
        site.group = Some(iamalive_core::GroupName::ungrouped());
        site.hosts[0].missed_beat = false;
        let l = StdoutNotifier::line(&site);
        assert!(
            l.starts_with("[iamalive] ALARM hosts without a group: 2 hosts silent"),
            "{l}"
        );
    }
}
