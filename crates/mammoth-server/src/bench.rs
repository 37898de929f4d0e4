//! Appends over HTTP beside appends in process, on the same kind of store, in one run: what
//! `tests/load.rs` and `examples/bench_http.rs` measure. Loopback only, bounded in count.

use std::time::{Duration, Instant};

use mammoth_core::{EventStore, ExpectedVersion, NewEvent, StreamId};

use crate::{Server, ServerError};

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Appends done.
    pub appends: u64,
    /// How long they took.
    pub elapsed: Duration,
}

impl Rate {
    /// Appends per second.
    pub fn per_second(&self) -> f64 {
        self.appends as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mammoth_core::StoreError),
    /// An HTTP exchange failed or answered other than 201.
    #[error("HTTP append failed: {0}")]
    Http(String),
    /// Binding the loopback listener failed.
    #[error("cannot bind 127.0.0.1:0: {0}")]
    Bind(std::io::Error),
}

/// `clients` tasks each append `per_client` one-event appends to a stream of their own,
/// straight on `store`.
///
/// # Errors
/// The store's error.
pub async fn in_process<S: EventStore + Clone + 'static>(
    store: S,
    clients: usize,
    per_client: usize,
) -> Result<Rate, BenchError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("bench-local{client}"))?;
            for i in 0..per_client {
                let event = NewEvent::from_json_text("Tick", format!("{{\"i\":{i}}}"));
                store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await?;
            }
            Ok::<_, mammoth_core::StoreError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| BenchError::Http(error.to_string()))??;
    }
    Ok(Rate {
        appends: (clients * per_client) as u64,
        elapsed: started.elapsed(),
    })
}

/// Serves `store` on a loopback port and has `clients` HTTP/1.1 keep-alive connections each
/// POST `per_client` one-event appends to a stream of their own; stops the server after.
///
/// # Errors
/// The server's or an exchange's error.
pub async fn over_http<S: EventStore + Clone + 'static>(
    store: S,
    clients: usize,
    per_client: usize,
) -> Result<Rate, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::Bind)?;
    let addr = listener.local_addr().map_err(BenchError::Bind)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run(
        listener,
        Server::new(store).backend("bench"),
        async move {
            let _ = stopped.await;
        },
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let path = format!("/streams/bench-http{client}");
            for i in 0..per_client {
                let body = format!("{{\"events\":[{{\"type\":\"Tick\",\"data\":{{\"i\":{i}}}}}]}}");
                connection.post(&path, &body).await?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|error| BenchError::Http(error.to_string()))??;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    server
        .await
        .map_err(|error| BenchError::Http(error.to_string()))??;
    Ok(Rate {
        appends: (clients * per_client) as u64,
        elapsed,
    })
}

/// A minimal HTTP/1.1 keep-alive client: enough for a load loop, no dependency.
struct Connection {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> Result<Self, BenchError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|error| BenchError::Http(error.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|error| BenchError::Http(error.to_string()))?;
        Ok(Self {
            reader: tokio::io::BufReader::new(stream),
        })
    }

    async fn post(&mut self, path: &str, body: &str) -> Result<(), BenchError> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let failed = |error: std::io::Error| BenchError::Http(error.to_string());
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(failed)?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await.map_err(failed)?;
        if !line.starts_with("HTTP/1.1 201") {
            return Err(BenchError::Http(format!("answered {}", line.trim())));
        }
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.map_err(failed)?;
            let header = line.trim();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.map_err(failed)?;
        Ok(())
    }
}
