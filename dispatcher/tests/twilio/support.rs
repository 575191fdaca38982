//! Starting a simulator and building clients and messages for it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use keryu_dispatcher::simulator::{self, SimMessages, SimulatorConfig};
use keryu_dispatcher::twilio::{OutgoingContent, OutgoingMessage, TwilioClient, TwilioSettings};
use keryu_infra::config::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The recipient with no magic behaviour.
pub const RECIPIENT: &str = "+15552229999";
/// The sender with no magic behaviour (Twilio's WhatsApp sandbox number).
pub const SENDER: &str = "+14155238886";
/// A well-formed template SID.
pub const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

/// A simulator serving on loopback until dropped.
pub struct Sim {
    pub base: String,
    pub config: SimulatorConfig,
    _shutdown: oneshot::Sender<()>,
}

/// A quick simulator: no latency, no faults, no rate limit, no callbacks, a 50 ms lifecycle.
pub fn quick_config() -> SimulatorConfig {
    SimulatorConfig {
        latency: Duration::ZERO,
        sender_mps: None,
        callbacks: false,
        callback_delay: Duration::from_millis(50),
        ..SimulatorConfig::default()
    }
}

/// Starts a simulator with `config` on `127.0.0.1:0`.
pub async fn start(config: SimulatorConfig) -> Sim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let served = config.clone();
    tokio::spawn(async move {
        simulator::serve(listener, served, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Sim {
        base,
        config,
        _shutdown: shutdown,
    }
}

impl Sim {
    /// A client with the simulator's own credentials.
    pub fn client(&self) -> TwilioClient {
        self.client_with(self.config.auth_token.expose())
    }

    /// A client with the simulator's Account SID and `auth_token`.
    pub fn client_with(&self, auth_token: &str) -> TwilioClient {
        client(&self.base, &self.config.account_sid, auth_token)
    }

    /// `GET /sim/messages`.
    pub async fn messages(&self) -> SimMessages {
        reqwest::get(format!("{}/sim/messages", self.base))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A client for `base` with short timeouts.
pub fn client(base: &str, account_sid: &str, auth_token: &str) -> TwilioClient {
    TwilioClient::new(TwilioSettings {
        api_base: base.to_owned(),
        account_sid: account_sid.to_owned(),
        auth_token: Secret::new(auth_token),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// A free-form text from `from` to `to`.
pub fn text(from: &str, to: &str) -> OutgoingMessage {
    OutgoingMessage {
        to: to.to_owned(),
        from: from.to_owned(),
        content: OutgoingContent::Body("Your appointment is at 14:00".to_owned()),
        status_callback: None,
    }
}

/// A template message from `from` to `to` with placeholders 1 and 2.
pub fn template(from: &str, to: &str) -> OutgoingMessage {
    OutgoingMessage {
        content: OutgoingContent::Template {
            content_sid: TEMPLATE.to_owned(),
            variables: BTreeMap::from([
                ("1".to_owned(), "Ana".to_owned()),
                ("2".to_owned(), "14:00".to_owned()),
            ]),
        },
        ..text(from, to)
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most 5 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An address nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
