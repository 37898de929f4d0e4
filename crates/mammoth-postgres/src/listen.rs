//! Live wake-ups: a dedicated connection LISTENs on the schema's channel; every append
//! statement NOTIFYs it with the new head at commit, so waiters in every process sharing the
//! database wake within a round trip. In-process appends wake waiters directly, without
//! waiting for the notification.
//!
//! If the listening connection fails, the task reconnects with backoff and re-reads the head
//! once it listens again, so no commit made during the outage is missed; meanwhile
//! `wait_for_append` falls back to polling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use mammoth_core::Position;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::schema::Sql;

/// Raises `head` to `position` if that is newer.
pub(crate) fn raise(head: &watch::Sender<Position>, position: Position) {
    head.send_if_modified(|current| {
        let newer = position > *current;
        if newer {
            *current = position;
        }
        newer
    });
}

/// Listens until the task is aborted, reconnecting after failures.
pub(crate) async fn run(
    config: tokio_postgres::Config,
    sql: Arc<Sql>,
    head: Arc<watch::Sender<Position>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&config, &sql, &head).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => tracing::warn!(%error, "LISTEN connection failed; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    sql: &Sql,
    head: &Arc<watch::Sender<Position>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let notified = head.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(note) = message?
                && let Ok(position) = note.payload().parse::<Position>()
            {
                raise(&notified, position);
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client
        .batch_execute(&format!("LISTEN {}", sql.channel))
        .await?;
    // Listening now: anything committed before this read is covered by it, anything after
    // by a notification.
    let current: i64 = client.query_one(&sql.head, &[]).await?.get(0);
    raise(head, current as Position);
    let outcome = driver.await;
    drop(client);
    match outcome {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
