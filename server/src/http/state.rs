//! What every handler and layer shares: the service, the request limits and the tokens.

use std::sync::Arc;
use std::time::Duration;

use runtime::service::Service;

use super::body::BodyTimeouts;
use crate::auth::Tokens;

/// Default largest inventory upload, in MiB: a whole `az-large` export (26,612 servers,
/// with a million-cell workload table) is 81 MiB of CSV.
pub const DEFAULT_UPLOAD_MIB: usize = 128;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest JSON body of the cell routes.
    pub body: usize,
    /// Largest inventory upload.
    pub upload: usize,
    /// Time limit of the cell and server routes.
    pub timeout: Duration,
    /// Time limit of the report and inventory routes (they evaluate every cell).
    pub admin_timeout: Duration,
    /// How long a request body may stall, and take as a whole (every route).
    pub body_timeouts: BodyTimeouts,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: 64 * 1024,
            upload: DEFAULT_UPLOAD_MIB * 1024 * 1024,
            timeout: Duration::from_secs(10),
            admin_timeout: Duration::from_secs(600),
            // An 81 MiB `az-large` upload in 120 s needs 0.7 MB/s.
            body_timeouts: BodyTimeouts {
                idle: Duration::from_secs(10),
                total: Duration::from_secs(120),
            },
        }
    }
}

/// The state of the router: what every handler and layer reads.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The cell runtime the handlers translate to.
    pub service: Arc<Service>,
    /// Body sizes and time limits.
    pub limits: Limits,
    /// The accepted bearer tokens; `None`: every request is allowed (loopback only).
    pub tokens: Option<Arc<Tokens>>,
}
