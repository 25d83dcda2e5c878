//! Bounding text for people and for storage: the one place a string is
//! cut without splitting a character.

/// Cuts `s` in place to at most `max` bytes, at a character boundary.
pub fn cut_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `s` in at most `max` bytes, the cut marked with `…` (which counts
/// toward `max`): for fields with a byte limit, such as a subject line.
pub fn cut_bytes_marked(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut out = s.to_owned();
    cut_bytes(&mut out, max.saturating_sub('…'.len_utf8()));
    out.push('…');
    out
}

/// `s` cut to its first `max` characters, the cut marked with a `…` after
/// them: for text people read.
pub fn cut_chars_marked(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// An error and every error under it on one line, joined by `: ` (what a
/// client library reports is often only the outermost layer). A layer
/// whose text its outer layer already shows (lettre's SMTP errors repeat
/// the server's answer) is not said twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !text.is_empty() && !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_one_line() {
        let io = std::io::Error::other("connection refused");
        let outer = std::io::Error::other(io);
        assert_eq!(error_chain(&outer), "connection refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("dns error"));
        assert_eq!(error_chain(&e), "request failed: dns error");
        // An outer layer that already shows its source's text.
        #[derive(Debug)]
        struct Says(std::io::Error);
        impl std::fmt::Display for Says {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "permanent error (550): {}", self.0)
            }
        }
        impl std::error::Error for Says {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Says(std::io::Error::other("5.7.1 quota exceeded"));
        assert_eq!(
            error_chain(&e),
            "permanent error (550): 5.7.1 quota exceeded"
        );
    }

    #[test]
    fn cuts_keep_characters_whole() {
        let mut s = "ééé".to_owned();
        cut_bytes(&mut s, 5);
        assert_eq!(s, "éé");
        let mut s = "abc".to_owned();
        cut_bytes(&mut s, 3);
        assert_eq!(s, "abc");
        assert_eq!(cut_bytes_marked("abc", 3), "abc");
        assert_eq!(cut_bytes_marked("abcdef", 5), "ab…");
        assert!(cut_bytes_marked("ééééé", 6).len() <= 6);
        assert_eq!(cut_chars_marked("ééé", 3), "ééé");
        assert_eq!(cut_chars_marked("éééé", 3), "ééé…");
    }
}
