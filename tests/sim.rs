//! The deterministic simulation, as `raftbed sim` runs it (release builds: debug simulates
//! 15-20x slower).
//!
//! Goal: a seed replays byte for byte; the correct build passes a fixed range of seeds with
//! every fault kind; each deliberately broken mode is caught by the invariant it breaks.
//! Method: run `sim::run` on pinned seeds and compare trace hashes and verdicts. A failure
//! message carries the seed and the command that replays it.

use std::time::Duration;

use raftbed::sim::checks::Violation;
use raftbed::sim::nemesis::{Density, FaultKind};
use raftbed::sim::{SimBugs, SimOptions, SimReport, SimTransport, Workload, run};
use raftbed::verdict::{Check, Outcome};

fn options(seed: u64) -> SimOptions {
    // A node's panic reaches the harness wrapped by tokio; the hook keeps its message.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            raftbed::sim::note_panic(info);
            default(info);
        }));
    });
    SimOptions::new(seed)
}

fn explain(report: &SimReport) -> String {
    format!(
        "{report}\nreproduce: cargo run --release -- {}",
        report.options.replay_command().trim_start_matches("raftbed ")
    )
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [7, 21, 1234] {
        let options = SimOptions { duration: Duration::from_secs(20), ..options(seed) };
        let first = run(&options);
        let second = run(&options);
        assert_eq!(
            first.trace_hash,
            second.trace_hash,
            "seed {seed} did not replay:\n{}",
            explain(&first)
        );
        assert!(first.ops.0 > 100, "seed {seed} ran a workload");
        assert!(!first.faults.is_empty(), "seed {seed} injected faults");
    }
}

#[test]
fn the_correct_build_passes_every_check() {
    for seed in 0..6 {
        let report = run(&options(seed));
        assert!(report.ok(), "seed {seed} failed:\n{}", explain(&report));
        assert!(report.leaders.len() > 1, "seed {seed}: the faults forced new elections");
    }
}

/// Runs `seeds` with `bugs` and returns the violations of the first seed that has any.
fn first_caught(seeds: std::ops::Range<u64>, bugs: SimBugs) -> Option<(u64, Vec<Violation>)> {
    first_caught_on(seeds, bugs, SimTransport::Messages)
}

fn first_caught_on(
    seeds: std::ops::Range<u64>,
    bugs: SimBugs,
    transport: SimTransport,
) -> Option<(u64, Vec<Violation>)> {
    seeds.into_iter().find_map(|seed| {
        let report = run(&SimOptions { bugs, transport, ..options(seed) });
        (!report.violations.is_empty()).then_some((seed, report.violations))
    })
}

#[test]
fn the_wire_transport_passes_every_check_and_catches_a_lost_write() {
    // The real gRPC over HTTP/2 and TCP paths, as sweeps with `--transport wire` run them.
    for seed in 0..2 {
        let report = run(&SimOptions { transport: SimTransport::Wire, ..options(seed) });
        assert!(report.ok(), "seed {seed} failed:\n{}", explain(&report));
    }
    let bugs = SimBugs { skip_fsync: true, ..SimBugs::default() };
    let caught = first_caught_on(0..3, bugs, SimTransport::Wire);
    assert!(caught.is_some(), "skip-fsync caught on the wire on a seed in 0..3");
}

