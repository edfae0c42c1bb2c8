//! Model-based test of the incident state machine: generated sequences of runs (passed,
//! degraded, failed; in order, late, duplicated, stamped in the future), burn-rate alarms,
//! silences, PagerDuty answers (202, 429, 503, 400), table faults (unreachable, lost races),
//! Lambda retries and a second invocation running during a backoff or a send, fed to the library handler
//! and to a small reference model of the documented policy (README, "Incidents"). After every
//! step it asserts:
//!
//! 1. **Agreement.** After an invocation that went through the table and succeeded, PagerDuty's
//!    view (open or resolved, per dedup key, after the events it accepted) is the table's.
//! 2. **Confirmation bound.** A failure confirmed by the policy (N consecutive failed runs from
//!    one vantage point, or a quorum of the configured regions failing within 1.5 periods) has
//!    an open incident once the run that confirmed it was handled, unless a silence covers it
//!    or its page waits for PagerDuty's rate (throttled through every retry: queued, in the
//!    outbox).
//! 3. **No stale trigger.** Every event that changes PagerDuty's view moves it to the table's
//!    view at that moment: a trigger never reopens what the table resolved, and a resolve never
//!    closes what the table holds open (the table-unavailable fallback, which has no table to
//!    agree with, excepted).
//! 4. **Silences end.** A silence never swallows an outage that outlives it (2. after the
//!    silence), nor a burn-rate alarm that fired during it and is still in ALARM.
//!
//! A seeded generator, not proptest: the case is printed with its seed and every step, and
//! `MODEL_SEED=<seed>` replays one case; `MODEL_CASES=<n>` runs more.

use super::harness::{Answer, Kind, Rng, T0, Table, alarm_message, alert_stamped, key, lock};
use pagerduty_forwarder::state::{Channel, record_key};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use synthetic_checks::alert::EventAction;
use time::{Duration, OffsetDateTime};

const CHECK: &str = "health";
const CASES: u64 = 150;
const STEPS: usize = 70;

/// The policy a case runs under.
struct Setup {
    settings: Vec<(&'static str, &'static str)>,
    regions: Vec<&'static str>,
    page_after: u32,
    quorum: usize,
}

fn setup(rng: &mut Rng) -> Setup {
    match rng.below(3) {
        0 => Setup { settings: vec![], regions: vec!["us-east-1"], page_after: 2, quorum: 1 },
        1 => Setup {
            settings: vec![("PAGE_AFTER_FAILED_RUNS", "3"), ("RESOLVE_AFTER_PASSED_RUNS", "2")],
            regions: vec!["us-east-1"],
            page_after: 3,
            quorum: 1,
        },
        _ => Setup {
            settings: vec![("REGIONS", "us-east-1,eu-west-1,ap-southeast-2"), ("REGION_QUORUM", "2")],
            regions: vec!["us-east-1", "eu-west-1", "ap-southeast-2"],
            page_after: 0,
            quorum: 2,
        },
    }
}

/// The reference model: what the documented policy says about the runs the table recorded.
#[derive(Default)]
struct Reference {
    /// Per region: the latest run's time, whether it failed, and the failed streak.
    regions: BTreeMap<String, (OffsetDateTime, bool, u32)>,
    silences: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// Burn-rate alarms in ALARM, and whether one fired during a silence and was not yet seen
    /// by a run after it.
    alarms: BTreeMap<String, (bool, OffsetDateTime)>,
    /// Alarms that went to ALARM during a silence and have not returned to OK.
    held: std::collections::BTreeSet<String>,
    /// A run after the silence decided the held alarms: the events accepted by then.
    held_decided: Option<usize>,
}

impl Reference {
    fn silenced(&self, at: OffsetDateTime) -> bool {
        self.silences.iter().any(|(from, to)| *from <= at && at < *to)
    }

    /// Applies a run the table recorded; `false` when the policy ignores it as late.
    fn run(&mut self, region: &str, at: OffsetDateTime, failed: bool) -> bool {
        let entry = self.regions.entry(region.to_string()).or_insert((OffsetDateTime::UNIX_EPOCH, false, 0));
        if entry.0 >= at {
            return false;
        }
        *entry = (at, failed, if failed { entry.2 + 1 } else { 0 });
        true
    }

