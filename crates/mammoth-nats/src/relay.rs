//! The outbox relay's target: publish the batch (event id as `Nats-Msg-Id`), then save the
//! checkpoint in the `{stream}_RELAY` key-value bucket. A crash between the two re-publishes
//! the batch after a restart, and the stream's de-duplication window drops the copies.

use mammoth_core::Position;
use mammoth_core::bus::{BusError, OutgoingMessage, RelayTarget, Topic};

use crate::bus::NatsBus;
use crate::names::relay_key;

impl RelayTarget for NatsBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        let value = self.shared.relay.get(&relay_key(name)).await?;
        let Some(value) = value else {
            return Ok(0);
        };
        std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                BusError::InvalidInput(format!(
                    "relay {name:?}: the checkpoint in bucket {} is not a number; delete the key to start over",
                    self.shared.names.relay_bucket
                ))
            })
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let checkpoint = self.relay_checkpoint(name).await?;
        let fresh: Vec<(String, OutgoingMessage, Option<String>)> = batch
            .into_iter()
            .filter(|(position, _, _)| *position > checkpoint)
            .map(|(_, topic, message)| (self.shared.names.subject(&topic), message, None))
            .collect();
        if !fresh.is_empty() {
            self.publish_subjects(fresh).await?;
        }
        if through > checkpoint {
            self.shared
                .relay
                .put(&relay_key(name), through.to_string().into())
                .await?;
        }
        Ok(())
    }
}
