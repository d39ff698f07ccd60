//! Whole-cluster deterministic simulation of the Paxos core.
//!
//! - `cargo test --test simulation` runs 300 seeds across six fault mixes
//!   (3- and 5-node clusters alternating), each with key-value clients and
//!   coordination clients (sessions, locks, fenced writes, elections).
//! - `SYNOD_SIM_SEEDS=3000` runs that many seeds instead;
//!   `SYNOD_SIM_FIRST_SEED=N` starts elsewhere.
//! - `SYNOD_SIM_SEED=42 SYNOD_SIM_NODES=5 SYNOD_SIM_MIX=chaos cargo test
//!   --test simulation replay_one_seed -- --nocapture` replays one run and
//!   prints its message trace.

mod sim;
mod support;

use std::time::Instant as WallClock;

use sim::network::{FaultMix, FAULT_MIXES};
use sim::{run, CoordOracles, Oracle, SimOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn mix(name: &str) -> FaultMix {
    *FAULT_MIXES
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no fault mix named {name}"))
}

fn margin(us: u64) -> String {
    if us == u64::MAX {
        "-".to_string()
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// A run's settings; `SYNOD_SIM_COORD_CLIENTS` overrides how many
/// coordination clients run (0 for key-value clients only).
fn options(seed: u64, nodes: usize, mix_name: &str) -> SimOptions {
    let mut options = SimOptions::new(seed, nodes, mix(mix_name));
    options.coord_clients =
        env_u64("SYNOD_SIM_COORD_CLIENTS", options.coord_clients as u64) as usize;
    options
}

/// Runs this mix's share of the seeds; panics with the first failure.
/// Returns how many snapshots lagging nodes installed.
fn run_mix(name: &str) -> u64 {
    let total = env_u64("SYNOD_SIM_SEEDS", 300);
    let first = env_u64("SYNOD_SIM_FIRST_SEED", 1);
    let per_mix = total.div_ceil(FAULT_MIXES.len() as u64);
    let started = WallClock::now();
    let (mut commands, mut simulated_us, mut worst_recovery_us, mut snapshots) = (0, 0, 0, 0);
    let (mut terms, mut expired, mut closed) = (0, 0, 0);
    let (mut early_us, mut late_us) = (u64::MAX, u64::MAX);
    let mut coord = sim::CoordStats::default();
    for seed in first..first + per_mix {
        let nodes = if seed % 2 == 0 { 5 } else { 3 };
        let options = options(seed, nodes, name);
        match run(&options) {
            Ok(report) => {
                commands += report.committed_commands;
                simulated_us += report.simulated_us;
                worst_recovery_us = worst_recovery_us.max(report.recovery_us);
                snapshots += report.snapshots_installed;
                terms += report.terms;
                expired += report.sessions_expired;
                closed += report.sessions_closed;
                coord = coord.add(&report.coord);
                early_us = early_us.min(report.closest_early_us.unwrap_or(u64::MAX));
                late_us = late_us.min(report.closest_late_us.unwrap_or(u64::MAX));
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "mix {name}: {per_mix} seeds, {commands} commands committed in {:.0} s simulated, \
         {:.0} commands per real second, slowest recovery after heal {} ms, \
         {snapshots} snapshots installed, {terms} leaderships, {elapsed:.1} s\n  \
         coordination: {} sessions ({} abandoned, {expired} expired, {closed} closed, {} kept \
         alive but lost), {} lock grants, fenced writes {} accepted / {} refused ({} from \
         zombies), {} election wins\n  \
         closest expiry to the earliest allowed: {}; to the latest allowed while leaders \
         change: {}",
        simulated_us as f64 / 1e6,
        commands as f64 / elapsed,
        worst_recovery_us / 1000,
        coord.sessions_opened,
        coord.sessions_abandoned,
        coord.kept_sessions_lost,
        coord.grants,
        coord.fenced_accepted,
        coord.fenced_rejected,
        coord.zombie_writes_rejected,
        coord.elected,
        margin(early_us),
        margin(late_us),
    );
    snapshots
}

#[test]
fn calm_network_keeps_every_oracle() {
    run_mix("calm");
}

#[test]
fn lossy_reordering_network_keeps_every_oracle() {
    run_mix("lossy");
}

#[test]
fn partitions_keep_every_oracle() {
    run_mix("partitions");
}

#[test]
fn crashes_and_restarts_keep_every_oracle() {
    let snapshots = run_mix("crashes");
    assert!(snapshots > 0, "restarted nodes caught up by snapshot");
}

#[test]
fn chaos_keeps_every_oracle() {
    run_mix("chaos");
}

#[test]
fn leaders_isolated_and_crashing_as_they_win_keep_every_oracle() {
    run_mix("elections");
}

#[test]
fn leaders_changing_every_second_keep_every_oracle() {
    run_mix("churn");
}

#[test]
fn replay_one_seed() {
    let seed = env_u64("SYNOD_SIM_SEED", 1);
    let nodes = env_u64("SYNOD_SIM_NODES", 3) as usize;
    let name = std::env::var("SYNOD_SIM_MIX").unwrap_or_else(|_| "chaos".to_string());
    let mut options = if std::env::var("SYNOD_SIM_MEMBERSHIP").is_ok() {
        membership_options(seed, nodes, &name)
    } else {
        options(seed, nodes, &name)
    };
    options.trace = true;
    match run(&options) {
        Ok(report) => {
            for line in &report.trace {
                println!("{line}");
            }
            println!(
                "seed {seed}: ok, {} commands, {} operations, {} leaderships, {} sessions \
                 expired, {} closed, recovery after heal {} ms; clients: {:?}",
                report.committed_commands,
                report.history_len,
                report.terms,
                report.sessions_expired,
                report.sessions_closed,
                report.recovery_us / 1000,
                report.coord
            );
        }
        Err(failure) => {
            for line in &failure.trace {
                println!("{line}");
            }
            panic!("{failure}");
        }
    }
}

#[test]
fn dueling_proposers_converge_on_one_leader() {
    let mut worst_ballots = 0;
    let mut worst_election_us = 0;
    for seed in 1..=40 {
        let mut options = SimOptions::new(seed, 3, mix("calm"));
        options.coord_clients = 0;
        options.campaign_at_start = vec![0, 1];
        options.fault_phase_us = 1_000_000;
        let report = run(&options).unwrap_or_else(|f| panic!("{f}"));
        let elected_us = report.first_commit_us.expect("a leader committed");
        worst_ballots = worst_ballots.max(report.ballots_tried);
        worst_election_us = worst_election_us.max(elected_us);
    }
    eprintln!(
        "dueling proposers: at most {worst_ballots} ballots tried in a run; \
         longest time to the first commit {} ms",
        worst_election_us / 1000
    );
    assert!(worst_ballots >= 2, "both proposers ran phase 1");
}

/// The settings of a run with membership changes: founding `nodes`, two
/// spare machines that join, key-value clients only.
fn membership_options(seed: u64, nodes: usize, mix_name: &str) -> SimOptions {
    let mut options = SimOptions::new(seed, nodes, mix(mix_name));
    options.coord_clients = 0;
    options.membership_changes = true;
    options.spares = 2;
    options
}

/// Membership changes (a spare added as a learner, promoted, a voter
/// removed: a crashed one first, the leader itself at times) under the
/// loss, partitions, crashes and clock drift of four fault mixes;
/// `SYNOD_SIM_MEMBERSHIP_SEEDS` seeds per mix (default 12).
#[test]
fn membership_changes_keep_every_oracle() {
    let per_mix = env_u64("SYNOD_SIM_MEMBERSHIP_SEEDS", 12);
    let first = env_u64("SYNOD_SIM_FIRST_SEED", 1);
    for name in ["lossy", "partitions", "crashes", "chaos"] {
        let started = WallClock::now();
        let (mut changes, mut commands, mut worst_recovery_us) = (0, 0, 0);
        for seed in first..first + per_mix {
            let nodes = if seed % 2 == 0 { 5 } else { 3 };
            match run(&membership_options(seed, nodes, name)) {
                Ok(report) => {
                    changes += report.membership_changes;
                    commands += report.committed_commands;
                    worst_recovery_us = worst_recovery_us.max(report.recovery_us);
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        eprintln!(
            "membership under {name}: {per_mix} seeds, {changes} changes chosen, {commands} \
             commands, slowest recovery after heal {} ms, {:.1} s",
            worst_recovery_us / 1000,
            started.elapsed().as_secs_f64()
        );
        assert!(
            changes >= per_mix,
            "too few membership changes to mean anything"
        );
    }
}

/// Runs seeds with a deliberately broken rule until the oracles flag one.
fn first_caught(mix_name: &str, bugs: synod_paxos::Bugs) -> Option<String> {
    (1..=env_u64("SYNOD_TEETH_SEEDS", 60)).find_map(|seed| {
        let mut options = SimOptions::new(seed, 3, mix(mix_name));
        options.coord_clients = 0;
        options.bugs = bugs.clone();
        run(&options).err().map(|f| f.to_string())
    })
}

#[test]
fn oracles_catch_a_leader_that_ignores_promised_values() {
    let bugs = synod_paxos::Bugs {
        ignore_promised_values: true,
        ..Default::default()
    };
    let caught = first_caught("crashes", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_phase2_sent_before_the_own_promise_is_durable() {
    let bugs = synod_paxos::Bugs {
        phase2_before_own_promise_durable: true,
        ..Default::default()
    };
    let caught = first_caught("elections", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_a_membership_change_that_governs_at_once() {
    let bugs = synod_paxos::Bugs {
        reconfigure_at_once: true,
        ..Default::default()
    };
    let caught = (1..=env_u64("SYNOD_TEETH_SEEDS", 60))
        .find_map(|seed| {
            let mut options = membership_options(seed, 3, "lossy");
            options.bugs = bugs.clone();
            run(&options).err().map(|f| f.to_string())
        })
        .expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

/// Like [`first_caught`], for a broken rule of the storage crate (whose
/// switches the coordination rules share).
fn first_caught_in_storage(mix_name: &str, bugs: synod_kvstore::Bugs) -> Option<String> {
    (1..=env_u64("SYNOD_TEETH_SEEDS", 60)).find_map(|seed| {
        let mut options = SimOptions::new(seed, 3, mix(mix_name));
        options.coord_clients = 0;
        options.coord_bugs = bugs;
        run(&options).err().map(|f| f.to_string())
    })
}

#[test]
fn oracles_catch_a_log_that_cuts_synced_frames_after_a_corrupt_one() {
    let bugs = synod_kvstore::Bugs {
        wal_cuts_after_corrupt_frame: true,
        ..Default::default()
    };
    let caught = first_caught_in_storage("crashes", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_a_snapshot_stream_replaced_by_a_second_one() {
    let bugs = synod_kvstore::Bugs {
        snapshot_stream_replaced_at_once: true,
        ..Default::default()
    };
    let caught = first_caught_in_storage("crashes", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_reads_served_without_a_lease() {
    let bugs = synod_paxos::Bugs {
        read_without_lease: true,
        ..Default::default()
    };
    let caught = first_caught("partitions", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_a_follower_read_served_before_its_read_index() {
    let bugs = synod_paxos::Bugs {
        follower_read_before_index: true,
        ..Default::default()
    };
    let caught = first_caught("lossy", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

#[test]
fn oracles_catch_a_lazy_accept_counted_as_a_vote() {
    let bugs = synod_paxos::Bugs {
        lazy_accept_votes: true,
        ..Default::default()
    };
    let caught = first_caught("crashes", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}

/// Runs seeds with a deliberately broken coordination rule and only
/// `oracle` on, until it flags one; returns its message.
fn caught_by(oracle: Oracle, mix_name: &str, bugs: synod_kvstore::Bugs) -> String {
    let seeds = 40;
    (1..=seeds)
        .find_map(|seed| {
            let mut options = SimOptions::new(seed, 3, mix(mix_name));
            options.coord_bugs = bugs;
            options.coord_oracles = CoordOracles::only(oracle);
            run(&options).err().map(|f| f.to_string())
        })
        .unwrap_or_else(|| panic!("{} missed the broken rule in {seeds} seeds", oracle.name()))
}

fn assert_caught(oracle: Oracle, mix_name: &str, bugs: synod_kvstore::Bugs) {
    let caught = caught_by(oracle, mix_name, bugs);
    eprintln!("caught: {caught}");
    let tag = format!("[{}]", oracle.name());
    assert!(caught.contains(&tag), "expected a {tag} failure: {caught}");
}

#[test]
fn lock_oracle_catches_a_lock_granted_to_a_second_session() {
    let bugs = synod_kvstore::Bugs {
        grant_held_locks: true,
        ..Default::default()
    };
    assert_caught(Oracle::Locks, "calm", bugs);
}

#[test]
fn token_oracle_catches_tokens_that_go_down() {
    let bugs = synod_kvstore::Bugs {
        session_id_tokens: true,
        ..Default::default()
    };
    assert_caught(Oracle::Tokens, "calm", bugs);
}

#[test]
fn fence_oracle_catches_a_zombie_write_accepted_during_lock_delay() {
    let bugs = synod_kvstore::Bugs {
        fence_during_lock_delay: true,
        ..Default::default()
    };
    assert_caught(Oracle::Fences, "calm", bugs);
}

#[test]
fn election_oracle_catches_two_leaders_at_one_revision() {
    let bugs = synod_kvstore::Bugs {
        election_reuses_revision: true,
        ..Default::default()
    };
    assert_caught(Oracle::Elections, "calm", bugs);
}

#[test]
fn keepalive_oracle_catches_a_leader_that_ignores_keepalives() {
    let bugs = synod_kvstore::Bugs {
        keepalive_keeps_deadline: true,
        ..Default::default()
    };
    assert_caught(Oracle::KeepAlive, "calm", bugs);
}

#[test]
fn abandon_oracle_catches_leaders_that_never_checkpoint() {
    let bugs = synod_kvstore::Bugs {
        no_checkpoints: true,
        ..Default::default()
    };
    assert_caught(Oracle::Abandon, "churn", bugs);
}
