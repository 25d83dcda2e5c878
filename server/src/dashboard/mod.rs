//! The dashboard: a server-rendered page at `/` for the people on call,
//! its login, the forms that pause, silence and remove hosts, public
//! status pages per group and SVG badges.
//!
//! No JavaScript: every page is HTML and CSS, reloads itself with a meta
//! refresh, and every action is a plain form posted back. Nothing about a
//! host is shown before login. Logging in takes an admin key, checked as
//! the management API checks it (the same rate limits, the same role); the
//! session then acts as that key through the same operations as the API
//! (a key limited to some hosts sees and manages only those).
//!
//! Sessions live in this process's memory (a restart logs everyone out):
//! the cookie holds a random token (HttpOnly, SameSite=Strict, Secure
//! behind TLS), the server keeps only its hash, and every form carries the
//! session's CSRF token, checked on every POST. With a shared session
//! secret the token is signed, and every watcher with the secret accepts it.

mod badge;
mod session;
mod settings;
mod view;
mod words;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use iamalive_core::{HostId, HostRecord, Silence, Status, Timestamp};
use serde::Deserialize;

use crate::api::{ApiError, AppState, NewSilence, PauseBody};
use crate::keys::ApiKey;

pub(crate) use settings::DashboardTable;
pub use settings::{DashboardSettings, MIN_BADGE_SECRET, SecureCookie};

use session::{Flash, Session, Sessions, csrf_ok};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "iamalive_session";

/// The most hosts one page load reads; past it the page says so and the
/// name filter narrows the list.
const MAX_READ: usize = 20_000;

/// The most host rows one page shows.
const MAX_ROWS: usize = 1_000;

/// Where the hosts without a group are listed, and the status page and
/// badge name for them.
pub use iamalive_core::UNGROUPED;

/// The dashboard's part of the shared state.
#[derive(Debug)]
pub(crate) struct Dashboard {
    settings: DashboardSettings,
    sessions: Sessions,
    /// Every host as the public pages show it, and when it was read: the
    /// status pages and group badges, which anyone may ask for, read the
    /// store at most once per [`PUBLIC_REREAD`].
    public: tokio::sync::Mutex<Option<(Timestamp, Arc<Vec<Row>>)>>,
}

/// How long the public pages reuse one reading of the hosts.
const PUBLIC_REREAD: Duration = Duration::from_secs(10);

impl Dashboard {
    /// Whether the dashboard is served.
    pub(crate) fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub(crate) fn new(settings: &DashboardSettings) -> Arc<Self> {
        Arc::new(Self {
            sessions: Sessions::new(settings.session_ttl, settings.session_secret.clone()),
            settings: settings.clone(),
            public: tokio::sync::Mutex::default(),
        })
    }
}

/// Whether `g` may name a group: a valid group name, lowercase.
/// [`UNGROUPED`] (the hosts without a group) is valid here, though no
/// group may take the name.
pub(crate) fn valid_group(g: &str) -> bool {
    g == UNGROUPED || iamalive_core::GroupName::new(g).is_ok_and(|n| n.as_str() == g)
}

/// The group of a host, `None` when it has none (listed under
/// [`UNGROUPED`]).
pub(crate) fn group_of(rec: &HostRecord) -> Option<&str> {
    rec.group.as_ref().map(iamalive_core::GroupName::as_str)
}

/// The routes of the dashboard, status pages and badges (none when the
/// dashboard is turned off).
pub(crate) fn routes(on: bool) -> Router<AppState> {
    if !on {
        return Router::new();
    }
    Router::new()
        .route("/", get(page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/silences", get(silences_page))
        .route("/ui/style.css", get(style))
        .route("/ui/icon.svg", get(icon))
        .route("/ui/{action}", post(action))
        .route("/status/{group}", get(status_page))
        .route("/badge/{token}/{kind}/{file}", get(badge_svg))
}

// ---- requests and answers -------------------------------------------------

/// What the page lists: `?q=<name or glob>&status=<…>&group=<…>&refresh=off`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Filter {
    #[serde(default)]
    pub(crate) q: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) group: String,
    #[serde(default)]
    pub(crate) refresh: String,
}

