//! Reading inventories, workloads and placements from disk, with every problem reported.

use std::path::Path;

use topology::ingest::read_table;
use topology::{CellSpec, FailureModel, Inventory, Placement, Problem};

/// A loaded inventory with its precomputed failure model.
#[derive(Debug)]
pub struct Loaded {
    pub inventory: Inventory,
    pub model: FailureModel,
    pub warnings: Vec<Problem>,
}

/// Reads and validates an export directory. The error lists every problem.
pub fn inventory(dir: &Path) -> Result<Loaded, topology::Error> {
    let raw = topology::ingest::read_dir(dir)?;
    let (inventory, warnings) = Inventory::from_raw(&raw)?;
    let model = FailureModel::new(&inventory);
    Ok(Loaded {
        inventory,
        model,
        warnings,
    })
}

/// The error of a table read from `path`, its problems naming that file.
fn invalid(path: &Path) -> impl Fn(topology::Report) -> topology::Error + '_ {
    move |mut report| {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
        report.locate(|_| file.clone());
        topology::Error::Invalid(report)
    }
}

/// Reads a placement export (`placements.csv` or `.parquet`).
pub fn placements(path: &Path, inventory: &Inventory) -> Result<Vec<Placement>, topology::Error> {
    let table = read_table(path)?;
    topology::workload::parse_placements(&table, inventory).map_err(invalid(path))
}

/// Reads a cell workload (`cells.csv` or `.parquet`).
pub fn cells(path: &Path, inventory: &Inventory) -> Result<Vec<CellSpec>, topology::Error> {
    let table = read_table(path)?;
    topology::workload::parse_cells(&table, inventory).map_err(invalid(path))
}
