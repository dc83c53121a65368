//! Placement: choose a cell's servers so that its exact risk is as low as possible within
//! the hard rules (distinct active servers with capacity left, one colour, no shared
//! quorum with another cell, single-failure safe whenever possible).
//!
//! One request: draw a candidate [`pool`], build the scenario [`table`] of the clients
//! against it (exact: every single and pair failure, grouped by effect), then choose with
//! the fast [`search`] or the exact ILP ([`exact`]); the explanation comes from the same
//! table. ARCHITECTURE.md, "Placement", says why each step is shaped as it is.

pub mod batch;
mod bits;
pub mod exact;
mod explain;
pub mod occupancy;
pub mod path;
pub mod pool;
pub mod search;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use topology::model::NetNode;
use topology::{FailureModel, Inventory};

use crate::mip::{MipSolver, SolverKind};
use crate::risk::RiskEvaluator;
use crate::Error;
use bits::bits;

pub use explain::{Binding, DomainCount, DomainLevel, Explanation, Rule};
pub use occupancy::{CellSlot, Occupancy, SharedCells, Violation};
use pool::{Pool, PoolLimits, PoolRequest};
use search::Problem;
use table::Table;

/// Which solver chooses among the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Greedy construction plus swap search (exhaustive when the choice is small).
    Heuristic,
    /// The ILP on a MIP backend, with a time limit and a gap.
    Exact(SolverKind),
}

impl std::str::FromStr for Solver {
    type Err = String;
    fn from_str(s: &str) -> Result<Solver, String> {
        match s {
            "heuristic" => Ok(Solver::Heuristic),
            "ilp" | "exact" | "highs" => Ok(Solver::Exact(SolverKind::Highs)),
            "microlp" => Ok(Solver::Exact(SolverKind::MicroLp)),
            other => Err(format!(
                "unknown solver '{other}' (heuristic, ilp, highs, microlp)"
            )),
        }
    }
}

/// Tunables of a [`Placer`].
#[derive(Debug, Clone)]
pub struct PlaceOptions {
    /// Most candidate servers per request (at most 63 less the clients).
    pub pool_size: usize,
    /// Most candidates from one rack.
    pub per_rack: usize,
    /// Most candidates for a replacement or a move (one server to choose, six kept: a
    /// smaller pool keeps the table small).
    pub repair_pool_size: usize,
    /// Weight of the chosen servers' utilisation (load / capacity, summed) against risk:
    /// risk first, so keep it small.
    pub load_weight: f64,
    /// Which solver chooses among the pool.
    pub solver: Solver,
    /// Random restarts of the swap search after the greedy start.
    pub restarts: usize,
    /// Seed of the swap search's restarts; the same seed gives the same answers.
    pub seed: u64,
    /// Time limit of one exact solve.
    pub mip_time_limit: Duration,
    /// Relative gap at which an exact solve may stop.
    pub mip_gap: f64,
    /// A move is proposed only when it fixes a single-failure break or cuts the risk by
    /// at least this fraction.
    pub move_gain: f64,
    /// Batch placement solves this many consecutive cells against the same occupancy,
    /// spread over the available threads, then commits them in order (re-solving any that clash
    /// with an earlier one). Part of the result's definition, unlike a thread count, so
    /// the same workload gives the same placements on any machine.
    pub batch_window: usize,
    /// Even load as a rule: a server takes a node only while its load stays within
    /// `balance` times the zone's mean utilisation (plus one node); lifted for a request
    /// when too few candidates would remain. `None` leaves load to `load_weight` alone.
    pub balance: Option<f64>,
    /// Long work over many cells (a plan, a headroom count) ends early once this is set;
    /// a single solve does not look at it.
    pub stop: crate::Stop,
}

impl Default for PlaceOptions {
    fn default() -> Self {
        PlaceOptions {
            pool_size: 20,
            per_rack: 1,
            repair_pool_size: 12,
            load_weight: 1e-7,
            solver: Solver::Heuristic,
            restarts: 1,
            seed: 0,
            mip_time_limit: Duration::from_secs(10),
            mip_gap: 1e-6,
            move_gain: 0.05,
            batch_window: 16,
            balance: Some(1.04),
            stop: crate::Stop::default(),
        }
    }
}

