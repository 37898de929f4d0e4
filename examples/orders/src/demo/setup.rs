//! Before a demo run: the data directory (reset or reused, with a message either way), the
//! warehouses' stock, and the orders to send — all deterministic from the run id and seed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mammoth_core::EventStore;
use mammoth_runtime::{CommandContext, Execute};
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

use super::DemoError;
use crate::app::{CreateOrder, OrdersApp};
use crate::inventory::{Inventory, InventoryCommand, StockLine};
use crate::order::OrderLine;
use crate::services::order_hash;

/// The event store's file in a data directory: the log, and beside it the embedded bus (with
/// the relay's checkpoint), the saga runner's checkpoint and deadlines, and the aggregates'
/// snapshots, so one file holds everything that must survive a crash together and `mammoth
/// dlq` / `mammoth bus stats` / `mammoth status` pointed at it see the demo's bus.
pub const STORE_FILE: &str = "mammoth.db";
/// The embedded bus's file when the event store is a SQL server (earlier versions of the
/// demo also wrote it beside a SQLite store); `--reset` removes it.
pub const BUS_FILE: &str = "bus.db";
/// The read models' file in a data directory.
pub const READ_MODELS_FILE: &str = "read_models.db";
/// The file holding the data directory's bus namespace: the prefix of its topics and relay
/// name on a broker bus, new with every new or reset directory (see [`bus_namespace`]).
pub const BUS_NAMESPACE_FILE: &str = "bus-namespace";

/// The products of every warehouse, with their prices in cents.
pub const PRODUCTS: [(&str, u64); 5] = [
    ("book", 1_500),
    ("lamp", 4_999),
    ("mug", 800),
    ("pen", 250),
    ("desk", 25_000),
];

/// A product each warehouse holds only two of, so a few orders find it out of stock and are
/// cancelled (the reservation-failure path).
pub const RARE: (&str, u64) = ("rare", 9_900);

/// The store and read-model files of a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// True when it held a store already (now reused).
    pub reused: bool,
    /// What was done, for the user.
    pub message: String,
}

impl DataDir {
    /// The event store's file.
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    /// The bus, checkpoints, deadlines and snapshots' file: the event store's own.
    pub fn bus_path(&self) -> PathBuf {
        self.store_path()
    }

    /// The read models' file.
    pub fn read_models_path(&self) -> PathBuf {
        self.path.join(READ_MODELS_FILE)
    }
}

/// Prepares `dir`: with `reset`, removes the demo's files there (after checking no other
/// process has the store open); without it, reuses an existing store (its unfinished sagas
/// continue) or starts a new one.
///
/// # Errors
/// [`DemoError::DataDir`] when the directory cannot be created or cleaned, or the store is
/// open in another process.
pub async fn prepare(dir: &Path, reset: bool) -> Result<DataDir, DemoError> {
    let store_path = dir.join(STORE_FILE);
    let exists = store_path.exists();
    let data_dir = |reused: bool, message: String| DataDir {
        path: dir.to_path_buf(),
        reused,
        message,
    };
    if !exists {
        std::fs::create_dir_all(dir).map_err(|error| DemoError::DataDir {
            path: dir.to_path_buf(),
            message: format!("cannot create it: {error}"),
        })?;
        return Ok(data_dir(
            false,
            format!("new demo store in {}", dir.display()),
        ));
    }
    // Opening takes the store's lock: another process using it is a clear error here.
    let store = SqliteEventStore::open(&store_path, SqliteOptions::default()).map_err(|error| {
        DemoError::DataDir {
            path: dir.to_path_buf(),
            message: error.to_string(),
        }
    })?;
    let events = store.head_position().await?;
    store.close().await?;
    if !reset {
        return Ok(data_dir(
            true,
            format!(
                "reusing the demo store in {} ({events} events; unfinished sagas continue); pass --reset to start from an empty one",
                dir.display()
            ),
        ));
    }
    remove_files(dir, &[STORE_FILE, BUS_FILE, READ_MODELS_FILE])?;
    Ok(data_dir(
        false,
        format!(
            "--reset: removed the demo store in {} ({events} events), its bus and its read models",
            dir.display()
        ),
    ))
}

