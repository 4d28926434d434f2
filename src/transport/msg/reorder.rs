//! Puts one call's datagrams back in order. Each datagram crosses the simulated network with a
//! latency of its own, so a later one can arrive first; a lost one leaves a gap that stalls the
//! call until its deadline, as a TCP segment turmoil never retransmits stalls a connection.

use std::collections::BTreeMap;

use super::datagram::Part;

/// Datagrams held past a gap before the call is given up as broken.
const MAX_HELD: usize = 256;

/// One direction of one call.
#[derive(Debug, Default)]
pub struct Reorder {
    next: u32,
    held: BTreeMap<u32, Vec<Part>>,
}

impl Reorder {
    /// Takes datagram `seq`'s parts; returns the parts now in order (none while a gap is
    /// open), or `Err` when too many wait behind a gap.
    pub fn accept(&mut self, seq: u32, parts: Vec<Part>) -> Result<Vec<Part>, usize> {
        if seq < self.next {
            return Ok(Vec::new());
        }
        if seq > self.next {
            self.held.insert(seq, parts);
            return if self.held.len() > MAX_HELD { Err(self.held.len()) } else { Ok(Vec::new()) };
        }
        let mut ready = parts;
        self.next += 1;
        while let Some(more) = self.held.remove(&self.next) {
            ready.extend(more);
            self.next += 1;
        }
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn data(n: u8) -> Vec<Part> {
        vec![Part::Data(Bytes::from(vec![n]))]
    }

    #[test]
    fn a_late_datagram_releases_the_ones_held_behind_it() {
        let mut reorder = Reorder::default();
        assert_eq!(reorder.accept(2, data(2)), Ok(vec![]));
        assert_eq!(reorder.accept(1, data(1)), Ok(vec![]));
        let ready = reorder.accept(0, data(0)).unwrap();
        assert_eq!(ready, [data(0), data(1), data(2)].concat());
        assert_eq!(reorder.accept(1, data(1)), Ok(vec![]), "a duplicate is dropped");
    }

    #[test]
    fn a_gap_that_holds_too_many_breaks_the_call() {
        let mut reorder = Reorder::default();
        for seq in 1..=MAX_HELD as u32 {
            assert_eq!(reorder.accept(seq, data(0)), Ok(vec![]));
        }
        assert_eq!(reorder.accept(MAX_HELD as u32 + 1, data(0)), Err(MAX_HELD + 1));
    }
}