/// How an answer was found.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveInfo {
    /// The solver that found the answer (`heuristic`, `highs`, `microlp`).
    pub solver: &'static str,
    /// Candidates considered.
    pub pool: usize,
    /// Scenario groups that matter for the choice.
    pub groups: usize,
    /// Proven relative gap to the optimum over the pool (exact solver only).
    pub gap: Option<f64>,
    /// The balance ceiling (utilisation) the pool kept, when the rule applied; a commit
    /// re-checks it against loads that changed since ([`Placer::within_balance`]).
    pub balance_ceiling: Option<f64>,
    /// Wall-clock time of the request.
    pub elapsed: Duration,
}

/// A placement and its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The cell's servers (indices), ascending.
    pub nodes: Vec<u32>,
    /// Why the cell is placed there.
    pub explanation: Explanation,
    /// How the answer was found.
    pub solve: SolveInfo,
}

/// One node out, one in.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The server the node leaves.
    pub out: u32,
    /// The server the node goes to.
    pub into: u32,
    /// The cell after the move.
    pub after: Explanation,
}

/// Where a cell stands for its clients, and the moves that take it to its target, one
/// node at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct MovePath {
    /// The cell where it is now.
    pub current: Explanation,
    /// In order; each step's `after` is the cell after it, the last one's the target.
    /// Empty when no target is better enough to move to (a single-failure break fixed, or
    /// the risk cut by `move_gain`).
    pub steps: Vec<Move>,
    /// Every step leaves the cell at least as good as before it (not down, then
    /// single-failure safety, then risk). False only when no order of the steps can.
    pub monotone: bool,
    /// The order came from an exact search over every intermediate placement (false:
    /// greedy, more than `path::PATH_SEARCH_STATES` of them).
    pub exhaustive: bool,
}

impl MovePath {
    /// The cell at the end of the path.
    pub fn target(&self) -> &Explanation {
        self.steps.last().map_or(&self.current, |m| &m.after)
    }
}

/// What a [`Placer`] needs of an inventory's layout, built in one pass over it: the
/// network devices each server links to directly (its ToRs) and the pool's index of hosts
/// by datacenter, colour, room, row and rack.
#[derive(Debug, Clone)]
pub struct Layout {
    tors: Vec<Vec<u32>>,
    pool_index: pool::PoolIndex,
}

impl Layout {
    /// The layout of `inv`.
    pub fn new(inv: &Inventory) -> Layout {
        let mut tors = vec![Vec::new(); inv.servers.len()];
        for link in &inv.links {
            match (link.a, link.b) {
                (NetNode::Server(s), NetNode::Device(d))
                | (NetNode::Device(d), NetNode::Server(s)) => tors[s as usize].push(d),
                _ => {}
            }
        }
        for t in &mut tors {
            t.sort_unstable();
            t.dedup();
        }
        Layout {
            tors,
            pool_index: pool::PoolIndex::new(inv),
        }
    }
}

/// Places cells on one zone; holds per-thread scratch (one per worker thread).
pub struct Placer<'m> {
    inv: &'m Inventory,
    model: &'m FailureModel,
    evaluator: RiskEvaluator<'m>,
    options: PlaceOptions,
    mip: Option<Box<dyn MipSolver + Send>>,
    layout: Arc<Layout>,
    pool_cache: pool::PoolCache,
    shared_cells: SharedCells,
    /// Explanations without top scenarios, domain counts and rule notes (a batch keeps
    /// only the nodes and the safety flag).
    lean: bool,
}

impl std::fmt::Debug for Placer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// How wide a request's pool is drawn.
#[derive(Debug, Clone, Copy)]
struct Width {
    /// Candidates besides the kept nodes.
    candidates: usize,
    /// Most candidates from one rack.
    per_rack: usize,
    /// A new cell's colour (index); `None`: the least utilised near the clients.
    colour: Option<u32>,
    /// The kept nodes are in every choice (a repair), so the table may leave out what
    /// cannot break a choice holding them; false when a move may drop them.
    kept_stay: bool,
}

