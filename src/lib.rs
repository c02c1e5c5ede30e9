//! streamguard: an auth-token validating reverse proxy for HLS and HTTP-FLV
//! origins.
//!
//! # Layout
//!
//! Leaves first, then the core from the bottom up: a module uses only
//! modules listed before it (`python3`-checkable: no import cycle).
//!
//! Leaves, used by everyone:
//! - [`problems`]: problems with key paths, and `${ENV}` / secret resolution.
//! - [`host`]: host normalization and play-domain checks.
//! - [`fds`]: the open file limit, raised at start, and the connection cap it allows.
//! - [`time`]: the clock ([`time::unix_now`], read only at request entry and
//!   by background services) and unix-time formatting.
//! - [`keys`]: the [`keys::Secret`] type (constant-time, never printed) and key sets.
//! - [`metrics`]: every metric name and handle.
//!
//! - [`operator`]: keys set through the operator API (`PUT /v1/auth-keys`),
//!   validated and kept in the state directory.
//!
//! The core:
//! - [`auth`]: the one verdict, [`auth::authenticate`] over an
//!   [`auth::SiteAuth`] (the site as served), the [`auth::Verifier`] trait,
//!   one file per signing scheme (settings validated by one constructor), HLS
//!   session tokens. Knows no config file, proxy or vendor API.
//! - [`config`]: the TOML file, parsed raw then validated into plain data
//!   (defaults resolved, CA roots and certificates loaded), every problem
//!   reported at once.
//! - [`proxy`]: listeners, TLS, the request phases over one request context
//!   ([`proxy::handle`]: route → check request → authenticate → forward →
//!   filter response → log), upstream forwarding through per-site origin
//!   connection pools, HLS rewriting, responses. Receives resolved sites;
//!   knows no vendor.
//! - [`sync`]: vendor Describe API clients, one file per vendor, the state
//!   directory it owns; answers go out through a [`sync::Sink`]. Key
//!   rotation at the vendor ([`sync::rotate`]: stage, promote, retire).
//! - [`publish`]: the one place that joins config and vendor answers into
//!   sites as served ([`publish::site_auths`], also used by `check`/`sign`)
//!   and swaps snapshots in.
//! - [`signing`]: signing a play URL with its site's key (`streamguard sign`,
//!   the operator API).
//! - [`reload`]: config hot reload (file watch + SIGHUP) and restart-needed reporting.
//! - [`admin`]: the admin listener: `/metrics`, `/healthz`, `/readyz`, the
//!   operator API ([`admin::api`], `/v1/`) and the media-server hooks
//!   ([`admin::hooks`], `/hooks/`), all deciding with [`auth::authenticate`].
//! - [`demo`]: the built-in demo origin and config behind `streamguard run`.
//!
//! The binary (`src/main.rs`) only parses the CLI and calls into this crate;
//! [`Server::bind`] + [`Server::run`] start a whole proxy, in-process if needed.

#![recursion_limit = "512"]

