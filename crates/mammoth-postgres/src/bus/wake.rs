//! Cross-process wake-ups: every transaction that stores bus messages NOTIFYs the schema's bus
//! channel with the topic (delivered on commit), and one LISTEN connection per [`PgBus`]
//! handle, started by the first consumer that waits, wakes that handle's waiting consumers,
//! so a publish in another process reaches them within a round trip instead of a
//! `poll_interval`.
//!
//! If the listening connection fails, the task reconnects with backoff and wakes the waiters
//! once it listens again, so a publish committed during the outage is picked up then; polling
//! every `poll_interval` stays the safety net throughout.
//!
//! [`PgBus`]: super::PgBus

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// Listens on `channel` until the task is aborted, bumping `woken` on every notification,
/// reconnecting after failures.
pub(crate) async fn run(
    config: tokio_postgres::Config,
    channel: String,
    woken: Arc<watch::Sender<u64>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&config, &channel, &woken).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => tracing::warn!(%error, "bus LISTEN connection failed; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    woken: &Arc<watch::Sender<u64>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let notified = woken.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            // Every consumer of the handle wakes, whatever the topic: a wake-up costs a
            // waiter one claim, as a publish on this handle does.
            if let AsyncMessage::Notification(_) = message? {
                notified.send_modify(|count| *count += 1);
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    // Listening now: a publish committed before this is found by the claim this wake-up
    // starts, one committed after by a notification.
    woken.send_modify(|count| *count += 1);
    let outcome = driver.await;
    drop(client);
    match outcome {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
