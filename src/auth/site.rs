//! The one verdict: [`authenticate`] decides whether a request may pass.
//!
//! Everything that asks "may this URL play?" calls it: the proxy for every
//! request, `streamguard check`, and the admin API and media-server hooks.
//! It sees the site as served ([`SiteAuth`]: the scheme, the keys in force
//! from every source, the vendor's "auth disabled" answer and the HLS session
//! settings), a [`RequestView`] and the time, and nothing else: no I/O, no
//! clock. If two callers could disagree about one URL, this is where to look.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use super::session::{self, SessionGrant, SESSION_PARAM};
use super::{query_param, Decision, DenyReason, Derived, RequestView, Verifier};
use crate::keys::{KeySet, Secret};

/// Where one key in force came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The config file (`[site.auth]`).
    Config,
    /// A vendor's Describe API answered with it.
    Vendor {
        /// Vendor account name.
        account: String,
        /// Unix seconds of the answer: when it was synced, or when the
        /// restored answer was saved.
        at: Option<u64>,
        /// True when the answer was read back from the state directory
        /// rather than received by this process.
        restored: bool,
    },
    /// The operator API (`PUT /v1/auth-keys`) set it.
    Operator {
        /// Unix seconds of the update.
        at: u64,
        /// The app the key is limited to, if any.
        app: Option<String>,
    },
}

impl KeySource {
    /// `config`, `vendor` or `operator`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeySource::Config => "config",
            KeySource::Vendor { .. } => "vendor",
            KeySource::Operator { .. } => "operator",
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Config => f.write_str("config file"),
            KeySource::Operator { at, app } => {
                write!(f, "operator API, set at {}", crate::time::rfc3339(*at))?;
                match app {
                    Some(app) => write!(f, ", for app `{app}`"),
                    None => Ok(()),
                }
            }
            KeySource::Vendor {
                account,
                at,
                restored,
            } => {
                let when = at.map_or_else(|| "unknown time".to_owned(), crate::time::rfc3339);
                if *restored {
                    write!(
                        f,
                        "vendor `{account}`, restored from the state directory (saved {when})"
                    )
                } else {
                    write!(f, "vendor `{account}`, synced at {when}")
                }
            }
        }
    }
}

/// What the site does about auth right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Verify with the scheme and the keys (which may be none yet: then
    /// every request is denied with `no_keys`).
    Verify,
    /// The vendor reports auth switched off; `allow` is the site's
    /// `on_vendor_disabled = "allow"`.
    VendorDisabled {
        /// Let requests through.
        allow: bool,
    },
}

/// HLS child tokens the proxy issues and accepts (`child_auth = "session"`).
#[derive(Clone, Debug)]
pub struct Sessions {
    /// MAC key of the tokens.
    pub secret: Secret,
    /// Longest lifetime of a token issued for a playlist.
    pub ttl_secs: u64,
    /// What one token opens: exactly one path, or (opted in) a directory.
    pub scope: session::Scope,
}

/// A site as served: what [`authenticate`] needs to decide its requests.
/// Built from the config and every key source in exactly one place
/// (`publish`).
#[derive(Clone, Debug)]
pub struct SiteAuth {
    /// Site id (session tokens are bound to it).
    pub site_id: String,
    /// The scheme, with the parameters of the source that supplied it.
    pub verifier: Arc<dyn Verifier>,
    /// Every key in force, in the order they are tried.
    pub keys: KeySet,
    /// Where each key of `keys` came from (same order).
    pub key_sources: Vec<KeySource>,
    /// Verify, or the vendor's "auth disabled".
    pub mode: AuthMode,
    /// HLS session tokens, when the site issues them.
    pub sessions: Option<Sessions>,
    /// Leeway on every validity window.
    pub clock_skew_secs: u64,
    /// Keys of one app (first path segment) set through the operator API,
    /// followed by every key of `keys`: requests under `/{app}/` verify
    /// with these instead.
    pub app_keys: Vec<AppKeys>,
    /// How publishers are decided (media-server `on_publish` hooks): the
    /// same scheme with the site's push keys (operator API `push` keys,
    /// then `[site.push]`). `None`: the site has no push keys and no
    /// publish is allowed.
    pub push: Option<Arc<SiteAuth>>,
}

/// The keys in force under one app.
#[derive(Clone, Debug)]
pub struct AppKeys {
    /// First path segment.
    pub app: String,
    /// The app's keys, then the site's.
    pub keys: KeySet,
    /// Where each key came from (same order).
    pub key_sources: Vec<KeySource>,
}