impl Filter {
    /// The query string that shows this filter again (empty parts left out).
    pub(crate) fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("group", &self.group),
            ("refresh", &self.refresh),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        parts.join("&")
    }

    /// `/` with this filter.
    pub(crate) fn url(&self) -> String {
        let q = self.query();
        if q.is_empty() {
            "/".into()
        } else {
            format!("/?{q}")
        }
    }

    fn matches(&self, row: &Row) -> bool {
        let q = self.q.trim().to_ascii_lowercase();
        let name_ok = if q.is_empty() {
            true
        } else if q.contains(['*', '?']) {
            iamalive_core::HostPattern::new(&q).is_ok_and(|p| p.matches(&row.host))
        } else {
            row.host.as_str().contains(&q)
        };
        let status_ok = match self.status.as_str() {
            "" | "all" => true,
            "problems" => row.state.is_problem(),
            s => row.state.as_str() == s,
        };
        let group_ok = self.group.is_empty() || self.group == row.group_name();
        name_ok && status_ok && group_ok
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a host is shown: its status, with a silenced outage apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Shown {
    /// The alarm went out.
    Alarmed,
    /// Silent past its timeout; the alarm is on its way.
    Missing,
    /// Silent past its timeout inside a silence: nobody is told.
    Silenced,
    /// Monitoring is off.
    Paused,
    /// Heard from in time.
    Up,
}

impl Shown {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shown::Alarmed => "alarmed",
            Shown::Missing => "missing",
            Shown::Silenced => "silenced",
            Shown::Paused => "paused",
            Shown::Up => "up",
        }
    }

    pub(crate) fn is_problem(self) -> bool {
        matches!(self, Shown::Alarmed | Shown::Missing | Shown::Silenced)
    }

    /// Every state, worst first.
    pub(crate) const ALL: [Shown; 5] = [
        Shown::Alarmed,
        Shown::Missing,
        Shown::Silenced,
        Shown::Paused,
        Shown::Up,
    ];
}

/// What holds a host's notices back.
#[derive(Debug, Clone)]
pub(crate) enum Hold {
    /// Paused, until a time or until resumed.
    Paused(Option<Timestamp>),
    /// Inside a silence, until its window ends.
    Silenced { reason: String, until: Timestamp },
}

/// The last outage on record.
#[derive(Debug, Clone)]
pub(crate) enum Outage {
    /// Going on now, since the host's last heartbeat.
    Now { since: Timestamp },
    /// Over: the stretch the agent reported it could not get through.
    Reported { from: Timestamp, to: Timestamp },
}

/// One host as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) host: HostId,
    pub(crate) group: Option<String>,
    pub(crate) state: Shown,
    pub(crate) last_seen: Timestamp,
    pub(crate) hold: Option<Hold>,
    pub(crate) outage: Option<Outage>,
    pub(crate) report: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) alarms: u32,
    /// In a flapping episode: since when (no per-flip notice meanwhile).
    pub(crate) flapping: Option<Timestamp>,
    /// Up but past its expected beat (its timeout not yet run out): when
    /// the beat was expected by (see `iamalive_core::beat`).
    pub(crate) missed_beat: Option<Timestamp>,
}

impl Row {
    fn new(
        rec: &HostRecord,
        now: Timestamp,
        silences: &[Silence],
        tz: chrono_tz::Tz,
        policies: &iamalive_core::PolicySet,
    ) -> Self {
        let silence = crate::api::covering_silence(silences, &rec.host, now);
        let hold = if rec.status == Status::Paused {
            Some(Hold::Paused(rec.due_at))
        } else {
            silence.map(|(s, end)| Hold::Silenced {
                reason: s.reason.clone(),
                until: end,
            })
        };
        let state = match rec.status {
            Status::Up => Shown::Up,
            Status::Paused => Shown::Paused,
            Status::Missing | Status::Alarmed if silence.is_some() => Shown::Silenced,
            Status::Missing => Shown::Missing,
            Status::Alarmed => Shown::Alarmed,
        };
        let report = rec.report.as_deref().map(|r| words::report(r, tz));
        let stretch = rec.report.as_deref().and_then(iamalive_core::report_span);
        let outage = match rec.status {
            Status::Missing | Status::Alarmed => Some(Outage::Now {
                since: rec.silent_since.unwrap_or(rec.last_seen),
            }),
            _ => stretch.map(|(from, to)| Outage::Reported { from, to }),
        };
        Self {
            host: rec.host.clone(),
            group: group_of(rec).map(str::to_owned),
            state,
            last_seen: rec.last_seen,
            hold,
            outage,
            report,
            message: rec.message.clone(),
            alarms: rec.alarm_count,
            flapping: rec
                .flap
                .as_deref()
                .and_then(|f| f.episode.as_ref())
                .map(|e| e.since),
            missed_beat: iamalive_core::beat::expected_by(rec)
                .filter(|_| iamalive_core::beat::missed_beat(rec, now, &policies.for_record(rec))),
        }
    }

