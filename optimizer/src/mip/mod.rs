//! Exact 0/1 programs: one problem shape, two backends (HiGHS and microlp through good_lp); pure, no IO.
//!
//! A [`BinaryProgram`] minimises `objective·x` over binary `x` subject to ranged rows and
//! fixed variables. [`HighsSolver`] and [`MicroLpSolver`] implement [`MipSolver`] for it;
//! [`SolverKind`] names them (`"highs"`, `"microlp"`).
//!
//! Both backends get the same model, built through good_lp. Two things are done around
//! the backend on every solve, whatever it is:
//! - the objective is rescaled (see [`objective_scale`]) because placement weights are
//!   probabilities as small as 1e-8, below the absolute tolerances (1e-6 … 1e-7) the
//!   solvers use to prune nodes and price columns: unscaled, such weights all look like
//!   zero and any feasible point passes as optimal;
//! - the returned values are rounded to booleans, re-checked against every row and fixed
//!   variable, and the objective is recomputed from them in the caller's units, so a
//!   solution never carries the backend's rounding or our scaling.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use good_lp::solvers::{
    ResolutionError, Solution as _, SolutionStatus, Solver, SolverModel, WithMipGap, WithTimeLimit,
};
use good_lp::{variable, Expression, ProblemVariables, Variable};
use highs::HighsModelStatus;

use crate::Error;

/// A time limit that never binds: pass it as [`BinaryProgram::time_limit`] to solve to
/// the end.
pub const NO_TIME_LIMIT: Duration = Duration::MAX;

/// Absolute slack, per unit of the row's largest coefficient, allowed when checking a row
/// (the solvers' own primal feasibility tolerance is 1e-6 too).
pub const FEASIBILITY_TOLERANCE: f64 = 1e-6;

/// Relative gap under which a solve that the backend reports as finished counts as
/// [`MipStatus::Optimal`] rather than [`MipStatus::Feasible`].
const OPTIMALITY_GAP: f64 = 1e-9;

/// Largest absolute objective weight handed to a backend after scaling: well inside the
/// range where HiGHS's and microlp's absolute tolerances stay meaningful.
const MAX_SCALED_WEIGHT: f64 = 1e6;

/// Time limits at least this long (about 31 years) are passed to no backend: microlp
/// takes a `Duration` built from float seconds, which overflows near [`Duration::MAX`].
const UNLIMITED_SECONDS: f64 = 1e9;

/// One linear row: `lower <= Σ coefficient·x[index] <= upper`.
///
/// Use `f64::NEG_INFINITY` / `f64::INFINITY` for a one-sided row; `lower == upper` is an
/// equality. Repeated indices add up.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `(variable index, coefficient)` pairs.
    pub terms: Vec<(usize, f64)>,
    /// Least value of the sum; `f64::NEG_INFINITY` for none.
    pub lower: f64,
    /// Greatest value of the sum; `f64::INFINITY` for none.
    pub upper: f64,
}

impl Row {
    /// `Σ terms <= upper`.
    pub fn at_most(terms: Vec<(usize, f64)>, upper: f64) -> Self {
        Row {
            terms,
            lower: f64::NEG_INFINITY,
            upper,
        }
    }

    /// `Σ terms >= lower`.
    pub fn at_least(terms: Vec<(usize, f64)>, lower: f64) -> Self {
        Row {
            terms,
            lower,
            upper: f64::INFINITY,
        }
    }

    /// `Σ terms == value`.
    pub fn equal(terms: Vec<(usize, f64)>, value: f64) -> Self {
        Row {
            terms,
            lower: value,
            upper: value,
        }
    }

    /// The row's sum at `x` (`x` must cover every index of the row).
    pub fn activity(&self, x: &[bool]) -> f64 {
        self.terms
            .iter()
            .filter(|&&(i, _)| x[i])
            .map(|&(_, a)| a)
            .sum()
    }

    /// Whether `x` satisfies the row within [`FEASIBILITY_TOLERANCE`].
    pub fn holds(&self, x: &[bool]) -> bool {
        let largest = self.terms.iter().fold(1.0_f64, |m, &(_, a)| m.max(a.abs()));
        let slack = FEASIBILITY_TOLERANCE * largest;
        let sum = self.activity(x);
        sum >= self.lower - slack && sum <= self.upper + slack
    }

