//! `compare`: generates a zone and its cell workload, places the cells with each baseline
//! and with cellplacer's batch placer, and prints the comparison table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use benches::baselines::{crush_like, rack_spread_random};
use benches::compare::{compare_with_model, Method};
use benches::crushtool::{self, RuleShape};
use benches::Zone;
use clap::{Parser, ValueEnum};
use optimizer::place::batch::place_batch;
use optimizer::place::{Occupancy, PlaceOptions};
use topology::{CellSpec, Placement};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// 2,304 servers (576 hosts, 2 colours).
    Small,
    /// 23,040 servers (5,760 hosts, 4 colours).
    Az,
}

#[derive(Debug, Parser)]
#[command(about = "Place one generated workload with every method and compare the results")]
struct Args {
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Cells in the workload.
    #[arg(long, default_value_t = 2000)]
    cells: usize,
    /// Seed of the zone, the workload and the placers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// cellplacer's weight of utilisation against risk (default: PlaceOptions').
    #[arg(long)]
    load_weight: Option<f64>,
    /// cellplacer's balance ceiling (times the mean utilisation); 0 turns the rule off.
    #[arg(long)]
    balance: Option<f64>,
    /// Only run cellplacer (skip the baselines).
    #[arg(long)]
    only_cellplacer: bool,
    /// Also place with the real CRUSH: Ceph's `crushtool` (Debian's ceph-base) on a CRUSH
    /// map of the zone, timed in the same run; two rows: `crushtool` (size racks anywhere)
    /// and `crushtool_dc_rooms` (the clients' datacenter, 4 rooms, 2 racks in each).
    #[arg(long)]
    crushtool: bool,
    /// Zones with room and datacenter partitions as risk groups
    /// (`ZoneParams::with_partitions`).
    #[arg(long)]
    partitions: bool,
    /// Also write each placer's placements to DIR/<placer>.csv (cell_id, clients, nodes;
    /// server ids `;`-joined), as `cellplacer place` writes them.
    #[arg(long, value_name = "DIR")]
    placements_out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let params = fixtures::ZoneParams {
        cells: args.cells,
        ..match args.preset {
            Preset::Small => fixtures::ZoneParams::small(args.seed),
            Preset::Az => fixtures::ZoneParams::az(args.seed),
        }
    };
    let params = if args.partitions {
        params.with_partitions()
    } else {
        params
    };
    let zone = benches::zone(&params);
    println!(
        "zone {:?} seed {}: {} racks, {} servers, {} elements; {} cells",
        args.preset,
        args.seed,
        zone.inventory.racks.len(),
        zone.inventory.servers.len(),
        zone.inventory.elements.len(),
        zone.cells.len()
    );

    let mut methods = Vec::new();
    if !args.only_cellplacer {
        methods.push(timed("crush_like", &zone.cells, || {
            crush_like(&zone.inventory, &zone.cells, args.seed)
        }));
        methods.push(timed("rack_spread_random", &zone.cells, || {
            rack_spread_random(&zone.inventory, &zone.cells, args.seed)
        }));
    }
    if args.crushtool {
        for shape in [RuleShape::Racks, RuleShape::DatacenterRooms] {
            match run_crushtool(&zone, shape) {
                Ok(method) => methods.push(method),
                Err(e) => {
                    eprintln!("compare: crushtool: {e:#}");
                    std::process::exit(1);
                }
            }
        }
    }
    let mut options = PlaceOptions {
        seed: args.seed,
        ..PlaceOptions::default()
    };
    if let Some(w) = args.load_weight {
        options.load_weight = w;
    }
    if let Some(b) = args.balance {
        options.balance = (b > 0.0).then_some(b);
    }
    methods.extend(cellplacer_method(&zone, &options));
    if let Some(dir) = &args.placements_out {
        if let Err(e) = write_placements(&zone, &methods, dir) {
            eprintln!("compare: {e:#}");
            std::process::exit(1);
        }
    }
    println!();
    print!(
        "{}",
        compare_with_model(&zone.inventory, &zone.model, methods)
    );
}

