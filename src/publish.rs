//! The one place that joins config and key sources into what is served.
//!
//! [`site_auths`] turns a config, the vendors' last good answers and the
//! operator API's keys into one [`SiteAuth`] per site: the proxy serves with it, and `streamguard check`
//! and `sign` decide with it, so they cannot disagree. The [`Publisher`]
//! keeps the current config and answers, and on a config reload or a vendor
//! answer builds a complete snapshot and publishes it with one
//! `ArcSwap::store`. Its lock only orders publishers (so a reload and a sync
//! cannot lose each other's change); readers never take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::auth::session::Scope as SessionScope;
use crate::auth::{
    AppKeys, AuthMode, Common, KeySource, Sessions, SiteAuth, VendorDisabled, Verifier,
};
use crate::config::{ChildAuth, Config, OnVendorDisabled, SiteConfig};
use crate::keys::{KeySet, Secret};
use crate::metrics::Metrics;
use crate::operator::{self, OperatorKeys, Scene, ScopeKeys};
use crate::proxy::{Shared, Snapshot, SnapshotError};
use crate::sync::{Answer, Sink, SyncedAuth};

/// The last good vendor answers by (vendor account, domain).
pub type Answers = HashMap<(String, String), Answer>;

/// Every key source besides the config file.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The vendors' last good answers.
    pub answers: Answers,
    /// Keys set through the operator API.
    pub operator: OperatorKeys,
}

