//! Email through an SMTP relay (lettre, tokio, rustls).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use iamalive_core::{Notice, Notifier, NotifyError};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::ConfigError;

const CHANNEL: &str = "smtp";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// No TLS at all (`smtp://host`, port 25 by default). Only for a relay
    /// on the same host or network.
    Plain,
    /// STARTTLS is required; the mail is not sent if the relay does not
    /// offer it (`smtp://host?tls=starttls`, port 587 by default).
    StartTls,
    /// STARTTLS when offered, plain otherwise (`smtp://host?tls=opportunistic`,
    /// port 25 by default). Open to downgrade; prefer `starttls`.
    Opportunistic,
    /// TLS from the first byte (`smtps://host`, port 465 by default).
    Implicit,
}

/// Sends each notice as a plain-text email to a list of recipients.
///
/// Configured by a URL:
///
/// ```text
/// smtp://[user[:password]@]host[:port][?tls=none|starttls|opportunistic][&timeout=30s][&ca_file=/path/ca.pem]
/// smtps://[user[:password]@]host[:port][?timeout=30s][&ca_file=/path/ca.pem]
/// ```
///
/// - `smtp://` without `tls` is plain SMTP (port 25); `tls=starttls`
///   requires STARTTLS (port 587); `tls=opportunistic` upgrades when the
///   relay offers it (port 25).
/// - `smtps://` is implicit TLS (port 465).
/// - `user` and `password` are percent-decoded (`p%40ss` for `p@ss`); with
///   them the notifier authenticates (PLAIN or LOGIN).
/// - `timeout` bounds the whole delivery (connect, TLS, every command);
///   default 30 s, well under the monitor's delivery lease.
/// - `ca_file`: a PEM file whose certificate(s) are the *only* trusted
///   roots for this relay, instead of the system's (for a private CA or a
///   self-signed relay certificate). The certificate must name the host
///   given in the URL.
///
/// Any other query key is an error. The subject is [`Notice::subject`]
/// (`[iamalive] ALARM build-01`), the body [`Notice::body`], and the
/// `Message-ID` is derived from the notice id (`<build-01.1714565400000.alarm.1@iamalive>`)
/// so a redelivered notice can be recognised; every mail of one outage
/// carries `References: <outage id@iamalive>` so clients thread them.
///
/// Errors: a 5xx reply (rejected recipient, refused credentials) or an
/// unusable message is permanent; connection, TLS, timeout and 4xx replies
/// are transient. Channel name: `smtp`.
#[derive(Clone)]
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    security: SmtpSecurity,
    user: Option<String>,
    has_password: bool,
    ca_file: Option<PathBuf>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.has_password.then_some("<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn url_err(reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid("smtp url", reason)
}

fn decode(s: &str) -> Result<String, ConfigError> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| url_err("cannot decode user or password"))
}

