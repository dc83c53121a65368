//! The edge of cellplacer: files, JSON and HTTP. Library half of the `cellplacer` binary.
//!
//! [`load`] reads inventories and placement files from disk; [`view`] turns reports of the
//! pure crates into JSON and human-readable text. The service: [`store`] is the durable
//! ledger, [`journal`] group-commits to it, [`zone`] holds the inventory versions,
//! [`metrics`] the Prometheus counters.

pub mod error;
pub mod journal;
pub mod load;
pub mod metrics;
pub mod store;
pub mod view;
pub mod zone;

pub use error::Error;
