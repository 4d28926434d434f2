//! Sequential specifications. A [`Model`] says, for one object, which results an operation may
//! return from a state and what state follows; the checker asks whether some order of the
//! history's operations, consistent with real time, satisfies it.
//!
//! Built in: [`ModelKind::Register`] (read/write), [`ModelKind::CasRegister`] (read/write/cas)
//! and [`ModelKind::Kv`] (get/put/append/delete/cas on independent keys, checked one key at a
//! time). Registers start absent (`nil`).

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::{History, Op, Outcome, Process};
use crate::value::Value;

/// A sequential specification of one object (after Porcupine's `Model`).
///
/// `step` must be pure: the checker caches its results per (state, operation).
pub trait Model: Sync {
    /// The object's state.
    type State: Clone + Eq + Hash + Send + Sync + Debug;
    /// What an operation asks for. Equal inputs must mean identical effects: indeterminate
    /// operations with equal inputs are treated as interchangeable.
    type Input: Clone + Eq + Hash + Send + Sync + Debug;
    /// What an operation observed.
    type Output: Clone + Send + Sync + Debug;

    /// A name for reports.
    fn name(&self) -> &'static str;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// Reads an operation of the history. `op.output` is `None` for indeterminate operations;
    /// return `None` as the output then.
    ///
    /// # Errors
    /// A message naming the problem (an unknown `f`, a value of the wrong type).
    fn decode(&self, op: &Op) -> Result<(Self::Input, Option<Self::Output>), String>;

    /// The state after `input` from `state`, or `None` if it could not have observed `output`
    /// there. `output` is `None` when unknown: only the effect matters.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether `input` never changes the state (an indeterminate read constrains nothing and is
    /// dropped).
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// For a read-only `input`: whether it could have observed `output` in `state`. Override it
    /// when `step` would clone a large state only to compare it.
    fn observes(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> bool {
        self.step(state, input, output).is_some()
    }

    /// What an operation needs of the state and leaves in it, where that does not depend on the
    /// state it runs in. The search uses it to stop as soon as a value some operation still has
    /// to observe is overwritten with no operation left that could write it again (search.rs,
    /// 9). The default says nothing, which turns that off.
    fn footprint(
        &self,
        _input: &Self::Input,
        _output: Option<&Self::Output>,
    ) -> Footprint<Self::State> {
        Footprint { requires: None, leaves: Leaves::Depends }
    }

    /// Whether `to` can follow `from` through operations whose effect depends on the state
    /// (`Leaves::Depends`, such as appends) alone: the search uses it to drop an order of
    /// appends as soon as a read still to come can no longer be reached (search.rs, 11). It
    /// must be reflexive and transitive, and every such operation must lead from a state to
    /// one it grows to. The default says nothing (`None`), which turns that off.
    fn grows_to(&self, _from: &Self::State, _to: &Self::State) -> Option<bool> {
        None
    }

    /// For an operation whose effect depends on the state (an append): whether `state` can be
    /// found after it before anything resets the state. `Some(false)` when never (what it
    /// appended would show in it); the checker then drops such an indeterminate operation if no
    /// operation requires a state it shows in. The default says nothing (`None`).
    fn shows_in(&self, _input: &Self::Input, _state: &Self::State) -> Option<bool> {
        None
    }

    /// Whether operations on different keys are independent, so each key can be checked on
    /// its own (P-compositionality, Horn and Kroening 2015).
    fn partition_by_key(&self) -> bool {
        false
    }

    /// How a state reads in a counterexample.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// What an operation needs of the state and leaves in it (`Model::footprint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint<S> {
    /// The state it must run in to have observed what it did (a read's value, a cas's
    /// expected value), if one state only.
    pub requires: Option<S>,
    /// The state it leaves.
    pub leaves: Leaves<S>,
}

/// The state an operation leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leaves<S> {
    /// The one it found (a read).
    Same,
    /// This one, whatever it found (a write, a cas that applied, a delete).
    Fixed(S),
    /// One that depends on what it found (an append), or not known.
    Depends,
}

/// The built-in models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// One register: `read`, `write`.
    Register,
    /// One register with compare-and-set: `read`, `write`, `cas [from to]`.
    CasRegister,
    /// Independent keys: `get`/`read`, `put`/`write`, `append`, `delete`, `cas [from to]`.
    Kv,
    /// As `Kv`, but a key never written reads as `""` (Porcupine's kv tests).
    KvEmptyDefault,
}

