use super::*;
use crate::journey::StepRole;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A fresh folder with these files; removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn with(files: &[(&str, &str)]) -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "catalog-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Folder(dir)
    }

    fn problems(&self) -> Vec<String> {
        let shown = format!("{}/", self.0.display());
        match Catalog::load(&self.0) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.lines().into_iter().map(|l| l.replace(&shown, "")).collect(),
        }
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn journey(name: &str, extra: &str) -> String {
    format!("check = \"{name}\"\n{extra}\n[[steps]]\nname = \"get\"\npath = \"/\"\n")
}

fn repository_checks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../checks")
}

#[test]
fn the_shipped_folder_loads_with_its_deploy_settings_and_the_engines_timeouts() {
    let catalog = Catalog::load(&repository_checks()).unwrap_or_else(|p| panic!("{p}"));
    let plan = catalog.plan();
    let row = |name: &str| plan.check(name).unwrap_or_else(|| panic!("{name} is planned"));
    let names: Vec<&str> = plan.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["auth", "health", "payment", "products", "search"]);
    // health: GET 2 x 5 s + 2 s = 12; auth: a login twice 2 x (2 x 10 + 2) = 44; products 44 + 22;
    // payment 44 + create 32 + get 22 + refund 32 + one replay of 15 = 145; search 22. Then the
    // alert's 17.4 s and 3 s of margin, rounded up to the next 5 s.
    let timeouts: Vec<u32> = names.iter().map(|n| row(n).timeout_seconds).collect();
    assert_eq!(timeouts, [65, 35, 170, 90, 45]);
    assert!(!row("health").reads_account_secret && !row("search").reads_account_secret);
    assert!(row("auth").reads_account_secret && row("payment").reads_account_secret);
    assert_eq!(row("payment").depends_on, ["health"]);
    assert!(row("health").depends_on.is_empty());
    assert_eq!(row("products").tags, ["checkout"]);
    assert!(plan.checks.iter().all(|c| c.schedule_minutes == 5 && c.enabled && c.regions.is_empty()));
    let defaults = std::fs::read_to_string(repository_checks().join(DEFAULTS_FILE)).unwrap();
    let payment = std::fs::read_to_string(repository_checks().join("payment.toml")).unwrap();
    assert_eq!(row("payment").journey_sha256, journey_digest(&defaults, &payment));
    // The folder's Accept header reaches every step; health keeps its own budgets.
    let health = &catalog.check("health").unwrap().journey.steps[0];
    assert_eq!(health.budget.fail_after, Duration::from_secs(5));
    assert!(health.headers.iter().any(|(name, _)| name == "Accept"));
    assert_eq!(catalog.check("payment").unwrap().journey.steps[3].role, StepRole::Cleanup);
    // The built-in checks of the CLI read the same files the same way.
    for check in crate::Check::ALL {
        assert_eq!(crate::Check::journey(check), catalog.check(check.name()).unwrap().journey);
    }
}

