//! Which HTTP proxy, if any, carries the heartbeats.

use std::fmt;

use reqwest::Url;

use crate::agent::AgentError;

/// Where the proxy setting comes from.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// The usual environment variables, as curl reads them: `HTTPS_PROXY`
    /// (for an `https://` watcher) or `HTTP_PROXY` (for `http://`), else
    /// `ALL_PROXY`, lower-case spellings too, unless `NO_PROXY` names the
    /// watcher's host.
    #[default]
    FromEnv,
    /// No proxy, whatever the environment says (`--no-proxy`).
    Off,
    /// This proxy for every request (`--proxy`); the environment is ignored.
    Url(Url),
}

impl fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyChoice::FromEnv => f.write_str("FromEnv"),
            ProxyChoice::Off => f.write_str("Off"),
            ProxyChoice::Url(u) => f.debug_tuple("Url").field(&redacted(u)).finish(),
        }
    }
}

/// Parses a `--proxy` value: `http://host:port` (also `https://` for a
/// TLS proxy); a bare `host:port` means `http://host:port`. Credentials
/// may be given as `http://user:password@host:port`.
pub fn parse_proxy(s: &str) -> Result<Url, AgentError> {
    let s = s.trim();
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let u =
        Url::parse(&with_scheme).map_err(|e| AgentError::Config(format!("--proxy {s:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(AgentError::Config(format!(
            "--proxy {s:?}: expected http://host:port or https://host:port"
        )));
    }
    Ok(u)
}

/// The proxy URL as it may be logged and reported: without a path, with
/// any user name and password replaced by `***`.
pub fn redacted(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default();
    let creds = if u.username().is_empty() && u.password().is_none() {
        ""
    } else {
        "***@"
    };
    match u.port_or_known_default() {
        Some(p) => format!("{}://{creds}{host}:{p}", u.scheme()),
        None => format!("{}://{creds}{host}", u.scheme()),
    }
}

/// The proxy that `choice` gives for requests to `target`, or `None` for a
/// direct connection. For [`ProxyChoice::FromEnv`] this applies the same
/// rules (the same code) as the HTTP client would, once, so the agent knows
/// which proxy its requests go through and can name it.
pub fn resolve(choice: &ProxyChoice, target: &Url) -> Result<Option<Url>, AgentError> {
    match choice {
        ProxyChoice::Off => Ok(None),
        ProxyChoice::Url(u) => Ok(Some(u.clone())),
        ProxyChoice::FromEnv => {
            let uri: http::Uri = target
                .as_str()
                .parse()
                .map_err(|e| AgentError::Config(format!("--url {target}: {e}")))?;
            let Some(found) =
                hyper_util::client::proxy::matcher::Matcher::from_env().intercept(&uri)
            else {
                return Ok(None);
            };
            let mut u = Url::parse(&found.uri().to_string())
                .map_err(|e| AgentError::Config(format!("the proxy in the environment: {e}")))?;
            if let Some((user, pass)) = env_credentials(target) {
                let _ = u.set_username(&user);
                let _ = u.set_password(pass.as_deref());
            }
            Ok(Some(u))
        }
    }
}

/// The user name and password in the environment's proxy URL for `target`
/// (percent-encoded, as written), read with the same precedence as the
/// matcher; it hands them out only as a ready-made header.
fn env_credentials(target: &Url) -> Option<(String, Option<String>)> {
    let first = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
    let raw = match target.scheme() {
        "https" => first(&["HTTPS_PROXY", "https_proxy"]),
        _ => first(&["HTTP_PROXY", "http_proxy"]),
    }
    .filter(|s| !s.trim().is_empty())
    .or_else(|| first(&["ALL_PROXY", "all_proxy"]))?;
    let u = parse_proxy(&raw).ok()?;
    if u.username().is_empty() && u.password().is_none() {
        return None;
    }
    Some((u.username().to_owned(), u.password().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_redaction() {
        let u = parse_proxy("proxy.corp:3128").unwrap();
        assert_eq!(u.as_str(), "http://proxy.corp:3128/");
        assert_eq!(redacted(&u), "http://proxy.corp:3128");
        let u = parse_proxy("http://alice:s3cret@10.0.0.1:8080/").unwrap();
        let shown = redacted(&u);
        assert_eq!(shown, "http://***@10.0.0.1:8080");
        assert!(!format!("{:?}", ProxyChoice::Url(u)).contains("s3cret"));
        assert_eq!(
            redacted(&parse_proxy("https://[::1]").unwrap()),
            "https://[::1]:443"
        );
        assert!(parse_proxy("ftp://p:21").is_err());
        assert!(parse_proxy("http://").is_err());
    }

    #[test]
    fn explicit_choices_ignore_the_environment() {
        let target = Url::parse("https://watch.example/v1/heartbeat").unwrap();
        assert_eq!(resolve(&ProxyChoice::Off, &target).unwrap(), None);
        let p = parse_proxy("127.0.0.1:3128").unwrap();
        assert_eq!(
            resolve(&ProxyChoice::Url(p.clone()), &target).unwrap(),
            Some(p)
        );
    }
}
