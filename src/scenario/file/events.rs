//! `[[event]]`: the timeline, one action per event, sorted by time; restarts follow crashes
//! and resumes follow pauses.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::names::Names;
use super::raw::FileEvent;
use super::{Ctx, MAX_DURATION, ScenarioError, links, parse_duration};
use crate::raft::{MembershipChange as C, NodeId};
use crate::scenario::{Action, Event, show};

/// The validated timeline.
pub(super) fn parse(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    file_events: &[Spanned<FileEvent>],
    duration: Duration,
) -> Result<Vec<Event>, ScenarioError> {
    let mut events: Vec<Event> = Vec::new();
    for (i, event) in file_events.iter().enumerate() {
        let e = event.get_ref();
        let field = format!("event[{i}]");
        let line = cx.line(event.span());
        let at = cx.duration(&e.at, &format!("{field}.at"), true, MAX_DURATION)?;
        if at >= duration {
            let message =
                format!("{} is not before the end of the scenario ({})", show(at), show(duration));
            return cx.err(e.at.span(), &format!("{field}.at"), message);
        }
        let mut actions = Vec::new();
        partition(cx, names, e, &field, event.span(), &mut actions)?;
        if let Some(c) = &e.cut {
            actions.push(Action::Cut(directed(cx, names, c, &format!("{field}.cut"))?));
        }
        if let Some(c) = &e.uncut {
            actions.push(Action::Uncut(directed(cx, names, c, &format!("{field}.uncut"))?));
        }
        if e.heal == Some(true) {
            actions.push(Action::Heal);
        }
        if e.isolate_leader == Some(true) {
            actions.push(Action::IsolateLeader);
        }
        for (value, name, make) in [
            (&e.crash, "crash", Action::Crash as fn(usize) -> Action),
            (&e.restart, "restart", Action::Restart),
            (&e.pause, "pause", Action::Pause),
            (&e.resume, "resume", Action::Resume),
            (&e.promote, "promote", |n| Action::Member(C::AddVoter(NodeId(n as u64 + 1)))),
            (&e.remove, "remove", |n| Action::Member(C::Remove(NodeId(n as u64 + 1)))),
        ] {
            if let Some(v) = value {
                actions.push(make(names.node_field(cx, v, &format!("{field}.{name}"))?));
            }
        }
        clock(cx, names, e, &field, event.span(), &mut actions)?;
        member(cx, names, e, &field, event.span(), &mut actions)?;
        link(cx, names, e, &field, event.span(), &mut actions)?;
        if let Some(text) = &e.note {
            actions.push(Action::Note(note(cx, text, &format!("{field}.note"))?));
        }
        match actions.len() {
            0 => return cx.err(event.span(), &field, "an event needs one action: partition, cut, uncut, heal, isolate_leader, crash, restart, pause, resume, drift, jump, loss, latency, note, add, promote, remove or replace"),
            1 => events.push(Event { at, action: actions.pop().expect("one"), line }),
            _ => return cx.err(event.span(), &field, "one action per event: split it into several [[event]]s"),
        }
    }
    events.sort_by_key(|e| e.at);
    check_sequence(cx, &events, names.nodes)?;
    Ok(events)
}

/// `partition` (and `one_way`): sides of sites or nodes that do not overlap.
fn partition(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    e: &FileEvent,
    field: &str,
    span: Range<usize>,
    actions: &mut Vec<Action>,
) -> Result<(), ScenarioError> {
    let Some(p) = &e.partition else {
        if e.one_way.is_some() {
            return cx.err(span, &format!("{field}.one_way"), "one_way goes with partition");
        }
        return Ok(());
    };
    let field = format!("{field}.partition");
    if p.get_ref().len() < 2 {
        return cx.err(p.span(), &field, "a partition needs at least two sides");
    }
    let mut sides = Vec::new();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for side in p.get_ref() {
        let mut targets = Vec::new();
        for name in side {
            let Some((target, members)) = names.target(name) else {
                return cx.err(p.span(), &field, format!("unknown site or node {name:?}"));
            };
            if let Some(m) = members.into_iter().find(|m| !seen.insert(*m)) {
                let message = format!("the sides overlap: {} is on two sides", names.nodes[m]);
                return cx.err(p.span(), &field, message);
            }
            targets.push(target);
        }
        if targets.is_empty() {
            return cx.err(p.span(), &field, "a side is empty");
        }
        sides.push(targets);
    }
    actions.push(Action::Partition { sides, one_way: e.one_way.unwrap_or(false) });
    Ok(())
}

/// `cut` or `uncut`: directed links `[from, to]` between two different nodes.
fn directed(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    value: &Spanned<Vec<Vec<String>>>,
    field: &str,
) -> Result<Vec<(usize, usize)>, ScenarioError> {
    if value.get_ref().is_empty() {
        return cx.err(value.span(), field, "names no link: list [from, to] pairs of nodes");
    }
    let mut links = Vec::new();
    for pair in value.get_ref() {
        let [from, to] = pair.as_slice() else {
            return cx.err(value.span(), field, format!("{pair:?}: a link is [from, to]"));
        };
        let node = |name: &str| match names.node(name) {
            Some(n) => Ok(n),
            None => cx.err(value.span(), field, names.unknown_node(name)),
        };
        let (a, b) = (node(from)?, node(to)?);
        if a == b {
            return cx.err(value.span(), field, format!("{from} -> {to}: a link joins two nodes"));
        }
        links.push((a, b));
    }
    Ok(links)
}

