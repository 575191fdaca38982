//! The dispatcher: turns a queued notification into one Twilio call, with the claim and the
//! outcome recorded as events around it.
//!
//! For each `NotificationQueued` message of the shared JetStream consumer:
//! 1. load the notification; anything but Queued (another dispatcher claimed it, it was
//!    cancelled, a duplicate message…) is acknowledged and skipped;
//! 2. take a send slot from the sender's rate limiter, and wait until shortly before it;
//! 3. append `DeliveryAttemptStarted` with the version just read — **the append is the claim**:
//!    of two dispatchers holding the same message, only one append succeeds (the stream is
//!    read again only when it moved during step 2);
//! 4. at the slot (a fresh one if it was missed: a slow claim, a stalled process), call
//!    Twilio (no transaction or lock is held across the call);
//! 5. append `NotificationSent`, or the failed attempt with its transient/permanent class
//!    (the domain then schedules a retry with backoff or fails the notification), decided
//!    against the state the claim left rather than a third read of the stream;
//! 6. acknowledge the message.
//!
//! A crash between 4 and 5 leaves a claim without an outcome; the timers' lease turns it into
//! an explicit outcome-unknown event after the lease. Until then the redelivered message meets
//! a notification in Processing and is skipped, so a message is never sent twice by the
//! dispatchers themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer};
use chrono::Utc;
use futures_util::StreamExt;
use keryu_domain::notification::{
    FailureKind, Notification, NotificationCommand, NotificationContent, NotificationCreated,
    NotificationStatus,
};
use keryu_domain::{NotificationId, Personal};
use keryu_infra::config::{NatsConfig, TwilioConfig};
use keryu_infra::event_store::{Actor, EventMetadata, InvalidStreamName, StreamName};
use keryu_infra::http::ops::{BoxFuture, CheckOutcome, ReadinessCheck};
use keryu_infra::nats::{RelayedEvent, subject_for};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository::{self, CommandError, Loaded};
use keryu_infra::telemetry::{continue_trace, current_traceparent};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::rate_limit::SenderRateLimiter;
use crate::twilio::{MessageResource, OutgoingContent, OutgoingMessage, SendError, TwilioClient};

/// How long before its rate-limit slot a send is claimed. The claim is an append, whose
/// latency varies with the log's load; made this early, it is done when the slot comes, so the
/// call leaves at the slot and the sender's pace holds at Twilio, not only on average. It is
/// also all the time a claim waits for its call, far inside the dispatch lease.
const CLAIM_LEAD: Duration = Duration::from_millis(250);

/// How often a message whose send is still under way is reported in progress to JetStream
/// (well inside the consumer's 60 s ack wait).
const IN_PROGRESS_EVERY: Duration = Duration::from_secs(20);

/// How a dispatcher sends.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Names this dispatcher in the events it appends.
    pub id: String,
    /// The WhatsApp sender number (E.164).
    pub sender: String,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Where Twilio's status callbacks go (built per notification).
    pub twilio: TwilioConfig,
}

/// What became of one queued notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// Twilio accepted it.
    Sent {
        /// Twilio's message sid.
        provider_message_id: String,
    },
    /// Twilio refused it or could not be reached; the domain decided what next.
    AttemptFailed {
        /// Twilio's error code, if any.
        code: Option<i64>,
        /// Whether a retry may help.
        kind: FailureKind,
    },
    /// Nothing to do: not queued any more, or another dispatcher claimed it first.
    Skipped,
}