    pub(crate) fn group_name(&self) -> &str {
        self.group.as_deref().unwrap_or(UNGROUPED)
    }
}

/// The hosts of one group, worst first.
#[derive(Debug)]
pub(crate) struct GroupView {
    pub(crate) name: String,
    pub(crate) rows: Vec<Row>,
    /// Hosts per state, in [`Shown::ALL`]'s order.
    pub(crate) counts: [usize; 5],
}

impl GroupView {
    fn worst(&self) -> Shown {
        self.rows.iter().map(|r| r.state).min().unwrap_or(Shown::Up)
    }
}

/// Groups the rows, each group worst first and then by name; the groups
/// with the worst hosts first, the ungrouped hosts after the named groups
/// of the same standing.
pub(crate) fn group_rows(rows: Vec<Row>) -> Vec<GroupView> {
    let mut by: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by.entry(r.group_name().to_owned()).or_default().push(r);
    }
    let mut groups: Vec<GroupView> = by
        .into_iter()
        .map(|(name, mut rows)| {
            rows.sort_by(|a, b| {
                a.state
                    .cmp(&b.state)
                    .then(a.last_seen.cmp(&b.last_seen))
                    .then(a.host.cmp(&b.host))
            });
            let mut counts = [0; 5];
            for r in &rows {
                counts[r.state as usize] += 1;
            }
            GroupView { name, rows, counts }
        })
        .collect();
    groups.sort_by(|a, b| {
        a.worst()
            .cmp(&b.worst())
            .then((a.name == UNGROUPED).cmp(&(b.name == UNGROUPED)))
            .then(a.name.cmp(&b.name))
    });
    groups
}

/// The form fields of every action; each action reads the ones it needs.
#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    host: String,
    #[serde(default, rename = "for")]
    for_: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    id: String,
    /// The page to go back to (its query string).
    #[serde(default)]
    back: String,
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    key: String,
}

// ---- sessions, cookies, security headers ----------------------------------

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the request reached a TLS proxy that says so.
fn behind_tls(headers: &HeaderMap) -> bool {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    h("x-forwarded-proto").split(',').next().map(str::trim) == Some("https")
        || h("forwarded").contains("proto=https")
}

fn session_cookie(dash: &Dashboard, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let secure = match dash.settings.secure_cookie {
        SecureCookie::Always => true,
        SecureCookie::Never => false,
        SecureCookie::Auto => behind_tls(headers),
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// An HTML page with the headers every dashboard page carries: no
/// caching, no framing, no scripts, no referrer.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A POST sent from another site (the browser says so): refused before
/// anything else is looked at.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

fn forbidden(reason: &str) -> Response {
    html(StatusCode::FORBIDDEN, view::message_page("Refused", reason))
}

/// The logged-in session and its key, checked as the management API
/// checks a key; `Err` is the page to answer instead.
fn signed_in<'a>(
    st: &'a AppState,
    headers: &HeaderMap,
) -> Result<(String, Session, &'a ApiKey), Box<Response>> {
    let dash = st.dashboard();
    let Some(token) = cookie_token(headers) else {
        return Err(Box::new(Redirect::to("/login").into_response()));
    };
    let Some(session) = dash.sessions.get(&token, st.now()) else {
        let mut r = Redirect::to("/login").into_response();
        if let Ok(v) = HeaderValue::from_str(&session_cookie(dash, headers, "", 0)) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return Err(Box::new(r));
    };
    match st.admin_key(session.key) {
        Ok(key) if key_tag(key) == session.key_tag => Ok((token, session, key)),
        Ok(_) => Err(Box::new(Redirect::to("/login").into_response())),
        Err(e) => Err(Box::new(api_error_page(&e))),
    }
}

/// The start of a key's hash, which a session carries to stay bound to
/// that key.
fn key_tag(key: &ApiKey) -> String {
    key.hash
        .to_config_string()
        .trim_start_matches("sha256:")
        .chars()
        .take(8)
        .collect()
}

fn api_error_page(e: &ApiError) -> Response {
    let mut r = html(e.status(), view::message_page("Not now", e.reason()));
    if e.status() == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

// ---- pages ----------------------------------------------------------------

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// The tab icon: a green dot.
async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#43a047"/><circle cx="8" cy="8" r="3.2" fill="#e8f5e9"/></svg>"##,
    )
        .into_response()
}