#[test]
fn the_digest_covers_both_files_and_where_text_sits() {
    let one = journey_digest("a = 1\n", "b = 2\n");
    assert_eq!(one.len(), 64);
    assert!(one.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(one, journey_digest("a = 1\nb = 2\n", ""), "text moved between the files");
    assert_ne!(one, journey_digest("a = 2\n", "b = 2\n"));
    assert_eq!(journey_digest("", ""), "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
}

#[test]
fn defaults_are_inherited_field_by_field_and_the_checks_own_win() {
    let defaults = r#"
[defaults]
degraded_after_ms = 1500
fail_after_ms = 8000
headers = { Accept = "application/json", X-Team = "shop" }

[deploy]
schedule_minutes = 10
regions = ["eu-west-1"]
tags = ["team-shop"]
"#;
    let own = journey(
        "own",
        "[defaults]\nfail_after_ms = 9000\nheaders = { accept = \"text/plain\" }\n[deploy]\nschedule_minutes = 1\ntags = []\nenabled = false\n",
    );
    let bare = journey("bare", "");
    let folder = Folder::with(&[("defaults.toml", defaults), ("own.toml", &own), ("bare.toml", &bare)]);
    let catalog = Catalog::load(&folder.0).unwrap_or_else(|p| panic!("{p}"));
    let (own, bare) = (catalog.check("own").unwrap(), catalog.check("bare").unwrap());
    let header = |check: &CatalogCheck, name: &str| {
        check.journey.steps[0].headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(name)).map(|(h, _)| h.clone())
    };
    assert_eq!(own.journey.steps[0].budget.fail_after, Duration::from_millis(9000));
    assert_eq!(own.journey.steps[0].budget.degraded_after, Duration::from_millis(1500));
    assert_eq!(header(own, "accept").as_deref(), Some("accept"), "the check's own header replaces the folder's");
    assert_eq!(header(own, "x-team").as_deref(), Some("X-Team"), "the others are kept");
    assert_eq!(own.journey.steps[0].headers.len(), 2);
    assert_eq!(
        own.deploy,
        Deploy {
            schedule_minutes: 1,
            regions: vec!["eu-west-1".into()],
            tags: vec![],
            depends_on: vec![],
            enabled: false
        }
    );
    assert_eq!(bare.journey.steps[0].budget.fail_after, Duration::from_millis(8000));
    assert_eq!(bare.deploy.schedule_minutes, 10);
    assert_eq!(bare.deploy.tags, ["team-shop"]);
    assert!(bare.deploy.enabled);
    assert!(!catalog.plan().check("own").unwrap().enabled);
}

#[test]
fn a_folder_without_defaults_uses_the_built_in_ones() {
    let folder = Folder::with(&[("a.toml", &journey("a", ""))]);
    let catalog = Catalog::load(&folder.0).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(catalog.checks()[0].deploy, Deploy::default());
}

#[test]
fn every_mistake_of_every_file_is_located() {
    // (A check is read against the built-in defaults while the folder's are broken.)
    let defaults = "[defaults]\nfail_after_ms = 3000\n[deploy]\nschedule_minutes = 3\ndepends_on = [\"a\"]\n";
    let a = journey("a", "[deploy]\nregions = [\"eu-west-1\", \"Europe\"]\ntags = [\"x\", \"x\"]\ncolour = \"red\"\n");
    let b = journey("not-b", "");
    let c = journey("c", "[defaults]\ndegraded_after_ms = 4000\n[deploy]\ndepends_on = [\"nobody\"]\nenabled = 1\n");
    let folder = Folder::with(&[("defaults.toml", defaults), ("a.toml", &a), ("b.toml", &b), ("c.toml", &c)]);
    assert_eq!(
        folder.problems(),
        [
            "defaults.toml:4:20: schedule_minutes must be one of 1, 2, 5, 10, 15 (what EventBridge and the alarms' \
             periods are set up for)",
            "defaults.toml:5:1: depends_on belongs to a check's own [deploy]: one that every check inherited would \
             make the dependency depend on itself",
            "a.toml:3:25: regions: \"Europe\" must be an AWS region name such as \"eu-west-1\"",
            "a.toml:4:14: tags: \"x\" is listed twice",
            "a.toml:5:1: unknown key \"colour\" in [deploy]; expected one of schedule_minutes, regions, tags, \
             depends_on, enabled",
            "b.toml:1:9: check \"not-b\" must be the file's name, \"b\": the name is the function's, so a file renamed \
             without it would deploy under one name and report under another",
            "c.toml:6:11: enabled must be true or false",
        ]
    );
}

#[test]
fn an_inherited_budget_that_conflicts_with_the_checks_own_is_reported_at_the_checks_key() {
    let defaults = "[defaults]\nfail_after_ms = 3000\n";
    let a = journey("a", "[defaults]\ndegraded_after_ms = 4000\n");
    let folder = Folder::with(&[("defaults.toml", defaults), ("a.toml", &a)]);
    assert_eq!(
        folder.problems(),
        ["a.toml:3:21: degraded_after_ms (4000) must not exceed fail_after_ms (3000, inherited)"]
    );
}

#[test]
fn unknown_dependencies_and_cycles_are_named_where_they_are_written() {
    let dep = |name: &str, on: &str| journey(name, &format!("[deploy]\ndepends_on = [{on}]\n"));
    let folder = Folder::with(&[
        ("a.toml", &dep("a", "\"b\"")),
        ("b.toml", &dep("b", "\"c\", \"ghost\"")),
        ("c.toml", &dep("c", "\"a\"")),
        ("d.toml", &dep("d", "\"d\"")),
        ("e.toml", &dep("e", "\"a\"")),
    ]);
    assert_eq!(
        folder.problems(),
        [
            "b.toml:3:20: b depends on \"ghost\", which is no check of this folder",
            "a.toml:3:15: depends_on forms a cycle, a -> b -> c -> a: a check cannot depend on itself, even through \
             others",
            "d.toml:3:15: depends_on forms a cycle, d -> d: a check cannot depend on itself, even through others",
        ]
    );
}

#[test]
fn an_empty_or_missing_folder_is_a_problem() {
    let folder = Folder::with(&[("defaults.toml", "[deploy]\nschedule_minutes = 5\n")]);
    assert_eq!(folder.problems().len(), 1);
    assert!(folder.problems()[0].contains("holds no checks"), "{:?}", folder.problems());
    let missing = Catalog::load(Path::new("/nonexistent/checks")).unwrap_err();
    assert!(missing.to_string().contains("cannot read the checks folder"), "{missing}");
}

#[test]
fn a_run_too_long_for_a_check_function_is_refused() {
    let steps: String =
        (0..8).map(|i| format!("[[steps]]\nname = \"s{i}\"\npath = \"/\"\nfail_after_ms = 20000\n")).collect();
    let folder = Folder::with(&[("slow.toml", &format!("check = \"slow\"\n{steps}"))]);
    let problems = folder.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("slow.toml:1:1: a run of slow may take up to 360 s"), "{problems:?}");
}

