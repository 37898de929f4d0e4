//! Starts a server on a loopback port 0 and stops it on request.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use mammoth_core::InMemoryEventStore;
use mammoth_server::{Server, ServerError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signals shutdown (the server keeps finishing what is in flight).
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.signal_stop();
        match self.task.take() {
            Some(task) => task.await.expect("server task panicked"),
            None => Ok(()),
        }
    }
}

pub async fn start(server: Server) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(mammoth_server::run(listener, server, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
    }
}

pub fn memory_store() -> Arc<InMemoryEventStore> {
    Arc::new(InMemoryEventStore::new())
}

pub async fn start_memory() -> (Running, Arc<InMemoryEventStore>) {
    let store = memory_store();
    let running = start(Server::new(store.clone()).backend("memory")).await;
    (running, store)
}