    /// A row whose coefficients are all zero: its sum is 0 whatever `x` is.
    fn is_constant(&self) -> bool {
        self.terms.iter().all(|&(_, a)| a == 0.0)
    }
}

/// A 0/1 program: minimise `objective·x` subject to `rows`, `x` binary.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryProgram {
    /// Number of variables; every index in the program is below it.
    pub vars: usize,
    /// One weight a variable (`len == vars`); any finite sign.
    pub objective: Vec<f64>,
    /// The linear rows every solution must satisfy.
    pub rows: Vec<Row>,
    /// Variables forced to 1.
    pub fixed_one: Vec<usize>,
    /// Variables forced to 0. A variable in both lists makes the program infeasible.
    pub fixed_zero: Vec<usize>,
    /// Wall-clock budget of one solve; [`NO_TIME_LIMIT`] for none. When it runs out the
    /// solve returns the best solution found ([`MipStatus::Feasible`]) or, with none,
    /// [`Error::SolverTimeLimit`].
    pub time_limit: Duration,
    /// Relative gap `(objective - bound) / |objective|` at which the solver may stop;
    /// 0 asks for a proven optimum.
    pub mip_gap: f64,
}

impl BinaryProgram {
    /// A program over `objective.len()` variables with no rows, nothing fixed, no time
    /// limit and a zero gap.
    pub fn new(objective: Vec<f64>) -> Self {
        BinaryProgram {
            vars: objective.len(),
            objective,
            rows: Vec::new(),
            fixed_one: Vec::new(),
            fixed_zero: Vec::new(),
            time_limit: NO_TIME_LIMIT,
            mip_gap: 0.0,
        }
    }

    /// `objective·x`, summed in index order.
    pub fn objective_value(&self, x: &[bool]) -> f64 {
        self.objective
            .iter()
            .zip(x)
            .filter(|&(_, &on)| on)
            .map(|(&c, _)| c)
            .sum()
    }

    /// Whether `x` has one value a variable, respects the fixed variables and satisfies
    /// every row (within [`FEASIBILITY_TOLERANCE`]).
    pub fn is_feasible(&self, x: &[bool]) -> bool {
        self.violation(x).is_none()
    }

    /// The first thing `x` violates, in words; `None` when it is feasible.
    pub fn violation(&self, x: &[bool]) -> Option<String> {
        if x.len() != self.vars {
            return Some(format!("{} values for {} variables", x.len(), self.vars));
        }
        if let Some(&i) = self.fixed_one.iter().find(|&&i| !x[i]) {
            return Some(format!("x{i} is fixed to 1"));
        }
        if let Some(&i) = self.fixed_zero.iter().find(|&&i| x[i]) {
            return Some(format!("x{i} is fixed to 0"));
        }
        let (r, row) = self
            .rows
            .iter()
            .enumerate()
            .find(|(_, row)| !row.holds(x))?;
        Some(format!(
            "row {r}: sum {} is outside [{}, {}]",
            row.activity(x),
            row.lower,
            row.upper
        ))
    }

    /// Checks the program's shape: lengths, indices and finite numbers.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| Err(Error::InvalidProgram { message });
        if self.objective.len() != self.vars {
            return invalid(format!(
                "{} objective weights for {} variables",
                self.objective.len(),
                self.vars
            ));
        }
        if let Some(i) = self.objective.iter().position(|c| !c.is_finite()) {
            return invalid(format!("objective weight of x{i} is not finite"));
        }
        for (r, row) in self.rows.iter().enumerate() {
            if let Some(&(i, a)) = row
                .terms
                .iter()
                .find(|&&(i, a)| i >= self.vars || !a.is_finite())
            {
                return invalid(format!(
                    "row {r}: term ({i}, {a}) has an index past {} variables or a non-finite coefficient",
                    self.vars
                ));
            }
            if row.lower.is_nan() || row.upper.is_nan() {
                return invalid(format!("row {r}: a bound is NaN"));
            }
        }
        if let Some(&i) = self
            .fixed_one
            .iter()
            .chain(&self.fixed_zero)
            .find(|&&i| i >= self.vars)
        {
            return invalid(format!(
                "fixed variable {i} is past {} variables",
                self.vars
            ));
        }
        if !(self.mip_gap >= 0.0 && self.mip_gap.is_finite()) {
            return invalid(format!(
                "mip_gap {} is not a finite non-negative number",
                self.mip_gap
            ));
        }
        Ok(())
    }

    /// The per-variable fixings: `Some(value)` for a fixed variable.
    fn fixings(&self) -> Vec<Option<bool>> {
        let mut fixed = vec![None; self.vars];
        for &i in &self.fixed_zero {
            fixed[i] = Some(false);
        }
        for &i in &self.fixed_one {
            fixed[i] = Some(true);
        }
        fixed
    }
}