/// Why a notification could not be dispatched now; its message is redelivered later.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The event store failed or refused.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The notification's stream name is invalid (a bug).
    #[error(transparent)]
    Stream(#[from] InvalidStreamName),
    /// The rate limiter's database failed.
    #[error("the rate limiter failed: {0}")]
    RateLimiter(#[from] sqlx::Error),
}

/// Sends queued notifications through Twilio.
#[derive(Clone)]
pub struct Dispatcher {
    store: PgEventStore,
    client: TwilioClient,
    limiter: SenderRateLimiter,
    settings: Arc<DispatcherSettings>,
}

impl Dispatcher {
    /// A dispatcher over `store`, sending with `client` at the pace `limiter` allows.
    pub fn new(
        store: PgEventStore,
        client: TwilioClient,
        limiter: SenderRateLimiter,
        settings: DispatcherSettings,
    ) -> Self {
        Dispatcher {
            store,
            client,
            limiter,
            settings: Arc::new(settings),
        }
    }

    /// The Twilio client, e.g. for a readiness check.
    pub fn client(&self) -> &TwilioClient {
        &self.client
    }

    /// Dispatches one notification: claim, send, record. See the module docs.
    ///
    /// # Errors
    /// When the store or the rate limiter fails before the claim (nothing happened), or the
    /// outcome could not be recorded after the send (the lease will make it outcome-unknown).
    pub async fn dispatch(
        &self,
        id: NotificationId,
        cause: &EventMetadata,
    ) -> Result<Dispatched, DispatchError> {
        let stream = StreamName::of::<Notification>(id.0)?;
        let current = repository::load::<Notification>(&self.store, &stream).await?;
        if current.state.status != NotificationStatus::Queued {
            return Ok(Dispatched::Skipped);
        }
        let waiting = Instant::now();
        let slot = self.limiter.reserve(&self.settings.sender).await?;
        if let Some(slot) = &slot {
            slot.wait(CLAIM_LEAD).await;
        }
        metrics::histogram!("keryu_rate_limiter_wait_seconds")
            .record(waiting.elapsed().as_secs_f64());
        let claim = NotificationCommand::StartAttempt {
            dispatcher: self.settings.id.clone(),
            at: Utc::now(),
        };
        // Decided against the state read before the rate limiter's wait, appended with its
        // version: the second attempt (after a reload) is only for a stream that moved meanwhile;
        // losing the race again means another dispatcher has it.
        let claimed = match repository::execute_from::<Notification>(
            &self.store,
            &stream,
            current,
            claim,
            cause,
            2,
        )
        .await
        {
            Ok(executed) => executed.into_loaded(),
            Err(CommandError::Domain(_) | CommandError::Contention { .. }) => {
                return Ok(Dispatched::Skipped);
            }
            Err(error) => return Err(error.into()),
        };
        // An erased subject's notification is cancelled by the claim instead of claimed.
        let Some(NotificationCreated {
            recipient: Personal::Known(recipient),
            content: Personal::Known(content),
            ..
        }) = claimed
            .state
            .created
            .as_ref()
            .filter(|_| claimed.state.status == NotificationStatus::Processing)
        else {
            return Ok(Dispatched::Skipped);
        };
        if let Some(slot) = slot {
            self.limiter.wait_to_send(&self.settings.sender, slot).await;
        }
        let message = OutgoingMessage {
            to: recipient.as_str().to_owned(),
            from: self.settings.sender.clone(),
            content: outgoing_content(content),
            status_callback: Some(self.settings.twilio.status_callback_url(id.0)),
        };
        let calling = Instant::now();
        let answer = self
            .client
            .create_message(&message)
            .instrument(tracing::info_span!("twilio.create_message"))
            .await;
        metrics::histogram!("keryu_twilio_request_duration_seconds")
            .record(calling.elapsed().as_secs_f64());
        record_send(&answer);
        let (outcome, command) = match answer {
            Ok(resource) => (
                Dispatched::Sent {
                    provider_message_id: resource.sid.clone(),
                },
                NotificationCommand::RecordSent {
                    provider_message_id: resource.sid,
                    at: Utc::now(),
                },
            ),
            Err(error) => {
                self.after_refusal(&error).await;
                (
                    Dispatched::AttemptFailed {
                        code: error.code(),
                        kind: error.kind(),
                    },
                    NotificationCommand::RecordAttemptFailure {
                        error_code: error.code(),
                        error_message: error.to_string(),
                        kind: error.kind(),
                        random_unit: rand::random::<f64>(),
                        at: Utc::now(),
                    },
                )
            }
        };
        self.record(&stream, claimed, command, cause).await?;
        Ok(outcome)
    }

    /// A 429 slows the sender down for every dispatcher.
    async fn after_refusal(&self, error: &SendError) {
        if let SendError::Rejected {
            http_status: 429,
            retry_after,
            ..
        } = error
        {
            let pause = retry_after.unwrap_or(Duration::from_secs(1));
            if let Err(error) = self.limiter.slow_down(&self.settings.sender, pause).await {
                tracing::warn!(%error, "could not slow the sender down");
            }
        }
    }

    /// Records the outcome of a send, retrying briefly: the message is already with Twilio
    /// (or refused), and losing this record would make the attempt outcome-unknown. The first
    /// try decides against the state the claim left (`claimed`), without reading the stream;
    /// a retry after a failure reads it again.
    async fn record(
        &self,
        stream: &StreamName,
        claimed: Loaded<Notification>,
        command: NotificationCommand,
        cause: &EventMetadata,
    ) -> Result<(), DispatchError> {
        let mut claimed = Some(claimed);
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            let recorded = match claimed.take() {
                Some(loaded) => {
                    repository::execute_from(&self.store, stream, loaded, command.clone(), cause, 3)
                        .await
                }
                None => {
                    repository::execute::<Notification>(
                        &self.store,
                        stream,
                        command.clone(),
                        cause,
                        3,
                    )
                    .await
                }
            };
            match recorded {
                Ok(_) => return Ok(()),
                Err(error @ CommandError::Domain(_)) => return Err(error.into()),
                Err(error) if attempt == 5 => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(%stream, %error, "could not record a send outcome; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Ok(())
    }

    /// Creates (or finds) the durable pull consumer of queued notifications that every
    /// dispatcher process shares.
    ///
    /// # Errors
    /// When JetStream refuses.
    pub async fn consumer(
        jetstream: &jetstream::Context,
        nats: &NatsConfig,
        concurrency: usize,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, Box<dyn std::error::Error + Send + Sync>>
    {
        let stream = keryu_infra::nats::ensure_stream(jetstream, nats).await?;
        let consumer = stream
            .get_or_create_consumer(
                &nats.dispatcher_consumer,
                consumer::pull::Config {
                    durable_name: Some(nats.dispatcher_consumer.clone()),
                    filter_subject: subject_for(
                        &nats.subject_prefix,
                        "notification",
                        "NotificationQueued",
                    ),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    max_ack_pending: i64::try_from(concurrency.saturating_mul(4))
                        .unwrap_or(i64::MAX),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..consumer::pull::Config::default()
                },
            )
            .await?;
        Ok(consumer)
    }

    /// Takes messages from `consumer` until `shutdown` resolves, at most `concurrency` in
    /// flight. On shutdown it stops taking new ones, hands the messages already pulled but not
    /// started back to JetStream (nak, for immediate redelivery to another dispatcher), and
    /// finishes those in flight — each send is recorded and acked before it returns.
    ///
    /// # Errors
    /// When the consumer's message stream cannot be opened.
    pub async fn run(
        &self,
        consumer: consumer::Consumer<consumer::pull::Config>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        tokio::pin!(shutdown);
        let pending = tokio::spawn(report_pending(consumer.clone()));
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        let pull = || {
            consumer
                .stream()
                // Pull no more than can start soon: what is pulled waits for a slot.
                .max_messages_per_batch(self.settings.concurrency.max(1))
                .messages()
        };
        let mut messages = pull().await?;
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => permit?,
            };
            let message = tokio::select! {
                () = &mut shutdown => break,
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(%error, "could not pull from JetStream; pulling again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    messages = pull().await?;
                    continue;
                }
                None => {
                    messages = pull().await?;
                    continue;
                }
            };
            let dispatcher = self.clone();
            in_flight.spawn(async move {
                dispatcher.handle(message).await;
                drop(permit);
            });
            while in_flight.try_join_next().is_some() {}
        }
        pending.abort();
        // Messages pulled but never started go back now rather than after the ack wait.
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(50), messages.next()).await
        {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        while in_flight.join_next().await.is_some() {}
        Ok(())
    }

    async fn handle(&self, message: jetstream::Message) {
        let relayed = match RelayedEvent::from_headers(message.headers.as_ref()) {
            Ok(relayed) => relayed,
            Err(error) => {
                tracing::warn!(%error, "acknowledged a message that is not a Keryu event");
                let _ = message.ack().await;
                return;
            }
        };
        let Ok(id) = relayed.stream.id().parse::<Uuid>().map(NotificationId) else {
            let _ = message.ack().await;
            return;
        };
        let span = tracing::info_span!("dispatch", notification = %id.0);
        continue_trace(&span, relayed.traceparent.as_deref());
        let cause = EventMetadata {
            correlation_id: relayed.correlation_id,
            causation_id: Some(relayed.event_id),
            actor: Some(Actor {
                id: self.settings.id.clone(),
                role: "system".to_owned(),
            }),
            traceparent: span
                .in_scope(current_traceparent)
                .or_else(|| relayed.traceparent.clone()),
        };
        // A send may wait for its rate-limit slot longer than the consumer's ack wait: tell
        // JetStream it is in progress, so it is not redelivered to another dispatcher meanwhile.
        let dispatched = self.dispatch(id, &cause).instrument(span);
        tokio::pin!(dispatched);
        let mut progress = tokio::time::interval(IN_PROGRESS_EVERY);
        progress.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut dispatched => break outcome,
                _ = progress.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        };
        match outcome {
            Ok(outcome) => {
                tracing::debug!(notification = %id.0, ?outcome, "dispatched");
                if let Err(error) = message.ack().await {
                    tracing::warn!(%error, "could not acknowledge a message; it will be skipped when redelivered");
                }
            }
            Err(error) => {
                tracing::warn!(notification = %id.0, %error, "dispatch failed; the message will be redelivered");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }
}

/// Ready while Twilio's API base answers.
pub struct TwilioCheck(pub TwilioClient);

impl ReadinessCheck for TwilioCheck {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            match self.0.ping().await {
                Ok(status) => CheckOutcome::pass(serde_json::json!({ "http_status": status })),
                Err(error) => CheckOutcome::fail(error),
            }
        })
    }
}

