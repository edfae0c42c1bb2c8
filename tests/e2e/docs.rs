//! The docs kept true. Every Markdown file of the repository is read as CommonMark and held to
//! four promises:
//! - every relative link resolves, to a file and, with a `#fragment`, to one of its headings;
//! - every fenced `toml` journey passes `synthetic validate`'s checks (a block that is not a
//!   whole journey says so in its info string: ```` ```toml fragment ````);
//! - every `synthetic ...` command line shown parses with the CLI's own argument parser (a
//!   command in running text may leave out required arguments, never use unknown ones);
//! - every environment variable the code reads is in a `| Variable |` table of the docs, and every
//!   variable such a table lists is read by the code (or by the platform, listed below).

use clap::Parser;
use clap::error::ErrorKind;
use pulldown_cmark::{CodeBlockKind, Event, Options, Tag, TagEnd};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use synthetic_cli::Cli;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the workspace")
}

/// Read by a library or set by the platform, documented without our code reading it.
const READ_ELSEWHERE: &[&str] = &[
    // The AWS SDK's own configuration, documented for pointing it at moto or a fake.
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CODEDEPLOY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
];

/// Set by Lambda in every function's environment (AWS documents them); read, never configured.
fn set_by_lambda(name: &str) -> bool {
    name.starts_with("AWS_LAMBDA_") || name == "USER"
}

struct Doc {
    path: PathBuf,
    text: String,
}

impl Doc {
    fn shown(&self) -> String {
        self.path.strip_prefix(workspace()).unwrap_or(&self.path).display().to_string()
    }

    fn events(&self) -> impl Iterator<Item = Event<'_>> {
        pulldown_cmark::Parser::new_ext(&self.text, Options::ENABLE_TABLES)
    }
}

