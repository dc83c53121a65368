//! `cellplacer ledger`: bulk import of placed cells into a service's ledger, and export of
//! its cells as a placement export (while no service uses the ledger).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use topology::ingest::write_table;

use super::output::emitln;

/// The arguments of `ledger`: what to do with the ledger.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Import or export.
    #[command(subcommand)]
    action: Action,
}

/// A `ledger` subcommand.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Load placed cells into a ledger: every cell checked as the service would take it
    /// (known, active servers; capacity; one colour; no quorum shared; a new id), then
    /// written in transactions of 10,000 cells. A file with problems changes nothing
    /// (every problem listed, exit 1) unless --skip-invalid.
    Import {
        /// The inventory export the ledger serves (or will serve, for a new ledger).
        dir: PathBuf,
        /// Cells to load (cell_id, clients, nodes; .csv or .parquet).
        #[arg(long)]
        placements: PathBuf,
        /// The ledger (a SQLite file, created if missing, or a URL as for `serve`).
        #[arg(long, default_value = "data/cellplacer.db")]
        db: String,
        /// Import the valid cells, list the others with why.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write the ledger's cells as a placement export (.csv or .parquet), for `evaluate`,
    /// `rebalance`, `whatif` and notebooks.
    Export {
        /// The ledger (a SQLite file or a URL as for `serve`).
        #[arg(long, default_value = "data/cellplacer.db")]
        db: String,
        // The placement export to write (.csv or .parquet). Not a doc comment, which
        // would add a description to `ledger export --help`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs the import or the export on a multi-threaded async runtime.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        match args.action {
            Action::Import {
                dir,
                placements,
                db,
                skip_invalid,
            } => import(dir, placements, db, skip_invalid).await,
            Action::Export { db, out } => export(db, out).await,
        }
    })
}

/// Imports the cells of `placements` on the inventory `dir` into the ledger `db`; exits 1
/// when some were refused, unless `skip_invalid`.
async fn import(
    dir: PathBuf,
    placements: PathBuf,
    db: String,
    skip_invalid: bool,
) -> anyhow::Result<ExitCode> {
    let table = runtime::load::read_table(&placements).context("loading the placements")?;
    let rows = table.len();
    let url = store::LedgerUrl::parse(&db)?;
    let store = store::open(&url)
        .await
        .with_context(|| format!("opening the ledger {}", url.label()))?;
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("{}", dir.display()))?;
    let started = std::time::Instant::now();
    let outcome = runtime::import::import(
        &*store,
        runtime::zone::Source::Dir(dir),
        table,
        skip_invalid,
    )
    .await;
    store.close().await;
    let outcome = outcome.context("importing")?;
    for r in &outcome.refused {
        emitln(format_args!(
            "{} row {} cell '{}': {}",
            placements.display(),
            r.row,
            r.cell_id,
            r.why
        ))?;
    }
    emitln(format_args!(
        "imported {} of {rows} cells into {} in {:.2?} ({} transactions, \
         inventory version {}); {} refused{}",
        outcome.imported,
        url.label(),
        started.elapsed(),
        outcome.transactions,
        outcome.inventory_version,
        outcome.refused.len(),
        if outcome.imported == 0 && !outcome.refused.is_empty() {
            ": nothing written (--skip-invalid imports the others)"
        } else {
            ""
        }
    ))?;
    Ok(if outcome.refused.is_empty() || skip_invalid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the cells of the ledger `db` to `out`.
async fn export(db: String, out: PathBuf) -> anyhow::Result<ExitCode> {
    let url = store::LedgerUrl::parse(&db)?;
    let store = store::open(&url)
        .await
        .with_context(|| format!("opening the ledger {}", url.label()))?;
    let table = runtime::import::export(&*store).await;
    store.close().await;
    let table = table.context("reading the ledger")?;
    write_table(&out, &table).context("writing the placements")?;
    emitln(format_args!(
        "wrote {} cells to {}",
        table.len(),
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
