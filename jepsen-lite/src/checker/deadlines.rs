//! Deadlines derived from what operations observe. Where a value is left by exactly one
//! operation `p` (and is not the initial state), every completed operation that requires that
//! value (a read of it, a cas from it) must be linearized after `p`. So `p` must also be
//! linearized before everything that has to follow that reader: `p` gets the reader's
//! deadline, as if it had returned then. And an indeterminate `p` whose value a completed
//! operation requires must have taken effect: it becomes mandatory, with that deadline. The
//! deadline of an operation is the earliest of its own return and of the deadlines of those
//! that require its value, along chains of compare-and-sets.
//!
//! Correctness: let `r` require value `v`, left only by `p`, with deadline `d_r` (every
//! operation invoked after `d_r` follows `r` in any linearization, by real time or by this
//! argument one link down the chain). In a linearization, `r` runs in state `v`, which only
//! `p` can have left, so `p` precedes `r`, and so every operation invoked after `d_r`. That
//! is exactly the constraint a return at `d_r` imposes, and `p` cannot be left out. A `p`
//! invoked after `d_r` can precede nothing invoked earlier, and the history is then not
//! linearizable; its deadline is clamped to its invocation, which keeps the search's event
//! list well formed and changes no verdict.
//!
//! This does for the search what the history does not say outright: it turns "a read saw
//! this value" into real-time order, which both shrinks the window of candidates and settles
//! indeterminate writes that were observed.

use std::collections::HashMap;

use super::search::PreparedOp;
use crate::model::{Footprint, Leaves, Model};

/// Each op's deadline: its return, or a derived one (module docs); `None` for an
/// indeterminate op that nothing forces.
/// `footprints` are the ops' own, in order.
pub(super) fn derive<M: Model>(
    model: &M,
    ops: &[PreparedOp<M::Input, M::Output>],
    footprints: &[Footprint<M::State>],
) -> Vec<Option<u64>> {
    let mut deadline: Vec<Option<u64>> = ops.iter().map(|op| op.ret).collect();
    let init = model.init();
    let mut leavers: HashMap<&M::State, Vec<usize>> = HashMap::new();
    for (i, f) in footprints.iter().enumerate() {
        if let Leaves::Fixed(v) = &f.leaves {
            leavers.entry(v).or_default().push(i);
        }
    }
    // Per op, the only op that can leave the state it requires.
    let producer: Vec<Option<usize>> = footprints
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let v = f.requires.as_ref().filter(|v| **v != init)?;
            match leavers.get(v).map(Vec::as_slice) {
                Some([p]) if *p != i => Some(*p),
                _ => None,
            }
        })
        .collect();
    let mut work: Vec<usize> = (0..ops.len()).filter(|i| deadline[*i].is_some()).collect();
    while let Some(r) = work.pop() {
        let (Some(d), Some(p)) = (deadline[r], producer[r]) else { continue };
        let d = d.max(ops[p].call);
        if deadline[p].is_none_or(|known| d < known) {
            deadline[p] = Some(d);
            work.push(p);
        }
    }
    deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelKind, RegisterInput, RegisterModel};
    use crate::value::Value;

    fn op(
        input: RegisterInput,
        output: Option<Value>,
        call: u64,
        ret: Option<u64>,
    ) -> PreparedOp<RegisterInput, Value> {
        PreparedOp { op_id: 0, input, output, call, ret }
    }

    #[test]
    fn an_observed_write_must_precede_what_follows_its_reader() {
        let s = |t: &str| Value::Str(t.into());
        let ops = vec![
            op(RegisterInput::Write(s("a")), None, 0, None),
            op(RegisterInput::Cas(s("a"), s("b")), Some(Value::Null), 1, Some(90)),
            op(RegisterInput::Read, Some(s("b")), 2, Some(20)),
            op(RegisterInput::Write(s("lost")), None, 3, None),
            op(RegisterInput::Read, Some(Value::Null), 4, Some(50)),
        ];
        let model = RegisterModel::new(ModelKind::Kv);
        let footprints: Vec<_> =
            ops.iter().map(|op| model.footprint(&op.input, op.output.as_ref())).collect();
        let d = derive(&model, &ops, &footprints);
        // The read of b returns at 20: the cas to b, and the lost write of a before it, by then.
        assert_eq!(d, vec![Some(20), Some(20), Some(20), None, Some(50)]);
    }
}
