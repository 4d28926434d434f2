//! Key ranges and Range requests, with etcd's conventions: an empty `range_end` means the key
//! alone, `"\0"` means every key from `key` on, anything else the half-open `[key, range_end)`.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::error::ApiError;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse};
use crate::proto::mvccpb::KeyValue;

/// A set of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// One key.
    One(Bytes),
    /// Every key at or after this one.
    From(Bytes),
    /// `[start, end)`.
    Between(Bytes, Bytes),
}

impl KeyRange {
    /// The range of a request's `key` and `range_end`.
    pub fn new(key: &Bytes, range_end: &Bytes) -> KeyRange {
        match range_end.as_ref() {
            [] => KeyRange::One(key.clone()),
            [0] => KeyRange::From(key.clone()),
            _ => KeyRange::Between(key.clone(), range_end.clone()),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        let start = Bytes::copy_from_slice(prefix);
        match prefix_end(prefix) {
            Some(end) => KeyRange::Between(start, end),
            None => KeyRange::From(start),
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::One(one) => key == one.as_ref(),
            KeyRange::From(start) => key >= start.as_ref(),
            KeyRange::Between(start, end) => key >= start.as_ref() && key < end.as_ref(),
        }
    }

    /// The entries of `map` in the range, in key order.
    pub fn select<'a, V>(
        &self,
        map: &'a BTreeMap<Bytes, V>,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a V)> + 'a> {
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = match self {
            KeyRange::One(key) => (Bound::Included(key), Bound::Included(key)),
            KeyRange::From(start) => (Bound::Included(start), Bound::Unbounded),
            KeyRange::Between(start, end) if start >= end => return Box::new(std::iter::empty()),
            KeyRange::Between(start, end) => (Bound::Included(start), Bound::Excluded(end)),
        };
        Box::new(map.range::<[u8], _>(bounds))
    }
}

/// The first key after every key with `prefix`, or `None` when there is none (the prefix is
/// all 0xff bytes), as etcd's `GetPrefixRangeEnd`.
pub fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(Bytes::from(end));
        }
    }
    None
}

/// Checks a Range against the store's `current` revision and its `compacted` point; answers
/// the revision it reads (0 or less: the current one).
///
/// # Errors
/// An empty key, a future revision, or a compacted one, with etcd's messages.
pub fn check_range(request: &RangeRequest, current: i64, compacted: i64) -> Result<i64, ApiError> {
    if request.key.is_empty() {
        return Err(ApiError::empty_key());
    }
    let revision = if request.revision <= 0 { current } else { request.revision };
    if revision > current {
        return Err(ApiError::future_revision());
    }
    if revision < compacted {
        return Err(ApiError::compacted());
    }
    Ok(revision)
}

/// Answers a checked Range from `in_range`, the keys in its range at its revision, in key order
/// (the header is left to the caller). A negative limit means none, as etcd's.
pub fn range<'a>(
    in_range: impl Iterator<Item = &'a KeyValue>,
    request: &RangeRequest,
) -> RangeResponse {
    let in_range: Vec<&KeyValue> = in_range.collect();
    let count = in_range.len() as i64;
    let mut selected: Vec<&KeyValue> =
        in_range.into_iter().filter(|kv| passes_filters(kv, request)).collect();
    sort(&mut selected, request);
    let passed = selected.len();
    if request.limit > 0 {
        selected.truncate(request.limit as usize);
    }
    let more = selected.len() < passed;
    let kvs = if request.count_only {
        Vec::new()
    } else {
        selected
            .into_iter()
            .map(|kv| {
                let mut kv = kv.clone();
                if request.keys_only {
                    kv.value = Bytes::new();
                }
                kv
            })
            .collect()
    };
    RangeResponse { header: None, kvs, more, count }
}

fn passes_filters(kv: &KeyValue, request: &RangeRequest) -> bool {
    let at_least = |value: i64, min: i64| min == 0 || value >= min;
    let at_most = |value: i64, max: i64| max == 0 || value <= max;
    at_least(kv.mod_revision, request.min_mod_revision)
        && at_most(kv.mod_revision, request.max_mod_revision)
        && at_least(kv.create_revision, request.min_create_revision)
        && at_most(kv.create_revision, request.max_create_revision)
}

