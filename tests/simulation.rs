//! Whole-cluster deterministic simulation of the Paxos core.
//!
//! - `cargo test --test simulation` runs 300 seeds across five fault mixes
//!   (3- and 5-node clusters alternating).
//! - `SYNOD_SIM_SEEDS=3000` runs that many seeds instead;
//!   `SYNOD_SIM_FIRST_SEED=N` starts elsewhere.
//! - `SYNOD_SIM_SEED=42 SYNOD_SIM_NODES=5 SYNOD_SIM_MIX=chaos cargo test
//!   --test simulation replay_one_seed -- --nocapture` replays one run and
//!   prints its message trace.

mod sim;
mod support;

use std::time::Instant as WallClock;

use sim::network::{FaultMix, FAULT_MIXES};
use sim::{run, SimOptions};

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

/// Runs this mix's share of the seeds; panics with the first failure.
/// Returns how many snapshots lagging nodes installed.
fn run_mix(name: &str) -> u64 {
    let total = env_u64("SYNOD_SIM_SEEDS", 300);
    let first = env_u64("SYNOD_SIM_FIRST_SEED", 1);
    let per_mix = total.div_ceil(FAULT_MIXES.len() as u64);
    let started = WallClock::now();
    let (mut commands, mut simulated_us, mut worst_recovery_us, mut snapshots) = (0, 0, 0, 0);
    for seed in first..first + per_mix {
        let nodes = if seed % 2 == 0 { 5 } else { 3 };
        let options = SimOptions::new(seed, nodes, mix(name));
        match run(&options) {
            Ok(report) => {
                commands += report.committed_commands;
                simulated_us += report.simulated_us;
                worst_recovery_us = worst_recovery_us.max(report.recovery_us);
                snapshots += report.snapshots_installed;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "mix {name}: {per_mix} seeds, {commands} commands committed in {:.0} s simulated, \
         {:.0} commands per real second, slowest recovery after heal {} ms, \
         {snapshots} snapshots installed",
        simulated_us as f64 / 1e6,
        commands as f64 / elapsed,
        worst_recovery_us / 1000
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
fn replay_one_seed() {
    let seed = env_u64("SYNOD_SIM_SEED", 1);
    let nodes = env_u64("SYNOD_SIM_NODES", 3) as usize;
    let name = std::env::var("SYNOD_SIM_MIX").unwrap_or_else(|_| "chaos".to_string());
    let mut options = SimOptions::new(seed, nodes, mix(&name));
    options.trace = true;
    match run(&options) {
        Ok(report) => {
            for line in &report.trace {
                println!("{line}");
            }
            println!(
                "seed {seed}: ok, {} commands, {} operations",
                report.committed_commands, report.history_len
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

/// Runs seeds with a deliberately broken rule until the oracles flag one.
fn first_caught(mix_name: &str, bugs: synod_paxos::Bugs) -> Option<String> {
    (1..=60).find_map(|seed| {
        let mut options = SimOptions::new(seed, 3, mix(mix_name));
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
fn oracles_catch_reads_served_without_a_lease() {
    let bugs = synod_paxos::Bugs {
        read_without_lease: true,
        ..Default::default()
    };
    let caught = first_caught("partitions", bugs).expect("the broken rule went unnoticed");
    eprintln!("caught: {caught}");
}
