//! What one run simulates: the years, the trace, how long a move takes.

use crate::trace::TraceParams;

/// What one run simulates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Simulated years.
    pub years: f64,
    /// The failure trace's seed, stress and repair times.
    pub trace: TraceParams,
    /// How long a move takes (hours): the new node serves, and the old one leaves, when it
    /// ends.
    pub move_h: f64,
}