impl SmtpNotifier {
    /// Builds the channel from an `smtp://` or `smtps://` URL (see the type
    /// docs), a sender address and one or more recipients
    /// (`ops@example.com` or `Ops <ops@example.com>`).
    pub fn from_url(url: &str, from: &str, to: &[String]) -> Result<SmtpNotifier, ConfigError> {
        let parsed = url::Url::parse(url).map_err(|e| url_err(format!("not a URL: {e}")))?;
        let implicit = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(url_err(format!(
                    "scheme {other:?} is not supported; use smtp:// or smtps://"
                )));
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| url_err("no host"))?;
        // IPv6 literals come bracketed; lettre wants them bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(parsed.path(), "" | "/") {
            return Err(url_err(format!("unexpected path {:?}", parsed.path())));
        }
        let mut security = if implicit {
            SmtpSecurity::Implicit
        } else {
            SmtpSecurity::Plain
        };
        let mut timeout = DEFAULT_TIMEOUT;
        let mut ca_file = None;
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "tls" if implicit => {
                    return Err(url_err("smtps:// is always TLS; drop the tls parameter"));
                }
                "tls" => {
                    security = match &*v {
                        "none" | "plain" => SmtpSecurity::Plain,
                        "starttls" => SmtpSecurity::StartTls,
                        "opportunistic" => SmtpSecurity::Opportunistic,
                        other => {
                            return Err(url_err(format!(
                                "tls={other:?}: expected none, starttls or opportunistic"
                            )));
                        }
                    }
                }
                "timeout" => timeout = crate::parse_duration("smtp url timeout", &v)?,
                "ca_file" => ca_file = Some(PathBuf::from(&*v)),
                other => {
                    return Err(url_err(format!(
                        "unknown parameter {other:?} (known: tls, timeout, ca_file)"
                    )));
                }
            }
        }
        if ca_file.is_some() && security == SmtpSecurity::Plain {
            return Err(url_err("ca_file given but the connection is not TLS"));
        }
        let port = parsed.port().unwrap_or(match security {
            SmtpSecurity::Implicit => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Plain | SmtpSecurity::Opportunistic => 25,
        });

        let tls = if security == SmtpSecurity::Plain {
            Tls::None
        } else {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::invalid(
                        "smtp url ca_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    ConfigError::invalid(
                        "smtp url ca_file",
                        format!("{} is not a PEM certificate: {e}", path.display()),
                    )
                })?;
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            let params = b
                .build_rustls()
                .map_err(|e| url_err(format!("TLS setup failed: {e}")))?;
            match security {
                SmtpSecurity::StartTls => Tls::Required(params),
                SmtpSecurity::Opportunistic => Tls::Opportunistic(params),
                _ => Tls::Wrapper(params),
            }
        };

        let user = (!parsed.username().is_empty())
            .then(|| decode(parsed.username()))
            .transpose()?;
        let password = parsed.password().map(decode).transpose()?;
        if password.is_some() && user.is_none() {
            return Err(url_err("a password without a user name"));
        }

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(u) = &user {
            builder = builder.credentials(Credentials::new(
                u.clone(),
                password.clone().unwrap_or_default(),
            ));
        }

        let from: Mailbox = from.parse().map_err(|e| {
            ConfigError::invalid("smtp from", format!("{from:?} is not an address: {e}"))
        })?;
        if to.is_empty() {
            return Err(ConfigError::invalid("smtp to", "no recipient given"));
        }
        let to = to
            .iter()
            .map(|t| {
                t.trim().parse::<Mailbox>().map_err(|e| {
                    ConfigError::invalid("smtp to", format!("{t:?} is not an address: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(SmtpNotifier {
            transport: builder.build(),
            host,
            port,
            security,
            user,
            has_password: password.is_some(),
            ca_file,
            from,
            to,
            timeout,
        })
    }

    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// The bound on one delivery.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The email `notice` becomes.
    pub fn message(&self, notice: &Notice) -> Result<Message, NotifyError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(notice.subject())
            .message_id(Some(message_id(&notice.id)))
            .references(message_id(&format!("outage.{}", notice.outage_id)))
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.body(notice.body())
            .map_err(|e| NotifyError::permanent(CHANNEL, format!("cannot build the email: {e}")))
    }
}

/// `<build-01.1714565400000.alarm.1@iamalive>` for `build-01@1714565400000/alarm/1`:
/// host ids are `[a-z0-9._-]`, so the mapping keeps ids apart.
fn message_id(id: &str) -> String {
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@iamalive>")
}

fn classify(e: &lettre::transport::smtp::Error) -> NotifyError {
    let reason = crate::describe_chain(e);
    if e.is_permanent() || e.is_client() {
        NotifyError::permanent(CHANNEL, reason)
    } else {
        NotifyError::transient(CHANNEL, reason)
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn check(&self) -> Result<(), NotifyError> {
        match tokio::time::timeout(self.timeout, self.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(NotifyError::transient(
                CHANNEL,
                "the relay did not answer NOOP",
            )),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(NotifyError::transient(
                CHANNEL,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        let msg = self.message(notice)?;
        match tokio::time::timeout(self.timeout, self.transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(NotifyError::transient(
                CHANNEL,
                format!(
                    "no answer from {}:{} within {:?}",
                    self.host, self.port, self.timeout
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> Vec<String> {
        vec!["ops@example.com".into()]
    }

    #[test]
    fn url_scheme() {
        let n = SmtpNotifier::from_url("smtp://mail.example.com", "a@b.c", &to()).unwrap();
        assert_eq!((n.security(), n.port), (SmtpSecurity::Plain, 25));
        let n =
            SmtpNotifier::from_url("smtp://mail.example.com?tls=starttls", "a@b.c", &to()).unwrap();
        assert_eq!((n.security(), n.port), (SmtpSecurity::StartTls, 587));
        let n =
            SmtpNotifier::from_url("smtps://u:p%40ss@mail.example.com", "a@b.c", &to()).unwrap();
        assert_eq!((n.security(), n.port), (SmtpSecurity::Implicit, 465));
        assert_eq!(n.user.as_deref(), Some("u"));
        let n = SmtpNotifier::from_url(
            "smtp://mail.example.com:2525?tls=opportunistic&timeout=5s",
            "a@b.c",
            &to(),
        )
        .unwrap();
        assert_eq!(n.port, 2525);
        assert_eq!(n.timeout(), Duration::from_secs(5));
    }

    #[test]
    fn bad_settings_are_named() {
        let e = |u: &str| {
            SmtpNotifier::from_url(u, "a@b.c", &to())
                .unwrap_err()
                .to_string()
        };
        assert!(e("http://x").contains("scheme"));
        assert!(e("smtp://x?tsl=starttls").contains("unknown parameter \"tsl\""));
        assert!(e("smtp://x?tls=yes").contains("tls="));
        assert!(e("smtps://x?tls=starttls").contains("always TLS"));
        assert!(e("smtp://x?timeout=soon").contains("timeout"));
        assert!(e("smtp://x?tls=starttls&ca_file=/nonexistent.pem").contains("ca_file"));
        let e = SmtpNotifier::from_url("smtp://x", "not an address", &to()).unwrap_err();
        assert!(e.to_string().starts_with("smtp from"));
        let e = SmtpNotifier::from_url("smtp://x", "a@b.c", &[]).unwrap_err();
        assert!(e.to_string().starts_with("smtp to"));
    }

    #[test]
    fn debug_redacts_the_password() {
        let n = SmtpNotifier::from_url("smtp://joe:hunter2@x", "a@b.c", &to()).unwrap();
        let d = format!("{n:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("joe") && d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn message_ids_are_valid_and_distinct() {
        assert_eq!(
            message_id("build-01@1714565400000/alarm/1"),
            "<build-01.1714565400000.alarm.1@iamalive>"
        );
        assert_ne!(message_id("a@1/alarm/1"), message_id("a@1/alarm/2"));
    }
}
