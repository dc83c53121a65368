//! What moves nodes during a simulation: a [`Policy`] is told every failure and repair as
//! it happens and asked to act when it wants to; the moves it starts take `move_h` each
//! and change the cell when they end. [`Static`] never moves; the autopilot's policy (the
//! service's own control loop on the simulation's clock) lives with the autopilot.

use crate::trace::Transition;

/// One node of one cell moved: the cell leaves `out` for `into` when the move ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveOrder {
    /// The cell (index in the placements).
    pub cell: u32,
    /// The node leaving (a server index).
    pub out: u32,
    /// The server taking its place.
    pub into: u32,
    /// Why (`out`, `failed`, `unsafe`, `drain`, `improve`).
    pub reason: String,
}

/// A control policy on the simulation's clock (hours since the start).
pub trait Policy {
    /// Its name in reports.
    fn name(&self) -> &'static str;

    /// Element `t.element` failed or came back at `t.at_h`.
    fn observe(&mut self, t: &Transition) -> Result<(), String>;

    /// When it wants to act next, if before another transition.
    fn wake_h(&self) -> Option<f64>;

    /// Acts at `now_h`: the moves it starts now.
    fn act(&mut self, now_h: f64) -> Result<Vec<MoveOrder>, String>;

    /// The cells not single-failure safe now as the policy judges them (exactly, on the
    /// zone the failures leave), sorted; `None` when it does not judge.
    fn unsafe_cells(&self) -> Option<&[u32]> {
        None
    }
}

/// Nothing moves: what the placement alone is worth.
#[derive(Debug, Clone, Copy, Default)]
pub struct Static;

impl Policy for Static {
    fn name(&self) -> &'static str {
        "static"
    }

    fn observe(&mut self, _: &Transition) -> Result<(), String> {
        Ok(())
    }

    fn wake_h(&self) -> Option<f64> {
        None
    }

    fn act(&mut self, _: f64) -> Result<Vec<MoveOrder>, String> {
        Ok(Vec::new())
    }
}
