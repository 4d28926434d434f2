//! Transactions: compares, and the checks a request passes before it is proposed (stateless)
//! and before it is applied (against the state), as etcd makes them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::error::ApiError;
use super::range::KeyRange;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest};
use crate::proto::mvccpb::KeyValue;

/// At most this many operations in one transaction branch (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Whether every compare holds.
pub fn compares_hold(kvs: &BTreeMap<Bytes, KeyValue>, compares: &[Compare]) -> bool {
    compares.iter().all(|compare| compare_holds(kvs, compare))
}

/// One compare over its key or range: every key in the range must satisfy it. With no key in
/// the range, a value compare fails and the others compare against zero (etcd's rule).
fn compare_holds(kvs: &BTreeMap<Bytes, KeyValue>, compare: &Compare) -> bool {
    let range = KeyRange::new(&compare.key, &compare.range_end);
    let mut matched = range.select(kvs).peekable();
    if matched.peek().is_none() {
        if compare.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(compare, &KeyValue::default());
    }
    matched.all(|(_, kv)| compare_kv(compare, kv))
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ordering = match (CompareTarget::try_from(compare.target), &compare.target_union) {
        (Ok(CompareTarget::Version), Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (Ok(CompareTarget::Create), Some(TargetUnion::CreateRevision(v))) => {
            kv.create_revision.cmp(v)
        }
        (Ok(CompareTarget::Mod), Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (Ok(CompareTarget::Value), Some(TargetUnion::Value(v))) => {
            kv.value.as_ref().cmp(v.as_ref())
        }
        (Ok(CompareTarget::Lease), Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        // A target without its operand (a zero in proto3 may arrive as nothing): compare
        // against the zero value, as etcd's decoder would have filled in.
        (Ok(CompareTarget::Version), None) => kv.version.cmp(&0),
        (Ok(CompareTarget::Create), None) => kv.create_revision.cmp(&0),
        (Ok(CompareTarget::Mod), None) => kv.mod_revision.cmp(&0),
        (Ok(CompareTarget::Value), None) => kv.value.as_ref().cmp(&[][..]),
        (Ok(CompareTarget::Lease), None) => kv.lease.cmp(&0),
        _ => return false,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Err(_) => false,
    }
}

/// Stateless checks of a put.
pub fn check_put(put: &PutRequest) -> Result<(), ApiError> {
    if put.key.is_empty() {
        return Err(ApiError::empty_key());
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(ApiError::value_provided());
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(ApiError::lease_provided());
    }
    Ok(())
}

/// Stateless checks of a delete.
pub fn check_delete(delete: &DeleteRangeRequest) -> Result<(), ApiError> {
    if delete.key.is_empty() {
        return Err(ApiError::empty_key());
    }
    Ok(())
}

/// Stateless checks of a transaction: well-formed operations, at most `MAX_TXN_OPS` per
/// branch, and no key written twice within a branch (nested transactions included).
pub fn check_txn(txn: &TxnRequest) -> Result<(), ApiError> {
    check_txn_at(txn, 0)
}

fn check_txn_at(txn: &TxnRequest, depth: usize) -> Result<(), ApiError> {
    if depth > 16 {
        return Err(ApiError::invalid("raftbed: transactions nested too deeply"));
    }
    if txn.compare.len() > MAX_TXN_OPS
        || txn.success.len() > MAX_TXN_OPS
        || txn.failure.len() > MAX_TXN_OPS
    {
        return Err(ApiError::too_many_ops());
    }
    for compare in &txn.compare {
        if compare.key.is_empty() {
            return Err(ApiError::empty_key());
        }
    }
    for branch in [&txn.success, &txn.failure] {
        let mut puts = BTreeSet::new();
        let mut deletes = Vec::new();
        for op in branch {
            match &op.request {
                Some(Request::RequestRange(range)) if range.key.is_empty() => {
                    return Err(ApiError::empty_key());
                }
                Some(Request::RequestRange(_)) => {}
                Some(Request::RequestPut(put)) => {
                    check_put(put)?;
                    if !puts.insert(put.key.clone()) {
                        return Err(ApiError::duplicate_key());
                    }
                }
                Some(Request::RequestDeleteRange(delete)) => {
                    check_delete(delete)?;
                    deletes.push(KeyRange::new(&delete.key, &delete.range_end));
                }
                Some(Request::RequestTxn(inner)) => check_txn_at(inner, depth + 1)?,
                None => {
                    return Err(ApiError::invalid("raftbed: a txn operation without a request"));
                }
            }
        }
        if puts.iter().any(|key| deletes.iter().any(|range| range.contains(key))) {
            return Err(ApiError::duplicate_key());
        }
    }
    Ok(())
}

/// Checks of the branch a transaction will take against the state before it applies: leases
/// exist, `ignore_*` keys exist, ranges read a kept revision (`revision` is the current one,
/// `compacted` the oldest kept). `lease_exists` answers for a lease id.
pub fn check_branch(
    kvs: &BTreeMap<Bytes, KeyValue>,
    (revision, compacted): (i64, i64),
    lease_exists: &dyn Fn(i64) -> bool,
    ops: &[RequestOp],
) -> Result<(), ApiError> {
    for op in ops {
        match &op.request {
            Some(Request::RequestPut(put)) => check_put_state(kvs, lease_exists, put)?,
            Some(Request::RequestRange(range)) => {
                super::range::check_range(range, revision, compacted)?;
            }
            Some(Request::RequestTxn(inner)) => {
                let branch = if compares_hold(kvs, &inner.compare) {
                    &inner.success
                } else {
                    &inner.failure
                };
                check_branch(kvs, (revision, compacted), lease_exists, branch)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks of a put against the state.
pub fn check_put_state(
    kvs: &BTreeMap<Bytes, KeyValue>,
    lease_exists: &dyn Fn(i64) -> bool,
    put: &PutRequest,
) -> Result<(), ApiError> {
    if (put.ignore_value || put.ignore_lease) && !kvs.contains_key(&put.key) {
        return Err(ApiError::key_not_found());
    }
    if !put.ignore_lease && put.lease != 0 && !lease_exists(put.lease) {
        return Err(ApiError::lease_not_found());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn kv(key: &str, value: &str, version: i64) -> (Bytes, KeyValue) {
        let kv = KeyValue {
            key: b(key),
            value: b(value),
            version,
            create_revision: 2,
            mod_revision: 3,
            lease: 0,
        };
        (b(key), kv)
    }

    fn cmp(
        key: &str,
        result: CompareResult,
        target: CompareTarget,
        operand: TargetUnion,
    ) -> Compare {
        Compare {
            result: result as i32,
            target: target as i32,
            key: b(key),
            target_union: Some(operand),
            range_end: Bytes::new(),
        }
    }

    #[test]
    fn compares_follow_etcd() {
        let kvs: BTreeMap<_, _> = [kv("a", "x", 2), kv("b", "y", 1)].into_iter().collect();
        use CompareResult::*;
        use CompareTarget as T;
        assert!(compares_hold(&kvs, &[cmp("a", Equal, T::Value, TargetUnion::Value(b("x")))]));
        assert!(!compares_hold(&kvs, &[cmp("a", Equal, T::Value, TargetUnion::Value(b("y")))]));
        assert!(compares_hold(&kvs, &[cmp("a", Greater, T::Version, TargetUnion::Version(1))]));
        assert!(compares_hold(&kvs, &[cmp("a", Less, T::Mod, TargetUnion::ModRevision(4))]));
        assert!(compares_hold(
            &kvs,
            &[cmp("a", NotEqual, T::Create, TargetUnion::CreateRevision(1))]
        ));
        // A missing key: version 0 holds, a value compare never does.
        assert!(compares_hold(&kvs, &[cmp("z", Equal, T::Version, TargetUnion::Version(0))]));
        assert!(!compares_hold(&kvs, &[cmp("z", NotEqual, T::Value, TargetUnion::Value(b("q")))]));
        // A range: every key must hold.
        let mut range = cmp("a", Greater, T::Version, TargetUnion::Version(0));
        range.range_end = b("c");
        assert!(compares_hold(&kvs, &[range.clone()]));
        range.target_union = Some(TargetUnion::Version(1));
        assert!(!compares_hold(&kvs, &[range]));
    }

    #[test]
    fn a_branch_may_not_write_a_key_twice() {
        let put = |k: &str| RequestOp {
            request: Some(Request::RequestPut(PutRequest { key: b(k), ..PutRequest::default() })),
        };
        let delete = |k: &str, end: &str| RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: b(k),
                range_end: b(end),
                prev_kv: false,
            })),
        };
        let txn =
            |success: Vec<RequestOp>| TxnRequest { compare: vec![], success, failure: vec![] };
        assert!(check_txn(&txn(vec![put("a"), put("b")])).is_ok());
        assert_eq!(check_txn(&txn(vec![put("a"), put("a")])), Err(ApiError::duplicate_key()));
        assert_eq!(
            check_txn(&txn(vec![put("b"), delete("a", "c")])),
            Err(ApiError::duplicate_key())
        );
        assert_eq!(check_txn(&txn(vec![put("")])), Err(ApiError::empty_key()));
        let many = (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(many)), Err(ApiError::too_many_ops()));
    }
}
