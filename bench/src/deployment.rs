//! The system under test: `keryu serve` (or its roles one by one) and `keryu twilio-sim`
//! started as processes on a fresh database and JetStream names of their own — the approach of
//! the CLI's integration tests — or a running service named by flags.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::Global;

/// The simulator's account, given to both the simulator and Keryu.
const SIM_ACCOUNT_SID: &str = "ACbe4c4000000000000000000000000000";
/// The simulator's auth token (signs its callbacks). Not a secret: it guards a local simulator.
const SIM_AUTH_TOKEN: &str = "keryu-bench-simulator-token";
/// The JWT secret of started services. Not a secret either: the services live for one run.
const JWT_SECRET: &str = "keryu-bench-jwt-secret-for-throwaway-services";

/// How to start the services of one scenario.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the database, the JetStream stream and the log files.
    pub label: &'static str,
    /// KERYU_SENDER_MPS (0 = unlimited).
    pub sender_mps: f64,
    /// KERYU_SENDER_BURST.
    pub sender_burst: u32,
    /// Which processes run Keryu.
    pub roles: Roles,
}

/// Which processes run Keryu's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// `keryu serve`: every role in one process.
    Serve,
    /// `keryu command-api` and `keryu projector`, and no dispatcher until
    /// [`Deployment::start_dispatcher`].
    Split,
    /// `keryu command-api` alone: the command side, with nothing else competing for the cores.
    CommandApi,
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Roles::Serve => "keryu serve",
            Roles::Split => "keryu command-api + projector",
            Roles::CommandApi => "keryu command-api",
        })
    }
}

impl Spec {
    /// `keryu serve` with an unlimited sender.
    pub fn serve(label: &'static str) -> Spec {
        Spec {
            label,
            sender_mps: 0.0,
            sender_burst: 1,
            roles: Roles::Serve,
        }
    }
}

/// A running Keryu API and its Twilio simulator.
#[derive(Debug)]
pub struct Deployment {
    /// Base URL of the HTTP API.
    pub api: String,
    /// Base URL of the simulator.
    pub sim: String,
    /// An integrator's bearer token.
    pub token: String,
    /// The process serving the API (`keryu serve` or `keryu command-api`), whose memory is
    /// reported, when known.
    pub api_pid: Option<u32>,
    /// The HTTP client every request goes through.
    pub client: reqwest::Client,
    /// Subject ids created for notifications, with their phones.
    pub subjects: Vec<(String, String)>,
    owned: Option<Owned>,
}

/// What a started deployment must clean up.
#[derive(Debug)]
struct Owned {
    keryu: PathBuf,
    env: Vec<(String, String)>,
    processes: Vec<(String, Child)>,
    database: String,
    admin_url: String,
    nats_url: String,
    stream: String,
    logs: PathBuf,
    keep: bool,
}

/// `GET /sim/messages`.
#[derive(Debug, Deserialize)]
pub struct SimMessages {
    /// Stored messages, oldest first.
    pub messages: Vec<SimMessage>,
    /// Messages dropped for space since the last reset.
    #[serde(default)]
    pub evicted: u64,
}

impl SimMessages {
    /// When each message reached the simulator, µs since the epoch, earliest first.
    pub fn sorted_arrivals(&self) -> Vec<i64> {
        let mut times: Vec<i64> = self
            .messages
            .iter()
            .map(|message| message.received_at_micros)
            .collect();
        times.sort_unstable();
        times
    }
}

/// The fields of a simulated message the harness uses.
#[derive(Debug, Deserialize)]
pub struct SimMessage {
    /// `Body`.
    #[serde(default)]
    pub body: Option<String>,
    /// When the create request reached the simulator, µs since the epoch.
    pub received_at_micros: i64,
}

/// An HTTP client for load: no idle limit, generous timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()?)
}

/// The keryu binary: the flag, else `keryu` next to this executable.
pub fn keryu_binary(global: &Global) -> anyhow::Result<PathBuf> {
    let path = match &global.keryu {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find this executable")?
            .with_file_name("keryu"),
    };
    if !path.is_file() {
        bail!(
            "no keryu binary at {} (build it with `cargo build --release -p keryu`, or pass --keryu)",
            path.display()
        );
    }
    Ok(path)
}

