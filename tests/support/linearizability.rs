//! Linearizability checker for key-value histories.
//!
//! The algorithm is Wing and Gong's search with Lowe's memoization, as in Porcupine's
//! `checkSingle`: the calls and returns of a history sit in a doubly linked list sorted by time;
//! a depth-first search (iterative, with an explicit stack) repeatedly picks a call that comes
//! before every pending return, applies it to the model, and lifts the call and its return out of
//! the list; a dead end pops the stack and puts them back. A cache of (set of linearized ops,
//! model state) pairs prunes every configuration already explored.
//!
//! Every op touches exactly one key and keys are independent registers, so the history is
//! linearizable iff each per-key sub-history is (P-compositionality). Each key is checked on its
//! own with its own step budget.
//!
//! # Semantics of a history
//!
//! - Op `a` precedes op `b` in real time iff `a.complete <= b.invoke`: a return and a call with
//!   equal timestamps are **not** concurrent. Harnesses should take `invoke` before sending the
//!   request and `complete` after the reply arrives, so equal stamps only occur when `b` really
//!   started after `a` ended (the same client, or a simulator event processed later in the same
//!   tick). Ops with `invoke == complete` at the same instant are concurrent with each other.
//! - `complete == None`: the client never learned the result. The op returns at +infinity with
//!   any outcome allowed, so it may take effect at any time after `invoke` or never.
//! - `KvOutcome::Unknown` with `Some(complete)`: the op **took effect** somewhere in
//!   `[invoke, complete]` and its output is not checked (a CAS then succeeded or failed as the
//!   value at that point dictated). Use it only when the harness knows the op was applied; a
//!   client that gave up without knowing must record `complete = None` instead.
//!
//! # Cost
//!
//! The search is exponential in the worst case (checking linearizability is NP-complete), and
//! never-completed writes are the usual cause: each stays concurrent with everything after its
//! invoke, so keep them rare. A linearizable history is usually found fast; proving a violation
//! means exhausting the search, which costs far more. A step is one visit of a list entry; about
//! ten million steps took a second in the test profile (`cargo test --test linearizability`,
//! 240 ops over 2 keys, 12 clients). Each step may add one cache entry of `ops_on_key / 64 + 2`
//! words, so memory grows with the step limit. Exceeding the limit yields
//! [`CheckResult::GaveUp`], never a verdict.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// A key of the store.
pub type Key = Vec<u8>;
/// A value of the store.
pub type Val = Vec<u8>;

/// The work cap used by [`check_kv`]: search steps allowed per key.
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 10_000_000;

/// A request a client sends to the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Val,
    },
    /// Read `key`.
    Get {
        /// The key read.
        key: Key,
    },
    /// Compare-and-set: succeeds iff the current value equals `expected` (`None` means the key
    /// is absent), and on success sets `key` to `new`.
    Cas {
        /// The key compared and set.
        key: Key,
        /// The value required for success; `None` requires the key to be absent.
        expected: Option<Val>,
        /// The value written on success.
        new: Val,
    },
}

impl KvOp {
    /// The one key this op touches.
    pub fn key(&self) -> &Key {
        match self {
            KvOp::Put { key, .. } | KvOp::Get { key } | KvOp::Cas { key, .. } => key,
        }
    }
}

/// What the client observed when an op returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutcome {
    /// A put was acknowledged.
    Put,
    /// A get returned this value (`None`: the key was absent).
    Get(Option<Val>),
    /// A compare-and-set reported success (`true`) or failure (`false`).
    Cas(bool),
    /// The client never learned the result; see the module docs for what this permits.
    Unknown,
}

/// One op of a history, as recorded by a client.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The client that issued the op; for display only.
    pub client: u64,
    /// When the op was invoked, on a clock shared by all clients (any monotonic unit).
    pub invoke: u64,
    /// When the op returned; `None` if it never did (then `outcome` must be `Unknown`).
    pub complete: Option<u64>,
    /// The request.
    pub op: KvOp,
    /// The observed result.
    pub outcome: KvOutcome,
}

/// The verdict of a check.
#[derive(Clone, Debug)]
pub enum CheckResult {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// The sub-history of `key` has no linearization.
    NotLinearizable {
        /// The key whose sub-history failed.
        key: Key,
        /// The ops on `key`, in invoke order; the explanation numbers them from `#0`.
        ops: Vec<Operation>,
        /// The longest linearizable prefix found and why no op can extend it.
        explanation: String,
    },
    /// The search on `key` hit the step limit before reaching a verdict. Reported only when no
    /// other key was found not linearizable.
    GaveUp {
        /// The first key whose search was abandoned.
        key: Key,
    },
}

