//! Risk evaluation and fleet reports over a validated inventory; pure functions, no IO.
//!
//! [`risk`] computes one cell's exact risk; [`report`] the fleet report of a placement set
//! (blast radius, risk distribution, load, quorum sharing); [`mip`] solves the exact 0/1
//! programs of placement with HiGHS or microlp.

pub mod mip;
pub mod place;
pub mod rebalance;
pub mod report;
pub mod risk;
mod stop;
pub mod whatif;

pub use report::{fleet_report, FleetReport, ReportOptions};
pub use risk::{CellRisk, CellShape, RiskEvaluator, StateEvent};
pub use stop::Stop;

use std::time::Duration;

/// The one error type of the optimizer crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cell the optimizer cannot take as given.
    #[error("cell '{cell}': {message}")]
    InvalidCell {
        /// The cell's id.
        cell: String,
        /// What is wrong with it.
        message: String,
    },
    /// A 0/1 program that no solver can take (lengths, indices, non-finite numbers).
    #[error("invalid 0/1 program: {message}")]
    InvalidProgram {
        /// What is wrong with it.
        message: String,
    },
    /// A MIP backend failed (not an infeasible program: that is a solution status).
    #[error("{backend} solver: {message}")]
    Solver {
        /// The backend's name (`highs`, `microlp`).
        backend: &'static str,
        /// What it said.
        message: String,
    },
    /// The time limit ran out before the backend found any feasible point.
    #[error("{backend} solver: time limit of {time_limit:?} reached before any feasible solution")]
    SolverTimeLimit {
        /// The backend's name (`highs`, `microlp`).
        backend: &'static str,
        /// The limit that ran out.
        time_limit: Duration,
    },
    /// A request the placer cannot take: names the field.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// The request field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No placement satisfies the hard rules: an expected outcome, with the reason and the
    /// rules that bound.
    #[error("no feasible placement: {reason}")]
    NoFeasiblePlacement {
        /// What was searched and why nothing fits.
        reason: String,
        /// The rules that left no choice.
        binding: Vec<place::Binding>,
    },
    /// A MIP backend name that is neither `highs` nor `microlp`.
    #[error("unknown solver '{name}' (expected highs or microlp)")]
    UnknownSolver {
        /// The name given.
        name: String,
    },
}
