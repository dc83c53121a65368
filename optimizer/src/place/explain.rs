//! Why a placement is what it is: the explanation of a choice (risk split, breaking
//! elements, top scenarios, nodes per failure domain, the rules that bound) and the
//! message when there is no allowed choice at all.

use std::collections::BTreeMap;

use topology::ElementId;

use super::pool::Pool;
use super::table::Table;
use super::{members_of, Placer, Prepared};
use crate::risk::Scenario;
use crate::Error;

/// A hard rule that shaped the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A server holds at most its node capacity.
    Capacity,
    /// All nodes of a cell sit on servers of one colour.
    Colour,
    /// No two cells share a quorum of servers.
    Overlap,
    /// Single-failure safety, kept whenever some choice has it.
    Safety,
    /// The load balance ceiling.
    Balance,
}

impl Rule {
    /// The rule's name in answers (`capacity`, `colour`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Capacity => "capacity",
            Rule::Colour => "colour",
            Rule::Overlap => "overlap",
            Rule::Safety => "safety",
            Rule::Balance => "balance",
        }
    }
}

/// A rule and what it did to this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Which rule.
    pub rule: Rule,
    /// What it did, with counts, for a person to read.
    pub detail: String,
}

/// Failure-domain levels an explanation counts nodes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainLevel {
    /// The rack's datacenter.
    Datacenter,
    /// The rack's room.
    Room,
    /// The rack's row.
    Row,
    /// The server's rack.
    Rack,
    /// A network device the server links to directly (its ToR).
    Tor,
    /// A power device feeding the server (its own feeds, else its rack's).
    Pdu,
}

impl DomainLevel {
    /// The level's name in answers (`datacenter`, `tor`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DomainLevel::Datacenter => "datacenter",
            DomainLevel::Room => "room",
            DomainLevel::Row => "row",
            DomainLevel::Rack => "rack",
            DomainLevel::Tor => "tor",
            DomainLevel::Pdu => "pdu",
        }
    }
}

/// How many of a cell's nodes sit in one failure domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCount {
    /// The kind of domain.
    pub level: DomainLevel,
    /// The domain's label or id (a room label, a ToR's id, ...).
    pub label: String,
    /// The cell's nodes in it.
    pub nodes: usize,
}

/// Why a cell is where it is, in terms a person can check.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Outages per year (the contract's risk; 1 when down).
    pub risk: f64,
    /// The singles' part of `risk` (0 when down).
    pub single_risk: f64,
    /// The pairs' part of `risk` (0 when down).
    pub pair_risk: f64,
    /// Not down, and no single element failure gives an outage.
    pub single_failure_safe: bool,
    /// The cell is out with nothing failed.
    pub down: bool,
    /// Elements whose failure alone gives an outage.
    pub breaking: Vec<ElementId>,
    /// The heaviest outage scenarios, heaviest first.
    pub top_scenarios: Vec<Scenario>,
    /// Nodes per failure domain, by level, largest first.
    pub domains: Vec<DomainCount>,
    /// The hard rules that shaped the answer, with what each did.
    pub binding: Vec<Binding>,
}

