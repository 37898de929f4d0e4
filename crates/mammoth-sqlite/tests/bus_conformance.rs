//! The bus conformance suite against the embedded bus: each bus in its own temporary file.

use mammoth_sqlite::{SqliteBus, SqliteBusOptions};
use mammoth_testkit::{BusFactory, bus_conformance_tests};
use tempfile::TempDir;

/// Fresh buses in temporary directories that live as long as the factory.
struct Embedded {
    dirs: std::sync::Mutex<Vec<TempDir>>,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dirs: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl BusFactory for Embedded {
    type Bus = SqliteBus;

    async fn fresh(&self) -> SqliteBus {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = SqliteBus::open(dir.path().join("bus.db"), SqliteBusOptions::default())
            .expect("open a fresh bus");
        self.dirs.lock().expect("dirs").push(dir);
        bus
    }

    async fn reopen(&self, bus: SqliteBus) -> Option<SqliteBus> {
        let path = bus.path().to_path_buf();
        drop(bus);
        Some(SqliteBus::open(path, SqliteBusOptions::default()).expect("reopen"))
    }
}

bus_conformance_tests!(Embedded::new());
