//! What the service's unit tests share: a configuration on a temporary directory, and a
//! service on a generated zone with the zone's workload to place.

use std::path::Path;
use std::sync::Arc;

use store::{SqliteStore, Store};
use topology::raw::RawTable;

use super::{Config, Service};
use crate::dto::PlaceRequest;
use crate::zone::Source;

/// One solver thread, the autopilot off, data under `dir`.
pub(crate) fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        workers: 1,
        queue: 64,
        placer: crate::engine::PlaceOptions::default(),
        inventory_root: None,
        autopilot: crate::dto::AutopilotUpdate {
            enabled: Some(false),
            ..Default::default()
        },
        heavy: Default::default(),
    }
}

/// A service on the `small` zone of seed 4 with nothing failed or draining, on a SQLite
/// ledger, and the zone's workload of `cells` cells (not placed).
pub(crate) struct SmallZone {
    /// Holds the zone and the ledger.
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) service: Arc<Service>,
    workload: RawTable,
}

impl SmallZone {
    pub(crate) async fn new(cells: usize) -> SmallZone {
        let dir = tempfile::tempdir().unwrap();
        let params = fixtures::ZoneParams {
            cells,
            failed_fraction: 0.0,
            draining_fraction: 0.0,
            ..fixtures::ZoneParams::small(4)
        };
        let mut raw = fixtures::generate(&params);
        let workload = raw.tables.remove("cells").unwrap();
        let zone = dir.path().join("zone");
        topology::ingest::write_dir(&zone, &raw, topology::ingest::Format::Csv).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("ledger.db"))
                .await
                .unwrap(),
        );
        let service = Service::open(store.clone(), Some(Source::Dir(zone)), config(dir.path()))
            .await
            .unwrap();
        SmallZone {
            _dir: dir,
            store,
            service,
            workload,
        }
    }

    /// How many cells the workload has.
    pub(crate) fn cells(&self) -> usize {
        self.workload.rows.len()
    }

    /// The placement of the workload's cell `i`, as `c{i:02}`.
    pub(crate) fn request(&self, i: usize) -> PlaceRequest {
        let clients = self.workload.column_index("clients").unwrap();
        PlaceRequest {
            cell_id: format!("c{i:02}"),
            clients: self.workload.rows[i][clients]
                .as_deref()
                .unwrap()
                .split(';')
                .map(str::to_owned)
                .collect(),
            size: None,
        }
    }
}