/// Publishes how many queued-notification messages wait in the consumer, every 5 s.
async fn report_pending(mut consumer: consumer::Consumer<consumer::pull::Config>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        if let Ok(info) = consumer.info().await {
            metrics::gauge!("keryu_jetstream_pending_messages").set(info.num_pending as f64);
        }
    }
}

/// Counts a Twilio call by outcome and error code.
fn record_send(answer: &Result<MessageResource, SendError>) {
    let (outcome, code) = match answer {
        Ok(_) => ("sent", String::new()),
        Err(error) => {
            let outcome = match error.kind() {
                FailureKind::Transient => "transient",
                FailureKind::Permanent => "permanent",
            };
            (
                outcome,
                error
                    .code()
                    .map(|code| code.to_string())
                    .unwrap_or_default(),
            )
        }
    };
    metrics::counter!("keryu_sends_total", "outcome" => outcome, "code" => code).increment(1);
}

/// Twilio's parameters for a notification's content: an approved WhatsApp template goes as
/// `ContentSid` + `ContentVariables`, anything else as `Body`.
fn outgoing_content(content: &NotificationContent) -> OutgoingContent {
    match content {
        NotificationContent::FreeText { body } => OutgoingContent::Body(body.clone()),
        NotificationContent::Template {
            content_sid: Some(content_sid),
            variables,
            ..
        } => OutgoingContent::Template {
            content_sid: content_sid.clone(),
            variables: variables.clone(),
        },
        NotificationContent::Template { rendered_body, .. } => {
            OutgoingContent::Body(rendered_body.clone())
        }
    }
}
