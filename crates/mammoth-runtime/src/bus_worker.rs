//! [`BusWorker`]: runs a handler over one consumer of a bus group. It receives batches, runs
//! the handler on each delivery (up to `concurrency` at once), acknowledges the successes
//! together, and hands each failure back to the bus, which retries it with backoff or
//! dead-letters it. Handlers are registered in code, never loaded from configuration or from
//! the broker (the seed `unserialize`d them from Redis).
//!
//! A transient bus error (a broker restarting, a dropped connection) is logged and retried
//! with backoff until it clears or the worker is shut down; only a permanent error stops the
//! worker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::bus::{BusConsumer, BusError, Delivery, Failure, NackOutcome};
use tokio::task::JoinSet;

use crate::RetryPolicy;

/// What a worker did, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Deliveries handled successfully and acknowledged.
    pub acked: u64,
    /// Deliveries that failed and will be retried.
    pub retried: u64,
    /// Deliveries that failed for the last time (now dead letters).
    pub dead_lettered: u64,
}

/// Runs `handler` over the deliveries of one consumer.
pub struct BusWorker<C, H> {
    consumer: C,
    handler: Arc<H>,
    batch: usize,
    concurrency: usize,
    backoff: RetryPolicy,
}

/// How a call that kept failing transiently ended.
enum Retried<V> {
    /// It succeeded (perhaps after retries).
    Done(V),
    /// The shutdown came while it was failing.
    ShutDown,
}

impl<C, H, Fut> BusWorker<C, H>
where
    C: BusConsumer + 'static,
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    /// A worker that receives up to 64 deliveries at a time and handles up to 64 at once.
    pub fn new(consumer: C, handler: H) -> Self {
        Self {
            consumer,
            handler: Arc::new(handler),
            batch: 64,
            concurrency: 64,
            backoff: RetryPolicy {
                max_attempts: u32::MAX,
                base: Duration::from_millis(20),
                factor: 2,
                cap: Duration::from_secs(1),
            },
        }
    }

    /// Sets how many deliveries one receive asks for and how many handlers run at once.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self.concurrency = self.batch;
        self
    }

    /// Sets the backoff between retries of a transiently failing receive, ack or nack (its
    /// `max_attempts` is ignored: transient errors are retried until they clear).
    pub fn with_backoff(mut self, backoff: RetryPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Runs until `shutdown` resolves; the batch in hand is finished (acked or failed) first.
    /// A transient bus error is logged and retried with backoff, however long it lasts.
    ///
    /// # Errors
    /// A [`BusError`] that is not transient; deliveries not yet acknowledged come back after
    /// their visibility timeout.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<WorkerCounts, BusError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut counts = WorkerCounts::default();
        loop {
            let received = self
                .retrying("receive", true, &mut shutdown, || {
                    self.consumer
                        .receive(self.batch, Duration::from_millis(500))
                })
                .await?;
            let Retried::Done(deliveries) = received else {
                return Ok(counts);
            };
            if let Retried::ShutDown = self.handle(deliveries, &mut counts, &mut shutdown).await? {
                return Ok(counts);
            }
        }
    }

    /// Handles one batch: handlers run concurrently; successes are acknowledged in one call.
    /// Ends early (the rest coming back after the visibility timeout) only when the shutdown
    /// comes while the bus is failing.
    async fn handle<S: Future<Output = ()>>(
        &self,
        deliveries: Vec<Delivery>,
        counts: &mut WorkerCounts,
        shutdown: &mut std::pin::Pin<&mut S>,
    ) -> Result<Retried<()>, BusError> {
        let mut running = JoinSet::new();
        let mut done = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            while running.len() >= self.concurrency {
                if let Some(outcome) = running.join_next().await {
                    done.push(outcome);
                }
            }
            let handler = Arc::clone(&self.handler);
            running.spawn(async move {
                let outcome = handler(delivery.clone()).await;
                (delivery, outcome)
            });
        }
        while let Some(outcome) = running.join_next().await {
            done.push(outcome);
        }
        let mut acks = Vec::with_capacity(done.len());
        for outcome in done {
            // A panicking handler is a failed delivery; its message comes back after the
            // visibility timeout rather than being lost.
            let Ok((delivery, outcome)) = outcome else {
                continue;
            };
            match outcome {
                Ok(()) => acks.push(delivery),
                Err(failure) => {
                    let nacked = self
                        .retrying("nack", false, shutdown, || {
                            self.consumer.nack(&delivery, failure.clone())
                        })
                        .await?;
                    match nacked {
                        Retried::Done(NackOutcome::Retrying { .. }) => counts.retried += 1,
                        Retried::Done(NackOutcome::DeadLettered { .. }) => {
                            counts.dead_lettered += 1;
                        }
                        Retried::Done(NackOutcome::Stale) => {}
                        Retried::ShutDown => return Ok(Retried::ShutDown),
                    }
                }
            }
        }
        let acked = self
            .retrying("ack", false, shutdown, || self.consumer.ack(&acks))
            .await?;
        if let Retried::Done(()) = acked {
            counts.acked += acks.len() as u64;
        }
        Ok(acked)
    }

    /// Calls `call` until it succeeds, fails permanently, or the shutdown comes while it is
    /// failing transiently (each failure is logged, then waited out with backoff). The
    /// shutdown also cuts a call short when `interruptible` (a receive; never an ack or nack
    /// of work already done).
    async fn retrying<V, F, S>(
        &self,
        what: &'static str,
        interruptible: bool,
        shutdown: &mut std::pin::Pin<&mut S>,
        call: impl Fn() -> F,
    ) -> Result<Retried<V>, BusError>
    where
        F: Future<Output = Result<V, BusError>>,
        S: Future<Output = ()>,
    {
        let mut failures = 0_u32;
        loop {
            let outcome = if interruptible {
                tokio::select! {
                    () = shutdown.as_mut() => return Ok(Retried::ShutDown),
                    outcome = call() => outcome,
                }
            } else {
                call().await
            };
            match outcome {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(what, failures, "bus worker: the bus answers again");
                    }
                    return Ok(Retried::Done(value));
                }
                Err(error) if error.is_transient() => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(what, failures, %error, "bus worker: {what} failed; retrying");
                    tokio::select! {
                        () = shutdown.as_mut() => return Ok(Retried::ShutDown),
                        () = tokio::time::sleep(self.backoff.delay(failures)) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests;
