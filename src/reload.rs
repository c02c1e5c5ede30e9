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

/// How long the files must be quiet (no event) before one reload: editors
/// and tools write in several steps (truncate, write, rename), and a file
/// written in pieces must not be read half-written.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest wait for quiet: a file that never stops changing is read after
/// this anyway.
pub const MAX_SETTLE: Duration = Duration::from_secs(3);

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
    /// What the process bound at start (listeners, limits, vendor
    /// accounts): a reload is compared with this, not with the last reload,
    /// so "restart required" stays set until a reload brings them back.
    bound: Bound,
    /// Command-line overrides applied to every loaded config.
    adjust: Box<dyn Fn(&mut Config) + Send + Sync>,
    /// SHA-256 of the config and the certificate files as last read, so
    /// unrelated events are ignored.
    last_seen: Option<Vec<u8>>,
    /// The certificate and key files of the config in force: watched too, so
    /// a renewal (certbot) reloads them like a config edit.
    cert_files: Vec<PathBuf>,
}

/// SHA-256 over the bytes of `files` in order (`None` if the first, the
/// config, cannot be read).
fn digest(files: &[&Path]) -> Option<Vec<u8>> {
    let mut h = Sha256::new();
    for (i, f) in files.iter().enumerate() {
        match std::fs::read(f) {
            Ok(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(&b);
            }
            Err(_) if i == 0 => return None,
            Err(_) => h.update(u64::MAX.to_le_bytes()),
        }
    }
    Some(h.finalize().to_vec())
}

fn cert_files(config: &Config) -> Vec<PathBuf> {
    config
        .server
        .certificates
        .iter()
        .flat_map(|c| c.files.iter().cloned())
        .collect()
}

