//! Batch placement of a whole workload, in order, respecting capacity and overlap across
//! the cells placed so far.

use std::time::{Duration, Instant};

use topology::{CellSpec, FailureModel, Inventory, Placement};

use super::{Occupancy, PlaceOptions, Placer};
use crate::Error;

/// What a batch did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Placed cells, in workload order.
    pub placements: Vec<Placement>,
    /// Cells that could not be placed, with why.
    pub failed: Vec<(String, Error)>,
    /// Placed cells that are not single-failure safe (no safe choice was found).
    pub unsafe_cells: usize,
    pub elapsed: Duration,
}

/// Places `cells` one after the other on top of `occ` (which records them).
pub fn place_batch(
    inv: &Inventory,
    model: &FailureModel,
    cells: &[CellSpec],
    occ: &mut Occupancy,
    options: &PlaceOptions,
) -> BatchOutcome {
    let start = Instant::now();
    let mut placer = Placer::new(inv, model, options.clone());
    let mut placements = Vec::with_capacity(cells.len());
    let mut failed = Vec::new();
    let mut unsafe_cells = 0;
    for cell in cells {
        match placer.place(occ, &cell.clients, cell.size) {
            Ok(decision) => {
                occ.insert(&decision.nodes);
                unsafe_cells += usize::from(!decision.explanation.single_failure_safe);
                placements.push(Placement {
                    cell_id: cell.cell_id.clone(),
                    clients: cell.clients.clone(),
                    nodes: decision.nodes,
                });
            }
            Err(e) => failed.push((cell.cell_id.clone(), e)),
        }
    }
    BatchOutcome {
        placements,
        failed,
        unsafe_cells,
        elapsed: start.elapsed(),
    }
}
