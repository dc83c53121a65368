//! The PostgreSQL ledger on a real server: a throwaway cluster per test binary
//! (`scripts/pg-cluster`: initdb and pg_ctl as an unprivileged user, a free port, a
//! temporary directory), a fresh database per test. Here: the cluster, the databases and
//! the replicas; the ledger itself in [`ledger`], services sharing it in [`replicas`].

use super::*;
use std::sync::OnceLock;
use store::{all_cells, CellRecord, InventoryRecord, MoveRecord, MoveStatus, PgStore, RiskUpdate};

/// The cluster, started once for this test binary; a watchdog process stops it and
/// removes its directory when the binary exits, however it exits.
struct Cluster {
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster")
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let data = dir.join("pg");
        let out = std::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; bash '{script}' stop '{data}'; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            script = script().display(),
            data = data.display(),
            dir = dir.display(),
        );
        // Detached on purpose: it outlives this process to stop the cluster.
        #[allow(clippy::zombie_processes)]
        std::process::Command::new("setsid")
            .args(["bash", "-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Cluster { url }
    })
}

/// A fresh, empty database on the cluster; its URL.
async fn database(name: &str) -> String {
    use sqlx::Connection;
    let base = &cluster().url;
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

/// `n` replicas (in-process services with their routers) on the ledger `url`, serving
/// the harness's zone.
async fn replicas(url: &str, h: &Harness, n: usize) -> Vec<(Arc<Service>, Router)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(replica(url, h).await);
    }
    out
}

/// One replica (the service and its router) on the ledger `url`, serving the harness's
/// zone.
async fn replica(url: &str, h: &Harness) -> (Arc<Service>, Router) {
    let store = Arc::new(PgStore::open(url).await.unwrap());
    let service = Service::open(store, Some(Source::Dir(h.zone_dir.clone())), config(&h.db))
        .await
        .unwrap();
    let router = app(AppState {
        service: service.clone(),
        limits: Limits::default(),
        tokens: None,
    });
    (service, router)
}

mod ledger;
mod replicas;