/// `server_url` (any database) with `database` as its database.
pub fn database_url(server_url: &str, database: &str) -> anyhow::Result<String> {
    let (address, query) = server_url.split_once('?').unwrap_or((server_url, ""));
    let (root, _) = address
        .rsplit_once('/')
        .filter(|(root, _)| root.contains("//"))
        .context("--postgres must be a URL with a database path")?;
    Ok(if query.is_empty() {
        format!("{root}/{database}")
    } else {
        format!("{root}/{database}?{query}")
    })
}

/// A port nothing listens on yet.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Deployment {
    /// The running service named by `--api`, `--sim` and `--token`.
    pub fn external(global: &Global) -> anyhow::Result<Deployment> {
        let (Some(api), Some(sim), Some(token)) = (&global.api, &global.sim, &global.token) else {
            bail!("--api needs --sim and --token");
        };
        Ok(Deployment {
            api: api.trim_end_matches('/').to_owned(),
            sim: sim.trim_end_matches('/').to_owned(),
            token: token.clone(),
            api_pid: global.serve_pid,
            client: http_client()?,
            subjects: Vec::new(),
            owned: None,
        })
    }

    /// Whether this run started the services (and may restart or reconfigure them).
    pub fn is_owned(&self) -> bool {
        self.owned.is_some()
    }

    /// The running service when `--api` is given, else fresh services per `spec`.
    ///
    /// # Errors
    /// When a process cannot start or does not listen within 60 s.
    pub async fn for_scenario(global: &Global, spec: &Spec) -> anyhow::Result<Deployment> {
        let mut deployment = if global.api.is_some() {
            Deployment::external(global)?
        } else {
            Deployment::start(global, spec).await?
        };
        deployment.create_subjects(global.subjects).await?;
        Ok(deployment)
    }

    /// Starts the simulator and Keryu per `spec` on a fresh database.
    ///
    /// # Errors
    /// When a process cannot start or does not listen within 60 s.
    pub async fn start(global: &Global, spec: &Spec) -> anyhow::Result<Deployment> {
        let keryu = keryu_binary(global)?;
        let tag = Uuid::new_v4().simple().to_string();
        let short = &tag[..12];
        let database = format!("keryu_bench_{}_{short}", spec.label.replace('-', "_"));
        let http = format!("127.0.0.1:{}", free_port()?);
        let sim_addr = format!("127.0.0.1:{}", free_port()?);
        let api = format!("http://{http}");
        let stream = format!("BENCH_{short}");
        let env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url(&global.postgres, &database)?),
            (
                "KERYU_DATABASE_MAX_CONNECTIONS",
                global.db_connections.to_string(),
            ),
            (
                "KERYU_DISPATCHER_CONCURRENCY",
                global.dispatcher_concurrency.to_string(),
            ),
            ("KERYU_JWT_SECRET", JWT_SECRET.to_owned()),
            ("KERYU_HTTP_ADDR", http.clone()),
            ("PUBLIC_BASE_URL", api.clone()),
            ("TWILIO_ACCOUNT_SID", SIM_ACCOUNT_SID.to_owned()),
            ("TWILIO_AUTH_TOKEN", SIM_AUTH_TOKEN.to_owned()),
            ("TWILIO_API_BASE", format!("http://{sim_addr}")),
            ("KERYU_SENDER_MPS", spec.sender_mps.to_string()),
            ("KERYU_SENDER_BURST", spec.sender_burst.to_string()),
            ("NATS_URL", global.nats.clone()),
            ("KERYU_NATS_STREAM", stream.clone()),
            ("KERYU_NATS_SUBJECT_PREFIX", format!("bench{short}.events")),
            ("KERYU_NATS_DISPATCHER_CONSUMER", format!("bench{short}")),
            ("KERYU_LOG", "warn".to_owned()),
            // The load comes from one address with one token: the API's own request limits
            // would measure themselves, not Keryu.
            ("KERYU_RATE_LIMIT_PER_TOKEN", "0".to_owned()),
            ("KERYU_RATE_LIMIT_PER_IP", "0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let logs = global.out.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        let mut owned = Owned {
            keryu,
            env,
            processes: Vec::new(),
            database,
            admin_url: global.postgres.clone(),
            nats_url: global.nats.clone(),
            stream,
            logs,
            keep: global.keep,
        };
        let mut sim_args = vec![
            "twilio-sim".to_owned(),
            "--addr".to_owned(),
            sim_addr.clone(),
        ];
        if global.no_callbacks {
            sim_args.push("--no-callbacks".to_owned());
        }
        owned.spawn(&format!("{}-sim", spec.label), &sim_args)?;
        // `keryu serve` (or the first role) creates and migrates the database; start one
        // process first so that several do not race to create it.
        let api_pid = match spec.roles {
            Roles::Serve => owned.spawn(&format!("{}-serve", spec.label), &["serve"])?,
            Roles::Split | Roles::CommandApi => {
                owned.spawn(&format!("{}-command-api", spec.label), &["command-api"])?
            }
        };
        let mut deployment = Deployment {
            api,
            sim: format!("http://{sim_addr}"),
            token: String::new(),
            api_pid: Some(api_pid),
            client: http_client()?,
            subjects: Vec::new(),
            owned: Some(owned),
        };
        deployment.wait_until_listening().await?;
        if spec.roles == Roles::Split
            && let Some(owned) = &mut deployment.owned
        {
            owned.spawn(&format!("{}-projector", spec.label), &["projector"])?;
        }
        deployment.token = deployment.issue_token()?;
        Ok(deployment)
    }

    /// The database URL of a started deployment.
    pub fn database_url(&self) -> Option<&str> {
        self.owned.as_ref().and_then(|owned| {
            owned
                .env
                .iter()
                .find(|(key, _)| key == "DATABASE_URL")
                .map(|(_, value)| value.as_str())
        })
    }

    /// The JetStream stream the started services relay to.
    pub fn stream(&self) -> Option<&str> {
        self.owned.as_ref().map(|owned| owned.stream.as_str())
    }

    /// Starts `keryu dispatcher` in a split deployment.
    ///
    /// # Errors
    /// When it is not a started deployment, or the process cannot start.
    pub fn start_dispatcher(&mut self, label: &str) -> anyhow::Result<u32> {
        let owned = self
            .owned
            .as_mut()
            .context("only a deployment this run started can start a dispatcher")?;
        owned.spawn(&format!("{label}-dispatcher"), &["dispatcher"])
    }

    /// Pids of every started process, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.owned
            .iter()
            .flat_map(|owned| owned.processes.iter())
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    async fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let api = self.client.get(format!("{}/openapi.json", self.api)).send();
            let sim = self.client.get(format!("{}/sim/messages", self.sim)).send();
            if let (Ok(api), Ok(sim)) = tokio::join!(api, sim)
                && api.status().is_success()
                && sim.status().is_success()
            {
                return Ok(());
            }
            if let Some(owned) = &mut self.owned {
                owned.check_alive()?;
            }
            if Instant::now() > deadline {
                bail!("keryu or the simulator did not listen within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn issue_token(&self) -> anyhow::Result<String> {
        let owned = self.owned.as_ref().context("not a started deployment")?;
        let issued = Command::new(&owned.keryu)
            .args([
                "token",
                "issue",
                "--role",
                "integrator",
                "--sub",
                "keryu-bench",
            ])
            .envs(owned.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .context("cannot run keryu token issue")?;
        if !issued.status.success() {
            bail!(
                "keryu token issue failed: {}",
                String::from_utf8_lossy(&issued.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&issued.stdout).trim().to_owned())
    }

    /// Registers `count` subjects with distinct phones.
    async fn create_subjects(&mut self, count: usize) -> anyhow::Result<()> {
        let run = Uuid::new_v4().as_u128() % 10_000;
        for index in 0..count.max(1) {
            // +1 555 01xx xxxx: fictional numbers, far from the simulator's magic ones.
            let phone = format!("+1555{:02}{:05}", run % 100, index);
            let answer = self
                .client
                .post(format!("{}/api/subjects", self.api))
                .bearer_auth(&self.token)
                .json(&json!({ "name": format!("Bench {index}"), "phone": phone }))
                .send()
                .await
                .context("POST /api/subjects")?;
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if status.as_u16() != 201 {
                bail!("creating a subject answered {status}: {body}");
            }
            let id = body["id"]
                .as_str()
                .context("a created subject has an id")?
                .to_owned();
            self.subjects.push((id, phone));
        }
        Ok(())
    }

    /// `POST /api/notifications` for subject `seq % subjects` with `body`.
    pub fn create_notification(&self, seq: u64, body: String) -> reqwest::RequestBuilder {
        let subject = self
            .subjects
            .get(usize::try_from(seq).unwrap_or(0) % self.subjects.len().max(1))
            .map_or("", |(id, _)| id.as_str());
        self.client
            .post(format!("{}/api/notifications", self.api))
            .bearer_auth(&self.token)
            .json(&json!({ "subject_id": subject, "body": body }))
    }

    /// Everything the simulator holds.
    ///
    /// # Errors
    /// When the simulator does not answer.
    pub async fn sim_messages(&self) -> anyhow::Result<SimMessages> {
        Ok(self
            .client
            .get(format!("{}/sim/messages", self.sim))
            .send()
            .await
            .context("GET /sim/messages")?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Forgets every message the simulator holds.
    ///
    /// # Errors
    /// When the simulator does not answer.
    pub async fn reset_sim(&self) -> anyhow::Result<()> {
        self.client
            .delete(format!("{}/sim/messages", self.sim))
            .send()
            .await
            .context("DELETE /sim/messages")?
            .error_for_status()?;
        Ok(())
    }

    /// Stops the started processes (SIGTERM, then SIGKILL after 10 s), deletes the JetStream
    /// stream and drops the database unless `--keep`.
    ///
    /// # Errors
    /// When the database cannot be dropped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut owned) = self.owned.take() else {
            return Ok(());
        };
        owned.stop_processes().await;
        if owned.keep {
            eprintln!(
                "keryu-bench: kept database {} and stream {}",
                owned.database, owned.stream
            );
            return Ok(());
        }
        if let Ok(client) = async_nats::connect(&owned.nats_url).await {
            let jetstream = async_nats::jetstream::new(client);
            let _ = jetstream.delete_stream(&owned.stream).await;
        }
        drop_database(&owned.admin_url, &owned.database).await
    }
}

/// Drops `database` on the server of `admin_url`.
///
/// # Errors
/// When the server refuses.
pub async fn drop_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    let admin = sqlx::PgPool::connect(admin_url)
        .await
        .context("cannot connect to --postgres")?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .with_context(|| format!("cannot drop database {database}"))?;
    admin.close().await;
    Ok(())
}

impl Owned {
    /// Spawns `keryu <args>` with the deployment's environment, output to a log file.
    fn spawn<S: AsRef<std::ffi::OsStr>>(&mut self, name: &str, args: &[S]) -> anyhow::Result<u32> {
        let log_path = self.logs.join(format!("{name}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(&self.keryu);
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // Every role serves /healthz, /readyz and /metrics on KERYU_HTTP_ADDR: only the process
        // serving the API keeps the deployment's address, the others get one of their own.
        let serves_api = args
            .first()
            .is_some_and(|role| matches!(role.as_ref().to_str(), Some("serve" | "command-api")));
        if !serves_api {
            command.env("KERYU_HTTP_ADDR", format!("127.0.0.1:{}", free_port()?));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.keryu.display()))?;
        let pid = child.id();
        self.processes.push((name.to_owned(), child));
        Ok(pid)
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.processes {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited early ({status}); see {}",
                    log_file(&self.logs, name).display()
                );
            }
        }
        Ok(())
    }

    async fn stop_processes(&mut self) {
        for (_, child) in &self.processes {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.processes {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.processes.clear();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // A run that fails half-way must not leave servers behind.
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_file(logs: &Path, name: &str) -> PathBuf {
    logs.join(format!("{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_the_query() {
        assert_eq!(
            database_url("postgres://u@h:5432/postgres?sslmode=disable", "b").expect("url"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://h/postgres", "b").expect("url"),
            "postgres://h/b"
        );
        assert!(database_url("nonsense", "b").is_err());
    }
}
