//! The bodies webhooks are sent in: iamalive's own JSON, Teams, Slack,
//! Discord and PagerDuty Events v2. Pure functions of a notice, so the
//! format names and their payloads have one home whatever sends them.

use std::fmt;
use std::str::FromStr;

use iamalive_core::{Notice, NoticeKind, Timestamp};
use serde_json::{Value, json};

use crate::{ConfigError, human, truncate, ts};

/// Every format's name, as configured (`format = "teams"`).
pub const FORMATS: [&str; 5] = ["json", "teams", "slack", "discord", "pagerduty"];

/// The body shape a webhook receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// iamalive's own JSON document (see [`payload`]).
    Json,
    /// Microsoft Teams through a Workflows webhook: a message with one
    /// Adaptive Card attachment.
    Teams,
    /// A Slack incoming webhook: `text` plus Block Kit `blocks`.
    Slack,
    /// A Discord webhook: `content` plus one embed.
    Discord,
    /// PagerDuty Events API v2: `trigger` on alarm and reminder, `resolve`
    /// on recovery, `dedup_key` = the notice's outage id.
    PagerDuty,
}

impl WebhookFormat {
    /// `json`, `teams`, `slack`, `discord` or `pagerduty`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Teams => "teams",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Discord => "discord",
            WebhookFormat::PagerDuty => "pagerduty",
        }
    }
}

impl fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookFormat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "json" => WebhookFormat::Json,
            "teams" => WebhookFormat::Teams,
            "slack" => WebhookFormat::Slack,
            "discord" => WebhookFormat::Discord,
            "pagerduty" => WebhookFormat::PagerDuty,
            _ => {
                return Err(ConfigError::invalid(
                    "webhook format",
                    format!("{s:?} is not one of {}", FORMATS.join(", ")),
                ));
            }
        })
    }
}

fn color(kind: NoticeKind) -> (&'static str, u32) {
    match kind {
        NoticeKind::Alarm => ("Attention", 0xD0_3B_3B),
        NoticeKind::Reminder => ("Warning", 0xE0_A0_30),
        NoticeKind::Recovery | NoticeKind::Restored | NoticeKind::Stable => ("Good", 0x2E_A0_43),
        NoticeKind::Flapping => ("Warning", 0xE0_A0_30),
        NoticeKind::Degraded => ("Warning", 0xE0_70_30),
        NoticeKind::Test => ("Accent", 0x35_74_C8),
    }
}

fn headline(n: &Notice) -> String {
    n.headline()
}