/// The key sources saved in the config's state directory, as a start (or
/// `check`/`sign`) finds them: every vendor site's last answer and the
/// operator keys. An unreadable operator file is logged and ignored.
pub fn restore(config: &Config) -> Sources {
    let mut answers = Answers::new();
    restore_missing(config, &mut answers);
    let operator = match config.state_dir.as_deref().map(OperatorKeys::load) {
        None => OperatorKeys::default(),
        Some(Ok(k)) => {
            if !k.scopes.is_empty() {
                info!(
                    scopes = k.scopes.len(),
                    "restored operator keys from the state directory"
                );
            }
            k
        }
        Some(Err(error)) => {
            warn!(%error, "ignoring the saved operator keys");
            OperatorKeys::default()
        }
    };
    Sources { answers, operator }
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
///
/// Operator keys (`pull` scene) come first: site-wide ones verify every
/// path, and the first of them signs; app-limited ones verify (before the
/// site's keys) only paths under their app.
pub fn site_auths(config: &Config, sources: &Sources) -> Vec<SiteAuth> {
    config
        .sites
        .iter()
        .map(|site| {
            let mut auth = site_auth(config, site, &sources.answers);
            add_operator_keys(&mut auth, &sources.operator, Scene::Pull);
            if let Some(push) = auth.push.take() {
                let mut push = Arc::unwrap_or_clone(push);
                add_operator_keys(&mut push, &sources.operator, Scene::Push);
                // A site without push keys from any source allows no publish.
                if !push.keys.is_empty() || !push.app_keys.is_empty() {
                    auth.push = Some(Arc::new(push));
                }
            }
            auth
        })
        .collect()
}

/// Puts the operator API's keys of `scene` in front of `auth`'s (`pull`
/// on the site as served, `push` on its publishers' side), though after
/// the keys that each belong to one part of the verifier (Wangsu's rule
/// groups, [`KeySet::bound`]), which stay where the verifier looks for them.
fn add_operator_keys(auth: &mut SiteAuth, operator: &OperatorKeys, scene: Scene) {
    if matches!(auth.mode, AuthMode::VendorDisabled { .. }) {
        return;
    }
    let merged = |site: &KeySet,
                  site_sources: &[KeySource],
                  added: Vec<Secret>,
                  mut added_sources: Vec<KeySource>| {
        let bound = site.bound();
        let mut keys: Vec<Secret> = site.iter().take(bound).cloned().collect();
        let mut sources: Vec<KeySource> = site_sources.iter().take(bound).cloned().collect();
        keys.extend(added);
        sources.append(&mut added_sources);
        keys.extend(site.iter().skip(bound).cloned());
        sources.extend(site_sources.iter().skip(bound).cloned());
        (KeySet::new(keys).bound_first(bound), sources)
    };
    let source = |s: &ScopeKeys| KeySource::Operator {
        at: s.updated_at,
        app: s.app.clone(),
    };
    let mut keys = Vec::new();
    let mut sources = Vec::new();
    for scope in operator
        .for_site(&auth.site_id, scene)
        .filter(|s| s.app.is_none())
    {
        let secrets = scope.secrets();
        sources.extend(std::iter::repeat_n(source(scope), secrets.len()));
        keys.extend(secrets);
    }
    if !keys.is_empty() {
        (auth.keys, auth.key_sources) = merged(&auth.keys, &auth.key_sources, keys, sources);
    }
    for scope in operator.for_site(&auth.site_id, scene) {
        let Some(app) = &scope.app else { continue };
        let keys = scope.secrets();
        let sources = vec![source(scope); keys.len()];
        let (keys, key_sources) = merged(&auth.keys, &auth.key_sources, keys, sources);
        auth.app_keys.push(AppKeys {
            app: app.clone(),
            keys,
            key_sources,
        });
    }
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
        app_keys: Vec::new(),
        push: None,
    };
    let Some((vendor, domain)) = &site.vendor else {
        return with_push(auth, site, None);
    };
    let account = config.vendors.iter().find(|v| &v.name == vendor);
    let answer = answers.get(&(vendor.clone(), domain.clone()));
    let (Some(account), Some(answer)) = (account, answer) else {
        return with_push(auth, site, None);
    };
    let common = Common {
        clock_skew_secs: site.clock_skew_secs,
    };
    let mut push_verifier = None;
    match crate::sync::interpret(account, domain, answer, common) {
        Ok(SyncedAuth::Enabled { verifier, keys }) => {
            let verifier = verifier
                .named_like(site.verifier.as_ref())
                .unwrap_or(verifier);
            push_verifier = Some(verifier.clone());
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
            auth.keys = KeySet::new(all).bound_first(keys.bound());
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
    with_push(auth, site, push_verifier)
}

/// Adds the publishers' side to a site as served: the site's push keys
/// (`[site.push]`) under the scheme the vendor answered with (`synced`),
/// else the site's own scheme, as publishers are checked with it
/// ([`Verifier::for_publishers`]). The vendor's "auth disabled" is about play
/// and opens no publishing; a vendor site that has not answered yet denies
/// publishers with `no_keys`, as it denies players.
fn with_push(mut auth: SiteAuth, site: &SiteConfig, synced: Option<Arc<dyn Verifier>>) -> SiteAuth {
    // Built even without config push keys: the operator API may add some
    // (`site_auths` drops a side that ends up with none).
    let verifier = synced.unwrap_or_else(|| site.verifier.clone());
    auth.push = Some(Arc::new(SiteAuth {
        site_id: site.id.clone(),
        verifier: verifier.for_publishers().unwrap_or(verifier),
        keys: site.push_keys.clone(),
        key_sources: vec![KeySource::Config; site.push_keys.len()],
        mode: AuthMode::Verify,
        sessions: None,
        clock_skew_secs: site.clock_skew_secs,
        app_keys: Vec::new(),
        push: None,
    }));
    auth
}

struct Current {
    config: Config,
    sources: Sources,
    syncs: HashMap<(String, String), SyncStatus>,
}

/// The last sync of one (vendor account, domain), as this process saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Unix time of the last attempt.
    pub last_attempt_at: Option<u64>,
    /// `ok` or the failure kind (`transport`, `http_5xx`, `vendor_error`, …).
    pub last_outcome: Option<&'static str>,
    /// Unix time of the last success.
    pub last_success_at: Option<u64>,
}

/// Why operator keys could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PutKeysError {
    /// No site has that id or domain.
    #[error("no site is named by this {0}")]
    NoSuchSite(&'static str),
    /// The site already has [`operator::MAX_SCOPES_PER_SITE`] scopes.
    #[error(
        "the site already has {} key scopes (App and SceneType pairs)",
        operator::MAX_SCOPES_PER_SITE
    )]
    TooManyScopes,
    /// The keys could not be kept; nothing changed.
    #[error(transparent)]
    Store(#[from] operator::StoreError),
    /// The snapshot could not be rebuilt; nothing changed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Builds and stores snapshots.
pub struct Publisher {
    shared: Arc<Shared>,
    current: Mutex<Current>,
}

impl Publisher {
    /// A publisher for `shared`, whose snapshot was built from `config` and `answers`.
    pub fn new(shared: Arc<Shared>, config: Config, sources: Sources) -> Self {
        Publisher {
            shared,
            current: Mutex::new(Current {
                config,
                sources,
                syncs: HashMap::new(),
            }),
        }
    }

    /// The config in force.
    pub fn current_config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The operator API's bearer token in force (hot-reloaded with the config).
    pub fn api_token(&self) -> Option<crate::keys::Secret> {
        self.lock().config.admin_api_token.clone()
    }

    /// The last sync of (`account`, `domain`) since start.
    pub fn sync_status(&self, account: &str, domain: &str) -> SyncStatus {
        self.lock()
            .syncs
            .get(&(account.to_owned(), domain.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The operator keys in force.
    pub fn operator_keys(&self) -> OperatorKeys {
        self.lock().sources.operator.clone()
    }

    /// Overwrites one operator scope's keys: saved to the state directory
    /// first, then published with one snapshot swap. On error nothing
    /// changes. Returns the scope as kept.
    pub fn put_operator_keys(
        &self,
        checked: operator::Checked,
        now: u64,
    ) -> Result<ScopeKeys, PutKeysError> {
        let mut cur = self.lock();
        let (site, domain) = match &checked.name {
            operator::ScopeName::Site(id) => (
                cur.config
                    .sites
                    .iter()
                    .find(|s| &s.id == id)
                    .ok_or(PutKeysError::NoSuchSite("Vhost"))?,
                None,
            ),
            operator::ScopeName::Domain(d) => (
                cur.config
                    .site_for_host(d)
                    .ok_or(PutKeysError::NoSuchSite("Domain"))?,
                Some(d.clone()),
            ),
        };
        let previous = cur
            .sources
            .operator
            .scope(&site.id, checked.app.as_deref(), checked.scene)
            .map(|s| s.enabled);
        // Bounded: every scope is kept in memory, in the state file and in
        // each snapshot build.
        let held = cur
            .sources
            .operator
            .scopes
            .iter()
            .filter(|s| s.site == site.id)
            .count();
        if previous.is_none() && held >= operator::MAX_SCOPES_PER_SITE {
            return Err(PutKeysError::TooManyScopes);
        }
        let scope = ScopeKeys {
            site: site.id.clone(),
            domain,
            app: checked.app,
            scene: checked.scene,
            details: checked.details,
            valid_duration_secs: checked.valid_duration_secs,
            // As the vendor documents PushPullEnable: absent when creating
            // means off, absent when updating leaves it as it was.
            enabled: checked.enabled.or(previous).unwrap_or(false),
            updated_at: now,
        };
        let mut sources = cur.sources.clone();
        sources.operator.put(scope.clone());
        let auths = site_auths(&cur.config, &sources);
        let current = self.shared.snapshot.load_full();
        let snapshot = Snapshot::build(&cur.config, &self.shared.metrics, auths, Some(&current))?;
        sources.operator.save(cur.config.state_dir.as_deref())?;
        self.shared.snapshot.store(Arc::new(snapshot));
        cur.sources = sources;
        info!(
            site = %scope.site,
            app = scope.app.as_deref().unwrap_or("*"),
            scene = ?scope.scene,
            keys = scope.details.len(),
            "operator keys set; the new set is in force"
        );
        Ok(scope)
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
        let mut sources = cur.sources.clone();
        restore_missing(&config, &mut sources.answers);
        let auths = site_auths(&config, &sources);
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
        cur.sources = sources;
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

    fn failed(&self, account: &str, domain: &str, kind: &'static str, at: u64) {
        let mut cur = self.lock();
        let status = cur
            .syncs
            .entry((account.to_owned(), domain.to_owned()))
            .or_default();
        status.last_attempt_at = Some(at);
        status.last_outcome = Some(kind);
    }

    fn accept(&self, account: &str, domain: &str, answer: Answer) {
        let mut cur = self.lock();
        if !answer.restored {
            let status = cur
                .syncs
                .entry((account.to_owned(), domain.to_owned()))
                .or_default();
            status.last_attempt_at = answer.at;
            status.last_outcome = Some("ok");
            status.last_success_at = answer.at;
        }
        let previous = cur
            .sources
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
        let auths = site_auths(&cur.config, &cur.sources);
        match Snapshot::build(&cur.config, &self.shared.metrics, auths, Some(&current)) {
            Ok(s) => self.shared.snapshot.store(Arc::new(s)),
            Err(error) => tracing::error!(%error, "cannot rebuild the snapshot after a key sync"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{authenticate, RequestView};

    fn config(push: &str) -> Config {
        site_config(&format!("scheme = \"tencent\"\nkey = \"playkey\"\n{push}"))
    }

    /// Site `live` with `auth` as its `[site.auth]` body.
    fn site_config(auth: &str) -> Config {
        let text = format!(
            "[[site]]\nid = \"live\"\ndomains = [\"play.example.com\"]\norigin = \"http://127.0.0.1:8000\"\n[site.auth]\n{auth}"
        );
        Config::from_toml(&text, std::path::Path::new("."), &|_| None).unwrap()
    }

    /// An operator scope of site `live` holding one md5 key.
    fn scope(app: Option<&str>, scene: Scene, key: &str) -> crate::operator::ScopeKeys {
        crate::operator::ScopeKeys {
            site: "live".to_owned(),
            domain: None,
            app: app.map(str::to_owned),
            scene,
            details: vec![crate::operator::Detail {
                secret_key: key.to_owned(),
                algorithm: "md5".to_owned(),
                auth_field: Default::default(),
                encrypt_field: Vec::new(),
            }],
            valid_duration_secs: 0,
            enabled: true,
            updated_at: 1,
        }
    }

    /// Whether `auth` allows `path?query` on play.example.com at time 1000.
    fn allowed(auth: &SiteAuth, path: &str, query: &str) -> bool {
        let view = RequestView {
            host: "play.example.com",
            path,
            query: Some(query),
            client_ip: None,
            headers: None,
        };
        authenticate(auth, &view, 1000).result.is_ok()
    }

    #[test]
    fn publishers_are_decided_with_the_push_keys_only() {
        let auths = site_auths(
            &config("[site.push]\nkeys = [\"pushkey\"]\n"),
            &Sources::default(),
        );
        let push = auths[0].push.as_ref().unwrap();
        assert_eq!(push.verifier.scheme(), "tencent");
        let sign = |key: &str| {
            auths[0]
                .verifier
                .sign(
                    "play.example.com",
                    "/live/s",
                    None,
                    &crate::keys::Secret::new(key),
                    2000,
                )
                .unwrap()
                .query
        };
        let (by_push, by_play) = (sign("pushkey"), sign("playkey"));
        assert!(allowed(push, "/live/s", &by_push));
        assert!(!allowed(push, "/live/s", &by_play));
        assert!(allowed(&auths[0], "/live/s", &by_play));
        assert!(!allowed(&auths[0], "/live/s", &by_push));
        assert!(site_auths(&config(""), &Sources::default())[0]
            .push
            .is_none());
    }

    #[test]
    fn operator_push_keys_open_publishing_and_never_playing() {
        let mut sources = Sources::default();
        sources.operator.put(scope(None, Scene::Push, "oppush"));
        let auths = site_auths(&config(""), &sources);
        let push = auths[0].push.as_ref().unwrap();
        assert_eq!(push.keys.len(), 1);
        assert_eq!(push.keys.primary().unwrap().expose(), "oppush");
        assert_eq!(auths[0].keys.len(), 1, "a push key never verifies players");
    }

    #[test]
    fn operator_keys_leave_each_wangsu_group_its_own_key() {
        let config = site_config(
            "scheme = \"wangsu\"\n[[site.auth.rule]]\nkey = \"k1\"\ntime_format = \"hex\"\neffective_time_mode = \"abstime\"\n[[site.auth.rule]]\nkey = \"k2\"\ncipher_param = \"sign\"\ntime_param = \"t\"\ntime_format = \"hex\"\neffective_time_mode = \"abstime\"\n",
        );
        let mut sources = Sources::default();
        for app in [None, Some("live")] {
            sources.operator.put(scope(app, Scene::Pull, "op"));
        }
        let auths = site_auths(&config, &sources);
        let md5 = |s: &str| crate::auth::lower_hex(&crate::auth::md5_parts(&[s.as_bytes()]));
        let t = "7D0"; // 2000
        for (key, query) in [
            (
                "k1",
                format!("wsSecret={}&wsTime={t}", md5(&format!("k1/live/s.flv{t}"))),
            ),
            (
                "k2",
                format!("sign={}&t={t}", md5(&format!("k2/live/s.flv{t}"))),
            ),
            (
                "op",
                format!("sign={}&t={t}", md5(&format!("op/live/s.flv{t}"))),
            ),
        ] {
            assert!(allowed(&auths[0], "/live/s.flv", &query), "{key}");
        }
        let k1_for_group_2 = format!("sign={}&t={t}", md5(&format!("k1/live/s.flv{t}")));
        assert!(!allowed(&auths[0], "/live/s.flv", &k1_for_group_2));
        // The app-scoped copy keeps the groups' keys where they were too.
        let app = &auths[0].app_keys[0];
        assert_eq!(app.keys.bound(), 2);
        assert_eq!(app.keys.get(2).unwrap().expose(), "op");
        // The operator's key signs (under the first group), and verifies.
        let target = crate::signing::Target::parse("http://play.example.com/live/s.flv").unwrap();
        let signed = crate::signing::sign(
            &config.sites[0],
            &auths[0],
            &target,
            crate::signing::Expiry::At(2000),
            1000,
            &Default::default(),
        )
        .unwrap();
        assert!(matches!(
            signed.key_source,
            Some(KeySource::Operator { .. })
        ));
        let op_only = format!("wsSecret={}&wsTime=7d0", md5("op/live/s.flv7d0"));
        assert_eq!(signed.query, op_only);
    }
}
