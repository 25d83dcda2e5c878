//! SVG status badges, each behind its own token: an HMAC of what it shows
//! under the configured badge secret, so one badge's address reveals
//! nothing about another's and never the API key.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a badge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// One host.
    Host(&'a str),
    /// Every host of a group (`ungrouped`: the hosts without one).
    Group(&'a str),
}

impl Target<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Target::Host(_) => "host",
            Target::Group(_) => "group",
        }
    }

    fn name(&self) -> &str {
        match self {
            Target::Host(n) | Target::Group(n) => n,
        }
    }

    /// The badge's path under `token`.
    pub(crate) fn path(&self, secret: &str) -> String {
        format!(
            "/badge/{}/{}/{}.svg",
            token(secret, *self),
            self.kind(),
            self.name()
        )
    }
}

/// The token of `target`: 128 bits of HMAC-SHA256(secret, kind NUL name), hex.
pub(crate) fn token(secret: &str, target: Target<'_>) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(target.kind().as_bytes());
    mac.update(&[0]);
    mac.update(target.name().as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Whether `given` is `target`'s token, in constant time.
pub(crate) fn token_ok(secret: &str, target: Target<'_>, given: &str) -> bool {
    token(secret, target)
        .as_bytes()
        .ct_eq(given.as_bytes())
        .into()
}

/// An approximation of text width in Verdana 11px, as badge makers use.
fn width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | '.' | ',' | ':' | '\'' | '|' | '!' => 4,
            'f' | 'j' | 't' | 'r' | ' ' | '-' | '(' | ')' => 5,
            'm' | 'w' | 'M' | 'W' => 11,
            c if c.is_ascii_uppercase() => 8,
            c if c.is_ascii_digit() => 7,
            _ => 7,
        })
        .sum()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A flat two-part badge: `label` on grey, `value` on `colour`.
pub(crate) fn svg(label: &str, value: &str, colour: &str) -> String {
    let (lw, vw) = (width(label) + 12, width(value) + 12);
    let total = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><rect width="{total}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text><text x="{lx}" y="14">{label}</text><text x="{vx}" y="15" fill="#010101" fill-opacity=".3">{value}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_target_and_secret() {
        let a = token("s3cret-0123456789", Target::Host("web-1"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, token("s3cret-0123456789", Target::Host("web-2")));
        assert_ne!(a, token("s3cret-0123456789", Target::Group("web-1")));
        assert_ne!(a, token("other-secret-0123", Target::Host("web-1")));
        assert!(token_ok("s3cret-0123456789", Target::Host("web-1"), &a));
        assert!(!token_ok("s3cret-0123456789", Target::Host("web-2"), &a));
        assert!(!token_ok("s3cret-0123456789", Target::Host("web-1"), ""));
    }

    #[test]
    fn svg_escapes_its_text() {
        let s = svg("a<b", "up & running", "#2e7d32");
        assert!(s.contains("a&lt;b") && s.contains("up &amp; running"));
        assert!(!s.contains("a<b"));
    }
}
