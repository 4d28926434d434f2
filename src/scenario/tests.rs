//! Scenario files round-trip through `to_toml`, and the detector's rules on small histories.

use std::path::Path;
use std::time::Duration;

use jepsen_lite::{Event, EventType, History, Process, Value};

use super::detect::{Evidence, detect};
use super::file::{load, parse, to_toml};
use crate::sim::fencing::FencingLog;

#[test]
fn every_shipped_scenario_round_trips_through_the_writer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        let original = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut again = parse(&to_toml(&original), "written").unwrap_or_else(|e| panic!("{e}"));
        for (a, b) in again.events.iter_mut().zip(&original.events) {
            a.line = b.line;
        }
        assert_eq!(again, original, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 5, "{seen} scenarios");
}

fn event(process: u64, kind: EventType, f: &str, value: Value, ms: i64) -> Event {
    Event {
        process: Process::Client(process),
        kind,
        f: f.into(),
        key: Some(Value::Str("k".into())),
        value,
        time: Some(ms * 1_000_000),
        line: 0,
        meta: Default::default(),
    }
}

fn findings(events: Vec<Event>) -> super::Findings {
    let history = History { events };
    detect(&Evidence {
        history: &history,
        lost_events: &[],
        roles: &[],
        lease_overlaps: Vec::new(),
        violations: Vec::new(),
        fenced_rejections: 0,
        fencing: &FencingLog::default(),
        end: Duration::from_secs(1),
    })
}

#[test]
fn a_read_of_a_value_overwritten_before_it_began_is_stale() {
    use EventType::{Invoke, Ok};
    let a = || Value::Str("a".into());
    let b = || Value::Str("b".into());
    let base = vec![
        event(1, Invoke, "put", a(), 0),
        event(1, Ok, "put", a(), 10),
        event(2, Invoke, "put", b(), 20),
        event(2, Ok, "put", b(), 30),
    ];
    // Begun after b was acknowledged: reading a is stale.
    let mut stale = base.clone();
    stale.extend([event(3, Invoke, "get", Value::Null, 40), event(3, Ok, "get", a(), 50)]);
    let found = findings(stale).stale_reads;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].ops, vec![2, 0, 1]);
    // Concurrent with the write of b: either value is fine.
    let mut fine = base.clone();
    fine.insert(2, event(3, Invoke, "get", Value::Null, 15));
    fine.insert(4, event(3, Ok, "get", a(), 25));
    assert!(findings(fine).stale_reads.is_empty());
    // Absent, after a put was acknowledged: stale. Absent before any: fine.
    let mut absent = base.clone();
    absent.extend([event(3, Invoke, "get", Value::Null, 40), event(3, Ok, "get", Value::Null, 50)]);
    assert_eq!(findings(absent).stale_reads.len(), 1);
    let early = vec![event(3, Invoke, "get", Value::Null, 0), event(3, Ok, "get", Value::Null, 1)];
    assert!(findings(early).stale_reads.is_empty());
}

#[test]
fn a_write_that_failed_never_overwrites() {
    use EventType::{Fail, Invoke, Ok};
    let a = || Value::Str("a".into());
    let b = || Value::Str("b".into());
    let events = vec![
        event(1, Invoke, "put", a(), 0),
        event(1, Ok, "put", a(), 10),
        event(2, Invoke, "put", b(), 20),
        event(2, Fail, "put", b(), 30),
        event(3, Invoke, "get", Value::Null, 40),
        event(3, Ok, "get", a(), 50),
    ];
    assert!(findings(events).stale_reads.is_empty());
}

#[test]
fn raft_options_directed_cuts_node_links_and_notes_round_trip() {
    let text = "name = \"t\"\nduration = \"10s\"\n\n[raft]\npre_vote = false\ncheck_quorum = true\n\
        max_entries_per_message = 1\nsnapshot_every = 50\n\n[[site]]\nname = \"a\"\nnodes = [\"n1\", \"n2\"]\n\n\
        [[site]]\nname = \"b\"\nnodes = [\"n3\"]\n\n[[clients]]\nname = \"c\"\nsite = \"a\"\n\n\
        [[event]]\nat = \"1s\"\nnote = \"the bridge goes\"\n\n[[event]]\nat = \"1s\"\ncut = [[\"n1\", \"n3\"], [\"n3\", \"n1\"]]\n\n\
        [[event]]\nat = \"2s\"\nbetween = [\"n2\", \"b\"]\nloss = 0.5\n\n[[event]]\nat = \"3s\"\nuncut = [[\"n3\", \"n1\"]]\n";
    let s = parse(text, "t").unwrap_or_else(|e| panic!("{e}"));
    assert!(!s.raft.pre_vote && s.raft.max_entries_per_message == 1 && s.raft.snapshot_every == 50);
    assert_eq!(s.events[0].action, super::Action::Note("the bridge goes".into()));
    assert_eq!(s.events[1].action, super::Action::Cut(vec![(0, 2), (2, 0)]));
    let loss = super::Action::Loss(super::Target::Node(1), super::Target::Site(1), 0.5);
    assert_eq!(s.events[2].action, loss);
    assert_eq!(s.events[3].action, super::Action::Uncut(vec![(2, 0)]));
    let mut again = parse(&to_toml(&s), "written").unwrap_or_else(|e| panic!("{e}"));
    for (a, b) in again.events.iter_mut().zip(&s.events) {
        a.line = b.line;
    }
    assert_eq!(again, s, "{}", to_toml(&s));
    for (bad, says) in [
        ("cut = [[\"n1\", \"n3\"]", "cut = [[\"n1\", \"n1\"]"),
        ("cut = [[\"n1\", \"n3\"]", "cut = [[\"n1\"]"),
        ("cut = [[\"n1\", \"n3\"]", "cut = [[\"n1\", \"n9\"]"),
        ("max_entries_per_message = 1", "max_entries_per_message = 0"),
    ] {
        let broken = text.replacen(bad, says, 1);
        assert_ne!(broken, text, "{bad} is in the text");
        assert!(parse(&broken, "t").is_err(), "{says} was accepted");
    }
    let leases = text.replace("check_quorum = true", "check_quorum = false");
    let e = parse(&leases, "t").expect_err("leases without check-quorum");
    assert!(e.message.contains("check-quorum"), "{e}");
}
