//! Batch placement of a whole workload, in order, respecting capacity and overlap across
//! the cells placed so far.
//!
//! Cells are solved `batch_window` at a time, each on its own thread and against the
//! same occupancy, then committed in workload order. A cell whose answer clashes with one
//! committed before it in the window (a server filled up, a shared quorum) is solved again
//! on the updated occupancy. What a cell sees depends only on the workload and the window,
//! never on thread timing, so batches are deterministic.

use std::sync::{Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use topology::{CellSpec, FailureModel, Inventory, Placement};

use super::{CellSlot, Decision, Occupancy, PlaceOptions, Placer};
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
    /// Cells solved again because an earlier cell of their window took what they chose.
    pub resolved: usize,
    /// Wall-clock time of the whole batch.
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
    place_batch_with_progress(inv, model, cells, occ, options, &mut |_| {})
}

/// [`place_batch`], calling `progress` with the number of cells done (placed or not) each
/// time more are committed, in order.
pub fn place_batch_with_progress(
    inv: &Inventory,
    model: &FailureModel,
    cells: &[CellSpec],
    occ: &mut Occupancy,
    options: &PlaceOptions,
    progress: &mut dyn FnMut(usize),
) -> BatchOutcome {
    let start = Instant::now();
    let window = options.batch_window.max(1);
    let mut outcome = BatchOutcome {
        placements: Vec::with_capacity(cells.len()),
        failed: Vec::new(),
        unsafe_cells: 0,
        resolved: 0,
        elapsed: Duration::ZERO,
    };
    let mut placer = Placer::new(inv, model, options.clone()).lean();
    // The cells committed since the answers being committed were solved.
    let mut since: Vec<CellSlot> = Vec::new();
    let commit = |outcome: &mut BatchOutcome,
                  occ: &mut Occupancy,
                  cell: &CellSpec,
                  answer: Result<Decision, Error>,
                  placer: &mut Placer<'_>,
                  since: &mut Vec<CellSlot>| {
        // A speculative answer stands only if it still keeps every rule, the balance
        // ceiling included (cells of one window must not all pile onto one server). It
        // kept them against every cell committed before its window: only the window's
        // earlier cells can break them now.
        let answer = match answer {
            Ok(d)
                if !occ.violations_since(inv, &d.nodes, since).is_empty()
                    || !placer.within_balance(occ, &d, &[]) =>
            {
                outcome.resolved += 1;
                placer.place(occ, &cell.clients, cell.size)
            }
            other => other,
        };
        match answer {
            Ok(decision) => {
                since.push(occ.insert(&decision.nodes));
                outcome.unsafe_cells += usize::from(!decision.explanation.single_failure_safe);
                outcome.placements.push(Placement {
                    cell_id: cell.cell_id.clone(),
                    clients: cell.clients.clone(),
                    nodes: decision.nodes,
                });
            }
            Err(e) => outcome.failed.push((cell.cell_id.clone(), e)),
        }
    };

    if window == 1 || cells.len() < 2 {
        for (done, cell) in cells.iter().enumerate() {
            let answer = placer.place(occ, &cell.clients, cell.size);
            since.clear();
            commit(&mut outcome, occ, cell, answer, &mut placer, &mut since);
            progress(done + 1);
        }
        outcome.elapsed = start.elapsed();
        return outcome;
    }

    // Workers share the window's cells by stride; the calling thread commits. Two
    // barriers per window: workers solve between the first and the second, the committer
    // writes after it. The thread count changes only the speed, never the answers.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(window);
    let shared = RwLock::new(std::mem::take(occ));
    let answers: Vec<Mutex<Option<Result<Decision, Error>>>> =
        (0..window).map(|_| Mutex::new(None)).collect();
    let window_start = Mutex::new(0usize);
    let go = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (shared, answers, window_start, go, done) =
                (&shared, &answers, &window_start, &go, &done);
            let options = options.clone();
            scope.spawn(move || {
                let mut placer = Placer::new(inv, model, options).lean();
                loop {
                    go.wait();
                    let at = *window_start.lock().expect("not poisoned");
                    if at == usize::MAX {
                        break;
                    }
                    let occ = shared.read().expect("not poisoned");
                    for slot in (worker..window).step_by(threads) {
                        if let Some(cell) = cells.get(at + slot) {
                            let answer = placer.place(&occ, &cell.clients, cell.size);
                            *answers[slot].lock().expect("not poisoned") = Some(answer);
                        }
                    }
                    drop(occ);
                    done.wait();
                }
            });
        }
        for at in (0..cells.len()).step_by(window) {
            *window_start.lock().expect("not poisoned") = at;
            go.wait();
            done.wait();
            let mut occ = shared.write().expect("not poisoned");
            since.clear();
            for (slot, cell) in cells[at..].iter().take(window).enumerate() {
                let answer = answers[slot]
                    .lock()
                    .expect("not poisoned")
                    .take()
                    .expect("every slot of the window answers");
                commit(
                    &mut outcome,
                    &mut occ,
                    cell,
                    answer,
                    &mut placer,
                    &mut since,
                );
            }
            progress((at + window).min(cells.len()));
        }
        *window_start.lock().expect("not poisoned") = usize::MAX;
        go.wait();
    });
    *occ = shared.into_inner().expect("not poisoned");
    outcome.elapsed = start.elapsed();
    outcome
}
