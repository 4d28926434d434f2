//! A `raftbed cluster up` for a test: a free port range, and `cluster down` when the test ends
//! however it ends (shared by test files through `#[path]`).

use std::path::Path;
use std::process::Command;

/// A base port from `first` whose client, peer and admin ports for `nodes` nodes are free now,
/// in the 7,000 ports above `first` (each test file keeps to its own range).
pub fn free_base(first: u16, nodes: u16) -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = first + (seed.wrapping_add(attempt * 61) % 70) * 100;
        let free = (1..=nodes)
            .flat_map(|i| [0, 1, 2].map(|k| base + 10 * i + k))
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free ports");
}

/// Stops the cluster in its data dir when dropped.
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let dir = self.0.to_str().unwrap_or_default();
        let _ = Command::new(env!("CARGO_BIN_EXE_raftbed"))
            .args(["cluster", "down", "--data-dir", dir])
            .output();
    }
}
