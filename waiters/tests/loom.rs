//! loom models of the wait table. Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p synod-waiters --release --test loom`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{mpsc, Arc};
use loom::thread;
use synod_waiters::WaitTable;

/// Registering before handing the command over means the apply loop's
/// answer is never lost, whatever the interleaving.
#[test]
fn register_then_propose_never_loses_the_answer() {
    loom::model(|| {
        let table = Arc::new(WaitTable::<u64, u64>::new(2));
        let answers = Arc::new(AtomicUsize::new(0));
        let (to_core, core_inbox) = mpsc::channel::<u64>();
        let client = {
            let table = table.clone();
            let answers = answers.clone();
            thread::spawn(move || {
                let counted = answers.clone();
                table
                    .register(
                        1,
                        Box::new(move |v| {
                            assert_eq!(v, Some(10));
                            counted.fetch_add(1, Ordering::SeqCst);
                        }),
                    )
                    .unwrap();
                to_core.send(1).unwrap();
            })
        };
        let core = {
            let table = table.clone();
            thread::spawn(move || {
                let key = core_inbox.recv().unwrap();
                assert!(table.complete(&key, 10));
            })
        };
        client.join().unwrap();
        core.join().unwrap();
        assert_eq!(answers.load(Ordering::SeqCst), 1);
    });
}

/// A client giving up races the apply loop: the callback runs exactly once,
/// either with the value or with nothing.
#[test]
fn cancel_racing_complete_calls_back_exactly_once() {
    loom::model(|| {
        let table = Arc::new(WaitTable::<u64, u64>::new(1));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        table
            .register(
                1,
                Box::new(move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        let canceller = {
            let table = table.clone();
            thread::spawn(move || table.cancel(&1))
        };
        let completer = {
            let table = table.clone();
            thread::spawn(move || table.complete(&1, 5))
        };
        let cancelled = canceller.join().unwrap();
        let completed = completer.join().unwrap();
        assert!(cancelled ^ completed, "exactly one side found the waiter");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

/// Two clients racing for the last place: one gets it, the other is told
/// the table is full; the bound always holds.
#[test]
fn capacity_holds_under_concurrent_registration() {
    loom::model(|| {
        let table = Arc::new(WaitTable::<u64, u64>::new(1));
        let handles: Vec<_> = (0..2)
            .map(|key| {
                let table = table.clone();
                thread::spawn(move || table.register(key, Box::new(|_| {})).is_ok())
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 1);
        assert_eq!(table.len(), 1);
    });
}
