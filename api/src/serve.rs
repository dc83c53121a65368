//! `cellplacer serve`: opens the ledger, builds the service, listens, and on SIGTERM or
//! Ctrl-C stops accepting, finishes the requests in flight, commits and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::PlaceOptions;
use crate::http::{app, AppState, Limits};
use crate::service::{Config, Service};
use crate::store::{self, LedgerUrl};
use crate::zone::Source;
use crate::Error;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Export directory; `None`: the ledger's active inventory, else the bundled zone.
    pub inventory: Option<PathBuf>,
    pub db: LedgerUrl,
    pub listen: SocketAddr,
    /// Solver threads (0 = available parallelism).
    pub workers: usize,
    pub queue: usize,
    pub placer: PlaceOptions,
    pub limits: Limits,
    pub connections: ConnectionLimits,
}

/// Serves until `shutdown` resolves. `on_listen` gets the bound address (useful with port 0).
pub async fn run(
    options: ServeOptions,
    on_listen: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
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
    let state = AppState {
        service: service.clone(),
        limits: options.limits,
    };
    let metrics = service.metrics_handle();
    accept(listener, app(state), options.connections, metrics, shutdown).await;
    tracing::info!("draining: committing the ledger and closing the store");
    service.shutdown().await;
    Ok(())
}

/// Limits on the connections themselves (before any request is routed).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; one more is closed at once (and counted).
    pub max: usize,
    /// A connection must send a request's headers within this time of opening or of its
    /// previous response, or it is closed: idle and half-sent connections do not pile up.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for requests in flight.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max: 10_000,
            header_read_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// Accepts connections until `shutdown`, each served by hyper with a header read timeout,
/// at most `limits.max` at once; then waits (up to `limits.drain`) for those in flight.
async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connection_refused();
            drop(stream);
            continue;
        };
        metrics.connection_opened();
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {:?}: closing", limits.drain);
    }
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
