//! Side-by-side comparison of placement methods over one inventory: each method's
//! placements go through `optimizer::fleet_report`, and the numbers land in one table.

use std::fmt;
use std::time::Duration;

use optimizer::report::{room_partitions, server_loads};
use optimizer::{fleet_report, ReportOptions};
use topology::{FailureModel, Inventory, Placement};

/// One method's output: its placements, how many cells it could not place, and how long
/// placing took.
#[derive(Debug, Clone)]
pub struct Method {
    /// The method's name, as the table's column header.
    pub name: String,
    /// The cells it placed.
    pub placements: Vec<Placement>,
    /// Cells asked for but left out of `placements`.
    pub unplaced: usize,
    /// Wall-clock time of placing.
    pub elapsed: Duration,
}

/// The measured numbers of one method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSummary {
    /// The method's name.
    pub name: String,
    /// Cells it placed.
    pub cells_placed: usize,
    /// Cells it could not place.
    pub cells_unplaced: usize,
    /// Exact cell risk in outages per year (the contract's minimal cut sets of one and
    /// two elements) over the cells that are not down: the mean (and, below, the
    /// nearest-rank p99 and the max).
    pub risk_mean: f64,
    /// The nearest-rank 99th percentile of the risk.
    pub risk_p99: f64,
    /// The highest risk.
    pub risk_max: f64,
    /// Cells out with nothing failed (risk 1, not in the distribution).
    pub down: usize,
    /// Cells that some single element failure (or nothing at all) puts out.
    pub single_failure_unsafe: usize,
    /// The most cells one element takes out when it alone fails.
    pub max_blast_radius: u32,
    /// Servers holding at least one node: the denominator of `load_mean`.
    pub servers_used: usize,
    /// Most nodes on one server.
    pub load_max: u32,
    /// Nodes placed / `servers_used` (servers that hold no node are not counted).
    pub load_mean: f64,
    /// Servers holding more nodes than their `node_capacity`.
    pub capacity_violations: usize,
    /// Nodes on servers that are draining, failed or not hosts.
    pub nodes_on_unusable_servers: u64,
    /// Cell pairs sharing at least a quorum of one of them.
    pub quorum_sharing_pairs: usize,
    /// Cells out when a room is partitioned (the blast radius of the risk group that cuts
    /// it off, [`room_partitions`]): the mean over the rooms that have one; `None` when
    /// no room has one.
    pub room_partition_mean: Option<f64>,
    /// The most cells out when one room is partitioned; `None` when no room has a
    /// partitioning group.
    pub room_partition_max: Option<u32>,
    /// Wall-clock time of placing.
    pub elapsed: Duration,
}

impl MethodSummary {
    /// `load_max / load_mean`: 1.0 is a perfectly even spread over the servers used.
    pub fn load_imbalance(&self) -> f64 {
        if self.load_mean > 0.0 {
            f64::from(self.load_max) / self.load_mean
        } else {
            0.0
        }
    }
}

/// One row per method, in the order given; printed transposed (a column per method).
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonTable {
    /// One summary per method, in the order given.
    pub methods: Vec<MethodSummary>,
}

/// Compares methods over `inv`, building its failure model first. Use
/// [`compare_with_model`] when the model is at hand.
pub fn compare(inv: &Inventory, methods: Vec<Method>) -> ComparisonTable {
    compare_with_model(inv, &FailureModel::new(inv), methods)
}

