#![doc = include_str!("../README.md")]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

mod table;

/// Exit statuses a script can rely on.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// The server answered with an error not listed below (a 5xx other
    /// than 503, an answer that is not the API's).
    pub const FAILED: u8 = 1;
    /// The command line or a local setting is wrong (no key, a bad
    /// `--from`); nothing was sent.
    pub const USAGE: u8 = 2;
    /// The host or silence does not exist (404).
    pub const NOT_FOUND: u8 = 3;
    /// The key is missing, wrong, or may not do this (401, 403).
    pub const DENIED: u8 = 4;
    /// The server could not be reached, timed out, or is unavailable
    /// (503): trying again later may work.
    pub const UNAVAILABLE: u8 = 5;
    /// The server refused the request as invalid (400, 409, 422, 429).
    pub const REFUSED: u8 = 6;
}

/// How to reach the watcher; flattened into the binary's arguments.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// The watcher's base URL.
    #[arg(
        long,
        env = "IAMALIVE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// An admin API key.
    #[arg(
        long,
        env = "IAMALIVE_KEY",
        hide_env_values = true,
        global = true,
        conflicts_with = "key_file"
    )]
    pub key: Option<String>,
    /// A file holding the API key (surrounding whitespace is ignored).
    #[arg(long, env = "IAMALIVE_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// How long to wait for each request to the watcher before giving up
    /// (`10s`, `500ms`). Not a host's timeout: `policy --host-timeout`
    /// sets that.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = humantime::parse_duration,
        global = true
    )]
    pub timeout: Duration,
}

/// The client subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Every host, problems first: status, last seen, silent for, and the
    /// pause or silence holding its notices back.
    Hosts {
        /// Print the hosts as a JSON array (the API's view of each).
        #[arg(long)]
        json: bool,
    },
    /// One host in detail.
    Host {
        /// The host id.
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Silences: hold notices back for hosts matching a pattern.
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Pause monitoring of a host (until resumed, or for a while).
    Pause {
        /// The host id.
        host: String,
        /// Resume by itself after this long (`2h`, `30m`).
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        for_: Option<Duration>,
    },
    /// Resume monitoring of a paused host, with a full timeout from now.
    Resume {
        /// The host id.
        host: String,
    },
    /// Set a host's own policy, stored with it so every watcher on the
    /// store applies it (it wins over the configuration's policy for the
    /// host): a cron schedule (`--schedule "0 2 * * *" --tz Europe/Berlin
    /// --grace 30m`), or a fixed `--host-timeout`; `--clear` forgets it. The
    /// host is created if unknown.
    Policy {
        /// The host id.
        host: String,
        /// A cron expression (5 fields, or 6 with seconds first): the job
        /// is missing when the run due at a tick has not succeeded by tick
        /// + grace.
        #[arg(long, conflicts_with_all = ["host_timeout", "clear"])]
        schedule: Option<String>,
        /// The schedule's IANA time zone [default: UTC].
        #[arg(long, requires = "schedule")]
        tz: Option<String>,
        /// How long after a tick its run may still succeed [default: 1h].
        #[arg(long, requires = "schedule", value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
        /// How long the host may stay silent before it is missing (`10m`):
        /// a fixed timeout instead of a schedule. Not the global
        /// `--timeout`, which bounds each request to the watcher.
        #[arg(
            long,
            value_name = "DURATION",
            value_parser = humantime::parse_duration,
            conflicts_with = "clear"
        )]
        host_timeout: Option<Duration>,
        /// Forget the stored policy: the configuration's applies again.
        #[arg(long)]
        clear: bool,
        /// Print the host as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a host (it is created again by its next heartbeat when
    /// auto-registration is on).
    Rm {
        /// The host id.
        host: String,
    },
}

