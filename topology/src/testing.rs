//! What the crate's unit tests share: the committed tiny fixture, as tables and as a model.

use std::path::Path;

use crate::ingest::read_dir;
use crate::model::Inventory;
use crate::raw::RawInventory;

/// The tables of `fixtures/data/tiny`.
pub(crate) fn tiny_raw() -> RawInventory {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/tiny");
    read_dir(&dir).expect("the tiny fixture reads")
}

/// The tiny fixture's tables and its validated inventory.
pub(crate) fn tiny() -> (RawInventory, Inventory) {
    let raw = tiny_raw();
    let (inv, _) = Inventory::from_raw(&raw).expect("the tiny fixture is valid");
    (raw, inv)
}
