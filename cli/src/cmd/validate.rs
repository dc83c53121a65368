//! `cellplacer validate`: checks an inventory export, prints its counts and warnings, or
//! every error (exit 1).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use runtime::view::{counts_text, CountsView, ProblemView};

use super::output::{emitln, print_problems};

/// The arguments of `validate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory (NAME.csv or NAME.parquet per table).
    dir: PathBuf,
    /// Print the result as JSON ({valid, counts, errors, warnings}).
    #[arg(long)]
    json: bool,
}

/// Validates the inventory: success when valid, failure listing every problem when not.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { dir, json } = args;
    match runtime::load::inventory(&dir) {
        Ok(loaded) => {
            let counts = loaded.inventory.counts();
            if json {
                let doc = serde_json::json!({
                    "valid": true,
                    "counts": CountsView::from(counts),
                    "warnings": loaded.warnings.iter().map(ProblemView::from).collect::<Vec<_>>(),
                });
                emitln(format_args!("{doc:#}"))?;
            } else {
                emitln(format_args!("valid: {}", counts_text(&counts)))?;
                emitln(format_args!("{} warning(s)", loaded.warnings.len()))?;
                print_problems(&[], &loaded.warnings, false)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(topology::Error::Invalid(report)) => {
            if !json {
                emitln(format_args!(
                    "invalid: {} error(s), {} warning(s)",
                    report.errors.len(),
                    report.warnings.len()
                ))?;
            }
            print_problems(&report.errors, &report.warnings, json)?;
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("reading the inventory"),
    }
}
