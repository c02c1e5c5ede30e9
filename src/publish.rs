//! The one place that joins config and key sources into what is served.
//!
//! [`site_auths`] turns a config and the vendors' last good answers into one
//! [`SiteAuth`] per site: the proxy serves with it, and `streamguard check`
//! and `sign` decide with it, so they cannot disagree. The [`Publisher`]
//! keeps the current config and answers, and on a config reload or a vendor
//! answer builds a complete snapshot and publishes it with one
//! `ArcSwap::store`. Its lock only orders publishers (so a reload and a sync
//! cannot lose each other's change); readers never take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::auth::session::Scope as SessionScope;
use crate::auth::{AuthMode, Common, KeySource, Sessions, SiteAuth, VendorDisabled, Verifier};
use crate::config::{ChildAuth, Config, OnVendorDisabled, SiteConfig};
use crate::keys::KeySet;
use crate::metrics::Metrics;
use crate::proxy::{Shared, Snapshot, SnapshotError};
use crate::sync::{Answer, Sink, SyncedAuth};

/// The last good vendor answers by (vendor account, domain).
pub type Answers = HashMap<(String, String), Answer>;

/// The answers saved in the config's state directory for every vendor
/// site, as a start (or `check`) finds them.
pub fn restore_answers(config: &Config) -> Answers {
    let mut answers = Answers::new();
    restore_missing(config, &mut answers);
    answers
}

/// Adds to `answers` the saved answer of every vendor site of `config` that
/// has none yet (a vendor site a reload adds starts from the saved state,
/// as it would after a restart).
fn restore_missing(config: &Config, answers: &mut Answers) {
    for site in &config.sites {
        let Some((vendor, domain)) = &site.vendor else {
            continue;
        };
        let key = (vendor.clone(), domain.clone());
        if answers.contains_key(&key) {
            continue;
        }
        let Some(account) = config.vendors.iter().find(|v| &v.name == vendor) else {
            continue;
        };
        if let Some(answer) = crate::sync::restore(account, domain, config.state_dir.as_deref()) {
            info!(vendor = %vendor, %domain, "restored synced keys from the state directory");
            answers.insert(key, answer);
        }
    }
}

/// Every site of `config` as served with `answers`: the join of config keys
/// and vendor keys, in config order.
///
/// A vendor site uses its vendor's answer (its keys first, then any keys of
/// its own `[site.auth]`); before the first answer it verifies with its
/// config keys, or denies with `no_keys`.
pub fn site_auths(config: &Config, answers: &Answers) -> Vec<SiteAuth> {
    config
        .sites
        .iter()
        .map(|site| site_auth(config, site, answers))
        .collect()
}