impl SiteAuth {
    /// The keys that verify `path` (an origin path) and where they came
    /// from: the app's, when operator keys are limited to its first
    /// segment, else the site's.
    pub fn keys_for(&self, path: &str) -> (&KeySet, &[KeySource]) {
        if !self.app_keys.is_empty() {
            let app = path
                .strip_prefix('/')
                .and_then(|p| p.split_once('/'))
                .map(|(first, _)| first);
            if let Some(a) = app.and_then(|app| self.app_keys.iter().find(|a| a.app == app)) {
                return (&a.keys, &a.key_sources);
            }
        }
        (&self.keys, &self.key_sources)
    }

    /// True when the site can decide requests: it has keys, or its vendor
    /// answered "auth disabled".
    pub fn ready(&self) -> bool {
        !self.keys.is_empty() || matches!(self.mode, AuthMode::VendorDisabled { .. })
    }

    /// The `sg_session=…` param for a child of a playlist: `child_path` is
    /// the path the player will request (the playlist's URI resolved
    /// against `playlist_path`), `grant` what authorized the playlist, and
    /// the token works until `expires_at`. `None` when the site issues no
    /// session tokens or the path cannot carry one.
    ///
    /// Exact-path sites bind the token to the child's origin path. Sites
    /// that opted into directory scope bind it to the playlist's directory
    /// (the one a directory token already covers), except for children
    /// outside it and when that directory is `/`.
    pub fn child_session(
        &self,
        grant: &Grant,
        playlist_path: &str,
        child_path: &str,
        expires_at: u64,
    ) -> Option<String> {
        let sessions = self.sessions.as_ref()?;
        let (directory, bound_ip) = match grant {
            Grant::Session(g) => (g.directory.as_deref(), g.bound_ip),
            Grant::Scheme { bound_ip, .. } => (None, *bound_ip),
        };
        // `child_path` may carry the URI's own query after `?`.
        let (child_path, child_query) = match child_path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (child_path, None),
        };
        let child = self.origin_path(child_path);
        let token = match sessions.scope {
            session::Scope::Directory => {
                let dir =
                    directory.unwrap_or_else(|| session::scope_of(self.origin_path(playlist_path)));
                if dir != "/" && child.starts_with(dir) {
                    session::issue_for_directory(
                        &sessions.secret,
                        &self.site_id,
                        dir,
                        bound_ip,
                        expires_at,
                    )
                } else {
                    None
                }
            }
            session::Scope::Path => None,
        };
        let token = match token {
            Some(t) => t,
            None => session::issue_for_path(
                &sessions.secret,
                &self.site_id,
                child,
                &session::covered_query(child_query),
                bound_ip,
                expires_at,
            )?,
        };
        Some(format!("{SESSION_PARAM}={token}"))
    }

    /// An `sg_session=…` param that opens exactly `path` (an HLS playlist or
    /// segment path; a playlist's children then get tokens of their own)
    /// until `expires_at`, for the operator API's play credentials. `None`
    /// when the site issues no session tokens, has no key to verify with,
    /// or `path` is not something an HLS player fetches.
    pub fn play_token(
        &self,
        path: &str,
        bound_ip: Option<IpAddr>,
        expires_at: u64,
    ) -> Option<String> {
        let sessions = self.sessions.as_ref()?;
        if self.keys.is_empty() || !matches!(self.mode, AuthMode::Verify) {
            return None;
        }
        let path = self.origin_path(path);
        if !session::is_hls_child(path) {
            return None;
        }
        let token = session::issue_for_path(
            &sessions.secret,
            &self.site_id,
            path,
            &session::covered_query(None),
            bound_ip,
            expires_at,
        )?;
        Some(format!("{SESSION_PARAM}={token}"))
    }

    /// The origin path of a request path: schemes with auth in the path
    /// drop it.
    pub fn origin_path<'p>(&self, path: &'p str) -> &'p str {
        match self.mode {
            AuthMode::Verify => self.verifier.origin_path(path),
            AuthMode::VendorDisabled { .. } => path,
        }
    }
}

/// What authorized a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The site's scheme accepted the URL (or the vendor switched auth off
    /// and the site allows that).
    Scheme {
        /// Unix seconds after which the URL stops being accepted, if it expires.
        expires_at: Option<u64>,
        /// The path to forward when it differs from the request path.
        forward_path: Option<String>,
        /// The client address the token is bound to.
        bound_ip: Option<IpAddr>,
    },
    /// An HLS session token issued by this proxy accepted it.
    Session(SessionGrant),
}

