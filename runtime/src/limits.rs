//! The limits of the runtime's answers, each in one place.

/// Most items in one list or page of an answer: cells per page of `GET /v1/cells`, a
/// report's `top`, the ids a re-evaluation, an import or a plan lists, the pairs of a
/// what-if, the servers named in an inventory conflict.
pub const LIST_LIMIT: usize = 1000;