/// `silence …`.
#[derive(Debug, Clone, Subcommand)]
pub enum SilenceCommand {
    /// Silence hosts matching a pattern (`web-*`, `db-?`, `build-01`).
    Add {
        /// The host pattern.
        pattern: String,
        /// How long (`2h`, `90m`).
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        for_: Duration,
        /// When it starts: a time of day (`19:00`, the next one to come),
        /// a local date and time (`2026-11-26 19:00`) read in --tz, or
        /// RFC 3339 [default: now].
        #[arg(long)]
        from: Option<String>,
        /// The IANA time zone of --from [default: UTC].
        #[arg(long)]
        tz: Option<String>,
        /// Why, for whoever looks later.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print the created silence as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The silences, active or to come.
    Ls {
        /// Print the API's JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a silence by id; a silent host it covered alarms at once.
    Rm {
        /// The silence id (from `silence ls`).
        id: String,
    },
}

/// A failure: the exit status and what to print on stderr.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

/// Runs `cmd`, printing results on stdout and failures on stderr as
/// `iamalive: <what went wrong>`; the exit status is one of [`exit`].
pub async fn run(cmd: Command, opts: &GlobalOpts) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let code = run_to(cmd, opts, &mut out, Utc::now()).await;
    ExitCode::from(code)
}

/// [`run`], writing results to `out` and taking `now` for local times.
async fn run_to(cmd: Command, opts: &GlobalOpts, out: &mut dyn Write, now: DateTime<Utc>) -> u8 {
    match execute(cmd, opts, now).await {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            exit::OK
        }
        Err(f) => {
            eprintln!("iamalive: {}", f.message);
            f.code
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(opts: &GlobalOpts) -> Result<Self, Failure> {
        let key = match (&opts.key, &opts.key_file) {
            (Some(k), _) => k.trim().to_owned(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map_err(|e| Failure::usage(format!("--key-file {}: {e}", p.display())))?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(Failure::usage(
                    "no API key: set IAMALIVE_KEY, or give --key or --key-file",
                ));
            }
        };
        if key.is_empty() {
            return Err(Failure::usage("the API key is empty"));
        }
        let base = opts.url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "--url {base:?}: expected an http:// or https:// URL (IAMALIVE_URL)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .user_agent(concat!("iamalive-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::usage(format!("HTTP client: {e}")))?;
        Ok(Self { http, base, key })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| Failure {
            code: exit::UNAVAILABLE,
            message: format!(
                "could not reach the watcher at {}: {}",
                self.base,
                iamalive_core::text::error_chain(&e)
            ),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| Failure {
                code: exit::FAILED,
                message: format!(
                    "{url} answered {status} with something that is not JSON; is --url the watcher?"
                ),
            });
        }
        let reason = parsed
            .as_ref()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = match status.as_u16() {
            404 => exit::NOT_FOUND,
            401 | 403 => exit::DENIED,
            503 => exit::UNAVAILABLE,
            400 | 409 | 413 | 422 | 429 => exit::REFUSED,
            _ => exit::FAILED,
        };
        Err(Failure {
            code,
            message: format!("{reason} ({})", status.as_u16()),
        })
    }
}

/// A host id or silence id as one URL path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

async fn execute(cmd: Command, opts: &GlobalOpts, now: DateTime<Utc>) -> Result<String, Failure> {
    use reqwest::Method;
    // Local input is checked before anything is sent.
    let start = match &cmd {
        Command::Silence(SilenceCommand::Add {
            from: Some(f), tz, ..
        }) => Some(resolve_from(f, tz.as_deref(), now).map_err(Failure::usage)?),
        _ => None,
    };
    let c = Client::new(opts)?;
    match cmd {
        Command::Hosts { json } => {
            let mut hosts = Vec::new();
            let mut after: Option<String> = None;
            // Bounded: a page of up to 1000 hosts per call, at most a
            // million hosts.
            for _ in 0..1000 {
                let path = match &after {
                    Some(a) => format!("/v1/hosts?limit=1000&after={}", segment(a)),
                    None => "/v1/hosts?limit=1000".to_owned(),
                };
                let page = c.call(Method::GET, &path, None).await?;
                hosts.extend(page["hosts"].as_array().cloned().unwrap_or_default());
                match page["next_after"].as_str() {
                    Some(a) => after = Some(a.to_owned()),
                    None => break,
                }
            }
            if json {
                return Ok(pretty(&Value::Array(hosts)));
            }
            Ok(table::hosts(&hosts, now))
        }
        Command::Host { id, json } => {
            let v = c
                .call(Method::GET, &format!("/v1/hosts/{}", segment(&id)), None)
                .await?;
            if json {
                return Ok(pretty(&v));
            }
            Ok(table::host(&v, now))
        }
        Command::Silence(SilenceCommand::Add {
            pattern,
            for_,
            tz,
            reason,
            json,
            ..
        }) => {
            let mut body = json!({
                "hosts": pattern,
                "for": humantime::format_duration(for_).to_string(),
                "reason": reason,
            });
            if let Some(s) = start {
                body["starts_at"] = json!(s.to_rfc3339());
            }
            if let Some(tz) = tz {
                body["tz"] = json!(tz);
            }
            let v = c.call(Method::POST, "/v1/silences", Some(body)).await?;
            if json {
                return Ok(pretty(&v));
            }
            Ok(format!(
                "silence {} for {} from {} until {}\n",
                v["id"].as_str().unwrap_or("?"),
                v["hosts"].as_str().unwrap_or("?"),
                table::when(&v["starts_at"], now),
                table::when(&v["ends_at"], now),
            ))
        }
        Command::Silence(SilenceCommand::Ls { json }) => {
            let v = c.call(Method::GET, "/v1/silences", None).await?;
            let list = v["silences"].as_array().cloned().unwrap_or_default();
            if json {
                return Ok(pretty(&Value::Array(list)));
            }
            Ok(table::silences(&list, now))
        }
        Command::Silence(SilenceCommand::Rm { id }) => {
            c.call(
                Method::DELETE,
                &format!("/v1/silences/{}", segment(&id)),
                None,
            )
            .await?;
            Ok(format!("removed silence {id}\n"))
        }
        Command::Pause { host, for_ } => {
            let body = for_.map(|d| json!({ "for": humantime::format_duration(d).to_string() }));
            let v = c
                .call(
                    Method::POST,
                    &format!("/v1/hosts/{}/pause", segment(&host)),
                    body,
                )
                .await?;
            Ok(match v["paused_until"].as_str() {
                Some(_) => format!(
                    "paused {host} until {}\n",
                    table::when(&v["paused_until"], now)
                ),
                None => format!("paused {host} until resumed\n"),
            })
        }
        Command::Resume { host } => {
            c.call(
                Method::POST,
                &format!("/v1/hosts/{}/resume", segment(&host)),
                None,
            )
            .await?;
            Ok(format!("resumed {host}\n"))
        }
        Command::Policy {
            host,
            schedule,
            tz,
            grace,
            host_timeout,
            clear,
            json,
        } => {
            let path = format!("/v1/hosts/{}", segment(&host));
            let v = if clear {
                c.call(Method::DELETE, &format!("{path}/policy"), None)
                    .await?
            } else {
                let human = |d: Duration| humantime::format_duration(d).to_string();
                let body = match (schedule, host_timeout) {
                    (Some(cron), _) => {
                        let mut b = json!({ "schedule": cron });
                        if let Some(tz) = tz {
                            b["tz"] = json!(tz);
                        }
                        if let Some(g) = grace {
                            b["grace"] = json!(human(g));
                        }
                        b
                    }
                    (None, Some(t)) => json!({ "timeout": human(t) }),
                    (None, None) => {
                        return Err(Failure::usage(
                            "give --schedule (with --tz, --grace), --host-timeout, or --clear",
                        ));
                    }
                };
                c.call(Method::PUT, &path, Some(body)).await?
            };
            if json {
                return Ok(pretty(&v));
            }
            Ok(table::host(&v, now))
        }
        Command::Rm { host } => {
            c.call(
                Method::DELETE,
                &format!("/v1/hosts/{}", segment(&host)),
                None,
            )
            .await?;
            Ok(format!("removed {host}\n"))
        }
    }
}

