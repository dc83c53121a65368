//! A zone's years in a minute: a deterministic discrete-event simulation of failures and
//! repairs on a virtual clock ([`trace`]), the cells judged exactly by the contract's rules
//! at every event ([`world`]), and what the cells lived through ([`outcome`]): outage
//! events and cell-hours unavailable beside the analytic expectation of the exact risk,
//! the time from each failure until its cells are whole again, the peaks.
//!
//! Pure: values in, values out. The time is the trace's; nothing here reads a clock, a file
//! or a random source other than the seeded streams.

pub mod outcome;
mod params;
pub mod policy;
pub mod trace;
pub mod world;

pub use outcome::{Outcome, Summary};
pub use params::Params;
pub use policy::{MoveOrder, Policy, Static};
pub use trace::{RepairTimes, Trace, TraceParams, Transition};
pub use world::{Standing, World};

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use optimizer::report::RiskParts;
use topology::failure::HOURS_PER_YEAR;
use topology::{Inventory, Placement};

/// What went wrong in a run: its policy failed (the run stops there).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy could not observe or act.
    #[error("the {policy} policy failed at hour {at_h:.3}: {message}")]
    Policy {
        /// The policy's name.
        policy: &'static str,
        /// When (hours since the start).
        at_h: f64,
        /// What it said.
        message: String,
    },
    /// A move names a cell or a node the cell does not have.
    #[error("the {policy} policy moved cell {cell} off server {out}, which is not its node")]
    BadMove {
        /// The policy's name.
        policy: &'static str,
        /// The cell index.
        cell: u32,
        /// The server index.
        out: u32,
    },
}

/// Simulates `placements` on `inv` for `params.years` with nothing moving (the static
/// policy). `risks` are the cells' exact risks on the export (in the placements' order),
/// for the expectation.
pub fn simulate(
    inv: &Inventory,
    placements: &[Placement],
    risks: &[RiskParts],
    params: &Params,
) -> Outcome {
    simulate_with(inv, placements, risks, params, &mut Static)
        .expect("the static policy never fails")
}

/// Simulates `placements` under `policy`: the trace's transitions, the moves the policy
/// starts when it acts (each ending `params.move_h` later), in time order (at one instant:
/// transitions, then moves ending, then the policy), until `params.years`.
pub fn simulate_with(
    inv: &Inventory,
    placements: &[Placement],
    risks: &[RiskParts],
    params: &Params,
    policy: &mut dyn Policy,
) -> Result<Outcome, Error> {
    assert_eq!(placements.len(), risks.len(), "one risk per placement");
    let end_h = params.years * HOURS_PER_YEAR;
    let mut world = World::new(inv, placements);
    let mut outcome = Outcome::start(&world, risks, params, policy.name());
    if let Some(cells) = policy.unsafe_cells() {
        outcome.judge_safety(0.0, None, cells);
    }
    let mut trace = Trace::new(inv, &params.trace).peekable();
    let mut moving: BinaryHeap<Reverse<Underway>> = BinaryHeap::new();
    let mut started = 0u64;
    // Acts at one instant without time moving on: a policy that never waits.
    let (mut last_act, mut acts_at_once) = (f64::NAN, 0u32);
    let name = policy.name();
    let fail = |at_h: f64, message: String| Error::Policy {
        policy: name,
        at_h,
        message,
    };
    loop {
        let next_t = trace.peek().map_or(f64::INFINITY, |t| t.at_h);
        let next_move = moving.peek().map_or(f64::INFINITY, |m| m.0.ends);
        let next_act = policy.wake_h().unwrap_or(f64::INFINITY);
        let now = next_t.min(next_move).min(next_act);
        if now >= end_h {
            break;
        }
        if next_t <= now {
            let t = trace.next().expect("peeked");
            let touched = world.transition(t.element, t.fails);
            outcome.record(&world, &t, &touched);
            policy.observe(&t).map_err(|m| fail(t.at_h, m))?;
            if let Some(cells) = policy.unsafe_cells() {
                outcome.judge_safety(t.at_h, Some((t.element, t.fails)), cells);
            }
        } else if next_move <= now {
            let Reverse(Underway { order, .. }) = moving.pop().expect("peeked");
            check(&world, &order, name)?;
            let before = world.move_node(order.cell, order.out, order.into);
            outcome.record_move(&world, now, order, before);
        } else {
            if now == last_act {
                acts_at_once += 1;
                if acts_at_once > MAX_ACTS_AT_ONCE {
                    return Err(fail(
                        now,
                        format!("it asked to act {MAX_ACTS_AT_ONCE} times at one instant"),
                    ));
                }
            } else {
                (last_act, acts_at_once) = (now, 0);
            }
            let orders = policy.act(now).map_err(|m| fail(now, m))?;
            if let Some(cells) = policy.unsafe_cells() {
                outcome.judge_safety(now, None, cells);
            }
            for order in orders {
                check(&world, &order, name)?;
                moving.push(Reverse(Underway {
                    ends: now + params.move_h,
                    started,
                    order,
                }));
                started += 1;
            }
        }
    }
    outcome.finish(&world, end_h);
    Ok(outcome)
}

/// A move must take a node the cell has (when it starts, and when it ends).
fn check(world: &World<'_>, order: &MoveOrder, policy: &'static str) -> Result<(), Error> {
    match world.cells().get(order.cell as usize) {
        Some(cell) if cell.nodes.contains(&order.out) => Ok(()),
        _ => Err(Error::BadMove {
            policy,
            cell: order.cell,
            out: order.out,
        }),
    }
}

/// Most times a policy may act at one instant before the run calls it stuck.
const MAX_ACTS_AT_ONCE: u32 = 10_000;

/// A move under way, ordered by when it ends, then by when it started.
#[derive(Debug)]
struct Underway {
    ends: f64,
    started: u64,
    order: MoveOrder,
}

impl PartialEq for Underway {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Underway {}

impl PartialOrd for Underway {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Underway {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.ends
            .total_cmp(&other.ends)
            .then(self.started.cmp(&other.started))
    }
}

#[cfg(test)]
mod tests;