    /// Whether the policy calls the subject's failure confirmed as of a run at `at`.
    fn confirmed(&self, setup: &Setup, region: &str, at: OffsetDateTime) -> bool {
        if setup.regions.len() == 1 {
            return self.regions.get(region).is_some_and(|(_, failed, streak)| *failed && *streak >= setup.page_after);
        }
        let horizon = Duration::seconds(450);
        let failing = setup
            .regions
            .iter()
            .filter(|r| self.regions.get(**r).is_some_and(|(last, failed, _)| *failed && at - *last < horizon))
            .count();
        failing >= setup.quorum
    }
}

/// One message of a case, as delivered.
#[derive(Clone, Debug)]
struct Message {
    text: String,
    received: OffsetDateTime,
    /// The run it carries: region, time (after the clamp) and whether it failed.
    run: Option<(&'static str, OffsetDateTime, bool)>,
    /// Runs stamped where they belong, so the reference's bounds apply to them.
    on_time: bool,
    alarm: Option<(String, bool)>,
}

struct Case {
    rng: Rng,
    setup: Setup,
    table: Table,
    other: Arc<Table>,
    reference: Reference,
    now: OffsetDateTime,
    healthy: bool,
    /// Regions that stopped reporting for a while (several regions only).
    quiet: BTreeMap<&'static str, u32>,
    delivered: Vec<Message>,
    last_failed: Option<Message>,
    /// PagerDuty's accepted events before the current message.
    accepted_before: usize,
    /// Whether the table was unreachable for the current message (shared with the checks).
    fallback: Arc<Mutex<bool>>,
    violations: Arc<Mutex<Vec<String>>>,
    log: Vec<String>,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let setup = setup(&mut rng);
        let table = Table::new(&setup.settings);
        let other = Arc::new(Table::sharing(&setup.settings, table.store.clone(), table.pagerduty.clone()));
        let fallback = Arc::new(Mutex::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        watch_transitions(&table, fallback.clone(), violations.clone());
        Case {
            rng,
            setup,
            table,
            other,
            reference: Reference::default(),
            now: T0,
            healthy: true,
            quiet: BTreeMap::new(),
            delivered: Vec::new(),
            last_failed: None,
            accepted_before: 0,
            fallback,
            violations,
            log: Vec::new(),
        }
    }

    fn message(&mut self, region: &'static str, at: OffsetDateTime, failed: bool, stamp: OffsetDateTime) -> Message {
        let kind = match (failed, self.rng.chance(25)) {
            (false, _) => Kind::Passed,
            (true, true) => Kind::Degraded,
            (true, false) => Kind::Failed,
        };
        Message {
            text: alert_stamped(CHECK, region, at, kind, stamp),
            received: at,
            run: Some((region, stamp.min(at), failed)),
            on_time: stamp == at,
            alarm: None,
        }
    }

    /// The next region to run, with the time its run is due.
    fn next_run(&mut self) -> (&'static str, OffsetDateTime) {
        let regions = self.setup.regions.clone();
        let step = Duration::seconds(300 / regions.len() as i64 + self.rng.below(20) as i64);
        self.now += step;
        if self.rng.chance(15) {
            self.healthy = !self.healthy;
        }
        let mut region = *self.rng.pick(&regions);
        if regions.len() > 1 {
            if self.rng.chance(4) {
                self.quiet.insert(region, 3 + self.rng.below(6) as u32);
            }
            if let Some(left) = self.quiet.get_mut(region) {
                *left -= 1;
                if *left == 0 {
                    self.quiet.remove(region);
                }
                region = *regions.iter().find(|r| !self.quiet.contains_key(**r)).unwrap_or(&region);
            }
        }
        (region, self.now)
    }

