//! Inventory ingest, topology graphs and the exact failure model of cellplacer.
//!
//! Two-stage ingest: [`ingest`] reads export tables into [`raw`] records (the only IO in
//! this crate), then [`model::Inventory::from_raw`] validates them into the model.
//! [`failure`] answers who is up and who is connected under a scenario.

pub mod edit;
pub mod error;
pub mod failure;
pub mod ingest;
pub mod model;
pub mod overlay;
pub mod raw;
mod select;
pub mod workload;

#[cfg(test)]
mod testing;

pub use error::{Error, Problem, Report};
pub use failure::{Changed, FailureModel};
pub use model::{ElementId, ElementKind, Inventory};
pub use workload::{CellSpec, Placement};