impl CheckResult {
    /// True iff the history was proved linearizable (`GaveUp` is not).
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

/// Checks `history` with [`DEFAULT_MAX_STEPS_PER_KEY`].
pub fn check_kv(history: &[Operation]) -> CheckResult {
    check_kv_with_limit(history, DEFAULT_MAX_STEPS_PER_KEY)
}

/// Checks `history`, allowing at most `max_steps_per_key` search steps for each key.
///
/// Keys are checked in byte order; the first key found not linearizable is reported, otherwise
/// the first key the search gave up on. Panics on a malformed op (an outcome of the wrong kind, a
/// known outcome without a completion time, or `complete < invoke`): that is a harness bug.
pub fn check_kv_with_limit(history: &[Operation], max_steps_per_key: u64) -> CheckResult {
    let mut partitions: BTreeMap<&Key, Vec<Operation>> = BTreeMap::new();
    for op in history {
        validate(op);
        partitions.entry(op.op.key()).or_default().push(op.clone());
    }
    let mut gave_up: Option<Key> = None;
    for (key, mut ops) in partitions {
        ops.sort_by_key(|o| (o.invoke, o.complete.unwrap_or(u64::MAX), o.client));
        match check_partition(&ops, max_steps_per_key) {
            Search::Linearizable => {}
            Search::GaveUp => {
                gave_up.get_or_insert_with(|| key.clone());
            }
            Search::NotLinearizable { explanation } => {
                return CheckResult::NotLinearizable {
                    key: key.clone(),
                    ops,
                    explanation,
                };
            }
        }
    }
    match gave_up {
        Some(key) => CheckResult::GaveUp { key },
        None => CheckResult::Linearizable,
    }
}

fn validate(op: &Operation) {
    if let Some(complete) = op.complete {
        assert!(
            complete >= op.invoke,
            "op completes before it is invoked: {op}"
        );
    } else {
        assert!(
            op.outcome == KvOutcome::Unknown,
            "an op that never completed must have outcome Unknown: {op}"
        );
    }
    let kinds_match = matches!(
        (&op.op, &op.outcome),
        (_, KvOutcome::Unknown)
            | (KvOp::Put { .. }, KvOutcome::Put)
            | (KvOp::Get { .. }, KvOutcome::Get(_))
            | (KvOp::Cas { .. }, KvOutcome::Cas(_))
    );
    assert!(kinds_match, "outcome does not match the kind of op: {op}");
}

/// The verdict on one key.
enum Search {
    Linearizable,
    NotLinearizable { explanation: String },
    GaveUp,
}

/// An op compiled against interned values: value id 0 is "absent", id `i` is `values[i - 1]`.
enum Step {
    Put(u32),
    /// `None`: output not checked.
    Get(Option<u32>),
    Cas {
        expected: u32,
        new: u32,
        /// `None`: output not checked.
        succeeded: Option<bool>,
    },
}

/// The register model: the state after applying `step` to `state`, or `None` if the op's
/// observed output contradicts `state`.
fn apply(state: u32, step: &Step) -> Option<u32> {
    match *step {
        Step::Put(value) => Some(value),
        Step::Get(seen) => seen.is_none_or(|s| s == state).then_some(state),
        Step::Cas {
            expected,
            new,
            succeeded,
        } => {
            let ok = state == expected;
            succeeded
                .is_none_or(|s| s == ok)
                .then_some(if ok { new } else { state })
        }
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Val, u32>,
    values: Vec<Val>,
}

impl Interner {
    fn id(&mut self, value: Option<&Val>) -> u32 {
        let Some(value) = value else { return 0 };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.values.push(value.clone());
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.ids.insert(value.clone(), id);
        id
    }

    fn show(&self, id: u32) -> String {
        show_value(id.checked_sub(1).map(|i| &self.values[i as usize]))
    }
}

fn compile(op: &Operation, interner: &mut Interner) -> Step {
    match (&op.op, &op.outcome) {
        (KvOp::Put { value, .. }, _) => Step::Put(interner.id(Some(value))),
        (KvOp::Get { .. }, KvOutcome::Get(seen)) => Step::Get(Some(interner.id(seen.as_ref()))),
        (KvOp::Get { .. }, _) => Step::Get(None),
        (KvOp::Cas { expected, new, .. }, outcome) => Step::Cas {
            expected: interner.id(expected.as_ref()),
            new: interner.id(Some(new)),
            succeeded: match outcome {
                KvOutcome::Cas(ok) => Some(*ok),
                _ => None,
            },
        },
    }
}

fn check_partition(ops: &[Operation], max_steps: u64) -> Search {
    // A get with an unknown output changes nothing and constrains nothing: it can always be
    // linearized anywhere in its interval, so it is left out of the search.
    let searched: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            !matches!(
                (&ops[i].op, &ops[i].outcome),
                (KvOp::Get { .. }, KvOutcome::Unknown)
            )
        })
        .collect();
    let mut interner = Interner::default();
    let steps: Vec<Step> = searched
        .iter()
        .map(|&i| compile(&ops[i], &mut interner))
        .collect();
    let events = sorted_events(searched.iter().map(|&i| &ops[i]));
    match search(&steps, &events, max_steps) {
        Outcome::Linearizable => Search::Linearizable,
        Outcome::GaveUp => Search::GaveUp,
        Outcome::NotLinearizable { longest_prefix } => Search::NotLinearizable {
            explanation: explain(ops, &searched, &steps, &events, &interner, &longest_prefix),
        },
    }
}

