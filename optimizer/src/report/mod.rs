//! The fleet report of a placement set: safety, blast radius, risk distribution, load and
//! quorum sharing. Pure: takes the model and placements, returns numbers.
//!
//! Here: per-cell evaluation, blast radius and load; `sharing`: the cells that share a
//! quorum; `partition`: the risk groups that cut a room off.

use rustc_hash::FxHashMap;
use topology::{ElementId, FailureModel, Inventory, Placement};

use crate::risk::RiskEvaluator;

mod partition;
mod sharing;

pub use partition::{room_partitions, RoomPartition};
pub use sharing::quorum_sharing_pairs;

/// What a [`fleet_report`] computes, and on how many threads.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Compute every cell's exact risk (single and double failures). Blast radius and
    /// safety need only single failures and are always computed.
    pub risk: bool,
    /// How many elements to list by blast radius, and how many riskiest cells.
    pub top: usize,
    /// Worker threads (each with its own evaluator); 0 means available parallelism.
    pub threads: usize,
    /// Ends the evaluation early once set (what it returns is then to be thrown away).
    pub stop: crate::Stop,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            risk: true,
            top: 10,
            threads: 0,
            stop: crate::Stop::default(),
        }
    }
}

/// The risk distribution of the cells that are not down (a down cell's risk is 1 and it
/// is counted in [`FleetReport::down_cells`], not summed), in outages per year.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskSummary {
    /// Cells the distribution is over (not down).
    pub cells: usize,
    /// Mean risk.
    pub mean: f64,
    /// Median risk (nearest rank).
    pub p50: f64,
    /// 99th-percentile risk (nearest rank).
    pub p99: f64,
    /// Highest risk.
    pub max: f64,
    /// Sum over those cells: expected cell outages per year in the fleet.
    pub total: f64,
    /// The riskiest cells that are not down, riskiest first: (cell index, risk).
    pub riskiest: Vec<(usize, f64)>,
}

/// How the placed nodes load the servers.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSummary {
    /// Servers that may host nodes (capacity > 0).
    pub hosts: usize,
    /// Nodes over all cells (on any server).
    pub nodes_placed: u64,
    /// Node capacity of the hosts.
    pub capacity: u64,
    /// Most nodes on one server.
    pub max_load: u32,
    /// Mean load over hosts.
    pub mean_load: f64,
    /// Highest load / capacity over hosts.
    pub max_utilisation: f64,
    /// Servers holding more nodes than their capacity: (server index, load, capacity).
    pub over_capacity: Vec<(u32, u32, u32)>,
    /// Nodes on servers that are not active (draining or failed) or not hosts.
    pub nodes_on_unusable_servers: u64,
}

/// Safety, blast radius, risk distribution, load and quorum sharing of a placement set.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetReport {
    /// How many cells the report is over.
    pub cells: usize,
    /// Cells with an outage with nothing failed (down: risk 1).
    pub down_cells: Vec<usize>,
    /// Cells that some single element failure puts out (including down cells).
    pub unsafe_cells: Vec<usize>,
    /// Elements by blast radius, largest first, then likeliest first (zeros included):
    /// (element, cells out when it alone fails).
    pub top_blast_radius: Vec<(ElementId, u32)>,
    /// Blast radius of every element (index = element id).
    pub blast_radius: Vec<u32>,
    /// Every cell's outcome, in placement order.
    pub per_cell: Vec<CellOutcome>,
    /// The risk distribution; `None` when [`ReportOptions::risk`] is off.
    pub risk: Option<RiskSummary>,
    /// How the nodes load the servers.
    pub load: LoadSummary,
    /// Pairs of cells (a < b) sharing at least a quorum of one of them.
    pub quorum_sharing_pairs: Vec<(usize, usize)>,
}

/// One cell's risk and single-failure standing.
#[derive(Debug, Clone, PartialEq)]
pub struct CellOutcome {
    /// Outages per year; 1 for a down cell; NaN when the risk was not computed.
    pub risk: f64,
    /// The singles' part of `risk` (0 for a down cell; NaN when not computed).
    pub single_risk: f64,
    /// The pairs' part of `risk` (0 for a down cell; NaN when not computed).
    pub pair_risk: f64,
    /// Out with nothing failed.
    pub down: bool,
    /// Elements whose failure alone gives an outage (empty for a down cell, which every
    /// failure leaves out but those that restore it).
    pub breaking: Vec<ElementId>,
}