/// Compares methods over `inv` with its failure model: one full fleet report (exact risk
/// on) per method, on 2 threads.
pub fn compare_with_model(
    inv: &Inventory,
    model: &FailureModel,
    methods: Vec<Method>,
) -> ComparisonTable {
    let options = ReportOptions {
        risk: true,
        top: 1,
        threads: 2,
        stop: optimizer::Stop::default(),
    };
    let partitions = room_partitions(inv);
    let methods = methods
        .into_iter()
        .map(|method| {
            let report = fleet_report(inv, model, &method.placements, &options);
            let risk = report.risk.expect("risk was asked for");
            let loads = server_loads(inv.servers.len(), &method.placements);
            let servers_used = loads.iter().filter(|&&l| l > 0).count();
            let partitioned: Vec<u32> = partitions
                .iter()
                .map(|p| report.blast_radius[p.group.index()])
                .collect();
            MethodSummary {
                room_partition_mean: (!partitioned.is_empty()).then(|| {
                    partitioned.iter().map(|&b| f64::from(b)).sum::<f64>()
                        / partitioned.len() as f64
                }),
                room_partition_max: partitioned.iter().copied().max(),
                cells_placed: method.placements.len(),
                cells_unplaced: method.unplaced,
                risk_mean: risk.mean,
                risk_p99: risk.p99,
                risk_max: risk.max,
                down: report.down_cells.len(),
                single_failure_unsafe: report.unsafe_cells.len(),
                max_blast_radius: report.blast_radius.iter().copied().max().unwrap_or(0),
                servers_used,
                load_max: report.load.max_load,
                load_mean: if servers_used == 0 {
                    0.0
                } else {
                    report.load.nodes_placed as f64 / servers_used as f64
                },
                capacity_violations: report.load.over_capacity.len(),
                nodes_on_unusable_servers: report.load.nodes_on_unusable_servers,
                quorum_sharing_pairs: report.quorum_sharing_pairs.len(),
                elapsed: method.elapsed,
                name: method.name,
            }
        })
        .collect();
    ComparisonTable { methods }
}

impl ComparisonTable {
    /// (metric label, value per method), in print order.
    fn rows(&self) -> Vec<(&'static str, Vec<String>)> {
        let row = |label, value: &dyn Fn(&MethodSummary) -> String| {
            (label, self.methods.iter().map(value).collect())
        };
        vec![
            row("cells placed", &|m| m.cells_placed.to_string()),
            row("cells not placed", &|m| m.cells_unplaced.to_string()),
            row("risk mean (outages/year)", &|m| {
                format!("{:.3e}", m.risk_mean)
            }),
            row("risk p99 (outages/year)", &|m| {
                format!("{:.3e}", m.risk_p99)
            }),
            row("risk max (outages/year)", &|m| {
                format!("{:.3e}", m.risk_max)
            }),
            row("cells down (nothing failed)", &|m| m.down.to_string()),
            row("single-failure-unsafe cells", &|m| {
                m.single_failure_unsafe.to_string()
            }),
            row("max blast radius (cells)", &|m| {
                m.max_blast_radius.to_string()
            }),
            row("servers holding nodes", &|m| m.servers_used.to_string()),
            row("load max (nodes/server)", &|m| m.load_max.to_string()),
            row("load mean (over servers holding nodes)", &|m| {
                format!("{:.2}", m.load_mean)
            }),
            row("load max/mean", &|m| format!("{:.2}", m.load_imbalance())),
            row("servers over capacity", &|m| {
                m.capacity_violations.to_string()
            }),
            row("nodes on unusable servers", &|m| {
                m.nodes_on_unusable_servers.to_string()
            }),
            row("quorum-sharing cell pairs", &|m| {
                m.quorum_sharing_pairs.to_string()
            }),
            row("cells out per room partition (mean)", &|m| {
                m.room_partition_mean
                    .map_or("-".to_string(), |v| format!("{v:.1}"))
            }),
            row("cells out per room partition (max)", &|m| {
                m.room_partition_max
                    .map_or("-".to_string(), |v| v.to_string())
            }),
            row("placement time (s)", &|m| {
                format!("{:.3}", m.elapsed.as_secs_f64())
            }),
            row("time per cell placed (us)", &|m| {
                format!(
                    "{:.1}",
                    m.elapsed.as_secs_f64() * 1e6 / m.cells_placed.max(1) as f64
                )
            }),
        ]
    }
}

