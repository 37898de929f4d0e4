//! [`Puller`]: pull requests of one consumer, answered on one long-lived inbox subscription.
//!
//! Why not the client library's `fetch` / `batch`, and why never a request with an expiry:
//! nats-server 2.9 silently forgets a waiting pull request that has expired by the time a
//! message becomes available for it (no `408` status), so the library's batch waited for its
//! own fallback timer, the expiry plus 5 seconds (a 200 ms receive came back after 5.2 s,
//! empty); and on that path the server puts the message back with its delivery count rolled
//! back one too far, so the redelivery after a lease expiry came as attempt 1 again (seen as
//! `$JS.ACK.<stream>.<consumer>.1.1.2...`: delivery count 1, consumer sequence 2). So every
//! request here is `no_wait` without an expiry, which the server answers at once (`404` when
//! nothing is ready) and never expires, and a receive that waits polls (see `consumer.rs`).
//!
//! Every request of the consumer is answered on `{inbox}.{n}` under one subscription to
//! `{inbox}.*` that lives as long as the consumer: a receive stops listening at its own
//! deadline, and whatever a request still delivers later (the server may hold a `no_wait`
//! request until a message it counted is ready) is kept and returned by the next receive,
//! unless its lease has run out by then, in which case the server redelivers it.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::StatusCode;
use futures_util::StreamExt as _;
use mammoth_core::bus::BusError;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bus::nats;

/// How long a receive listens for the server's answer to a `no_wait` request.
const GRACE: Duration = Duration::from_millis(250);

/// The body of a `CONSUMER.MSG.NEXT` request.
#[derive(Serialize)]
struct NextRequest {
    batch: usize,
    no_wait: bool,
}

/// One consumer's pull requests and the messages that came for them.
pub(crate) struct Puller {
    /// What came on the inbox, stamped with when it came by a task that reads the
    /// subscription (and ends, unsubscribing, when the puller is dropped).
    arrived: mpsc::UnboundedReceiver<(async_nats::Message, Instant)>,
    inbox: String,
    next_request: u64,
    /// Messages that came after the receive that asked for them stopped waiting, with when
    /// they came.
    kept: VecDeque<(async_nats::Message, Instant)>,
}

impl Puller {
    /// Subscribes the consumer's inbox.
    pub(crate) async fn open(client: &async_nats::Client) -> Result<Self, BusError> {
        let inbox = client.new_inbox();
        let mut subscription = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(nats("subscribing the consumer's inbox"))?;
        let (sender, arrived) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => break,
                    next = subscription.next() => {
                        let Some(message) = next else { break };
                        if sender.send((message, Instant::now())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self {
            arrived,
            inbox,
            next_request: 0,
            kept: VecDeque::new(),
        })
    }

    /// Up to `max` messages: those kept from earlier requests (still within `lease`), else
    /// the answer to one `no_wait` request.
    pub(crate) async fn pull(
        &mut self,
        client: &async_nats::Client,
        next_subject: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<async_nats::Message>, BusError> {
        self.keep_arrived();
        let fresh_after = Instant::now().checked_sub(lease);
        self.kept
            .retain(|(_, came)| fresh_after.is_none_or(|limit| *came > limit));
        if !self.kept.is_empty() {
            let take = max.min(self.kept.len());
            return Ok(self
                .kept
                .drain(..take)
                .map(|(message, _)| message)
                .collect());
        }
        self.next_request = self.next_request.wrapping_add(1);
        let reply = format!("{}.{}", self.inbox, self.next_request);
        let request = NextRequest {
            batch: max,
            no_wait: true,
        };
        let until = Instant::now() + GRACE;
        let want = request.batch;
        let body = serde_json::to_vec(&request).unwrap_or_default();
        client
            .publish_with_reply(next_subject.to_owned(), reply.clone(), body.into())
            .await
            .map_err(nats("asking for messages"))?;
        let mut got = Vec::new();
        while got.len() < want {
            let Ok(next) = tokio::time::timeout_at(until, self.arrived.recv()).await else {
                // The server may have forgotten the request without a word; anything it still
                // delivers for it is kept for the next receive.
                break;
            };
            let Some((message, _)) = next else {
                return Err(BusError::backend(
                    "nats",
                    "reading the consumer's inbox",
                    "the subscription ended (connection closed?)",
                    true,
                ));
            };
            let ours = message.subject.as_str() == reply;
            match message.status {
                None | Some(StatusCode::OK) => got.push(message),
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                // Answers that end an earlier request say nothing about this one.
                Some(_) if !ours => {}
                // No messages, expired, or ended (max ack pending, max waiting, ...).
                Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => break,
                Some(StatusCode::REQUEST_TERMINATED) if !got.is_empty() => break,
                Some(StatusCode::REQUEST_TERMINATED) => {
                    let text = message.description.clone().unwrap_or_default();
                    let lowered = text.to_lowercase();
                    if lowered.contains("max ack pending")
                        || lowered.contains("maxackpending")
                        || lowered.contains("max waiting")
                        || lowered.contains("maxwaiting")
                        || lowered.contains("interest")
                    {
                        break;
                    }
                    return Err(status_error(409, &text));
                }
                Some(_) if !got.is_empty() => break,
                Some(status) => {
                    let text = message.description.clone().unwrap_or_default();
                    return Err(status_error(status.as_u16(), &text));
                }
            }
        }
        Ok(got)
    }

    /// Moves messages that already arrived on the inbox into `kept`.
    fn keep_arrived(&mut self) {
        while let Ok((message, came)) = self.arrived.try_recv() {
            if matches!(message.status, None | Some(StatusCode::OK)) {
                self.kept.push_back((message, came));
            }
        }
    }

    /// Keeps fetched `messages` a receive could not hand out (it failed part way) for the
    /// next receive.
    pub(crate) fn keep(&mut self, messages: impl IntoIterator<Item = async_nats::Message>) {
        let now = Instant::now();
        for message in messages {
            self.kept.push_back((message, now));
        }
    }
}

fn status_error(status: u16, text: &str) -> BusError {
    BusError::backend(
        "nats",
        "fetching",
        format!("the server answered the pull request with {status} {text}"),
        true,
    )
}
