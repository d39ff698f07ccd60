//! Time as the driver tells it. The core never reads a clock.

use std::ops::Add;
use std::time::Duration;

/// A point on one node's local monotonic clock, in microseconds since an
/// origin the driver picks. Instants of different nodes are not comparable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `micros` microseconds after the origin.
    pub fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// Microseconds since the origin.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

/// `ms` milliseconds after the origin, for the unit tests.
#[cfg(test)]
pub(crate) fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1_000)
}
