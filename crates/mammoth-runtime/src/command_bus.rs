//! [`CommandBus`]: routes a command to the one handler registered for its type, through a
//! chain of [`Middleware`]. Handlers are registered in code; configuration may tune the bus
//! but never names a handler to instantiate (the seed's `new $handler()`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use mammoth_core::{Aggregate, EventStore};

use crate::context::CommandContext;
use crate::error::{BoxError, CommandError};
use crate::repository::{Committed, Repository};

/// A boxed, sendable future: the shape middleware returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A handler's output with its type erased, as middleware sees it.
pub type Reply = Arc<dyn Any + Send + Sync>;

/// What middleware and erased handlers return.
pub type ErasedResult = Result<Reply, CommandError<BoxError>>;

/// A command: a request to change state, with its result and rejection types.
///
/// Commands are plain data; `Clone` lets retry middleware send one again.
pub trait Command: Clone + Send + Sync + 'static {
    /// What a successful command returns (often [`Committed`]).
    type Output: Clone + Send + Sync + 'static;
    /// The domain's rejection.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The name used in errors, logs and idempotency records: by default the type's name.
    fn name() -> &'static str {
        short_type_name::<Self>()
    }
}

/// The last path segment of a type's name: `CreateOrder` for `orders::CreateOrder`.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let end = full.find('<').unwrap_or(full.len());
    full[..end].rsplit("::").next().unwrap_or(full)
}

/// A command in flight, with its type erased: what middleware inspects.
#[derive(Clone)]
pub struct Envelope {
    /// The command's name ([`Command::name`]).
    pub name: &'static str,
    /// The command's type, for routing.
    pub type_id: TypeId,
    /// The command itself; [`Envelope::command`] gives it back typed.
    pub command: Arc<dyn Any + Send + Sync>,
    /// Who sent it and why; handlers copy it into the events they write.
    pub context: CommandContext,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("name", &self.name)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The command, if it is a `C`.
    pub fn command<C: Command>(&self) -> Option<&C> {
        self.command.downcast_ref()
    }
}

/// A step around every handler call: tracing, validation, authorization, retries,
/// idempotency. The first middleware added is the outermost.
pub trait Middleware: Send + Sync + 'static {
    /// Handles `envelope`, calling `next.run(envelope)` to go on down the chain (zero, one or
    /// several times).
    fn handle<'a>(&'a self, envelope: Envelope, next: Next<'a>) -> BoxFuture<'a, ErasedResult>;
}

/// The rest of the middleware chain, ending in the handler.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    chain: &'a [Arc<dyn Middleware>],
    handler: &'a dyn ErasedHandler,
}

impl<'a> Next<'a> {
    /// Runs the rest of the chain and the handler.
    pub fn run(self, envelope: Envelope) -> BoxFuture<'a, ErasedResult> {
        match self.chain.split_first() {
            Some((first, rest)) => first.handle(
                envelope,
                Next {
                    chain: rest,
                    handler: self.handler,
                },
            ),
            None => self.handler.call(envelope),
        }
    }
}

trait ErasedHandler: Send + Sync {
    fn call(&self, envelope: Envelope) -> BoxFuture<'static, ErasedResult>;
}

struct FnHandler<C, F> {
    handler: F,
    command: PhantomData<fn(C)>,
}

impl<C, F, Fut> ErasedHandler for FnHandler<C, F>
where
    C: Command,
    F: Fn(C, CommandContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<C::Output, CommandError<C::Error>>> + Send + 'static,
{
    fn call(&self, envelope: Envelope) -> BoxFuture<'static, ErasedResult> {
        let Some(command) = envelope.command::<C>().cloned() else {
            let error = CommandError::Failed {
                command: C::name(),
                message: "a middleware replaced the command with one of another type".to_owned(),
            };
            return Box::pin(std::future::ready(Err(error)));
        };
        let future = (self.handler)(command, envelope.context);
        Box::pin(async move {
            match future.await {
                Ok(output) => Ok(Arc::new(output) as Reply),
                Err(error) => Err(error.erase()),
            }
        })
    }
}

/// The generic command of an aggregate: "run this aggregate command on aggregate `id`".
/// Register a repository with [`CommandBusBuilder::repository`] and dispatch
/// `Execute::<Order>::new("42", OrderCommand::Confirm)`, with no command struct to write.
pub struct Execute<A: Aggregate> {
    /// The aggregate id (the stream is `{CATEGORY}-{id}`).
    pub id: String,
    /// What to do.
    pub command: A::Command,
}

impl<A: Aggregate> Execute<A> {
    /// `command` for aggregate `id`.
    pub fn new(id: impl Into<String>, command: A::Command) -> Self {
        Self {
            id: id.into(),
            command,
        }
    }
}

impl<A: Aggregate> Clone for Execute<A>
where
    A::Command: Clone,
{
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            command: self.command.clone(),
        }
    }
}

impl<A: Aggregate> fmt::Debug for Execute<A>
where
    A::Command: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execute")
            .field("id", &self.id)
            .field("command", &self.command)
            .finish()
    }
}

impl<A: Aggregate> Command for Execute<A>
where
    A::Command: Clone,
{
    type Output = Committed;
    type Error = A::Error;

    /// The aggregate command type's name, e.g. `OrderCommand`.
    fn name() -> &'static str {
        short_type_name::<A::Command>()
    }
}

