//! One watch on a Watch stream: the keys it selects, the next revision it has not been sent,
//! and how a run of whole revisions becomes responses. A revision's events are never split
//! across responses unless the client asked for fragments and one response would exceed etcd's
//! request size limit; then they are split as etcd's `sendFragments` splits them.

use bytes::Bytes;
use prost::Message;

use crate::kv::KeyRange;
use crate::kv::mvcc::Change;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use crate::proto::mvccpb::Event;
use crate::proto::mvccpb::event::EventType;

/// etcd's `--max-request-bytes` default: fragments are cut at this size.
pub const MAX_REQUEST_BYTES: usize = crate::server::DEFAULT_MAX_REQUEST_BYTES;

/// A response takes whole revisions until it reaches about this size.
const RESPONSE_BYTES: usize = 1 << 20;

/// etcd's error for a range whose end is not after its start.
pub const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// One watch.
#[derive(Clone, Debug)]
pub struct Watcher {
    /// The keys it selects.
    pub range: KeyRange,
    /// The first revision not yet sent.
    pub next: i64,
    /// Send progress notifications at the configured interval.
    pub progress_notify: bool,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    fragment: bool,
}

impl Watcher {
    /// The watch `create` asks for on a member at revision `current`. An empty key is etcd's
    /// smallest key, `\0`; a range end of `\0` means every key from the start on; a start
    /// revision of 0 means the next revision.
    ///
    /// # Errors
    /// etcd's message for a range that selects nothing.
    pub fn new(create: &WatchCreateRequest, current: i64) -> Result<Watcher, &'static str> {
        let key = if create.key.is_empty() { Bytes::from_static(&[0]) } else { create.key.clone() };
        let bounded = !create.range_end.is_empty() && create.range_end.as_ref() != [0];
        if bounded && create.range_end <= key {
            return Err(EMPTY_RANGE);
        }
        let next = match create.start_revision {
            0 => current + 1,
            start => start.max(1),
        };
        let filters = &create.filters;
        Ok(Watcher {
            range: KeyRange::new(&key, &create.range_end),
            next,
            progress_notify: create.progress_notify,
            no_put: filters.contains(&(FilterType::Noput as i32)),
            no_delete: filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
            fragment: create.fragment,
        })
    }

    /// Whether the watch has been sent every revision up to `revision`.
    pub fn synced(&self, revision: i64) -> bool {
        self.next > revision
    }

    /// The responses for watch `id` that carry `changes` (the watched events of whole
    /// revisions, in revision order) now that every revision through `reached` has been read;
    /// `header` is the template of their headers.
    pub fn responses(
        &mut self,
        id: i64,
        changes: Vec<Change>,
        reached: i64,
        header: ResponseHeader,
    ) -> Vec<WatchResponse> {
        let mut responses = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let (mut size, mut last_main) = (0, 0);
        for change in changes {
            if change.rev.main != last_main && size >= RESPONSE_BYTES {
                let response = self.response(id, std::mem::take(&mut events), last_main, header);
                responses.extend(self.fragments(response));
                size = 0;
            }
            last_main = change.rev.main;
            if let Some(event) = self.keep(change.event) {
                size += event.encoded_len();
                events.push(event);
            }
        }
        if !events.is_empty() {
            let response = self.response(id, events, reached, header);
            responses.extend(self.fragments(response));
        }
        self.next = self.next.max(reached + 1);
        responses
    }

    /// The event as this watch sends it, or `None` when its filters drop it.
    fn keep(&self, mut event: Event) -> Option<Event> {
        let put = event.r#type == EventType::Put as i32;
        if (put && self.no_put) || (!put && self.no_delete) {
            return None;
        }
        if !self.prev_kv {
            event.prev_kv = None;
        }
        Some(event)
    }

    fn response(
        &self,
        id: i64,
        events: Vec<Event>,
        revision: i64,
        header: ResponseHeader,
    ) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader { revision, ..header }),
            watch_id: id,
            events,
            ..WatchResponse::default()
        }
    }

    /// `response` split as etcd's `sendFragments` splits it, if the watch asked for fragments
    /// and it is too large: each part as large as fits (at least one event), every part but the
    /// last marked `fragment`.
    fn fragments(&self, response: WatchResponse) -> Vec<WatchResponse> {
        if !self.fragment || response.events.len() < 2 || response.encoded_len() < MAX_REQUEST_BYTES
        {
            return vec![response];
        }
        let mut parts = Vec::new();
        let empty = WatchResponse { events: Vec::new(), fragment: true, ..response.clone() };
        let mut current = empty.clone();
        let mut size = current.encoded_len();
        for event in response.events {
            // The size of a repeated field's element: its length-delimited encoding.
            let added = event.encoded_len() + prost::length_delimiter_len(event.encoded_len()) + 1;
            if !current.events.is_empty() && size + added >= MAX_REQUEST_BYTES {
                parts.push(std::mem::replace(&mut current, empty.clone()));
                size = current.encoded_len();
            }
            size += added;
            current.events.push(event);
        }
        current.fragment = false;
        parts.push(current);
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::mvcc::Rev;
    use crate::proto::mvccpb::KeyValue;

    fn create(key: &str, end: &str) -> WatchCreateRequest {
        WatchCreateRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            range_end: Bytes::copy_from_slice(end.as_bytes()),
            ..WatchCreateRequest::default()
        }
    }

    fn change(main: i64, sub: i64, key: &str, value_len: usize, put: bool) -> Change {
        let kv = KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from(vec![b'v'; value_len]),
            mod_revision: main,
            ..KeyValue::default()
        };
        let prev = KeyValue { mod_revision: main - 1, ..kv.clone() };
        let r#type = if put { EventType::Put } else { EventType::Delete } as i32;
        Change {
            rev: Rev { main, sub },
            event: Event { r#type, kv: Some(kv), prev_kv: Some(prev) },
        }
    }

    #[test]
    fn start_revision_zero_is_the_next_one_and_empty_ranges_are_refused() {
        let watcher = Watcher::new(&create("a", ""), 7).expect("a key");
        assert_eq!((watcher.next, watcher.range.clone()), (8, KeyRange::One("a".into())));
        let from_start = Watcher::new(&create("", "\0"), 7).expect("every key");
        assert_eq!(from_start.range, KeyRange::From(Bytes::from_static(&[0])));
        assert_eq!(Watcher::new(&create("b", "a"), 7).err(), Some(EMPTY_RANGE));
        assert_eq!(Watcher::new(&create("b", "b"), 7).err(), Some(EMPTY_RANGE));
        let request = WatchCreateRequest { start_revision: -5, ..create("a", "") };
        assert_eq!(Watcher::new(&request, 7).expect("negative start").next, 1);
    }

    #[test]
    fn filters_and_prev_kv_shape_the_events() {
        let mut request = create("a", "z");
        request.filters = vec![FilterType::Nodelete as i32];
        let mut watcher = Watcher::new(&request, 0).expect("a range");
        let changes = vec![change(1, 0, "a", 1, true), change(2, 0, "b", 1, false)];
        let responses = watcher.responses(3, changes, 4, ResponseHeader::default());
        assert_eq!(responses.len(), 1, "{responses:?}");
        let events = &responses[0].events;
        assert_eq!(events.len(), 1, "the delete is filtered out: {events:?}");
        assert_eq!(events[0].prev_kv, None, "prev_kv only when asked for");
        assert_eq!((responses[0].watch_id, responses[0].header.unwrap().revision), (3, 4));
        assert_eq!(watcher.next, 5);
        request.prev_kv = true;
        request.filters = vec![FilterType::Noput as i32];
        let mut watcher = Watcher::new(&request, 0).expect("a range");
        let responses =
            watcher.responses(3, vec![change(1, 0, "a", 1, true)], 1, ResponseHeader::default());
        assert!(responses.is_empty(), "nothing left to send: {responses:?}");
        assert_eq!(watcher.next, 2, "the revisions read are passed even with no event");
    }

    #[test]
    fn large_batches_split_between_revisions_and_fragments_only_when_asked() {
        let value = 300 * 1024;
        let changes: Vec<Change> =
            (0..8).map(|i| change(10 + i / 2, i % 2, &format!("k{i}"), value, true)).collect();
        let mut watcher = Watcher::new(&create("k", "l"), 0).expect("a range");
        let responses = watcher.responses(0, changes.clone(), 20, ResponseHeader::default());
        for response in &responses {
            let mains: Vec<i64> =
                response.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision).collect();
            assert!(mains.len().is_multiple_of(2), "a revision split across responses: {mains:?}");
            assert!(!response.fragment);
        }
        assert!(responses.len() >= 2, "{} responses", responses.len());
        assert_eq!(responses.last().unwrap().header.unwrap().revision, 20);

        let big: Vec<Change> =
            (0..6).map(|i| change(30, i, &format!("k{i}"), value, true)).collect();
        let mut whole = Watcher::new(&create("k", "l"), 0).expect("a range");
        let responses = whole.responses(0, big.clone(), 30, ResponseHeader::default());
        assert_eq!(responses.len(), 1, "one revision, no fragments asked for");
        let mut request = create("k", "l");
        request.fragment = true;
        let mut fragmented = Watcher::new(&request, 0).expect("a range");
        let parts = fragmented.responses(0, big, 30, ResponseHeader::default());
        assert!(parts.len() >= 2, "{} parts", parts.len());
        let flags: Vec<bool> = parts.iter().map(|p| p.fragment).collect();
        assert!(
            flags[..flags.len() - 1].iter().all(|f| *f) && !flags[flags.len() - 1],
            "{flags:?}"
        );
        assert!(parts.iter().all(|p| p.encoded_len() < MAX_REQUEST_BYTES));
        assert_eq!(parts.iter().map(|p| p.events.len()).sum::<usize>(), 6);
    }
}
