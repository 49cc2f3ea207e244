//! Watches the fleet file and swaps in a new view when its content changes. A file that does not
//! validate is reported (file:line) and ignored; the running view stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pyxis_resources::Fleet;

use crate::state::AppState;

pub const POLL: Duration = Duration::from_millis(500);

fn fingerprint(path: &PathBuf) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

pub async fn watch(st: Arc<AppState>, path: PathBuf) {
    // Polling the content (not mtime alone) catches editors that replace the file and
    // changes within one mtime tick; the file is small.
    let mut last = fingerprint(&path);
    loop {
        tokio::time::sleep(POLL).await;
        let now = fingerprint(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        match Fleet::load_file(&path) {
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("config not reloaded: {e}");
                }
            }
            Ok(fleet) => apply(&st, &fleet, &path.display().to_string()).await,
        }
    }
}

/// Builds a view of `fleet` next to the current one and swaps it in.
async fn apply(st: &AppState, fleet: &Fleet, source: &str) {
    let prev = st.view();
    match st.sims.build(fleet, Some(&prev)).await {
        Ok(view) => {
            let (m, e) = (view.models.len(), view.endpoints.len());
            st.swap_view(view);
            tracing::info!(source, models = m, endpoints = e, "config reloaded");
        }
        Err(e) => tracing::error!(error = %e, "config not reloaded: cannot start its simulated engines"),
    }
}

/// Follows a stream of whole, valid fleets (Kubernetes mode: the operator crate's watch of the
/// Pyxis resources and EndpointSlices), swapping each in as it comes.
pub async fn follow(st: Arc<AppState>, fleets: impl Stream<Item = Fleet> + Send) {
    let mut fleets = std::pin::pin!(fleets);
    while let Some(fleet) = fleets.next().await {
        apply(&st, &fleet, "kubernetes").await;
    }
    tracing::warn!("the Kubernetes watch ended; the last fleet stays in place");
}