/// (title, value) pairs shown by the chat formats.
fn facts(n: &Notice) -> Vec<(&'static str, String)> {
    if let Some(b) = &n.blind_spot {
        let sites: Vec<String> = b
            .sites
            .iter()
            .map(|s| match s.back_at {
                Some(_) => format!("{} ({} back)", s.group, s.hosts_silent),
                None => format!("{} ({} silent)", s.group, s.hosts_silent),
            })
            .collect();
        let hosts = match b.hosts_total {
            Some(t) => format!("{} of {t}", b.hosts_silent),
            None => b.hosts_silent.to_string(),
        };
        let mut f = vec![
            ("Sites", sites.join(", ")),
            ("Hosts silent", hosts),
            ("Dark since", ts(&n.missing_since)),
        ];
        if let Some(r) = &n.recovered_at {
            f.push(("Back at", ts(r)));
        }
        if let Some(m) = &n.message {
            f.push(("Why the watcher", m.clone()));
        }
        f.push(("Notice id", n.id.clone()));
        return f;
    }
    if n.kind.is_watcher() {
        return vec![
            ("What", n.message.clone().unwrap_or_default()),
            ("Since", ts(&n.missing_since)),
            ("Notice id", n.id.clone()),
        ];
    }
    if n.is_group() {
        let names: Vec<String> = n
            .hosts
            .iter()
            .map(|h| match h.back_at {
                Some(_) => format!("{} (back)", h.host),
                None if h.new => format!("{} (new)", h.host),
                None if h.missed_beat => format!("{} (missed a beat)", h.host),
                None => h.host.to_string(),
            })
            .collect();
        let mut f = vec![
            (
                "Site",
                n.group
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            ("Hosts", names.join(", ")),
        ];
        if n.kind != NoticeKind::Recovery
            && let Some(m) = iamalive_core::group_outage::missed::describe(&n.hosts)
        {
            f.push(("Silent", m));
        }
        f.push(("Dark since", ts(&n.missing_since)));
        if let Some(fl) = n.flap.as_deref() {
            f.push(("Flapping", flapping_fact(fl)));
        }
        if let Some(r) = &n.recovered_at {
            f.push(("Back at", ts(r)));
        }
        f.push(("Dark for", human(n.silent_for)));
        f.push(("Notice id", n.id.clone()));
        return f;
    }
    let mut f = vec![("Host", n.host.to_string())];
    if let Some(g) = &n.group {
        f.push(("Site", g.to_string()));
    }
    if let Some(fl) = n.flap.as_deref() {
        f.push(("Flapping", flapping_fact(fl)));
    }
    match n.never_succeeded_text() {
        Some(never) => f.push(("Last success", never)),
        None => f.push(("Last seen", ts(&n.last_seen))),
    }
    f.push(("Missing since", ts(&n.missing_since)));
    if let Some(r) = &n.recovered_at {
        f.push(("Back at", ts(r)));
    }
    match n.failing_for() {
        Some(d) => f.push(("Failing for", human(d))),
        None => f.push(("Silent for", human(n.silent_for))),
    }
    f.push(("Alarm count", n.alarm_count.to_string()));
    if let Some(r) = &n.next_reminder {
        f.push(("Next reminder", ts(r)));
    }
    if let Some(m) = &n.message {
        f.push(("Last message", m.clone()));
    }
    if let Some(b) = &n.blind {
        f.push(("Watcher note", b.clone()));
    }
    f.push(("Notice id", n.id.clone()));
    f
}

/// "5 outages in 1h since … (stable after 30m)": the Flapping fact of a
/// host's or a site's notice.
fn flapping_fact(fl: &iamalive_core::flap::FlapNote) -> String {
    format!(
        "{} since {} (stable after {})",
        iamalive_core::flap::describe(fl.flips, fl.window),
        ts(&fl.since),
        human(fl.stable_for)
    )
}

fn report_json(n: &Notice) -> Value {
    match &n.report {
        None => Value::Null,
        Some(r) => serde_json::from_str::<Value>(r).unwrap_or_else(|_| Value::String(r.clone())),
    }
}

/// PagerDuty's `source`: the host, or `site <group>` for a group notice.
fn source(n: &Notice) -> String {
    if n.is_blind() {
        return "watcher".to_owned();
    }
    match (&n.group, n.is_group()) {
        (Some(g), true) => g.label(),
        _ => n.host.to_string(),
    }
}

/// The hosts a group notice names, for the JSON body.
fn group_hosts(n: &Notice) -> Value {
    Value::Array(
        n.hosts
            .iter()
            .map(|h| {
                json!({
                    "host": h.host.as_str(),
                    "last_seen": ts(&h.last_seen),
                    "silent_for_s": h.silent_for.as_secs(),
                    "report": h.report.as_ref().map(|r| {
                        serde_json::from_str::<Value>(r).unwrap_or_else(|_| Value::String(r.clone()))
                    }),
                    "back_at": h.back_at.as_ref().map(ts),
                    "new": h.new,
                    "missed_beat": h.missed_beat,
                })
            })
            .collect(),
    )
}

fn generic(n: &Notice, sent_at: Timestamp) -> Value {
    let mut v = generic_single(n, sent_at);
    if n.is_group() {
        v["hosts"] = group_hosts(n);
    }
    if let Some(f) = n.flap.as_deref() {
        v["flips"] = json!(f.flips);
        v["window_s"] = json!(f.window.as_secs());
        v["stable_for_s"] = json!(f.stable_for.as_secs());
        v["flapping_since"] = json!(ts(&f.since));
    }
    if let Some(b) = &n.blind_spot {
        v["kind"] = json!(match n.kind {
            NoticeKind::Recovery => "watcher_blind_recovery",
            _ => "watcher_blind",
        });
        v["groups"] = b
            .sites
            .iter()
            .map(|s| {
                json!({
                    "group": s.group.as_str(),
                    "hosts_silent": s.hosts_silent,
                    "first_silent_at": ts(&s.first_silent_at),
                    "hosts": s.hosts.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
                    "back_at": s.back_at.as_ref().map(ts),
                })
            })
            .collect();
        v["hosts_silent"] = json!(b.hosts_silent);
        v["hosts_total"] = json!(b.hosts_total);
    }
    v
}

fn generic_single(n: &Notice, sent_at: Timestamp) -> Value {
    json!({
        "id": n.id,
        "kind": n.kind.as_str(),
        "host": n.host.as_str(),
        "group": n.group.as_ref().map(|g| g.as_str()),
        "subject": n.subject(),
        "last_seen": ts(&n.last_seen),
        "missing_since": ts(&n.missing_since),
        "recovered_at": n.recovered_at.as_ref().map(ts),
        "silent_for_s": n.silent_for.as_secs(),
        "alarm_count": n.alarm_count,
        "sent_at": ts(&sent_at),
        "outage_id": n.outage_id,
        "next_reminder": n.next_reminder.as_ref().map(ts),
        "message": n.message,
        "report": report_json(n),
        "blind": n.blind,
    })
}

/// The JSON body sent for `notice` in `format` at `sent_at`.
/// `routing_key` is used by PagerDuty only.
///
/// The `json` format's body:
///
/// | field | type | meaning |
/// |---|---|---|
/// | `id` | string | notice id, stable across redeliveries |
/// | `kind` | `alarm` \| `reminder` \| `recovery` \| `flapping` \| `stable` | |
/// | `host` | string | |
/// | `group` | string or null | the host's group (site); null when it has none |
/// | `subject` | string | `[iamalive] ALARM build-01`, `[iamalive] ALARM db-1 (site office-berlin)` |
/// | `last_seen` | RFC 3339 | the last heartbeat before the silence |
/// | `missing_since` | RFC 3339 | when the host was declared missing |
/// | `recovered_at` | RFC 3339 or null | recovery only |
/// | `silent_for_s` | integer | seconds of silence |
/// | `alarm_count` | integer | alarms and reminders delivered in this outage |
/// | `sent_at` | RFC 3339 | when this request was made |
/// | `outage_id` | string | shared by every notice of one outage |
/// | `next_reminder` | RFC 3339 or null | |
/// | `message` | string or null | the host's last heartbeat message |
/// | `report` | object, string or null | the agent's outage report (JSON when it parses) |
/// | `blind` | string or null | why the watcher itself may have been blind |
///
/// A group notice (one notice for several hosts of a group that fell
/// silent together) has the same fields, `subject` reading
/// `[iamalive] ALARM site office-berlin: 10 hosts silent`, `host` the first
/// host it names, `outage_id` the group outage's (`site:<group>@<ms>`,
/// PagerDuty's `dedup_key`), `report` a summary of the agents' reports
/// (all-clear), and adds `hosts`: `[{"host", "last_seen", "silent_for_s",
/// "report", "back_at", "new", "missed_beat"}]`, every host it names
/// (`back_at` on an all-clear; `new` for a host that joined since the
/// previous notice; `missed_beat` for a host named because it is past its
/// expected beat while its own timeout has not run out, which counted
/// toward `min_hosts`).
///
/// A `flapping` notice (the host keeps going silent and coming back; it
/// stands for the per-flip alarms and all-clears until the host is
/// stable), the `stable` notice that ends the episode when the host stayed
/// up (`recovered_at`: up since), and the alarm that ends it when the host
/// stayed down add `flips` (outages counted), `window_s` (the window they
/// were counted in), `stable_for_s` (how long the host must stay up or down
/// to be stable) and `flapping_since` (RFC 3339). A flapping episode's
/// notices share `outage_id` (`<host>@<ms>/flapping`); PagerDuty triggers
/// it with severity `warning` and resolves it with the `stable` notice.
///
/// The watcher-blind notice (several sites fell silent within one group
/// wait: the likeliest cause is the watcher's own ingress) has `kind`
/// `watcher_blind`, and its all-clear `watcher_blind_recovery`; `host` is
/// the watcher, `group` null, `outage_id` `watcher-blind@<ms>`, `message`
/// says why the watcher suspects itself and what to check, `subject`
/// reads `[iamalive] ALARM watcher may be blind: 2 sites, 20 of 30 hosts
/// silent since 10:02:11Z`; it adds `groups`: `[{"group", "hosts_silent",
/// "first_silent_at", "hosts", "back_at"}]`, `hosts_silent` and
/// `hosts_total` (null when the store cannot count its hosts cheaply).
pub fn payload(
    notice: &Notice,
    format: WebhookFormat,
    routing_key: Option<&str>,
    sent_at: Timestamp,
) -> Value {
    let n = notice;
    match format {
        WebhookFormat::Json => generic(n, sent_at),
        WebhookFormat::Teams => {
            let (style, _) = color(n.kind);
            let mut body = vec![
                json!({"type": "TextBlock", "text": n.subject(), "weight": "Bolder",
                       "size": "Medium", "color": style, "wrap": true}),
                json!({"type": "TextBlock", "text": headline(n), "wrap": true}),
                json!({"type": "FactSet", "facts": facts(n).into_iter()
                    .map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()}),
            ];
            if let Some(r) = &n.report_text() {
                body.push(
                    json!({"type": "TextBlock", "text": "Agent's account of the outage",
                                 "weight": "Bolder", "wrap": true}),
                );
                body.push(json!({"type": "TextBlock", "text": truncate(r, 4000),
                                 "fontType": "Monospace", "wrap": true}));
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                    }
                }]
            })
        }
        WebhookFormat::Slack => {
            // Every text Slack reads as mrkdwn is escaped: a job's output
            // such as "<!channel>" or "<stdin>" is shown, never acted on.
            let fields: Vec<Value> = facts(n)
                .into_iter()
                .take(10)
                .map(|(t, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{t}*\n{}", slack_escape(&v)), 2000)}))
                .collect();
            let headline = slack_escape(&headline(n));
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&n.subject(), 150)}}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&headline, 3000)}}),
                json!({"type": "section", "fields": fields}),
            ];
            if let Some(r) = &n.report_text() {
                // A fence inside the report would end the code block.
                let r = slack_escape(r).replace("```", "'''");
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                    "text": truncate(&format!("*Agent's account of the outage*\n```{r}```"), 3000)}}));
            }
            json!({"text": format!("{}: {headline}", slack_escape(&n.subject())), "blocks": blocks})
        }
        WebhookFormat::Discord => {
            let (_, rgb) = color(n.kind);
            let fields: Vec<Value> = facts(n)
                .into_iter()
                .map(|(t, v)| json!({"name": t, "value": truncate(&v, 1024), "inline": t != "Notice id"}))
                .collect();
            let description = match &n.report_text() {
                Some(r) => format!(
                    "{}\n\nAgent's account of the outage:\n```{}```",
                    headline(n),
                    r
                ),
                None => headline(n),
            };
            json!({
                "content": truncate(&n.subject(), 2000),
                "embeds": [{
                    "title": truncate(&n.subject(), 256),
                    "description": truncate(&description, 4096),
                    "color": rgb,
                    "fields": fields,
                    "timestamp": ts(&n.created_at),
                    "footer": {"text": truncate(&format!("iamalive · {}", n.id), 2048)},
                }],
                "allowed_mentions": {"parse": []},
            })
        }
        WebhookFormat::PagerDuty => {
            let key = routing_key.unwrap_or_default();
            match n.kind {
                NoticeKind::Recovery | NoticeKind::Restored | NoticeKind::Stable => json!({
                    "routing_key": key,
                    "event_action": "resolve",
                    "dedup_key": n.outage_id,
                    "payload": {
                        "summary": truncate(&format!("{}: {}", n.subject(), headline(n)), 1024),
                        "source": source(n),
                        "severity": "info",
                        "custom_details": generic(n, sent_at),
                    },
                }),
                NoticeKind::Degraded | NoticeKind::Test => json!({
                    "routing_key": key,
                    "event_action": "trigger",
                    "dedup_key": n.outage_id,
                    "client": "iamalive",
                    "payload": {
                        "summary": truncate(&n.subject(), 1024),
                        "source": source(n),
                        "severity": if n.kind == NoticeKind::Test { "info" } else { "error" },
                        "timestamp": ts(&n.created_at),
                        "component": "watcher",
                        "class": n.kind.as_str(),
                        "custom_details": generic(n, sent_at),
                    },
                }),
                // Trouble: a host silent (with since when), or a host or site flapping.
                NoticeKind::Flapping | NoticeKind::Alarm | NoticeKind::Reminder => {
                    let (summary, severity, class) = if n.kind == NoticeKind::Flapping {
                        (
                            format!("{}: {}", n.subject(), headline(n)),
                            "warning",
                            if n.is_group() {
                                "site flapping"
                            } else {
                                "host flapping"
                            },
                        )
                    } else {
                        (
                            format!(
                                "{}: {} since {}",
                                n.subject(),
                                headline(n),
                                ts(&n.last_seen)
                            ),
                            "critical",
                            "host silent",
                        )
                    };
                    json!({
                        "routing_key": key,
                        "event_action": "trigger",
                        "dedup_key": n.outage_id,
                        "client": "iamalive",
                        "payload": {
                            "summary": truncate(&summary, 1024),
                            "source": source(n),
                            "severity": severity,
                            "timestamp": ts(&n.created_at),
                            "component": "heartbeat",
                            "group": n.group.as_ref().map(|g| g.as_str()),
                            "class": class,
                            "custom_details": generic(n, sent_at),
                        },
                    })
                }
            }
        }
    }
}

