//! What the cells lived through, kept as the simulation goes: every transition's effect,
//! every outage, every cell's tally, and for each transition that left cells impaired
//! (not whole) the time until the last of them was whole again; and at the end the
//! summary beside the analytic expectation of the exact risk.

use optimizer::report::RiskParts;
use topology::ElementId;

use crate::policy::MoveOrder;
use crate::trace::Transition;
use crate::world::{Standing, World};
use crate::Params;

/// One transition and what it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRow {
    /// Hours since the start.
    pub at_h: f64,
    /// The element.
    pub element: ElementId,
    /// It failed (else it came back).
    pub fails: bool,
    /// Cells judged again (a server of theirs changed state).
    pub cells_touched: u32,
    /// Cells it put out.
    pub outages_started: u32,
    /// Cells out after it.
    pub cells_out: u32,
    /// Cells impaired (not whole) after it.
    pub cells_impaired: u32,
}

/// What began an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cause {
    /// The cell was out with nothing failed.
    Start,
    /// An element failed (`true`) or came back.
    Transition(ElementId, bool),
    /// One of the cell's nodes moved.
    Move,
}

/// One node moved by the policy (when the move ended).
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRow {
    /// When it ended (hours).
    pub at_h: f64,
    /// The cell.
    pub cell: u32,
    /// The node that left.
    pub out: u32,
    /// The server that took its place.
    pub into: u32,
    /// Why the policy moved it.
    pub reason: String,
}

/// One outage of one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutageRow {
    /// The cell (index in the placements).
    pub cell: u32,
    /// When it began (hours); 0 for a cell down at the start.
    pub start_h: f64,
    /// When it ended, or the end of the run.
    pub end_h: f64,
    /// What began it.
    pub cause: Cause,
    /// Still going at the end of the run.
    pub ongoing: bool,
}

/// One cell's tally.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CellTally {
    /// Outages that began during the run.
    pub outage_events: u32,
    /// Hours out (given its clients up), the start's outage included.
    pub hours_out: f64,
}

/// A transition that left whole cells impaired, and when they were all whole again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recovery {
    /// When (hours).
    pub at_h: f64,
    /// The element.
    pub element: ElementId,
    /// It failed (else it came back).
    pub fails: bool,
    /// Cells it impaired.
    pub cells: u32,
    /// Hours until the last of them was whole again (`None`: not by the end).
    pub took_h: Option<f64>,
    /// Of those, still impaired.
    open: u32,
}

/// The run in figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Simulated years.
    pub years: f64,
    /// The trace's seed.
    pub seed: u64,
    /// The failure rates' multiplier.
    pub stress: f64,
    /// How repair times were drawn.
    pub repair: &'static str,
    /// What moved nodes.
    pub policy: &'static str,
    /// How long a move took (hours).
    pub move_h: f64,
    /// Moves made, by reason.
    pub moves: std::collections::BTreeMap<String, u64>,
    /// Cells simulated.
    pub cells: u64,
    /// Failure elements in the zone.
    pub elements: u64,
    /// Transitions simulated (failures and repairs).
    pub transitions: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Cells out with nothing failed (the contract's *down*), left out of the events and
    /// the expectation (their hours count).
    pub down_at_start: u64,
    /// Cells not whole with nothing failed.
    pub impaired_at_start: u64,
    /// Outages that began, over the cells not down at the start.
    pub outage_events: u64,
    /// The exact risk's expectation of that count: the years times the sum over those
    /// cells of `stress x single + stress^2 x pair`.
    pub expected_outage_events: f64,
    /// The standard error of `outage_events` as a compound Poisson count (the root of the
    /// sum of squares of the outages each transition began: one failure puts many cells
    /// out at once).
    pub standard_error: f64,
    /// Cell-hours out (given clients up), every cell.
    pub cell_hours_unavailable: f64,
    /// The same per 1,000 cell-years.
    pub unavailable_per_1000_cell_years: f64,
    /// Most cells out at once.
    pub peak_cells_out: u64,
    /// Most cells impaired (not whole) at once.
    pub peak_cells_impaired: u64,
    /// Transitions that impaired whole cells.
    pub recoveries: u64,
    /// Of those, with a cell still impaired at the end.
    pub unrecovered: u64,
    /// Time from such a transition until all its cells were whole again: median (hours).
    pub time_to_whole_p50_h: f64,
    /// The 99th percentile (hours).
    pub time_to_whole_p99_h: f64,
    /// The longest (hours).
    pub time_to_whole_max_h: f64,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The figures.
    pub summary: Summary,
    /// Every transition, in order.
    pub events: Vec<EventRow>,
    /// Every outage, in the order they ended (then by cell).
    pub outages: Vec<OutageRow>,
    /// Per cell, in the placements' order.
    pub cells: Vec<CellTally>,
    /// Every transition that impaired cells, in order.
    pub recoveries: Vec<Recovery>,
    /// Every move, in the order they ended.
    pub moves: Vec<MoveRow>,
    /// Per cell: the outage going on (its start and cause).
    open_outage: Vec<Option<(f64, Cause)>>,
    /// Per cell: the recovery it belongs to while impaired.
    impaired_by: Vec<Option<u32>>,
    counted: Vec<bool>,
    out_now: u64,
    impaired_now: u64,
    squares: f64,
}

