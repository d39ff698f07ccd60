//! Coordination inside the state machine: sessions with TTLs and ephemeral keys ([`session`]),
//! locks with fencing tokens and lock-delay ([`lock`]), elections (`election`), the
//! owner-plus-FIFO-queue record that locks and elections share (`queue`), what each session owns
//! (`owned`), and the tables they live in (`tables`). The commands and their rules are
//! [`synod_wire::coord_command`]'s.
//!
//! `owned` and `tables` are table operations below the writer (`crate::writer`), which
//! uses them; `session`, `lock` and `election` are commands above it, which take one.
//!
//! Apply never reads a clock: the leader's [`SessionClock`] ([`session_clock`]) keeps the
//! deadlines of sessions and lock-delays and proposes the commands that end them.

pub(crate) mod election;
pub mod lock;
pub(crate) mod owned;
mod queue;
pub mod session;
pub mod session_clock;
pub(crate) mod tables;

pub use lock::DelayedLock;
pub use session::SessionInfo;
pub use session_clock::{SessionClock, SessionClockConfig};
