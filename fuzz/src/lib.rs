//! Helpers shared by Synod's fuzz targets (`fuzz_targets/*.rs`): structured inputs built from
//! the fuzzer's bytes, and well-framed WAL segments.
//!
//! Each target reads its input through [`arbitrary::Unstructured`], so a short input still
//! drives a whole scenario, and every choice the input cannot make defaults to the first
//! option (an exhausted `Unstructured` yields zeros).

pub mod generate;
pub mod wal_format;

/// How many things to take from `u`, at most `max` (0 once the input is exhausted).
pub fn count(u: &mut arbitrary::Unstructured<'_>, max: usize) -> usize {
    u.int_in_range(0..=max).unwrap_or(0)
}
