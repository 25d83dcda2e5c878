//! The dashboard over plain HTTP: what is shown before and after login,
//! the session cookie, CSRF checks, actions through the API's operations,
//! status pages and badges. (The browser test is `browser.rs`.)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use iamalive_core::testing::RecordingNotifier;
use iamalive_core::{Clock, HostId, ManualClock, MemoryStore, Notifier, Status, Store};
use iamalive_server::{AppState, Config, SESSION_COOKIE, router};
use tower::ServiceExt;

const ADMIN: &str = "admin-key-0123456789";
const WEB_ADMIN: &str = "web-admin-key-0123456789";
const AGENT: &str = "agent-key-0123456789";
const BADGE_SECRET: &str = "badge-secret-0123456789abcdef";

struct Fixture {
    state: AppState,
    store: Arc<MemoryStore>,
    clock: ManualClock,
}

fn config(extra_env: &[(&str, &str)]) -> Config {
    let mut env = vec![
        (
            "IAMALIVE_API_KEYS".to_owned(),
            format!(
                "{ADMIN};name=ops,{WEB_ADMIN};hosts=web-*;name=web-team,{AGENT};role=heartbeat;name=agents"
            ),
        ),
        ("IAMALIVE_TIMEOUT".to_owned(), "10s".to_owned()),
        ("IAMALIVE_REMINDER_INTERVAL".to_owned(), "60s".to_owned()),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_sources(None, env).unwrap()
}

fn fixture(extra_env: &[(&str, &str)]) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::at_millis(1_700_000_000_000);
    beside(&store, &clock, extra_env)
}

