//! Which key of a journey file a byte offset falls in (`steps[1].capture.token.json`), so a
//! problem reported at a span can also name its key for tools (`synthetic validate --format json`).
//!
//! The tree of spans is indexed once per file and each lookup descends it by binary search: a
//! file with tens of thousands of mistakes is located in one pass, as its lines are.

use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) struct KeyIndex {
    root: Level,
}

/// One table's entries or one array's items, sorted by where they start.
#[derive(Default)]
struct Level {
    entries: Vec<Entry>,
}

struct Entry {
    span: Range<usize>,
    name: Segment,
    inner: Option<Level>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl KeyIndex {
    pub(crate) fn new(document: &Spanned<DeTable<'_>>) -> Self {
        KeyIndex { root: table_level(document.get_ref()) }
    }

    /// The dotted key at `offset`: `""` when it falls outside every key (the file as a whole).
    pub(crate) fn key_at(&self, offset: usize) -> String {
        let mut path = String::new();
        let mut level = &self.root;
        loop {
            let after = level.entries.partition_point(|e| e.span.start <= offset);
            let Some(entry) = after.checked_sub(1).map(|i| &level.entries[i]) else { break };
            if !entry.span.contains(&offset) {
                break;
            }
            match &entry.name {
                Segment::Key(key) if path.is_empty() => path.push_str(key),
                Segment::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
            match &entry.inner {
                Some(inner) => level = inner,
                None => break,
            }
        }
        path
    }
}

impl Level {
    /// From its first entry's start to its last one's end.
    fn span(&self) -> Option<Range<usize>> {
        let start = self.entries.iter().map(|e| e.span.start).min()?;
        let end = self.entries.iter().map(|e| e.span.end).max()?;
        Some(start..end)
    }
}

/// A `[table]` or `[[array]]` item's own span is its header: what it holds is written below, so
/// an entry covers its key, its value and everything inside.
fn covering(spans: impl Iterator<Item = Range<usize>>) -> Range<usize> {
    spans.reduce(|a, b| a.start.min(b.start)..a.end.max(b.end)).unwrap_or(0..0)
}

fn table_level(table: &DeTable<'_>) -> Level {
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(key, value)| {
            let inner = inner_level(value.get_ref());
            Entry {
                span: covering([key.span(), value.span()].into_iter().chain(inner.as_ref().and_then(Level::span))),
                name: Segment::Key(key.get_ref().to_string()),
                inner,
            }
        })
        .collect();
    entries.sort_by_key(|e| e.span.start);
    Level { entries }
}

fn inner_level(value: &DeValue<'_>) -> Option<Level> {
    match value {
        DeValue::Table(table) => Some(table_level(table)),
        DeValue::Array(items) => {
            let mut entries: Vec<Entry> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let inner = inner_level(item.get_ref());
                    let span = covering(std::iter::once(item.span()).chain(inner.as_ref().and_then(Level::span)));
                    Entry { span, name: Segment::Index(i), inner }
                })
                .collect();
            entries.sort_by_key(|e| e.span.start);
            Some(Level { entries })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::journey::file::JourneyDef;
    use proptest::prelude::*;

    fn keys(source: &str) -> Vec<(usize, String)> {
        let problems = JourneyDef::parse(source).expect_err("the journey has mistakes");
        problems.0.into_iter().map(|p| (p.line, p.key)).collect()
    }

    #[test]
    fn each_problem_names_the_key_it_is_at() {
        let source = r#"check = "k"
colour = "blue"
[defaults]
fail_after_ms = 0
[[steps]]
name = "login"
role = "login"
path = "/login"
expect_status = 999
capture = { token = { json = "data" } }
retries = 3
[[steps]]
name = "me"
path = "/me"
bearer = "{{session}}"
assert = [{ json = "/a", equals = 1 }, { json = "/b", shout = true }]
"#;
        assert_eq!(
            keys(source),
            vec![
                (2, "colour".to_string()),
                (4, "defaults.fail_after_ms".to_string()),
                (9, "steps[0].expect_status".to_string()),
                (10, "steps[0].capture.token.json".to_string()),
                (11, "steps[0].retries".to_string()),
                (15, "steps[1].bearer".to_string()),
                // The assertion as a whole names no test, and its unknown key is one.
                (16, "steps[1].assert[1]".to_string()),
                (16, "steps[1].assert[1].shout".to_string()),
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_what_it_can_and_never_panics() {
        for source in ["check = ", "[[steps]]\nname = \"a\"\npath = /x", "\u{0}", "a.b.c = 1\n[a]\nb = 2"] {
            let _ = JourneyDef::parse(source).map(|_| ()).map_err(|p| p.0.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Wherever an unknown key is put among generated steps, its problem names it there.
        #[test]
        fn an_unknown_key_is_named_at_its_step(steps in 1usize..6, at in any::<prop::sample::Index>(), key in "x[a-z_]{1,10}", inline in any::<bool>()) {
            let at = at.index(steps);
            let mut source = String::from("check = \"k\"\n");
            for i in 0..steps {
                if inline {
                    let extra = if i == at { format!(", {key} = 1") } else { String::new() };
                    source.push_str(&format!("[[steps]]\nname = \"s{i}\"\npath = \"/s\"\nassert = [{{ json = \"/a\", exists = true{extra} }}]\n"));
                } else {
                    source.push_str(&format!("[[steps]]\nname = \"s{i}\"\npath = \"/s\"\n"));
                    if i == at {
                        source.push_str(&format!("{key} = true\n"));
                    }
                }
            }
            let expected = if inline { format!("steps[{at}].assert[0].{key}") } else { format!("steps[{at}].{key}") };
            let found = keys(&source);
            prop_assert_eq!(found.len(), 1, "{:?}", found);
            prop_assert_eq!(&found[0].1, &expected);
        }
    }
}