async fn login_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = cookie_token(&headers)
        && st.dashboard().sessions.get(&t, st.now()).is_some()
    {
        return Redirect::to("/").into_response();
    }
    html(StatusCode::OK, view::login(None))
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if cross_site(&headers) {
        return forbidden("a login from another site is refused");
    }
    let key = form.ok().map(|Form(f)| f.key).unwrap_or_default();
    if key.trim().is_empty() {
        return html(
            StatusCode::BAD_REQUEST,
            view::login(Some("Enter an admin API key.")),
        );
    }
    let index = match st.login(&key) {
        Ok(i) => i,
        Err(e) => {
            let text = match e.status() {
                StatusCode::UNAUTHORIZED => "That key is not accepted.".to_owned(),
                StatusCode::FORBIDDEN => {
                    "That key may only send heartbeats; the dashboard needs an admin key."
                        .to_owned()
                }
                _ => e.reason().to_owned(),
            };
            return html(e.status(), view::login(Some(&text)));
        }
    };
    let dash = st.dashboard();
    let tag = st.admin_key(index).map(key_tag).unwrap_or_default();
    let token = dash.sessions.open(index, &tag, st.now());
    let mut r = Redirect::to("/").into_response();
    let cookie = session_cookie(dash, &headers, &token, dash.sessions.ttl().as_secs());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    // Checked as every other form is (same site, a session, its CSRF
    // token).
    let (token, _, _) = match check_action(&st, &headers, form) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let dash = st.dashboard();
    dash.sessions.close(&token);
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(dash, &headers, "", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Every host `key` may see, up to [`MAX_READ`]; whether there were more.
async fn read_hosts(st: &AppState, key: &ApiKey) -> Result<(Vec<HostRecord>, bool), ApiError> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<HostId> = None;
    loop {
        let page = st.visible_hosts(key, after.clone(), PAGE).await?;
        let full = page.len() == PAGE;
        after = page.last().map(|r| r.host.clone());
        out.extend(page);
        if out.len() >= MAX_READ {
            out.truncate(MAX_READ);
            return Ok((out, true));
        }
        if !full {
            return Ok((out, false));
        }
    }
}

async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let (_, session, key) = match signed_in(&st, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let filter = filter.ok().map(|Query(f)| f).unwrap_or_default();
    let loaded = async {
        let (hosts, more) = read_hosts(&st, key).await?;
        let silences = st.visible_silences(key).await?;
        Ok::<_, ApiError>((hosts, more, silences))
    }
    .await;
    let (hosts, more, silences) = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(&e),
    };
    let now = st.now();
    let tz = st.dashboard().settings.tz;
    let all: Vec<Row> = hosts
        .iter()
        .map(|r| Row::new(r, now, &silences, tz, st.monitor().policies()))
        .collect();
    let mut totals = [0usize; 5];
    for r in &all {
        totals[r.state as usize] += 1;
    }
    let mut group_names: Vec<String> = all.iter().map(|r| r.group_name().to_owned()).collect();
    group_names.sort();
    group_names.dedup();
    let shown: Vec<Row> = all.into_iter().filter(|r| filter.matches(r)).collect();
    let matched = shown.len();
    let mut groups = group_rows(shown);
    // Keep the worst rows when there are too many to show.
    let mut budget = MAX_ROWS;
    for g in &mut groups {
        g.rows.truncate(budget);
        budget -= g.rows.len();
    }
    groups.retain(|g| !g.rows.is_empty());
    let mut ctx = page_context(&st, now, key, &session, &filter);
    ctx.badge_secret = st
        .dashboard()
        .settings
        .badge_secret
        .as_ref()
        .map(|s| s.expose());
    let body = view::dashboard(
        &ctx,
        &view::Listing {
            groups: &groups,
            totals,
            group_names: &group_names,
            matched,
            truncated: more || matched > MAX_ROWS,
            active_silences: silences
                .iter()
                .filter(|s| s.window_at(now).is_some())
                .count(),
        },
    );
    html(StatusCode::OK, body)
}

