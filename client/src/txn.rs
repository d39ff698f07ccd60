//! Transactions: compares, then the ops of one branch or the other, applied
//! atomically and exactly once (etcd's `Txn`).

use synod_wire::{Compare, Op, Outcome, Txn, TxnOp, TxnOpResponse, TxnOutcome};

use crate::client::{unexpected, Client};
use crate::error::ClientError;
use crate::options::WriteOptions;
use crate::KeyValue;

/// A transaction to build: if every compare holds, the `and_then` ops run,
/// else the `or_else` ops, in order, as one command at one revision.
///
/// At most 64 compares and 64 ops per branch
/// ([`MAX_TXN_OPS`](synod_wire::limits::MAX_TXN_OPS)); a branch whose reads
/// would return more than
/// [`MAX_REPLY_BYTES`](synod_wire::limits::MAX_REPLY_BYTES) is refused
/// before it writes anything.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// use synod_client::{Compare, CompareOp, Transaction, TxnOp};
/// // Move a job from `queue/1` to `running/1`, unless another worker took it.
/// let result = client
///     .txn(
///         Transaction::new()
///             .when([Compare::version(b"queue/1", CompareOp::Greater, 0)])
///             .and_then([
///                 TxnOp::get(b"queue/1"),
///                 TxnOp::delete(b"queue/1"),
///                 TxnOp::put(b"running/1", b"worker-a"),
///             ]),
///     )
///     .await?;
/// if result.succeeded {
///     println!("took {:?}", result.get(0));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transaction {
    txn: Txn,
}

impl Transaction {
    /// An empty transaction (no compares: the `and_then` branch runs).
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Adds compares; all must hold for the `and_then` branch to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Transaction {
        self.txn.compares.extend(compares);
        self
    }

    /// Adds ops to the branch that runs when every compare holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Transaction {
        self.txn.success.extend(ops);
        self
    }

    /// Adds ops to the branch that runs when a compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Transaction {
        self.txn.failure.extend(ops);
        self
    }

    /// The state machine's command.
    pub fn into_op(self) -> Op {
        Op::Txn(self.txn)
    }
}

/// What a [`Transaction`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnResult {
    /// Whether every compare held (so the `and_then` branch ran).
    pub succeeded: bool,
    /// The store revision after the transaction (unchanged if it wrote
    /// nothing).
    pub revision: u64,
    /// One result per op of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

impl TxnResult {
    /// What the branch's op number `index` read, if it was a get of a key
    /// that existed.
    pub fn get(&self, index: usize) -> Option<&KeyValue> {
        match self.responses.get(index)?.outcome.as_ref()? {
            TxnOutcome::Get(get) => get.kv.as_ref(),
            _ => None,
        }
    }
}

impl Client {
    /// Runs `transaction` atomically, exactly once.
    pub async fn txn(&self, transaction: Transaction) -> Result<TxnResult, ClientError> {
        self.txn_with(transaction, &WriteOptions::default()).await
    }

    /// Runs `transaction` as `options` say (fenced, in a session, with its
    /// own timeout): see [`write_with`](Client::write_with).
    pub async fn txn_with(
        &self,
        transaction: Transaction,
        options: &WriteOptions,
    ) -> Result<TxnResult, ClientError> {
        let response = self.write_with(transaction.into_op(), options).await?;
        match response.outcome {
            Some(Outcome::Txn(txn)) => Ok(TxnResult {
                succeeded: txn.succeeded,
                revision: response.revision,
                responses: txn.responses,
            }),
            other => Err(unexpected(other)),
        }
    }
}
