//! Generated histories that are linearizable by construction: concurrent clients run operations
//! on a set of keys; each operation takes effect at a random instant inside its interval, and
//! its result is computed from a real sequential store in that order. Used to test and to
//! measure the checker at sizes no recorded history reaches.

use std::collections::BTreeMap;

use crate::history::{Event, EventMeta, EventType, History, Process};
use crate::resolved::Resolved;
use crate::value::Value;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Seeds everything.
    pub seed: u64,
    /// Operations in all.
    pub ops: usize,
    /// Keys (`kv` model); 0 means a single register with `read`/`write`/`cas`.
    pub keys: usize,
    /// Concurrent clients, each running one operation at a time.
    pub clients: usize,
    /// Fraction (0..=1) of operations whose outcome is lost: recorded as `info`, and taking
    /// effect or not at random.
    pub indeterminate: f64,
    /// Keys only: deletes become appends, so a key is only ever reset by a put (as in
    /// Porcupine's kv tests).
    pub no_deletes: bool,
}

/// A small seeded generator (SplitMix64), for generated histories here and in the tests and
/// benches.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

struct Planned {
    client: u64,
    key: Option<Value>,
    f: &'static str,
    input: Value,
    invoke: u64,
    effect: u64,
    complete: u64,
    lost: bool,
    /// A cas whose compared value is chosen as it takes effect: the current value three times
    /// in four (it succeeds), the one before otherwise (it fails).
    choose_from: bool,
}

/// Generates a linearizable history (see the module docs).
pub fn linearizable(options: &GenOptions) -> History {
    linearizable_resolved(options).0
}

/// A linearizable history with the truth about its writes: every write's invocation names a
/// session (`client` = process + 1, `seq` = its place in the run, from 1), and the resolved
/// file says which of the lost ones took effect.
pub fn linearizable_resolved(options: &GenOptions) -> (History, Resolved) {
    let mut rng = Rng(options.seed ^ 0x6a09_e667_f3bc_c908);
    let clients = options.clients.max(1) as u64;
    let mut next_start: Vec<u64> = (0..clients).map(|_| rng.below(1_000)).collect();
    let mut planned = Vec::with_capacity(options.ops);
    for seq in 0..options.ops {
        // The client free the earliest starts the next operation.
        let client = (0..clients).min_by_key(|c| next_start[*c as usize]).expect("a client");
        let invoke = next_start[client as usize];
        let effect = invoke + 1 + rng.below(2_000);
        let complete = effect + 1 + rng.below(2_000);
        next_start[client as usize] = complete + 1 + rng.below(500);
        let (key, mut f, mut input) = choose_op(&mut rng, options.keys, client, seq);
        if options.no_deletes && f == "delete" {
            (f, input) = ("append", Value::Str(format!("[{client}.{seq}]")));
        }
        let lost = rng.chance(options.indeterminate);
        let choose_from = false;
        planned.push(Planned {
            client,
            key,
            f,
            input,
            invoke,
            effect,
            complete,
            lost,
            choose_from,
        });
    }
    let outputs = apply_in_effect_order(&mut rng, &mut planned);
    stamp(&planned, outputs)
}

/// The history of planned operations and their outcomes, in time order, and the fates of the
/// writes.
fn stamp(planned: &[Planned], outputs: Vec<Outcome>) -> (History, Resolved) {
    let mut stamped: Vec<(u64, usize, Event)> = Vec::with_capacity(2 * planned.len());
    let mut resolved = Resolved::new();
    for (i, (op, output)) in planned.iter().zip(outputs).enumerate() {
        let read = op.f == "read" || op.f == "get";
        let session = (op.client + 1, i as u64 + 1);
        let event = |kind, value, meta| Event {
            process: Process::Client(op.client),
            kind,
            f: op.f.to_string(),
            key: op.key.clone(),
            value,
            time: None,
            line: 0,
            meta,
        };
        let meta = if read {
            EventMeta::default()
        } else {
            EventMeta { client: Some(session.0), seq: Some(session.1), ..EventMeta::default() }
        };
        let invoke_value = if read { Value::Null } else { op.input.clone() };
        stamped.push((op.invoke, 2 * i, event(EventType::Invoke, invoke_value, meta)));
        let event = |kind, value| event(kind, value, EventMeta::default());
        if !read {
            resolved.insert(session.0, session.1, !matches!(output, Outcome::Lost(false)));
        }
        let completion = match output {
            Outcome::Lost(_) => event(EventType::Info, op.input.clone()),
            Outcome::Failed => event(EventType::Fail, op.input.clone()),
            Outcome::Done(value) => event(EventType::Ok, value),
        };
        stamped.push((op.complete, 2 * i + 1, completion));
    }
    stamped.sort_by_key(|(time, order, _)| (*time, *order));
    let events = stamped
        .into_iter()
        .map(|(time, _, mut event)| {
            event.time = Some(time as i64);
            event
        })
        .collect();
    (History { events }, resolved)
}

