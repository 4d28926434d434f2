//! Finding and naming dependency cycles, after Elle.
//!
//! Each class is a set of edge kinds a cycle may use, an *anchor* kind it must use, and a rule
//! on its rw edges: G0 (ww only), G1c (ww and wr, at least one wr), G-single (exactly one rw),
//! G2-item (two or more rw); the `-process` and `-realtime` variants add those edges and must
//! use one. For each class the graph is cut to its kinds and split into strongly connected
//! components (Tarjan); in each, a breadth-first search from an anchor edge's head back to its
//! tail, over states (transaction, rw edges so far, a wr seen), finds the shortest cycle through
//! it that keeps the rule. A variant is searched only where its base class found nothing: a
//! cycle that needs no real-time edge is reported as the base anomaly alone.
//!
//! The searches share a budget of state visits, so a huge component cannot hang a check; a
//! class cut short sets `incomplete`, as Elle falls back when its own search times out.

use std::collections::BTreeSet;

use super::graph::Graph;
use super::{Anomaly, Dep, Step};

/// How many search states (transaction, rw count, wr seen) all cycle searches may visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchBudget(pub u64);

impl Default for SearchBudget {
    fn default() -> Self {
        SearchBudget(200_000_000)
    }
}

/// At most this many example cycles of one class.
const EXAMPLES: usize = 8;

/// How many rw edges a class's cycles have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RwRule {
    None,
    One,
    TwoOrMore,
}

#[derive(Clone, Copy)]
struct Class {
    name: &'static str,
    kinds: u8,
    anchor: Dep,
    rw: RwRule,
    needs_wr: bool,
}

const WW: u8 = Dep::Ww as u8;
const WR: u8 = Dep::Wr as u8;
const RW: u8 = Dep::Rw as u8;

const BASES: [Class; 4] = [
    Class { name: "G0", kinds: WW, anchor: Dep::Ww, rw: RwRule::None, needs_wr: false },
    Class { name: "G1c", kinds: WW | WR, anchor: Dep::Wr, rw: RwRule::None, needs_wr: true },
    Class {
        name: "G-single",
        kinds: WW | WR | RW,
        anchor: Dep::Rw,
        rw: RwRule::One,
        needs_wr: false,
    },
    Class {
        name: "G2-item",
        kinds: WW | WR | RW,
        anchor: Dep::Rw,
        rw: RwRule::TwoOrMore,
        needs_wr: false,
    },
];

/// Finds the cycles of every class whose name (or whose variants' names) `wanted` holds.
pub(super) fn search(
    graph: &Graph,
    wanted: &BTreeSet<&'static str>,
    budget: SearchBudget,
) -> (Vec<Anomaly>, bool) {
    let mut found = Vec::new();
    // Most histories have no cycle at all: one pass over every edge kind says so.
    if components(graph, u8::MAX).members.iter().all(|m| m.len() < 2) {
        return (found, false);
    }
    let mut searcher = Searcher::new(graph, budget.0);
    for base in &BASES {
        let before = found.len();
        if wanted.contains(base.name) {
            searcher.class(base, base.name.to_string(), &mut found);
        }
        if found.len() > before {
            continue;
        }
        for (extra, suffix) in [(Dep::Process, "process"), (Dep::Realtime, "realtime")] {
            let name = format!("{}-{suffix}", base.name);
            if !wanted.contains(name.as_str()) {
                continue;
            }
            let variant = Class { kinds: base.kinds | extra.bit(), anchor: extra, ..*base };
            searcher.class(&variant, name, &mut found);
        }
    }
    (found, searcher.exhausted)
}

struct Searcher<'g> {
    graph: &'g Graph,
    left: u64,
    exhausted: bool,
    /// Per search state: the generation (search) that last reached it, the transaction and
    /// edge kind it was reached by, and the state it was reached from.
    seen: Vec<u32>,
    parent: Vec<(u32, Dep)>,
    parent_state: Vec<usize>,
    generation: u32,
}

/// The parent state of the search's first state (the anchor edge's head).
const START: usize = usize::MAX;

/// States per transaction: rw count 0, 1, 2+ times wr seen or not.
const STATES: usize = 6;

fn state(txn: u32, rw: u8, wr: bool) -> usize {
    txn as usize * STATES + rw as usize * 2 + usize::from(wr)
}

