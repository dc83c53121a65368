//! The edge of cellplacer: files, JSON and (later) HTTP. Library half of the `cellplacer` binary.
//!
//! [`load`] reads inventories and placement files from disk; [`view`] turns reports of the
//! pure crates into JSON and human-readable text.

pub mod load;
pub mod view;