/// Writes every method's placements to `dir/<name>.csv` in `cellplacer place`'s format.
fn write_placements(zone: &Zone, methods: &[Method], dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ids = |servers: &[u32]| {
        servers
            .iter()
            .map(|&s| zone.inventory.servers[s as usize].id.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    for method in methods {
        let mut table = topology::raw::RawTable::new(&["cell_id", "clients", "nodes"]);
        for p in &method.placements {
            table.push(&[p.cell_id.clone(), ids(&p.clients), ids(&p.nodes)]);
        }
        let path = dir.join(format!("{}.csv", method.name));
        topology::ingest::write_table(&path, &table)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs one placer, timing it and counting the cells it skipped.
fn timed(name: &str, cells: &[CellSpec], place: impl FnOnce() -> Vec<Placement>) -> Method {
    let start = Instant::now();
    let placements = place();
    let elapsed = start.elapsed();
    Method {
        name: name.to_string(),
        unplaced: cells.len() - placements.len(),
        placements,
        elapsed,
    }
}

/// The real CRUSH: compiles the zone's map with `crushtool -c`, then maps every cell with
/// `crushtool --test`, one run per rule; the time is the whole of it.
fn run_crushtool(zone: &Zone, shape: RuleShape) -> anyhow::Result<Method> {
    use anyhow::Context;
    let map = crushtool::crush_map(&zone.inventory, shape);
    let assigned = crushtool::assign(&map, &zone.inventory, &zone.cells);
    let dir = std::env::temp_dir().join(format!("cellplacer-crush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (text, compiled) = (dir.join("map.txt"), dir.join("map.bin"));
    std::fs::write(&text, &map.text).context("writing the CRUSH map")?;
    let run = |args: &[&std::ffi::OsStr]| -> anyhow::Result<String> {
        let out = std::process::Command::new("crushtool")
            .args(args)
            .output()
            .context("running crushtool (apt-get install ceph-base)")?;
        anyhow::ensure!(
            out.status.success(),
            "crushtool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let size = zone.cells.iter().map(|c| c.size).max().unwrap_or(0);
    let rules = map.rules.len();
    let mut inputs = vec![0usize; rules];
    for &(rule, _) in assigned.iter().flatten() {
        inputs[rule] += 1;
    }
    let start = Instant::now();
    run(&[
        "-c".as_ref(),
        text.as_os_str(),
        "-o".as_ref(),
        compiled.as_os_str(),
    ])?;
    let mut mappings = Vec::new();
    for (rule, &inputs) in inputs.iter().enumerate() {
        if inputs == 0 {
            continue;
        }
        let (rule, max_x, size) = (rule.to_string(), (inputs - 1).to_string(), size.to_string());
        let out = run(&[
            "-i".as_ref(),
            compiled.as_os_str(),
            "--test".as_ref(),
            "--rule".as_ref(),
            rule.as_ref(),
            "--num-rep".as_ref(),
            size.as_ref(),
            "--min-x".as_ref(),
            "0".as_ref(),
            "--max-x".as_ref(),
            max_x.as_ref(),
            "--show-mappings".as_ref(),
        ])?;
        mappings.extend(crushtool::parse_mappings(&out).map_err(anyhow::Error::msg)?);
    }
    let elapsed = start.elapsed();
    std::fs::remove_dir_all(&dir).ok();
    let placements = crushtool::placements(&map, &zone.cells, &assigned, &mappings);
    Ok(Method {
        name: shape.name().to_string(),
        unplaced: zone.cells.len() - placements.len(),
        placements,
        elapsed,
    })
}

/// cellplacer's batch placement (heuristic, seeded).
fn cellplacer_method(zone: &Zone, options: &PlaceOptions) -> Option<Method> {
    let mut occupancy = Occupancy::new(&zone.inventory);
    let outcome = place_batch(
        &zone.inventory,
        &zone.model,
        &zone.cells,
        &mut occupancy,
        options,
    );
    Some(Method {
        name: "cellplacer".to_string(),
        unplaced: outcome.failed.len(),
        placements: outcome.placements,
        elapsed: outcome.elapsed,
    })
}