/// A choice (pool mask), its proven gap (exact solver) and the solver that found it.
type Chosen = (u64, Option<f64>, &'static str);

/// A request's pool and table, ready for a solver.
struct Prepared {
    pool: Pool,
    table: Table,
    load: Vec<f64>,
    overlap: Vec<(u64, u32)>,
}

impl<'m> Placer<'m> {
    /// A placer for one zone, with its per-zone indexes built.
    pub fn new(inv: &'m Inventory, model: &'m FailureModel, options: PlaceOptions) -> Placer<'m> {
        Placer::with_layout(inv, model, options, Arc::new(Layout::new(inv)))
    }

    /// [`Placer::new`] with `inv`'s [`Layout`] built before (a service keeps one per zone,
    /// so that a request or a pass does not lay the inventory out again).
    pub fn with_layout(
        inv: &'m Inventory,
        model: &'m FailureModel,
        options: PlaceOptions,
        layout: Arc<Layout>,
    ) -> Placer<'m> {
        let mip = match options.solver {
            Solver::Exact(kind) => Some(kind.make()),
            Solver::Heuristic => None,
        };
        Placer {
            inv,
            model,
            evaluator: RiskEvaluator::new(model),
            options,
            mip,
            layout,
            pool_cache: pool::PoolCache::default(),
            shared_cells: SharedCells::default(),
            lean: false,
        }
    }

    /// This placer's explanations leave out the top scenarios, the failure domains and
    /// the rule notes.
    pub(crate) fn lean(mut self) -> Self {
        self.lean = true;
        self
    }

    /// The options it was made with.
    pub fn options(&self) -> &PlaceOptions {
        &self.options
    }

    /// Whether `decision` still keeps the balance rule on the loads of `occ` (which may
    /// have changed since it was solved): every server it adds, i.e. not in `own` (the
    /// cell's current nodes), may take one more node. Always true when the rule did not
    /// apply to its pool. Batches and the service re-solve an answer that fails this.
    pub fn within_balance(&self, occ: &Occupancy, decision: &Decision, own: &[u32]) -> bool {
        match (self.options.balance, decision.solve.balance_ceiling) {
            (Some(b), Some(_)) => decision
                .nodes
                .iter()
                .filter(|s| !own.contains(s))
                .all(|&s| pool::within_balance(&self.layout.pool_index, self.inv, occ, s, b)),
            _ => true,
        }
    }

    fn check_servers(&self, field: &str, servers: &[u32]) -> Result<(), Error> {
        for (i, &s) in servers.iter().enumerate() {
            if s as usize >= self.inv.servers.len() {
                return Err(Error::InvalidRequest {
                    field: field.to_string(),
                    message: format!("server index {s} is not in the inventory"),
                });
            }
            if servers[..i].contains(&s) {
                return Err(Error::InvalidRequest {
                    field: field.to_string(),
                    message: format!(
                        "server '{}' is listed twice",
                        self.inv.servers[s as usize].id
                    ),
                });
            }
        }
        Ok(())
    }

    /// Clients and nodes of one cell fit the 63-bit masks of a cell's state.
    fn check_width(&self, clients: &[u32], nodes: usize) -> Result<(), Error> {
        if clients.len() + nodes > topology::workload::MAX_CELL_SERVERS {
            return Err(Error::InvalidRequest {
                field: "clients".into(),
                message: format!(
                    "{} clients and {nodes} nodes exceed {} servers in one cell",
                    clients.len(),
                    topology::workload::MAX_CELL_SERVERS
                ),
            });
        }
        Ok(())
    }

    fn check_size(&self, size: usize) -> Result<(), Error> {
        let most = topology::workload::MAX_CELL_SIZE;
        if size == 0 || size > most {
            return Err(Error::InvalidRequest {
                field: "size".into(),
                message: format!("a cell has 1 to {most} nodes, not {size}"),
            });
        }
        Ok(())
    }

    /// The pool and table of one request, drawn `width` wide besides the kept nodes.
    #[allow(clippy::too_many_arguments)] // one request's parts
    fn prepare(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        keep: &[u32],
        exclude: &[u32],
        size: usize,
        own: Option<CellSlot>,
        width: Width,
    ) -> Prepared {
        let room = topology::workload::MAX_CELL_SERVERS.saturating_sub(clients.len() + keep.len());
        let wanted = width.candidates;
        let limits = PoolLimits {
            size: wanted.min(room),
            per_rack: width.per_rack.max(1),
            balance: self.options.balance,
            // A thinner pool than usual would trade risk for balance: lift the rule then.
            min_choosable: wanted.min(room),
            // A quorum and one to choose from where a partition can leave clients alone.
            near_quorum: size / 2 + 2,
        };
        let pool = pool::draw(
            &self.layout.pool_index,
            &mut self.pool_cache,
            self.inv,
            occ,
            &PoolRequest {
                clients,
                keep,
                exclude,
                salt: clients
                    .iter()
                    .chain(keep)
                    .fold(self.options.seed, |h, &s| pool::mix(u64::from(s), h)),
                colour: width.colour,
            },
            limits,
        );
        let table = Table::build(
            &mut self.evaluator,
            self.model,
            clients,
            &pool.members,
            size,
            if width.kept_stay { pool.fixed } else { 0 },
        );
        let load = pool
            .members
            .iter()
            .map(|&s| {
                let cap = self.inv.servers[s as usize].capacity.max(1);
                f64::from(occ.load(s)) / f64::from(cap)
            })
            .collect();
        // Other cells with more than a quorum's worth of servers in the pool.
        let quorum = size / 2 + 1;
        let fewest = occ.fewest_shared(quorum);
        let mut overlap = Vec::new();
        self.shared_cells
            .collect(occ, &pool.members, own, fewest, |slot, mask| {
                let other_quorum = occ.size(slot) / 2 + 1;
                let most = (quorum.min(other_quorum) - 1) as u32;
                if mask.count_ones() > most {
                    overlap.push((mask, most));
                }
            });
        overlap.sort_unstable();
        overlap.dedup();
        Prepared {
            pool,
            table,
            load,
            overlap,
        }
    }

    fn problem<'t>(&self, prep: &'t Prepared) -> Problem<'t> {
        Problem {
            table: &prep.table,
            fixed: prep.pool.fixed,
            choosable: prep.pool.choosable | prep.pool.fixed,
            load: prep.load.clone(),
            load_weight: self.options.load_weight,
            overlap: prep.overlap.clone(),
        }
    }

    /// Chooses with the configured solver: single-failure safe first when possible, else
    /// the lowest risk. Returns the choice, the proven gap (exact solver) and the solver
    /// that found it. `None` only when the exact solver proved that no allowed choice
    /// exists in the pool: a heuristic that finds none hands the pool to it.
    fn choose(&mut self, prep: &Prepared) -> Result<Option<Chosen>, Error> {
        let problem = self.problem(prep);
        if let Solver::Heuristic = self.options.solver {
            let (restarts, seed) = (self.options.restarts, self.options.seed);
            if let Some(x) = search::solve(&problem, true, restarts, seed) {
                let cost = problem.cost(x);
                let x = if !cost.down && cost.unsafe_groups == 0 {
                    Some(x)
                } else {
                    search::solve(&problem, false, restarts, seed)
                };
                if let Some(x) = x {
                    return Ok(Some((x, None, "heuristic")));
                }
            }
        }
        // The exact solver: configured, or proving the heuristic's empty hand.
        let solver = self
            .mip
            .get_or_insert_with(|| SolverKind::Highs.make())
            .as_mut();
        let name = solver.name();
        let limits = exact::Limits {
            time_limit: self.options.mip_time_limit,
            gap: self.options.mip_gap,
        };
        if let Some(found) = exact::solve(solver, &problem, true, limits)? {
            return Ok(Some((found.choice, Some(found.gap), name)));
        }
        Ok(exact::solve(solver, &problem, false, limits)?
            .map(|found| (found.choice, Some(found.gap), name)))
    }

    fn decide(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        keep: &[u32],
        exclude: &[u32],
        size: usize,
        own: Option<CellSlot>,
    ) -> Result<Decision, Error> {
        let start = Instant::now();
        // A repair keeps most nodes: a smaller pool keeps its table small.
        let width = Width {
            candidates: if keep.is_empty() {
                self.options.pool_size
            } else {
                self.options.repair_pool_size
            },
            per_rack: self.options.per_rack,
            colour: None,
            kept_stay: true,
        };
        let mut prep = self.prepare(occ, clients, keep, exclude, size, own, width);
        let mut chosen = self.choose(&prep)?;
        if chosen.is_none() {
            // Widen before giving up: every eligible server that fits the masks, any
            // number per rack (two nodes in one rack can be right in a small zone), then
            // (a new cell) every other colour.
            let room =
                topology::workload::MAX_CELL_SERVERS.saturating_sub(clients.len() + keep.len());
            let widest = Width {
                candidates: room,
                per_rack: room,
                colour: None,
                kept_stay: true,
            };
            prep = self.prepare(occ, clients, keep, exclude, size, own, widest);
            chosen = self.choose(&prep)?;
            let first = prep.pool.colour.clone();
            let colours = if keep.is_empty() {
                self.layout.pool_index.colour_count()
            } else {
                0
            };
            for c in 0..colours {
                if chosen.is_some() {
                    break;
                }
                // The colour just searched is not drawn and tabled again.
                if first.as_deref() == Some(self.layout.pool_index.colour_name(c)) {
                    continue;
                }
                let other = Width {
                    colour: Some(c),
                    ..widest
                };
                let next = self.prepare(occ, clients, keep, exclude, size, own, other);
                chosen = self.choose(&next)?;
                // The answer, or else the widest colour for the explanation.
                let wider = next.pool.choosable.count_ones() > prep.pool.choosable.count_ones();
                if chosen.is_some() || wider {
                    prep = next;
                }
            }
            if chosen.is_none() {
                return Err(self.no_placement(&prep, size, room, colours));
            }
        }
        let (x, gap, solver) = chosen.expect("found");
        let explanation = self.explain_choice(&prep, x);
        let nodes = members_of(&prep.pool, x);
        Ok(Decision {
            nodes,
            explanation,
            solve: SolveInfo {
                solver,
                pool: prep.pool.members.len(),
                groups: prep.table.groups.len(),
                gap,
                balance_ceiling: prep.pool.balance_ceiling,
                elapsed: start.elapsed(),
            },
        })
    }

    /// Places a new cell of `size` nodes for `clients` (server indices).
    pub fn place(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        size: usize,
    ) -> Result<Decision, Error> {
        self.check_servers("clients", clients)?;
        self.check_size(size)?;
        self.check_width(clients, size)?;
        if clients.is_empty() {
            return Err(Error::InvalidRequest {
                field: "clients".into(),
                message: "a cell needs at least one client".into(),
            });
        }
        self.decide(occ, clients, &[], &[], size, None)
    }

    /// Replaces node `server` of a cell on `nodes`; the other nodes stay. `slot` is the
    /// cell's own entry in `occ`, if it is recorded there.
    pub fn replace(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        nodes: &[u32],
        server: u32,
        slot: Option<CellSlot>,
    ) -> Result<Decision, Error> {
        self.check_servers("clients", clients)?;
        self.check_servers("nodes", nodes)?;
        self.check_width(clients, nodes.len())?;
        if !nodes.contains(&server) {
            return Err(Error::InvalidRequest {
                field: "server".into(),
                message: format!(
                    "server '{}' is not a node of the cell",
                    self.inv
                        .servers
                        .get(server as usize)
                        .map_or("?", |s| s.id.as_str())
                ),
            });
        }
        let keep: Vec<u32> = nodes.iter().copied().filter(|&n| n != server).collect();
        self.decide(occ, clients, &keep, &[server], nodes.len(), slot)
    }

    /// For a cell on `nodes` serving `clients` (new ones, after they moved): the target
    /// placement and the single-node moves that reach it. The target is the best choice
    /// (the configured solver, single-failure safe first) over a pool of the current nodes
    /// and `pool_size` candidates near the clients, then as many current nodes kept as
    /// keep it within `move_gain` of that risk; no move at all unless it fixes a
    /// single-failure break or cuts the risk by `move_gain`. Every intermediate placement
    /// keeps the hard rules (capacity, colour, no shared quorum) with one node in flight,
    /// and is no worse than the one before it whenever some order allows
    /// ([`path::plan`]).
    pub fn plan_moves(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        nodes: &[u32],
        slot: Option<CellSlot>,
    ) -> Result<MovePath, Error> {
        self.check_servers("clients", clients)?;
        self.check_servers("nodes", nodes)?;
        self.check_width(clients, nodes.len())?;
        if clients.is_empty() {
            return Err(Error::InvalidRequest {
                field: "clients".into(),
                message: "a cell needs at least one client".into(),
            });
        }
        let width = Width {
            candidates: self.options.pool_size,
            per_rack: self.options.per_rack,
            colour: None,
            kept_stay: false,
        };
        let mut prep = self.prepare(occ, clients, nodes, &[], nodes.len(), slot, width);
        // The current nodes are members like any other: the target may drop them.
        let current = prep.pool.fixed;
        prep.pool.choosable |= current;
        prep.pool.fixed = 0;
        let current_explanation = self.explain_choice(&prep, current);
        let stay = MovePath {
            current: current_explanation.clone(),
            steps: Vec::new(),
            monotone: true,
            exhaustive: true,
        };
        let Some((best, ..)) = self.choose(&prep)? else {
            return Ok(stay);
        };
        let problem = self.problem(&prep);
        let target = path::keep_current(&problem, current, best, self.options.move_gain);
        let (now, then) = (problem.cost(current), problem.cost(target));
        let fixes = (then.down, then.unsafe_groups) < (now.down, now.unsafe_groups);
        let gains = (then.down, then.unsafe_groups) == (now.down, now.unsafe_groups)
            && then.risk < now.risk * (1.0 - self.options.move_gain)
            && now.risk - then.risk > 1e-15;
        if !(fixes || gains) {
            return Ok(stay);
        }
        let plan = path::plan(&problem, current, target);
        let steps = plan
            .states
            .windows(2)
            .map(|w| Move {
                out: prep.pool.members[(w[0] & !w[1]).trailing_zeros() as usize],
                into: prep.pool.members[(w[1] & !w[0]).trailing_zeros() as usize],
                after: self.explain_choice(&prep, w[1]),
            })
            .collect();
        Ok(MovePath {
            current: current_explanation,
            steps,
            monotone: plan.monotone,
            exhaustive: plan.exhaustive,
        })
    }
}

impl Placer<'_> {
    /// Why a cell on `nodes` serving `clients` stands as it does: its exact risk, the
    /// elements that break it alone, its heaviest scenarios and its failure domains.
    /// Nothing is chosen, so no rule is binding: `binding` is empty (the decision that
    /// placed the cell had its own).
    pub fn explain(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        nodes: &[u32],
        slot: Option<CellSlot>,
    ) -> Result<Explanation, Error> {
        self.check_servers("clients", clients)?;
        self.check_servers("nodes", nodes)?;
        self.check_width(clients, nodes.len())?;
        let width = Width {
            candidates: 0,
            per_rack: self.options.per_rack,
            colour: None,
            kept_stay: false,
        };
        let prep = self.prepare(occ, clients, nodes, &[], nodes.len(), slot, width);
        let mut explanation = self.explain_choice(&prep, prep.pool.fixed);
        explanation.binding.clear();
        Ok(explanation)
    }
}

fn members_of(pool: &Pool, x: u64) -> Vec<u32> {
    let mut nodes: Vec<u32> = bits(x).map(|i| pool.members[i]).collect();
    nodes.sort_unstable();
    nodes
}
