//! Running the binary and giving it a database of its own.

use std::process::{Command, Output};

use keryu_infra::config::Config;
use keryu_infra::nats;
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

/// Deletes the JetStream stream `name` (with its consumers) that a test's processes created on
/// the test environment's NATS server, so that test runs leave no streams behind.
pub async fn delete_stream(name: &str) {
    // The server as the test's processes find it: through the configuration they load.
    let config = Config::load().expect("the test environment's configuration");
    let client = nats::connect(&config.nats).await.expect("NATS");
    async_nats::jetstream::new(client)
        .delete_stream(name)
        .await
        .expect("delete the test's stream");
}

/// A port nothing listens on yet.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// The simulator's account, given to both the simulator and Keryu.
pub const SIM_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The simulator's auth token (signs its callbacks).
pub const SIM_AUTH_TOKEN: &str = "sim-test-auth-token";
const JWT_SECRET: &str = "a-test-secret-that-is-long-enough";
/// The deployments' master key: not the development one, so a process that ignored the
/// configuration could not read what the others wrote.
pub const MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LW9mLXRoZS1jbGktdGVzdHM=";

/// A child process killed when dropped (tests that fail must not leave servers behind).
pub struct Running(pub std::process::Child);

impl Running {
    /// Sends `signal` (`TERM`, `KILL`) and waits up to 10 s for the exit.
    pub async fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        for _ in 0..100 {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the process did not exit after SIG{signal}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keryu serve` (and maybe more dispatchers) against a Twilio simulator, on a fresh database
/// and JetStream names of their own.
pub struct Deployment {
    pub database: FreshDatabase,
    pub env: Vec<(String, String)>,
    pub base: String,
    pub sim: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub processes: Vec<Running>,
}

impl Deployment {
    /// Starts the simulator with `sim_args` and `keryu serve` with `extra_env`.
    pub async fn start(sim_args: &[&str], extra_env: &[(&str, &str)]) -> Deployment {
        let database = FreshDatabase::name("delivery");
        let tag = Uuid::new_v4().simple().to_string();
        let http = format!("127.0.0.1:{}", free_port());
        let sim_addr = format!("127.0.0.1:{}", free_port());
        let base = format!("http://{http}");
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database.url()),
            ("KERYU_JWT_SECRET", JWT_SECRET.to_owned()),
            ("KERYU_MASTER_KEY", MASTER_KEY.to_owned()),
            ("KERYU_PHONE_PEPPER", "a-test-pepper".to_owned()),
            ("KERYU_HTTP_ADDR", http.clone()),
            ("PUBLIC_BASE_URL", base.clone()),
            ("TWILIO_ACCOUNT_SID", SIM_ACCOUNT_SID.to_owned()),
            ("TWILIO_AUTH_TOKEN", SIM_AUTH_TOKEN.to_owned()),
            ("TWILIO_API_BASE", format!("http://{sim_addr}")),
            ("KERYU_SENDER_MPS", "0".to_owned()),
            ("KERYU_NATS_STREAM", format!("T{tag}")),
            ("KERYU_NATS_SUBJECT_PREFIX", format!("t{tag}.events")),
            ("KERYU_NATS_DISPATCHER_CONSUMER", format!("d{tag}")),
            ("KERYU_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        for (key, value) in extra_env {
            env.retain(|(existing, _)| existing != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        let sim = Running(
            Command::new(env!("CARGO_BIN_EXE_keryu"))
                .args(["twilio-sim", "--addr", &sim_addr])
                .args(sim_args)
                .envs(
                    env.iter()
                        .map(|(key, value)| (key.as_str(), value.as_str())),
                )
                .spawn()
                .expect("spawn the simulator"),
        );
        let mut deployment = Deployment {
            database,
            env,
            base,
            sim: format!("http://{sim_addr}"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
            admin: String::new(),
            processes: vec![sim],
        };
        let serve = deployment.spawn("serve");
        deployment.processes.push(serve);
        deployment.wait_until_listening().await;
        let issued = Command::new(env!("CARGO_BIN_EXE_keryu"))
            .args(["token", "issue", "--role", "admin", "--sub", "ops"])
            .envs(deployment.env_pairs())
            .output()
            .expect("token issue");
        assert!(issued.status.success(), "{}", stderr(&issued));
        deployment.admin = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
        deployment
    }

    fn env_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// Starts another `keryu <role>` process of this deployment.
    pub fn spawn(&self, role: &str) -> Running {
        Running(
            Command::new(env!("CARGO_BIN_EXE_keryu"))
                .arg(role)
                .envs(self.env_pairs())
                .spawn()
                .expect("spawn keryu"),
        )
    }

    /// Waits until the API and the simulator accept connections.
    pub async fn wait_until_listening(&self) {
        for _ in 0..200 {
            let api = self
                .client
                .get(format!("{}/openapi.json", self.base))
                .send();
            let sim = self.client.get(format!("{}/sim/messages", self.sim)).send();
            if let (Ok(_), Ok(_)) = tokio::join!(api, sim) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("keryu serve or the simulator did not start listening");
    }

    /// POSTs `body` as the admin; returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let answer = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or_default())
    }

    /// GETs `path` as the admin.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    /// Registers a subject with `phone`; returns its id.
    pub async fn subject(&self, phone: &str) -> String {
        let (status, body) = self
            .post(
                "/api/subjects",
                &serde_json::json!({ "name": "Ana", "phone": phone }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a notification; returns its id.
    pub async fn notify(&self, request: serde_json::Value) -> String {
        let (status, body) = self.post("/api/notifications", &request).await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Waits (up to `seconds`) until the notification's read model status is one of `wanted`;
    /// returns the read model row.
    pub async fn wait_for_status(
        &self,
        id: &str,
        wanted: &[&str],
        seconds: u64,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..seconds * 10 {
            last = self.get(&format!("/api/notifications/{id}")).await;
            if wanted.iter().any(|status| last["status"] == *status) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("notification {id} did not reach {wanted:?}: {last}");
    }

    /// What the simulator accepted.
    pub async fn sim_messages(&self) -> Vec<serde_json::Value> {
        let listed: serde_json::Value = self
            .client
            .get(format!("{}/sim/messages", self.sim))
            .send()
            .await
            .expect("sim messages")
            .json()
            .await
            .expect("JSON");
        listed
            .as_array()
            .or_else(|| listed["messages"].as_array())
            .cloned()
            .unwrap_or_default()
    }

    /// Stops every process, and drops the database and the JetStream stream.
    pub async fn stop(mut self) {
        for process in &mut self.processes {
            let _ = process.0.kill();
            let _ = process.0.wait();
        }
        self.processes.clear();
        self.database.drop().await;
        if let Some((_, stream)) = self.env.iter().find(|(key, _)| key == "KERYU_NATS_STREAM") {
            delete_stream(stream).await;
        }
    }
}
