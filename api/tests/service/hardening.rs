//! The holes a probe found (issue 13): each closed, each with its test.

use super::*;

/// A SQLite ledger is served by one process: a second `serve` on the same file is refused
/// with a clear error and changes nothing; once the first is gone (even by kill -9), a new
/// one starts. A `--db` URL with an unknown scheme is an error, never a file of that name.
#[cfg(unix)]
#[tokio::test]
async fn a_second_process_on_a_sqlite_ledger_is_refused() {
    use std::process::Command;
    let h = Harness::new(8).await;
    // The harness's own service holds the ledger until it shuts down.
    h.service.shutdown().await;
    let (mut first, _) = start_binary(&h.zone_dir, &h.db);
    let second = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["serve", "--listen", "127.0.0.1:0", "--inventory"])
        .arg(&h.zone_dir)
        .arg("--db")
        .arg(&h.db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second serve started: {stderr}");
    assert!(
        stderr.contains("is in use by another process")
            && stderr.contains(&format!("(pid {})", first.id())),
        "{stderr}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut again, url) = start_binary(&h.zone_dir, &h.db);
    assert!(url.starts_with("http://127.0.0.1:"));
    again.kill().unwrap();
    again.wait().unwrap();

    let cwd = tempfile::tempdir().unwrap();
    for (db, says) in [
        ("mysql://u@h/db", "unknown ledger URL scheme 'mysql'"),
        ("", "--db is empty"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
            .current_dir(cwd.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{db}: {stderr}");
        assert!(stderr.contains(says), "{db}: {stderr}");
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "files were created: {left:?}");
}
