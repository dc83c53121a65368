//! The cell runtime of cellplacer: everything the service decides, apart from HTTP, SQL
//! and the process.
//!
//! [`service`] is the runtime itself (place, replace, move, plans and their executor,
//! re-evaluation on a new inventory, what-if, import, the fleet report) over an injected
//! [`store::Store`] and [`clock::Clock`], the placement engine ([`engine`]) on solver threads;
//! `ledger` (private) the in-memory state; [`zone`] the inventory versions; [`metrics`] the
//! service's counters. Shared with the command-line tool: [`load`] (inventories and
//! placement files from disk), [`view`] and [`dto`] (the answers, serde values and text),
//! [`reports`] (typed Parquet tables), [`whatif`] and [`import`]; [`simulate`] runs the
//! service's autopilot on a simulation's virtual clock.

pub mod clock;
pub mod dto;
pub mod engine;
mod error;
pub mod import;
mod ledger;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod overlay;
pub mod reports;
pub mod service;
pub mod simulate;
pub mod view;
pub mod whatif;
pub mod zone;

pub use error::Error;
