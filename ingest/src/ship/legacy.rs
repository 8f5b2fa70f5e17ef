//! Shipping the spool of versions before the log (`crate::upgrade`), at
//! start, before the log.

use super::{Block, Stage, Stopped, Task, write::Part};
use crate::upgrade;

impl Task {
    pub(super) async fn ship_legacy(&mut self) -> Result<(), Stopped> {
        for path in std::mem::take(&mut self.legacy) {
            let batch = match upgrade::read(&path) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "unreadable legacy spool batch left in place");
                    continue;
                }
            };
            let from = self.state.shipped;
            // Its rows keep the batch's id and `received_at`.
            let old = Block {
                id: batch.batch_id,
                received_at: batch.received_at,
                rows: batch.pulses.clone(),
                languages: Vec::new(),
                heartbeats: Vec::new(),
                from,
                to: from,
                full: false,
            };
            let whole = Part::whole(self.db.clone());
            let landed_before = self
                .until_answered("check a legacy batch", || {
                    self.landed(&old, Stage::Pulses, &whole)
                })
                .await?;
            if !landed_before {
                let id = batch.block_id();
                let block = Block {
                    id,
                    received_at: batch.received_at,
                    rows: sql::blocks::stamp(batch.pulses, id, batch.received_at),
                    languages: batch.languages,
                    heartbeats: Vec::new(),
                    from,
                    to: from,
                    full: false,
                };
                // The derived id may have landed before a crash: check first.
                self.settle(&block, Stage::Pulses, false).await?;
                if !block.rows.is_empty() {
                    self.settle(&block, Stage::Xp, false).await?;
                    self.delete_late(&block).await?;
                }
            }
            match upgrade::remove(&path) {
                Ok(()) => tracing::info!(
                    file = %path.display(),
                    landed_before,
                    "legacy spool batch shipped"
                ),
                Err(e) => tracing::error!(
                    error = %e, file = %path.display(),
                    "cannot delete a shipped legacy spool batch (shipping it again is harmless)"
                ),
            }
        }
        Ok(())
    }
}
