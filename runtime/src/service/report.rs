//! Read-only views: one server's cells and load, the racks of the zone's map, the fleet
//! report.

use optimizer::report::fleet_report_known;
use optimizer::ReportOptions;

use crate::dto::{RackMapView, RackView, ServerView};
use crate::view::FleetReportView;
use crate::Error;

use super::{Heavy, Service};

impl Service {
    /// The server `server_id` with its load and the cells that have a node on it.
    pub async fn server(&self, server_id: &str) -> Result<ServerView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            let s = ledger
                .zone
                .inventory
                .server_index(server_id)
                .ok_or_else(|| Error::ServerNotFound {
                    server: server_id.to_owned(),
                })?;
            (ServerView::new(&ledger, s), ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// Every rack with its servers' states and load and the unsafe and out cells with a
    /// node in it (a console's map).
    pub async fn racks(&self) -> Result<RackMapView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            (RackMapView::new(&ledger), ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// The rack `id` with each of its servers' load and cells.
    pub async fn rack(&self, id: &str) -> Result<RackView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            let view = RackView::new(&ledger, id).ok_or_else(|| Error::UnknownElement {
                field: "id".into(),
                message: format!("'{id}' is not a rack of the inventory"),
            })?;
            (view, ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// The fleet report of `cellplacer evaluate` over the ledger's cells.
    pub async fn report(&self, risk: bool, top: usize) -> Result<FleetReportView, Error> {
        let run = self.heavy.start(Heavy::Report).await?;
        let fleet = run.within(self.fleet()).await?;
        let (zone, placements, known_safe) = (fleet.zone, fleet.placements, fleet.known_safe);
        run.compute(move |stop| {
            let options = ReportOptions {
                risk,
                top,
                threads: 0,
                stop,
            };
            // Safety the ledger keeps current is not evaluated again.
            let report = fleet_report_known(
                &zone.inventory,
                &zone.model,
                &placements,
                &options,
                &known_safe,
            );
            Ok(FleetReportView::new(&zone.inventory, &placements, &report))
        })
        .await
    }
}
