//! `keryu projections status` and `keryu projections rebuild`: operating the read models.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use keryu_infra::config::Config;
use keryu_infra::event_store::{EventStore, Position};
use keryu_infra::postgres::PgEventStore;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::directory::DirectoryProjection;
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projection::Projection;
use keryu_projections::projector::Projector;
use keryu_projections::rebuild::{Rebuilding, Rebuilt, rebuild, rebuild_all};
use keryu_projections::subjects::SubjectsProjection;
use keryu_projections::timers::TimersProjection;

use crate::migrate;

/// The projections this build has, by name.
const NAMES: [&str; 5] = ["notifications", "subjects", "directory", "alarms", "timers"];

/// Projection subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
    /// Each projection's checkpoint, its lag behind the head of the log, and the events it
    /// skipped as unknown.
    Status,
    /// Replay the whole log into a shadow copy of a read model while the live one keeps
    /// serving, then swap them atomically. Interrupting it leaves the live copy untouched.
    Rebuild {
        /// The projection to rebuild (notifications, subjects, directory, alarms, timers).
        name: Option<String>,
        /// Rebuild every projection from one reading of the log, then swap each in.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
}

/// Runs the action against the configured database.
pub async fn run(config: &Config, action: ProjectionsAction) -> anyhow::Result<()> {
    let store = PgEventStore::new(migrate::run(config).await?, config.privacy.master_key()?);
    match action {
        ProjectionsAction::Status => {
            let head = store.head_position().await?;
            println!(
                "{:<16} {:>12} {:>12} {:>10}",
                "projection", "checkpoint", "lag", "unknown"
            );
            let rows = [
                (
                    "notifications",
                    status(&store, NotificationsProjection).await?,
                ),
                (
                    "subjects",
                    status(
                        &store,
                        SubjectsProjection::new(config.privacy.phone_lookup()),
                    )
                    .await?,
                ),
                ("directory", status(&store, DirectoryProjection).await?),
                ("alarms", status(&store, AlarmsProjection).await?),
                ("timers", status(&store, TimersProjection).await?),
            ];
            for (name, (checkpoint, unknown)) in rows {
                let lag = head.0.saturating_sub(checkpoint.0);
                println!("{name:<16} {:>12} {lag:>12} {unknown:>10}", checkpoint.0);
            }
            Ok(())
        }
        ProjectionsAction::Rebuild { all: true, .. } => {
            let live: Vec<Box<dyn Rebuilding>> = vec![
                Box::new(Projector::new(store.clone(), NotificationsProjection)),
                Box::new(Projector::new(
                    store.clone(),
                    SubjectsProjection::new(config.privacy.phone_lookup()),
                )),
                Box::new(Projector::new(store.clone(), DirectoryProjection)),
                Box::new(Projector::new(store.clone(), AlarmsProjection)),
                Box::new(Projector::new(store.clone(), TimersProjection)),
            ];
            let names: Vec<&str> = live.iter().map(|read_model| read_model.name()).collect();
            let mut progress = Progress::new("all");
            let rebuilt = rebuild_all(&store, live, |at, head| progress.report(at, head))
                .await
                .context("rebuilding failed; read models not yet swapped in are unchanged")?;
            progress.finish();
            for (name, rebuilt) in names.iter().zip(rebuilt) {
                report_rebuilt(name, rebuilt);
            }
            Ok(())
        }
        ProjectionsAction::Rebuild {
            name: Some(name), ..
        } => match name.as_str() {
            "notifications" => rebuild_one(&store, NotificationsProjection).await,
            "subjects" => {
                let subjects = SubjectsProjection::new(config.privacy.phone_lookup());
                rebuild_one(&store, subjects).await
            }
            "directory" => rebuild_one(&store, DirectoryProjection).await,
            "alarms" => rebuild_one(&store, AlarmsProjection).await,
            "timers" => rebuild_one(&store, TimersProjection).await,
            other => bail!("no projection {other:?}; known: {}", NAMES.join(", ")),
        },
        ProjectionsAction::Rebuild { name: None, .. } => {
            bail!("name a projection ({}) or pass --all", NAMES.join(", "))
        }
    }
}

async fn status<P: Projection>(
    store: &PgEventStore,
    projection: P,
) -> anyhow::Result<(Position, u64)> {
    let projector = Projector::new(store.clone(), projection);
    projector.prepare().await?;
    Ok(projector.status().await?)
}

/// Rebuilds one read model, reporting progress on stderr.
async fn rebuild_one<P: Projection + Clone>(
    store: &PgEventStore,
    projection: P,
) -> anyhow::Result<()> {
    let name = projection.name();
    let projector = Projector::new(store.clone(), projection);
    let mut progress = Progress::new(name);
    let rebuilt = rebuild(&projector, |at, head| progress.report(at, head))
        .await
        .with_context(|| format!("rebuilding {name} failed; the live read model is unchanged"))?;
    progress.finish();
    report_rebuilt(name, rebuilt);
    Ok(())
}

/// The line scripts (and the benchmark harness) read when a read model is swapped in.
fn report_rebuilt(name: &str, rebuilt: Rebuilt) {
    println!(
        "{name}: rebuilt from {} events, now at position {}",
        rebuilt.events, rebuilt.checkpoint
    );
}

/// Progress of a replay on stderr: one line rewritten in place on a terminal, a line per
/// tenth otherwise (a log file stays short).
struct Progress {
    label: &'static str,
    terminal: bool,
    last_tenth: Option<u64>,
}

impl Progress {
    fn new(label: &'static str) -> Self {
        Progress {
            label,
            terminal: std::io::stderr().is_terminal(),
            last_tenth: None,
        }
    }

    fn report(&mut self, at: Position, head: Position) {
        let label = self.label;
        let percent = at.0.saturating_mul(100).checked_div(head.0).unwrap_or(100);
        if self.terminal {
            eprint!("\r{label}: {percent:>3}% ({at} of {head} events)");
            let _ = std::io::stderr().flush();
        } else if self.last_tenth != Some(percent / 10) {
            self.last_tenth = Some(percent / 10);
            eprintln!("{label}: {percent}% ({at} of {head})");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