impl Outcome {
    /// The tallies at hour 0, with the cells as `world` judged them.
    pub(crate) fn start(
        world: &World<'_>,
        risks: &[RiskParts],
        params: &Params,
        policy: &'static str,
    ) -> Outcome {
        let cells = world.cells();
        let k = params.trace.stress;
        let expected = params.years
            * risks
                .iter()
                .filter(|r| !r.down)
                .map(|r| k * r.single + k * k * r.pair)
                .sum::<f64>()
            // An empty sum is -0.
            + 0.0;
        let out_now = cells.iter().filter(|c| c.standing.out).count() as u64;
        let impaired_now = cells.iter().filter(|c| !c.standing.whole).count() as u64;
        Outcome {
            summary: Summary {
                years: params.years,
                seed: params.trace.seed,
                stress: k,
                repair: params.trace.repair.name(),
                policy,
                move_h: params.move_h,
                moves: Default::default(),
                cells: cells.len() as u64,
                elements: 0,
                transitions: 0,
                failures: 0,
                down_at_start: out_now,
                impaired_at_start: impaired_now,
                outage_events: 0,
                expected_outage_events: expected,
                standard_error: 0.0,
                cell_hours_unavailable: 0.0,
                unavailable_per_1000_cell_years: 0.0,
                peak_cells_out: out_now,
                peak_cells_impaired: impaired_now,
                recoveries: 0,
                unrecovered: 0,
                time_to_whole_p50_h: 0.0,
                time_to_whole_p99_h: 0.0,
                time_to_whole_max_h: 0.0,
            },
            events: Vec::new(),
            outages: Vec::new(),
            cells: vec![CellTally::default(); cells.len()],
            recoveries: Vec::new(),
            moves: Vec::new(),
            open_outage: cells
                .iter()
                .map(|c| c.standing.out.then_some((0.0, Cause::Start)))
                .collect(),
            impaired_by: vec![None; cells.len()],
            counted: risks.iter().map(|r| !r.down).collect(),
            out_now,
            impaired_now,
            squares: 0.0,
        }
    }

    /// Records transition `t`, which changed the standing of `touched` (with how each
    /// stood before).
    pub(crate) fn record(
        &mut self,
        world: &World<'_>,
        t: &Transition,
        touched: &[(u32, Standing)],
    ) {
        self.summary.transitions += 1;
        self.summary.failures += u64::from(t.fails);
        let mut started = 0u32;
        let mut recovery: Option<u32> = None;
        for &(c, before) in touched {
            let after = world.cells()[c as usize].standing;
            started += self.restand(
                c,
                before,
                after,
                t.at_h,
                Cause::Transition(t.element, t.fails),
            );
            if before.whole && !after.whole {
                let r = *recovery.get_or_insert_with(|| {
                    self.recoveries.push(Recovery {
                        at_h: t.at_h,
                        element: t.element,
                        fails: t.fails,
                        cells: 0,
                        took_h: None,
                        open: 0,
                    });
                    (self.recoveries.len() - 1) as u32
                });
                let rec = &mut self.recoveries[r as usize];
                rec.cells += 1;
                rec.open += 1;
                self.impaired_by[c as usize] = Some(r);
            }
        }
        self.summary.outage_events += u64::from(started);
        self.squares += f64::from(started) * f64::from(started);
        self.events.push(EventRow {
            at_h: t.at_h,
            element: t.element,
            fails: t.fails,
            cells_touched: touched.len() as u32,
            outages_started: started,
            cells_out: self.out_now as u32,
            cells_impaired: self.impaired_now as u32,
        });
    }