    async fn step(&mut self, index: usize) {
        let mut races = 0;
        let mut unavailable = false;
        let roll = self.rng.below(100);
        let retry = self.last_failed.clone().filter(|_| self.rng.chance(70));
        let message = if let Some(failed) = retry {
            self.log.push(format!("{index}: Lambda retries {:?}", failed.run));
            failed
        } else if roll < 50 {
            let (region, at) = self.next_run();
            let failed =
                !self.healthy && (self.setup.regions.len() == 1 || region != "ap-southeast-2" || self.rng.chance(50));
            self.message(region, at, failed, at)
        } else if roll < 57 {
            let (region, at) = self.next_run();
            let stamp = at - Duration::minutes(7 + self.rng.below(10) as i64);
            let failed = self.rng.chance(50);
            self.message(region, at, failed, stamp)
        } else if roll < 62 && !self.delivered.is_empty() {
            let again = self.delivered[self.rng.below(self.delivered.len() as u64) as usize].clone();
            self.log.push(format!("{index}: duplicate of {:?}", again.run));
            again
        } else if roll < 66 {
            let (region, at) = self.next_run();
            let failed = !self.healthy;
            self.message(region, at, failed, at + Duration::hours(6))
        } else if roll < 76 {
            let kind = *self.rng.pick(&["slo-fast-burn", "slo-slow-burn"]);
            let region = *self.rng.pick(&self.setup.regions.clone());
            let alarm = self.rng.chance(50);
            self.now += Duration::seconds(20);
            let name = format!("{}{CHECK}-{kind}", super::harness::PREFIX);
            Message {
                text: alarm_message(&name, region, self.now, alarm),
                received: self.now,
                run: None,
                on_time: true,
                alarm: Some((format!("{kind}@{region}"), alarm)),
            }
        } else if roll < 80 {
            let until = self.now + Duration::minutes(10 + self.rng.below(40) as i64);
            let from = self.now;
            self.put_silence(from, until).await;
            self.log.push(format!("{index}: silence {from} .. {until}"));
            return;
        } else if roll < 88 {
            let answers: Vec<Answer> = (0..1 + self.rng.below(4))
                .map(|_| {
                    *self.rng.pick(&[Answer::Throttled, Answer::Unavailable, Answer::Unavailable, Answer::Rejected])
                })
                .collect();
            self.log.push(format!("{index}: PagerDuty will answer {answers:?}"));
            self.table.pagerduty.script(answers);
            return;
        } else if roll < 95 {
            if self.rng.chance(50) {
                unavailable = true;
            } else {
                races = 1 + self.rng.below(6) as u32;
            }
            let (region, at) = self.next_run();
            let failed = !self.healthy;
            self.message(region, at, failed, at)
        } else {
            return self.interleave(index).await;
        };
        self.deliver(index, message, unavailable, races).await;
    }

    async fn put_silence(&mut self, from: OffsetDateTime, until: OffsetDateTime) {
        use pagerduty_forwarder::state::{Silence, StateStore};
        let silence = Silence {
            id: format!("s{}", self.reference.silences.len()),
            env: "prod".into(),
            check: CHECK.into(),
            starts: from,
            ends: until,
            reason: "model".into(),
            created_by: "model".into(),
            created_at: from,
        };
        self.table.store.put_silence(&silence).await.expect("a silence is stored");
        self.reference.silences.push((from, until));
    }

    /// A run whose first send is throttled, or still in flight, while another environment handles
    /// the next run.
    async fn interleave(&mut self, index: usize) {
        let (region, at) = self.next_run();
        let first = self.message(region, at, !self.healthy, at);
        let second_at = at + Duration::seconds(30);
        let second = self.message(region, second_at, self.healthy, second_at);
        self.log
            .push(format!("{index}: {:?} throttled once while another invocation handles {:?}", first.run, second.run));
        self.table.pagerduty.clear_script();
        // Throttled (the first invocation retries after a backoff), or in flight.
        let answer = *self.rng.pick(&[Answer::Throttled, Answer::AcceptedLate]);
        self.table.pagerduty.script([answer]);
        let done = Arc::new(Mutex::new(None));
        let (other, text, received, result) = (self.other.clone(), second.text.clone(), second.received, done.clone());
        self.table.pagerduty.meanwhile(async move {
            let outcome = other.deliver(text, received).await.map(|_| ());
            *lock(&result) = Some(outcome.is_ok());
        });
        self.accepted_before = self.table.pagerduty.accepted().len();
        let outcome = self.table.deliver(first.text.clone(), first.received).await;
        let ran = lock(&done).take();
        let second_ok = match ran {
            Some(ok) => ok,
            None => {
                // Nothing was sent, so nothing was throttled: the other invocation comes after.
                self.table.pagerduty.clear_script();
                self.table.pagerduty.disarm();
                self.other.deliver(second.text.clone(), second.received).await.is_ok()
            }
        };
        let applied = self.record_run(&first);
        self.decide_held(&first, applied);
        let applied = self.record_run(&second);
        self.decide_held(&second, applied);
        self.delivered.push(first.clone());
        self.last_failed = None;
        if outcome.is_ok() && second_ok {
            self.check_agreement(index);
            self.check_held_alarms(index);
            self.check_bound(index, &second);
        }
    }