#[test]
fn a_check_file_reads_the_same_alone_or_in_its_folder() {
    let folder = Folder::with(&[
        ("defaults.toml", "[defaults]\nfail_after_ms = 3000\n"),
        ("a.toml", &journey("a", "[deploy]\ntags = [\"t\"]\n")),
    ]);
    let in_folder = load_file(&folder.0.join("a.toml")).unwrap();
    assert_eq!(in_folder.steps[0].budget.fail_after, Duration::from_millis(3000));
    assert!(load_file(&folder.0.join("defaults.toml")).unwrap_err()[0].contains("validate the folder instead"));
    let alone = Folder::with(&[("elsewhere.toml", &journey("a", "[deploy]\ntags = [\"t\"]\n"))]);
    let read = load_file(&alone.0.join("elsewhere.toml")).unwrap();
    assert_eq!(read.steps[0].budget.fail_after, Duration::from_secs(10));
    let broken = Folder::with(&[("x.toml", &journey("x", "[deploy]\ntags = [1]\n"))]);
    let lines = load_file(&broken.0.join("x.toml")).unwrap_err();
    assert!(lines[0].ends_with("x.toml:3:9: tags must hold strings, not integer"), "{lines:?}");
}

/// The reference: a graph has a cycle exactly when Kahn's topological sort cannot place every node.
fn kahn_sorts_all(edges: &BTreeMap<&str, Vec<&str>>) -> bool {
    let mut indegree: BTreeMap<&str, usize> = edges.keys().map(|&n| (n, 0)).collect();
    for targets in edges.values() {
        for t in targets {
            *indegree.get_mut(t).unwrap() += 1;
        }
    }
    let mut ready: Vec<&str> = indegree.iter().filter(|(_, d)| **d == 0).map(|(n, _)| *n).collect();
    let mut placed = 0;
    while let Some(node) = ready.pop() {
        placed += 1;
        for t in &edges[node] {
            let d = indegree.get_mut(t).unwrap();
            *d -= 1;
            if *d == 0 {
                ready.push(t);
            }
        }
    }
    placed == edges.len()
}

const NODES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