impl ModelKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv | ModelKind::KvEmptyDefault => "kv",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<ModelKind> {
        Some(match name {
            "register" => ModelKind::Register,
            "cas-register" => ModelKind::CasRegister,
            "kv" => ModelKind::Kv,
            _ => return None,
        })
    }

    /// The model that fits a history: `kv` if operations carry keys, `cas-register` if any is
    /// a `cas`, `register` otherwise.
    pub fn infer(history: &History) -> ModelKind {
        let clients = history.events.iter().filter(|e| matches!(e.process, Process::Client(_)));
        let mut cas = false;
        for event in clients {
            if event.key.is_some() {
                return ModelKind::Kv;
            }
            cas |= event.f == "cas";
        }
        if cas { ModelKind::CasRegister } else { ModelKind::Register }
    }
}

/// What a register operation does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Replace the value.
    Write(Value),
    /// Replace `from` by `to`; fails (and changes nothing) otherwise.
    Cas(Value, Value),
    /// Concatenate to the value (strings or lists).
    Append(Value),
    /// Make the value absent.
    Delete,
}

/// The built-in models, all registers under the hood (a kv store checked one key at a time is a
/// register per key).
#[derive(Clone, Copy, Debug)]
pub struct RegisterModel {
    kind: ModelKind,
}

impl RegisterModel {
    /// The model for `kind`.
    pub fn new(kind: ModelKind) -> RegisterModel {
        RegisterModel { kind }
    }

    fn input(&self, op: &Op) -> Result<RegisterInput, String> {
        let kv = matches!(self.kind, ModelKind::Kv | ModelKind::KvEmptyDefault);
        let cas = kv || self.kind == ModelKind::CasRegister;
        let input = match op.f.as_str() {
            "read" => RegisterInput::Read,
            "get" if kv => RegisterInput::Read,
            "write" => RegisterInput::Write(op.input.clone()),
            "put" if kv => RegisterInput::Write(op.input.clone()),
            "delete" | "del" if kv => RegisterInput::Delete,
            "append" if kv => match &op.input {
                Value::Str(_) | Value::List(_) => RegisterInput::Append(op.input.clone()),
                other => {
                    return Err(format!(
                        "append takes a string or a list, got {} {other}",
                        other.kind()
                    ));
                }
            },
            "cas" if cas => match op.input.as_pair() {
                Some((from, to)) => RegisterInput::Cas(from.clone(), to.clone()),
                None => {
                    return Err(format!(
                        "cas takes [from to], got {} {}",
                        op.input.kind(),
                        op.input
                    ));
                }
            },
            f => {
                let known = match self.kind {
                    ModelKind::Register => "read, write",
                    ModelKind::CasRegister => "read, write, cas",
                    ModelKind::Kv | ModelKind::KvEmptyDefault => "get, put, append, delete, cas",
                };
                return Err(format!(
                    "unknown f :{f} for model {} (knows {known})",
                    self.kind.name()
                ));
            }
        };
        if kv && op.key.is_none() {
            return Err(format!(":{} has no key, and the kv model needs one", op.f));
        }
        Ok(input)
    }
}

impl Model for RegisterModel {
    type State = Value;
    type Input = RegisterInput;
    type Output = Value;

    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn init(&self) -> Value {
        match self.kind {
            ModelKind::KvEmptyDefault => Value::Str(String::new()),
            _ => Value::Null,
        }
    }

    fn decode(&self, op: &Op) -> Result<(RegisterInput, Option<Value>), String> {
        let input = self.input(op)?;
        let output = match (op.outcome, &input) {
            (Outcome::Ok, RegisterInput::Read) => op.output.clone(),
            (Outcome::Ok, _) => Some(Value::Null),
            _ => None,
        };
        Ok((input, output))
    }