impl<'g> Searcher<'g> {
    fn new(graph: &'g Graph, budget: u64) -> Searcher<'g> {
        let states = graph.out.len() * STATES;
        Searcher {
            graph,
            left: budget,
            exhausted: false,
            seen: vec![0; states],
            parent: vec![(0, Dep::Ww); states],
            parent_state: vec![START; states],
            generation: 0,
        }
    }

    fn class(&mut self, class: &Class, name: String, found: &mut Vec<Anomaly>) {
        let components = components(self.graph, class.kinds);
        let mut examples = 0;
        'components: for (component, members) in components.members.iter().enumerate() {
            if members.len() < 2 {
                continue;
            }
            for &from in members {
                for out in &self.graph.out[from as usize] {
                    if out.mask & class.anchor.bit() == 0
                        || components.of[out.to as usize] != component as u32
                    {
                        continue;
                    }
                    if self.exhausted {
                        return;
                    }
                    let Some(steps) =
                        self.cycle_through(class, from, out.to, &components, component)
                    else {
                        continue;
                    };
                    found.push(Anomaly::Cycle { name: name.clone(), steps });
                    examples += 1;
                    if examples == EXAMPLES {
                        return;
                    }
                    continue 'components;
                }
            }
        }
    }

    /// The shortest cycle `from` → `to` (by the anchor) → ... → `from` keeping the class's rule,
    /// within one component.
    fn cycle_through(
        &mut self,
        class: &Class,
        from: u32,
        to: u32,
        components: &Components,
        component: usize,
    ) -> Option<Vec<Step>> {
        self.generation += 1;
        let generation = self.generation;
        let rw0 = u8::from(class.anchor == Dep::Rw);
        let wr0 = class.anchor == Dep::Wr;
        let start = state(to, rw0, wr0);
        self.seen[start] = generation;
        self.parent[start] = (from, class.anchor);
        self.parent_state[start] = START;
        let mut queue = std::collections::VecDeque::from([(to, rw0, wr0)]);
        while let Some((txn, rw, wr)) = queue.pop_front() {
            if self.left == 0 {
                self.exhausted = true;
                return None;
            }
            self.left -= 1;
            if txn == from && accepts(class, rw, wr) {
                return Some(self.steps(state(txn, rw, wr)));
            }
            if txn == from {
                continue;
            }
            let here = state(txn, rw, wr);
            for out in &self.graph.out[txn as usize] {
                if components.of[out.to as usize] != component as u32 {
                    continue;
                }
                for dep in Dep::ALL {
                    if out.mask & dep.bit() & class.kinds == 0 {
                        continue;
                    }
                    let rw = (rw + u8::from(dep == Dep::Rw)).min(2);
                    if class.rw != RwRule::TwoOrMore && rw > u8::from(class.rw == RwRule::One) {
                        continue;
                    }
                    let wr = wr || dep == Dep::Wr;
                    let next = state(out.to, rw, wr);
                    if self.seen[next] != generation {
                        self.seen[next] = generation;
                        self.parent[next] = (txn, dep);
                        self.parent_state[next] = here;
                        queue.push_back((out.to, rw, wr));
                    }
                }
            }
        }
        None
    }

    /// Walks the parents back from the goal state to the anchor edge.
    fn steps(&self, goal: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut at = goal;
        loop {
            let (previous, dep) = self.parent[at];
            steps.push(self.step(previous, (at / STATES) as u32, dep));
            match self.parent_state[at] {
                START => break,
                before => at = before,
            }
        }
        steps.reverse();
        steps
    }

    fn step(&self, from: u32, to: u32, dep: Dep) -> Step {
        let out = self.graph.out[from as usize].iter().find(|o| o.to == to).expect("an edge");
        Step { from: from as usize, to: to as usize, dep, key: self.graph.key(out, dep) }
    }
}

fn accepts(class: &Class, rw: u8, wr: bool) -> bool {
    let rw_ok = match class.rw {
        RwRule::None => rw == 0,
        RwRule::One => rw == 1,
        RwRule::TwoOrMore => rw >= 2,
    };
    rw_ok && (wr || !class.needs_wr)
}

/// Strongly connected components of the graph cut to `kinds`.
struct Components {
    of: Vec<u32>,
    members: Vec<Vec<u32>>,
}

/// Tarjan's algorithm, iteratively.
fn components(graph: &Graph, kinds: u8) -> Components {
    let n = graph.out.len();
    const NONE: u32 = u32::MAX;
    let (mut index, mut low, mut of) = (vec![NONE; n], vec![0u32; n], vec![NONE; n]);
    let (mut on_stack, mut stack, mut members) = (vec![false; n], Vec::new(), Vec::new());
    let mut next = 0u32;
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut edge)) = call.last_mut() {
            let outs = &graph.out[v];
            if let Some(out) = outs.get(*edge) {
                *edge += 1;
                if out.mask & kinds == 0 {
                    continue;
                }
                let w = out.to as usize;
                if index[w] == NONE {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let id = members.len() as u32;
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    of[w] = id;
                    component.push(w as u32);
                    if w == v {
                        break;
                    }
                }
                members.push(component);
            }
        }
    }
    Components { of, members }
}
