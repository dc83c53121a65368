//! The JSON bodies of rebalancing plans: the request, execution settings, and the plan with
//! its progress, curve and steps.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use store::{PlanRecord, PlanStepRecord, StepStatus};

/// What a plan must achieve, against the ledger's current cells. At least one goal.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Take every node off these servers, racks, rows, rooms, datacenters, network devices
    /// or power devices (everything they feed), and off every `draining` server. An empty
    /// list drains only the inventory's `draining` servers.
    #[schema(example = json!(["dc1-h1-row01-rk01"]))]
    pub drain: Option<Vec<String>>,
    /// Take every node off failed servers and make unsafe cells single-failure safe.
    #[serde(default)]
    pub repair: bool,
    /// Bring the most loaded server down to this many times the mean (at least 1).
    pub balance: Option<f64>,
    /// Lower the total risk by moves that each gain enough.
    #[serde(default)]
    pub improve: bool,
    /// Most moves; the mandatory ones (failed, then draining) come first.
    pub max_moves: Option<u64>,
    /// Tie-breaking seed; the same ledger, inventory and seed give the same plan.
    pub seed: Option<u64>,
    /// Start executing at once with these settings (otherwise a dry run).
    #[serde(default, deserialize_with = "super::optional_object")]
    pub execute: Option<ExecuteRequest>,
}

/// How to execute a plan.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// Moves per second (0.01 to 100,000); 10 when absent.
    pub rate: Option<f64>,
    /// Most steps committed but not yet durable at once (1 to 1,024); 16 when absent.
    pub concurrency: Option<u32>,
}

/// The fleet after some moves of a plan.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct CurvePointView {
    /// Moves made so far.
    pub moves: u64,
    /// Sum of the cells' yearly outage probabilities.
    pub total_risk: f64,
    /// Cells that are not single-failure safe.
    pub unsafe_cells: u64,
    /// Most nodes on one server over the mean of the servers holding any.
    pub load_max_over_mean: f64,
    /// Nodes still on failed or draining servers.
    pub nodes_to_move: u64,
}

/// A goal the plan could not meet, with why.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct UnmetView {
    /// The goal not met: `failed`, `drain`, `unsafe`, `balance` or `improve`.
    pub reason: String,
    /// The cell; absent for a goal of the whole fleet.
    pub cell_id: Option<String>,
    /// The server id of the node that stays where it is; absent for a cell left unsafe.
    pub server: Option<String>,
    /// Why, for a person to read.
    pub why: String,
}

/// What the plan achieves: the curve (sampled to at most a few hundred points, always with
/// the first and the last) and the unmet goals.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct PlanSummaryView {
    /// Moves in the plan.
    pub moves: u64,
    /// Moves per reason (`failed`, `drain`, `unsafe`, `balance`, `improve`).
    pub moves_by_reason: std::collections::BTreeMap<String, u64>,
    /// The fleet before any move, then after each (sampled).
    pub curve: Vec<CurvePointView>,
    /// The first 1,000 unmet goals.
    pub unmet: Vec<UnmetView>,
    /// Unmet goals beyond those listed.
    pub unmet_more: u64,
}

/// Steps by outcome.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq)]
pub struct PlanProgress {
    /// Steps in the plan.
    pub steps: u64,
    /// Steps not yet executed.
    pub pending: u64,
    /// Steps committed as planned.
    pub committed: u64,
    /// Steps committed to another server than planned.
    pub replanned: u64,
    /// Steps not committed (see their `note`).
    pub skipped: u64,
}

impl PlanProgress {
    /// Counts `steps` by status.
    pub fn of(steps: &[PlanStepRecord]) -> PlanProgress {
        let mut p = PlanProgress {
            steps: steps.len() as u64,
            ..PlanProgress::default()
        };
        for s in steps {
            *match s.status {
                StepStatus::Pending => &mut p.pending,
                StepStatus::Committed => &mut p.committed,
                StepStatus::Replanned => &mut p.replanned,
                StepStatus::Skipped => &mut p.skipped,
            } += 1;
        }
        p
    }
}

