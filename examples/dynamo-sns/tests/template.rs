//! The SAM template against the server it deploys: every `IAMALIVE_*`
//! variable it sets is a setting the server reads (a typo would stop the
//! function at start), and every endpoint an operator uses is routed to
//! the function. `cfn-lint` checks the rest (scripts/test.sh).

fn template() -> String {
    let path = format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(method, path)` of every `Type: HttpApi` event.
fn routes(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if *l != "Type: HttpApi" {
            continue;
        }
        let field = |name: &str| {
            lines[i + 1..]
                .iter()
                .take(4)
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("an HttpApi event without {name}"))
        };
        out.push((field("Method:"), field("Path:")));
    }
    out
}

/// Whether API Gateway's route `template` (`/v1/{proxy+}`, `/status/{group}`)
/// takes `path`.
fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, seg) in t.iter().enumerate() {
        if seg.ends_with("+}") {
            return p.len() > i && p[i..].iter().all(|s| !s.is_empty());
        }
        match p.get(i) {
            Some(s) if seg.starts_with('{') => {
                if s.is_empty() {
                    return false;
                }
            }
            Some(s) if s == seg => {}
            _ => return false,
        }
    }
    t.len() == p.len()
}

#[test]
fn every_variable_the_template_sets_is_a_setting() {
    let text = template();
    let known: Vec<&str> = iamalive_server::env_names().collect();
    let set: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("IAMALIVE_"))
        .collect();
    for var in [
        "IAMALIVE_DYNAMO_TABLE",
        "IAMALIVE_SNS_TOPIC_ARN",
        "IAMALIVE_WEBHOOK_URL",
        "IAMALIVE_CHANNELS",
        "IAMALIVE_ROUTES",
    ] {
        assert!(set.contains(&var), "the template passes {var}");
    }
    for var in set {
        assert!(known.contains(&var), "{var} is not a setting of the server");
    }
}

#[test]
fn every_endpoint_an_operator_uses_reaches_the_function() {
    let routes = routes(&template());
    assert!(routes.len() >= 3, "{routes:?}");
    // The router's endpoints (iamalive_server::router), one request each.
    for (method, path) in [
        ("POST", "/v1/heartbeat"),
        ("GET", "/ping/agent-key/web-1"),
        ("POST", "/ping/agent-key/web-1/fail"),
        ("POST", "/v1/alertmanager/web-1"),
        ("GET", "/v1/hosts"),
        ("DELETE", "/v1/hosts"),
        ("GET", "/v1/hosts/web-1"),
        ("PUT", "/v1/hosts/web-1"),
        ("DELETE", "/v1/hosts/web-1"),
        ("GET", "/v1/hosts/web-1/events"),
        ("POST", "/v1/hosts/web-1/pause"),
        ("POST", "/v1/hosts/web-1/resume"),
        ("POST", "/v1/hosts/web-1/maintenance"),
        ("DELETE", "/v1/hosts/web-1/maintenance"),
        ("GET", "/v1/silences"),
        ("POST", "/v1/silences"),
        ("DELETE", "/v1/silences/42"),
        ("GET", "/healthz"),
        ("GET", "/v1/watcher"),
        ("POST", "/v1/test-notice"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("POST", "/login"),
        ("POST", "/ui/pause"),
        ("GET", "/status/office"),
        ("GET", "/badge/token/status/web-1.svg"),
    ] {
        assert!(
            routes
                .iter()
                .any(|(m, t)| (m == "ANY" || m == method) && matches(t, path)),
            "{method} {path} is not routed to the function: {routes:?}"
        );
    }
    // The matcher itself.
    assert!(matches("/v1/{proxy+}", "/v1/hosts/a"));
    assert!(!matches("/v1/{proxy+}", "/v1"));
    assert!(!matches("/healthz", "/healthz/x"));
    assert!(!matches("/status/{group}", "/status/a/b"));
}
