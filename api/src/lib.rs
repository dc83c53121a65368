//! The edge of cellplacer: files, JSON and HTTP. Library half of the `cellplacer` binary.
//!
//! [`load`] reads inventories and placement files from disk; [`view`] turns reports of the
//! pure crates into JSON and human-readable text.
//!
//! The service (`cellplacer serve`): [`http`] is the API ([`app`] builds the router),
//! [`service`] the cell runtime behind it, [`solver`] the threads that run the placement
//! engine, [`ledger`] the in-memory state, [`journal`] its group-committed writes to the
//! durable [`store`], [`zone`] the inventory versions, [`metrics`] the Prometheus counters,
//! [`serve`] start-up and graceful shutdown, [`conn`] the connections (cap, timeouts, the
//! JSON shape of hyper's own errors), [`client`] a small HTTP client for the load
//! generator and the tests.

pub mod auth;
pub mod client;
pub mod conn;
pub mod dto;
pub mod engine;
pub mod error;
pub mod http;
pub mod import;
pub mod journal;
pub mod ledger;
pub mod load;
pub mod metrics;
pub mod reports;
pub mod serve;
pub mod service;
pub mod solver;
pub mod store;
pub mod view;
pub mod whatif;
pub mod zone;

pub use error::Error;
pub use http::{app, AppState, Limits};
