//! [`QueryBus`]: routes a query to the handler registered for its type and, when the caller
//! asks to read its own writes, first waits (with a timeout) until the read model behind the
//! handler has processed the caller's position.
//!
//! The read model reports its progress through [`ReadModelProgress`]. Projection runners
//! (a later layer) advance a [`PositionWatch`]; handlers that read the event store directly
//! use [`StoreProgress`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mammoth_core::{EventStore, Position};
use tokio::sync::watch;

use crate::command_bus::{BoxFuture, short_type_name};
use crate::error::QueryError;

/// A query: a request to read, with its answer type.
pub trait Query: Send + Sync + 'static {
    /// The answer.
    type Output: Send + 'static;

    /// The name used in errors and logs: by default the type's name.
    fn name() -> &'static str {
        short_type_name::<Self>()
    }
}

/// How far a read model has got through the global log.
pub trait ReadModelProgress: Send + Sync + 'static {
    /// The highest global position such that every event at or below it has been applied.
    ///
    /// # Errors
    /// When the progress cannot be read (a store failure).
    fn position(&self) -> impl Future<Output = Result<Position, QueryError>> + Send;

    /// Resolves once the position may have moved past `after`; it may resolve early.
    ///
    /// # Errors
    /// When the progress cannot be watched.
    fn changed(&self, after: Position) -> impl Future<Output = Result<(), QueryError>> + Send;
}

/// A progress value a projection runner advances and queries wait on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PositionWatch {
    sender: Arc<watch::Sender<Position>>,
}

impl Default for PositionWatch {
    fn default() -> Self {
        Self::new(0)
    }
}

impl PositionWatch {
    /// A watch at `position`.
    pub fn new(position: Position) -> Self {
        Self {
            sender: Arc::new(watch::Sender::new(position)),
        }
    }

    /// Records that every event up to `position` is applied. Never moves backwards.
    pub fn advance(&self, position: Position) {
        self.sender.send_if_modified(|current| {
            let moved = position > *current;
            if moved {
                *current = position;
            }
            moved
        });
    }

    /// Moves the watch back to `position` (or forward to it): the read model was emptied and
    /// is being rebuilt in place, so queries waiting for a position above it wait again until
    /// the rebuild passes it. Only the runner that owns the read model calls this.
    pub fn rewind(&self, position: Position) {
        self.sender.send_if_modified(|current| {
            let moved = position != *current;
            *current = position;
            moved
        });
    }

    /// The current position.
    pub fn get(&self) -> Position {
        *self.sender.borrow()
    }
}

impl ReadModelProgress for PositionWatch {
    async fn position(&self) -> Result<Position, QueryError> {
        Ok(self.get())
    }

    async fn changed(&self, after: Position) -> Result<(), QueryError> {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so the wait cannot fail with a closed channel.
        let _ = receiver.wait_for(|position| *position > after).await;
        Ok(())
    }
}

/// The progress of a read model that reads the event store itself (it is as current as the
/// store's head).
#[derive(Clone, Debug)]
pub struct StoreProgress<S> {
    store: S,
}

impl<S: EventStore + 'static> StoreProgress<S> {
    /// Progress of reads from `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }
}

impl<S: EventStore + 'static> ReadModelProgress for StoreProgress<S> {
    async fn position(&self) -> Result<Position, QueryError> {
        Ok(self.store.head_position().await?)
    }

    async fn changed(&self, after: Position) -> Result<(), QueryError> {
        Ok(self.store.wait_for_append(after).await?)
    }
}

trait DynProgress: Send + Sync {
    fn position(&self) -> BoxFuture<'_, Result<Position, QueryError>>;
    fn changed(&self, after: Position) -> BoxFuture<'_, Result<(), QueryError>>;
}

impl<T: ReadModelProgress> DynProgress for T {
    fn position(&self) -> BoxFuture<'_, Result<Position, QueryError>> {
        Box::pin(ReadModelProgress::position(self))
    }

    fn changed(&self, after: Position) -> BoxFuture<'_, Result<(), QueryError>> {
        Box::pin(ReadModelProgress::changed(self, after))
    }
}