/// What a signed-in page is drawn with (no badge links: the main page
/// adds them).
fn page_context<'a>(
    st: &'a AppState,
    now: Timestamp,
    key: &'a ApiKey,
    session: &'a Session,
    filter: &'a Filter,
) -> view::PageContext<'a> {
    let settings = &st.dashboard().settings;
    view::PageContext {
        now,
        tz: settings.tz,
        key,
        csrf: &session.csrf,
        flash: session.flash.as_ref(),
        filter,
        refresh: settings.refresh,
        badge_secret: None,
        settings,
    }
}

#[derive(Debug, Default, Deserialize)]
struct SilencesQuery {
    #[serde(default)]
    hosts: String,
}

async fn silences_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SilencesQuery>, QueryRejection>,
) -> Response {
    let (_, session, key) = match signed_in(&st, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let silences = match st.visible_silences(key).await {
        Ok(s) => s,
        Err(e) => return api_error_page(&e),
    };
    let now = st.now();
    let live: Vec<&Silence> = silences.iter().filter(|s| !s.is_over(now)).collect();
    let filter = Filter::default();
    let ctx = page_context(&st, now, key, &session, &filter);
    let prefill = q.ok().map(|Query(q)| q.hosts).unwrap_or_default();
    html(StatusCode::OK, view::silences(&ctx, &live, &prefill))
}

// ---- actions --------------------------------------------------------------

/// Checks an action's session and CSRF token; the session's token, its
/// key and the form, or the page to answer.
fn check_action<'a>(
    st: &'a AppState,
    headers: &HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<(String, &'a ApiKey, ActionForm), Box<Response>> {
    if cross_site(headers) {
        return Err(Box::new(forbidden(
            "a form sent from another site is refused",
        )));
    }
    let (token, session, key) = signed_in(st, headers)?;
    let form = form.ok().map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok(&session, form.csrf.as_deref()) {
        return Err(Box::new(forbidden(
            "this form is out of date or was not sent from this dashboard (its CSRF token is missing or wrong); reload the page and try again",
        )));
    }
    Ok((token, key, form))
}

/// Back to where the form was, with `outcome` shown once.
fn done(st: &AppState, token: &str, back: &str, outcome: Result<String, ApiError>) -> Response {
    let flash = match outcome {
        Ok(text) => Flash { error: false, text },
        Err(e) => Flash {
            error: true,
            text: e.reason().to_owned(),
        },
    };
    st.dashboard().sessions.flash(token, flash);
    Redirect::to(&back_url(back)).into_response()
}

/// A safe place to go back to: `/silences`, or `/` with a filter parsed
/// from `back` (never another site).
fn back_url(back: &str) -> String {
    if back == "/silences" {
        return back.to_owned();
    }
    let q = back.trim_start_matches('/').trim_start_matches('?');
    match serde_urlencoded_filter(q) {
        Some(f) => f.url(),
        None => "/".to_owned(),
    }
}

fn serde_urlencoded_filter(q: &str) -> Option<Filter> {
    Query::<Filter>::try_from_uri(&format!("/?{q}").parse().ok()?)
        .ok()
        .map(|Query(f)| f)
}

/// A duration from a form: `2h`, `90m`; empty is `None`.
fn form_duration(s: &str, what: &str) -> Result<Option<Duration>, ApiError> {
    let s = s.trim();
    if s.is_empty() || s == "until-resumed" {
        return Ok(None);
    }
    humantime::parse_duration(s).map(Some).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}: {s:?} is not a duration such as 2h or 30m: {e}"),
        )
    })
}