    /// The first run applied after a silence decides the alarms held during it.
    fn decide_held(&mut self, message: &Message, applied: bool) {
        if applied
            && let Some((_, at, _)) = message.run
            && !self.reference.held.is_empty()
            && !self.reference.silenced(at)
        {
            self.reference.held.clear();
            self.reference.held_decided = Some(self.accepted_before);
        }
    }

    fn record_run(&mut self, message: &Message) -> bool {
        match message.run {
            Some((region, at, failed)) => self.reference.run(region, at, failed),
            None => false,
        }
    }

    async fn deliver(&mut self, index: usize, message: Message, unavailable: bool, races: u32) {
        self.log.push(format!(
            "{index}: deliver {:?} alarm {:?} received {} on_time {} unavailable {unavailable} races {races}",
            message.run, message.alarm, message.received, message.on_time
        ));
        *lock(&self.fallback) = unavailable;
        self.table.store.set_unavailable(unavailable);
        self.table.store.lose_races(races);
        self.accepted_before = self.table.pagerduty.accepted().len();
        let outcome = self.table.deliver(message.text.clone(), message.received).await;
        self.table.store.set_unavailable(false);
        self.table.store.lose_races(0);
        *lock(&self.fallback) = false;
        if let Err(error) = &outcome {
            self.log.push(format!("{index}: failed: {error}"));
        }
        self.last_failed = outcome.is_err().then(|| message.clone());
        self.delivered.push(message.clone());
        // The table recorded it unless it was unreachable or every write lost its race.
        let recorded = !unavailable && races < 5;
        if !recorded {
            return;
        }
        let applied = self.record_run(&message);
        if let Some((alarm, state)) = &message.alarm
            && self.setup.regions.len() == 1
        {
            // A change no newer than the alarm's last one is a repeated delivery.
            let at = message.received;
            if self.reference.alarms.get(alarm).is_none_or(|(_, known)| *known < at) {
                self.reference.alarms.insert(alarm.clone(), (*state, at));
                match *state && self.reference.silenced(at) {
                    true => self.reference.held.insert(alarm.clone()),
                    false => self.reference.held.remove(alarm),
                };
            }
        }
        self.decide_held(&message, applied);
        // A stale alert is dropped before the table: the table has not seen it.
        if !outcome.is_ok_and(|forwarded| forwarded.stale.is_empty()) {
            return;
        }
        self.check_agreement(index);
        self.check_held_alarms(index);
        if applied && message.on_time {
            self.check_bound(index, &message);
        }
    }

    /// 1: PagerDuty's view of each dedup key is the table's.
    fn check_agreement(&mut self, index: usize) {
        let record = self.table.store.peek(&record_key("prod", CHECK)).unwrap_or_default();
        let pagerduty = &self.table.pagerduty;
        let main = key(CHECK);
        let mut views = vec![
            (main.clone(), record.state.incident.is_some()),
            (format!("{main}/slo-burn"), record.state.burn_incident),
        ];
        for (region, state) in &record.state.regions {
            views.push((format!("{main}/region/{region}"), state.incident));
        }
        let queued: Vec<&str> =
            record.pending.iter().filter(|p| p.to == Channel::PagerDuty).map(|p| p.alert.dedup_key.as_str()).collect();
        for (key, table_open) in views {
            if pagerduty.rejected(&key) || queued.contains(&key.as_str()) {
                continue;
            }
            if pagerduty.is_open(&key) != table_open {
                self.violations_push(format!(
                    "step {index}: {key}: PagerDuty {} but the table {}",
                    if pagerduty.is_open(&key) { "open" } else { "resolved" },
                    if table_open { "open" } else { "resolved" }
                ));
            }
        }
    }