/// etcd's rule: a sort target without an order sorts ascending; keys come sorted already.
fn sort(kvs: &mut [&KeyValue], request: &RangeRequest) {
    let target = SortTarget::try_from(request.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(request.sort_order).unwrap_or(SortOrder::None);
    if order == SortOrder::None && target != SortTarget::Key {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None {
        return;
    }
    match target {
        SortTarget::Key => {}
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn store(keys: &[&str]) -> BTreeMap<Bytes, KeyValue> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let rev = i as i64 + 1;
                let kv = KeyValue {
                    key: b(k),
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    value: b(&format!("v{}", keys.len() - i)),
                    lease: 0,
                };
                (b(k), kv)
            })
            .collect()
    }

    /// `range` over a map, after `check_range` at `current`.
    fn read(
        kvs: &BTreeMap<Bytes, KeyValue>,
        current: i64,
        request: &RangeRequest,
    ) -> Result<RangeResponse, ApiError> {
        check_range(request, current, 1)?;
        let keys = KeyRange::new(&request.key, &request.range_end);
        Ok(range(keys.select(kvs).map(|(_, kv)| kv), request))
    }

    fn keys(response: &RangeResponse) -> Vec<String> {
        response.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
    }

    #[test]
    fn ranges_follow_etcds_conventions() {
        let kvs = store(&["a", "ab", "abc", "b", "\u{7f}"]);
        let req = |key: &str, end: &[u8]| RangeRequest {
            key: b(key),
            range_end: Bytes::copy_from_slice(end),
            ..RangeRequest::default()
        };
        assert_eq!(keys(&read(&kvs, 5, &req("ab", b"")).unwrap()), ["ab"]);
        assert_eq!(keys(&read(&kvs, 5, &req("ab", b"\0")).unwrap()), ["ab", "abc", "b", "\u{7f}"]);
        assert_eq!(keys(&read(&kvs, 5, &req("a", b"b")).unwrap()), ["a", "ab", "abc"]);
        let prefix = prefix_end(b"ab").unwrap();
        assert_eq!(keys(&read(&kvs, 5, &req("ab", &prefix)).unwrap()), ["ab", "abc"]);
        assert_eq!(keys(&read(&kvs, 5, &req("\0", b"\0")).unwrap()).len(), 5);
        assert!(keys(&read(&kvs, 5, &req("b", b"a")).unwrap()).is_empty(), "end before start");
    }

    #[test]
    fn limit_count_sort_and_filters() {
        let kvs = store(&["a", "b", "c", "d"]);
        let mut request =
            RangeRequest { key: b("a"), range_end: b("z"), limit: 2, ..RangeRequest::default() };
        let response = read(&kvs, 4, &request).unwrap();
        assert_eq!(
            (keys(&response), response.count, response.more),
            (vec!["a".into(), "b".into()], 4, true)
        );
        request.sort_target = SortTarget::Value as i32;
        assert_eq!(keys(&read(&kvs, 4, &request).unwrap()), ["d", "c"], "ascending by value");
        request.sort_order = SortOrder::Descend as i32;
        request.sort_target = SortTarget::Key as i32;
        assert_eq!(keys(&read(&kvs, 4, &request).unwrap()), ["d", "c"]);
        request.limit = 0;
        request.min_mod_revision = 2;
        request.max_create_revision = 3;
        assert_eq!(keys(&read(&kvs, 4, &request).unwrap()), ["c", "b"]);
        request.count_only = true;
        let response = read(&kvs, 4, &request).unwrap();
        assert_eq!((response.kvs.len(), response.count), (0, 4));
    }

    #[test]
    fn revisions_are_checked_against_the_current_and_the_compacted() {
        let mut request = RangeRequest { key: b("a"), revision: 9, ..RangeRequest::default() };
        assert_eq!(check_range(&request, 5, 3), Err(ApiError::future_revision()));
        request.revision = 2;
        assert_eq!(check_range(&request, 5, 3), Err(ApiError::compacted()));
        request.revision = 3;
        assert_eq!(check_range(&request, 5, 3), Ok(3), "the compaction point itself is kept");
        request.revision = -1;
        assert_eq!(check_range(&request, 5, 3), Ok(5), "0 or less: the current revision");
        request.key = Bytes::new();
        assert_eq!(check_range(&request, 5, 3), Err(ApiError::empty_key()));
    }

    #[test]
    fn a_negative_limit_means_none() {
        let kvs = store(&["a", "b", "c"]);
        let request =
            RangeRequest { key: b("a"), range_end: b("z"), limit: -1, ..RangeRequest::default() };
        let response = read(&kvs, 3, &request).unwrap();
        assert_eq!((response.kvs.len(), response.more), (3, false));
    }

    #[test]
    fn prefix_end_carries_past_0xff() {
        assert_eq!(prefix_end(b"a\xff").unwrap(), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert!(KeyRange::prefix(b"\xff").contains(b"\xff\x01"));
    }
}
