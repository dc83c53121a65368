//! The cellplacer command-line tool: one module per subcommand, and the small HTTP
//! [`client`] that the load generator and the end-to-end tests drive the service with.

pub mod client;