/// `POST /ui/{pause,resume,remove,silence,unsilence}`: one of the page's
/// forms, checked (same site, a session, its CSRF token), done as the
/// session's key, and back to the page with the outcome shown once.
async fn action(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let act = match name.as_str() {
        "pause" => Act::Pause,
        "resume" => Act::Resume,
        "remove" => Act::Remove,
        "silence" => Act::Silence,
        "unsilence" => Act::Unsilence,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let (token, key, form) = match check_action(&st, &headers, form) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let outcome = act.run(&st, key, &form).await;
    done(&st, &token, &form.back, outcome)
}

/// What an action says when it is done, or why it was not.
type Outcome = Result<String, ApiError>;

/// The page's actions, by the name in their URL.
#[derive(Debug, Clone, Copy)]
enum Act {
    Pause,
    Resume,
    Remove,
    Silence,
    Unsilence,
}

impl Act {
    /// Does it as `key`, with what `form` says.
    async fn run(self, st: &AppState, key: &ApiKey, form: &ActionForm) -> Outcome {
        let tz = st.dashboard().settings.tz;
        match self {
            Act::Pause => {
                let for_ = form_duration(&form.for_, "pause for")?;
                let req = PauseBody {
                    for_,
                    ..PauseBody::default()
                };
                let rec = st.pause(key, &form.host, &req).await?;
                Ok(match rec.due_at {
                    Some(until) => {
                        format!("{} is paused until {}.", rec.host, words::exact(until, tz))
                    }
                    None => format!("{} is paused until resumed.", rec.host),
                })
            }
            Act::Resume => {
                let rec = st.resume(key, &form.host).await?;
                Ok(format!("{} is watched again.", rec.host))
            }
            Act::Remove => {
                let h = st.remove_host(key, &form.host).await?;
                Ok(format!(
                    "{h} was removed; its next heartbeat registers it again."
                ))
            }
            Act::Silence => {
                let for_ = form_duration(&form.for_, "silence for")?.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "give how long the silence lasts, such as 2h",
                    )
                })?;
                let req = NewSilence::lasting(
                    form.hosts.trim().to_owned(),
                    for_,
                    form.reason.trim().to_owned(),
                );
                let s = st.add_silence(key, req).await?;
                Ok(format!(
                    "Hosts matching {} are silenced until {}.",
                    s.hosts,
                    words::exact(s.ends_at, tz)
                ))
            }
            Act::Unsilence => {
                st.end_silence(key, &form.id).await?;
                Ok(format!("Silence {} ended.", form.id))
            }
        }
    }
}

// ---- public: status pages and badges --------------------------------------

/// The hosts of `group`, read without a session (status pages, badges),
/// from a reading of every host at most [`PUBLIC_REREAD`] old.
async fn group_hosts(st: &AppState, group: &str) -> Result<Vec<Row>, ApiError> {
    let now = st.now();
    let mut cached = st.dashboard().public.lock().await;
    let rows = match cached.as_ref() {
        Some((at, rows)) if now >= *at && now < iamalive_core::add(*at, PUBLIC_REREAD) => {
            Arc::clone(rows)
        }
        _ => {
            // A stand-in for "every host": it is only matched against
            // host ids, never accepted as a key.
            let all = ApiKey::admin("public pages", crate::keys::KeyHash::of(""));
            let (hosts, _) = read_hosts(st, &all).await?;
            let silences = st.visible_silences(&all).await?;
            let tz = st.dashboard().settings.tz;
            let rows: Arc<Vec<Row>> = Arc::new(
                hosts
                    .iter()
                    .map(|r| Row::new(r, now, &silences, tz, st.monitor().policies()))
                    .collect(),
            );
            *cached = Some((now, Arc::clone(&rows)));
            rows
        }
    };
    Ok(rows
        .iter()
        .filter(|r| r.group_name() == group)
        .cloned()
        .collect())
}

fn not_found_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        view::message_page("Not found", "There is no such page."),
    )
}

async fn status_page(State(st): State<AppState>, Path(group): Path<String>) -> Response {
    let group = group.to_ascii_lowercase();
    if !valid_group(&group) || !st.dashboard().settings.status_page_on(&group) {
        return not_found_page();
    }
    let rows = match group_hosts(&st, &group).await {
        Ok(r) => r,
        Err(e) => return api_error_page(&e),
    };
    if rows.is_empty() {
        return not_found_page();
    }
    let g = group_rows(rows).pop().expect("one group");
    html(
        StatusCode::OK,
        view::status_page(
            &g,
            view::When {
                now: st.now(),
                tz: st.dashboard().settings.tz,
            },
            st.dashboard().settings.refresh,
        ),
    )
}