    fn step(&self, state: &Value, input: &RegisterInput, output: Option<&Value>) -> Option<Value> {
        match input {
            RegisterInput::Read => match output {
                Some(seen) if seen != state => None,
                _ => Some(state.clone()),
            },
            RegisterInput::Write(value) => Some(value.clone()),
            RegisterInput::Cas(from, to) => (state == from).then(|| to.clone()),
            RegisterInput::Append(suffix) => match (state, suffix) {
                (Value::Null, _) => Some(suffix.clone()),
                (Value::Str(s), Value::Str(t)) => Some(Value::Str(format!("{s}{t}"))),
                (Value::List(s), Value::List(t)) => Some(Value::List([s.as_slice(), t].concat())),
                _ => None,
            },
            RegisterInput::Delete => Some(self.init()),
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn observes(&self, state: &Value, input: &RegisterInput, output: Option<&Value>) -> bool {
        match input {
            RegisterInput::Read => output.is_none_or(|seen| seen == state),
            _ => self.step(state, input, output).is_some(),
        }
    }

    fn footprint(&self, input: &RegisterInput, output: Option<&Value>) -> Footprint<Value> {
        let (requires, leaves) = match input {
            RegisterInput::Read => (output.cloned(), Leaves::Same),
            RegisterInput::Write(value) => (None, Leaves::Fixed(value.clone())),
            RegisterInput::Cas(from, to) => (Some(from.clone()), Leaves::Fixed(to.clone())),
            RegisterInput::Append(_) => (None, Leaves::Depends),
            RegisterInput::Delete => (None, Leaves::Fixed(self.init())),
        };
        Footprint { requires, leaves }
    }

    fn shows_in(&self, input: &RegisterInput, state: &Value) -> Option<bool> {
        // What an append added stays in the value, as a run, until a put or delete.
        let RegisterInput::Append(suffix) = input else { return None };
        Some(match (suffix, state) {
            (Value::Str(t), Value::Str(s)) => s.contains(t.as_str()),
            (Value::List(t), Value::List(s)) => t.is_empty() || s.windows(t.len()).any(|w| w == t),
            (_, Value::Null) => false,
            _ => return None,
        })
    }

    fn grows_to(&self, from: &Value, to: &Value) -> Option<bool> {
        // Appends concatenate strings or lists; appending to an absent value starts one.
        Some(match (from, to) {
            _ if from == to => true,
            (Value::Null, _) => true,
            (Value::Str(a), Value::Str(b)) => b.starts_with(a.as_str()),
            (Value::List(a), Value::List(b)) => b.starts_with(a),
            _ => false,
        })
    }

    fn partition_by_key(&self) -> bool {
        matches!(self.kind, ModelKind::Kv | ModelKind::KvEmptyDefault)
    }

    fn describe_state(&self, state: &Value) -> String {
        state.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, input: Value, output: Option<Value>) -> Op {
        Op {
            id: 0,
            process: Process::Client(1),
            f: f.into(),
            key: Some(Value::Str("k".into())),
            input,
            outcome: if output.is_some() { Outcome::Ok } else { Outcome::Indeterminate },
            output,
            invoke: 0,
            complete: None,
            line: 9,
            session: None,
        }
    }

    #[test]
    fn cas_applies_only_on_match() {
        let model = RegisterModel::new(ModelKind::CasRegister);
        let (input, _) = model
            .decode(&op("cas", Value::List(vec![Value::Int(1), Value::Int(2)]), Some(Value::Null)))
            .unwrap();
        assert_eq!(model.step(&Value::Int(1), &input, None), Some(Value::Int(2)));
        assert_eq!(model.step(&Value::Int(3), &input, None), None);
    }

    #[test]
    fn reads_must_match_and_absent_is_nil() {
        let model = RegisterModel::new(ModelKind::Kv);
        let (read, output) = model.decode(&op("get", Value::Null, Some(Value::Null))).unwrap();
        assert_eq!(model.step(&model.init(), &read, output.as_ref()), Some(Value::Null));
        assert_eq!(model.step(&Value::Int(1), &read, output.as_ref()), None);
    }

    #[test]
    fn append_concatenates() {
        let model = RegisterModel::new(ModelKind::KvEmptyDefault);
        let (append, _) = model.decode(&op("append", Value::Str("x".into()), None)).unwrap();
        assert_eq!(model.step(&model.init(), &append, None), Some(Value::Str("x".into())));
        assert_eq!(
            model.step(&Value::Str("ab".into()), &append, None),
            Some(Value::Str("abx".into()))
        );
    }

    #[test]
    fn decode_errors_say_what_is_wrong() {
        let model = RegisterModel::new(ModelKind::CasRegister);
        assert!(
            model.decode(&op("frob", Value::Null, None)).unwrap_err().contains("unknown f :frob")
        );
        assert!(
            model
                .decode(&op("cas", Value::Int(3), None))
                .unwrap_err()
                .contains("cas takes [from to]")
        );
        let register = RegisterModel::new(ModelKind::Register);
        assert!(
            register
                .decode(&op("cas", Value::Null, None))
                .unwrap_err()
                .contains("knows read, write")
        );
    }
}
