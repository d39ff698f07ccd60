//! How long a caller waits between attempts of one call: the one backoff
//! policy of the Rust client and of a node forwarding to its leader.

use std::time::Duration;

/// Pauses that start at [`FIRST`](Backoff::FIRST) and double up to
/// [`MAX`](Backoff::MAX): short enough that a call finds a new leader
/// within milliseconds of its election, long enough that callers waiting
/// out an election do not flood the nodes.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first pause.
    pub const FIRST: Duration = Duration::from_millis(5);
    /// The longest pause.
    pub const MAX: Duration = Duration::from_millis(200);

    /// A policy at its first pause.
    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The pause to take now; the next one is twice as long, up to
    /// [`MAX`](Backoff::MAX).
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..8).map(|_| backoff.pause().as_millis() as u64).collect();
        assert_eq!(pauses, vec![5, 10, 20, 40, 80, 160, 200, 200]);
    }
}