impl CellOutcome {
    /// Not down, and no single element failure gives an outage.
    pub fn single_failure_safe(&self) -> bool {
        !self.down && self.breaking.is_empty()
    }
}

/// Every cell's exact risk and single-failure safety (risk 1 for a down cell), on
/// `threads` workers (0: available parallelism).
pub fn cell_risks(
    model: &FailureModel,
    placements: &[Placement],
    threads: usize,
) -> Vec<(f64, bool)> {
    cell_risks_until(model, placements, threads, &crate::Stop::default())
}

/// [`cell_risks`], ending early (with cells left unevaluated, to be thrown away) once
/// `stop` is set.
pub fn cell_risks_until(
    model: &FailureModel,
    placements: &[Placement],
    threads: usize,
    stop: &crate::Stop,
) -> Vec<(f64, bool)> {
    exact_risks(model, placements, threads, stop)
        .iter()
        .map(|r| (r.risk, !r.unsafe_))
        .collect()
}

/// Every cell evaluated with its exact risk, on `threads` workers.
fn exact_risks(
    model: &FailureModel,
    placements: &[Placement],
    threads: usize,
    stop: &crate::Stop,
) -> Vec<CellResult> {
    let options = ReportOptions {
        risk: true,
        top: 0,
        threads,
        stop: stop.clone(),
    };
    evaluate_cells(model, placements, &options, &[])
}

/// One cell's exact risk split into its parts, as a simulation compares them with what it
/// sees: `single` (afr summed over the breaking singles) grows with the failure rates,
/// `pair` (the pair weights) with their square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskParts {
    /// Out with nothing failed: risk 1, no parts.
    pub down: bool,
    /// Sum of afr over the elements that give an outage alone.
    pub single: f64,
    /// Sum of the pair weights over the minimal two-element cuts.
    pub pair: f64,
}

/// Every cell's risk by parts, on `threads` workers (0: available parallelism).
pub fn cell_risk_parts(
    model: &FailureModel,
    placements: &[Placement],
    threads: usize,
) -> Vec<RiskParts> {
    exact_risks(model, placements, threads, &crate::Stop::default())
        .iter()
        .map(|r| RiskParts {
            down: r.down,
            single: if r.down { 0.0 } else { r.single_risk },
            pair: if r.down { 0.0 } else { r.pair_risk },
        })
        .collect()
}

/// Per-cell results gathered by the workers.
struct CellResult {
    down: bool,
    unsafe_: bool,
    /// As [`crate::risk::SingleFailures::elements`].
    elements: Vec<ElementId>,
    risk: f64,
    single_risk: f64,
    pair_risk: f64,
}

fn evaluate_cells(
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
    known_safe: &[bool],
) -> Vec<CellResult> {
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let chunk = placements.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = placements
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let known = known_safe.get(n * chunk..).unwrap_or(&[]);
                scope.spawn(move || {
                    let mut eval = RiskEvaluator::new(model);
                    part.iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let stopped = options.stop.is_set();
                            if stopped || !options.risk && known.get(i) == Some(&true) {
                                // Safe: no element alone breaks it, and it is not down (or
                                // the caller gave up, and throws the answer away).
                                return CellResult {
                                    down: false,
                                    unsafe_: false,
                                    elements: Vec::new(),
                                    risk: f64::NAN,
                                    single_risk: f64::NAN,
                                    pair_risk: f64::NAN,
                                };
                            }
                            // The exact risk carries the single-failure view too.
                            let (singles, risk) = if options.risk {
                                let r = eval.evaluate(&p.clients, &p.nodes);
                                (r.singles, [r.risk, r.single_risk, r.pair_risk])
                            } else {
                                let singles = eval.single_failures(&p.clients, &p.nodes);
                                (singles, [f64::NAN; 3])
                            };
                            let unsafe_ = singles.down || !singles.elements.is_empty();
                            CellResult {
                                down: singles.down,
                                unsafe_,
                                elements: singles.elements,
                                risk: risk[0],
                                single_risk: risk[1],
                                pair_risk: risk[2],
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("report worker panicked"))
            .collect()
    })
}

