//! The `cellplacer` command line end to end, a module per job: validation, the report and
//! `evaluate`, `place`, the tutorial, `rebalance`, `whatif`. Here: what they share.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect;
use optimizer::risk::reference;
use optimizer::{fleet_report, ReportOptions};
use topology::ingest::{read_dir, write_dir, Format};

mod evaluate;
mod place;
mod rebalance;
mod simulate;
mod tutorial;
mod validate;
mod whatif;

fn tiny() -> PathBuf {
    fixtures::tiny_dir()
}

/// A copy of the tiny inventory with `edit(table text) -> table text` applied per file.
fn broken_copy(edits: &[(&str, &dyn Fn(String) -> String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(tiny()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    for (file, edit) in edits {
        let path = dir.path().join(file);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let new = edit(text);
        if new.is_empty() {
            fs::remove_file(&path).unwrap();
        } else {
            fs::write(&path, new).unwrap();
        }
    }
    dir
}

fn errors_of(dir: &Path) -> String {
    match runtime::load::inventory(dir) {
        Ok(_) => "valid".to_string(),
        Err(topology::Error::Invalid(report)) => {
            report.errors.iter().map(|e| format!("{e}\n")).collect()
        }
        Err(e) => format!("other error: {e}"),
    }
}

fn cellplacer(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Equal to 1e-12 relative.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}
