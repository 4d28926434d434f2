//! Writes a generated linearizable key-value history (`generate::kv`) as jsonl to stdout:
//!
//! ```text
//! cargo run --release -p jepsen-lite --example gen -- OPS KEYS PROCESSES INDETERMINATE [SEED] [ZIPF]
//! cargo run --release -p jepsen-lite --example gen -- 1000000 1000 50 0.05 1 0.8 > 1m.jsonl
//! ```
//!
//! INDETERMINATE is the fraction of writes whose outcome is lost; ZIPF the exponent of key
//! popularity (0: uniform).

use std::io::Write as _;

use jepsen_lite::generate::{KvGen, kv};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: gen OPS KEYS PROCESSES INDETERMINATE [SEED] [ZIPF]");
        std::process::exit(2);
    }
    let number = |i: usize, what: &str| -> f64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("gen: {what} {:?} is not a number", args[i]);
            std::process::exit(2)
        })
    };
    let options = KvGen {
        keys: number(1, "KEYS") as usize,
        zipf: if args.len() > 5 { number(5, "ZIPF") } else { 0.0 },
        ..KvGen::hot_key(
            if args.len() > 4 { number(4, "SEED") as u64 } else { 1 },
            number(0, "OPS") as usize,
            number(2, "PROCESSES") as usize,
            number(3, "INDETERMINATE"),
        )
    };
    let text = jepsen_lite::formats::write_jsonl(&kv(&options));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