/// Another watcher process on the same store and clock.
fn beside(store: &Arc<MemoryStore>, clock: &ManualClock, extra_env: &[(&str, &str)]) -> Fixture {
    let channels: Vec<Arc<dyn Notifier>> = vec![Arc::new(RecordingNotifier::new("test"))];
    let state = AppState::new(
        store.clone() as Arc<dyn Store>,
        channels,
        Arc::new(clock.clone()),
        &config(extra_env),
    )
    .expect("channel names are unique");
    Fixture {
        state,
        store: Arc::clone(store),
        clock: clock.clone(),
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn set_cookie(&self) -> String {
        self.headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(f: &Fixture, req: Request<Body>) -> Answer {
    let res = router(f.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(f: &Fixture, uri: &str, cookie: Option<&str>) -> Answer {
    let mut req = Request::builder().method(Method::GET).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={c}"));
    }
    send(f, req.body(Body::empty()).unwrap()).await
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn post(f: &Fixture, uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
    post_with(f, uri, cookie, fields, &[]).await
}

async fn post_with(
    f: &Fixture,
    uri: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={c}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(f, req.body(Body::from(form_body(fields))).unwrap()).await
}

/// Logs in with `key`; the session token.
async fn login(f: &Fixture, key: &str) -> String {
    let a = post(f, "/login", None, &[("key", key)]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    assert_eq!(a.location(), "/");
    let c = a.set_cookie();
    let token = c
        .strip_prefix(&format!("{SESSION_COOKIE}="))
        .and_then(|r| r.split(';').next())
        .unwrap_or_default()
        .to_owned();
    assert!(token.len() >= 64, "{c}");
    token
}

/// The CSRF token of the page.
fn csrf(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("the page has a form with a CSRF token")
        + r#"name="csrf" value=""#.len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn beat(f: &Fixture, host: &str) {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(r#"{{"host":"{host}"}}"#)))
        .unwrap();
    assert_eq!(send(f, req).await.status, StatusCode::OK);
}

fn h(s: &str) -> HostId {
    HostId::new(s).unwrap()
}

#[tokio::test]
async fn nothing_about_hosts_before_login_and_a_wrong_key_is_a_form_error() {
    let f = fixture(&[]);
    beat(&f, "secret-db-1").await;
    for uri in ["/", "/silences", "/?q=secret"] {
        let a = get(&f, uri, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(a.location(), "/login", "{uri}");
        assert!(!a.text.contains("secret-db-1"), "{uri}");
    }
    let a = get(&f, "/", Some("0123456789abcdef")).await;
    assert_eq!(a.location(), "/login", "an unknown session is no session");
    let page = get(&f, "/login", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(r#"type="password""#), "{}", page.text);
    assert!(!page.text.contains("secret-db-1"));
    assert!(page.text.contains(r#"action="/login""#));

    let wrong = post(&f, "/login", None, &[("key", "not-the-key-0123456789")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.text.contains("That key is not accepted."),
        "{}",
        wrong.text
    );
    assert!(wrong.set_cookie().is_empty(), "no session for a wrong key");
    assert!(!wrong.text.contains("secret-db-1"));

    let empty = post(&f, "/login", None, &[("key", "")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.text.contains("Enter an admin API key"));

    let agent = post(&f, "/login", None, &[("key", AGENT)]).await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
    assert!(
        agent.text.contains("only send heartbeats"),
        "{}",
        agent.text
    );
    assert!(agent.set_cookie().is_empty());

    let cross = post_with(
        &f,
        "/login",
        None,
        &[("key", ADMIN)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(cross.set_cookie().is_empty());
}

#[tokio::test]
async fn login_lists_hosts_problems_first_with_times_in_words() {
    let f = fixture(&[]);
    beat(&f, "web-1").await;
    beat(&f, "db-1").await;
    f.clock.advance(Duration::from_secs(240));
    beat(&f, "web-1").await;
    // db-1 is 4 minutes silent with a 10 s timeout: missing once swept.
    let _ = f.state.monitor().sweep().await.unwrap();
    let session = login(&f, ADMIN).await;
    let a = get(&f, "/", Some(&session)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store",
        "host data is never cached"
    );
    let csp = a.headers.get(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(csp.to_str().unwrap().contains("default-src 'none'"));
    let page = &a.text;
    let (db, web) = (page.find("db-1").unwrap(), page.find("web-1").unwrap());
    assert!(db < web, "the silent host is listed first");
    assert!(page.contains("4 min ago"), "{page}");
    assert!(
        page.contains(r#"title="2023-11-14 22:13:20 UTC""#),
        "exact time on hover"
    );
    assert!(
        page.contains(r#"http-equiv="refresh""#),
        "the page reloads itself"
    );
    assert!(!page.contains("<script"), "no scripts");
    assert!(page.contains("Ungrouped") || page.contains("All hosts"));

    // Filters.
    let only_up = get(&f, "/?status=up", Some(&session)).await.text;
    assert!(only_up.contains("web-1") && !only_up.contains(">db-1<"));
    let by_name = get(&f, "/?q=db", Some(&session)).await.text;
    assert!(by_name.contains(">db-1<") && !by_name.contains(">web-1<"));
    let by_glob = get(&f, "/?q=w*-1", Some(&session)).await.text;
    assert!(by_glob.contains(">web-1<") && !by_glob.contains(">db-1<"));
    let problems = get(&f, "/?status=problems", Some(&session)).await.text;
    assert!(problems.contains(">db-1<") && !problems.contains(">web-1<"));
    let no_group = get(&f, "/?group=office", Some(&session)).await.text;
    assert!(no_group.contains("No host matches this filter"));
    let stopped = get(&f, "/?refresh=off", Some(&session)).await.text;
    assert!(!stopped.contains(r#"http-equiv="refresh""#));
}

#[tokio::test]
async fn every_post_needs_the_session_csrf_token() {
    let f = fixture(&[]);
    beat(&f, "web-1").await;
    let session = login(&f, ADMIN).await;
    let page = get(&f, "/", Some(&session)).await.text;
    let token = csrf(&page);
    assert_eq!(token.len(), 64);

    for (uri, fields) in [
        ("/ui/pause", vec![("host", "web-1"), ("for", "1h")]),
        ("/ui/remove", vec![("host", "web-1")]),
        ("/ui/silence", vec![("hosts", "web-*"), ("for", "1h")]),
        ("/logout", vec![]),
    ] {
        let missing = post(&f, uri, Some(&session), &fields).await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{uri}: {}",
            missing.text
        );
        assert!(missing.text.contains("CSRF") || missing.text.contains("out of date"));
        let mut forged = fields.clone();
        forged.push((
            "csrf",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ));
        let a = post(&f, uri, Some(&session), &forged).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}");
    }
    // Nothing happened.
    let rec = f.store.get(&h("web-1")).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Up);
    assert!(f.store.silences().await.unwrap().is_empty());

    // The right token from another site is refused too.
    let cross = post_with(
        &f,
        "/ui/pause",
        Some(&session),
        &[("host", "web-1"), ("csrf", &token)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);

    // A token without a session is nothing.
    let a = post(
        &f,
        "/ui/pause",
        None,
        &[("host", "web-1"), ("csrf", &token)],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/login");
    assert_eq!(
        f.store.get(&h("web-1")).await.unwrap().unwrap().status,
        Status::Up
    );
}

#[tokio::test]
async fn actions_pause_resume_silence_and_remove() {
    let f = fixture(&[]);
    beat(&f, "web-1").await;
    beat(&f, "db-1").await;
    let session = login(&f, ADMIN).await;
    let token = csrf(&get(&f, "/", Some(&session)).await.text);

    let a = post(
        &f,
        "/ui/pause",
        Some(&session),
        &[
            ("csrf", &token),
            ("host", "web-1"),
            ("for", "1h"),
            ("back", "q=web&status=paused"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    assert_eq!(
        a.location(),
        "/?q=web&status=paused",
        "back to the same filter"
    );
    let rec = f.store.get(&h("web-1")).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Paused);
    assert_eq!(
        rec.due_at,
        Some(f.clock.now() + chrono::Duration::hours(1)),
        "paused for the hour asked"
    );
    let page = get(&f, "/", Some(&session)).await.text;
    assert!(
        page.contains("web-1 is paused until"),
        "the outcome is shown once"
    );
    assert!(page.contains("paused until"));
    let again = get(&f, "/", Some(&session)).await.text;
    assert!(!again.contains("web-1 is paused until"), "only once");

    // A bad duration is the API's own 400 reason, shown on the page.
    post(
        &f,
        "/ui/pause",
        Some(&session),
        &[("csrf", &token), ("host", "db-1"), ("for", "soon")],
    )
    .await;
    let page = get(&f, "/", Some(&session)).await.text;
    assert!(page.contains("is not a duration"), "{page}");
    // The back link cannot lead off the site.
    let a = post(
        &f,
        "/ui/resume",
        Some(&session),
        &[
            ("csrf", &token),
            ("host", "web-1"),
            ("back", "//evil.example/x"),
        ],
    )
    .await;
    assert!(
        a.location().starts_with('/') && !a.location().starts_with("//"),
        "{}",
        a.location()
    );
    assert_eq!(
        f.store.get(&h("web-1")).await.unwrap().unwrap().status,
        Status::Up
    );

    let a = post(
        &f,
        "/ui/silence",
        Some(&session),
        &[
            ("csrf", &token),
            ("hosts", "db-*"),
            ("for", "2h"),
            ("reason", "disk swap"),
            ("back", "/silences"),
        ],
    )
    .await;
    assert_eq!(a.location(), "/silences");
    let s = f.store.silences().await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].hosts.as_str(), "db-*");
    assert_eq!(s[0].reason, "disk swap");
    assert_eq!(s[0].ends_at, f.clock.now() + chrono::Duration::hours(2));
    let page = get(&f, "/silences", Some(&session)).await.text;
    assert!(
        page.contains("db-*") && page.contains("disk swap"),
        "{page}"
    );
    let hosts = get(&f, "/", Some(&session)).await.text;
    assert!(hosts.contains("silenced until") && hosts.contains("disk swap"));

    let id = s[0].id.clone();
    post(
        &f,
        "/ui/unsilence",
        Some(&session),
        &[("csrf", &token), ("id", &id)],
    )
    .await;
    assert!(f.store.silences().await.unwrap().is_empty());

    post(
        &f,
        "/ui/remove",
        Some(&session),
        &[("csrf", &token), ("host", "db-1")],
    )
    .await;
    assert!(f.store.get(&h("db-1")).await.unwrap().is_none());

    // Logging out ends the session.
    let a = post(&f, "/logout", Some(&session), &[("csrf", &token)]).await;
    assert_eq!(a.location(), "/login");
    assert!(a.set_cookie().contains("Max-Age=0"));
    assert_eq!(get(&f, "/", Some(&session)).await.location(), "/login");
}

#[tokio::test]
async fn a_restricted_key_sees_and_manages_only_its_hosts() {
    let f = fixture(&[]);
    beat(&f, "web-1").await;
    beat(&f, "db-1").await;
    let session = login(&f, WEB_ADMIN).await;
    let page = get(&f, "/", Some(&session)).await.text;
    assert!(page.contains(">web-1<"));
    assert!(!page.contains("db-1"), "another team's host is not shown");
    let token = csrf(&page);
    post(
        &f,
        "/ui/pause",
        Some(&session),
        &[("csrf", &token), ("host", "db-1")],
    )
    .await;
    assert_eq!(
        f.store.get(&h("db-1")).await.unwrap().unwrap().status,
        Status::Up
    );
    let page = get(&f, "/", Some(&session)).await.text;
    assert!(page.contains("may only manage hosts matching"), "{page}");
    post(
        &f,
        "/ui/silence",
        Some(&session),
        &[("csrf", &token), ("hosts", "*"), ("for", "1h")],
    )
    .await;
    assert!(f.store.silences().await.unwrap().is_empty());
    let page = get(&f, "/silences", Some(&session)).await.text;
    assert!(page.contains("unrestricted admin key"), "{page}");
}

#[tokio::test]
async fn the_session_cookie_is_locked_down_and_ends_after_its_life() {
    let f = fixture(&[("IAMALIVE_DASHBOARD_SESSION_TTL", "1h")]);
    let a = post(&f, "/login", None, &[("key", ADMIN)]).await;
    let c = a.set_cookie();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(c.contains(part), "{c} lacks {part}");
    }
    assert!(!c.contains("Secure"), "plain HTTP: {c}");
    let tls = post_with(
        &f,
        "/login",
        None,
        &[("key", ADMIN)],
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(tls.set_cookie().contains("; Secure"), "behind TLS");

    let session = login(&f, ADMIN).await;
    f.clock.advance(Duration::from_secs(3599));
    assert_eq!(get(&f, "/", Some(&session)).await.status, StatusCode::OK);
    f.clock.advance(Duration::from_secs(1));
    let a = get(&f, "/", Some(&session)).await;
    assert_eq!(a.location(), "/login", "the session ended after its hour");

    let always = fixture(&[("IAMALIVE_DASHBOARD_SECURE_COOKIE", "true")]);
    let a = post(&always, "/login", None, &[("key", ADMIN)]).await;
    assert!(a.set_cookie().contains("; Secure"));
}

#[tokio::test]
async fn wrong_logins_spend_the_unauthenticated_budget() {
    let f = fixture(&[("IAMALIVE_RATE_LIMIT_UNAUTHENTICATED", "3/1h")]);
    for _ in 0..3 {
        let a = post(&f, "/login", None, &[("key", "wrong-key-0123456789")]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let a = post(&f, "/login", None, &[("key", "wrong-key-0123456789")]).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert!(a.text.contains("too many requests"), "{}", a.text);
}

#[tokio::test]
async fn the_dashboard_can_be_turned_off() {
    let f = fixture(&[("IAMALIVE_DASHBOARD", "false")]);
    assert_eq!(get(&f, "/", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&f, "/login", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_pages_are_off_by_default_and_show_only_names_and_states() {
    let f = fixture(&[]);
    beat(&f, "web-1").await;
    assert_eq!(
        get(&f, "/status/ungrouped", None).await.status,
        StatusCode::NOT_FOUND
    );

    let f = fixture(&[("IAMALIVE_STATUS_PAGES", "ungrouped")]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/heartbeat")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"host":"web-1","message":"private detail"}"#))
        .unwrap();
    assert_eq!(send(&f, req).await.status, StatusCode::OK);
    let a = get(&f, "/status/ungrouped", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("web-1") && a.text.contains("All systems reporting"));
    assert!(
        !a.text.contains("private detail"),
        "no messages on a public page"
    );
    assert!(!a.text.contains("<form"), "read-only");
    assert_eq!(
        get(&f, "/status/office", None).await.status,
        StatusCode::NOT_FOUND
    );
    f.clock.advance(Duration::from_secs(60));
    let _ = f.state.monitor().sweep().await.unwrap();
    let a = get(&f, "/status/ungrouped", None).await;
    assert!(a.text.contains("1 of 1 hosts silent"), "{}", a.text);
    // Anyone may ask: the store is read at most once per 10 s for them.
    beat(&f, "web-2").await;
    f.clock.advance(Duration::from_secs(9));
    let a = get(&f, "/status/ungrouped", None).await;
    assert!(!a.text.contains("web-2"), "read again within 10 s");
    f.clock.advance(Duration::from_secs(1));
    let a = get(&f, "/status/ungrouped", None).await;
    assert!(a.text.contains("web-2"), "not read again after 10 s");

    assert!(
        Config::from_sources(
            None,
            [("IAMALIVE_STATUS_PAGES".to_owned(), "Bad Name".to_owned())]
        )
        .unwrap_err()
        .key
        .contains("IAMALIVE_STATUS_PAGES")
    );
}

/// The badge path of `kind`/`name` as the dashboard links it.
async fn badge_path(f: &Fixture, session: &str, kind: &str, name: &str) -> String {
    let page = get(f, "/", Some(session)).await.text;
    let needle = format!("/{kind}/{name}.svg");
    let end = page.find(&needle).expect("the dashboard links the badge") + needle.len();
    let start = page[..end].rfind("/badge/").unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn badges_need_their_own_token_never_the_api_key() {
    let off = fixture(&[]);
    beat(&off, "web-1").await;
    assert_eq!(
        get(&off, &format!("/badge/{ADMIN}/host/web-1.svg"), None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "badges are off without a secret"
    );

    let f = fixture(&[("IAMALIVE_BADGE_SECRET", BADGE_SECRET)]);
    beat(&f, "web-1").await;
    beat(&f, "web-2").await;
    let session = login(&f, ADMIN).await;
    let path = badge_path(&f, &session, "host", "web-1").await;
    assert!(!path.contains(ADMIN));
    let a = get(&f, &path, None).await;
    assert_eq!(a.status, StatusCode::OK, "{path}");
    assert_eq!(
        a.headers.get(header::CONTENT_TYPE).unwrap(),
        "image/svg+xml"
    );
    assert!(
        a.text.starts_with("<svg") && a.text.contains("web-1: up"),
        "{}",
        a.text
    );
    // Another host's badge with this token, or the API key as a token: no.
    assert_eq!(
        get(&f, &path.replace("web-1", "web-2"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f, &format!("/badge/{ADMIN}/host/web-1.svg"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let group = badge_path(&f, &session, "group", "ungrouped").await;
    let a = get(&f, &group, None).await;
    assert!(a.text.contains("2 up"), "{}", a.text);
    f.clock.advance(Duration::from_secs(60));
    let _ = f.state.monitor().sweep().await.unwrap();
    let a = get(&f, &path, None).await;
    assert!(
        a.text.contains("web-1: alarmed") || a.text.contains("web-1: missing"),
        "{}",
        a.text
    );
    let a = get(&f, &group, None).await;
    assert!(a.text.contains("2 of 2 down"), "{}", a.text);

    assert!(
        Config::from_sources(
            None,
            [("IAMALIVE_BADGE_SECRET".to_owned(), "short".to_owned())]
        )
        .unwrap_err()
        .key
        .contains("IAMALIVE_BADGE_SECRET")
    );
}

#[tokio::test]
async fn times_are_shown_in_the_configured_zone() {
    let f = fixture(&[("IAMALIVE_DASHBOARD_TZ", "Europe/Berlin")]);
    beat(&f, "web-1").await;
    let session = login(&f, ADMIN).await;
    let page = get(&f, "/", Some(&session)).await.text;
    assert!(
        page.contains(r#"title="2023-11-14 23:13:20 CET""#),
        "exact times on hover in Berlin time"
    );
    assert!(page.contains("Europe/Berlin"), "the page says which zone");
    assert!(
        Config::from_sources(
            None,
            [(
                "IAMALIVE_DASHBOARD_TZ".to_owned(),
                "Mars/Olympus".to_owned()
            )]
        )
        .unwrap_err()
        .key
        .contains("IAMALIVE_DASHBOARD_TZ")
    );
}

#[tokio::test]
async fn with_a_shared_secret_a_login_works_on_every_watcher() {
    let env = [(
        "IAMALIVE_DASHBOARD_SECRET",
        "shared-session-secret-0123456789",
    )];
    let a = fixture(&env);
    let b = beside(&a.store, &a.clock, &env);
    let alone = beside(&a.store, &a.clock, &[]);
    beat(&a, "web-1").await;
    let session = login(&a, ADMIN).await;
    let page = get(&b, "/", Some(&session)).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the other watcher knows the login"
    );
    assert!(page.text.contains(">web-1<"));
    let token = csrf(&page.text);
    assert_eq!(token, csrf(&get(&a, "/", Some(&session)).await.text));
    post(
        &b,
        "/ui/pause",
        Some(&session),
        &[("csrf", &token), ("host", "web-1")],
    )
    .await;
    assert_eq!(
        a.store.get(&h("web-1")).await.unwrap().unwrap().status,
        Status::Paused
    );
    assert_eq!(
        get(&alone, "/", Some(&session)).await.location(),
        "/login",
        "a watcher without the secret does not"
    );
    // A session token with its key swapped is no session.
    let forged = session.replacen("0.", "1.", 1);
    assert_eq!(get(&b, "/", Some(&forged)).await.location(), "/login");
    // Logged out on b: b forgets it.
    post(&b, "/logout", Some(&session), &[("csrf", &token)]).await;
    assert_eq!(get(&b, "/", Some(&session)).await.location(), "/login");
    assert!(
        Config::from_sources(
            None,
            [("IAMALIVE_DASHBOARD_SECRET".to_owned(), "short".to_owned())]
        )
        .unwrap_err()
        .key
        .contains("IAMALIVE_DASHBOARD_SECRET")
    );
}