/// The single-failure view of a placement set.
#[derive(Debug, Clone, PartialEq)]
pub struct BlastRadius {
    /// Cells out when each element alone fails (index = element id).
    pub blast: Vec<u32>,
    /// Cells with an outage with nothing failed (down).
    pub down_cells: Vec<usize>,
    /// Cells that some single element failure puts out (including down cells).
    pub unsafe_cells: Vec<usize>,
}

/// Blast radius of every element and the unsafe cells, without risk, load or sharing:
/// the part of [`fleet_report`] that scales with the cells and the elements.
pub fn blast_radius(model: &FailureModel, placements: &[Placement], threads: usize) -> BlastRadius {
    let options = ReportOptions {
        risk: false,
        top: 0,
        threads,
        stop: crate::Stop::default(),
    };
    tally(model, &evaluate_cells(model, placements, &options, &[]))
}

fn tally(model: &FailureModel, results: &[CellResult]) -> BlastRadius {
    let mut blast = vec![0u32; model.element_count()];
    let mut spared_by_down = vec![0u32; model.element_count()];
    let mut down_cells = Vec::new();
    let mut unsafe_cells = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if r.down {
            down_cells.push(i);
            for e in &r.elements {
                spared_by_down[e.index()] += 1;
            }
        } else {
            for e in &r.elements {
                blast[e.index()] += 1;
            }
        }
        if r.unsafe_ {
            unsafe_cells.push(i);
        }
    }
    // A down cell stays out under every element, except the ones it lists.
    let down = down_cells.len() as u32;
    for (b, spared) in blast.iter_mut().zip(&spared_by_down) {
        *b += down - spared;
    }
    BlastRadius {
        blast,
        down_cells,
        unsafe_cells,
    }
}

/// A pair of elements and the cells that lose quorum only when both fail (neither alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairBlast {
    /// Lower element id first.
    pub pair: (ElementId, ElementId),
    /// Cell indices, ascending.
    pub cells: Vec<usize>,
}

/// The `top` element pairs by the number of cells they put out while neither element does
/// alone (most cells first, then by pair), each with its cells; on `threads` workers
/// (0: available parallelism). Cells down with nothing failed are not counted. Ends early,
/// with cells left uncounted, once `stop` is set.
pub fn pair_blast_radius(
    model: &FailureModel,
    placements: &[Placement],
    top: usize,
    threads: usize,
    stop: &crate::Stop,
) -> Vec<PairBlast> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let chunk = placements.len().div_ceil(threads.max(1)).max(1);
    let mut by_pair: FxHashMap<(ElementId, ElementId), Vec<usize>> = FxHashMap::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = placements
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    let mut eval = RiskEvaluator::new(model);
                    let mut found: Vec<((ElementId, ElementId), usize)> = Vec::new();
                    for (i, p) in part.iter().enumerate() {
                        if stop.is_set() {
                            break;
                        }
                        let r = eval.evaluate(&p.clients, &p.nodes);
                        found.extend(r.pairs.into_iter().map(|pair| (pair, k * chunk + i)));
                    }
                    found
                })
            })
            .collect();
        // Chunks in order, cells in order within each: every list comes out ascending.
        for h in handles {
            for (pair, cell) in h.join().expect("pair blast worker panicked") {
                by_pair.entry(pair).or_default().push(cell);
            }
        }
    });
    let mut ranked: Vec<PairBlast> = by_pair
        .into_iter()
        .map(|(pair, mut cells)| {
            // A cell may reach one pair twice (as a special pair and through its halves).
            cells.dedup();
            PairBlast { pair, cells }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.cells
            .len()
            .cmp(&a.cells.len())
            .then_with(|| a.pair.cmp(&b.pair))
    });
    ranked.truncate(top);
    ranked
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The fleet report of `placements` on `inv`, as `options` asks.
pub fn fleet_report(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
) -> FleetReport {
    fleet_report_known(inv, model, placements, options, &[])
}

