//! The built-in [`Middleware`]: [`Tracing`], [`Validation`], [`Authorization`],
//! [`RetryOnConflict`] and [`Idempotency`].
//!
//! A typical order, outermost first: tracing (so every later step is inside the span),
//! idempotency (a repeat answers before any work), authorization, validation, retry.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::Instrument;

use crate::command_bus::{BoxFuture, Command, Envelope, ErasedResult, Middleware, Next, Reply};
use crate::error::CommandError;
use crate::retry::RetryPolicy;

/// Runs each command inside a `command` span carrying its name, command id, correlation id,
/// causation id and actor, and logs its outcome. The same ids go into the metadata of every
/// event the command writes (see [`crate::CommandContext::metadata`]), so logs and the event
/// log can be joined on them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracing;

impl Middleware for Tracing {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        let context = &envelope.context;
        let span = tracing::info_span!(
            "command",
            command = envelope.name,
            command_id = %context.command_id,
            correlation_id = %context.correlation_id,
            causation_id = context.causation_id.map(|id| id.to_string()),
            actor = context.actor.as_deref(),
        );
        let name = envelope.name;
        Box::pin(
            async move {
                let started = Instant::now();
                let result = next.run(envelope).await;
                let elapsed_us = started.elapsed().as_micros() as u64;
                match &result {
                    Ok(_) => tracing::debug!(command = name, elapsed_us, "command done"),
                    Err(error) if error.is_rejected() => {
                        tracing::info!(command = name, %error, "command rejected");
                    }
                    Err(error) => tracing::warn!(command = name, %error, "command failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

type Rule = Box<dyn Fn(&Envelope) -> Option<Result<(), String>> + Send + Sync>;

/// Checks command input before any handler runs; a failure is [`CommandError::Invalid`].
///
/// ```
/// use mammoth_runtime::{Command, Validation};
/// # #[derive(Clone)] struct Deposit { amount: u64 }
/// # #[derive(Debug, thiserror::Error)] #[error("x")] struct E;
/// # impl Command for Deposit { type Output = (); type Error = E; }
/// let validation = Validation::new()
///     .rule(|deposit: &Deposit| if deposit.amount == 0 { Err("amount must be positive".into()) } else { Ok(()) });
/// ```
#[derive(Default)]
pub struct Validation {
    rules: Vec<Rule>,
}

impl Validation {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule for commands of type `C`; it returns the reason a command is invalid.
    pub fn rule<C: Command>(
        mut self,
        rule: impl Fn(&C) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.rules
            .push(Box::new(move |envelope| envelope.command::<C>().map(&rule)));
        self
    }
}

impl Middleware for Validation {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        for rule in &self.rules {
            if let Some(Err(reason)) = rule(&envelope) {
                let error = CommandError::Invalid {
                    command: envelope.name,
                    reason,
                };
                return Box::pin(std::future::ready(Err(error)));
            }
        }
        next.run(envelope)
    }
}

/// The authorization hook: decides whether the envelope's actor may run its command.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok` to let the command through, or the reason it is refused.
    ///
    /// # Errors
    /// The reason, reported as [`CommandError::Unauthorized`].
    fn authorize(&self, envelope: &Envelope) -> Result<(), String>;
}

impl<F> Authorize for F
where
    F: Fn(&Envelope) -> Result<(), String> + Send + Sync + 'static,
{
    fn authorize(&self, envelope: &Envelope) -> Result<(), String> {
        self(envelope)
    }
}

/// Asks an [`Authorize`] hook before each command.
pub struct Authorization<H> {
    hook: H,
}

impl<H: Authorize> Authorization<H> {
    /// Middleware asking `hook`.
    pub fn new(hook: H) -> Self {
        Self { hook }
    }
}

impl<H: Authorize> Middleware for Authorization<H> {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        if let Err(reason) = self.hook.authorize(&envelope) {
            let error = CommandError::Unauthorized {
                command: envelope.name,
                actor: envelope
                    .context
                    .actor
                    .clone()
                    .unwrap_or_else(|| "anonymous".to_owned()),
                reason,
            };
            return Box::pin(std::future::ready(Err(error)));
        }
        next.run(envelope)
    }
}

/// Runs the rest of the chain again when it fails with a conflict, with backoff.
///
/// The repository already retries its own conflicts; this covers handlers that append
/// directly or run several steps, and lets configuration tune retries per bus.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryOnConflict {
    policy: RetryPolicy,
}

impl RetryOnConflict {
    /// Retries as `policy` says.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy }
    }
}

impl Middleware for RetryOnConflict {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                match next.run(envelope.clone()).await {
                    Err(error) if error.is_conflict() && attempt < self.policy.max_attempts => {
                        tokio::time::sleep(self.policy.delay(attempt)).await;
                        attempt += 1;
                    }
                    result => return result,
                }
            }
        })
    }
}

#[derive(Default)]
struct Recent {
    replies: HashMap<(&'static str, String), Reply>,
    order: VecDeque<(&'static str, String)>,
}

/// Answers a repeated idempotency key with the first result, without running the handler.
///
/// Two layers make this hold:
/// - this middleware remembers the replies of the last `capacity` keyed commands in memory,
///   so a client's retry costs one map lookup;
/// - the durable guarantee is in the store: the repository gives a keyed command's events ids
///   derived from the key, so even after a restart, on another process, or when this cache
///   has forgotten the key, the same key can never write twice (see
///   [`crate::Repository::execute`]). No extra table and no second write are needed, and
///   the record lives exactly as long as the events it describes.
///
/// Only successes are remembered: a rejected command wrote nothing, so deciding it again is
/// safe.
pub struct Idempotency {
    capacity: usize,
    recent: Mutex<Recent>,
}

impl Idempotency {
    /// Remembers the replies of the last `capacity` keyed commands.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            recent: Mutex::new(Recent::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // Map and queue are updated together under the lock; a panic cannot split them.
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Idempotency {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Middleware for Idempotency {
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult> {
        let Some(key) = envelope.context.idempotency_key.clone() else {
            return next.run(envelope);
        };
        let slot = (envelope.name, key);
        if let Some(reply) = self.lock().replies.get(&slot) {
            return Box::pin(std::future::ready(Ok(Arc::clone(reply))));
        }
        Box::pin(async move {
            let reply = next.run(envelope).await?;
            let mut recent = self.lock();
            if recent
                .replies
                .insert(slot.clone(), Arc::clone(&reply))
                .is_none()
            {
                recent.order.push_back(slot);
                while recent.order.len() > self.capacity {
                    if let Some(oldest) = recent.order.pop_front() {
                        recent.replies.remove(&oldest);
                    }
                }
            }
            Ok(reply)
        })
    }
}