impl Placer<'_> {
    /// The answer when even the widest pool has no allowed choice, saying what was
    /// searched and which rule binds, with counts.
    pub(super) fn no_placement(
        &self,
        prep: &Prepared,
        size: usize,
        room: usize,
        colours: u32,
    ) -> Error {
        let pool = &prep.pool;
        let choosable = pool.choosable.count_ones() as usize;
        let mut binding = pool_bindings(pool);
        let fixed = pool.fixed.count_ones() as usize;
        let colour = pool.colour.as_deref().unwrap_or("none");
        let others = if colours > 1 {
            format!("; each of the other {} colours failed too", colours - 1)
        } else {
            String::new()
        };
        // The pool holds every eligible server unless it was cut at the mask's width.
        let searched = if choosable < room {
            format!(
                "all {choosable} eligible servers of colour {colour} (active, capacity left){others}"
            )
        } else {
            format!(
                "the {choosable} eligible servers of colour {colour} nearest the clients (a \
                 cell's servers fit {} bits){others}",
                topology::workload::MAX_CELL_SERVERS
            )
        };
        let reason = if choosable + fixed < size {
            format!(
                "{} nodes wanted; searched {searched}",
                size - pool.fixed.count_ones() as usize
            )
        } else {
            binding.push(Binding {
                rule: Rule::Overlap,
                detail: format!(
                    "{} other cells already hold a quorum's worth of the {} candidates",
                    prep.overlap.len(),
                    choosable
                ),
            });
            format!(
                "every choice of {} shares a quorum with another cell: proved by an exact \
                 search, any number per rack, over {searched}",
                size - fixed
            )
        };
        Error::NoFeasiblePlacement { reason, binding }
    }

    pub(super) fn explain_choice(&self, prep: &Prepared, x: u64) -> Explanation {
        let table = &prep.table;
        let mut single_risk = 0.0;
        let mut pair_risk = 0.0;
        let mut breaking = Vec::new();
        let mut top: Vec<Scenario> = Vec::new();
        let mut down = false;
        let lost = table.lost_groups(x);
        for (i, g) in table.groups.iter().enumerate() {
            if !lost.contains(i) {
                continue;
            }
            single_risk += g.single_weight;
            pair_risk += g.pair_weight;
            breaking.extend_from_slice(&g.singles);
            if !self.lean {
                top.extend(g.top.scenarios());
            }
            down |= g.base;
        }
        for c in &table.covered {
            if Table::counts(c, &lost) {
                pair_risk += c.weight;
                if !self.lean {
                    top.extend(c.top.scenarios());
                }
            }
        }
        if down {
            // A down cell's risk is 1, not a sum.
            single_risk = 0.0;
            pair_risk = 0.0;
            top.clear();
        }
        breaking.sort_unstable();
        top.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.elements.cmp(&b.elements))
        });
        top.truncate(5);
        let safe = !down && breaking.is_empty();
        // A lean placer's explanation keeps the risk and the safety only.
        let (domains, binding) = if self.lean {
            (Vec::new(), Vec::new())
        } else {
            let nodes = members_of(&prep.pool, x);
            (
                self.domains(&nodes),
                bindings(prep, x, down, safe, breaking.len()),
            )
        };
        Explanation {
            risk: if down { 1.0 } else { single_risk + pair_risk },
            single_risk,
            pair_risk,
            single_failure_safe: safe,
            down,
            breaking,
            top_scenarios: top,
            domains,
            binding,
        }
    }

    /// Nodes per datacenter, room, row, rack, ToR and PDU; largest first within a level.
    pub fn domains<'a>(&'a self, nodes: &[u32]) -> Vec<DomainCount> {
        let inv = self.inv;
        // Borrowed labels while counting: a label is copied once, not once per node.
        let mut counts: BTreeMap<(DomainLevel, &str), usize> = BTreeMap::new();
        for &s in nodes {
            let server = &inv.servers[s as usize];
            let rack = &inv.racks[server.rack as usize];
            let mut add = |level, label: &'a str| {
                *counts.entry((level, label)).or_default() += 1;
            };
            add(DomainLevel::Datacenter, &rack.datacenter);
            add(DomainLevel::Room, &rack.room);
            add(DomainLevel::Row, &rack.row);
            add(DomainLevel::Rack, &rack.id);
            for &d in &self.layout.tors[s as usize] {
                add(DomainLevel::Tor, &inv.network_devices[d as usize].id);
            }
            for &p in inv.feeds_of(server) {
                add(DomainLevel::Pdu, &inv.power_devices[p as usize].id);
            }
        }
        let mut out: Vec<DomainCount> = counts
            .into_iter()
            .map(|((level, label), nodes)| DomainCount {
                level,
                label: label.to_string(),
                nodes,
            })
            .collect();
        out.sort_by(|a, b| {
            a.level
                .cmp(&b.level)
                .then(b.nodes.cmp(&a.nodes))
                .then_with(|| a.label.cmp(&b.label))
        });
        out
    }
}

/// The rules that bound the choice `x`: the pool's (capacity, balance, colour), the
/// overlap rows it fills, and safety when it is not single-failure safe.
fn bindings(prep: &Prepared, x: u64, down: bool, safe: bool, breaking: usize) -> Vec<Binding> {
    let pool = &prep.pool;
    let mut binding = pool_bindings(pool);
    let tight = prep
        .overlap
        .iter()
        .filter(|&&(m, most)| (x & m).count_ones() == most)
        .count();
    if tight > 0 {
        binding.push(Binding {
            rule: Rule::Overlap,
            detail: format!(
                "{tight} other cells share the most servers allowed (one less than a quorum)"
            ),
        });
    }
    if !safe {
        binding.push(Binding {
            rule: Rule::Safety,
            detail: if down {
                "the cell is out with nothing failed".to_string()
            } else {
                format!(
                    "no single-failure-safe choice found among {} candidates: {breaking} elements break it alone",
                    pool.members.len(),
                )
            },
        });
    }
    binding
}

/// The capacity and colour rules, as they narrowed the pool near the clients.
fn pool_bindings(pool: &Pool) -> Vec<Binding> {
    let mut binding = Vec::new();
    if pool.skipped_full > 0 {
        binding.push(Binding {
            rule: Rule::Capacity,
            detail: format!(
                "{} servers near the clients have no node capacity left",
                pool.skipped_full
            ),
        });
    }
    if let (Some(ceiling), true) = (pool.balance_ceiling, pool.skipped_balance > 0) {
        binding.push(Binding {
            rule: Rule::Balance,
            detail: format!(
                "{} servers near the clients are at the balance ceiling ({:.1}% utilisation)",
                pool.skipped_balance,
                ceiling * 100.0
            ),
        });
    }
    if pool.skipped_colour > 0 {
        binding.push(Binding {
            rule: Rule::Colour,
            detail: format!(
                "colour {}: {} servers of other colours near the clients not considered",
                pool.colour.as_deref().unwrap_or("-"),
                pool.skipped_colour
            ),
        });
    }
    binding
}
