//! `keryu token issue`: a bearer token for local use (tests, demos, first steps).

use anyhow::Context;
use clap::Subcommand;
use keryu_command_api::auth;
use keryu_domain::Role;
use keryu_infra::config::Config;

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print a token signed with this deployment's key (KERYU_JWT_SECRET by default).
    Issue {
        /// The role the token grants: admin, custodian, integrator or auditor.
        #[arg(long)]
        role: Role,
        /// The token's subject: a custodian id, or an integration's name.
        #[arg(long)]
        sub: String,
    },
}

/// Prints the token on stdout, so it can be captured: `TOKEN=$(keryu token issue …)`.
pub fn run(config: &Config, action: &TokenAction) -> anyhow::Result<()> {
    let TokenAction::Issue { role, sub } = action;
    let (_, issuer) = auth::from_config(&config.auth)?;
    let issuer = issuer.context(
        "this deployment only verifies tokens: set KERYU_JWT_PRIVATE_KEY_FILE to mint them",
    )?;
    println!("{}", issuer.issue(sub, *role)?);
    Ok(())
}
