//! The tutorial (`docs/tutorial.md`), run exactly as written.

use super::*;

/// Every `sh` block of docs/tutorial.md, run in order by bash in an empty directory with
/// the freshly built `cellplacer` first on PATH: the tutorial cannot rot.
#[test]
fn tutorial_runs() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tutorial.md"))
        .unwrap();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    // The fence a line is in: "sh" (run), "text" (shown output), or another.
    let mut fence: Option<&str> = None;
    let mut blocks = 0;
    let mut shown = Vec::new();
    for line in doc.lines() {
        match (fence, line.trim_end()) {
            (None, l) if l.starts_with("```") => {
                fence = Some(&l[3..]);
                blocks += usize::from(&l[3..] == "sh");
            }
            (Some(_), "```") => fence = None,
            (Some("sh"), l) => {
                script.push_str(l);
                script.push('\n');
            }
            // Timings differ from run to run.
            (Some("text"), l) if !l.contains("ms (") => shown.push(l.to_string()),
            _ => {}
        }
    }
    assert!(blocks >= 6, "the tutorial has {blocks} sh blocks");
    let bin = Path::new(env!("CARGO_BIN_EXE_cellplacer"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the tutorial failed:\n{text}");
    assert!(shown.len() >= 15, "{shown:?}");
    for expected in shown
        .iter()
        .map(String::as_str)
        .chain(["placed 200 of 200 cells", "\"cell_id\":\"vol-demo\""])
    {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