/// The start of a silence: a time of day (`19:00`, `19:00:30`) is the
/// next one to come in `tz` (UTC by default); anything else is read as
/// the server reads times (RFC 3339, or a local date and time in `tz`).
fn resolve_from(from: &str, tz: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let zone: chrono_tz::Tz = tz.unwrap_or("UTC").trim().parse().map_err(|_| {
        format!(
            "--tz {:?}: not an IANA time zone such as Europe/Berlin or UTC",
            tz.unwrap_or("")
        )
    })?;
    let s = from.trim();
    if let Some(t) = ["%H:%M", "%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
    {
        let today = now.with_timezone(&zone).date_naive();
        for day in 0..3 {
            let date = today + chrono::Days::new(day);
            let Some(at) = zone.from_local_datetime(&date.and_time(t)).earliest() else {
                continue;
            };
            let at = at.with_timezone(&Utc);
            if at > now {
                return Ok(at);
            }
        }
        return Err(format!(
            "--from {s:?}: that time does not come in {zone} soon"
        ));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return zone
                .from_local_datetime(&n)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    format!("--from {s:?} does not exist in {zone} (the clocks skip it)")
                });
        }
    }
    Err(format!(
        "--from {s:?}: give a time of day (19:00), a local date and time (2026-11-26 19:00) or RFC 3339"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_time_of_day_is_the_next_one_in_the_zone() {
        // 17:00 UTC is 18:00 in Berlin (winter): 19:00 Berlin is today.
        let now = at("2026-11-26T17:00:00Z");
        assert_eq!(
            resolve_from("19:00", Some("Europe/Berlin"), now).unwrap(),
            at("2026-11-26T18:00:00Z")
        );
        // 19:00 UTC is 20:00 in Berlin: tomorrow's.
        let now = at("2026-11-26T19:00:00Z");
        assert_eq!(
            resolve_from("19:00", Some("Europe/Berlin"), now).unwrap(),
            at("2026-11-27T18:00:00Z")
        );
        assert_eq!(
            resolve_from("19:00", None, now).unwrap(),
            at("2026-11-27T19:00:00Z")
        );
        assert_eq!(
            resolve_from("2026-12-01 08:30", Some("Europe/Berlin"), now).unwrap(),
            at("2026-12-01T07:30:00Z")
        );
        assert!(resolve_from("19:00", Some("Mars/Olympus"), now).is_err());
        assert!(resolve_from("soon", None, now).is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("web-01.example"), "web-01.example");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
