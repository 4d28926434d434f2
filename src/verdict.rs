//! One verdict for `raftbed sim`, `replay` and `test`: each check held, was violated, or could
//! not be decided, and one table of exit codes. An undecided check (the history checker hit
//! its time or memory bound, the final read of a real test failed) is never shown as a
//! violation: it says which check and why, and exits 4.

use std::fmt;

/// Exit code: every check held.
pub const EXIT_HELD: u8 = 0;
/// Exit code: a check was violated.
pub const EXIT_VIOLATED: u8 = 1;
/// Exit code: bad input (a malformed scenario or command line, an unreadable file).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: nothing was violated, but some check could not be decided.
pub const EXIT_UNDECIDED: u8 = 4;

/// The worse of two run exit codes: violated, then undecided, then held.
pub fn worse(a: u8, b: u8) -> u8 {
    match (a, b) {
        (EXIT_VIOLATED, _) | (_, EXIT_VIOLATED) => EXIT_VIOLATED,
        (EXIT_UNDECIDED, _) | (_, EXIT_UNDECIDED) => EXIT_UNDECIDED,
        _ => EXIT_HELD,
    }
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It held.
    Held,
    /// It was violated; the text says how.
    Violated(String),
    /// It could not be decided; the text says why.
    Undecided(String),
}

impl Outcome {
    /// The transaction check's: violated by any anomaly, undecided when the cycle search ran
    /// out of budget or the events could not be read.
    pub fn of_transactions(checked: &Result<jepsen_lite::txn::TxnReport, String>) -> Outcome {
        match checked {
            Ok(report) if !report.valid() => {
                let first = report.anomalies.first().map(ToString::to_string).unwrap_or_default();
                Outcome::Violated(format!("{} anomalies: {first}", report.anomalies.len()))
            }
            Ok(report) if report.incomplete => {
                Outcome::Undecided("the cycle search ran out of budget".into())
            }
            Ok(_) => Outcome::Held,
            Err(why) => Outcome::Undecided(why.clone()),
        }
    }

    /// `held`, `violated` or `undecided`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Held => "held",
            Outcome::Violated(_) => "violated",
            Outcome::Undecided(_) => "undecided",
        }
    }

    /// The violation or the reason it is undecided, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Held => None,
            Outcome::Violated(d) | Outcome::Undecided(d) => Some(d),
        }
    }

    /// The history checker's verdict as an outcome.
    pub fn of_history(result: &jepsen_lite::CheckResult) -> Outcome {
        match result {
            jepsen_lite::CheckResult::Linearizable => Outcome::Held,
            jepsen_lite::CheckResult::NotLinearizable(c) => {
                let key = c.key.as_ref().map_or("the register".into(), ToString::to_string);
                Outcome::Violated(format!("not linearizable on key {key}"))
            }
            jepsen_lite::CheckResult::Unknown(why) => Outcome::Undecided(why.clone()),
        }
    }

    /// The watch checker's verdict as an outcome: the first broken guarantee, and how many
    /// streams broke one.
    pub fn of_watches(report: &jepsen_lite::watch::WatchReport) -> Outcome {
        match report.violations.as_slice() {
            [] => Outcome::Held,
            [only] => Outcome::Violated(only.to_string()),
            [first, rest @ ..] => {
                Outcome::Violated(format!("{first} (and {} more streams)", rest.len()))
            }
        }
    }
}

/// The checks a run can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// The cluster-wide invariants, after every step (simulation only).
    Invariants,
    /// The clients' history is linearizable.
    History,
    /// The split-brain detector: no overlapping leadership, lost write or stale read.
    Detector,
    /// Fencing: no stale token accepted, tokens in order.
    Fencing,
    /// After the heal, one leader and a fresh write within the bound (`raftbed sim`).
    Liveness,
    /// Watches delivered the committed history as etcd guarantees (`jepsen_lite::watch`).
    Watch,
    /// The run reached the situations it was required to (`--require`, `[expect]`).
    Coverage,
    /// The clients' transactions show none of Elle's anomalies (`jepsen_lite::txn`).
    Transactions,
}

impl Check {
    /// Its name in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::Invariants => "invariants",
            Check::History => "history",
            Check::Detector => "detector",
            Check::Fencing => "fencing",
            Check::Liveness => "liveness",
            Check::Watch => "watch",
            Check::Coverage => "coverage",
            Check::Transactions => "transactions",
        }
    }
}