async fn badge_svg(
    State(st): State<AppState>,
    Path((token, kind, file)): Path<(String, String, String)>,
) -> Response {
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such badge",
        )
            .into_response()
    };
    let Some(secret) = st.dashboard().settings.badge_secret.as_ref() else {
        return missing();
    };
    let Some(name) = file.strip_suffix(".svg") else {
        return missing();
    };
    let name = name.to_ascii_lowercase();
    let target = match kind.as_str() {
        "host" => badge::Target::Host(&name),
        "group" => badge::Target::Group(&name),
        _ => return missing(),
    };
    if !badge::token_ok(secret.expose(), target, &token) {
        return missing();
    }
    let now = st.now();
    let (label, value, colour) = match target {
        badge::Target::Host(h) => {
            let Ok(id) = HostId::new(h) else {
                return missing();
            };
            let rec = match st.monitor().host(&id).await {
                Ok(Some(r)) => r,
                Ok(None) => return missing(),
                Err(e) => return ApiError::store(e).into_response(),
            };
            let silences = match st.monitor().store().silences().await {
                Ok(s) => s,
                Err(e) => return ApiError::store(e).into_response(),
            };
            let row = Row::new(
                &rec,
                now,
                &silences,
                st.dashboard().settings.tz,
                st.monitor().policies(),
            );
            (
                row.host.to_string(),
                row.state.as_str().to_owned(),
                view::badge_colour(row.state),
            )
        }
        badge::Target::Group(g) => {
            let rows = match group_hosts(&st, g).await {
                Ok(r) => r,
                Err(e) => return e.into_response(),
            };
            if rows.is_empty() {
                return missing();
            }
            let watched = rows.iter().filter(|r| r.state != Shown::Paused).count();
            let down = rows.iter().filter(|r| r.state.is_problem()).count();
            let worst = rows.iter().map(|r| r.state).min().unwrap_or(Shown::Up);
            let value = if down == 0 {
                format!("{watched} up")
            } else {
                format!("{down} of {watched} down")
            };
            (g.to_owned(), value, view::badge_colour(worst))
        }
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        badge::svg(&label, &value, colour),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, group: Option<&str>, state: Shown, seen_ms: i64) -> Row {
        Row {
            host: HostId::new(host).unwrap(),
            group: group.map(str::to_owned),
            state,
            last_seen: chrono::DateTime::from_timestamp_millis(seen_ms).unwrap(),
            hold: None,
            outage: None,
            report: None,
            message: None,
            alarms: 0,
            flapping: None,
            missed_beat: None,
        }
    }

    #[test]
    fn groups_with_problems_come_first_and_problems_first_within() {
        let groups = group_rows(vec![
            row("a-1", None, Shown::Up, 0),
            row("b-1", Some("berlin"), Shown::Up, 0),
            row("c-1", Some("paris"), Shown::Up, 0),
            row("c-2", Some("paris"), Shown::Missing, 5),
            row("c-3", Some("paris"), Shown::Alarmed, 9),
            row("c-4", Some("paris"), Shown::Alarmed, 1),
        ]);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["paris", "berlin", UNGROUPED]);
        let paris: Vec<&str> = groups[0].rows.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(
            paris,
            ["c-4", "c-3", "c-2", "c-1"],
            "worst, then silent longest"
        );
        assert_eq!(groups[0].counts, [2, 1, 0, 0, 1]);
    }

    #[test]
    fn the_way_back_is_a_filter_of_this_site() {
        let f = Filter {
            q: "web *&x".into(),
            status: "up".into(),
            ..Filter::default()
        };
        assert_eq!(f.url(), "/?q=web%20*%26x&status=up");
        assert_eq!(back_url(&f.query()), f.url());
        assert_eq!(back_url("/silences"), "/silences");
        for evil in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil",
            "q=a\r\nSet-Cookie: x",
        ] {
            let u = back_url(evil);
            assert!(u.starts_with('/') && !u.starts_with("//"), "{evil} -> {u}");
            assert!(
                !u.contains('\n') && !u.contains("evil.example/"),
                "{evil} -> {u}"
            );
        }
    }

    #[test]
    fn a_filter_matches_names_globs_states_and_groups() {
        let r = row("web-1", None, Shown::Silenced, 0);
        let f = |q: &str, status: &str, group: &str| Filter {
            q: q.into(),
            status: status.into(),
            group: group.into(),
            refresh: String::new(),
        };
        assert!(f("", "", "").matches(&r));
        assert!(f("WEB", "", "").matches(&r), "names match in any case");
        assert!(f("w*-?", "", "").matches(&r));
        assert!(!f("db", "", "").matches(&r));
        assert!(
            f("", "problems", "").matches(&r),
            "a silenced outage is a problem"
        );
        assert!(f("", "silenced", UNGROUPED).matches(&r));
        assert!(!f("", "up", "").matches(&r));
        assert!(!f("", "", "berlin").matches(&r));
    }
}
