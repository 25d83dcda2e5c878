//! Channel settings: what a `[[channels]]` entry (or one of the legacy
//! single-channel sections `[smtp]`, `[sns]`, `[webhook]`) says, checked
//! once at start. Plain data, compiled whatever channel features are on,
//! so a configuration can be read and refused before anything is built;
//! [`ChannelBuilder`](crate::ChannelBuilder) turns it into channels.

use std::fmt;

use serde::Deserialize;

use crate::format::{FORMATS, WebhookFormat};

pub use iamalive_core::settings::{Secret, SettingError};

/// One configured channel: the user's name for it and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The channel's name: unique, chosen by the user; the outbox records
    /// delivery by it and routes pick channels by it.
    pub name: String,
    /// What kind of channel, with its kind's settings.
    pub kind: ChannelKind,
}

/// A channel's kind and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelKind {
    /// One line per notice on standard output.
    Stdout,
    /// Email through an SMTP relay.
    Smtp {
        /// `smtp://user:pass@host:port` or `smtps://…` (see the README).
        url: Secret,
        /// The sender address.
        from: String,
        /// The recipients (at least one).
        to: Vec<String>,
    },
    /// A message to an Amazon SNS topic.
    Sns {
        /// The topic.
        topic_arn: String,
    },
    /// A POST to a webhook.
    Webhook {
        /// Where to POST (often itself a secret).
        url: Secret,
        /// The body's format.
        format: WebhookFormat,
        /// Signs the body (HMAC-SHA256) when set.
        secret: Option<Secret>,
    },
}

impl ChannelKind {
    /// `stdout`, `smtp`, `sns` or `webhook`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Stdout => "stdout",
            ChannelKind::Smtp { .. } => "smtp",
            ChannelKind::Sns { .. } => "sns",
            ChannelKind::Webhook { .. } => "webhook",
        }
    }
}

/// Every kind's name with the keys it takes besides `name` and `kind`.
pub const KINDS: [(&str, &[&str]); 4] = [
    ("stdout", &[]),
    ("smtp", &["url", "from", "to"]),
    ("sns", &["topic_arn"]),
    ("webhook", &["url", "format", "secret"]),
];

/// One channel as written in the configuration: every key any kind takes,
/// so an unknown key is refused by name and a key of another kind is
/// refused by [`resolve`](Self::resolve).
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelTable {
    /// The channel's name (required in `[[channels]]`).
    pub name: Option<String>,
    /// `stdout`, `smtp`, `sns` or `webhook`.
    pub kind: Option<String>,
    /// SMTP or webhook URL.
    pub url: Option<String>,
    /// SMTP sender.
    pub from: Option<String>,
    /// SMTP recipients.
    pub to: Option<Vec<String>>,
    /// SNS topic.
    pub topic_arn: Option<String>,
    /// Webhook format.
    pub format: Option<String>,
    /// Webhook signing secret.
    pub secret: Option<String>,
}

impl fmt::Debug for ChannelTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelTable")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("topic_arn", &self.topic_arn)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ChannelTable {
    /// Whether no key at all is set (a legacy section that is absent).
    pub fn is_empty(&self) -> bool {
        self.set_keys().next().is_none() && self.name.is_none() && self.kind.is_none()
    }

    fn set_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("url", self.url.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("topic_arn", self.topic_arn.is_some()),
            ("format", self.format.is_some()),
            ("secret", self.secret.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
    }

    /// Checks the entry: a name, a known kind, only that kind's keys, and
    /// every key it requires. `key` turns a key (`url`) into the name an
    /// error shows (`channels[1].url`).
    pub fn resolve(self, key: impl Fn(&str) -> String) -> Result<ChannelSettings, SettingError> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| SettingError::new(key("name"), "missing: every channel needs a name"))?;
        check_name(&name).map_err(|r| SettingError::new(key("name"), r))?;
        let kind = self.kind.clone().ok_or_else(|| {
            SettingError::new(
                key("kind"),
                "missing: give the channel's kind (stdout, smtp, sns or webhook)",
            )
        })?;
        let Some((kind, keys)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            return Err(SettingError::new(
                key("kind"),
                format!("{kind:?} is not one of stdout, smtp, sns, webhook"),
            ));
        };
        if let Some(k) = self.set_keys().find(|k| !keys.contains(k)) {
            return Err(SettingError::new(
                key(k),
                format!(
                    "not a key of a {kind} channel (its keys: name, kind{}{})",
                    if keys.is_empty() { "" } else { ", " },
                    keys.join(", ")
                ),
            ));
        }
        let missing = |k: &str, what: &str| SettingError::new(key(k), format!("missing: {what}"));
        let kind = match *kind {
            "stdout" => ChannelKind::Stdout,
            "smtp" => {
                const WHAT: &str = "SMTP needs a URL, a sender and at least one recipient";
                let url = self.url.ok_or_else(|| missing("url", WHAT))?;
                let from = self.from.ok_or_else(|| missing("from", WHAT))?;
                let to = self
                    .to
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| missing("to", WHAT))?;
                ChannelKind::Smtp {
                    url: Secret::new(url),
                    from,
                    to,
                }
            }
            "sns" => ChannelKind::Sns {
                topic_arn: self
                    .topic_arn
                    .ok_or_else(|| missing("topic_arn", "an SNS channel needs its topic's ARN"))?,
            },
            _ => {
                let url = self.url.ok_or_else(|| {
                    missing(
                        "url",
                        if self.format.is_some() || self.secret.is_some() {
                            "a webhook format or secret was given without a URL"
                        } else {
                            "a webhook channel needs its URL"
                        },
                    )
                })?;
                if let Some(reason) = two_urls(&url) {
                    return Err(SettingError::new(key("url"), reason));
                }
                let format = match self.format {
                    None => WebhookFormat::Json,
                    Some(f) => f.parse().map_err(|_| {
                        SettingError::new(
                            key("format"),
                            format!("{f:?} is not one of {}", FORMATS.join(", ")),
                        )
                    })?,
                };
                ChannelKind::Webhook {
                    url: Secret::new(url),
                    format,
                    secret: self.secret.filter(|s| !s.is_empty()).map(Secret::new),
                }
            }
        };
        Ok(ChannelSettings { name, kind })
    }
}

