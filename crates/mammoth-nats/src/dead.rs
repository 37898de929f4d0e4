//! The dead-letter queue: a stream `{stream}_DLQ` with one message per dead letter on subject
//! `{prefix}_dlq.{group}.{topic}`, its body the letter as JSON (message, group, attempts, last
//! error, first and last failure times) and its id the stream sequence. Replay re-publishes
//! the message to its topic for its group only, then deletes the letter.

use async_nats::jetstream::stream::RawMessageErrorKind;
use mammoth_core::bus::{BusError, DeadLetter, DeadLetterFilter, Delivery, OutgoingMessage};
use serde::{Deserialize, Serialize};

use crate::bus::{NatsBus, nats};
use crate::names::HEADER_REPLAY_GROUP;

/// A dead letter as the stream stores it (its id is the stream sequence).
#[derive(Serialize, Deserialize)]
struct StoredLetter {
    message: mammoth_core::bus::Message,
    group: mammoth_core::bus::ConsumerGroup,
    attempts: u32,
    last_error: String,
    first_failed_at_micros: i64,
    last_failed_at_micros: i64,
}

impl NatsBus {
    /// Stores `delivery` as a dead letter; returns its id. The `Nats-Msg-Id` names the
    /// consumer and the stream message, so doing it twice within the de-duplication window
    /// (a retried nack, a redelivery after a lost `AckTerm`) stores one letter.
    pub(crate) async fn publish_dead_letter(
        &self,
        delivery: &Delivery,
        consumer: &str,
        last_error: String,
        first_failed_at_micros: i64,
        last_failed_at_micros: i64,
    ) -> Result<String, BusError> {
        let letter = StoredLetter {
            message: delivery.message.clone(),
            group: delivery.group.clone(),
            attempts: delivery.attempt,
            last_error,
            first_failed_at_micros,
            last_failed_at_micros,
        };
        let body = serde_json::to_vec(&letter).map_err(|error| {
            crate::bus::failed("encoding a dead letter", false)(Box::new(error))
        })?;
        let mut headers = async_nats::HeaderMap::new();
        // One id per (group, stream message): dead-lettering it again (its AckTerm was lost
        // in a broker restart, so it came back) stores nothing new within the window.
        headers.insert(
            "Nats-Msg-Id",
            format!("{consumer}.{}", delivery.message.sequence),
        );
        let subject = self
            .shared
            .names
            .dead_subject(&delivery.message.topic, &delivery.group);
        let ack = self
            .shared
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(nats("dead-lettering"))?
            .await
            .map_err(nats("dead-lettering"))?;
        Ok(ack.sequence.to_string())
    }

    /// The dead letters passing `filter`, oldest first, at most `limit`.
    pub(crate) async fn scan_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let (first, last) = match &filter.id {
            Some(id) => match id.parse::<u64>() {
                Ok(sequence) => (sequence, sequence),
                Err(_) => return Ok(Vec::new()),
            },
            None => {
                let mut stream = self.shared.dead.clone();
                let info = stream.info().await.map_err(nats("reading dead letters"))?;
                if info.state.messages == 0 {
                    return Ok(Vec::new());
                }
                (info.state.first_sequence, info.state.last_sequence)
            }
        };
        let mut letters = Vec::new();
        for sequence in first..=last {
            if letters.len() >= limit {
                break;
            }
            let Some(letter) = self.dead_letter_at(sequence).await? else {
                continue;
            };
            if filter.matches(&letter) {
                letters.push(letter);
            }
        }
        Ok(letters)
    }

    async fn dead_letter_at(&self, sequence: u64) -> Result<Option<DeadLetter>, BusError> {
        let raw = match self.shared.dead.get_raw_message(sequence).await {
            Ok(raw) => raw,
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(error) => return Err(nats("reading a dead letter")(error)),
        };
        let Ok(stored) = serde_json::from_slice::<StoredLetter>(&raw.payload) else {
            tracing::warn!(sequence, "skipping an unreadable dead letter");
            return Ok(None);
        };
        Ok(Some(DeadLetter {
            id: sequence.to_string(),
            message: stored.message,
            group: stored.group,
            attempts: stored.attempts,
            last_error: stored.last_error,
            first_failed_at_micros: stored.first_failed_at_micros,
            last_failed_at_micros: stored.last_failed_at_micros,
        }))
    }

    /// Re-publishes `letter`'s message to its topic for its group only (a fresh stream
    /// message, so attempt 1), then deletes the letter. A crash between the two leaves the
    /// letter to be replayed again: at least once, like every delivery.
    pub(crate) async fn replay_one(&self, letter: DeadLetter) -> Result<(), BusError> {
        let message = OutgoingMessage {
            id: letter.message.id,
            key: letter.message.key.clone(),
            payload: letter.message.payload.clone(),
            headers: letter.message.headers.clone(),
        };
        let subject = self.shared.names.subject(&letter.message.topic);
        let mut headers = crate::bus::headers_of(
            &message,
            Some(format!("{}.replay.{}", message.id, letter.id)),
        )?;
        headers.insert(HEADER_REPLAY_GROUP, letter.group.as_str());
        self.shared
            .js
            .publish_with_headers(subject, headers, message.payload.into())
            .await
            .map_err(nats("replaying a dead letter"))?
            .await
            .map_err(nats("replaying a dead letter"))?;
        self.delete_dead_letter(&letter.id).await?;
        Ok(())
    }

    /// Deletes one dead letter; false when it was not there.
    pub(crate) async fn delete_dead_letter(&self, id: &str) -> Result<bool, BusError> {
        let Ok(sequence) = id.parse::<u64>() else {
            return Ok(false);
        };
        match self.shared.dead.delete_message(sequence).await {
            Ok(deleted) => Ok(deleted),
            Err(error) if error.to_string().to_lowercase().contains("not found") => Ok(false),
            Err(error) => Err(nats("deleting a dead letter")(error)),
        }
    }
}