pub mod admin;
pub mod auth;
pub mod config;
pub mod demo;
pub mod fds;
pub mod host;
pub mod keys;
pub mod metrics;
pub mod operator;
pub mod problems;
pub mod proxy;
pub mod publish;
pub mod reload;
pub mod signing;
pub mod sync;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use config::Config;
use metrics::Metrics;
use proxy::{Shared, Snapshot};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// A site's origin client could not be built.
    #[error(transparent)]
    Snapshot(#[from] proxy::SnapshotError),
    /// The TLS server configuration was refused.
    #[error("tls setup failed")]
    Tls(#[from] rustls::Error),
}

/// `error: cause: cause…` — the whole chain on one line, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// A bound, not yet serving, proxy.
pub struct Server {
    shared: Arc<Shared>,
    publisher: Arc<publish::Publisher>,
    syncs: Vec<sync::SyncService>,
    rotations: sync::rotate::RotationService,
    listeners: Vec<(TcpListener, bool)>,
    admin: TcpListener,
}

impl Server {
    /// Builds the first snapshot and binds every listener (plain, TLS, admin).
    ///
    /// Keys of vendor-synced sites are first restored from the state
    /// directory, so a restart while a vendor is unreachable still serves.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let metrics = Metrics::new()?;
        let sources = publish::restore(&config);
        let restored_at = |vendor: &str| {
            sources
                .answers
                .iter()
                .filter(|((account, _), _)| account == vendor)
                .filter_map(|(_, a)| a.at)
                .max()
        };
        let restored: Vec<Option<u64>> = config
            .vendors
            .iter()
            .map(|v| restored_at(&v.name))
            .collect();
        let auths = publish::site_auths(&config, &sources);
        let snapshot = Snapshot::build(&config, &metrics, auths, None)?;
        let shared = Arc::new(Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            metrics,
            throttle: proxy::throttle::Throttle::new(
                config.server.limits.max_auth_failures_per_minute,
            ),
        });
        let publisher = Arc::new(publish::Publisher::new(
            shared.clone(),
            config.clone(),
            sources,
        ));
        let syncs = config
            .vendors
            .iter()
            .zip(restored)
            .map(|(v, restored)| {
                let svc = sync::SyncService::new(
                    v.clone(),
                    shared.metrics.clone(),
                    config.state_dir.clone(),
                    publisher.clone() as Arc<dyn sync::Sink>,
                );
                svc.init_metrics(restored);
                svc
            })
            .collect();
        let rotations = sync::rotate::RotationService::new(
            &config,
            &shared.metrics,
            publisher.clone() as Arc<dyn sync::Sink>,
        );
        let mut listeners = Vec::new();
        let plain = config.server.listen.iter().map(|a| (*a, false));
        let tls = config.server.tls_listen.iter().map(|a| (*a, true));
        for (addr, is_tls) in plain.chain(tls) {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            listeners.push((l, is_tls));
        }
        let addr = config.admin_listen;
        let admin = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Server {
            shared,
            publisher,
            syncs,
            rotations,
            listeners,
            admin,
        })
    }

    /// Bound proxy addresses, with `true` for TLS listeners.
    pub fn proxy_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(l, tls)| l.local_addr().ok().map(|a| (a, *tls)))
            .collect()
    }

    /// Bound admin address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Shared state (snapshot and metrics).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The snapshot publisher (config reloads and key syncs go through it).
    pub fn publisher(&self) -> &Arc<publish::Publisher> {
        &self.publisher
    }

    /// Serves until `shutdown` becomes true, then drains connections. With a
    /// `reloader`, the config file is watched and reloaded too.
    pub async fn run(
        self,
        shutdown: watch::Receiver<bool>,
        reloader: Option<reload::Reloader>,
    ) -> Result<(), StartError> {
        let mut limits = self.shared.snapshot.load().limits;
        limits.max_connections =
            fds::clamp_connections(limits.max_connections, fds::raise_nofile_limit());
        proxy::pool::set_origin_budget(limits.max_connections);
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let per_ip = proxy::per_ip::PerIp::new(limits.max_connections_per_ip);
        let tls_acceptor = TlsAcceptor::from(Arc::new(proxy::tls::server_config(
            self.shared.snapshot.clone(),
        )?));
        let mut tasks = tokio::task::JoinSet::new();
        for (listener, is_tls) in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, tls = is_tls, "proxy listening");
            }
            tasks.spawn(proxy::listener::serve(
                listener,
                is_tls.then(|| tls_acceptor.clone()),
                self.shared.clone(),
                limits,
                permits.clone(),
                per_ip.clone(),
                shutdown.clone(),
            ));
        }
        if let Ok(addr) = self.admin.local_addr() {
            info!(%addr, "admin listening");
        }
        // The admin listener outlives the drain: it stops after every other
        // task has.
        let (admin_stop, admin_stopped) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(
            self.admin,
            admin::AdminState {
                shared: self.shared.clone(),
                publisher: self.publisher.clone(),
            },
            shutdown.clone(),
            admin_stopped,
        ));
        for svc in self.syncs {
            tasks.spawn(svc.run(shutdown.clone()));
        }
        if !self.rotations.is_empty() {
            tasks.spawn(self.rotations.run(shutdown.clone()));
        }
        if let Some(r) = reloader {
            tasks.spawn(r.run(shutdown.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "a background task failed");
            }
        }
        admin_stop.send_replace(true);
        if let Err(error) = admin_task.await {
            tracing::error!(%error, "the admin listener failed");
        }
        info!("stopped");
        Ok(())
    }
}