proptest! {
    // Each case is a graph of at most 8 checks: microseconds.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cycles_are_found_exactly_when_the_graph_cannot_be_sorted(
        n in 1usize..=8,
        links in proptest::collection::vec((0usize..8, 0usize..8), 0..16),
    ) {
        let mut edges: BTreeMap<&str, Vec<&str>> = NODES[..n].iter().map(|&name| (name, Vec::new())).collect();
        for (from, to) in links {
            let (from, to) = (NODES[from % n], NODES[to % n]);
            if !edges[from].contains(&to) {
                edges.get_mut(from).unwrap().push(to);
            }
        }
        let found = cycles(&edges);
        prop_assert_eq!(found.is_empty(), kahn_sorts_all(&edges));
        for cycle in &found {
            // each is a real cycle of distinct checks
            let distinct: BTreeSet<&str> = cycle.iter().copied().collect();
            prop_assert_eq!(distinct.len(), cycle.len());
            for (i, node) in cycle.iter().enumerate() {
                prop_assert!(edges[node].contains(&cycle[(i + 1) % cycle.len()]), "{:?} in {:?}", cycle, edges);
            }
        }
        // a check naming itself is always reported
        for (node, targets) in &edges {
            if targets.contains(node) {
                prop_assert!(found.iter().flatten().any(|n| n == node));
            }
        }
    }
}

/// One field of the generated inheritance: unset, or one of a few values, in the folder's file
/// and in the check's.
fn setting<T: std::fmt::Debug + Clone + 'static>(values: Vec<T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(proptest::sample::select(values))
}

proptest! {
    // Each case parses two small TOML texts, in memory: well under a millisecond.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_field_set_in_the_check_wins_and_an_unset_one_is_inherited(
        folder_schedule in setting(SCHEDULES.to_vec()), own_schedule in setting(SCHEDULES.to_vec()),
        folder_regions in setting(vec!["us-east-1", "eu-west-1"]), own_regions in setting(vec!["ap-southeast-2"]),
        folder_tags in setting(vec!["shop", "team"]), own_tags in setting(vec!["checkout"]),
        folder_enabled in setting(vec![true, false]), own_enabled in setting(vec![true, false]),
        folder_fail in setting(vec![4000u64, 9000]), own_fail in setting(vec![5000u64, 12000]),
        folder_team in setting(vec!["platform"]), own_team in setting(vec!["payments"]),
        own_accept in setting(vec!["text/html"]),
    ) {
        let mut folder = String::from("[defaults]\nheaders = { Accept = \"application/json\" }\n");
        if let Some(ms) = folder_fail { folder += &format!("fail_after_ms = {ms}\ndegraded_after_ms = 1000\n"); }
        if let Some(team) = folder_team { folder = folder.replace(" }", &format!(", X-Team = \"{team}\" }}")); }
        folder += "[deploy]\n";
        let list = |v: &str| format!("[\"{v}\"]");
        if let Some(m) = folder_schedule { folder += &format!("schedule_minutes = {m}\n"); }
        if let Some(r) = folder_regions { folder += &format!("regions = {}\n", list(r)); }
        if let Some(t) = folder_tags { folder += &format!("tags = {}\n", list(t)); }
        if let Some(e) = folder_enabled { folder += &format!("enabled = {e}\n"); }
        let mut own = String::from("check = \"x\"\n[defaults]\n");
        if let Some(ms) = own_fail { own += &format!("fail_after_ms = {ms}\n"); }
        let mut headers = Vec::new();
        if let Some(team) = own_team { headers.push(format!("x-team = \"{team}\"")); }
        if let Some(accept) = own_accept { headers.push(format!("accept = \"{accept}\"")); }
        if !headers.is_empty() { own += &format!("headers = {{ {} }}\n", headers.join(", ")); }
        own += "[deploy]\n";
        if let Some(m) = own_schedule { own += &format!("schedule_minutes = {m}\n"); }
        if let Some(r) = own_regions { own += &format!("regions = {}\n", list(r)); }
        if let Some(t) = own_tags { own += &format!("tags = {}\n", list(t)); }
        if let Some(e) = own_enabled { own += &format!("enabled = {e}\n"); }
        own += "[[steps]]\nname = \"get\"\npath = \"/\"\n";

        let defaults = FolderDefaults::parse(&folder).map_err(|p| TestCaseError::fail(format!("{p}\n{folder}")))?;
        let (journey, deploy) =
            parse_check(&defaults, "x", &own).map_err(|p| TestCaseError::fail(format!("{p}\n{own}")))?;
        let deploy = deploy.over(&defaults.deploy);
        let built_in = Deploy::default();
        prop_assert_eq!(deploy.schedule_minutes, own_schedule.or(folder_schedule).unwrap_or(built_in.schedule_minutes));
        let expected_regions: Vec<String> = own_regions.or(folder_regions).map(|r| vec![r.to_string()]).unwrap_or_default();
        prop_assert_eq!(&deploy.regions, &expected_regions);
        let expected_tags: Vec<String> = own_tags.or(folder_tags).map(|t| vec![t.to_string()]).unwrap_or_default();
        prop_assert_eq!(&deploy.tags, &expected_tags);
        prop_assert_eq!(deploy.enabled, own_enabled.or(folder_enabled).unwrap_or(true));
        let step = &journey.steps[0];
        let fail = own_fail.or(folder_fail).unwrap_or(10_000);
        prop_assert_eq!(step.budget.fail_after, Duration::from_millis(fail));
        let degraded = if folder_fail.is_some() { 1000 } else { 2000u64.min(fail) };
        prop_assert_eq!(step.budget.degraded_after, Duration::from_millis(degraded));
        let header = |name: &str| step.headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(name)).map(|(_, t)| format!("{t:?}"));
        prop_assert_eq!(step.headers.iter().filter(|(h, _)| h.eq_ignore_ascii_case("accept")).count(), 1);
        let accept = header("accept").unwrap_or_default();
        prop_assert!(accept.contains(own_accept.unwrap_or("application/json")), "{}", accept);
        match own_team.or(folder_team) {
            Some(team) => prop_assert!(header("x-team").unwrap_or_default().contains(team)),
            None => prop_assert!(header("x-team").is_none()),
        }
    }
}

