//! `synthetic silence add | list | expire`: planned-work windows in the forwarder's state table.
//!
//! While a silence covers a check, the forwarder records its runs and pages nothing; a check still
//! failing when the silence ends pages on its next run. Silences are items of the same table as
//! the incident state (`STATE_TABLE`), written through the forwarder's own store, so the CLI and
//! the forwarder cannot disagree on their shape.

use crate::{Exit, fail, print_report};
use clap::{Args, Subcommand, ValueEnum};
use pagerduty_forwarder::dynamodb::DynamoStore;
use pagerduty_forwarder::state::{ALL_CHECKS, Silence, StateStore, record_key};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

#[derive(Debug, Args)]
pub struct SilenceArgs {
    #[command(subcommand)]
    pub action: SilenceAction,
}

#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Silence a check (or every check, with --check '*') for a while: nothing pages, runs are recorded.
    Add(AddArgs),
    /// The env's silences: active and upcoming ones, or every one still kept with --all.
    List(ListArgs),
    /// End a silence now.
    Expire(ExpireArgs),
}

#[derive(Debug, Args)]
pub struct Table {
    /// The forwarder's state table (the stack's StateTableName output).
    #[arg(long, env = "STATE_TABLE", value_name = "NAME")]
    pub table: String,
    /// The env whose checks are silenced, as in the dedup keys.
    #[arg(long, env = "CHECK_ENV")]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub table: Table,
    /// The check to silence, as in the alerts (payment, monitor-account, ...), or '*' for all.
    #[arg(long)]
    pub check: String,
    /// How long: a number and a unit (s, m, h, d, w), e.g. 1h.
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::slo::parse_duration, required_unless_present = "until", conflicts_with = "until")]
    pub duration: Option<u64>,
    /// Until this time instead (RFC 3339, e.g. 2026-11-22T03:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<OffsetDateTime>,
    /// When it begins (RFC 3339); now by default.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub starts: Option<OffsetDateTime>,
    /// Why: shown to whoever wonders why nothing paged.
    #[arg(long)]
    pub reason: String,
    /// Who; $USER by default.
    #[arg(long, env = "USER", default_value = "unknown")]
    pub by: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub table: Table,
    /// Also the silences that already ended (kept a week).
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    #[command(flatten)]
    pub table: Table,
    /// The silence's id, as `add` and `list` print it.
    #[arg(long)]
    pub id: String,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("expected an RFC 3339 time like 2026-11-22T03:00:00Z, got {text:?}"))
}