/// How a solve ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MipStatus {
    /// Proven optimal: `bound == objective`.
    Optimal,
    /// A feasible solution, but the solve stopped at the time limit or the gap before
    /// proving it optimal; `bound` is what was proven.
    Feasible,
    /// No binary point satisfies the program.
    Infeasible,
}

/// The answer to one [`BinaryProgram`].
#[derive(Debug, Clone, PartialEq)]
pub struct MipSolution {
    /// How far the solve got: optimal, feasible (limit reached) or infeasible.
    pub status: MipStatus,
    /// One value a variable; empty when [`MipStatus::Infeasible`].
    pub values: Vec<bool>,
    /// `objective·values`, in the program's units; `+∞` when infeasible.
    pub objective: f64,
    /// A proven lower bound on every feasible objective: `== objective` when optimal,
    /// `-∞` when the backend proved none, `+∞` when infeasible.
    pub bound: f64,
    /// Wall-clock time of the whole solve, model building included.
    pub solve_time: Duration,
}

impl MipSolution {
    fn infeasible(started: Instant) -> Self {
        MipSolution {
            status: MipStatus::Infeasible,
            values: Vec::new(),
            objective: f64::INFINITY,
            bound: f64::INFINITY,
            solve_time: started.elapsed(),
        }
    }

    /// The relative gap `(objective - bound) / |objective|`: 0 when optimal.
    pub fn gap(&self) -> f64 {
        match self.status {
            MipStatus::Optimal => 0.0,
            MipStatus::Infeasible => f64::NAN,
            MipStatus::Feasible => {
                (self.objective - self.bound) / self.objective.abs().max(f64::MIN_POSITIVE)
            }
        }
    }
}

/// An exact 0/1 program solver.
pub trait MipSolver {
    /// The backend's short name, as [`SolverKind`] spells it.
    fn name(&self) -> &'static str;

    /// Solves `program`. An infeasible program is `Ok` with [`MipStatus::Infeasible`];
    /// errors are a malformed program, a time limit with no solution, or a backend failure.
    fn solve(&mut self, program: &BinaryProgram) -> Result<MipSolution, Error>;
}

/// The factor the objective is multiplied by before a backend sees it.
///
/// The smallest non-zero weight becomes 1, unless that would push the largest past
/// [`MAX_SCALED_WEIGHT`]; then the largest becomes [`MAX_SCALED_WEIGHT`]. A large scale
/// is what we want: the backends prune nodes whose bound is within ~1e-6 (absolute) of
/// the incumbent, so the relative precision of the optimum is about 1e-6 divided by the
/// scaled objective. Relative gaps do not change under scaling.
pub fn objective_scale(objective: &[f64]) -> f64 {
    let (smallest, largest) = objective
        .iter()
        .map(|c| c.abs())
        .filter(|&c| c > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), c| {
            (lo.min(c), hi.max(c))
        });
    if largest == 0.0 {
        return 1.0;
    }
    // The cap keeps a program of subnormal weights from producing an infinite scale.
    (1.0 / smallest).min(MAX_SCALED_WEIGHT / largest).min(1e300)
}