#[test]
fn a_function_runs_only_the_journey_its_deploy_validated() {
    let check = journey("a", "");
    let defaults = "[defaults]\nfail_after_ms = 3000\n";
    let folder = Folder::with(&[("defaults.toml", defaults), ("a.toml", &check)]);
    let dir = folder.0.display().to_string();
    let digest = journey_digest(defaults, &check);
    let cold_start = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        bundled_journey(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let journey = cold_start(&[("CHECK_NAME", "a"), ("CHECKS_DIR", &dir), ("CHECK_JOURNEY_SHA256", &digest)]).unwrap();
    assert_eq!(journey.steps[0].budget.fail_after, Duration::from_millis(3000), "with the folder's defaults");
    let refused = |vars: &[(&str, &str)]| match cold_start(vars) {
        Err(CheckError::Misconfigured(why)) => why,
        other => panic!("expected a misconfiguration, got {other:?}"),
    };
    assert!(refused(&[("CHECKS_DIR", &dir), ("CHECK_JOURNEY_SHA256", &digest)]).starts_with("CHECK_NAME is not set"));
    assert!(refused(&[("CHECK_NAME", "../a"), ("CHECKS_DIR", &dir)]).starts_with("CHECK_NAME must be a check's name"));
    let missing = refused(&[("CHECK_NAME", "b"), ("CHECKS_DIR", &dir), ("CHECK_JOURNEY_SHA256", &digest)]);
    assert!(missing.starts_with("CHECK_NAME b: ") && missing.contains("the bundle has no such check"), "{missing}");
    assert!(refused(&[("CHECK_NAME", "a"), ("CHECKS_DIR", &dir)]).starts_with("CHECK_JOURNEY_SHA256 is not set"));
    // the same files with another digest, or the digest of other files: nothing runs
    let other = journey_digest("", &check);
    let mismatch = refused(&[("CHECK_NAME", "a"), ("CHECKS_DIR", &dir), ("CHECK_JOURNEY_SHA256", &other)]);
    assert!(mismatch.starts_with(&format!("CHECK_JOURNEY_SHA256 is {other}, but ")), "{mismatch}");
    assert!(mismatch.contains(&digest), "{mismatch}");
    std::fs::write(folder.0.join("defaults.toml"), "[defaults]\nfail_after_ms = 4000\n").unwrap();
    let edited = refused(&[("CHECK_NAME", "a"), ("CHECKS_DIR", &dir), ("CHECK_JOURNEY_SHA256", &digest)]);
    assert!(edited.starts_with("CHECK_JOURNEY_SHA256 is "), "a changed defaults file changes the journey: {edited}");
}