/// One step: one node of one cell moves from `remove` to `add`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct PlanStepView {
    /// The step's number in the plan, from 1.
    pub step: i64,
    /// The cell whose node moves.
    pub cell_id: String,
    /// The server id the node leaves.
    pub remove: String,
    /// The server id the node goes to (once re-planned: the one it went to).
    pub add: String,
    /// `failed`, `drain`, `unsafe`, `balance` or `improve`.
    pub reason: String,
    /// The cell's risk before the move, as planned, in outages per year.
    pub risk_before: f64,
    /// The cell's risk after the move, in outages per year (once committed: as committed).
    pub risk_after: f64,
    /// Whether the cell is single-failure safe after the move.
    pub safe_after: bool,
    /// Earlier steps it waits for (same cell, or a server whose capacity they free).
    pub after_steps: Vec<i64>,
    /// `pending`, `committed`, `replanned` (to another server than planned) or `skipped`.
    pub status: String,
    /// Why it was skipped or re-planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it settled (unix milliseconds); absent while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<i64>,
}

impl From<&PlanStepRecord> for PlanStepView {
    fn from(s: &PlanStepRecord) -> PlanStepView {
        PlanStepView {
            step: s.step,
            cell_id: s.cell_id.clone(),
            remove: s.remove.clone(),
            add: s.add.clone(),
            reason: s.reason.clone(),
            risk_before: s.risk_before,
            risk_after: s.risk_after,
            safe_after: s.safe_after,
            after_steps: s.after.clone(),
            status: s.status.name().to_owned(),
            note: s.note.clone(),
            settled_at: (s.status != StepStatus::Pending).then_some(s.updated_at),
        }
    }
}

/// A plan, its progress and a page of its steps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    /// The plan id (`plan-000001`, ...).
    pub plan_id: String,
    /// `planned` (a dry run), `executing`, `paused`, `cancelled`, `completed` or
    /// `invalidated` (the inventory changed since: plan again).
    pub state: String,
    /// The inventory version it was planned on.
    pub inventory_version: i64,
    /// The request it was planned from (without `execute`).
    pub request: PlanRequest,
    /// Moves per second, once executed.
    pub rate: Option<f64>,
    /// Most steps committed but not yet durable at once, once executed.
    pub concurrency: Option<i64>,
    /// Why it stopped or ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of its last change.
    pub updated_at: i64,
    /// Its steps by outcome.
    pub progress: PlanProgress,
    /// What the plan achieves, as planned.
    pub summary: PlanSummaryView,
    /// Steps from `offset`, at most `limit` of them.
    pub steps: Vec<PlanStepView>,
    /// The offset of the next page of steps, when there is one.
    pub next_offset: Option<u64>,
}

impl PlanView {
    /// The view of a plan with the page of its steps from `offset`, at most `limit` of
    /// them.
    pub fn new(
        record: &PlanRecord,
        request: &PlanRequest,
        summary: &PlanSummaryView,
        steps: &[PlanStepRecord],
        offset: usize,
        limit: usize,
    ) -> PlanView {
        let page: Vec<PlanStepView> = steps
            .iter()
            .skip(offset)
            .take(limit)
            .map(PlanStepView::from)
            .collect();
        let end = offset.saturating_add(page.len());
        PlanView {
            plan_id: record.plan_id.clone(),
            state: record.state.name().to_owned(),
            inventory_version: record.inventory_version,
            request: request.clone(),
            rate: record.rate,
            concurrency: record.concurrency,
            note: record.note.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            progress: PlanProgress::of(steps),
            summary: summary.clone(),
            steps: page,
            next_offset: (end < steps.len()).then_some(end as u64),
        }
    }
}

/// Every plan, newest first, without steps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanList {
    /// The plans, newest first, each without steps.
    pub plans: Vec<PlanView>,
}