impl fmt::Display for ComparisonTable {
    /// Metrics down, methods across; labels left-aligned, values right-aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.rows();
        let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let widths: Vec<usize> = self
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                rows.iter()
                    .map(|(_, values)| values[i].len())
                    .chain([m.name.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        write!(f, "{:label_width$}", "metric")?;
        for (m, w) in self.methods.iter().zip(&widths) {
            write!(f, "  {:>w$}", m.name)?;
        }
        writeln!(f)?;
        let rule = label_width + widths.iter().map(|w| w + 2).sum::<usize>();
        writeln!(f, "{}", "-".repeat(rule))?;
        for (label, values) in rows {
            write!(f, "{label:label_width$}")?;
            for (v, w) in values.iter().zip(&widths) {
                write!(f, "  {v:>w$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::{crush_like, rack_spread_random};
    use crate::testing::small_zone;

    fn method(name: &str, placements: Vec<Placement>, unplaced: usize) -> Method {
        Method {
            name: name.to_string(),
            placements,
            unplaced,
            elapsed: Duration::from_millis(1500),
        }
    }

    #[test]
    fn summaries_agree_with_the_fleet_report_and_count_by_hand() {
        let zone = small_zone(1, 4);
        let inv = &zone.inventory;
        let crush = crush_like(inv, &zone.cells, 1);
        let placed = crush.len();
        // The first cell twice: it shares all 7 servers with itself, each of which then
        // holds 2 nodes with capacity 1.
        let doubled = vec![crush[0].clone(), crush[0].clone()];
        let table = compare_with_model(
            inv,
            &zone.model,
            vec![
                method("crush", crush.clone(), zone.cells.len() - placed),
                method("doubled", doubled, 0),
            ],
        );

        let report = fleet_report(inv, &zone.model, &crush, &ReportOptions::default());
        let risk = report.risk.expect("risk");
        let c = &table.methods[0];
        assert_eq!((c.cells_placed, c.cells_unplaced), (placed, 4 - placed));
        assert_eq!(
            (c.risk_mean, c.risk_p99, c.risk_max),
            (risk.mean, risk.p99, risk.max)
        );
        assert_eq!(c.single_failure_unsafe, report.unsafe_cells.len());
        assert_eq!(
            c.max_blast_radius,
            report.top_blast_radius.first().map_or(0, |e| e.1)
        );
        // Capacity 1 everywhere: every used server holds exactly one node.
        assert_eq!(c.servers_used, 7 * placed);
        assert_eq!((c.load_max, c.load_mean, c.load_imbalance()), (1, 1.0, 1.0));
        assert_eq!(c.capacity_violations, 0);
        assert_eq!(c.quorum_sharing_pairs, 0);

        let d = &table.methods[1];
        assert_eq!(d.servers_used, 7);
        assert_eq!((d.load_max, d.load_mean), (2, 2.0));
        assert_eq!(d.capacity_violations, 7);
        assert_eq!(d.quorum_sharing_pairs, 1);
        assert_eq!(
            (d.risk_mean, d.risk_max),
            (report.per_cell[0].risk, report.per_cell[0].risk)
        );
    }

    #[test]
    fn the_table_prints_every_metric_aligned() {
        let zone = small_zone(400, 20);
        let methods = vec![
            method("crush_like", crush_like(&zone.inventory, &zone.cells, 1), 0),
            method(
                "rack_spread_random",
                rack_spread_random(&zone.inventory, &zone.cells, 1),
                0,
            ),
        ];
        let text = compare(&zone.inventory, methods).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 19, "{text}");
        assert!(lines[0].starts_with("metric") && lines[0].ends_with("rack_spread_random"));
        assert!(lines.iter().all(|l| l.len() == lines[1].len()), "{text}");
        let placed = lines
            .iter()
            .find(|l| l.starts_with("cells placed"))
            .expect("row");
        assert!(placed.ends_with("20"), "{placed}");
        let time = lines
            .iter()
            .find(|l| l.starts_with("placement time"))
            .expect("row");
        assert!(time.ends_with("1.500"), "{time}");
    }
}
