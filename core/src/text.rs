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

#[cfg(test)]
mod tests {
    use super::*;

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