/// Removes the bus namespace file and the SQLite files `names` (with their journals and
/// locks) from `dir`; files already missing are fine.
fn remove_files(dir: &Path, names: &[&str]) -> Result<(), DemoError> {
    let mut paths = vec![dir.join(BUS_NAMESPACE_FILE)];
    for name in names {
        for suffix in ["", "-wal", "-shm", ".lock"] {
            paths.push(dir.join(format!("{name}{suffix}")));
        }
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(DemoError::DataDir {
                    path,
                    message: format!("cannot remove it: {error}"),
                });
            }
        }
    }
    Ok(())
}

/// Prepares `dir` for a run whose event store is `store` on a SQL server (`label` names it,
/// e.g. `postgres (schema "mammoth")`). The directory holds only the run's embedded bus
/// ([`BUS_FILE`]), read models and bus namespace. `reset` removes those, and never the
/// database's data: the schema may hold other runs' and other applications' events, so the
/// message says what was kept and how to drop it. Each run has its own run id either way,
/// so earlier runs' orders never count in its report.
///
/// # Errors
/// [`DemoError::DataDir`] when the directory cannot be created or cleaned;
/// [`DemoError::Store`] when the store cannot be read.
pub async fn prepare_sql<S: EventStore>(
    dir: &Path,
    reset: bool,
    store: &S,
    label: &str,
) -> Result<DataDir, DemoError> {
    std::fs::create_dir_all(dir).map_err(|error| DemoError::DataDir {
        path: dir.to_path_buf(),
        message: format!("cannot create it: {error}"),
    })?;
    let events = store.head_position().await?;
    let local = dir.join(BUS_FILE).exists() || dir.join(READ_MODELS_FILE).exists();
    let kept = format!(
        "the {events} events in {label} are kept (the demo never deletes a database's data: other runs and applications may use it; drop the schema or database yourself to start empty)"
    );
    let (reused, message) = if reset {
        remove_files(dir, &[BUS_FILE, READ_MODELS_FILE])?;
        (
            false,
            format!(
                "--reset: removed the demo's bus and read models in {}; {kept}; this run has a new run id and reports only its own orders",
                dir.display()
            ),
        )
    } else if events > 0 || local {
        (
            true,
            format!(
                "reusing {label} ({events} events; unfinished sagas continue) and the bus and read models in {}; pass --reset to start them empty",
                dir.display()
            ),
        )
    } else {
        (
            false,
            format!(
                "new demo store in {label}, bus and read models in {}",
                dir.display()
            ),
        )
    };
    Ok(DataDir {
        path: dir.to_path_buf(),
        reused,
        message,
    })
}

/// The bus namespace of `dir` (such as `demo-3f2a9c1b7d4e`): read from its
/// [`BUS_NAMESPACE_FILE`], or made up (random) and written there when the directory has none
/// (new, reset, or only ever run on the embedded bus). A broker keeps what earlier runs
/// published, and `--reset` cannot delete it there, so each data directory's topics and relay
/// checkpoint live under their own namespace: a reused directory continues its own, a new or
/// reset one never receives another's messages. The second value is true when the namespace
/// is new.
///
/// # Errors
/// [`DemoError::DataDir`] when the file cannot be read or written, or holds no namespace.
pub fn bus_namespace(dir: &Path) -> Result<(String, bool), DemoError> {
    let path = dir.join(BUS_NAMESPACE_FILE);
    let invalid = |message: String| DemoError::DataDir {
        path: path.clone(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let namespace = text.trim().to_owned();
            let valid = !namespace.is_empty()
                && namespace.len() <= 40
                && namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            if valid {
                Ok((namespace, false))
            } else {
                Err(invalid(format!(
                    "{namespace:?} is not a bus namespace (ASCII letters, digits, '-' and '_'); delete the file or pass --reset"
                )))
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let simple = uuid::Uuid::new_v4().simple().to_string();
            let namespace = format!("demo-{}", &simple[..12]);
            std::fs::write(&path, format!("{namespace}\n"))
                .map_err(|error| invalid(format!("cannot write it: {error}")))?;
            Ok((namespace, true))
        }
        Err(error) => Err(invalid(format!("cannot read it: {error}"))),
    }
}

/// The SKU of `product` in warehouse `warehouse`: `w2:lamp`.
pub fn sku(warehouse: usize, product: &str) -> String {
    format!("w{warehouse}:{product}")
}

/// Stocks every warehouse for `orders` orders: enough of each product for every order to
/// take three, and two of the rare product. Idempotent per `run_id` (a restarted run adds
/// nothing twice).
///
/// # Errors
/// [`DemoError::Command`] when a command fails.
pub async fn seed_stock<S: EventStore + Clone + Send + Sync + 'static>(
    app: &OrdersApp<S>,
    run_id: &str,
    warehouses: usize,
    orders: usize,
) -> Result<u64, DemoError> {
    let per_warehouse = orders.div_ceil(warehouses.max(1));
    let plenty = u32::try_from(per_warehouse * 3 + 10).unwrap_or(u32::MAX);
    let mut added = 0;
    for warehouse in 0..warehouses {
        let stock = PRODUCTS
            .iter()
            .map(|(product, _)| (*product, plenty))
            .chain([(RARE.0, 2)]);
        for (product, quantity) in stock {
            let sku = sku(warehouse, product);
            let context = CommandContext::new()
                .with_actor("warehouse")
                .with_idempotency_key(format!("demo-stock/{run_id}/{sku}"));
            let add = InventoryCommand::AddStock(StockLine::new(sku, quantity));
            app.commands
                .dispatch_with(
                    Execute::<Inventory>::new(format!("w{warehouse}"), add),
                    context,
                )
                .await
                .map_err(|error| DemoError::Command(error.to_string()))?;
            added += u64::from(quantity);
        }
    }
    Ok(added)
}

