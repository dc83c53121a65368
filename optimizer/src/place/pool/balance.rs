//! The balance rule: a server takes a node only while its load stays within `balance`
//! times the zone's mean utilisation (and a few nodes above the mean).

use topology::model::ServerStatus;
use topology::Inventory;

use super::index::PoolIndex;
use crate::place::occupancy::Occupancy;

/// Nodes a server may always hold above the mean load, so that the balance rule does not
/// scatter the first cells of an empty zone.
const BALANCE_SLACK: f64 = 5.0;

/// Whether server `s` may take one more node under the balance rule (`balance` times
/// the mean utilisation of active hosts, at least `BALANCE_SLACK` nodes above the mean).
pub fn within_balance(
    index: &PoolIndex,
    inv: &Inventory,
    occ: &Occupancy,
    s: u32,
    balance: f64,
) -> bool {
    let mean = mean_utilisation(index, occ);
    occ.load(s) < most_nodes(mean, balance * mean, inv.servers[s as usize].capacity)
}

/// Nodes over the node capacity of the zone's active hosts.
pub(super) fn mean_utilisation(index: &PoolIndex, occ: &Occupancy) -> f64 {
    occ.total_nodes() as f64 / index.active_capacity.max(1) as f64
}

/// The most nodes a server of `capacity` may hold under the balance rule, at mean
/// utilisation `mean` and ceiling utilisation `ceiling` (`balance` times the mean):
/// `floor(max(ceiling·capacity, mean·capacity + BALANCE_SLACK))`.
pub(super) fn most_nodes(mean: f64, ceiling: f64, capacity: u32) -> u32 {
    let cap = f64::from(capacity);
    // Non-negative: the conversion truncates, i.e. floors (and saturates).
    (ceiling * cap).max(mean * cap + BALANCE_SLACK) as u32
}

/// Active hosts whose load is above the balance ceiling (`balance` times the mean
/// utilisation of active hosts, at least `BALANCE_SLACK` nodes above the mean): the
/// servers the balance rule would refuse even a node it had already placed. Pure; for
/// monitoring (one pass over the servers).
pub fn over_balance_ceiling(inv: &Inventory, occ: &Occupancy, balance: f64) -> usize {
    let active = |s: &&topology::model::Server| s.status == ServerStatus::Active && s.capacity > 0;
    let capacity: u64 = inv
        .servers
        .iter()
        .filter(active)
        .map(|s| u64::from(s.capacity))
        .sum();
    let mean = occ.total_nodes() as f64 / capacity.max(1) as f64;
    inv.servers
        .iter()
        .enumerate()
        .filter(|(_, s)| active(s))
        .filter(|&(i, s)| occ.load(i as u32) > most_nodes(mean, balance * mean, s.capacity))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_balance_ceiling_counts_hosts_above_the_rule() {
        let raw = fixtures::generate(&fixtures::ZoneParams::tiny(0));
        let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
        let hosts: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| {
                let srv = &inv.servers[s as usize];
                srv.status == ServerStatus::Active && srv.capacity >= 8
            })
            .collect();
        assert!(hosts.len() >= 2, "the tiny zone needs two active hosts");
        let mut occ = Occupancy::new(&inv);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0);
        // One node on each of two hosts: both within mean·cap + slack.
        occ.insert(&[hosts[0], hosts[1]]);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0);
        // Pile nodes onto the first host until it passes mean·cap + 5.
        let index = PoolIndex::new(&inv);
        let mut piled = 1;
        while within_balance(&index, &inv, &occ, hosts[0], 1.04) {
            occ.insert(&[hosts[0]]);
            piled += 1;
        }
        // At the ceiling (the rule refuses one more) but not above it.
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0, "{piled} nodes");
        occ.insert(&[hosts[0]]);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 1);
    }
}
