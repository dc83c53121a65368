//! The placement engine as the service uses it: `optimizer::place`, re-exported in one
//! place so that the rest of the crate names a single seam.

pub use optimizer::place::{
    Binding, CellSlot, Decision, DomainCount, Explanation, Layout, Move, MovePath, Occupancy,
    PlaceOptions, Placer, Rule, SolveInfo, Solver, Violation,
};
pub use optimizer::Error as EngineError;