    /// Records a move of cell `c` that ended at `now` (the cell stood `before`).
    pub(crate) fn record_move(
        &mut self,
        world: &World<'_>,
        now: f64,
        order: MoveOrder,
        before: Standing,
    ) {
        let c = order.cell;
        let after = world.cells()[c as usize].standing;
        let started = self.restand(c, before, after, now, Cause::Move);
        self.summary.outage_events += u64::from(started);
        self.squares += f64::from(started);
        *self.summary.moves.entry(order.reason.clone()).or_default() += 1;
        self.moves.push(MoveRow {
            at_h: now,
            cell: c,
            out: order.out,
            into: order.into,
            reason: order.reason,
        });
    }

    /// Cell `c` went from `before` to `after` at `now`: its outage and impairment
    /// begin or end. Returns the outages begun that count (0 or 1).
    fn restand(
        &mut self,
        c: u32,
        before: Standing,
        after: Standing,
        now: f64,
        cause: Cause,
    ) -> u32 {
        let ci = c as usize;
        let mut started = 0;
        if !before.out && after.out {
            self.out_now += 1;
            self.open_outage[ci] = Some((now, cause));
            self.cells[ci].outage_events += 1;
            started = u32::from(self.counted[ci]);
        } else if before.out && !after.out {
            self.out_now -= 1;
            self.close_outage(c, now, false);
        }
        if before.whole && !after.whole {
            self.impaired_now += 1;
        } else if !before.whole && after.whole {
            self.impaired_now -= 1;
            if let Some(r) = self.impaired_by[ci].take() {
                let rec = &mut self.recoveries[r as usize];
                rec.open -= 1;
                if rec.open == 0 {
                    rec.took_h = Some(now - rec.at_h);
                }
            }
        }
        self.summary.peak_cells_out = self.summary.peak_cells_out.max(self.out_now);
        self.summary.peak_cells_impaired = self.summary.peak_cells_impaired.max(self.impaired_now);
        started
    }

    fn close_outage(&mut self, c: u32, now: f64, ongoing: bool) {
        if let Some((start_h, cause)) = self.open_outage[c as usize].take() {
            self.cells[c as usize].hours_out += now - start_h;
            self.outages.push(OutageRow {
                cell: c,
                start_h,
                end_h: now,
                cause,
                ongoing,
            });
        }
    }

    /// Closes the outages still going at `end_h` and computes the summary's figures.
    pub(crate) fn finish(&mut self, world: &World<'_>, end_h: f64) {
        for c in 0..self.open_outage.len() as u32 {
            self.close_outage(c, end_h, true);
        }
        let s = &mut self.summary;
        s.elements = world.element_count() as u64;
        s.standard_error = self.squares.sqrt();
        s.cell_hours_unavailable = self.cells.iter().map(|c| c.hours_out).sum();
        let cell_years = s.cells as f64 * s.years;
        s.unavailable_per_1000_cell_years = if cell_years > 0.0 {
            s.cell_hours_unavailable / cell_years * 1000.0
        } else {
            0.0
        };
        s.recoveries = self.recoveries.len() as u64;
        s.unrecovered = self
            .recoveries
            .iter()
            .filter(|r| r.took_h.is_none())
            .count() as u64;
        let mut took: Vec<f64> = self.recoveries.iter().filter_map(|r| r.took_h).collect();
        took.sort_by(f64::total_cmp);
        s.time_to_whole_p50_h = nearest_rank(&took, 0.50);
        s.time_to_whole_p99_h = nearest_rank(&took, 0.99);
        s.time_to_whole_max_h = took.last().copied().unwrap_or(0.0);
    }
}

/// The nearest-rank percentile `p` of sorted `values` (0 when empty).
fn nearest_rank(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (p * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
