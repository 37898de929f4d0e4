//! # The seed's order domain on mammoth
//!
//! Three aggregates written as pure deciders — [`order::Order`], [`inventory::Inventory`]
//! (stock per SKU with reservations) and [`payment::Payment`] (which may be declined) — with
//! their commands, events and rejections; an upcaster from the PHP-era `OrderCreated` v1
//! (total as a decimal string) to v2 (integer cents); JSON Schemas for every event; and
//! [`app::OrdersApp`], which puts them on a `CommandBus` and a `QueryBus` over any event store.
//!
//! ```
//! use mammoth_core::InMemoryEventStore;
//! use mammoth_example_orders::app::{CreateOrder, GetOrder, OrdersApp, customer};
//! use mammoth_example_orders::order::{OrderLine, OrderStatus};
//! use mammoth_runtime::QueryOptions;
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = OrdersApp::new(Arc::new(InMemoryEventStore::new()));
//! let create = CreateOrder {
//!     order_id: "42".into(),
//!     customer_id: "ada".into(),
//!     items: vec![OrderLine::new("book", 2, 1500)],
//!     total_cents: 3000,
//! };
//! let written = app.commands.dispatch_with(create, customer("ada")).await.unwrap();
//! let view = app.queries
//!     .query_with(GetOrder { order_id: "42".into() }, QueryOptions::after(written.position))
//!     .await.unwrap().unwrap();
//! assert_eq!(view.status, OrderStatus::Pending);
//! # });
//! ```
//!
//! Later layers (projections, the order saga, `mammoth demo`) build on this crate.

pub mod app;
pub mod demo;
pub mod inventory;
pub mod order;
pub mod payment;
pub mod projection;
pub mod saga;
pub mod services;
pub mod versioning;
