//! What every subcommand prints with: standard output that ends quietly on a closed pipe,
//! an input's problems one per line (or as JSON), and an error for a person on stderr.

use std::io::Write as _;

use runtime::view::ProblemView;

/// Standard output closed by the reader (`cellplacer evaluate ... | head -1`): a normal end.
#[derive(Debug)]
pub(crate) struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// Writes `text` to standard output; a closed pipe ends the command quietly (exit 0).
pub(crate) fn emit(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match write!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        other => Ok(other?),
    }
}

/// [`emit`] with a newline.
pub(crate) fn emitln(text: impl std::fmt::Display) -> anyhow::Result<()> {
    emit(format_args!("{text}\n"))
}

/// Prints an input's errors and warnings on standard output: one line each, or with
/// `json` one document `{valid, errors, warnings}`.
pub(crate) fn print_problems(
    errors: &[topology::Problem],
    warnings: &[topology::Problem],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({
            "valid": errors.is_empty(),
            "errors": errors.iter().map(ProblemView::from).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(ProblemView::from).collect::<Vec<_>>(),
        });
        emitln(format_args!("{doc:#}"))
    } else {
        for line in problem_lines(errors, warnings) {
            emitln(line)?;
        }
        Ok(())
    }
}

/// Errors, then warnings, one line each, as every command prints them.
pub(crate) fn problem_lines<'p>(
    errors: &'p [topology::Problem],
    warnings: &'p [topology::Problem],
) -> impl Iterator<Item = String> + 'p {
    let errors = errors.iter().map(|e| format!("error: {e}"));
    errors.chain(warnings.iter().map(|w| format!("warning: {w}")))
}

/// Prints an error for a person: the context chain once (a cause already quoted by the
/// message before it is not repeated), and an invalid input's problems one per line, as
/// `validate` prints them.
pub(crate) fn print_error(e: &anyhow::Error) {
    let mut message = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<topology::Error>() {
            Some(topology::Error::Invalid(report)) => format!(
                "invalid input: {} error(s), {} warning(s)",
                report.errors.len(),
                report.warnings.len()
            ),
            _ => cause.to_string(),
        };
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    eprintln!("error: {message}");
    if let Some(topology::Error::Invalid(report)) = e.downcast_ref::<topology::Error>() {
        for line in problem_lines(&report.errors, &report.warnings) {
            eprintln!("{line}");
        }
    }
}

/// Reads a placement export and the inventory it lives on: servers the placements name
/// and the inventory lacks come back as failed servers (said on stderr), then the
/// placements are checked against it.
pub(crate) fn load_placed(
    dir: &std::path::Path,
    placements: &std::path::Path,
) -> anyhow::Result<(
    runtime::load::Loaded,
    topology::raw::RawTable,
    Vec<topology::Placement>,
)> {
    use anyhow::Context;
    let table = runtime::load::read_table(placements).context("loading the placements")?;
    let (loaded, gone) =
        runtime::load::inventory_with_gone(dir, &table).context("loading the inventory")?;
    if !gone.is_empty() {
        eprintln!(
            "note: {} servers named by the placements are not in the inventory \
             (first: '{}'): they count as failed servers",
            gone.len(),
            gone[0]
        );
    }
    let placed = runtime::load::placements_from(&table, placements, &loaded.inventory)
        .context("loading the placements")?;
    Ok((loaded, table, placed))
}
