//! Risk evaluation and fleet reports over a validated inventory; pure functions, no IO.
//!
//! [`risk`] computes one cell's exact risk; [`report`] the fleet report of a placement set
//! (blast radius, risk distribution, load, quorum sharing).

pub mod report;
pub mod risk;

pub use report::{fleet_report, FleetReport, ReportOptions};
pub use risk::{CellRisk, CellShape, RiskEvaluator};

/// The one error type of the optimizer crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cell '{cell}': {message}")]
    InvalidCell { cell: String, message: String },
}
