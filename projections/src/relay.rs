//! The outbox relay: publishes every event of the log to NATS JetStream.
//!
//! Commands only ever touch the event store, so they keep being accepted while NATS is down;
//! the relay then fails its batch, backs off, and drains the backlog from its checkpoint when
//! NATS returns. A batch is published whole (acks awaited together, which is what makes the
//! relay fast) before the checkpoint moves; a crash in between republishes the batch, and
//! JetStream drops the copies by their `Nats-Msg-Id` (the event id) within its duplicate window.
//!
//! Personal data leaves sealed, as the log stores it ([`Relay::following`]): JetStream keeps
//! messages for days, out of erasure's reach, and no consumer needs more than the headers.

use async_nats::jetstream;
use keryu_infra::config::NatsConfig;
use keryu_infra::event_store::RecordedEvent;
use keryu_infra::nats::{headers_of, subject_of};
use keryu_infra::postgres::PgEventStore;

use crate::reaction::{Reaction, ReactionError, Reactor};

/// Publishes the log to JetStream.
pub struct Relay {
    jetstream: jetstream::Context,
    subject_prefix: String,
}

impl Relay {
    /// A relay publishing through `jetstream` under the configured subject prefix.
    pub fn new(jetstream: jetstream::Context, config: &NatsConfig) -> Self {
        Relay {
            jetstream,
            subject_prefix: config.subject_prefix.clone(),
        }
    }

    /// The relay following `store`'s log with personal data sealed.
    pub fn following(self, store: &PgEventStore) -> Reactor<Relay> {
        Reactor::new(store.sealed(), self)
    }
}

impl Reaction for Relay {
    fn name(&self) -> &'static str {
        "outbox_relay"
    }

    #[tracing::instrument(name = "relay.publish", skip_all, fields(events = events.len()))]
    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(&event.data)?;
            let ack = self
                .jetstream
                .publish_with_headers(
                    subject_of(&self.subject_prefix, event),
                    headers_of(event),
                    payload.into(),
                )
                .await?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await?;
        }
        tracing::debug!(events = events.len(), "relayed a batch to JetStream");
        Ok(())
    }
}
