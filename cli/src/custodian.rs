//! `keryu custodian create`: bootstrap the first admin (and any custodian) from a terminal.

use std::io::Read;

use anyhow::{Context, anyhow};
use chrono::Utc;
use clap::Subcommand;
use keryu_command_api::{custodian_id_for_email, hash_password};
use keryu_domain::custodian::{Custodian, CustodianCommand};
use keryu_domain::{Email, PhoneNumber, Role};
use keryu_infra::config::Config;
use keryu_infra::event_store::{Actor, EventMetadata, StreamName};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use uuid::Uuid;

use crate::migrate;

/// Custodian subcommands.
#[derive(Debug, Subcommand)]
pub enum CustodianAction {
    /// Create a custodian; the password is read from standard input (never from arguments,
    /// which other users of the machine can see).
    Create {
        /// Login email.
        #[arg(long)]
        email: Email,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Role: admin, custodian, integrator or auditor.
        #[arg(long)]
        role: Role,
        /// WhatsApp number (E.164) where alarms about the custodian's subjects reach them.
        #[arg(long)]
        phone: Option<PhoneNumber>,
    },
}

/// Creates the custodian and prints its id.
pub async fn run(config: &Config, action: CustodianAction) -> anyhow::Result<()> {
    let CustodianAction::Create {
        email,
        name,
        role,
        phone,
    } = action;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("could not read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let password_hash = hash_password(password)
        .await
        .map_err(|problem| anyhow!("{}", problem.detail()))?;

    let pool = migrate::run(config).await?;
    let store = PgEventStore::new(pool, config.privacy.master_key()?);
    let id = custodian_id_for_email(&email);
    let stream = StreamName::of::<Custodian>(id)?;
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Some(Actor {
            id: "keryu-cli".to_owned(),
            role: "system".to_owned(),
        }),
        traceparent: None,
    };
    let create = CustodianCommand::Create {
        id,
        email,
        name,
        role,
        password_hash,
        phone,
        at: Utc::now(),
    };
    repository::execute::<Custodian>(&store, &stream, create, &metadata, 1)
        .await
        .context("could not create the custodian")?;
    println!("{id}");
    Ok(())
}
