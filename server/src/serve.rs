//! `cellplacer serve`: opens the ledger, builds the service, listens, and on SIGTERM or
//! Ctrl-C stops accepting, finishes the requests in flight, commits and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use crate::auth::Tokens;
use crate::conn;
use crate::http::{app, AppState, Limits};
use runtime::engine::PlaceOptions;
use runtime::service::{Config, Service};
use runtime::zone::Source;
use runtime::Error;
use store::LedgerUrl;

/// What `cellplacer serve` was given.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Export directory; `None`: the ledger's active inventory, else the bundled zone.
    pub inventory: Option<PathBuf>,
    /// The ledger: a SQLite file or a PostgreSQL URL.
    pub db: LedgerUrl,
    /// The address to listen on (port 0: any free port, see `on_listen`).
    pub listen: SocketAddr,
    /// Solver threads (0 = available parallelism).
    pub workers: usize,
    /// Solves that may wait for a worker before requests are refused (503 `overloaded`).
    pub queue: usize,
    /// Placement engine settings (solver, pool size, ...).
    pub placer: PlaceOptions,
    /// Body sizes and time limits of the routes.
    pub limits: Limits,
    /// Limits on the connections themselves.
    pub connections: conn::ConnectionLimits,
    /// See [`Config::inventory_root`].
    pub inventory_root: Option<PathBuf>,
    /// See [`Config::autopilot`].
    pub autopilot: runtime::dto::AutopilotUpdate,
    /// See [`Config::heavy`].
    pub heavy: runtime::service::HeavyLimits,
    /// This replica's address as the other replicas reach it, for the writer lease on a
    /// shared ledger; `None`: `http://` and the bound address, unless that is a wildcard
    /// (then this replica never holds the lease, and forwards when another does).
    pub advertise: Option<String>,
    /// Bearer tokens; `None`: every request is allowed, so only a loopback address may
    /// be listened on.
    pub tokens: Option<Arc<Tokens>>,
}

/// Serves until `shutdown` resolves. `on_listen` gets the bound address (useful with port 0).
pub async fn run(
    options: ServeOptions,
    on_listen: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    match &options.tokens {
        None if !options.listen.ip().is_loopback() => {
            return Err(Error::InvalidConfig {
                message: format!(
                    "refusing to listen on {} without --tokens: anyone who can reach it could \
                     change the ledger (give --tokens FILE, or listen on a loopback address)",
                    options.listen
                ),
            });
        }
        None => tracing::warn!(
            "no --tokens: every request is allowed; listening on loopback only ({})",
            options.listen
        ),
        Some(tokens) => tracing::info!(tokens = tokens.len(), "bearer tokens required"),
    }
    let store = store::open(&options.db).await?;
    let data_dir = options.db.data_dir();
    let service = Service::open(
        store,
        options.inventory.clone().map(Source::Dir),
        Config {
            data_dir,
            workers: options.workers,
            queue: options.queue,
            placer: options.placer.clone(),
            inventory_root: options.inventory_root.clone(),
            autopilot: options.autopilot,
            heavy: options.heavy,
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("binding {}", options.listen),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        context: "reading the bound address".into(),
        source: e,
    })?;
    let inventory = service.inventory().await;
    tracing::info!(
        %addr,
        db = %options.db.label(),
        inventory = %inventory.source,
        version = inventory.version,
        "serving"
    );
    on_listen(addr);
    let advertise = options
        .advertise
        .clone()
        .or_else(|| (!addr.ip().is_unspecified()).then(|| format!("http://{addr}")));
    if let Some(url) = advertise {
        service.start_writer(url);
    }
    let state = AppState {
        service: service.clone(),
        limits: options.limits,
        tokens: options.tokens.clone(),
    };
    let metrics = service.metrics_handle();
    conn::accept(listener, app(state), options.connections, metrics, shutdown).await;
    tracing::info!("draining: committing the ledger and closing the store");
    service.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
