//! One shard of a sweep, for sweeps spread over many machines (a Kubernetes Indexed Job:
//! `deploy/sweep-job.yaml`). Seed `s` of `A..B` belongs to shard `(s - A) mod N`, so the
//! shards are disjoint, cover the range, and differ in size by at most one seed.

use std::ops::Range;

/// Shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Counted from 0.
    pub index: u64,
    /// How many shards there are.
    pub count: u64,
}

/// Where a Kubernetes Indexed Job puts a pod's index.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// Parses `I/N`, or `N` (or `/N`) with the index taken from `index_from_env` (the value
    /// of `JOB_COMPLETION_INDEX`).
    ///
    /// # Errors
    /// Not of that form, no shards, an index past the last shard, or `N` alone without the
    /// variable.
    pub fn parse(text: &str, index_from_env: Option<&str>) -> Result<Shard, String> {
        let number = |part: &str, what: &str| {
            part.trim().parse::<u64>().map_err(|_| format!("{what} {part:?} is not a whole number"))
        };
        let (index, count) = match text.split_once('/') {
            Some((index, count)) if !index.trim().is_empty() => {
                (number(index, "shard index")?, number(count, "shard count")?)
            }
            split => {
                let count = split.map_or(text, |(_, count)| count);
                let count = number(count, "shard count")?;
                let Some(env) = index_from_env else {
                    return Err(format!(
                        "--shard {text} needs the shard's index: write I/{text}, or set {INDEX_VARIABLE}"
                    ));
                };
                (number(env, INDEX_VARIABLE)?, count)
            }
        };
        if count == 0 {
            return Err("a sweep has at least one shard".into());
        }
        if index >= count {
            return Err(format!("shard {index} of {count}: shards are counted 0 to {}", count - 1));
        }
        Ok(Shard { index, count })
    }

    /// The seeds of `range` this shard runs, in order.
    pub fn seeds(self, range: Range<u64>) -> Vec<u64> {
        let first = range.start.saturating_add(self.index);
        (first..range.end).step_by(self.count.min(usize::MAX as u64) as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_cover_the_range_and_differ_by_at_most_one_seed() {
        for count in 1..=7 {
            let shards: Vec<Vec<u64>> =
                (0..count).map(|index| Shard { index, count }.seeds(10..33)).collect();
            let mut all: Vec<u64> = shards.concat();
            all.sort_unstable();
            assert_eq!(all, (10..33).collect::<Vec<_>>(), "{count} shards");
            let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{count} shards: sizes {sizes:?}");
            for (index, seeds) in shards.iter().enumerate() {
                assert!(seeds.iter().all(|s| (s - 10) % count == index as u64));
            }
        }
        assert_eq!(Shard { index: 5, count: 8 }.seeds(0..4), Vec::<u64>::new());
    }

    #[test]
    fn the_index_comes_from_the_argument_or_the_job_and_bad_ones_are_named() {
        assert_eq!(Shard::parse("2/5", None), Ok(Shard { index: 2, count: 5 }));
        assert_eq!(Shard::parse("5", Some("3")), Ok(Shard { index: 3, count: 5 }));
        assert_eq!(Shard::parse("/5", Some("0")), Ok(Shard { index: 0, count: 5 }));
        assert!(Shard::parse("5", None).unwrap_err().contains(INDEX_VARIABLE));
        assert!(Shard::parse("5/5", None).unwrap_err().contains("counted 0 to 4"));
        assert!(Shard::parse("1/0", None).unwrap_err().contains("at least one"));
        assert!(Shard::parse("x/3", None).unwrap_err().contains("\"x\""));
        assert!(Shard::parse("4", Some("9")).is_err());
    }
}