fn site_auth(config: &Config, site: &SiteConfig, answers: &Answers) -> SiteAuth {
    let config_keys = || vec![KeySource::Config; site.keys.len()];
    let mut auth = SiteAuth {
        site_id: site.id.clone(),
        verifier: site.verifier.clone(),
        keys: site.keys.clone(),
        key_sources: config_keys(),
        mode: AuthMode::Verify,
        sessions: match (site.hls.rewrite, site.hls.child_auth) {
            (true, ChildAuth::Session) => Some(SessionScope::Path),
            (true, ChildAuth::SessionDirectory) => Some(SessionScope::Directory),
            _ => None,
        }
        .map(|scope| Sessions {
            secret: site.hls.session_secret.clone(),
            ttl_secs: site.hls.session_ttl_secs,
            scope,
        }),
        clock_skew_secs: site.clock_skew_secs,
    };
    let Some((vendor, domain)) = &site.vendor else {
        return auth;
    };
    let account = config.vendors.iter().find(|v| &v.name == vendor);
    let answer = answers.get(&(vendor.clone(), domain.clone()));
    let (Some(account), Some(answer)) = (account, answer) else {
        return auth;
    };
    let common = Common {
        clock_skew_secs: site.clock_skew_secs,
    };
    match crate::sync::interpret(account, domain, answer, common) {
        Ok(SyncedAuth::Enabled { verifier, keys }) => {
            let source = KeySource::Vendor {
                account: vendor.clone(),
                at: answer.at,
                restored: answer.restored,
            };
            let mut sources = vec![source; keys.len()];
            sources.extend(config_keys());
            let mut all: Vec<_> = keys.iter().cloned().collect();
            all.extend(site.keys.iter().cloned());
            auth.verifier = verifier;
            auth.keys = KeySet::new(all);
            auth.key_sources = sources;
        }
        Ok(SyncedAuth::Disabled) => {
            let allow = site.on_vendor_disabled == OnVendorDisabled::Allow;
            // The site's own params when it names them, else the vendor
            // scheme's defaults: stripped before forwarding all the same.
            let mut params = site.verifier.auth_params().to_vec();
            if params.is_empty() {
                params = crate::auth::default_params(account.kind.scheme());
            }
            auth.verifier = Arc::new(VendorDisabled { allow, params }) as Arc<dyn Verifier>;
            auth.keys = KeySet::default();
            auth.key_sources = Vec::new();
            auth.mode = AuthMode::VendorDisabled { allow };
        }
        Err(error) => {
            // Answers are read once before they are kept, so this is a site
            // setting the answer cannot be read with; the site keeps its
            // config keys.
            warn!(site = %site.id, vendor = %vendor, %error, "cannot use the vendor's answer for this site");
        }
    }
    auth
}

struct Current {
    config: Config,
    answers: Answers,
}

/// Builds and stores snapshots.
pub struct Publisher {
    shared: Arc<Shared>,
    current: Mutex<Current>,
}

impl Publisher {
    /// A publisher for `shared`, whose snapshot was built from `config` and `answers`.
    pub fn new(shared: Arc<Shared>, config: Config, answers: Answers) -> Self {
        Publisher {
            shared,
            current: Mutex::new(Current { config, answers }),
        }
    }

    /// The config in force.
    pub fn current_config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        // A panic while holding the lock leaves a consistent value (it is
        // only replaced whole), so a poisoned lock is still usable.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes a new config with the vendor answers kept. On error nothing changes.
    pub fn publish_config(&self, config: Config) -> Result<(), SnapshotError> {
        let mut cur = self.lock();
        let mut answers = cur.answers.clone();
        restore_missing(&config, &mut answers);
        let auths = site_auths(&config, &answers);
        let snapshot = Snapshot::build(&config, &self.shared.metrics, auths, None)?;
        self.shared.snapshot.store(Arc::new(snapshot));
        for gone in cur
            .config
            .sites
            .iter()
            .filter(|old| !config.sites.iter().any(|s| s.id == old.id))
        {
            self.shared.metrics.forget_site(&gone.id);
        }
        cur.config = config;
        cur.answers = answers;
        Ok(())
    }
}

impl Sink for Publisher {
    fn domains(&self, account: &str) -> Vec<String> {
        let cur = self.lock();
        let mut out: Vec<String> = Vec::new();
        for s in &cur.config.sites {
            if let Some((v, d)) = &s.vendor {
                if v == account && !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }

    fn accept(&self, account: &str, domain: &str, answer: Answer) {
        let mut cur = self.lock();
        let previous = cur
            .answers
            .insert((account.to_owned(), domain.to_owned()), answer.clone());
        match previous {
            Some(p) if p.body == answer.body && !p.restored => return, // nothing changed
            Some(_) => info!(
                vendor = account,
                domain, "vendor keys changed (rotation); the new set is in force"
            ),
            None => info!(
                vendor = account,
                domain, "first vendor keys for this domain"
            ),
        }
        let current = self.shared.snapshot.load_full();
        let auths = site_auths(&cur.config, &cur.answers);
        match Snapshot::build(&cur.config, &self.shared.metrics, auths, Some(&current)) {
            Ok(s) => self.shared.snapshot.store(Arc::new(s)),
            Err(error) => tracing::error!(%error, "cannot rebuild the snapshot after a key sync"),
        }
    }
}
