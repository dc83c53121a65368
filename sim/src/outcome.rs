//! What the cells lived through, kept as the simulation goes: every transition's effect,
//! every outage, every cell's tally, and for each transition that left cells impaired
//! (not whole) the time until the last of them was whole again; and at the end the
//! summary beside the analytic expectation of the exact risk.

use optimizer::report::RiskParts;
use topology::ElementId;

use crate::params::Params;
use crate::policy::MoveOrder;
use crate::trace::Transition;
use crate::world::{Standing, World};

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

/// Single-failure safety as the policy judged it (exactly, on the zone the failures
/// leave), when it judges.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Safety {
    /// The cells unsafe now, sorted.
    unsafe_now: Vec<u32>,
    /// Per cell: the recovery it belongs to while unsafe.
    by: Vec<Option<u32>>,
    /// Every transition that made safe cells unsafe, and when they were all safe again.
    pub recoveries: Vec<Recovery>,
    /// Cells unsafe with nothing failed.
    pub unsafe_at_start: u64,
    /// Most cells unsafe at once.
    pub peak_unsafe: u64,
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
    /// Judged by the policy, exactly: cells unsafe with nothing failed.
    pub unsafe_at_start: Option<u64>,
    /// Most cells not single-failure safe at once.
    pub peak_cells_unsafe: Option<u64>,
    /// Transitions that left safe cells unsafe.
    pub unsafe_recoveries: Option<u64>,
    /// Of those, with a cell still unsafe at the end.
    pub unsafe_unrecovered: Option<u64>,
    /// Time from such a transition until all its cells were safe again: median (hours).
    pub time_to_safe_p50_h: Option<f64>,
    /// The 99th percentile (hours).
    pub time_to_safe_p99_h: Option<f64>,
    /// The longest (hours).
    pub time_to_safe_max_h: Option<f64>,
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
    /// Safety as the policy judged it, when it judges.
    pub safety: Option<Safety>,
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
                unsafe_at_start: None,
                peak_cells_unsafe: None,
                unsafe_recoveries: None,
                unsafe_unrecovered: None,
                time_to_safe_p50_h: None,
                time_to_safe_p99_h: None,
                time_to_safe_max_h: None,
            },
            events: Vec::new(),
            outages: Vec::new(),
            cells: vec![CellTally::default(); cells.len()],
            recoveries: Vec::new(),
            moves: Vec::new(),
            safety: None,
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

    /// The policy judged `unsafe_cells` (sorted) unsafe at `now`, after transition `cause`
    /// (`None`: at the start, or after it acted): cells it made unsafe start a recovery,
    /// cells safe again end theirs.
    pub(crate) fn judge_safety(
        &mut self,
        now: f64,
        cause: Option<(ElementId, bool)>,
        unsafe_cells: &[u32],
    ) {
        let cells = self.cells.len();
        let safety = self.safety.get_or_insert_with(|| Safety {
            unsafe_now: unsafe_cells.to_vec(),
            by: vec![None; cells],
            recoveries: Vec::new(),
            unsafe_at_start: unsafe_cells.len() as u64,
            peak_unsafe: unsafe_cells.len() as u64,
        });
        let (old, new) = (std::mem::take(&mut safety.unsafe_now), unsafe_cells);
        let (mut i, mut j) = (0, 0);
        let mut recovery: Option<u32> = None;
        while i < old.len() || j < new.len() {
            let (o, n) = (old.get(i).copied(), new.get(j).copied());
            if o == n {
                i += 1;
                j += 1;
            } else if n.is_none() || o.is_some_and(|o| o < n.unwrap_or(u32::MAX)) {
                // Safe again.
                let c = o.expect("one side has a cell");
                i += 1;
                if let Some(r) = safety.by[c as usize].take() {
                    let rec = &mut safety.recoveries[r as usize];
                    rec.open -= 1;
                    if rec.open == 0 {
                        rec.took_h = Some(now - rec.at_h);
                    }
                }
            } else {
                // Newly unsafe: the transition's, if one caused it.
                let c = n.expect("one side has a cell");
                j += 1;
                if let Some((element, fails)) = cause {
                    let r = *recovery.get_or_insert_with(|| {
                        safety.recoveries.push(Recovery {
                            at_h: now,
                            element,
                            fails,
                            cells: 0,
                            took_h: None,
                            open: 0,
                        });
                        (safety.recoveries.len() - 1) as u32
                    });
                    let rec = &mut safety.recoveries[r as usize];
                    rec.cells += 1;
                    rec.open += 1;
                    safety.by[c as usize] = Some(r);
                }
            }
        }
        safety.unsafe_now = new.to_vec();
        safety.peak_unsafe = safety.peak_unsafe.max(new.len() as u64);
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
        if let Some(safety) = &self.safety {
            s.unsafe_at_start = Some(safety.unsafe_at_start);
            s.peak_cells_unsafe = Some(safety.peak_unsafe);
            s.unsafe_recoveries = Some(safety.recoveries.len() as u64);
            s.unsafe_unrecovered = Some(
                safety
                    .recoveries
                    .iter()
                    .filter(|r| r.took_h.is_none())
                    .count() as u64,
            );
            let mut took: Vec<f64> = safety.recoveries.iter().filter_map(|r| r.took_h).collect();
            took.sort_by(f64::total_cmp);
            s.time_to_safe_p50_h = Some(nearest_rank(&took, 0.50));
            s.time_to_safe_p99_h = Some(nearest_rank(&took, 0.99));
            s.time_to_safe_max_h = Some(took.last().copied().unwrap_or(0.0));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{RepairTimes, TraceParams};

    #[test]
    fn a_failure_is_safe_again_when_the_last_cell_it_made_unsafe_is() {
        let inv = crate::tests::tiny();
        let table =
            topology::ingest::read_table(&fixtures::tiny_dir().join("placements.csv")).unwrap();
        let placements = topology::workload::parse_placements(&table, &inv).unwrap();
        let world = World::new(&inv, &placements);
        let risks = vec![
            RiskParts {
                down: false,
                single: 0.0,
                pair: 0.0
            };
            placements.len()
        ];
        let params = Params {
            years: 1.0,
            trace: TraceParams {
                seed: 1,
                stress: 1.0,
                repair: RepairTimes::Fixed,
            },
            move_h: 0.0,
        };
        let mut o = Outcome::start(&world, &risks, &params, "test");
        let (e, f) = (ElementId(3), ElementId(4));
        o.judge_safety(0.0, None, &[2]);
        // e makes cells 0 and 1 unsafe; f makes nothing new (1 already is); a move at 5 h
        // makes 0 safe, the repair of e at 9 h makes 1 safe: e's cells are safe after 8 h.
        o.judge_safety(1.0, Some((e, true)), &[0, 1, 2]);
        o.judge_safety(2.0, Some((f, true)), &[0, 1, 2]);
        o.judge_safety(5.0, None, &[1, 2]);
        o.judge_safety(9.0, Some((e, false)), &[2]);
        // f makes 0 unsafe and nothing makes it safe again.
        o.judge_safety(10.0, Some((f, false)), &[0, 2]);
        o.finish(&world, 20.0);
        let safety = o.safety.as_ref().unwrap();
        let took: Vec<_> = safety
            .recoveries
            .iter()
            .map(|r| (r.element, r.cells, r.took_h))
            .collect();
        assert_eq!(took, vec![(e, 2, Some(8.0)), (f, 1, None)]);
        let s = &o.summary;
        assert_eq!((s.unsafe_at_start, s.peak_cells_unsafe), (Some(1), Some(3)));
        assert_eq!(
            (s.unsafe_recoveries, s.unsafe_unrecovered),
            (Some(2), Some(1))
        );
        assert_eq!(s.time_to_safe_max_h, Some(8.0));
    }
}