fn choose_op(
    rng: &mut Rng,
    keys: usize,
    client: u64,
    seq: usize,
) -> (Option<Value>, &'static str, Value) {
    let unique = format!("{client}.{seq}");
    if keys == 0 {
        return match rng.below(3) {
            0 => (None, "read", Value::Null),
            1 => (None, "write", Value::Int(rng.below(5) as i64)),
            _ => {
                let pair = vec![Value::Int(rng.below(5) as i64), Value::Int(rng.below(5) as i64)];
                (None, "cas", Value::List(pair))
            }
        };
    }
    let key = Some(Value::Str(format!("k{}", rng.below(keys as u64))));
    match rng.below(10) {
        0..=3 => (key, "get", Value::Null),
        4..=5 => (key, "put", Value::Str(unique)),
        6..=8 => (key, "append", Value::Str(format!("[{unique}]"))),
        _ => (key, "delete", Value::Null),
    }
}

enum Outcome {
    Done(Value),
    Failed,
    /// Recorded as `info`; whether it took effect.
    Lost(bool),
}

/// Runs the operations against a sequential store in effect order; returns each one's outcome.
fn apply_in_effect_order(rng: &mut Rng, planned: &mut [Planned]) -> Vec<Outcome> {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|i| (planned[*i].effect, *i));
    let mut store: BTreeMap<Option<Value>, Value> = BTreeMap::new();
    let mut before: BTreeMap<Option<Value>, Value> = BTreeMap::new();
    let mut outcomes: Vec<Option<Outcome>> = (0..planned.len()).map(|_| None).collect();
    for i in order {
        let op = &mut planned[i];
        let current = store.get(&op.key).cloned().unwrap_or(Value::Null);
        if op.choose_from {
            let from = if rng.chance(0.75) {
                current.clone()
            } else {
                before.get(&op.key).cloned().unwrap_or(Value::Str("never".into()))
            };
            let to = op.input.as_pair().expect("generated cas has a pair").1.clone();
            op.input = Value::List(vec![from, to]);
        }
        // A lost operation takes effect or not, at random; its result is never seen.
        if op.lost && rng.chance(0.5) {
            outcomes[i] = Some(Outcome::Lost(false));
            continue;
        }
        let (next, result) = match op.f {
            "read" | "get" => (current.clone(), Outcome::Done(current.clone())),
            "write" | "put" => (op.input.clone(), Outcome::Done(op.input.clone())),
            "delete" => (Value::Null, Outcome::Done(Value::Null)),
            "append" => {
                let appended = match (&current, &op.input) {
                    (Value::Str(s), Value::Str(t)) => Value::Str(format!("{s}{t}")),
                    _ => op.input.clone(),
                };
                (appended, Outcome::Done(op.input.clone()))
            }
            "cas" => {
                let (from, to) = op.input.as_pair().expect("generated cas has a pair");
                if *from == current {
                    (to.clone(), Outcome::Done(op.input.clone()))
                } else {
                    (current.clone(), Outcome::Failed)
                }
            }
            other => unreachable!("generator made unknown op {other}"),
        };
        if next != current {
            before.insert(op.key.clone(), current);
        }
        store.insert(op.key.clone(), next);
        outcomes[i] = Some(if op.lost { Outcome::Lost(true) } else { result });
    }
    outcomes.into_iter().map(|o| o.expect("every op applied")).collect()
}

/// What `kv` generates: the shape of a key-value store's history under a Jepsen-style
/// workload, where every write carries a value of its own.
#[derive(Clone, Debug)]
pub struct KvGen {
    /// Seeds everything.
    pub seed: u64,
    /// Operations in all.
    pub ops: usize,
    /// Keys `k0`...
    pub keys: usize,
    /// Key popularity: key `k` (from 0) is chosen with weight `1 / (k + 1)^zipf`; 0 is
    /// uniform.
    pub zipf: f64,
    /// Concurrent processes, each running one operation at a time.
    pub processes: usize,
    /// The fraction of writes (put, cas, delete) whose outcome is lost: recorded as `info`,
    /// taking effect or not at random. The process then continues as a new one.
    pub indeterminate: f64,
    /// The shares of get, put, cas and delete.
    pub mix: [f64; 4],
    /// Values written: 0 for a value of its own per write; else drawn from this many (as
    /// Knossos' cas-register tests do), so a read no longer names the write it saw.
    pub values: u64,
}

