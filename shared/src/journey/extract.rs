//! Finding a value in an answer by a regex or a JSONPath, each compiled once when the journey
//! is loaded (so a broken one is a mistake in the file, located, never a failure at run time).

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use serde_json_path::JsonPath;

/// A compiled regex's program may take at most this much memory: a pattern written to blow up
/// (`(a{100}){100}`) is refused at load, not left to a Lambda's 128 MB.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex as the file wrote it; a capture's has a group, and its first group is what it finds.
/// The `regex` crate matches in linear time, so a huge or hostile body cannot stall a step.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// A regex to match, with or without groups.
    pub fn any(text: &str) -> Result<Self, String> {
        RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Pattern)
            .map_err(|e| format!("regex {text:?} is invalid: {}", last_line(&e.to_string())))
    }

    /// A regex to capture with: it needs a group.
    pub fn capturing(text: &str) -> Result<Self, String> {
        let Pattern(regex) = Pattern::any(text)?;
        if regex.captures_len() < 2 {
            return Err(format!("regex {text:?} has no group: a capture takes its first group, as in \"id=(\\d+)\""));
        }
        Ok(Pattern(regex))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.0.is_match(haystack)
    }

    /// The first group of the first match where that group takes part.
    pub fn first_group<'h>(&self, haystack: &'h str) -> Option<&'h str> {
        self.0.captures_iter(haystack).find_map(|c| c.get(1)).map(|m| m.as_str())
    }
}

/// An RFC 9535 JSONPath, as the file wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    text: String,
    path: JsonPath,
}

impl Path {
    pub fn parse(text: &str) -> Result<Self, String> {
        let path = JsonPath::parse(text)
            .map_err(|e| format!("JSONPath {text:?} is invalid (RFC 9535): {}", last_line(&e.to_string())))?;
        Ok(Path { text: text.to_string(), path })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first node the path selects, in document order.
    pub fn first<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.path.query(value).first()
    }
}

/// Parser errors draw the input and a caret over several lines; a problem is one line.
fn last_line(text: &str) -> String {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or(text);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pattern_finds_its_first_group_of_the_first_match_where_it_takes_part() {
        let p = Pattern::capturing(r#"name="csrf" value="([^"]+)""#).unwrap();
        assert_eq!(p.first_group(r#"<input name="csrf" value="abc123"><input name="csrf" value="z">"#), Some("abc123"));
        assert_eq!(p.first_group("nothing"), None);
        let alternation = Pattern::capturing(r"a=x|b=(\d+)").unwrap();
        assert_eq!(alternation.first_group("a=x b=7"), Some("7"), "a match without the group is passed over");
    }

    #[test]
    fn a_pattern_without_a_group_or_invalid_or_too_big_is_refused_in_one_line() {
        assert!(Pattern::capturing(r"\d+").unwrap_err().contains("has no group"));
        let invalid = Pattern::capturing("id=(").unwrap_err();
        assert_eq!(invalid, "regex \"id=(\" is invalid: unclosed group");
        let big = Pattern::capturing(r"((a{100}){100}){100}(x)").unwrap_err();
        assert!(big.contains("is invalid") && !big.contains('\n'), "{big}");
    }

    #[test]
    fn a_path_selects_the_first_element_that_matches() {
        let p = Path::parse("$.items[?@.name == 'Kettle'].id").unwrap();
        let body =
            json!({"items": [{"name": "Mug", "id": 1}, {"name": "Kettle", "id": 2}, {"name": "Kettle", "id": 3}]});
        assert_eq!(p.first(&body), Some(&json!(2)));
        assert_eq!(p.first(&json!({"items": []})), None);
        let invalid = Path::parse("$.items[?@.name ==").unwrap_err();
        assert!(invalid.starts_with("JSONPath \"$.items[?@.name ==\" is invalid") && !invalid.contains('\n'));
        assert!(Path::parse("items").is_err(), "a JSONPath starts at $");
    }
}