impl Reloader {
    /// A reloader publishing through `publisher`, for a process started
    /// (bound) with `running`.
    pub fn new(
        path: PathBuf,
        publisher: Arc<Publisher>,
        running: Config,
        adjust: Box<dyn Fn(&mut Config) + Send + Sync>,
    ) -> Self {
        let cert_files = cert_files(&running);
        let mut files: Vec<&Path> = vec![path.as_path()];
        files.extend(cert_files.iter().map(PathBuf::as_path));
        Reloader {
            publisher,
            last_seen: digest(&files),
            bound: Bound::of(&running),
            adjust,
            cert_files,
            path,
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
                // One line per event: the problem list joined.
                let reason = reason.replace("\n  - ", "; ").replace('\n', "; ");
                error!(path = %self.path.display(), %reason, "config reload rejected; the previous config keeps serving");
            }
        }
        outcome
    }

    fn try_reload(&mut self) -> Result<ReloadOutcome, String> {
        let mut config = Config::load(&self.path).map_err(|e| crate::error_chain(&e))?;
        config.log_warnings();
        (self.adjust)(&mut config);
        let restart_needed = self.bound.differences(&config);
        let sites = config.sites.len();
        // One store: requests in flight keep the snapshot they loaded.
        self.publisher
            .publish_config(config.clone())
            .map_err(|e| crate::error_chain(&e))?;
        Ok(ReloadOutcome::Applied {
            sites,
            restart_needed,
        })
    }

    /// Watches the config file and listens for SIGHUP until `shutdown` flips.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Trigger>();
        let mut watcher = match watch_file(&self.path, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot watch the config file; reload with SIGHUP");
                None
            }
        };
        let mut watched_dirs: Vec<PathBuf> = vec![folder_of(&self.path)];
        let mut watch_certs =
            |files: &[PathBuf], watcher: &mut Option<notify::RecommendedWatcher>| {
                let Some(w) = watcher.as_mut() else { return };
                for f in files {
                    let dir = folder_of(f);
                    if watched_dirs.contains(&dir) {
                        continue;
                    }
                    match w.watch(&dir, RecursiveMode::NonRecursive) {
                        Ok(()) => watched_dirs.push(dir),
                        Err(error) => {
                            warn!(path = %dir.display(), %error, "cannot watch a certificate folder; renewals apply on SIGHUP")
                        }
                    }
                }
            };
        watch_certs(&self.cert_files, &mut watcher);
        spawn_sighup(tx);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some(mut trigger) = got else {
                        return;
                    };
                    // Debounce: one reload for a burst of events, once
                    // they have stopped for DEBOUNCE (at most MAX_SETTLE).
                    let first = tokio::time::Instant::now();
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(DEBOUNCE) => {}
                            _ = shutdown.changed() => return,
                        }
                        let mut more = false;
                        while let Ok(t) = rx.try_recv() {
                            more = true;
                            if t == Trigger::Signal {
                                trigger = Trigger::Signal;
                            }
                        }
                        if !more || first.elapsed() >= MAX_SETTLE {
                            break;
                        }
                    }
                    // A file event reloads only when the file's bytes changed
                    // (the folder may hold other files); SIGHUP always reloads.
                    let mut files: Vec<&Path> = vec![self.path.as_path()];
                    files.extend(self.cert_files.iter().map(PathBuf::as_path));
                    let current = digest(&files);
                    if trigger == Trigger::File && current.is_some() && current == self.last_seen {
                        continue;
                    }
                    self.last_seen = current;
                    if let ReloadOutcome::Applied { .. } = self.reload() {
                        // The new config may name other certificate files:
                        // watch them, and include them in the digest. Only
                        // then is the digest recomputed (not for an
                        // unchanged set: a write that landed during this
                        // reload must still look new).
                        let now_files = cert_files(&self.publisher.current_config());
                        if now_files != self.cert_files {
                            self.cert_files = now_files;
                            watch_certs(&self.cert_files, &mut watcher);
                            let mut files: Vec<&Path> = vec![self.path.as_path()];
                            files.extend(self.cert_files.iter().map(PathBuf::as_path));
                            self.last_seen = digest(&files);
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The settings a running process is built around: listener sockets,
/// connection limits baked into the accept loops, vendor accounts with their
/// running sync services, and the state directory they write.
///
/// Sites, keys, certificates, origins and which domains a vendor account
/// syncs are not here: a reload changes them in place.
#[derive(Debug, Clone)]
struct Bound {
    listen: Vec<std::net::SocketAddr>,
    tls_listen: Vec<std::net::SocketAddr>,
    admin_listen: std::net::SocketAddr,
    limits: crate::config::Limits,
    vendors: Vec<crate::config::VendorConfig>,
    state_dir: Option<PathBuf>,
    log_format: crate::config::LogFormat,
}

impl Bound {
    fn of(c: &Config) -> Bound {
        Bound {
            listen: c.server.listen.clone(),
            tls_listen: c.server.tls_listen.clone(),
            admin_listen: c.admin_listen,
            limits: c.server.limits,
            vendors: c.vendors.clone(),
            state_dir: c.state_dir.clone(),
            log_format: c.log_format,
        }
    }

    /// Settings of `new` that differ from what is bound, by key path.
    fn differences(&self, new: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        let (a, b) = (&self.limits, &new.server.limits);
        for (name, differs) in [
            ("server.listen", self.listen != new.server.listen),
            (
                "server.tls_listen",
                self.tls_listen != new.server.tls_listen,
            ),
            ("admin.listen", self.admin_listen != new.admin_listen),
            ("vendor", self.vendors != new.vendors),
            ("state_dir", self.state_dir != new.state_dir),
            ("log.format", self.log_format != new.log_format),
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
                "server.max_connections_per_ip",
                a.max_connections_per_ip != b.max_connections_per_ip,
            ),
            (
                "server.shutdown_grace_secs",
                a.shutdown_grace != b.shutdown_grace,
            ),
            ("server.idle_timeout_secs", a.idle_timeout != b.idle_timeout),
            ("server.send_timeout_secs", a.send_timeout != b.send_timeout),
            (
                "server.max_auth_failures_per_minute",
                a.max_auth_failures_per_minute != b.max_auth_failures_per_minute,
            ),
        ] {
            if differs {
                changed.push(name.to_owned());
            }
        }
        changed
    }
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
/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

fn watch_file(
    path: &Path,
    tx: mpsc::UnboundedSender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = folder_of(path);
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
