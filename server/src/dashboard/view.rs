//! The dashboard's HTML (maud: escaped by default, checked when compiled).

use std::time::Duration;

use iamalive_core::{HostPattern, Silence, Timestamp};
use maud::{DOCTYPE, Markup, html};

use super::session::Flash;
use super::settings::DashboardSettings;
use super::words::{ago, clock, exact, span, until};
use super::{Filter, GroupView, Hold, Outage, Row, Shown, UNGROUPED, badge};
use crate::keys::ApiKey;
use chrono_tz::Tz;

/// What every signed-in page knows.
pub(crate) struct PageContext<'a> {
    pub(crate) now: Timestamp,
    pub(crate) tz: Tz,
    pub(crate) key: &'a ApiKey,
    pub(crate) csrf: &'a str,
    pub(crate) flash: Option<&'a Flash>,
    pub(crate) filter: &'a Filter,
    pub(crate) refresh: Duration,
    pub(crate) badge_secret: Option<&'a str>,
    pub(crate) settings: &'a DashboardSettings,
}

impl PageContext<'_> {
    fn when(&self) -> When {
        When {
            now: self.now,
            tz: self.tz,
        }
    }
}

/// The time of the page and the zone times are shown in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct When {
    pub(crate) now: Timestamp,
    pub(crate) tz: Tz,
}

/// The hosts of the main page.
pub(crate) struct Listing<'a> {
    pub(crate) groups: &'a [GroupView],
    /// Hosts per state over everything the key sees.
    pub(crate) totals: [usize; 5],
    pub(crate) group_names: &'a [String],
    pub(crate) matched: usize,
    pub(crate) truncated: bool,
    pub(crate) active_silences: usize,
}

/// The colour of a badge for `state` (white text on it).
pub(crate) fn badge_colour(state: Shown) -> &'static str {
    match state {
        Shown::Alarmed => "#c62828",
        Shown::Missing => "#d84315",
        Shown::Silenced => "#6a4c93",
        Shown::Paused => "#607d8b",
        Shown::Up => "#2e7d32",
    }
}

fn label(state: Shown) -> &'static str {
    match state {
        Shown::Alarmed => "Alarmed",
        Shown::Missing => "Missing",
        Shown::Silenced => "Silenced",
        Shown::Paused => "Paused",
        Shown::Up => "Up",
    }
}

fn head(title: &str, refresh: Option<Duration>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            meta name="referrer" content="no-referrer";
            @if let Some(r) = refresh {
                meta http-equiv="refresh" content=(r.as_secs().max(1));
            }
            title { (title) }
            link rel="stylesheet" href="/ui/style.css";
            link rel="icon" type="image/svg+xml" href="/ui/icon.svg";
        }
    }
}

fn time(t: Timestamp, w: When) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(exact(t, w.tz)) { (ago(t, w.now)) }
    }
}

fn at(t: Timestamp, w: When) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(exact(t, w.tz)) { (clock(t, w.now, w.tz)) }
    }
}

fn pill(state: Shown) -> Markup {
    html! { span class={"pill s-" (state.as_str())} { (label(state)) } }
}

fn topbar(ctx: &PageContext<'_>, here: &str, active_silences: Option<usize>) -> Markup {
    html! {
        header.top {
            a.brand href="/" { span.dot {} "iamalive" }
            nav {
                a href="/" aria-current=[(here == "hosts").then_some("page")] { "Hosts" }
                a href="/silences" aria-current=[(here == "silences").then_some("page")] {
                    "Silences"
                    @if let Some(n) = active_silences.filter(|n| *n > 0) {
                        " " span.count { (n) }
                    }
                }
            }
            form.logout method="post" action="/logout" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                span.who title="the key this session acts as" { (ctx.key.name) }
                button.link type="submit" { "Log out" }
            }
        }
    }
}

fn flash(f: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = f {
            p class={"flash " (if f.error { "error" } else { "ok" })} role="status" { (f.text) }
        }
    }
}

/// The login form: the only thing shown before login.
pub(crate) fn login(error: Option<&str>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in · iamalive", None))
            body.login {
                main.login-box {
                    h1 { span.dot {} "iamalive" }
                    p.muted { "Log in with an admin API key to see and manage the hosts this watcher keeps." }
                    @if let Some(e) = error {
                        p.flash.error role="alert" { (e) }
                    }
                    form method="post" action="/login" {
                        label for="key" { "API key" }
                        input #key type="password" name="key" autocomplete="current-password" required autofocus;
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        }
    }
    .into_string()
}

/// A short page that says why something was refused.
pub(crate) fn message_page(title: &str, text: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · iamalive"), None))
            body.login {
                main.login-box {
                    h1 { (title) }
                    p { (text) }
                    p { a href="/" { "Back to the dashboard" } }
                }
            }
        }
    }
    .into_string()
}