/// A channel name: 1 to 64 characters, letters, digits, `-`, `_`, `.`,
/// `:` (it shows in logs, metrics and the outbox).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} must be 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "{name:?} has {c:?}; use letters, digits, '-', '_', '.', ':'"
        ));
    }
    Ok(())
}

/// Why `url` is not one URL but two (`http://a/x,http://b/y`, or
/// separated by blanks), or `None`: a channel posts to one URL. Checked
/// when the settings are read, so the error names the key the URL came
/// from (`IAMALIVE_WEBHOOK_URL`), and again by the webhook channel itself.
pub fn two_urls(url: &str) -> Option<String> {
    let i = url.find(|c: char| c.is_whitespace() || c == ',')?;
    let rest = url[i + 1..].trim_start();
    rest.contains("://").then(|| {
        format!(
            "looks like two URLs ({:?} and {rest:?}); a channel posts to one URL, so configure one channel per URL",
            &url[..i],
        )
    })
}

/// The first name `channels` gives twice.
pub fn duplicate_name(channels: &[ChannelSettings]) -> Option<&str> {
    channels
        .iter()
        .enumerate()
        .find(|(i, c)| channels[..*i].iter().any(|d| d.name == c.name))
        .map(|(_, c)| c.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml_text: &str) -> ChannelTable {
        serde_json::from_value(
            serde_json::to_value(
                toml_text
                    .lines()
                    .filter_map(|l| l.split_once(" = "))
                    .map(|(k, v)| (k.trim().to_owned(), serde_json::Value::String(v.into())))
                    .collect::<serde_json::Map<_, _>>(),
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn at(k: &str) -> String {
        format!("channels[0].{k}")
    }

    #[test]
    fn each_kind_takes_its_keys() {
        let c = table("name = chat\nkind = webhook\nurl = https://x.example/h\nformat = teams")
            .resolve(at)
            .unwrap();
        assert_eq!(c.name, "chat");
        assert!(matches!(
            c.kind,
            ChannelKind::Webhook {
                format: WebhookFormat::Teams,
                secret: None,
                ..
            }
        ));
        let c = table("name = email\nkind = sns\ntopic_arn = arn:aws:sns:x")
            .resolve(at)
            .unwrap();
        assert_eq!(c.kind.as_str(), "sns");
        assert!(!format!("{:?}", table("url = smtp://u:pw@h")).contains("pw"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = |t: &str| table(t).resolve(at).unwrap_err();
        assert_eq!(e("kind = sns\ntopic_arn = a").key, "channels[0].name");
        assert_eq!(e("name = a\ntopic_arn = a").key, "channels[0].kind");
        assert_eq!(e("name = a\nkind = irc").key, "channels[0].kind");
        let bad = e("name = a\nkind = webhook\nurl = http://x\ntopic_arn = t");
        assert_eq!(bad.key, "channels[0].topic_arn");
        assert!(bad.reason.contains("webhook channel"), "{bad}");
        assert_eq!(e("name = a\nkind = sns").key, "channels[0].topic_arn");
        assert_eq!(
            e("name = a\nkind = smtp\nurl = smtp://h\nfrom = a@b").key,
            "channels[0].to"
        );
        assert_eq!(
            e("name = a\nkind = webhook\nurl = http://x\nformat = irc").key,
            "channels[0].format"
        );
        assert_eq!(e("name = two words\nkind = stdout").key, "channels[0].name");
        // Two URLs in one are refused when read, naming the key they came
        // from; a comma inside one URL is that URL's business.
        let bad = e("name = a\nkind = webhook\nurl = http://a/x,http://b/y");
        assert_eq!(bad.key, "channels[0].url");
        assert!(bad.reason.contains("two URLs"), "{bad}");
        table("name = a\nkind = webhook\nurl = http://a/x?tags=a,b")
            .resolve(at)
            .unwrap();
    }

    #[test]
    fn duplicates_are_found() {
        let c = |n: &str| ChannelSettings {
            name: n.into(),
            kind: ChannelKind::Stdout,
        };
        assert_eq!(duplicate_name(&[c("a"), c("b"), c("a")]), Some("a"));
        assert_eq!(duplicate_name(&[c("a"), c("b")]), None);
    }
}