impl Outcome {
    /// Held when the run reached every one of `required` (`coverage`), undecided when it
    /// never reached some: a check that never met its situation proved nothing.
    pub fn of_coverage(missing: &[&str]) -> Outcome {
        if missing.is_empty() {
            Outcome::Held
        } else {
            Outcome::Undecided(format!("never reached {}", missing.join(", ")))
        }
    }
}

/// Every check of a run, and its outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    checks: Vec<(Check, Outcome)>,
}

impl Verdict {
    /// Adds a check's outcome.
    pub fn add(&mut self, check: Check, outcome: Outcome) {
        self.checks.push((check, outcome));
    }

    /// With a check's outcome added.
    pub fn with(mut self, check: Check, outcome: Outcome) -> Verdict {
        self.add(check, outcome);
        self
    }

    /// Each check and its outcome, in the order added.
    pub fn checks(&self) -> &[(Check, Outcome)] {
        &self.checks
    }

    /// The outcome of `check`, if it was made.
    pub fn get(&self, check: Check) -> Option<&Outcome> {
        self.checks.iter().find(|(c, _)| *c == check).map(|(_, o)| o)
    }

    /// The run as a whole: violated if any check was, else undecided if any was, else held.
    pub fn overall(&self) -> Outcome {
        let first = |undecided: bool| {
            self.checks.iter().find(|(_, o)| match o {
                Outcome::Violated(_) => !undecided,
                Outcome::Undecided(_) => undecided,
                Outcome::Held => false,
            })
        };
        match (first(false), first(true)) {
            (Some((c, o)), _) => {
                Outcome::Violated(format!("{}: {}", c.name(), o.detail().unwrap_or("")))
            }
            (None, Some((c, o))) => {
                Outcome::Undecided(format!("{}: {}", c.name(), o.detail().unwrap_or("")))
            }
            (None, None) => Outcome::Held,
        }
    }

    /// Whether every check held.
    pub fn held(&self) -> bool {
        self.overall() == Outcome::Held
    }

    /// The exit code: 0 held, 1 violated, 4 undecided.
    pub fn exit_code(&self) -> u8 {
        match self.overall() {
            Outcome::Held => EXIT_HELD,
            Outcome::Violated(_) => EXIT_VIOLATED,
            Outcome::Undecided(_) => EXIT_UNDECIDED,
        }
    }

    /// `{"overall": "held", "checks": {"history": {"outcome": "held"}, ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut checks = serde_json::Map::new();
        for (check, outcome) in &self.checks {
            let mut entry = serde_json::json!({ "outcome": outcome.word() });
            if let Some(detail) = outcome.detail() {
                entry["detail"] = detail.into();
            }
            checks.insert(check.name().into(), entry);
        }
        let overall = self.overall();
        serde_json::json!({
            "overall": overall.word(),
            "detail": overall.detail(),
            "checks": checks,
        })
    }

    /// The exit code of several runs together (a sweep, a side-by-side replay).
    pub fn worst<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> u8 {
        verdicts.into_iter().map(Verdict::exit_code).fold(EXIT_HELD, worse)
    }
}

impl fmt::Display for Verdict {
    /// `checks: invariants held, history undecided (timed out ...), ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .checks
            .iter()
            .map(|(check, outcome)| match outcome.detail() {
                None => format!("{} {}", check.name(), outcome.word()),
                Some(detail) => format!("{} {} ({detail})", check.name(), outcome.word()),
            })
            .collect();
        write!(f, "checks: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_beats_an_undecided_check_and_undecided_beats_held() {
        let held = Verdict::default().with(Check::History, Outcome::Held);
        assert_eq!((held.exit_code(), held.held()), (EXIT_HELD, true));
        let undecided = held.clone().with(Check::Detector, Outcome::Undecided("why".into()));
        assert_eq!(undecided.exit_code(), EXIT_UNDECIDED);
        assert_eq!(undecided.overall(), Outcome::Undecided("detector: why".into()));
        let violated = undecided.clone().with(Check::Fencing, Outcome::Violated("how".into()));
        assert_eq!(violated.exit_code(), EXIT_VIOLATED);
        assert_eq!(Verdict::worst([&held, &undecided]), EXIT_UNDECIDED);
        assert_eq!(Verdict::worst([&violated, &undecided]), EXIT_VIOLATED);
        assert_eq!(undecided.to_json()["checks"]["detector"]["outcome"], "undecided");
        assert_eq!(undecided.to_string(), "checks: history held, detector undecided (why)");
    }
}