/// Calls and returns in time order, as `(op, is_call)`. At equal times: returns of ops that
/// started earlier, then calls of zero-length ops, then their returns, then calls of ops that end
/// later. A never-completed op returns after everything.
fn sorted_events<'a>(ops: impl Iterator<Item = &'a Operation>) -> Vec<(usize, bool)> {
    let mut events = Vec::new();
    for (i, op) in ops.enumerate() {
        let instant = op.complete == Some(op.invoke);
        let call_rank = if instant { 1 } else { 3 };
        let return_rank = if instant { 2 } else { 0 };
        let return_time = op.complete.map_or(u128::MAX, u128::from);
        events.push(((u128::from(op.invoke), call_rank, i), (i, true)));
        events.push(((return_time, return_rank, i), (i, false)));
    }
    events.sort_unstable_by_key(|e| e.0);
    events.into_iter().map(|e| e.1).collect()
}

enum Outcome {
    Linearizable,
    /// `longest_prefix` is the deepest sequence of ops (indices into the searched ops) that the
    /// search linearized, to explain the failure.
    NotLinearizable {
        longest_prefix: Vec<usize>,
    },
    GaveUp,
}

const NIL: usize = usize::MAX;

/// The event list: node 0 is a head sentinel, node `k + 1` is `events[k]`.
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    /// Unlinks a call node and its return node.
    fn lift(&mut self, call: usize, ret: usize) {
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = n;
        self.prev[n] = p;
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Relinks what the matching `lift` unlinked; lifts and unlifts must nest.
    fn unlift(&mut self, call: usize, ret: usize) {
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = ret;
        if n != NIL {
            self.prev[n] = ret;
        }
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = call;
        self.prev[n] = call;
    }
}

/// The configurations already explored: the linearized set as a bitset, then the state, in one
/// word vector so that lookups borrow the working copy instead of allocating.
struct Cache {
    current: Vec<u64>,
    seen: HashSet<Box<[u64]>>,
}

impl Cache {
    fn new(op_count: usize) -> Cache {
        Cache {
            current: vec![0; op_count / 64 + 2],
            seen: HashSet::new(),
        }
    }

    /// Marks `op` linearized with resulting `state` and returns true if that configuration is
    /// new; otherwise leaves `op` unmarked and returns false.
    fn try_visit(&mut self, op: usize, state: u32) -> bool {
        let last = self.current.len() - 1;
        self.current[op / 64] |= 1 << (op % 64);
        self.current[last] = u64::from(state);
        if self.seen.contains(&self.current[..]) {
            self.unmark(op);
            return false;
        }
        self.seen.insert(self.current.clone().into_boxed_slice());
        true
    }

    fn unmark(&mut self, op: usize) {
        self.current[op / 64] &= !(1 << (op % 64));
    }
}