/// Slack's three control characters in mrkdwn text, escaped as its
/// message formatting asks.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn slack_shows_a_jobs_output_and_never_acts_on_it() {
        let mut n = Notice::new(
            "job-1@1/alarm/1".into(),
            "job-1@1".into(),
            NoticeKind::Alarm,
            "job-1".parse().unwrap(),
            now(),
        );
        n.job = Some(Box::new(iamalive_core::job::JobNote {
            failure: Some("tar: <stdin>: Cannot open & fail <!channel>".into()),
            failed: true,
            ..Default::default()
        }));
        n.report = Some("link down ``` <!here>".into());
        let body = payload(&n, WebhookFormat::Slack, None, now()).to_string();
        assert!(!body.contains("<!channel>"), "{body}");
        assert!(!body.contains("<!here>"), "{body}");
        assert!(!body.contains("<stdin>"), "{body}");
        assert!(
            body.contains("tar: &lt;stdin&gt;: Cannot open &amp; fail &lt;!channel&gt;"),
            "{body}"
        );
        assert_eq!(
            body.matches("```").count(),
            2,
            "only its own fences: {body}"
        );
    }

    #[test]
    fn watcher_notices_read_in_every_format() {
        let degraded = iamalive_core::health::watcher_notice(
            NoticeKind::Degraded,
            "watcher/channel/smtp@1",
            1,
            now(),
            now(),
            "Channel smtp refused the alarm for db-1 (notice n1): 550 quota. More.".into(),
        );
        for f in ["json", "teams", "slack", "discord", "pagerduty"] {
            let body = payload(&degraded, f.parse().unwrap(), Some("rk"), now()).to_string();
            assert!(body.contains("550 quota"), "{f}: {body}");
            assert!(
                body.contains("WATCHER DEGRADED") || f == "json",
                "{f}: {body}"
            );
        }
        let pd = |n: &Notice| payload(n, WebhookFormat::PagerDuty, Some("rk"), now());
        assert_eq!(pd(&degraded)["event_action"], "trigger");
        let mut restored = degraded.clone();
        restored.kind = NoticeKind::Restored;
        assert_eq!(pd(&restored)["event_action"], "resolve");
        assert_eq!(pd(&restored)["dedup_key"], pd(&degraded)["dedup_key"]);
        assert_eq!(
            payload(&degraded, WebhookFormat::Json, None, now())["kind"],
            "degraded"
        );
    }

    #[test]
    fn the_watcher_blind_notice_reads_in_every_format() {
        use iamalive_core::group_outage::blind::{BlindSite, BlindSpot, WHY};
        let since: Timestamp = "2024-05-01T10:02:11Z".parse().unwrap();
        let mut n = iamalive_core::health::watcher_notice(
            NoticeKind::Alarm,
            "watcher-blind@1",
            1,
            since,
            now(),
            WHY.into(),
        );
        let site = |g: &str, k: u32| BlindSite {
            group: g.parse().unwrap(),
            hosts_silent: k,
            hosts: (0..k)
                .map(|i| format!("{g}-{i}").parse().unwrap())
                .collect(),
            first_silent_at: since,
            back_at: None,
            still_silent: Vec::new(),
        };
        n.blind_spot = Some(Box::new(BlindSpot {
            sites: vec![site("berlin", 12), site("paris", 8)],
            hosts_silent: 20,
            hosts_total: Some(30),
        }));
        let subject =
            "[iamalive] ALARM watcher may be blind: 2 sites, 20 of 30 hosts silent since 10:02:11Z";
        assert_eq!(n.subject(), subject);
        let json = payload(&n, WebhookFormat::Json, None, now());
        assert_eq!(json["kind"], "watcher_blind");
        assert_eq!(json["subject"], subject);
        assert_eq!(json["hosts_silent"], 20);
        assert_eq!(json["hosts_total"], 30);
        assert_eq!(json["groups"][0]["group"], "berlin");
        assert_eq!(json["groups"][1]["hosts_silent"], 8);
        assert_eq!(json["groups"][0]["first_silent_at"], "2024-05-01T10:02:11Z");
        for f in ["teams", "slack", "discord", "pagerduty"] {
            let body = payload(&n, f.parse().unwrap(), Some("rk"), now()).to_string();
            assert!(body.contains("watcher may be blind"), "{f}: {body}");
            assert!(
                body.contains("berlin (12 silent)") || f == "pagerduty",
                "{f}: {body}"
            );
        }
        let pd = payload(&n, WebhookFormat::PagerDuty, Some("rk"), now());
        assert_eq!(pd["payload"]["source"], "watcher");
        assert_eq!(pd["dedup_key"], "watcher-blind@1");
        assert!(n.body().contains("load balancer"), "{}", n.body());
        let line = crate::StdoutNotifier::line(&n);
        assert!(
            line.starts_with(subject)
                && line.contains("site berlin (12 silent since")
                && line.contains("paris-7"),
            "{line}"
        );
        n.kind = NoticeKind::Recovery;
        assert_eq!(
            payload(&n, WebhookFormat::Json, None, now())["kind"],
            "watcher_blind_recovery"
        );
        assert_eq!(
            payload(&n, WebhookFormat::PagerDuty, Some("rk"), now())["event_action"],
            "resolve"
        );
    }

    #[test]
    fn formats_parse() {
        for f in FORMATS {
            assert_eq!(f.parse::<WebhookFormat>().unwrap().as_str(), f);
        }
        assert!("msteams".parse::<WebhookFormat>().is_err());
    }
}