/// `node` with `drift` (a rate from 0.1 to 10) or `jump` (forward, at most an hour).
fn clock(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    e: &FileEvent,
    field: &str,
    span: Range<usize>,
    actions: &mut Vec<Action>,
) -> Result<(), ScenarioError> {
    if e.drift.is_none() && e.jump.is_none() {
        if e.node.is_some() {
            return cx.err(span, &format!("{field}.node"), "node goes with drift or jump");
        }
        return Ok(());
    }
    let Some(n) = &e.node else {
        return cx.err(span, &format!("{field}.node"), "a clock event names its node");
    };
    let n = names.node_field(cx, n, &format!("{field}.node"))?;
    if let Some(d) = &e.drift {
        let rate =
            cx.within(d, &format!("{field}.drift"), 0.1..=10.0, "a clock rate from 0.1 to 10")?;
        actions.push(Action::Drift(n, rate));
    }
    if let Some(j) = &e.jump {
        let jump_field = format!("{field}.jump");
        if j.get_ref().starts_with('-') {
            return cx.err(j.span(), &jump_field, "a monotonic clock only jumps forward");
        }
        let delta = parse_duration(j.get_ref().trim_start_matches('+'))
            .map_or_else(|m| cx.err(j.span(), &jump_field, m), Ok)?;
        if delta > MAX_DURATION {
            return cx.err(
                j.span(),
                &jump_field,
                format!("a jump is at most {}", show(MAX_DURATION)),
            );
        }
        actions.push(Action::Jump(n, delta));
    }
    Ok(())
}

/// Membership: `add` (a learner with `learner = true`), and `replace` with `with`, the node
/// that takes its place (`promote` and `remove` name a node alone, as `crash` does).
fn member(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    e: &FileEvent,
    field: &str,
    span: Range<usize>,
    actions: &mut Vec<Action>,
) -> Result<(), ScenarioError> {
    let id = |n: usize| NodeId(n as u64 + 1);
    if e.learner.is_some() && e.add.is_none() {
        return cx.err(span, &format!("{field}.learner"), "learner goes with add");
    }
    if e.with.is_some() != e.replace.is_some() {
        let message = "replace names the node replaced, and with the node that takes its place";
        return cx.err(span, &format!("{field}.with"), message);
    }
    if let Some(n) = &e.add {
        let n = names.node_field(cx, n, &format!("{field}.add"))?;
        let learner = e.learner.unwrap_or(false);
        actions.push(Action::Member(if learner {
            C::AddLearner(id(n))
        } else {
            C::AddVoter(id(n))
        }));
    }
    if let (Some(old), Some(new)) = (&e.replace, &e.with) {
        let old = names.node_field(cx, old, &format!("{field}.replace"))?;
        let new = names.node_field(cx, new, &format!("{field}.with"))?;
        if old == new {
            return cx.err(span, &format!("{field}.with"), "a node cannot replace itself");
        }
        actions.push(Action::Replace(old, new));
    }
    Ok(())
}

/// `between` two sites or nodes with `loss` or `latency`.
fn link(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    e: &FileEvent,
    field: &str,
    span: Range<usize>,
    actions: &mut Vec<Action>,
) -> Result<(), ScenarioError> {
    if e.loss.is_none() && e.latency.is_none() {
        if e.between.is_some() {
            return cx.err(span, &format!("{field}.between"), "between goes with loss or latency");
        }
        return Ok(());
    }
    let Some(between) = &e.between else {
        let message = "loss and latency events name the two sites or nodes they apply between";
        return cx.err(span, &format!("{field}.between"), message);
    };
    let (a, b) = names.target_pair(cx, between, &format!("{field}.between"))?;
    if let Some(l) = &e.loss {
        let rate = links::loss(cx, l, &format!("{field}.loss"))?;
        actions.push(Action::Loss(a.clone(), b.clone(), rate));
    }
    if let Some(l) = &e.latency {
        actions.push(Action::SetLatency(a, b, cx.latency(l, &format!("{field}.latency"))?));
    }
    Ok(())
}

/// The most a note may say.
const MAX_NOTE: usize = 1000;

/// A note: one line of printable text.
fn note(cx: &Ctx<'_>, text: &Spanned<String>, field: &str) -> Result<String, ScenarioError> {
    let t = text.get_ref();
    if t.trim().is_empty() || t.len() > MAX_NOTE || t.chars().any(char::is_control) {
        let message = format!("a note is one line of 1 to {MAX_NOTE} printable characters");
        return cx.err(text.span(), field, message);
    }
    Ok(t.clone())
}

/// Restarts follow crashes, resumes follow pauses.
fn check_sequence(cx: &Ctx<'_>, events: &[Event], nodes: &[String]) -> Result<(), ScenarioError> {
    let mut crashed = BTreeSet::new();
    let mut paused = BTreeSet::new();
    for event in events {
        let fail = |what: String| ScenarioError {
            file: cx.file.into(),
            line: event.line,
            field: "event".into(),
            message: what,
        };
        match &event.action {
            Action::Crash(n) if !crashed.insert(*n) => {
                return Err(fail(format!("{} is crashed twice without a restart", nodes[*n])));
            }
            Action::Restart(n) if !crashed.remove(n) => {
                return Err(fail(format!("{} is restarted but was not crashed", nodes[*n])));
            }
            Action::Pause(n) if !paused.insert(*n) => {
                return Err(fail(format!("{} is paused twice without a resume", nodes[*n])));
            }
            Action::Resume(n) if !paused.remove(n) => {
                return Err(fail(format!("{} is resumed but was not paused", nodes[*n])));
            }
            _ => {}
        }
    }
    Ok(())
}
