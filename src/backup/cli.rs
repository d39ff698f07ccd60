//! The `synod snapshot` subcommands: `save`, `verify`, `restore`. Errors become words here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;

use super::restore::{self, check_empty, check_new_cluster, restore_data_dir, VerifiedBackup};
use super::save::save;
use crate::cli::ClusterFlags;
use crate::config::NodeConfig;

/// `synod snapshot ...`.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save a consistent snapshot of a live cluster's state to FILE (a new
    /// file), while it keeps taking writes. Asks the nodes in turn (a
    /// follower points at the leader); the snapshot holds every write
    /// acknowledged before the save began.
    Save {
        /// The backup file to create (refused if it exists).
        file: PathBuf,
        /// Which cluster, and the client certificate to use.
        #[command(flatten)]
        cluster: ClusterFlags,
        /// Take the snapshot from the first node that answers, from its
        /// applied state, which may lag the cluster (spares the leader).
        #[arg(long)]
        serializable: bool,
    },
    /// Read a backup file whole, check every checksum, and print what it
    /// holds.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Seed the data directories of a NEW cluster from a backup file:
    /// `--dev DIR` for a new `synod dev` cluster (certificates with a new
    /// CA, three nodes), `--config node.toml` per node, or `--data-dir DIR`
    /// per node with the new cluster's `--ca`. Refuses non-empty data
    /// directories and a CA of the cluster the backup came from.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// A new `synod dev` cluster directory (missing or empty); then run
        /// `synod dev --data-dir DIR`.
        #[arg(long, conflicts_with_all = ["config", "data_dir"])]
        dev: Option<PathBuf>,
        /// A node's configuration (its data_dir, tls.ca and exactly_once
        /// are used); repeat for each node.
        #[arg(long, conflicts_with = "data_dir")]
        config: Vec<PathBuf>,
        /// A node's data directory (missing or empty); repeat for each node.
        #[arg(long, requires = "ca")]
        data_dir: Vec<PathBuf>,
        /// The new cluster's CA certificate, with --data-dir.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

/// Runs one `synod snapshot` subcommand.
pub async fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save {
            file,
            cluster,
            serializable,
        } => {
            let tls = cluster
                .tls()
                .context("cannot load the client certificate")?;
            let started = Instant::now();
            let saved = save(&cluster.node_addrs(), &tls, serializable, &file).await?;
            println!(
                "saved {}: applied index {}, revision {}, {} keys ({} entries), {} chunks, {} \
                 bytes, from {} in {:.2} s",
                file.display(),
                saved.applied_index,
                saved.revision,
                saved.keys,
                saved.entries,
                saved.chunks,
                saved.bytes,
                saved.source,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        SnapshotCommand::Verify { file } => {
            let verified = restore::verify(&file)?;
            println!("{}", describe(&file, &verified));
            Ok(())
        }
        SnapshotCommand::Restore {
            file,
            dev,
            config,
            data_dir,
            ca,
        } => tokio::task::block_in_place(|| restore_cluster(file, dev, config, data_dir, ca)),
    }
}

/// One node to seed: its data directory, its cluster's CA, its state-machine options.
struct Target {
    data_dir: PathBuf,
    ca: PathBuf,
    options: synod_kvstore::Options,
}

fn restore_cluster(
    file: PathBuf,
    dev: Option<PathBuf>,
    configs: Vec<PathBuf>,
    data_dirs: Vec<PathBuf>,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let verified = restore::verify(&file)?;
    println!("{}", describe(&file, &verified));
    let mut targets = Vec::new();
    for path in &configs {
        let config = NodeConfig::from_file(path)?;
        targets.push(Target {
            data_dir: config.data_dir.clone(),
            ca: config.tls.ca.clone(),
            options: config.exactly_once.state_machine_options(),
        });
    }
    for dir in data_dirs {
        targets.push(Target {
            data_dir: dir,
            ca: ca
                .clone()
                .context("--data-dir needs the new cluster's --ca")?,
            options: synod_kvstore::Options::default(),
        });
    }
    if let Some(dir) = &dev {
        // The whole cluster directory must be new: its certificates are made here, and all of
        // it is removed again if the restore fails.
        check_empty(dir)?;
        let seeded = dev_targets(dir).and_then(|dev_targets| seed(&file, &verified, &dev_targets));
        if seeded.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        seeded?;
        println!(
            "start the new cluster with `synod dev --data-dir {}` (add --base-port P if the old \
             one still runs on 7400)",
            dir.display()
        );
        return Ok(());
    }
    if targets.is_empty() {
        anyhow::bail!("name the new nodes: --dev DIR, --config FILE or --data-dir DIR --ca FILE");
    }
    seed(&file, &verified, &targets)
}

/// Checks every target, then seeds each data directory from the backup at `file`.
fn seed(file: &Path, verified: &VerifiedBackup, targets: &[Target]) -> anyhow::Result<()> {
    // Every check before anything is written.
    for target in targets {
        check_empty(&target.data_dir)?;
        check_new_cluster(&verified.header, &target.ca)?;
    }
    for target in targets {
        let started = Instant::now();
        let (applied_index, revision) =
            restore_data_dir(file, &target.data_dir, target.options.clone())?;
        println!(
            "restored {}: applied index {applied_index}, revision {revision}, in {:.2} s",
            target.data_dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Makes a new `synod dev` cluster's certificates and configurations in `dir`; its nodes.
fn dev_targets(dir: &Path) -> anyhow::Result<Vec<Target>> {
    let configs = crate::dev::prepare(dir, 7400, crate::dev::DEFAULT_DEV_NODES)?;
    Ok(configs
        .into_iter()
        .map(|config| Target {
            options: config.exactly_once.state_machine_options(),
            data_dir: config.data_dir,
            ca: config.tls.ca,
        })
        .collect())
}

fn describe(file: &Path, verified: &VerifiedBackup) -> String {
    format!(
        "{} is whole: applied index {}, revision {}, {} keys ({} entries), {} chunks, {} bytes, \
         saved from {}",
        file.display(),
        verified.header.applied_index,
        verified.header.revision,
        verified.keys,
        verified.entries,
        verified.chunks,
        verified.bytes,
        verified.header.source_node
    )
}
