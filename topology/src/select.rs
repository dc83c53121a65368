//! Which servers an id names: a server, a rack, a row, a room, a datacenter, a network
//! device's servers or a power device and everything it feeds (what a drain empties).

use crate::model::{ElementKind, Inventory};

impl Inventory {
    /// The servers `id` names, in index order: a server id; a rack id (its servers); a
    /// row, room or datacenter label (the servers of its racks); a power device id (every
    /// server it feeds, directly or through other devices, even one with another feed);
    /// a network device id (the servers linked to it). `None` when `id` names nothing.
    pub fn servers_named(&self, id: &str) -> Option<Vec<u32>> {
        let all = 0..self.servers.len() as u32;
        if let Some(s) = self.server_index(id) {
            return Some(vec![s]);
        }
        let by_rack = |keep: &dyn Fn(&crate::model::Rack) -> bool| -> Vec<u32> {
            all.clone()
                .filter(|&s| keep(&self.racks[self.servers[s as usize].rack as usize]))
                .collect()
        };
        if let Some(e) = self.element(id) {
            let element = &self.elements[e.index()];
            match element.kind {
                ElementKind::Rack => {
                    return Some(by_rack(&|r| r.element == e));
                }
                ElementKind::PowerDevice => {
                    let mut fed = vec![false; self.power_devices.len()];
                    let root = element.index as usize;
                    fed[root] = true;
                    // Feeds point upstream: relax until no device joins.
                    let mut changed = true;
                    while changed {
                        changed = false;
                        for (d, device) in self.power_devices.iter().enumerate() {
                            if !fed[d] && device.feeds.iter().any(|&u| fed[u as usize]) {
                                fed[d] = true;
                                changed = true;
                            }
                        }
                    }
                    let powered = |feeds: &[u32]| feeds.iter().any(|&u| fed[u as usize]);
                    return Some(
                        all.filter(|&s| powered(self.feeds_of(&self.servers[s as usize])))
                            .collect(),
                    );
                }
                ElementKind::NetworkDevice => {
                    let device = element.index;
                    let mut linked: Vec<u32> = self
                        .links
                        .iter()
                        .filter_map(|l| match (l.a, l.b) {
                            (
                                crate::model::NetNode::Server(s),
                                crate::model::NetNode::Device(d),
                            )
                            | (
                                crate::model::NetNode::Device(d),
                                crate::model::NetNode::Server(s),
                            ) if d == device => Some(s),
                            _ => None,
                        })
                        .collect();
                    linked.sort_unstable();
                    linked.dedup();
                    return Some(linked);
                }
                _ => {}
            }
        }
        let labelled = by_rack(&|r| r.row == id || r.room == id || r.datacenter == id);
        (!labelled.is_empty()).then_some(labelled)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Inventory;

    fn tiny() -> Inventory {
        crate::testing::tiny().1
    }

    fn named(inv: &Inventory, id: &str) -> Vec<String> {
        inv.servers_named(id)
            .unwrap_or_else(|| panic!("{id} names nothing"))
            .iter()
            .map(|&s| {
                inv.servers[s as usize]
                    .id
                    .replace("dc1-", "")
                    .replace("row01-", "")
            })
            .collect()
    }

    /// The tiny fixture's README: a rack, a room, a PDU (with the server fed by its own
    /// feed, and without the single-fed rack), a ToR; unknown ids name nothing.
    #[test]
    fn ids_name_their_servers() {
        let inv = tiny();
        assert_eq!(named(&inv, "dc1-h1-row01-rk02-s04"), ["h1-rk02-s04"]);
        assert_eq!(
            named(&inv, "dc1-h2-row01-rk01"),
            ["h2-rk01-s01", "h2-rk01-s02", "h2-rk01-s03"]
        );
        assert_eq!(named(&inv, "dc1-h1").len(), 7);
        assert_eq!(named(&inv, "dc1").len(), 14);
        assert_eq!(
            named(&inv, "dc1-h2-row01-pduB"),
            ["h2-rk02-s01", "h2-rk02-s02", "h2-rk02-s03", "h2-rk02-s04"]
        );
        assert_eq!(
            named(&inv, "dc1-h2-row01-pduA"),
            [
                "h2-rk01-s01",
                "h2-rk01-s02",
                "h2-rk01-s03",
                "h2-rk02-s01",
                "h2-rk02-s02",
                "h2-rk02-s03"
            ]
        );
        assert_eq!(named(&inv, "dc1-h2-swgr").len(), 7);
        assert_eq!(
            named(&inv, "dc1-h1-row01-rk02-tor"),
            ["h1-rk02-s01", "h1-rk02-s02", "h1-rk02-s03", "h1-rk02-s04"]
        );
        assert_eq!(inv.servers_named("nowhere"), None);
    }
}
