//! Text shaping shared by results, alerts and the PagerDuty forwarder.

/// Collapses every run of whitespace, newlines included, into one space.
pub fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// At most `max_chars` characters, cut at a char boundary and marked with `…` when cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some(_) if max_chars == 0 => String::new(),
        Some(_) => {
            let keep = text.char_indices().nth(max_chars - 1).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..keep])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("  a\n\tb \r\n c "), "a b c");
    }

    #[test]
    fn truncate_respects_char_boundaries_and_limit() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 4), "abc…");
        let multibyte = "é".repeat(2000);
        let cut = truncate(&multibyte, 1024);
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("abc", 0), "");
    }
}
