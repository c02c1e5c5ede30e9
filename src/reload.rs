//! Config hot reload: the file is watched (and re-read on SIGHUP); each reload
//! builds a complete new snapshot and publishes it with one `ArcSwap::store`.
//!
//! A config that fails to parse, validate or build is rejected as a whole:
//! the old snapshot keeps serving, the error is logged with its key paths,
//! and `streamguard_config_reloads_total{outcome="rejected"}` counts it.
//! Settings that live in bound sockets or connection builders (listener
//! addresses, connection limits and timeouts) cannot change in place; a
//! reload that changes them applies everything else and reports them as
//! needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::publish::Publisher;

/// How long file events are collected before one reload (editors write in
/// several steps: truncate, write, rename).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new snapshot serves; `restart_needed` lists settings that only
    /// take effect after a restart.
    Applied {
        /// Sites now served.
        sites: usize,
        /// Changed settings that need a restart.
        restart_needed: Vec<String>,
    },
    /// The old snapshot keeps serving.
    Rejected {
        /// Why, with key paths.
        reason: String,
    },
}

impl ReloadOutcome {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Rejected { .. } => "rejected",
        }
    }
}

/// Reloads the config from `path`.
pub struct Reloader {
    path: PathBuf,
    publisher: Arc<Publisher>,
    /// The config as running (after command-line overrides).
    running: Config,
    /// Command-line overrides applied to every loaded config.
    adjust: Box<dyn Fn(&mut Config) + Send + Sync>,
    /// SHA-256 of the file as last read, so unrelated events are ignored.
    last_seen: Option<Vec<u8>>,
}

impl Reloader {
    /// A reloader publishing through `publisher`, started from `running`.
    pub fn new(
        path: PathBuf,
        publisher: Arc<Publisher>,
        running: Config,
        adjust: Box<dyn Fn(&mut Config) + Send + Sync>,
    ) -> Self {
        Reloader {
            publisher,
            last_seen: std::fs::read(&path)
                .ok()
                .map(|b| Sha256::digest(&b).to_vec()),
            path,
            running,
            adjust,
        }
    }

    /// Reads, validates and builds the config; publishes it on success.
    /// Logs and counts the outcome either way.
    pub fn reload(&mut self) -> ReloadOutcome {
        let outcome = match self.try_reload() {
            Ok(o) => o,
            Err(reason) => ReloadOutcome::Rejected { reason },
        };
        let m = self.publisher.metrics();
        m.config_reloads.with_label_values(&[outcome.label()]).inc();
        match &outcome {
            ReloadOutcome::Applied {
                sites,
                restart_needed,
            } => {
                m.config_last_reload_success
                    .set(crate::time::unix_now() as i64);
                m.config_restart_required
                    .set(i64::from(!restart_needed.is_empty()));
                info!(path = %self.path.display(), sites, "config reloaded");
                if !restart_needed.is_empty() {
                    warn!(changed = %restart_needed.join(", "), "config changes that take effect only after a restart");
                }
            }
            ReloadOutcome::Rejected { reason } => {
                error!(path = %self.path.display(), %reason, "config reload rejected; the previous config keeps serving");
            }
        }
        outcome
    }

    fn try_reload(&mut self) -> Result<ReloadOutcome, String> {
        let mut config = Config::load(&self.path).map_err(|e| crate::error_chain(&e))?;
        (self.adjust)(&mut config);
        let restart_needed = restart_needed(&self.running, &config);
        let sites = config.sites.len();
        // One store: requests in flight keep the snapshot they loaded.
        self.publisher
            .publish_config(config.clone())
            .map_err(|e| crate::error_chain(&e))?;
        self.running = config;
        Ok(ReloadOutcome::Applied {
            sites,
            restart_needed,
        })
    }

    /// Watches the config file and listens for SIGHUP until `shutdown` flips.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Trigger>();
        let _watcher = match watch_file(&self.path, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot watch the config file; reload with SIGHUP");
                None
            }
        };
        spawn_sighup(tx);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some(mut trigger) = got else {
                        return;
                    };
                    // Debounce: one reload for a burst of events.
                    tokio::time::sleep(DEBOUNCE).await;
                    while let Ok(t) = rx.try_recv() {
                        if t == Trigger::Signal {
                            trigger = Trigger::Signal;
                        }
                    }
                    // A file event reloads only when the file's bytes changed
                    // (the folder may hold other files); SIGHUP always reloads.
                    let current = std::fs::read(&self.path).ok().map(|b| Sha256::digest(&b).to_vec());
                    if trigger == Trigger::File && current.is_some() && current == self.last_seen {
                        continue;
                    }
                    self.last_seen = current;
                    self.reload();
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Settings that cannot change without a restart, named by key path.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen".to_owned());
    }
    if old.server.tls_listen != new.server.tls_listen {
        changed.push("server.tls_listen".to_owned());
    }
    if old.admin_listen != new.admin_listen {
        changed.push("admin.listen".to_owned());
    }
    if old.vendors != new.vendors || old.state_dir != new.state_dir {
        changed.push("vendor".to_owned());
    }
    // Synced verifiers are built by the sync tasks with the site's leeway, so
    // a vendor site's clock_skew_secs is fixed until a restart too.
    let vendor_sites = |c: &Config| {
        c.sites
            .iter()
            .map(|s| {
                (
                    s.vendor.clone(),
                    s.vendor.as_ref().map(|_| s.clock_skew_secs),
                )
            })
            .collect::<Vec<_>>()
    };
    if vendor_sites(old) != vendor_sites(new) {
        changed.push("site.vendor / clock_skew_secs of vendor sites".to_owned());
    }
    let (a, b) = (&old.server.limits, &new.server.limits);
    for (name, differs) in [
        (
            "server.header_read_timeout_secs",
            a.header_read_timeout != b.header_read_timeout,
        ),
        (
            "server.tls_handshake_timeout_secs",
            a.tls_handshake_timeout != b.tls_handshake_timeout,
        ),
        (
            "server.max_header_bytes",
            a.max_header_bytes != b.max_header_bytes,
        ),
        (
            "server.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "server.shutdown_grace_secs",
            a.shutdown_grace != b.shutdown_grace,
        ),
        ("server.idle_timeout_secs", a.idle_timeout != b.idle_timeout),
    ] {
        if differs {
            changed.push(name.to_owned());
        }
    }
    changed
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Something changed in the config file's folder.
    File,
    /// SIGHUP.
    Signal,
}

/// Watches the file's directory, not the file: editors save by writing a
/// new file and renaming it over the old one, which ends a watch on the old
/// inode, and Kubernetes ConfigMaps swap a `..data` symlink, so the event
/// names another file. Every change in the folder is reported; `run`
/// reloads only when the config's bytes changed.
fn watch_file(
    path: &Path,
    tx: mpsc::UnboundedSender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if event.kind.is_access() {
                    return;
                }
                // The receiver is gone only at shutdown.
                if tx.send(Trigger::File).is_err() {
                    tracing::debug!("config watcher outlived its reloader");
                }
            }
            Err(error) => warn!(%error, "config watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(unix)]
fn spawn_sighup(tx: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("SIGHUP: reloading config");
                    if tx.send(Trigger::Signal).is_err() {
                        return;
                    }
                }
            });
        }
        Err(error) => warn!(%error, "cannot watch SIGHUP; config reloads on file changes only"),
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_tx: mpsc::UnboundedSender<Trigger>) {}