/// Porcupine's `checkSingle` over the compiled ops and their time-ordered events.
fn search(steps: &[Step], events: &[(usize, bool)], max_steps: u64) -> Outcome {
    let node_count = events.len() + 1;
    let mut links = Links {
        next: (1..=node_count)
            .map(|i| if i < node_count { i } else { NIL })
            .collect(),
        prev: (0..node_count).map(|i| i.wrapping_sub(1)).collect(),
    };
    let mut return_node = vec![NIL; steps.len()];
    for (k, &(op, is_call)) in events.iter().enumerate() {
        if !is_call {
            return_node[op] = k + 1;
        }
    }
    let mut cache = Cache::new(steps.len());
    // (call node, state before it) for every op in the current prefix.
    let mut stack: Vec<(usize, u32)> = Vec::with_capacity(steps.len());
    let mut longest_prefix: Vec<usize> = Vec::new();
    let mut state: u32 = 0;
    let mut node = links.next[0];
    let mut steps_taken: u64 = 0;
    while links.next[0] != NIL {
        steps_taken += 1;
        if steps_taken > max_steps {
            return Outcome::GaveUp;
        }
        // The last live node is always a return, so the walk meets one before the end.
        assert!(node != NIL, "walked off the event list");
        let (op, is_call) = events[node - 1];
        if is_call {
            match apply(state, &steps[op]) {
                Some(new_state) if cache.try_visit(op, new_state) => {
                    stack.push((node, state));
                    state = new_state;
                    links.lift(node, return_node[op]);
                    node = links.next[0];
                    if stack.len() > longest_prefix.len() {
                        longest_prefix = stack.iter().map(|&(n, _)| events[n - 1].0).collect();
                    }
                }
                _ => node = links.next[node],
            }
        } else {
            // A pending op must return before any remaining call: backtrack.
            let Some((call, previous_state)) = stack.pop() else {
                return Outcome::NotLinearizable { longest_prefix };
            };
            let call_op = events[call - 1].0;
            cache.unmark(call_op);
            state = previous_state;
            links.unlift(call, return_node[call_op]);
            node = links.next[call];
        }
    }
    assert!(stack.len() == steps.len(), "every op is linearized");
    Outcome::Linearizable
}

/// Describes the deepest prefix the search reached and why each op that could follow it fails.
fn explain(
    ops: &[Operation],
    searched: &[usize],
    steps: &[Step],
    events: &[(usize, bool)],
    interner: &Interner,
    prefix: &[usize],
) -> String {
    let mut state = 0;
    let mut done = vec![false; steps.len()];
    for &op in prefix {
        state = apply(state, &steps[op]).expect("the prefix was linearized");
        done[op] = true;
    }
    let order: Vec<String> = prefix
        .iter()
        .map(|&op| format!("#{}", searched[op]))
        .collect();
    let mut text = format!(
        "no linearization exists. The longest linearizable prefix found orders {} of {} ops \
         [{}] (gets with unknown output are not counted) and leaves the value {}. \
         The ops that could come next:",
        prefix.len(),
        steps.len(),
        order.join(", "),
        interner.show(state),
    );
    // Calls before the first pending return are exactly the ops that may be linearized next.
    for &(op, is_call) in events.iter().filter(|&&(op, _)| !done[op]) {
        if !is_call {
            break;
        }
        let i = searched[op];
        let why = match apply(state, &steps[op]) {
            None => format!("contradicts the value {}", interner.show(state)),
            Some(_) => "fits, but every continuation after it fails".to_string(),
        };
        text.push_str(&format!("\n  #{i} {}: {why}", show_call(&ops[i])));
    }
    text
}

fn show_value(value: Option<&Val>) -> String {
    match value {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "absent".to_string(),
    }
}

/// The request and its observed outcome, e.g. `cas("k", absent => "v") -> true`.
fn show_call(op: &Operation) -> String {
    let key = show_value(Some(op.op.key()));
    let call = match &op.op {
        KvOp::Put { value, .. } => format!("put({key}, {})", show_value(Some(value))),
        KvOp::Get { .. } => format!("get({key})"),
        KvOp::Cas { expected, new, .. } => format!(
            "cas({key}, {} => {})",
            show_value(expected.as_ref()),
            show_value(Some(new))
        ),
    };
    let result = match &op.outcome {
        KvOutcome::Put => "ok".to_string(),
        KvOutcome::Get(value) => show_value(value.as_ref()),
        KvOutcome::Cas(ok) => ok.to_string(),
        KvOutcome::Unknown => "unknown".to_string(),
    };
    format!("{call} -> {result}")
}

/// One line: client, `[invoke, complete]` (`never` if it never returned), request and outcome.
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let complete = self.complete.map_or("never".to_string(), |t| t.to_string());
        write!(
            f,
            "client {} [{}, {}] {}",
            self.client,
            self.invoke,
            complete,
            show_call(self)
        )
    }
}

/// A verdict a human can read: for a failure, the key, the explanation and the key's ops.
impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => write!(f, "linearizable"),
            CheckResult::GaveUp { key } => write!(
                f,
                "gave up on key {}: the search hit its step limit, so the history is neither \
                 proved linearizable nor proved not linearizable",
                show_value(Some(key))
            ),
            CheckResult::NotLinearizable {
                key,
                ops,
                explanation,
            } => {
                writeln!(
                    f,
                    "not linearizable on key {}: {explanation}",
                    show_value(Some(key))
                )?;
                write!(f, "ops on this key in invoke order:")?;
                for (i, op) in ops.iter().enumerate() {
                    write!(f, "\n  #{i} {op}")?;
                }
                Ok(())
            }
        }
    }
}