/// What can be said without a backend: a malformed program is an error; some programs are
/// infeasible on their face (a variable fixed both ways, a row whose bounds cross or a
/// constant row that misses its range); a program without variables is solved at once.
fn settle_without_backend(
    program: &BinaryProgram,
    started: Instant,
) -> Result<Option<MipSolution>, Error> {
    program.validate()?;
    let fixed_both_ways = program
        .fixed_one
        .iter()
        .any(|i| program.fixed_zero.contains(i));
    let empty_row_fails = program.rows.iter().any(|row| {
        row.lower > row.upper
            || row.lower == f64::INFINITY
            || row.upper == f64::NEG_INFINITY
            || (row.is_constant() && !(row.lower <= 0.0 && 0.0 <= row.upper))
    });
    if fixed_both_ways || empty_row_fails {
        return Ok(Some(MipSolution::infeasible(started)));
    }
    if program.vars == 0 {
        // Every row is constant here (no index can be valid) and was checked above;
        // HiGHS would call the model empty rather than solve it.
        return Ok(Some(MipSolution {
            status: MipStatus::Optimal,
            values: Vec::new(),
            objective: 0.0,
            bound: 0.0,
            solve_time: started.elapsed(),
        }));
    }
    Ok(None)
}

/// Builds the good_lp model of `program` for `solver`, the objective multiplied by
/// `scale`. Variable `i` of the program is column `i` of the model.
fn build_model<S: Solver>(
    program: &BinaryProgram,
    scale: f64,
    solver: S,
) -> (S::Model, Vec<Variable>) {
    let mut problem = ProblemVariables::new();
    let fixed = program.fixings();
    let vars: Vec<Variable> = fixed
        .iter()
        .map(|fix| {
            // Fixing by bounds rather than by rows: the solver drops such columns at once.
            let def = variable().binary();
            problem.add(match fix {
                Some(true) => def.min(1),
                Some(false) => def.max(0),
                None => def,
            })
        })
        .collect();
    let mut objective = Expression::with_capacity(program.vars);
    for (&var, &c) in vars.iter().zip(&program.objective) {
        if c != 0.0 {
            objective.add_mul(c * scale, var);
        }
    }
    let mut model = problem.minimise(objective).using(solver);
    for row in program.rows.iter().filter(|row| !row.is_constant()) {
        let mut sum = Expression::with_capacity(row.terms.len());
        for &(i, a) in &row.terms {
            sum.add_mul(a, vars[i]);
        }
        // good_lp has no ranged rows: a two-sided row becomes two one-sided ones.
        if row.lower == row.upper {
            model.add_constraint(sum.eq(row.lower));
            continue;
        }
        if row.lower > f64::NEG_INFINITY {
            model.add_constraint(sum.clone().geq(row.lower));
        }
        if row.upper < f64::INFINITY {
            model.add_constraint(sum.leq(row.upper));
        }
    }
    (model, vars)
}

/// Turns a backend's rounded answer into a [`MipSolution`]: re-checks it against the
/// program, recomputes the objective in the program's units and unscales the bound.
fn finish(
    backend: &'static str,
    program: &BinaryProgram,
    values: Vec<bool>,
    proven_optimal: bool,
    scaled_bound: Option<f64>,
    scale: f64,
    started: Instant,
) -> Result<MipSolution, Error> {
    if let Some(violation) = program.violation(&values) {
        return Err(Error::Solver {
            backend,
            message: format!("returned a point that is not feasible: {violation}"),
        });
    }
    let objective = program.objective_value(&values);
    let (status, bound) = if proven_optimal {
        (MipStatus::Optimal, objective)
    } else {
        // The backend's bound went through our scaling and its own tolerances: never let
        // it claim more than the solution in hand.
        let bound = scaled_bound.map_or(f64::NEG_INFINITY, |b| (b / scale).min(objective));
        (MipStatus::Feasible, bound)
    };
    Ok(MipSolution {
        status,
        values,
        objective,
        bound,
        solve_time: started.elapsed(),
    })
}

/// The time limit in seconds for a backend, or `None` when it does not bind.
fn limited_seconds(limit: Duration) -> Option<f64> {
    let seconds = limit.as_secs_f64();
    (seconds < UNLIMITED_SECONDS).then_some(seconds)
}

