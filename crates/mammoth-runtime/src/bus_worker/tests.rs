//! [`BusWorker`] against a scripted consumer whose bus is down for a while.
//!
//! Regression: a worker used to return on the first bus error, so a broker restarted in the
//! middle of `mammoth demo` left that group with no worker at all and its sagas stuck until
//! the demo timed out. A transient error is now retried with backoff.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mammoth_core::bus::{ConsumerGroup, Message, Receipt, Topic};
use tokio::sync::watch;

use super::*;

/// What the scripted consumer does: how many calls fail before the bus "comes back".
#[derive(Default)]
struct Script {
    receive_failures: u32,
    ack_failures: u32,
    permanent: bool,
    waiting: VecDeque<Delivery>,
    acked: Vec<Delivery>,
    receives: u32,
}

#[derive(Clone, Default)]
struct ScriptedConsumer(Arc<Mutex<Script>>);

impl ScriptedConsumer {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn down() -> BusError {
    BusError::backend("test", "calling", "connection refused", true)
}

impl BusConsumer for ScriptedConsumer {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let empty = {
            let mut script = self.script();
            script.receives += 1;
            script.waiting.is_empty() && script.receive_failures == 0 && !script.permanent
        };
        if empty {
            // As a broker does: an empty receive waits (here briefly) instead of spinning.
            tokio::time::sleep(wait.min(Duration::from_millis(5))).await;
            return Ok(Vec::new());
        }
        let mut script = self.script();
        if script.permanent {
            return Err(BusError::InvalidInput(
                "the consumer was deleted".to_owned(),
            ));
        }
        if script.receive_failures > 0 {
            script.receive_failures -= 1;
            return Err(down());
        }
        let take = max.min(script.waiting.len());
        Ok(script.waiting.drain(..take).collect())
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), BusError> {
        let mut script = self.script();
        if script.ack_failures > 0 {
            script.ack_failures -= 1;
            return Err(down());
        }
        script.acked.extend_from_slice(deliveries);
        Ok(())
    }

    async fn nack(&self, _: &Delivery, _: Failure) -> Result<NackOutcome, BusError> {
        Ok(NackOutcome::Stale)
    }

    async fn extend(&self, _: &Delivery, _: Duration) -> Result<bool, BusError> {
        Ok(true)
    }
}

fn delivery(n: u64) -> Delivery {
    Delivery {
        message: Message {
            topic: Topic::new("orders").expect("topic"),
            id: uuid::Uuid::from_u128(u128::from(n)),
            key: None,
            payload: n.to_string().into_bytes(),
            headers: BTreeMap::new(),
            sequence: n,
            published_at_micros: 0,
        },
        group: ConsumerGroup::new("billing").expect("group"),
        attempt: 1,
        receipt: Receipt::new(n.to_string()),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        base: Duration::from_millis(1),
        factor: 2,
        cap: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn a_worker_rides_out_a_broker_outage_on_receive_and_ack_and_then_handles_everything() {
    let consumer = ScriptedConsumer::default();
    {
        let mut script = consumer.script();
        script.receive_failures = 5;
        script.ack_failures = 3;
        script.waiting = (1..=3).map(delivery).collect();
    }
    let handled = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let worker = BusWorker::new(consumer.clone(), {
        let handled = Arc::clone(&handled);
        move |_delivery: Delivery| {
            let handled = Arc::clone(&handled);
            async move {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    })
    .with_backoff(fast());
    let running = tokio::spawn(async move {
        let mut stopped = stopped;
        worker
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    // Wait (bounded) until the acks went through, then stop the worker.
    for _ in 0..2_000 {
        if consumer.script().acked.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    let counts = running
        .await
        .expect("the worker did not panic")
        .expect("transient errors never stop the worker");
    assert_eq!(counts.acked, 3, "{counts:?}");
    assert_eq!(handled.load(Ordering::SeqCst), 3);
    let script = consumer.script();
    assert_eq!(script.acked.len(), 3, "every delivery acknowledged once");
    assert!(script.receives > 5, "receive was retried past the outage");
    assert_eq!(
        script.ack_failures, 0,
        "the ack was retried until it went through"
    );
}

#[tokio::test]
async fn a_permanent_bus_error_still_stops_the_worker_with_that_error() {
    let consumer = ScriptedConsumer::default();
    consumer.script().permanent = true;
    let worker = BusWorker::new(consumer, |_: Delivery| async { Ok(()) }).with_backoff(fast());
    let error = worker
        .run(std::future::pending())
        .await
        .expect_err("a deleted consumer is not retried");
    assert!(matches!(error, BusError::InvalidInput(_)), "{error}");
}

#[tokio::test]
async fn a_shutdown_during_an_outage_ends_the_worker_cleanly() {
    let consumer = ScriptedConsumer::default();
    consumer.script().receive_failures = u32::MAX;
    let worker =
        BusWorker::new(consumer.clone(), |_: Delivery| async { Ok(()) }).with_backoff(fast());
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        let mut stopped = stopped;
        worker
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    for _ in 0..2_000 {
        if consumer.script().receives > 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    let counts = running
        .await
        .expect("the worker did not panic")
        .expect("a shutdown is not an error");
    assert_eq!(counts, WorkerCounts::default());
}
