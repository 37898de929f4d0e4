//! [`BusWorker`]: runs a handler over one consumer of a bus group. It receives batches, runs
//! the handler on each delivery (up to `concurrency` at once), acknowledges the successes
//! together, and hands each failure back to the bus, which retries it with backoff or
//! dead-letters it. Handlers are registered in code, never loaded from configuration or from
//! the broker (the seed `unserialize`d them from Redis).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mammoth_core::bus::{BusConsumer, BusError, Delivery, Failure, NackOutcome};
use tokio::task::JoinSet;

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
        }
    }

    /// Sets how many deliveries one receive asks for and how many handlers run at once.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self.concurrency = self.batch;
        self
    }

    /// Runs until `shutdown` resolves; the batch in hand is finished (acked or failed) first.
    ///
    /// # Errors
    /// [`BusError`] when the bus fails; deliveries not yet acknowledged come back after their
    /// visibility timeout.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<WorkerCounts, BusError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut counts = WorkerCounts::default();
        loop {
            let deliveries = tokio::select! {
                () = &mut shutdown => return Ok(counts),
                deliveries = self.consumer.receive(self.batch, Duration::from_millis(500)) => deliveries?,
            };
            self.handle(deliveries, &mut counts).await?;
        }
    }

    /// Handles one batch: handlers run concurrently; successes are acknowledged in one call.
    async fn handle(
        &self,
        deliveries: Vec<Delivery>,
        counts: &mut WorkerCounts,
    ) -> Result<(), BusError> {
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
                Err(failure) => match self.consumer.nack(&delivery, failure).await? {
                    NackOutcome::Retrying { .. } => counts.retried += 1,
                    NackOutcome::DeadLettered { .. } => counts.dead_lettered += 1,
                    NackOutcome::Stale => {}
                },
            }
        }
        self.consumer.ack(&acks).await?;
        counts.acked += acks.len() as u64;
        Ok(())
    }
}
