//! `cellplacer generate`: writes a generated availability zone and its cell workload, the
//! same for the same preset and seed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use topology::ingest::{write_dir, Format};

use super::output::emitln;

/// The arguments of `generate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Zone shape.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    preset: Preset,
    /// Seed of every random choice (statuses, dual ToRs, single feeds, clients).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override the number of cells in the workload.
    #[arg(long)]
    cells: Option<usize>,
    /// Model partitions as risk groups: each room's uplinks (`partition-dcX-hY`, afr
    /// 0.02, 2 hours) and each datacenter's interconnect through two border routers
    /// (`partition-dcX`, afr 0.01, 4 hours). docs/format.md explains partitions.
    #[arg(long)]
    partitions: bool,
    /// Table file format.
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    format: FormatArg,
    /// Directory to write the tables into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// The zone shapes `generate` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Preset {
    /// 32 servers (16 hosts), 10 cells: 1 datacenter, 2 rooms.
    Tiny,
    /// 2,304 servers (576 hosts), 2,000 cells: 3 datacenters (the bundled zone).
    Small,
    /// 23,040 servers (5,760 hosts, 4 colours), 100,000 cells.
    Az,
    /// 53,760 servers (26,880 hosts, 4 colours), 1,000,000 cells.
    AzLarge,
}

/// The table file formats `generate` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FormatArg {
    /// NAME.csv with a header row.
    Csv,
    /// NAME.parquet with the same columns.
    Parquet,
}

/// Generates the zone of the preset and seed and writes its tables and cells.csv.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        preset,
        seed,
        cells,
        partitions,
        format,
        out,
    } = args;
    let mut params = match preset {
        Preset::Tiny => fixtures::ZoneParams::tiny(seed),
        Preset::Small => fixtures::ZoneParams::small(seed),
        Preset::Az => fixtures::ZoneParams::az(seed),
        Preset::AzLarge => fixtures::ZoneParams::az_large(seed),
    };
    if let Some(n) = cells {
        params.cells = n;
    }
    if partitions {
        params = params.with_partitions();
    }
    let format = match format {
        FormatArg::Csv => Format::Csv,
        FormatArg::Parquet => Format::Parquet,
    };
    write_dir(&out, &fixtures::generate(&params), format)?;
    emitln(format_args!(
        "wrote {} servers and {} cells to {}",
        params.total_servers(),
        params.cells,
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