impl KvGen {
    /// `ops` operations on one hot key from `processes` processes, `indeterminate` of the
    /// writes lost: 40% get, 30% put, 20% cas, 10% delete.
    pub fn hot_key(seed: u64, ops: usize, processes: usize, indeterminate: f64) -> KvGen {
        let mix = [0.4, 0.3, 0.2, 0.1];
        KvGen { seed, ops, keys: 1, zipf: 0.0, processes, indeterminate, mix, values: 0 }
    }
}

/// A linearizable key-value history (get, put, cas, delete; every put and cas writes a value
/// no other operation writes, unless `values` says otherwise). Each operation takes effect at a random instant inside its
/// interval and reads or writes a real sequential store in that order.
pub fn kv(options: &KvGen) -> History {
    kv_resolved(options).0
}

/// `kv`, with the truth about its writes (as `linearizable_resolved`).
pub fn kv_resolved(options: &KvGen) -> (History, Resolved) {
    let mut rng = Rng(options.seed ^ 0xbb67_ae85_84ca_a73b);
    let processes = options.processes.max(1);
    let weights: Vec<f64> =
        (0..options.keys.max(1)).map(|k| 1.0 / ((k + 1) as f64).powf(options.zipf)).collect();
    let total: f64 = weights.iter().sum();
    let mut next_start: Vec<u64> = (0..processes).map(|_| rng.below(1_000)).collect();
    let mut process_ids: Vec<u64> = (0..processes as u64).collect();
    let mut planned = Vec::with_capacity(options.ops);
    for seq in 0..options.ops {
        let p = (0..processes).min_by_key(|c| next_start[*c]).expect("a process");
        let invoke = next_start[p];
        let effect = invoke + 1 + rng.below(2_000);
        let complete = effect + 1 + rng.below(2_000);
        next_start[p] = complete + 1 + rng.below(500);
        let key = pick(&mut rng, &weights, total);
        let share = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let unique = match options.values {
            0 => Value::Str(format!("{p}.{seq}")),
            n => Value::Str(rng.below(n).to_string()),
        };
        let (f, input) = match share {
            x if x < options.mix[0] => ("get", Value::Null),
            x if x < options.mix[0] + options.mix[1] => ("put", unique),
            // The value compared is chosen when the cas takes effect (`apply_in_effect_order`).
            x if x < options.mix[0] + options.mix[1] + options.mix[2] => {
                ("cas", Value::List(vec![Value::Null, unique]))
            }
            _ => ("delete", Value::Null),
        };
        let lost = f != "get" && rng.chance(options.indeterminate);
        let client = process_ids[p];
        if lost {
            process_ids[p] += processes as u64;
        }
        let key = Some(Value::Str(format!("k{key}")));
        let choose_from = f == "cas";
        planned.push(Planned {
            client,
            key,
            f,
            input,
            invoke,
            effect,
            complete,
            lost,
            choose_from,
        });
    }
    let outputs = apply_in_effect_order(&mut rng, &mut planned);
    stamp(&planned, outputs)
}

/// A key index from 0, by weight.
fn pick(rng: &mut Rng, weights: &[f64], total: f64) -> usize {
    let mut x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (k, w) in weights.iter().enumerate() {
        if x < *w {
            return k;
        }
        x -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, CheckResult, ModelKind, RegisterModel, check};

    #[test]
    fn generated_histories_are_linearizable() {
        for seed in 0..20 {
            for keys in [0, 3] {
                let options = GenOptions {
                    seed,
                    ops: 300,
                    keys,
                    clients: 6,
                    indeterminate: 0.1,
                    no_deletes: false,
                };
                let history = linearizable(&options);
                let kind = if keys == 0 { ModelKind::CasRegister } else { ModelKind::Kv };
                let report =
                    check(&RegisterModel::new(kind), &history, &CheckOptions::default()).unwrap();
                assert_eq!(report.result, CheckResult::Linearizable, "seed {seed} keys {keys}");
            }
        }
    }
}