/// Options of one query call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// Wait until the read model has processed this position before answering.
    pub min_position: Option<Position>,
    /// How long to wait for it.
    pub timeout: Duration,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            min_position: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl QueryOptions {
    /// Read-your-writes: wait (up to the default 5 s) for `position`, typically
    /// [`crate::Committed::position`].
    pub fn after(position: Position) -> Self {
        Self {
            min_position: Some(position),
            ..Self::default()
        }
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

trait ErasedQueryHandler: Send + Sync {
    fn call(
        &self,
        query: Box<dyn Any + Send>,
    ) -> BoxFuture<'static, Result<Box<dyn Any + Send>, QueryError>>;
}

struct FnQueryHandler<Q, F> {
    handler: F,
    query: PhantomData<fn(Q)>,
}

impl<Q, F, Fut> ErasedQueryHandler for FnQueryHandler<Q, F>
where
    Q: Query,
    F: Fn(Q) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Q::Output, QueryError>> + Send + 'static,
{
    fn call(
        &self,
        query: Box<dyn Any + Send>,
    ) -> BoxFuture<'static, Result<Box<dyn Any + Send>, QueryError>> {
        match query.downcast::<Q>() {
            Ok(query) => {
                let future = (self.handler)(*query);
                Box::pin(async move { Ok(Box::new(future.await?) as Box<dyn Any + Send>) })
            }
            Err(_) => Box::pin(std::future::ready(Err(QueryError::Failed {
                query: Q::name(),
                message: "routed a query of another type".to_owned(),
            }))),
        }
    }
}

struct Route {
    name: &'static str,
    handler: Box<dyn ErasedQueryHandler>,
    progress: Option<Arc<dyn DynProgress>>,
}

/// Registers query handlers, then builds the [`QueryBus`].
#[derive(Default)]
pub struct QueryBusBuilder {
    routes: HashMap<TypeId, Route>,
}

impl QueryBusBuilder {
    /// Registers `handler` for `Q`, reading a model that is always current (it reads the write
    /// side directly), so read-your-writes needs no wait.
    ///
    /// # Panics
    /// When `Q` already has a handler.
    pub fn handle<Q, F, Fut>(self, handler: F) -> Self
    where
        Q: Query,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Q::Output, QueryError>> + Send + 'static,
    {
        self.route::<Q, F, Fut>(handler, None)
    }

    /// Registers `handler` for `Q`, reading a model whose progress `progress` reports; a query
    /// with a minimum position waits on it.
    ///
    /// # Panics
    /// When `Q` already has a handler.
    pub fn handle_with_progress<Q, F, Fut>(
        self,
        handler: F,
        progress: impl ReadModelProgress,
    ) -> Self
    where
        Q: Query,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Q::Output, QueryError>> + Send + 'static,
    {
        self.route::<Q, F, Fut>(handler, Some(Arc::new(progress)))
    }

    fn route<Q, F, Fut>(mut self, handler: F, progress: Option<Arc<dyn DynProgress>>) -> Self
    where
        Q: Query,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Q::Output, QueryError>> + Send + 'static,
    {
        let route = Route {
            name: Q::name(),
            handler: Box::new(FnQueryHandler {
                handler,
                query: PhantomData,
            }),
            progress,
        };
        let previous = self.routes.insert(TypeId::of::<Q>(), route);
        assert!(
            previous.is_none(),
            "two handlers registered for query {}; keep one",
            Q::name()
        );
        self
    }

    /// The bus.
    pub fn build(self) -> QueryBus {
        QueryBus {
            routes: Arc::new(self.routes),
        }
    }
}

/// Routes queries by type to their handlers. Cheap to clone.
#[derive(Clone)]
pub struct QueryBus {
    routes: Arc<HashMap<TypeId, Route>>,
}

impl fmt::Debug for QueryBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.routes.values().map(|route| route.name).collect();
        names.sort_unstable();
        f.debug_struct("QueryBus").field("queries", &names).finish()
    }
}

impl QueryBus {
    /// A builder with no handlers.
    pub fn builder() -> QueryBusBuilder {
        QueryBusBuilder::default()
    }

    /// Answers `query` from the read model as it is now.
    ///
    /// # Errors
    /// [`QueryError::UnknownQuery`] when no handler is registered for `Q`; the handler's error.
    pub async fn query<Q: Query>(&self, query: Q) -> Result<Q::Output, QueryError> {
        self.query_with(query, QueryOptions::default()).await
    }

    /// Answers `query`, first waiting for `options.min_position` if given.
    ///
    /// # Errors
    /// [`QueryError::UnknownQuery`]; [`QueryError::NotCaughtUp`] when the read model does not
    /// reach the position within the timeout; the handler's error.
    pub async fn query_with<Q: Query>(
        &self,
        query: Q,
        options: QueryOptions,
    ) -> Result<Q::Output, QueryError> {
        let Some(route) = self.routes.get(&TypeId::of::<Q>()) else {
            return Err(QueryError::UnknownQuery { query: Q::name() });
        };
        if let (Some(wanted), Some(progress)) = (options.min_position, &route.progress) {
            wait_for(progress.as_ref(), Q::name(), wanted, options.timeout).await?;
        }
        let answer = route.handler.call(Box::new(query)).await?;
        answer
            .downcast::<Q::Output>()
            .map(|output| *output)
            .map_err(|_| QueryError::Failed {
                query: Q::name(),
                message: "the handler answered with another type".to_owned(),
            })
    }
}

async fn wait_for(
    progress: &dyn DynProgress,
    query: &'static str,
    wanted: Position,
    timeout: Duration,
) -> Result<(), QueryError> {
    let started = Instant::now();
    loop {
        let reached = progress.position().await?;
        if reached >= wanted {
            return Ok(());
        }
        let waited = started.elapsed();
        let not_caught_up = QueryError::NotCaughtUp {
            query,
            wanted,
            reached,
            waited,
        };
        let Some(remaining) = timeout.checked_sub(waited) else {
            return Err(not_caught_up);
        };
        if tokio::time::timeout(remaining, progress.changed(reached))
            .await
            .is_err()
        {
            let reached = progress.position().await?;
            if reached >= wanted {
                return Ok(());
            }
            return Err(QueryError::NotCaughtUp {
                query,
                wanted,
                reached,
                waited: started.elapsed(),
            });
        }
    }
}