/// HiGHS through good_lp, with the options that matter for small placement programs.
///
/// good_lp builds the model; we then take the `highs::Model` out of it
/// (`HighsProblem::try_into_inner`) and set options and solve on it ourselves, because
/// good_lp's `HighsSolution` keeps only the primal values: the MIP dual bound
/// (`mip_dual_bound`) and gap are info values of the solved model, which good_lp drops.
///
/// HiGHS's task scheduler belongs to the calling OS thread and is sized by the first solve
/// on it: a later solve on the same thread that asks for another explicit `threads` count
/// fails. Keep one configuration per thread (the service's solver threads own one placer,
/// so one solver, each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighsSolver {
    /// HiGHS's `threads` option; 0 lets HiGHS choose.
    pub threads: u32,
    /// HiGHS's `presolve` (`"choose"` when on, `"off"` when off).
    pub presolve: bool,
    /// HiGHS's `mip_heuristic_run_feasibility_jump`.
    pub feasibility_jump: bool,
}

impl Default for HighsSolver {
    fn default() -> Self {
        HighsSolver::tuned()
    }
}

impl HighsSolver {
    /// One thread, no presolve, no feasibility jump: on programs of a few hundred binaries
    /// these cost more than they save (2.5x faster than [`HighsSolver::highs_defaults`] on
    /// a 350-binary placement program, 4x on 14-variable ones: see `tests::timing`).
    pub fn tuned() -> Self {
        HighsSolver {
            threads: 1,
            presolve: false,
            feasibility_jump: false,
        }
    }

    /// HiGHS's own defaults, for comparison.
    pub fn highs_defaults() -> Self {
        HighsSolver {
            threads: 0,
            presolve: true,
            feasibility_jump: true,
        }
    }

    fn error(message: impl fmt::Display) -> Error {
        Error::Solver {
            backend: "highs",
            message: message.to_string(),
        }
    }
}

impl MipSolver for HighsSolver {
    fn name(&self) -> &'static str {
        "highs"
    }

    fn solve(&mut self, program: &BinaryProgram) -> Result<MipSolution, Error> {
        let started = Instant::now();
        if let Some(settled) = settle_without_backend(program, started)? {
            return Ok(settled);
        }
        let scale = objective_scale(&program.objective);
        let (problem, _) = build_model(program, scale, good_lp::highs);
        let mut model = problem.try_into_inner().map_err(HighsSolver::error)?;
        let presolve = if self.presolve { "choose" } else { "off" };
        let threads = i32::try_from(self.threads).map_err(HighsSolver::error)?;
        let time_limit = limited_seconds(program.time_limit).unwrap_or(f64::INFINITY);
        let set = [
            model.try_set_option("threads", threads).err(),
            model.try_set_option("presolve", presolve).err(),
            model
                .try_set_option("mip_heuristic_run_feasibility_jump", self.feasibility_jump)
                .err(),
            model.try_set_option("time_limit", time_limit).err(),
            model.try_set_option("mip_rel_gap", program.mip_gap).err(),
            // The absolute gap is in scaled units, which mean nothing to the caller: only
            // the relative gap may stop the search.
            model.try_set_option("mip_abs_gap", 0.0).err(),
        ];
        if let Some(status) = set.into_iter().flatten().next() {
            return Err(HighsSolver::error(format_args!(
                "setting an option failed: {status:?}"
            )));
        }
        let solved = model.try_solve().map_err(|status| {
            let hint = if self.threads == 0 {
                ""
            } else {
                " (as it does when an earlier solve on this OS thread used another `threads` \
                 count: HiGHS's scheduler is sized once per thread)"
            };
            HighsSolver::error(format_args!("run failed: {status:?}{hint}"))
        })?;
        let status = solved.status();
        let finished = match status {
            HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => {
                return Ok(MipSolution::infeasible(started));
            }
            HighsModelStatus::Optimal => true,
            HighsModelStatus::ReachedTimeLimit
            | HighsModelStatus::ReachedIterationLimit
            | HighsModelStatus::ReachedSolutionLimit
            | HighsModelStatus::ReachedInterrupt
            | HighsModelStatus::ReachedMemoryLimit
            | HighsModelStatus::ObjectiveBound
            | HighsModelStatus::ObjectiveTarget => false,
            other => return Err(HighsSolver::error(format_args!("model status {other:?}"))),
        };
        let solution = solved.get_solution();
        // primal_solution_status says whether HiGHS holds any feasible point at all.
        if solved.primal_solution_status() != highs::HighsSolutionStatus::Feasible {
            return Err(if status == HighsModelStatus::ReachedTimeLimit {
                Error::SolverTimeLimit {
                    backend: "highs",
                    time_limit: program.time_limit,
                }
            } else {
                HighsSolver::error(format_args!("stopped ({status:?}) with no feasible point"))
            });
        }
        let values = solution.columns().iter().map(|&v| v > 0.5).collect();
        let gap = solved.mip_gap();
        let dual_bound = solved
            .double_info_value(c"mip_dual_bound")
            .ok()
            .filter(|b| b.is_finite());
        // "Optimal" from HiGHS also means "within mip_rel_gap": only a closed gap is ours.
        let proven_optimal = finished && gap.is_finite() && gap <= OPTIMALITY_GAP;
        finish(
            "highs",
            program,
            values,
            proven_optimal,
            dual_bound,
            scale,
            started,
        )
    }
}

