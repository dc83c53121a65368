//! `cellplacer token`: makes a bearer token for `serve --tokens`.

use std::process::ExitCode;

use super::output::emitln;

/// The arguments of `token`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// read (GET), runtime (also cells: place, replace, clients, moves, delete), or
    /// admin (everything: inventory, plans, what-if, import).
    #[arg(long)]
    role: String,
    /// A name for the holder, shown in logs and refusals.
    #[arg(long)]
    name: String,
}

/// Prints a new token, then its line for the token file (which keeps only its hash).
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { role, name } = args;
    let role = server::auth::Role::parse(&role)
        .ok_or_else(|| anyhow::anyhow!("--role: '{role}' is not read, runtime or admin"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        anyhow::bail!("--name: one word, no spaces");
    }
    let (token, line) = server::auth::new_token(role, &name)?;
    emitln(format_args!("{token}"))?;
    emitln(format_args!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