fn hold_cell(row: &Row, w: When) -> Markup {
    let now = w.now;
    html! {
        @match &row.hold {
            Some(Hold::Paused(Some(t))) => { "paused until " (at(*t, w)) " " span.muted { "(" (until(*t, now)) ")" } }
            Some(Hold::Paused(None)) => { "paused until resumed" }
            Some(Hold::Silenced { reason, until: t, .. }) => {
                "silenced until " (at(*t, w)) " " span.muted { "(" (until(*t, now)) ")" }
                @if !reason.is_empty() { br; span.reason { (reason) } }
            }
            None => { span.muted { "—" } }
        }
    }
}

fn outage_cell(row: &Row, w: When) -> Markup {
    let now = w.now;
    html! {
        @match &row.outage {
            Some(Outage::Now { since }) => {
                strong { "now" } ", since " (at(*since, w)) " " span.muted { "(" (span((now - *since).to_std().unwrap_or_default())) ")" }
            }
            Some(Outage::Reported { from, to }) => {
                (at(*from, w)) " – " (at(*to, w)) " " span.muted { "(" (span((*to - *from).to_std().unwrap_or_default())) ")" }
            }
            None => { span.muted { "none reported by its agent" } }
        }
    }
}

fn actions(ctx: &PageContext<'_>, row: &Row) -> Markup {
    let back = ctx.filter.query();
    let host = row.host.as_str();
    html! {
        details.actions {
            summary { "Actions" }
            div.menu {
                @if row.state == Shown::Paused {
                    form method="post" action="/ui/resume" {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        input type="hidden" name="back" value=(back);
                        input type="hidden" name="host" value=(host);
                        button type="submit" { "Resume watching" }
                    }
                } @else {
                    form.inline method="post" action="/ui/pause" {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        input type="hidden" name="back" value=(back);
                        input type="hidden" name="host" value=(host);
                        label { "Pause "
                            select name="for" {
                                option value="1h" { "for 1 h" }
                                option value="4h" { "for 4 h" }
                                option value="12h" { "for 12 h" }
                                option value="1d" { "for 1 day" }
                                option value="until-resumed" { "until resumed" }
                            }
                        }
                        button type="submit" { "Pause" }
                    }
                }
                a.button href={"/silences?hosts=" (super::encode(host))} { "Silence…" }
                @if let Some(secret) = ctx.badge_secret {
                    a.button href=(badge::Target::Host(host).path(secret)) { "Badge" }
                }
                details.danger {
                    summary { "Remove…" }
                    form method="post" action="/ui/remove" {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        input type="hidden" name="back" value=(back);
                        input type="hidden" name="host" value=(host);
                        p.muted { "Forgets " (host) " and its state; its next heartbeat registers it again." }
                        button.danger type="submit" { "Remove " (host) }
                    }
                }
            }
        }
    }
}

fn host_row(ctx: &PageContext<'_>, row: &Row) -> Markup {
    let w = ctx.when();
    let now = w.now;
    html! {
        tr class={"r-" (row.state.as_str())} {
            td.host data-label="Host" {
                strong { (row.host) }
                @if let Some(m) = &row.message { span.message { (m) } }
            }
            td data-label="Status" {
                (pill(row.state))
                @if let Some(since) = row.flapping {
                    " " span.pill.s-flapping title={ "flapping since " (at(since, w)) "; one notice said so, none per flip until it is stable" } { "flapping" }
                }
                @if let Some(by) = row.missed_beat {
                    " " span.pill.s-missed title={ "its next heartbeat was expected by " (at(by, w)) "; its timeout has not run out yet" } { "missed a beat" }
                }
                @if row.alarms > 1 { " " span.muted { (row.alarms) " notices" } }
            }
            td.nw data-label="Last seen" { (time(row.last_seen, w)) }
            td.nw.silent data-label="Silent for" { (span((now - row.last_seen).to_std().unwrap_or_default())) }
            td.empty[row.hold.is_none()] data-label="Silence / pause" { (hold_cell(row, w)) }
            td.empty[row.outage.is_none()] data-label="Last outage" { (outage_cell(row, w)) }
            td.report.empty[row.report.is_none()] data-label="Agent's report" {
                @match &row.report { Some(r) => { (r) } None => { span.muted { "—" } } }
            }
            td.act { (actions(ctx, row)) }
        }
    }
}

