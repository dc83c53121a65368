//! The subcommands of `cellplacer`, one module each (its arguments and its `run`), and
//! what they share: the [`output`] helpers and the exit code of a partial result.

pub(crate) mod evaluate;
pub(crate) mod generate;
pub(crate) mod ledger;
pub(crate) mod output;
pub(crate) mod place;
pub(crate) mod rebalance;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod token;
pub(crate) mod validate;
pub(crate) mod whatif;

/// Exit code of a `place` run that left some cells unplaced, or of a `rebalance` run that
/// left some goals unmet (1 is for invalid input).
pub(crate) const PARTLY_PLACED: u8 = 3;