#[test]
fn skip_fsync_is_caught() {
    let bugs = SimBugs { skip_fsync: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(0..3, bugs).expect("skip-fsync caught on a seed in 0..3");
    // Losing acknowledged entries shows as a lost committed entry or a log that lost its tail.
    let lost = violations.iter().any(|v| match v {
        Violation::LeaderCompleteness { .. } | Violation::ElectionSafety { .. } => true,
        Violation::NodeFailed { error, .. } => error.contains("the log was lost"),
        _ => false,
    });
    assert!(lost, "seed {seed}: {violations:?}");
}

#[test]
fn forget_vote_is_caught() {
    let bugs = SimBugs { forget_vote: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(5..6, bugs).expect("forget-vote caught on seed 5");
    let caught = violations
        .iter()
        .any(|v| matches!(v, Violation::ElectionSafety { .. } | Violation::LogMatching { .. }));
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn commit_old_term_is_caught() {
    let bugs = SimBugs { commit_old_term: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(37..38, bugs).expect("commit-old-term caught on seed 37");
    let caught = violations.iter().any(|v| {
        matches!(v, Violation::CommittedNotSafe { .. } | Violation::LeaderCompleteness { .. })
    });
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn the_figure_8_sequence_catches_commit_old_term_under_partitions_alone() {
    // The targeted nemesis makes the shape random partitions rarely do (§3.6.2, Figure 8).
    let density = Density { figure8: 1.0, ..Density::default() };
    let bugs = SimBugs { commit_old_term: true, ..SimBugs::default() };
    let caught = (0..4).find(|&seed| {
        let faults = vec![FaultKind::Partition];
        let report = run(&SimOptions { bugs, faults, density, ..options(seed) });
        let ran = report.faults.iter().any(|(_, note)| note.contains("(figure 8: the new leader)"));
        assert!(ran, "seed {seed} ran the sequence:\n{}", explain(&report));
        report.violations.iter().any(|v| matches!(v, Violation::CommittedNotSafe { .. }))
    });
    assert!(caught.is_some(), "commit-old-term caught on a seed in 0..4 by the sequence");
}

#[test]
fn lease_no_drift_margin_is_caught() {
    let bugs = SimBugs { lease_no_drift_margin: true, ..SimBugs::default() };
    let (seed, violations) =
        first_caught(0..3, bugs).expect("lease-no-drift-margin caught on a seed in 0..3");
    let caught = violations.iter().any(|v| matches!(v, Violation::LeaseOverlap { .. }));
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn lease_no_drift_margin_shows_as_stale_reads_in_the_history() {
    // Under clock faults alone, run on past the broken invariant: the history checker sees
    // what the clients were told.
    let bugs = SimBugs { lease_no_drift_margin: true, ..SimBugs::default() };
    let options = SimOptions {
        bugs,
        keep_going: true,
        faults: vec![FaultKind::Clock],
        // Seeds 0..12 with clock faults alone: 11 is the one whose stale read reaches a client.
        ..options(11)
    };
    let report = run(&options);
    assert!(
        matches!(report.linearizability, Some(jepsen_lite::CheckResult::NotLinearizable(_))),
        "{}",
        explain(&report)
    );
}

/// Runs seed `seed` with `bugs` and asserts that only the history checker saw them.
fn assert_caught_by_the_history_checker_alone(bugs: SimBugs, seed: u64) {
    let report = run(&SimOptions { bugs, ..options(seed) });
    assert!(report.violations.is_empty(), "the invariants cannot see it:\n{}", explain(&report));
    assert!(
        matches!(report.linearizability, Some(jepsen_lite::CheckResult::NotLinearizable(_))),
        "{}",
        explain(&report)
    );
}

#[test]
fn stale_follower_read_is_caught_by_the_history_checker() {
    let bugs = SimBugs { stale_follower_read: true, ..SimBugs::default() };
    assert_caught_by_the_history_checker_alone(bugs, 0);
}

#[test]
fn leader_local_read_is_caught_by_the_history_checker() {
    // etcd 0.4.1's reads (Jepsen, 2014): a deposed leader answers from its own state.
    let bugs = SimBugs { leader_local_read: true, ..SimBugs::default() };
    assert_caught_by_the_history_checker_alone(bugs, 4);
}

#[test]
fn commit_beyond_match_is_caught() {
    // atomix/copycat#265: a follower commits past what the leader proved matches.
    let bugs = SimBugs { commit_beyond_match: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(0..1, bugs).expect("commit-beyond-match caught on 0");
    let caught = violations.iter().any(|v| matches!(v, Violation::StateMachineSafety { .. }));
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn stale_ack_after_truncation_is_caught() {
    // rabbitmq/ra#637: the leader counts an entry the follower truncated as replicated.
    let bugs = SimBugs { stale_ack_after_truncation: true, ..SimBugs::default() };
    let (seed, violations) =
        first_caught(0..2, bugs).expect("stale-ack-after-truncation caught on a seed in 0..2");
    let caught = violations.iter().any(|v| match v {
        Violation::CommittedNotSafe { .. } => true,
        Violation::NodeFailed { error, .. } => error.contains("past last_index"),
        _ => false,
    });
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn pre_vote_counted_as_vote_is_caught() {
    // canonical/raft#196: late pre-vote grants elect a second leader in the same term.
    let bugs = SimBugs { pre_vote_counted_as_vote: true, ..SimBugs::default() };
    let (seed, violations) =
        first_caught(21..22, bugs).expect("pre-vote-counted-as-vote caught on seed 21");
    let caught = violations.iter().any(|v| matches!(v, Violation::ElectionSafety { .. }));
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn append_after_step_down_is_caught() {
    // camunda/camunda#5360: a deposed leader appends client writes with the new term, which a
    // new leader's entry at the same index and term then never replaces.
    let bugs = SimBugs { append_after_step_down: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(9..10, bugs).expect("append-after-step-down on seed 9");
    let caught = violations
        .iter()
        .any(|v| matches!(v, Violation::LogMatching { .. } | Violation::StateMachineSafety { .. }));
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn vote_by_index_only_is_caught() {
    // sile/noraft#22: a longer log of an older term wins the vote and lacks committed entries.
    let bugs = SimBugs { vote_by_index_only: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(10..11, bugs).expect("vote-by-index-only on seed 10");
    let caught = violations.iter().any(|v| {
        matches!(v, Violation::LeaderCompleteness { .. } | Violation::CommittedNotSafe { .. })
    });
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn keep_conflicting_tail_is_caught() {
    // mofa-org/mofa#1150: a follower overwrites a conflicting suffix in place and keeps what
    // followed it; its own log check sees a term go backwards.
    let bugs = SimBugs { keep_conflicting_tail: true, ..SimBugs::default() };
    let (seed, violations) = first_caught(0..1, bugs).expect("keep-conflicting-tail on seed 0");
    let caught = violations.iter().any(|v| match v {
        Violation::NodeFailed { error, .. } => error.contains("does not follow"),
        _ => false,
    });
    assert!(caught, "seed {seed}: {violations:?}");
}

#[test]
fn lease_until_step_down_is_caught_by_the_lease_invariant_and_the_history() {
    // sofastack/sofa-jraft#34: lease reads last until the step-down check deposes the leader.
    // Run on past the broken invariant: the clients were told stale values too.
    let bugs = SimBugs { lease_until_step_down: true, ..SimBugs::default() };
    let report = run(&SimOptions { bugs, keep_going: true, ..options(4) });
    let overlap = report.violations.iter().any(|v| matches!(v, Violation::LeaseOverlap { .. }));
    let stale =
        matches!(report.linearizability, Some(jepsen_lite::CheckResult::NotLinearizable(_)));
    assert!(overlap && stale, "{}", explain(&report));
}

#[test]
fn the_bridge_election_catches_a_forgotten_vote_and_passes_a_kept_one() {
    // Crash episodes only, each a bridge election: both sides need the bridge's vote in one
    // term, so a bridge that forgets its vote elects two leaders of that term.
    let bridged = |seed: u64, bugs: SimBugs| SimOptions {
        faults: vec![FaultKind::Crash],
        density: Density { bridge: 1.0, ..Density::default() },
        duration: Duration::from_secs(20),
        bugs,
        ..options(seed)
    };
    for seed in 0..3 {
        let report = run(&bridged(seed, SimBugs::default()));
        assert!(report.ok(), "seed {seed} failed:\n{}", explain(&report));
        let bridges = report.faults.iter().filter(|(_, f)| f.starts_with("start bridge")).count();
        assert!(bridges >= 2, "seed {seed}: {bridges} bridge elections\n{}", explain(&report));
        let forgetful = run(&bridged(seed, SimBugs { forget_vote: true, ..SimBugs::default() }));
        let two_leaders =
            forgetful.violations.iter().any(|v| matches!(v, Violation::ElectionSafety { .. }));
        assert!(two_leaders, "seed {seed}: forget-vote not caught\n{}", explain(&forgetful));
    }
}

#[test]
fn fencing_refuses_a_holder_that_paused_past_its_lease() {
    let options =
        SimOptions { faults: Vec::new(), duration: Duration::from_secs(30), ..options(5) };
    let report = run(&options);
    assert!(report.ok(), "{}", explain(&report));
    let fencing = report.fencing;
    assert!(fencing.grants >= 4 && fencing.pauses >= 1, "{fencing:?}\n{}", explain(&report));
    assert!(
        fencing.refused >= 1,
        "a paused holder's write was refused: {fencing:?}\n{}",
        explain(&report)
    );
}

#[test]
fn a_swarm_run_replays_from_its_seed_and_pins() {
    use raftbed::sim::swarm::Pins;
    let pins = Pins { nodes: Some(3), ..Pins::default() };
    let swarm = SimOptions { swarm: Some(pins), duration: Duration::from_secs(10), ..options(5) };
    assert_eq!(swarm.replay_command(), "raftbed sim --seed 5 --nodes 3 --duration 10000ms");
    let (first, second) = (run(&swarm), run(&swarm));
    assert_eq!(first.trace_hash, second.trace_hash, "{}", explain(&first));
    assert_eq!(first.options.nodes, 3, "the pin holds");
    assert!(first.options.swarm.is_some(), "the report keeps what replays it");
    let fixed = SimOptions { duration: Duration::from_secs(10), ..options(5) };
    assert_eq!(fixed.replay_command(), "raftbed sim --seed 5 --no-swarm --duration 10000ms");
}

#[test]
fn watch_resume_skip_is_caught_by_the_watch_checker() {
    let bugs = SimBugs { watch_resume_skip: true, ..SimBugs::default() };
    let report = run(&SimOptions { bugs, ..options(0) });
    let watch = report.watch.as_ref().expect("watchers ran");
    assert!(report.violations.is_empty(), "not as an invariant: {}", explain(&report));
    let gap = watch
        .violations
        .iter()
        .any(|v| matches!(v, jepsen_lite::watch::WatchViolation::Gap { .. }));
    assert!(gap && watch.resumed > 0, "{}", explain(&report));
}

#[test]
fn require_leader_ignored_is_caught_by_the_watch_checker() {
    let bugs = SimBugs { require_leader_ignored: true, ..SimBugs::default() };
    let report = run(&SimOptions { bugs, ..options(0) });
    let watch = report.watch.as_ref().expect("watchers ran");
    assert!(report.violations.is_empty(), "not as an invariant: {}", explain(&report));
    let frozen = watch
        .violations
        .iter()
        .any(|v| matches!(v, jepsen_lite::watch::WatchViolation::LeaderlessNotCanceled { .. }));
    assert!(frozen && watch.no_leader_cancels == 0, "{}", explain(&report));
}

/// A correct run's watchers meet what the checker judges cancels by: members without a
/// leader past the bound, require-leader streams cancelled for it, and watchers cancelled
/// by the leader's auto-compaction; every cancel was justified.
#[test]
fn cancels_for_no_leader_and_for_compaction_happen_and_are_justified() {
    let report = run(&options(3));
    let watch = report.watch.as_ref().expect("watchers ran");
    assert!(watch.violations.is_empty(), "{}", explain(&report));
    assert!(watch.leaderless_spells > 0 && watch.no_leader_cancels > 0, "{}", explain(&report));
    assert!(watch.compacted_cancels > 0, "{}", explain(&report));
    let log = report.watch_log.as_ref().expect("kept");
    assert!(!log.compactions.is_empty() && !log.leaders.timelines.is_empty());
}

/// etcd-io/etcd#7331: a new leader that confirms ReadIndex reads before committing an entry
/// of its term answers from a commit index its predecessor had passed.
#[test]
fn read_index_before_term_commit_is_caught_by_the_history_checker() {
    let bugs = SimBugs { read_index_before_term_commit: true, ..SimBugs::default() };
    assert_caught_by_the_history_checker_alone(bugs, 3);
}

/// Quorums that stay connected and cut off during the faults are judged, and a correct
/// cluster elects a leader in each.
#[test]
fn connected_quorums_during_faults_get_a_leader() {
    // Seed 5 has pre-vote on, which the check needs.
    let report = run(&options(5));
    assert!(report.ok(), "{}", explain(&report));
    assert!(report.connected_windows > 0, "a window was judged: {}", explain(&report));
}

#[test]
fn the_append_workload_replays_and_its_transactions_hold() {
    // List-append transactions over etcd's Txn, checked by jepsen-lite's Elle-style checker.
    let options =
        SimOptions { workload: Workload::Append, duration: Duration::from_secs(20), ..options(0) };
    let report = run(&options);
    let again = run(&options);
    assert_eq!(report.trace_hash, again.trace_hash, "{}", explain(&report));
    assert!(report.ok(), "{}", explain(&report));
    let Some(Ok(transactions)) = &report.transactions else { panic!("{}", explain(&report)) };
    assert!(transactions.valid() && transactions.txns > 1000, "{}", explain(&report));
    assert!(transactions.edges > transactions.txns, "{}", explain(&report));
}

#[test]
fn stale_follower_txn_read_is_caught_by_the_transaction_checker() {
    let bugs = SimBugs { stale_follower_txn_read: true, ..SimBugs::default() };
    let report = run(&SimOptions { bugs, workload: Workload::Append, ..options(0) });
    let verdict = report.verdict();
    assert!(
        matches!(verdict.get(Check::Transactions), Some(Outcome::Violated(_))),
        "{}",
        explain(&report)
    );
    for check in [Check::Invariants, Check::History] {
        assert_eq!(verdict.get(check), Some(&Outcome::Held), "{check:?}: {}", explain(&report));
    }
}

#[test]
fn append_clients_beside_kv_clients_are_judged_by_both_checkers() {
    // The world a swarm seed draws with list-append clients: single-key clients checked for
    // linearizability, transactions for Elle's anomalies, in one run.
    let options = SimOptions { append_clients: 3, duration: Duration::from_secs(20), ..options(0) };
    let report = run(&options);
    assert!(report.ok(), "{}", explain(&report));
    assert!(explain(&report).contains("--append-clients 3"), "{}", explain(&report));
    let verdict = report.verdict();
    for check in [Check::History, Check::Transactions] {
        assert_eq!(verdict.get(check), Some(&Outcome::Held), "{check:?}: {}", explain(&report));
    }
    let Some(Ok(transactions)) = &report.transactions else { panic!("{}", explain(&report)) };
    assert!(transactions.txns > 200, "{}", explain(&report));
    // The isolation bug in the same world: caught by the transaction checker.
    let bugs = SimBugs { stale_follower_txn_read: true, ..SimBugs::default() };
    let report = run(&SimOptions { bugs, ..options });
    let caught = matches!(report.verdict().get(Check::Transactions), Some(Outcome::Violated(_)));
    assert!(caught, "{}", explain(&report));
}

#[test]
fn membership_faults_change_the_configuration_and_unsafe_membership_is_caught() {
    // Seed 0 of the fixed world replaces a node: the removal and the addition are asked back to
    // back. The correct leader takes the second once the first is committed; the one without
    // the rules appends both, and the two configurations' majorities need not meet.
    let report = run(&options(0));
    assert!(report.ok(), "{}", explain(&report));
    let said = |what: &str| report.faults.iter().any(|(_, note)| note.contains(what));
    assert!(said("appended remove") && said("appended add voter"), "{}", explain(&report));
    let bugs = SimBugs { unsafe_membership: true, ..SimBugs::default() };
    let buggy = run(&SimOptions { bugs, ..options(0) });
    let caught = buggy.violations.iter().any(|v| matches!(v, Violation::QuorumsDisjoint { .. }));
    assert!(caught, "{}", explain(&buggy));
}