fn valid_check(check: &str) -> bool {
    check == ALL_CHECKS
        || (!check.is_empty()
            && check.len() <= 64
            && check.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
}

pub async fn execute(args: SilenceArgs) -> Exit {
    let now = OffsetDateTime::now_utc();
    match args.action {
        SilenceAction::Add(args) => {
            let silence = match new_silence(&args, now) {
                Ok(silence) => silence,
                Err(message) => return fail(message),
            };
            let store = store(&args.table.table).await;
            if let Some(warning) = never_reported(&store, &silence).await {
                eprintln!("{warning}");
            }
            match store.put_silence(&silence).await {
                Ok(()) => print_report(
                    &format!(
                        "silence {} added: {} in {} from {} until {}, by {}: {}\n",
                        silence.id,
                        silence.check,
                        silence.env,
                        time(silence.starts),
                        time(silence.ends),
                        silence.created_by,
                        silence.reason
                    ),
                    Exit::Passed,
                ),
                Err(error) => fail(format!("silence not added: {error}")),
            }
        }
        SilenceAction::List(args) => match store(&args.table.table).await.silences(&args.table.env).await {
            Ok(mut silences) => {
                silences.retain(|s| args.all || s.ends > now);
                silences.sort_by_key(|s| (s.starts, s.id.clone()));
                print_report(&list(&silences, args.format, now), Exit::Passed)
            }
            Err(error) => fail(format!("silences not listed: {error}")),
        },
        SilenceAction::Expire(args) => {
            match store(&args.table.table).await.expire_silence(&args.table.env, &args.id, now).await {
                Ok(Some(silence)) => print_report(
                    &format!("silence {} ({}) ends {}\n", silence.id, silence.check, time(silence.ends)),
                    Exit::Passed,
                ),
                Ok(None) => fail(format!("no silence {} in env {}", args.id, args.table.env)),
                Err(error) => fail(format!("silence not expired: {error}")),
            }
        }
    }
}

async fn store(table: &str) -> DynamoStore {
    DynamoStore::new(&synthetic_checks::aws::sdk_config().await, table)
}

fn new_silence(args: &AddArgs, now: OffsetDateTime) -> Result<Silence, String> {
    if !valid_check(&args.check) {
        return Err(format!("--check {:?}: a check name ([a-z0-9_-], at most 64) or '*'", args.check));
    }
    if args.reason.trim().is_empty() {
        return Err("--reason is empty: say why, for whoever wonders why nothing paged".into());
    }
    let starts = args.starts.unwrap_or(now);
    let ends = match (args.duration, args.until) {
        (Some(secs), _) => starts + Duration::seconds(i64::try_from(secs).map_err(|_| "--for is too long")?),
        (None, Some(until)) => until,
        (None, None) => return Err("say how long: --for or --until".into()),
    };
    if ends <= starts || ends <= now {
        return Err(format!("the silence would end at {} , before it starts or in the past", time(ends)));
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    Ok(Silence {
        id,
        env: args.table.env.clone(),
        check: args.check.clone(),
        starts,
        ends,
        reason: args.reason.trim().to_string(),
        created_by: args.by.clone(),
        created_at: now,
    })
}

/// A warning when the silenced check has never reported in its env: a typo in `--check` or
/// `--env` silences nothing, and says so nowhere else. The silence is still added (a new check
/// may be silenced before its first run). An unreadable table is no reason to refuse: the
/// warning is then skipped.
async fn never_reported(store: &dyn StateStore, silence: &Silence) -> Option<String> {
    if silence.check == ALL_CHECKS {
        return None;
    }
    match store.load(&record_key(&silence.env, &silence.check)).await {
        Ok((_, 0)) => Some(format!(
            "warning: no run of check {:?} in env {:?} has ever been recorded in this table; check the spelling of --check and --env (the silence is added anyway)",
            silence.check, silence.env
        )),
        _ => None,
    }
}

fn time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn list(silences: &[Silence], format: ListFormat, now: OffsetDateTime) -> String {
    match format {
        ListFormat::Json => silences.iter().map(|s| serde_json::to_string(s).unwrap_or_default() + "\n").collect(),
        ListFormat::Table => {
            if silences.is_empty() {
                return "no silences\n".into();
            }
            let mut out = format!(
                "{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  {:<12}  {}\n",
                "ID", "CHECK", "STATE", "STARTS", "ENDS", "BY", "REASON"
            );
            for s in silences {
                let state = match (s.starts <= now, s.ends > now) {
                    (_, false) => "ended",
                    (true, true) => "active",
                    (false, true) => "upcoming",
                };
                out.push_str(&format!(
                    "{:<12}  {:<16}  {:<8}  {:<20}  {:<20}  {:<12}  {}\n",
                    s.id,
                    s.check,
                    state,
                    time(s.starts),
                    time(s.ends),
                    s.created_by,
                    s.reason
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 02:00 UTC);

    fn add(args: &[&str]) -> Result<Silence, String> {
        let mut argv = vec!["synthetic", "silence", "add", "--table", "t", "--env", "prod", "--by", "ana"];
        argv.extend(args);
        let Command::Silence(SilenceArgs { action: SilenceAction::Add(add) }) =
            Cli::try_parse_from(argv).map_err(|e| e.to_string())?.command
        else {
            return Err("not silence add".into());
        };
        new_silence(&add, NOW)
    }

    #[test]
    fn a_silence_has_who_why_and_a_window() {
        let silence = add(&["--check", "payment", "--for", "1h", "--reason", "  payments maintenance "]).unwrap();
        assert_eq!(
            (silence.check.as_str(), silence.env.as_str(), silence.created_by.as_str()),
            ("payment", "prod", "ana")
        );
        assert_eq!((silence.starts, silence.ends), (NOW, NOW + Duration::hours(1)));
        assert_eq!(silence.reason, "payments maintenance");
        assert_eq!(silence.id.len(), 12);
        let later = add(&[
            "--check",
            "*",
            "--starts",
            "2026-11-21T03:00:00Z",
            "--until",
            "2026-11-21T04:00:00Z",
            "--reason",
            "db",
        ])
        .unwrap();
        assert_eq!((later.starts, later.ends), (datetime!(2026-11-21 03:00 UTC), datetime!(2026-11-21 04:00 UTC)));
    }

    #[test]
    fn a_silence_that_says_too_little_is_refused() {
        for (args, expected) in [
            (vec!["--check", "payment", "--reason", "x"], "--for"),
            (vec!["--check", "Payment!", "--for", "1h", "--reason", "x"], "--check"),
            (vec!["--check", "payment", "--for", "1h", "--reason", " "], "--reason is empty"),
            (vec!["--check", "payment", "--until", "2026-11-21T01:00:00Z", "--reason", "x"], "in the past"),
            (vec!["--check", "payment", "--until", "tomorrow", "--reason", "x"], "RFC 3339"),
        ] {
            let error = add(&args).unwrap_err();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[tokio::test]
    async fn silencing_a_check_that_never_reported_warns() {
        use pagerduty_forwarder::state::{MemoryStore, Record};
        let store = MemoryStore::default();
        let typo = add(&["--check", "paymnet", "--for", "1h", "--reason", "maintenance"]).unwrap();
        let warning = never_reported(&store, &typo).await.expect("a warning");
        assert!(warning.contains("\"paymnet\"") && warning.contains("\"prod\""), "{warning}");

        store.save(&record_key("prod", "payment"), &Record::default(), 0).await.unwrap();
        let known = add(&["--check", "payment", "--for", "1h", "--reason", "maintenance"]).unwrap();
        assert_eq!(never_reported(&store, &known).await, None);
        let all = add(&["--check", "*", "--for", "1h", "--reason", "maintenance"]).unwrap();
        assert_eq!(never_reported(&store, &all).await, None);
    }

    #[test]
    fn the_list_says_what_is_active() {
        let active = add(&["--check", "payment", "--for", "1h", "--reason", "maintenance"]).unwrap();
        let table = list(std::slice::from_ref(&active), ListFormat::Table, NOW + Duration::minutes(5));
        assert!(table.contains("active") && table.contains("maintenance") && table.contains(&active.id), "{table}");
        let json = list(&[active], ListFormat::Json, NOW);
        assert_eq!(serde_json::from_str::<serde_json::Value>(json.trim()).unwrap()["check"], "payment");
    }
}
