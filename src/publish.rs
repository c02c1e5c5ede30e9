//! The one place snapshots are built and stored.
//!
//! Two sources change what the proxy serves: config reloads and vendor key
//! syncs. Both go through the [`Publisher`], which keeps the current config
//! and the last good synced keys, builds a complete snapshot from both, and
//! publishes it with one `ArcSwap::store`. The lock only orders publishers
//! (so a reload and a sync cannot lose each other's change); readers never
//! take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Shared, Snapshot, SnapshotError};
use crate::sync::state::StateDir;
use crate::sync::SyncedAuth;

/// Synced auth by (vendor account, domain).
pub type Synced = HashMap<(String, String), SyncedAuth>;

struct Current {
    config: Config,
    synced: Synced,
}

/// Builds and stores snapshots.
pub struct Publisher {
    shared: Arc<Shared>,
    current: Mutex<Current>,
    state: StateDir,
}

impl Publisher {
    /// A publisher for `shared`, whose snapshot was built from `config` and `synced`.
    pub fn new(shared: Arc<Shared>, config: Config, synced: Synced) -> Self {
        let state = StateDir::new(config.state_dir.clone());
        Publisher {
            shared,
            current: Mutex::new(Current { config, synced }),
            state,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        // A panic while holding the lock leaves a consistent value (it is
        // only replaced whole), so a poisoned lock is still usable.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes a new config with the synced keys kept. On error nothing changes.
    pub fn publish_config(&self, config: Config) -> Result<(), SnapshotError> {
        let mut cur = self.lock();
        let snapshot = Snapshot::build(&config, &self.shared.metrics, &cur.synced, None)?;
        self.shared.snapshot.store(Arc::new(snapshot));
        cur.config = config;
        Ok(())
    }

    /// Publishes a sync result for (vendor, domain).
    pub fn publish_sync(&self, vendor: &str, domain: &str, auth: SyncedAuth) {
        let mut cur = self.lock();
        cur.synced
            .insert((vendor.to_owned(), domain.to_owned()), auth);
        let current = self.shared.snapshot.load_full();
        match Snapshot::build(
            &cur.config,
            &self.shared.metrics,
            &cur.synced,
            Some(&current),
        ) {
            Ok(s) => self.shared.snapshot.store(Arc::new(s)),
            Err(error) => tracing::error!(%error, "cannot rebuild the snapshot after a key sync"),
        }
    }
}
