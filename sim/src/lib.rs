//! A zone's years in a minute: a deterministic discrete-event simulation of failures and
//! repairs on a virtual clock ([`trace`]), the cells judged exactly by the contract's rules
//! at every event ([`world`]), and what the cells lived through ([`outcome`]): outage
//! events and cell-hours unavailable beside the analytic expectation of the exact risk,
//! the time from each failure until its cells are whole again, the peaks.
//!
//! Pure: values in, values out. The time is the trace's; nothing here reads a clock, a file
//! or a random source other than the seeded streams.

pub mod outcome;
pub mod trace;
pub mod world;

pub use outcome::{Outcome, Summary};
pub use trace::{RepairTimes, Trace, TraceParams, Transition};
pub use world::{Standing, World};

use optimizer::report::RiskParts;
use topology::failure::HOURS_PER_YEAR;
use topology::{Inventory, Placement};

/// What one run simulates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Simulated years.
    pub years: f64,
    /// The failure trace's seed, stress and repair times.
    pub trace: TraceParams,
}

/// Simulates `placements` on `inv` for `params.years` with nothing moving (the static
/// policy): every transition of the trace applied, every touched cell judged. `risks` are
/// the cells' exact risks on the export (in the placements' order), for the expectation.
pub fn simulate(
    inv: &Inventory,
    placements: &[Placement],
    risks: &[RiskParts],
    params: &Params,
) -> Outcome {
    assert_eq!(placements.len(), risks.len(), "one risk per placement");
    let end_h = params.years * HOURS_PER_YEAR;
    let mut world = World::new(inv, placements);
    let mut outcome = Outcome::start(&world, risks, params);
    for t in Trace::new(inv, &params.trace) {
        if t.at_h >= end_h {
            break;
        }
        let touched = world.transition(t.element, t.fails);
        outcome.record(&world, &t, &touched);
    }
    outcome.finish(&world, end_h);
    outcome
}

#[cfg(test)]
mod tests;