/// good_lp's pure-Rust microlp backend: no native build, slower than HiGHS on anything
/// but tiny programs.
///
/// microlp (0.6) does take a time limit and a relative gap, and reports its best bound in
/// its statistics; both are passed and read through good_lp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MicroLpSolver;

impl MipSolver for MicroLpSolver {
    fn name(&self) -> &'static str {
        "microlp"
    }

    fn solve(&mut self, program: &BinaryProgram) -> Result<MipSolution, Error> {
        let started = Instant::now();
        if let Some(settled) = settle_without_backend(program, started)? {
            return Ok(settled);
        }
        let scale = objective_scale(&program.objective);
        let (mut problem, vars) = build_model(program, scale, good_lp::microlp);
        if let Some(seconds) = limited_seconds(program.time_limit) {
            problem = problem.with_time_limit(seconds);
        }
        // validate() made the gap finite and non-negative, which is all good_lp checks.
        let problem = problem
            .with_mip_gap(program.mip_gap as f32)
            .map_err(|e| Error::Solver {
                backend: "microlp",
                message: e.to_string(),
            })?;
        let solution = match problem.solve() {
            Ok(solution) => solution,
            Err(ResolutionError::Infeasible) => return Ok(MipSolution::infeasible(started)),
            // good_lp turns microlp's "interrupted with no incumbent" into an untyped error;
            // the clock tells that case apart from a real failure.
            Err(_) if started.elapsed() >= program.time_limit => {
                return Err(Error::SolverTimeLimit {
                    backend: "microlp",
                    time_limit: program.time_limit,
                })
            }
            Err(e) => {
                return Err(Error::Solver {
                    backend: "microlp",
                    message: e.to_string(),
                })
            }
        };
        let values = vars.iter().map(|&v| solution.value(v) > 0.5).collect();
        let proven_optimal = matches!(solution.status(), SolutionStatus::Optimal);
        let best_bound = solution.into_inner().stats().best_bound;
        finish(
            "microlp",
            program,
            values,
            proven_optimal,
            best_bound,
            scale,
            started,
        )
    }
}

/// The backends by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SolverKind {
    /// HiGHS, built from source: the fast one.
    Highs,
    /// microlp, pure Rust: slower, no native dependency.
    MicroLp,
}

impl SolverKind {
    /// Every backend, in the order they are preferred.
    pub const ALL: [SolverKind; 2] = [SolverKind::Highs, SolverKind::MicroLp];

    /// The name [`FromStr`] accepts and [`MipSolver::name`] returns.
    pub fn name(self) -> &'static str {
        match self {
            SolverKind::Highs => "highs",
            SolverKind::MicroLp => "microlp",
        }
    }

    /// A fresh solver of this kind (HiGHS with [`HighsSolver::tuned`] options).
    pub fn make(self) -> Box<dyn MipSolver + Send> {
        match self {
            SolverKind::Highs => Box::new(HighsSolver::tuned()),
            SolverKind::MicroLp => Box::new(MicroLpSolver),
        }
    }
}

impl fmt::Display for SolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SolverKind {
    type Err = Error;

    /// `"highs"` or `"microlp"`, ignoring ASCII case and surrounding blanks.
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim();
        SolverKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Error::UnknownSolver {
                name: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests;