    /// 2 and 4: a confirmed failure outside a silence has an open incident.
    fn check_bound(&mut self, index: usize, message: &Message) {
        let Some((region, at, true)) = message.run else { return };
        let main = key(CHECK);
        if self.reference.silenced(at) || self.table.pagerduty.rejected(&main) {
            return;
        }
        // A page PagerDuty throttled through every retry waits in the outbox for a window.
        let record = self.table.store.peek(&record_key("prod", CHECK)).unwrap_or_default();
        if record.pending.iter().any(|p| p.to == Channel::PagerDuty && p.alert.dedup_key == main) {
            return;
        }
        if self.reference.confirmed(&self.setup, region, at) && !self.table.pagerduty.is_open(&main) {
            self.violations_push(format!("step {index}: a failure confirmed at {at} ({region}) has no open incident"));
        }
    }

    /// 4: a burn-rate alarm that fired during a silence, still in ALARM when the first run after
    /// it was applied, is decided then: it opens or joins an incident (or the check's recovery,
    /// decided at once after it, resolves that).
    fn check_held_alarms(&mut self, index: usize) {
        let Some(before) = self.reference.held_decided.take() else { return };
        let main = key(CHECK);
        let burn = format!("{main}/slo-burn");
        let pagerduty = &self.table.pagerduty;
        // Paged (opened or joined an incident), or overtaken by the check's recovery: a resolve
        // decided after it supersedes a trigger still queued.
        let paged = pagerduty.accepted()[before..].iter().any(|e| e.dedup_key == main || e.dedup_key == burn);
        let rejected = pagerduty.rejected(&main) || pagerduty.rejected(&burn);
        // Or its page waits in the outbox (throttled through every retry).
        let record = self.table.store.peek(&record_key("prod", CHECK)).unwrap_or_default();
        let queued =
            record.pending.iter().any(|p| p.to == Channel::PagerDuty && [&main, &burn].contains(&&p.alert.dedup_key));
        if !rejected && !queued && !paged && !pagerduty.is_open(&main) && !pagerduty.is_open(&burn) {
            self.violations_push(format!("step {index}: an alarm still in ALARM after its silence has no incident"));
        }
    }

    fn violations_push(&self, violation: String) {
        lock(&self.violations).push(violation);
    }
}

/// 3: each event that changes PagerDuty's view agrees with the table at that moment.
fn watch_transitions(table: &Table, fallback: Arc<Mutex<bool>>, violations: Arc<Mutex<Vec<String>>>) {
    let store = table.store.clone();
    let main = key(CHECK);
    table.pagerduty.on_accept(move |event, was_open| {
        let opens = event.event_action == EventAction::Trigger;
        if opens == was_open || *lock(&fallback) {
            return;
        }
        let record = store.peek(&record_key("prod", CHECK)).unwrap_or_default();
        let table_open = if event.dedup_key == main {
            record.state.incident.is_some()
        } else if event.dedup_key == format!("{main}/slo-burn") {
            record.state.burn_incident
        } else if let Some(region) = event.dedup_key.strip_prefix(&format!("{main}/region/")) {
            record.state.regions.get(region).is_some_and(|r| r.incident)
        } else {
            return;
        };
        if table_open != opens {
            lock(&violations).push(format!(
                "{} {} reached PagerDuty while the table had it {}",
                if opens { "a trigger of" } else { "a resolve of" },
                event.dedup_key,
                if table_open { "open" } else { "resolved" }
            ));
        }
    });
}

async fn run_case(seed: u64) -> Result<(), String> {
    let mut case = Case::new(seed);
    for index in 0..STEPS {
        case.step(index).await;
        let violations = lock(&case.violations).clone();
        if !violations.is_empty() {
            return Err(format!(
                "seed {seed} ({} region(s)): {violations:#?}\nsteps:\n{}\nPagerDuty accepted: {:#?}",
                case.setup.regions.len(),
                case.log.join("\n"),
                case.table
                    .pagerduty
                    .accepted()
                    .iter()
                    .map(|e| (e.event_action, e.dedup_key.clone()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_forwarder_keeps_the_documented_policy_under_generated_faults() {
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let cases = std::env::var("MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES);
            (0..cases).map(|case| 0x5eed_0000 + case).collect()
        }
    };
    for seed in seeds {
        if let Err(failure) = run_case(seed).await {
            panic!("{failure}");
        }
    }
}