static DOCS: LazyLock<Vec<Doc>> = LazyLock::new(|| {
    let mut found = Vec::new();
    collect_markdown(&workspace(), &mut found);
    found.sort();
    assert!(found.iter().any(|p| p.ends_with("README.md")), "the README is read");
    found.into_iter().map(|path| Doc { text: std::fs::read_to_string(&path).expect("readable"), path }).collect()
});

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || matches!(name.as_str(), "target" | "node_modules") {
            continue;
        }
        if path.is_dir() {
            collect_markdown(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces as '-', repeats numbered.
fn anchors(doc: &Doc) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in doc.events() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) if heading.is_some() => {
                heading.as_mut().expect("in a heading").push_str(&t)
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = heading.take().unwrap_or_default();
                let slug: String = text
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect();
                let n = seen.entry(slug.clone()).or_insert(0);
                out.insert(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
                *n += 1;
            }
            _ => {}
        }
    }
    // Explicit anchors (<a id="...">, <a name="...">) count too.
    static ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"<a (?:id|name)="([^"]+)""#).expect("regex"));
    out.extend(ID.captures_iter(&doc.text).map(|c| c[1].to_string()));
    out
}

#[test]
fn every_relative_link_resolves() {
    let by_path: BTreeMap<PathBuf, &Doc> = DOCS.iter().map(|d| (d.path.clone(), d)).collect();
    let mut broken = Vec::new();
    for doc in DOCS.iter() {
        for event in doc.events() {
            let (Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. })) = event else {
                continue;
            };
            let url = dest_url.to_string();
            if url.contains("://") || url.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = url.split_once('#').map_or((url.as_str(), None), |(f, a)| (f, Some(a)));
            let target =
                if file.is_empty() { doc.path.clone() } else { doc.path.parent().expect("a folder").join(file) };
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{}: {url}: no such file", doc.shown()));
                continue;
            };
            if let Some(fragment) = fragment.filter(|f| !f.is_empty() && !f.starts_with('L')) {
                match by_path.get(&target) {
                    Some(linked) if !anchors(linked).contains(fragment) => {
                        broken.push(format!("{}: {url}: no heading #{fragment} in {}", doc.shown(), linked.shown()))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

struct Block {
    doc: String,
    lang: String,
    info: String,
    text: String,
}

fn code_blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for doc in DOCS.iter() {
        let mut current: Option<Block> = None;
        for event in doc.events() {
            match event {
                Event::Start(Tag::CodeBlock(kind)) => {
                    let info = match kind {
                        CodeBlockKind::Fenced(info) => info.to_string(),
                        CodeBlockKind::Indented => String::new(),
                    };
                    let lang = info.split_whitespace().next().unwrap_or_default().to_string();
                    current = Some(Block { doc: doc.shown(), lang, info, text: String::new() });
                }
                Event::Text(t) if current.is_some() => current.as_mut().expect("in a block").text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_toml_journey_example_is_valid() {
    let dir = std::env::temp_dir().join(format!("synthetic-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let mut checked = 0;
    let mut problems = Vec::new();
    for (i, block) in code_blocks().into_iter().filter(|b| b.lang == "toml").enumerate() {
        if block.info.split_whitespace().any(|w| w == "fragment") {
            continue;
        }
        let file = dir.join(format!("example-{i}.toml"));
        std::fs::write(&file, &block.text).expect("written");
        match synthetic_cli::validate::load(&file) {
            Ok(_) => checked += 1,
            Err(lines) => problems.push(format!("a toml block of {}:\n  {}", block.doc, lines.join("\n  "))),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 1, "at least the README's journey is checked");
}

/// `synthetic ...` (or `path/to/synthetic ...`) at the start of a shell line, after a prompt or a
/// YAML `run:`, up to a redirection, a pipe or the next command.
fn command_words(line: &str) -> Option<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ").trim_start_matches("- ").trim_start_matches("run: ").trim();
    let first = line.split_whitespace().next()?;
    if first != "synthetic" && !first.ends_with("/synthetic") {
        return None;
    }
    let words = shell_words::split(&strip_comment(line)).ok()?;
    let operator = |w: &String| matches!(w.as_str(), ">" | ">>" | "<" | "|" | "||" | "&&" | ";" | "&" | "2>&1");
    Some(words.into_iter().take_while(|w| !operator(w)).collect())
}

/// The line up to a ` #` outside quotes: shell comments are not arguments.
fn strip_comment(line: &str) -> String {
    let (mut quote, mut previous) = (None, ' ');
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return line[..i].trim_end().to_string(),
            _ => {}
        }
        previous = c;
    }
    line.to_string()
}

/// A required argument may come from the environment the example sets (`STATE_TABLE`,
/// `CHECK_ENV`...), and `--help` is a fine thing to show.
fn tolerated(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::MissingRequiredArgument | ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
}

#[test]
fn every_command_line_shown_parses() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for block in code_blocks() {
        let joined = block.text.replace("\\\n", " ");
        for line in joined.lines() {
            let Some(words) = command_words(line) else { continue };
            checked += 1;
            if let Err(e) = Cli::try_parse_from(&words)
                && !tolerated(e.kind())
            {
                wrong.push(format!("{} ({} block): {line}\n    {}", block.doc, block.lang, e.kind()));
            }
        }
    }
    for doc in DOCS.iter() {
        for event in doc.events() {
            let Event::Code(code) = event else { continue };
            let Some(words) = command_words(&code) else { continue };
            checked += 1;
            // Running text shows commands in part (`synthetic canary --policy`): only what is there
            // must be right, so a flag shown without its value is given one.
            let with_value = [words.clone(), vec!["value".to_string()]].concat();
            let parsed = Cli::try_parse_from(&words).or_else(|e| match words.last() {
                Some(last) if last.starts_with("--") => Cli::try_parse_from(&with_value),
                _ => Err(e),
            });
            if let Err(e) = parsed
                && !tolerated(e.kind())
                && e.kind() != ErrorKind::MissingSubcommand
                && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                wrong.push(format!("{}: `{code}`\n    {}", doc.shown(), e.kind()));
            }
        }
    }
    assert!(wrong.is_empty(), "command lines the CLI refuses:\n{}", wrong.join("\n"));
    assert!(checked >= 5, "only {checked} command lines found");
}

/// The variables named in the first column of every `| Variable | ... |` table.
fn documented_variables() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for doc in DOCS.iter() {
        let (mut in_head, mut variable_table, mut cell, mut first_cell) = (false, false, 0, String::new());
        for event in doc.events() {
            match event {
                Event::Start(Tag::Table(_)) => variable_table = false,
                Event::Start(Tag::TableHead) => (in_head, cell) = (true, 0),
                Event::End(TagEnd::TableHead) => in_head = false,
                Event::Start(Tag::TableRow) => cell = 0,
                Event::Start(Tag::TableCell) => first_cell.clear(),
                Event::Text(t) if in_head && cell == 0 => variable_table = t.trim() == "Variable",
                Event::Code(code) if !in_head && variable_table && cell == 0 => {
                    first_cell.push_str(&format!(" {code}"))
                }
                Event::End(TagEnd::TableCell) => {
                    if !in_head && variable_table && cell == 0 {
                        out.extend(first_cell.split_whitespace().map(str::to_string));
                    }
                    cell += 1;
                }
                _ => {}
            }
        }
    }
    out
}

/// The variables the code reads by name: through the config readers, `std::env`, or clap's
/// `env = "..."`; test modules aside.
fn variables_read() -> BTreeMap<String, String> {
    static READ: LazyLock<Regex> = LazyLock::new(|| {
        // Any reader called with a NAME_LIKE_THIS: env.required("X_Y"), side("X_Y"), ...; a
        // one-word NAME only through the config readers and std::env (other calls take words
        // such as "PASS").
        Regex::new(concat!(
            r#"(?:\b[a-z_][a-z0-9_]*\(\s*|\benv\s*=\s*)"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)""#,
            r#"|\b(?:required|optional|bounded|millis|parse|var|var_os)\(\s*"([A-Z][A-Z0-9]{2,})""#,
        ))
        .expect("regex")
    });
    let mut out = BTreeMap::new();
    let mut sources = Vec::new();
    collect_rust(&workspace().join("shared/src"), &mut sources);
    collect_rust(&workspace().join("functions"), &mut sources);
    for path in sources {
        let text = std::fs::read_to_string(&path).expect("readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for found in READ.captures_iter(code) {
            let name = found.get(1).or(found.get(2)).expect("one group matches").as_str();
            out.entry(name.to_string())
                .or_insert_with(|| path.strip_prefix(workspace()).unwrap_or(&path).display().to_string());
        }
    }
    out
}

fn collect_rust(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() && name != "tests" && name != "target" {
            collect_rust(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `TARGET_<NAME>_URL` covers `TARGET_IDP_URL`.
fn covered_by(pattern: &str, name: &str) -> bool {
    if !pattern.contains('<') {
        return pattern == name;
    }
    let regex = Regex::new(r"<[^>]*>").expect("regex").replace_all(&regex::escape(pattern), "[A-Z0-9_]+").to_string();
    Regex::new(&format!("^{regex}$")).is_ok_and(|r| r.is_match(name))
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let documented = documented_variables();
    let read = variables_read();
    assert!(read.len() >= 20, "the scan finds the code's variables: {read:?}");
    let undocumented: Vec<String> = read
        .iter()
        .filter(|(name, _)| !set_by_lambda(name) && !documented.iter().any(|d| covered_by(d, name)))
        .map(|(name, file)| format!("{name} (read in {file})"))
        .collect();
    let unread: Vec<&String> = documented
        .iter()
        .filter(|d| !d.contains('<') && !read.contains_key(*d) && !READ_ELSEWHERE.contains(&d.as_str()))
        .collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "read but in no `| Variable |` table of the docs: {undocumented:#?}\ndocumented but never read: {unread:#?}"
    );
}