/// Registers handlers and middleware, then builds the [`CommandBus`].
#[derive(Default)]
pub struct CommandBusBuilder {
    handlers: HashMap<TypeId, (&'static str, Box<dyn ErasedHandler>)>,
    middleware: Vec<Arc<dyn Middleware>>,
}

impl CommandBusBuilder {
    /// Registers `handler` for commands of type `C`.
    ///
    /// # Panics
    /// When `C` already has a handler: a command has exactly one, found at start-up.
    pub fn handle<C, F, Fut>(mut self, handler: F) -> Self
    where
        C: Command,
        F: Fn(C, CommandContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Output, CommandError<C::Error>>> + Send + 'static,
    {
        let handler = FnHandler {
            handler,
            command: PhantomData,
        };
        let previous = self
            .handlers
            .insert(TypeId::of::<C>(), (C::name(), Box::new(handler)));
        assert!(
            previous.is_none(),
            "two handlers registered for command {}; keep one",
            C::name()
        );
        self
    }

    /// Routes commands of type `C` to an aggregate: `route` names the aggregate id and the
    /// aggregate command, and `repository` executes it.
    ///
    /// ```text
    /// bus.aggregate(orders, |c: CancelOrder| (c.order_id.clone(), OrderCommand::Cancel { reason: c.reason }))
    /// ```
    ///
    /// # Panics
    /// When `C` already has a handler.
    pub fn aggregate<C, A, S, R>(self, repository: Repository<A, S>, route: R) -> Self
    where
        C: Command<Output = Committed, Error = A::Error>,
        A: Aggregate,
        S: EventStore + Clone + Send + Sync + 'static,
        R: Fn(C) -> (String, A::Command) + Send + Sync + 'static,
    {
        let route = Arc::new(route);
        self.handle(move |command: C, context: CommandContext| {
            let repository = repository.clone();
            let route = Arc::clone(&route);
            async move {
                let (id, command) = route(command);
                repository.execute(&id, &command, &context).await
            }
        })
    }

    /// Handles [`Execute<A>`] commands with `repository`.
    ///
    /// # Panics
    /// When `Execute<A>` already has a handler.
    pub fn repository<A, S>(self, repository: Repository<A, S>) -> Self
    where
        A: Aggregate,
        A::Command: Clone,
        S: EventStore + Clone + Send + Sync + 'static,
    {
        self.handle(move |execute: Execute<A>, context: CommandContext| {
            let repository = repository.clone();
            async move {
                repository
                    .execute(&execute.id, &execute.command, &context)
                    .await
            }
        })
    }

    /// Adds `middleware` inside the ones added before it.
    pub fn layer(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// The bus.
    pub fn build(self) -> CommandBus {
        CommandBus {
            inner: Arc::new(self),
        }
    }
}

/// Routes commands by type to their handlers, through the middleware chain. Cheap to clone.
///
/// ```
/// use mammoth_runtime::{Command, CommandBus, CommandError, CommandContext};
///
/// #[derive(Clone)]
/// struct Ping;
/// #[derive(Debug, thiserror::Error)]
/// #[error("never")]
/// struct Never;
/// impl Command for Ping {
///     type Output = &'static str;
///     type Error = Never;
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = CommandBus::builder()
///     .handle(|_: Ping, _: CommandContext| async { Ok::<_, CommandError<Never>>("pong") })
///     .build();
/// assert_eq!(bus.dispatch(Ping).await.unwrap(), "pong");
/// # });
/// ```
#[derive(Clone)]
pub struct CommandBus {
    inner: Arc<CommandBusBuilder>,
}

impl fmt::Debug for CommandBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self
            .inner
            .handlers
            .values()
            .map(|(name, _)| *name)
            .collect();
        names.sort_unstable();
        f.debug_struct("CommandBus")
            .field("commands", &names)
            .field("middleware", &self.inner.middleware.len())
            .finish()
    }
}

impl CommandBus {
    /// A builder with no handlers and no middleware.
    pub fn builder() -> CommandBusBuilder {
        CommandBusBuilder::default()
    }

    /// Dispatches `command` as a new request (fresh command and correlation ids).
    ///
    /// # Errors
    /// See [`CommandBus::dispatch_with`].
    pub async fn dispatch<C: Command>(
        &self,
        command: C,
    ) -> Result<C::Output, CommandError<C::Error>> {
        self.dispatch_with(command, CommandContext::new()).await
    }

    /// Dispatches `command` with `context` (correlation, causation, actor, idempotency key).
    ///
    /// # Errors
    /// [`CommandError::UnknownCommand`] when no handler is registered for `C` (no middleware
    /// runs); otherwise whatever the middleware and the handler return.
    pub async fn dispatch_with<C: Command>(
        &self,
        command: C,
        context: CommandContext,
    ) -> Result<C::Output, CommandError<C::Error>> {
        let Some((_, handler)) = self.inner.handlers.get(&TypeId::of::<C>()) else {
            return Err(CommandError::UnknownCommand { command: C::name() });
        };
        let envelope = Envelope {
            name: C::name(),
            type_id: TypeId::of::<C>(),
            command: Arc::new(command),
            context,
        };
        let next = Next {
            chain: &self.inner.middleware,
            handler: handler.as_ref(),
        };
        let reply = next
            .run(envelope)
            .await
            .map_err(|error| error.restore(C::name()))?;
        match reply.downcast::<C::Output>() {
            Ok(output) => Ok(Arc::try_unwrap(output).unwrap_or_else(|shared| (*shared).clone())),
            Err(_) => Err(CommandError::Failed {
                command: C::name(),
                message: "a middleware replaced the reply with one of another type".to_owned(),
            }),
        }
    }

    /// True when a handler is registered for `C`.
    pub fn handles<C: Command>(&self) -> bool {
        self.inner.handlers.contains_key(&TypeId::of::<C>())
    }
}