impl Grant {
    /// Unix seconds after which the grant ends, if it does.
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            Grant::Scheme { expires_at, .. } => *expires_at,
            Grant::Session(g) => Some(g.expires_at),
        }
    }
}

/// The verdict on one request, with what was derived on the way (for
/// `streamguard check`; never secrets).
#[derive(Clone, Debug)]
pub struct Authentication<'a> {
    /// Allowed with a grant, or denied with a reason.
    pub result: Result<Grant, DenyReason>,
    /// Fields derived from the URL (stream name, time as written…).
    pub derived: Derived<'a>,
    /// Expiry the token claims, when known (also for a denied token).
    pub expires_at: Option<u64>,
    /// Index into [`SiteAuth::keys`] of the key that signed the token.
    pub matched_key: Option<usize>,
    /// The client address the token is bound to, when it is (also denied).
    pub bound_ip: Option<IpAddr>,
    /// True when an HLS session token (not the scheme) decided.
    pub by_session: bool,
}

impl Authentication<'_> {
    fn denied(reason: DenyReason, by_session: bool) -> Self {
        Authentication {
            result: Err(reason),
            derived: Derived::new(),
            expires_at: None,
            matched_key: None,
            bound_ip: None,
            by_session,
        }
    }
}

/// Finds the session parameter's name anywhere in a query. Why: most
/// requests carry no session token, and one search rules it out for less
/// than splitting the query into pairs (the verifier splits it anyway).
static SESSION_NAME: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(SESSION_PARAM));

/// Decides a request: an HLS session token when the site issues them and
/// the request carries one, else the site's scheme with every key in force.
///
/// `req.client_ip` must already be the client's address as the site sees it
/// (after trusted-proxy resolution); `now` is unix seconds.
pub fn authenticate<'a>(site: &SiteAuth, req: &RequestView<'a>, now: u64) -> Authentication<'a> {
    if let Some(sessions) = &site.sessions {
        let named = req
            .query
            .is_some_and(|q| SESSION_NAME.find(q.as_bytes()).is_some());
        let token = match named.then(|| query_param(req.query, SESSION_PARAM)) {
            None => None,
            Some(Ok(t)) => t,
            Some(Err(_)) => return Authentication::denied(DenyReason::MalformedToken, true),
        };
        if let Some(token) = token {
            return by_session(site, sessions, token, req, now);
        }
    }
    let (keys, _) = site.keys_for(site.origin_path(req.path));
    let verdict = site.verifier.verify(req, keys, now);
    let matched_key = verdict.matched_key;
    Authentication {
        result: match verdict.decision {
            Decision::Allow => Ok(Grant::Scheme {
                expires_at: verdict.expires_at,
                forward_path: verdict.forward_path.map(str::to_owned),
                bound_ip: verdict.bound_ip,
            }),
            Decision::Deny(reason) => Err(reason),
        },
        derived: verdict.derived,
        expires_at: verdict.expires_at,
        matched_key,
        bound_ip: verdict.bound_ip,
        by_session: false,
    }
}

fn by_session<'a>(
    site: &SiteAuth,
    sessions: &Sessions,
    token: &'a str,
    req: &RequestView<'a>,
    now: u64,
) -> Authentication<'a> {
    // A site that cannot verify right now (no keys yet, or its vendor
    // switched auth off and the site denies) honours no session either.
    match site.mode {
        AuthMode::VendorDisabled { allow: false } => {
            return Authentication::denied(DenyReason::AuthDisabled, true)
        }
        AuthMode::Verify if site.keys.is_empty() => {
            return Authentication::denied(DenyReason::NoKeys, true)
        }
        _ => {}
    }
    // Scopes are origin paths: for schemes with auth in the path a child
    // may be addressed with or without those segments.
    let result = session::verify(
        &sessions.secret,
        &site.site_id,
        sessions.scope,
        token,
        site.origin_path(req.path),
        &session::covered_query(req.query),
        req.client_ip,
        now,
        site.clock_skew_secs,
    );
    let (expires_at, bound_ip) = match &result {
        Ok(g) => (Some(g.expires_at), g.bound_ip),
        Err(_) => (None, None),
    };
    Authentication {
        result: result.map(Grant::Session),
        derived: Derived::from([(
            "session",
            Cow::Borrowed("HLS child token issued by this proxy"),
        )]),
        expires_at,
        matched_key: None,
        bound_ip,
        by_session: true,
    }
}
