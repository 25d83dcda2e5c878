//! Keys out of logs: the one function every logged request path goes through.

/// The longest path written to a log, in characters; the rest is cut.
const MAX_LOGGED_PATH: usize = 256;

/// How often percent-encoding is undone (`%252F` is `%2F` encoded again).
const DECODE_ROUNDS: usize = 4;

/// The request path as it may be logged: percent-decoded, with the segment
/// after any `ping` or `badge` segment (any case, any encoding, after doubled slashes
/// or backslashes) replaced by `<key>`, control characters escaped, and cut
/// at 256 characters.
///
/// `/ping/KEY/web-1`, `//ping/KEY/web-1`, `/Ping/KEY/…`, `/ping%2FKEY/…`,
/// `/%70ing/KEY/…` and `/ping//KEY` all log as `…/ping/<key>/…`.
pub(crate) fn redact_path(path: &str) -> String {
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..DECODE_ROUNDS {
        let decoded = percent_decode(&bytes);
        if decoded == bytes {
            break;
        }
        bytes = decoded;
    }
    let text = String::from_utf8_lossy(&bytes);
    let segments: Vec<&str> = text.split(['/', '\\']).collect();
    let mut out = String::with_capacity(text.len().min(MAX_LOGGED_PATH) + 8);
    let mut after_ping = false;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if after_ping && !seg.is_empty() {
            out.push_str("<key>");
            after_ping = false;
            continue;
        }
        if is_ping(seg) {
            after_ping = true;
        }
        push_escaped(&mut out, seg);
    }
    if out.chars().count() > MAX_LOGGED_PATH {
        out = out.chars().take(MAX_LOGGED_PATH).collect();
        out.push('…');
    }
    out
}

/// `ping` (or `badge`, whose next segment is a badge token) in any case,
/// with anything after a `;` or surrounding blanks ignored.
fn is_ping(segment: &str) -> bool {
    let s = segment.split(';').next().unwrap_or_default().trim();
    s.eq_ignore_ascii_case("ping") || s.eq_ignore_ascii_case("badge")
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_path;

    const KEY: &str = "s3cret-key-0123456789";

    #[test]
    fn keys_after_ping_never_survive() {
        for path in [
            format!("/ping/{KEY}/web-1"),
            format!("//ping/{KEY}/web-1"),
            format!("/Ping/{KEY}/web-1"),
            format!("/PING/{KEY}/web-1/fail"),
            format!("/ping%2F{KEY}/web-1"),
            format!("/ping%2f{KEY}%2Fweb-1"),
            format!("/ping%252F{KEY}/web-1"),
            format!("/%70ing/{KEY}/web-1"),
            format!("/%50%49%4E%47/{KEY}"),
            format!("/ping//{KEY}/web-1"),
            format!("/ping\\{KEY}/web-1"),
            format!("/ping%5C{KEY}/web-1"),
            format!("/ping;x=1/{KEY}/web-1"),
            format!("/api/v0/ping/{KEY}"),
            format!("/ping/{}/web-1", KEY.replace('-', "%2D")),
        ] {
            let logged = redact_path(&path);
            assert!(!logged.contains("s3cret"), "{path} logged as {logged}");
            assert!(logged.contains("<key>"), "{path} logged as {logged}");
        }
    }

    #[test]
    fn other_paths_are_kept_readable_and_safe() {
        assert_eq!(redact_path("/v1/hosts/web-1"), "/v1/hosts/web-1");
        assert_eq!(redact_path("/ping/k/web-1/fail"), "/ping/<key>/web-1/fail");
        assert_eq!(redact_path("/ping"), "/ping");
        assert_eq!(
            redact_path("/badge/0123abcd/host/web-1.svg"),
            "/badge/<key>/host/web-1.svg"
        );
        assert_eq!(redact_path("/pingpong/x"), "/pingpong/x");
        // A decoded newline cannot forge a second log line.
        assert_eq!(redact_path("/a%0Ab"), "/a\\nb");
        let long = format!("/{}", "x".repeat(1000));
        assert_eq!(redact_path(&long).chars().count(), 257);
    }
}