/// The id of order `n` of run `run_id`.
pub fn order_id(run_id: &str, n: usize) -> String {
    format!("{run_id}-{n}")
}

/// Order `n` of run `run_id`: one or two lines of one warehouse's products (one order in 40
/// also asks for the rare product), chosen by a hash of the id and `seed`.
pub fn order(run_id: &str, n: usize, warehouses: usize, seed: u64) -> CreateOrder {
    let order_id = order_id(run_id, n);
    let hash = order_hash(seed, &order_id);
    let warehouse = n % warehouses.max(1);
    let first = (hash % PRODUCTS.len() as u64) as usize;
    let mut picks = vec![(PRODUCTS[first], 1 + (hash >> 8) % 3)];
    if (hash >> 16).is_multiple_of(2) {
        let second = (first + 1 + ((hash >> 20) % 4) as usize) % PRODUCTS.len();
        picks.push((PRODUCTS[second], 1 + (hash >> 24) % 3));
    }
    if n % 40 == 7 {
        picks.push((RARE, 1));
    }
    let items: Vec<OrderLine> = picks
        .into_iter()
        .map(|((product, price), quantity)| {
            OrderLine::new(sku(warehouse, product), quantity as u32, price)
        })
        .collect();
    let total_cents = items.iter().map(OrderLine::amount_cents).sum();
    CreateOrder {
        customer_id: format!("customer-{}", hash % 97),
        order_id,
        items,
        total_cents,
    }
}

/// The `poison` orders (of `orders`) whose payment is poisoned: spread evenly over the run.
pub fn poisoned(run_id: &str, orders: usize, poison: usize) -> BTreeSet<String> {
    let poison = poison.min(orders);
    (0..poison)
        .map(|i| order_id(run_id, i * orders / poison + orders / (2 * poison)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_data_directory_keeps_its_bus_namespace_until_it_is_reset() {
        let temp = tempfile::tempdir().expect("temporary directory");
        let dir = temp.path().join("demo");
        prepare(&dir, false).await.expect("new directory");
        let (first, new) = bus_namespace(&dir).expect("namespace");
        assert!(new, "a new directory gets a new namespace");
        assert!(first.starts_with("demo-"), "{first}");
        let (again, new) = bus_namespace(&dir).expect("namespace");
        assert_eq!((again.as_str(), new), (first.as_str(), false));

        // A store in the directory makes the next prepare a reset, which drops the namespace.
        let store =
            SqliteEventStore::open(dir.join(STORE_FILE), SqliteOptions::default()).expect("store");
        store.close().await.expect("close");
        prepare(&dir, true).await.expect("reset");
        let (after_reset, new) = bus_namespace(&dir).expect("namespace");
        assert!(new, "a reset directory gets a new namespace");
        assert_ne!(after_reset, first);
    }

    #[test]
    fn a_namespace_file_with_an_unusable_name_is_refused_with_the_fix() {
        let temp = tempfile::tempdir().expect("temporary directory");
        std::fs::write(temp.path().join(BUS_NAMESPACE_FILE), "a.b c\n").expect("write");
        let error = bus_namespace(temp.path()).expect_err("bad namespace");
        assert!(error.to_string().contains("--reset"), "{error}");
    }
}
