//! The outbox relay's target: publish the batch (event id as `Nats-Msg-Id`), then save the
//! checkpoint in the `{stream}_RELAY` key-value bucket. A crash between the two re-publishes
//! the batch after a restart, and the stream's de-duplication window drops the copies.
//!
//! The bus remembers the checkpoint it last read or saved for each relay name, so a batch
//! costs no read of the bucket; a second relay of the same name elsewhere moving the
//! checkpoint meanwhile only means re-publishes, which the de-duplication window drops.

use mammoth_core::Position;
use mammoth_core::bus::{BusError, OutgoingMessage, RelayTarget, Topic};

use crate::bus::NatsBus;
use crate::names::relay_key;

impl RelayTarget for NatsBus {
    async fn relay_checkpoint(&self, name: &str) -> Result<Position, BusError> {
        let value = self.shared.relay.get(&relay_key(name)).await?;
        let checkpoint = match value {
            None => 0,
            Some(value) => std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| {
                    BusError::InvalidInput(format!(
                        "relay {name:?}: the checkpoint in bucket {} is not a number; delete the key to start over",
                        self.shared.names.relay_bucket
                    ))
                })?,
        };
        self.remember_checkpoint(name, Some(checkpoint));
        Ok(checkpoint)
    }

    async fn relay_publish(
        &self,
        name: &str,
        batch: Vec<(Position, Topic, OutgoingMessage)>,
        through: Position,
    ) -> Result<(), BusError> {
        let checkpoint = match self.remembered_checkpoint(name) {
            Some(checkpoint) => checkpoint,
            None => self.relay_checkpoint(name).await?,
        };
        // Most batches go to one topic or a few: build each subject once.
        let mut subjects: Vec<(Topic, String)> = Vec::new();
        let mut fresh: Vec<(String, OutgoingMessage, Option<String>)> =
            Vec::with_capacity(batch.len());
        for (position, topic, message) in batch {
            if position <= checkpoint {
                continue;
            }
            let subject = match subjects.iter().find(|(known, _)| *known == topic) {
                Some((_, subject)) => subject.clone(),
                None => {
                    let subject = self.shared.names.subject(&topic);
                    subjects.push((topic, subject.clone()));
                    subject
                }
            };
            fresh.push((subject, message, None));
        }
        let saved = async {
            if !fresh.is_empty() {
                self.publish_subjects(fresh).await?;
            }
            if through > checkpoint {
                self.shared
                    .relay
                    .put(&relay_key(name), through.to_string().into())
                    .await?;
            }
            Ok::<_, BusError>(())
        }
        .await;
        match saved {
            Ok(()) => self.remember_checkpoint(name, Some(through.max(checkpoint))),
            // Unknown whether the checkpoint moved: read it again next time.
            Err(_) => self.remember_checkpoint(name, None),
        }
        saved
    }
}

impl NatsBus {
    fn remembered_checkpoint(&self, name: &str) -> Option<Position> {
        self.shared
            .relay_checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
    }

    fn remember_checkpoint(&self, name: &str, checkpoint: Option<Position>) {
        let mut known = self
            .shared
            .relay_checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match checkpoint {
            Some(checkpoint) => {
                known.insert(name.to_owned(), checkpoint);
            }
            None => {
                known.remove(name);
            }
        }
    }
}
