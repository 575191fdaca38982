//! Running the binary and giving it a database of its own.

use std::process::{Command, Output};

use sqlx::PgPool;
use uuid::Uuid;

/// Runs `keryu` with `args` and extra environment, and waits for it.
pub fn keryu(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keryu"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the keryu binary runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A database name no other test uses, on the test environment's server. The binary creates
/// it (that is part of what is tested); [`FreshDatabase::drop`] removes it.
pub struct FreshDatabase {
    name: String,
}

/// The server of the test environment's `DATABASE_URL`, with another database name.
fn database_url(name: &str) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let (address, query) = server.split_once('?').unwrap_or((&server, ""));
    let (server_root, _) = address
        .rsplit_once('/')
        .expect("a URL with a database path");
    format!("{server_root}/{name}?{query}")
}

impl FreshDatabase {
    pub fn name(purpose: &str) -> Self {
        FreshDatabase {
            name: format!("keryu_{purpose}_{}", Uuid::new_v4().simple()),
        }
    }

    pub fn url(&self) -> String {
        database_url(&self.name)
    }

    pub async fn drop(self) {
        let admin = PgPool::connect(&database_url("postgres"))
            .await
            .expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await
        .expect("drop the test database");
    }
}
