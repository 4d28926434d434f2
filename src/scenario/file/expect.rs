//! `[expect]`: the situations each system's run must reach — that the failure the scenario is
//! about really happened (a leader deposed, a lease lapsed, a stale token refused). A run that
//! never reached one is undecided (exit 4), never a pass: its checks proved nothing.

use toml::Spanned;

use super::raw::FileExpect;
use super::{Ctx, ScenarioError};
use crate::scenario::Expect;
use crate::scenario::run::{NAIVE_SITUATIONS, System};
use crate::sim::coverage;

/// The validated `[expect]` table (empty when absent).
pub(super) fn parse(cx: &Ctx<'_>, expect: Option<&FileExpect>) -> Result<Expect, ScenarioError> {
    let Some(expect) = expect else {
        return Ok(Expect::default());
    };
    Ok(Expect {
        raft: names(cx, expect.raft.as_ref(), System::Raft)?,
        naive_failover: names(cx, expect.naive_failover.as_ref(), System::NaiveFailover)?,
        naive_failover_fenced: names(
            cx,
            expect.naive_failover_fenced.as_ref(),
            System::NaiveFailoverFenced,
        )?,
    })
}

fn names(
    cx: &Ctx<'_>,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    system: System,
) -> Result<Vec<String>, ScenarioError> {
    let field = format!("expect.{}", system.name());
    let mut out: Vec<String> = Vec::new();
    for name in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        let text = name.get_ref().trim();
        if let Err(e) = coverage::parse_names(text) {
            return cx.err(name.span(), &field, e);
        }
        if system != System::Raft && !NAIVE_SITUATIONS.contains(&text) {
            return cx.err(
                name.span(),
                &field,
                format!(
                    "{text:?} is a Raft situation; {} reaches only {}",
                    system.name(),
                    NAIVE_SITUATIONS.join(", ")
                ),
            );
        }
        if out.iter().any(|n| n == text) {
            return cx.err(name.span(), &field, format!("{text:?} is listed twice"));
        }
        out.push(text.to_string());
    }
    Ok(out)
}
