//! Batch placement of a whole workload, in order, respecting capacity and overlap across
//! the cells placed so far.
//!
//! Cells are solved `batch_window` at a time, each on its own thread and against the
//! same occupancy, then committed in workload order. A cell whose answer clashes with one
//! committed before it in the window (a server filled up, a shared quorum) is solved again
//! on the updated occupancy. What a cell sees depends only on the workload and the window,
//! never on thread timing, so batches are deterministic.
//!
//! A cell placed early did not see the cells placed after it fill the zone, so the batch
//! ends with a repair: every placed cell that is not single-failure safe is placed again,
//! alone, on the final occupancy (its own nodes taken out, as if it were new), and the new
//! choice is kept when it is safe and keeps every rule; else the cell stays where it was.
//! Repeated, in workload order, until a round repairs nothing (at most
//! [`REPAIR_ROUNDS`]): a cell still unsafe then has no safe choice on the final state.

use std::sync::{Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use topology::{CellSpec, FailureModel, Inventory, Placement};

use super::{CellSlot, Decision, Occupancy, PlaceOptions, Placer};
use crate::Error;

/// Most rounds of the final repair. A round after one that repaired a cell retries the
/// cells still unsafe, since the repaired cells left servers that may now fit them (the
/// dense zone of the tests, 600 cells on 72 hosts: 13 cells repaired by the first round,
/// 2 more by the next ones). Every round but the last repairs a cell, so the rounds end
/// well before this bound in practice.
pub const REPAIR_ROUNDS: usize = 8;

/// What a batch did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Placed cells, in workload order (with the nodes the final repair gave them).
    pub placements: Vec<Placement>,
    /// Cells that could not be placed, with why.
    pub failed: Vec<(String, Error)>,
    /// Placed cells that are not single-failure safe at the end of the batch:
    /// `unsafe_ids.len()`.
    pub unsafe_cells: usize,
    /// Ids of the placed cells that are not single-failure safe at the end, in workload
    /// order: no choice on the final state makes them safe (a lone re-placement of each,
    /// its own nodes taken out of the occupancy, found none in the final repair's last
    /// round; only if all [`REPAIR_ROUNDS`] rounds repaired some cell may one of them have
    /// a safe choice left).
    pub unsafe_ids: Vec<String>,
    /// Cells that the final repair made single-failure safe (placed unsafe while the zone
    /// filled, then placed again alone on the final occupancy).
    pub repaired: usize,
    /// Cells solved again because an earlier cell of their window took what they chose.
    pub resolved: usize,
    /// Wall-clock time of the whole batch, the final repair included.
    pub elapsed: Duration,
    /// Part of `elapsed` spent in the final repair.
    pub repair_elapsed: Duration,
}

/// Places `cells` one after the other on top of `occ` (which records them).
/// Once `options.stop` is set it ends after the window under way, without the final
/// repair: the cells after it are neither placed nor failed.
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
        unsafe_ids: Vec::new(),
        repaired: 0,
        resolved: 0,
        elapsed: Duration::ZERO,
        repair_elapsed: Duration::ZERO,
    };
    let mut placer = Placer::new(inv, model, options.clone()).lean();
    // The cells committed since the answers being committed were solved.
    let mut since: Vec<CellSlot> = Vec::new();
    // Each placement's slot, size and safety, for the final repair.
    let mut placed: Vec<Placed> = Vec::with_capacity(cells.len());
    let commit = |outcome: &mut BatchOutcome,
                  occ: &mut Occupancy,
                  cell: &CellSpec,
                  answer: Result<Decision, Error>,
                  placer: &mut Placer<'_>,
                  since: &mut Vec<CellSlot>,
                  placed: &mut Vec<Placed>| {
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
                let slot = occ.insert(&decision.nodes);
                since.push(slot);
                placed.push(Placed {
                    slot,
                    size: cell.size,
                    safe: decision.explanation.single_failure_safe,
                });
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
            if options.stop.is_set() {
                break;
            }
            let answer = placer.place(occ, &cell.clients, cell.size);
            since.clear();
            commit(
                &mut outcome,
                occ,
                cell,
                answer,
                &mut placer,
                &mut since,
                &mut placed,
            );
            progress(done + 1);
        }
        if !options.stop.is_set() {
            repair(inv, occ, &mut placer, &mut outcome, &mut placed);
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
            if options.stop.is_set() {
                break;
            }
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
                    &mut placed,
                );
            }
            progress((at + window).min(cells.len()));
        }
        *window_start.lock().expect("not poisoned") = usize::MAX;
        go.wait();
    });
    *occ = shared.into_inner().expect("not poisoned");
    if !options.stop.is_set() {
        repair(inv, occ, &mut placer, &mut outcome, &mut placed);
    }
    outcome.elapsed = start.elapsed();
    outcome
}

/// A committed cell, beside its [`Placement`].
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// Its entry in the occupancy.
    slot: CellSlot,
    /// Its node count.
    size: usize,
    /// Single-failure safe.
    safe: bool,
}

/// The final repair: every placement not single-failure safe (`placed`, in the order of
/// `outcome.placements`) is placed again alone on the final occupancy, its own slot taken
/// out, and moves when the new choice is safe and keeps every rule (capacity, colour,
/// overlap, balance); else its old nodes go back. Rounds in workload order until one
/// repairs nothing. Sets `repaired`, `unsafe_cells`, `unsafe_ids` and `repair_elapsed`;
/// the slots stay valid (the slot taken out is the one given back).
fn repair(
    inv: &Inventory,
    occ: &mut Occupancy,
    placer: &mut Placer<'_>,
    outcome: &mut BatchOutcome,
    placed: &mut [Placed],
) {
    let start = Instant::now();
    debug_assert_eq!(placed.len(), outcome.placements.len());
    for _ in 0..REPAIR_ROUNDS {
        let mut fixed = 0;
        for (cell, placement) in placed.iter_mut().zip(&mut outcome.placements) {
            if cell.safe {
                continue;
            }
            occ.remove(cell.slot);
            let answer = placer.place(occ, &placement.clients, cell.size);
            if let Ok(d) = answer {
                if d.explanation.single_failure_safe
                    && occ.violations(inv, &d.nodes, None).is_empty()
                    && placer.within_balance(occ, &d, &[])
                {
                    cell.safe = true;
                    fixed += 1;
                    placement.nodes = d.nodes;
                }
            }
            let back = occ.insert(&placement.nodes);
            debug_assert_eq!(back, cell.slot, "the slot just freed is the one reused");
            cell.slot = back;
        }
        outcome.repaired += fixed;
        if fixed == 0 {
            break;
        }
    }
    outcome.unsafe_ids = placed
        .iter()
        .zip(&outcome.placements)
        .filter(|(cell, _)| !cell.safe)
        .map(|(_, p)| p.cell_id.clone())
        .collect();
    outcome.unsafe_cells = outcome.unsafe_ids.len();
    outcome.repair_elapsed = start.elapsed();
}