fn counts(counts: &[usize; 5]) -> Markup {
    html! {
        @for (i, s) in Shown::ALL.iter().enumerate() {
            @if counts[i] > 0 { span class={"mini s-" (s.as_str())} { (counts[i]) " " (s.as_str()) } }
        }
    }
}

/// The main page: hosts by group, problems first.
pub(crate) fn dashboard(ctx: &PageContext<'_>, l: &Listing<'_>) -> String {
    let problems: usize = l.totals[..3].iter().sum();
    let title = if problems > 0 {
        format!("({problems}) iamalive")
    } else {
        "iamalive".to_owned()
    };
    let f = ctx.filter;
    let refresh = (f.refresh != "off").then_some(ctx.refresh);
    let mut toggled = f.clone();
    toggled.refresh = if f.refresh == "off" {
        String::new()
    } else {
        "off".into()
    };
    let total: usize = l.totals.iter().sum();
    let status_urls: Vec<String> = Shown::ALL
        .iter()
        .map(|s| {
            let mut only = f.clone();
            only.status = s.as_str().to_owned();
            only.url()
        })
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&title, refresh))
            body {
                (topbar(ctx, "hosts", Some(l.active_silences)))
                main {
                    (flash(ctx.flash))
                    section.summary aria-label="hosts by status" {
                        @for (i, s) in Shown::ALL.iter().enumerate() {
                            a class={"tile s-" (s.as_str()) @if l.totals[i] == 0 { " zero" }} href=(status_urls[i]) {
                                span.n { (l.totals[i]) }
                                span.l { (label(*s)) }
                            }
                        }
                    }
                    form.filters method="get" action="/" role="search" {
                        input type="search" name="q" value=(f.q) placeholder="Host name or glob (web-*)" aria-label="host name";
                        select name="status" aria-label="status" {
                            option value="" selected[f.status.is_empty()] { "Any status" }
                            option value="problems" selected[f.status == "problems"] { "Problems" }
                            @for s in Shown::ALL {
                                option value=(s.as_str()) selected[f.status == s.as_str()] { (label(s)) }
                            }
                        }
                        select name="group" aria-label="group" {
                            option value="" selected[f.group.is_empty()] { "Any group" }
                            @for g in l.group_names {
                                option value=(g) selected[&f.group == g] { (g) }
                            }
                        }
                        @if f.refresh == "off" { input type="hidden" name="refresh" value="off"; }
                        button type="submit" { "Filter" }
                        @if !f.q.is_empty() || !f.status.is_empty() || !f.group.is_empty() {
                            a.clear href="/" { "Clear" }
                        }
                    }
                    @if total == 0 {
                        section.empty {
                            h2 { "No hosts yet" }
                            p { "Hosts appear here with their first heartbeat. From a host:" }
                            pre { "iamalive-agent --url <this watcher> --key <key> --host $(hostname)" }
                        }
                    } @else if l.groups.is_empty() {
                        section.empty { p { "No host matches this filter. " a href="/" { "Show all hosts" } } }
                    }
                    @for g in l.groups {
                        section.group {
                            h2 {
                                @if g.name == UNGROUPED && l.group_names.len() == 1 { "All hosts" } @else { (g.name) }
                                span.counts { (counts(&g.counts)) }
                                @if ctx.settings.status_page_on(&g.name) {
                                    a.side href={"/status/" (g.name)} { "Status page" }
                                }
                                @if let Some(secret) = ctx.badge_secret {
                                    a.side href=(badge::Target::Group(&g.name).path(secret)) { "Badge" }
                                }
                            }
                            table.hosts {
                                thead { tr {
                                    th scope="col" { "Host" } th scope="col" { "Status" } th scope="col" { "Last seen" }
                                    th scope="col" { "Silent for" } th scope="col" { "Silence / pause" }
                                    th scope="col" { "Last outage" } th scope="col" { "Agent's report" }
                                    th scope="col" { span.sr { "Actions" } }
                                } }
                                tbody { @for r in &g.rows { (host_row(ctx, r)) } }
                            }
                        }
                    }
                    @if l.truncated {
                        p.note { "Showing the worst " (l.groups.iter().map(|g| g.rows.len()).sum::<usize>()) " of " (l.matched) "+ hosts; filter by name to see others." }
                    }
                    footer {
                        "Updated " (at(ctx.now, ctx.when())) " " (ctx.tz.name())
                        @if let Some(r) = refresh { " · reloads every " (span(r)) }
                        " · " a href=(toggled.url()) { @if refresh.is_some() { "stop reloading" } @else { "reload automatically" } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The silences page: what is silenced, a form for a new silence.
pub(crate) fn silences(ctx: &PageContext<'_>, live: &[&Silence], prefill: &str) -> String {
    let w = ctx.when();
    let now = w.now;
    let unrestricted = ctx.key.hosts == HostPattern::any();
    let active = live.iter().filter(|s| s.window_at(now).is_some()).count();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Silences · iamalive", None))
            body {
                (topbar(ctx, "silences", Some(active)))
                main {
                    (flash(ctx.flash))
                    section.card {
                        h2 { "New silence" }
                        @if unrestricted {
                            p.muted { "Hosts matching the pattern raise no alarm while it lasts; a host still silent when it ends alarms then." }
                            form.stack method="post" action="/ui/silence" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                input type="hidden" name="back" value="/silences";
                                label { "Hosts (a name or a glob such as db-*)"
                                    input #hosts type="text" name="hosts" value=(prefill) required placeholder="db-*";
                                }
                                label { "For (such as 2h, 30m, 1d)"
                                    input #for type="text" name="for" value="2h" required;
                                }
                                label { "Reason"
                                    input #reason type="text" name="reason" placeholder="what is going on, for whoever is on call";
                                }
                                button.primary #silence-submit type="submit" { "Silence" }
                            }
                        } @else {
                            p { "This key is limited to hosts matching " code { (ctx.key.hosts) } "; silences need an unrestricted admin key. Pausing a host works from the hosts page." }
                        }
                    }
                    section.card {
                        h2 { "Silences" }
                        @if live.is_empty() {
                            p.muted { "Nothing is silenced." }
                        } @else {
                            table.hosts.silences {
                                thead { tr {
                                    th scope="col" { "Hosts" } th scope="col" { "When" } th scope="col" { "Reason" }
                                    th scope="col" { span.sr { "Actions" } }
                                } }
                                tbody {
                                    @for s in live {
                                        @let window = s.window_at(now);
                                        tr class={ @if window.is_some() { "r-silenced" } @else { "r-up" } } {
                                            td data-label="Hosts" { code { (s.hosts) } }
                                            td data-label="When" {
                                                @if let Some((_, end)) = window {
                                                    (pill(Shown::Silenced)) " until " (at(end, w)) " " span.muted { "(" (until(end, now)) ")" }
                                                } @else if let Some((from, end)) = s.next_window(now) {
                                                    "from " (at(from, w)) " to " (at(end, w))
                                                }
                                                @if s.repeat.is_some() { " " span.muted { "(repeats)" } }
                                            }
                                            td data-label="Reason" { @if s.reason.is_empty() { span.muted { "—" } } @else { (s.reason) } }
                                            td.act {
                                                @if unrestricted {
                                                    form method="post" action="/ui/unsilence" {
                                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                                        input type="hidden" name="back" value="/silences";
                                                        input type="hidden" name="id" value=(s.id);
                                                        button type="submit" { "End now" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// A group's public status page: names and states, nothing else.
pub(crate) fn status_page(g: &GroupView, w: When, refresh: Duration) -> String {
    let now = w.now;
    let watched: usize = g.rows.iter().filter(|r| r.state != Shown::Paused).count();
    let down: usize = g.rows.iter().filter(|r| r.state.is_problem()).count();
    let (headline, cls) = if down == 0 {
        ("All systems reporting".to_owned(), "up")
    } else {
        (format!("{down} of {watched} hosts silent"), "alarmed")
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{} · status", g.name), Some(refresh)))
            body {
                main.status {
                    h1 { (g.name) }
                    p class={"banner s-" (cls)} { (headline) }
                    ul.status-list {
                        @for r in &g.rows {
                            li {
                                span.name { (r.host) }
                                (pill(r.state))
                                span.muted { "last seen " (time(r.last_seen, w)) }
                            }
                        }
                    }
                    footer { "Updated " (at(now, w)) " " (w.tz.name()) " · reloads every " (span(refresh)) }
                }
            }
        }
    }
    .into_string()
}