/// [`fleet_report`] when some cells' single-failure safety is already known on this
/// model (a ledger keeps it current): `known_safe[i]` true says cell `i` is safe, so no
/// element alone breaks it and it is not down, and a report without risk skips its
/// evaluation. The report is the same as [`fleet_report`]'s when the knowledge is right.
pub fn fleet_report_known(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
    known_safe: &[bool],
) -> FleetReport {
    let results = evaluate_cells(model, placements, options, known_safe);
    let BlastRadius {
        blast,
        down_cells,
        unsafe_cells,
    } = tally(model, &results);
    // Zeros included, so that a safe fleet still shows a full table; among equal radii the
    // likelier failure first.
    let mut ranked: Vec<(ElementId, u32)> = blast
        .iter()
        .enumerate()
        .map(|(e, &b)| (ElementId(e as u32), b))
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(model.afr(b.0).total_cmp(&model.afr(a.0)))
            .then(a.0.cmp(&b.0))
    });
    ranked.truncate(options.top);

    let risk = if options.risk {
        let mut riskiest: Vec<(usize, f64)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.down)
            .map(|(i, r)| (i, r.risk))
            .collect();
        let mut sorted: Vec<f64> = riskiest.iter().map(|&(_, r)| r).collect();
        sorted.sort_by(f64::total_cmp);
        riskiest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        riskiest.truncate(options.top);
        let total: f64 = sorted.iter().sum();
        let summary = RiskSummary {
            cells: sorted.len(),
            mean: if sorted.is_empty() {
                0.0
            } else {
                total / sorted.len() as f64
            },
            p50: percentile(&sorted, 0.5),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or(0.0),
            total,
            riskiest,
        };
        Some(summary)
    } else {
        None
    };
    let per_cell = results
        .into_iter()
        .map(|r| CellOutcome {
            risk: r.risk,
            single_risk: r.single_risk,
            pair_risk: r.pair_risk,
            down: r.down,
            breaking: if r.down { Vec::new() } else { r.elements },
        })
        .collect();

    let load = load_summary(inv, placements);
    let quorum_sharing_pairs = quorum_sharing_pairs(placements);
    FleetReport {
        cells: placements.len(),
        down_cells,
        unsafe_cells,
        top_blast_radius: ranked,
        blast_radius: blast,
        per_cell,
        risk,
        load,
        quorum_sharing_pairs,
    }
}

/// Node count per server.
pub fn server_loads(server_count: usize, placements: &[Placement]) -> Vec<u32> {
    let mut load = vec![0u32; server_count];
    for p in placements {
        for &n in &p.nodes {
            load[n as usize] += 1;
        }
    }
    load
}

/// How `placements` load the servers of `inv`: totals, extremes and rule breaches.
pub fn load_summary(inv: &Inventory, placements: &[Placement]) -> LoadSummary {
    let load = server_loads(inv.servers.len(), placements);
    let mut s = LoadSummary {
        hosts: 0,
        nodes_placed: 0,
        capacity: 0,
        max_load: 0,
        mean_load: 0.0,
        max_utilisation: 0.0,
        over_capacity: Vec::new(),
        nodes_on_unusable_servers: 0,
    };
    for (i, server) in inv.servers.iter().enumerate() {
        let l = load[i];
        s.nodes_placed += u64::from(l);
        if server.capacity > 0 {
            s.hosts += 1;
            s.capacity += u64::from(server.capacity);
            s.max_utilisation = s
                .max_utilisation
                .max(f64::from(l) / f64::from(server.capacity));
        }
        s.max_load = s.max_load.max(l);
        if l > server.capacity {
            s.over_capacity.push((i as u32, l, server.capacity));
        }
        if l > 0 && (server.capacity == 0 || server.status != topology::model::ServerStatus::Active)
        {
            s.nodes_on_unusable_servers += u64::from(l);
        }
    }
    s.mean_load = if s.hosts == 0 {
        0.0
    } else {
        s.nodes_placed as f64 / s.hosts as f64
    };
    s
}

#[cfg(test)]
mod tests;
