//! The core's random numbers: a small seeded generator, so that the same
//! seed and inputs always give the same outputs.

use std::time::Duration;

/// SplitMix64: tiny, fast, and good enough for timeouts and jitter (not for
/// anything secret).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        self.next_u64() % bound
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// A duration drawn uniformly from `[low, high]`.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        assert!(low <= high, "empty duration range");
        let low_us = low.as_micros() as u64;
        let span_us = high.as_micros() as u64 - low_us;
        Duration::from_micros(low_us + self.below(span_us + 1))
    }
}
