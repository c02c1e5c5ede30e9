//! Signed-URL verification: the [`Verifier`] trait, its verdicts, and the
//! pieces every scheme shares (query parsing, time parsing, constant-time
//! digest comparison, path helpers).
//!
//! A verifier is a pure function of `(request view, keys, now)`: no I/O and no
//! clock reads, so every scheme is unit tested with fixed vectors. A rejected
//! token is a [`Decision`], not an error; the proxy turns it into an HTTP
//! response in exactly one place (`proxy::respond::denial`).
//!
//! Whether a request passes is decided by [`authenticate`] (in `site.rs`),
//! which every caller uses: the proxy, `streamguard check`, and later the
//! admin API and media-server hooks.
//!
//! Adding a scheme means: a file in this module implementing [`Verifier`] and a
//! variant of [`RawScheme`].

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::keys::{KeySet, Secret};
use crate::problems::{Ctx, Problem};

pub use site::{
    authenticate, AppKeys, AuthMode, Authentication, Grant, KeySource, Sessions, SiteAuth,
};

pub mod akamai;
pub mod aliyun;
pub mod md5x2;
pub mod nginx;
pub mod session;
pub mod site;
pub mod tencent;
pub mod volcengine;
pub mod wangsu;

/// What a verifier sees of a request. Borrowed from the request; nothing here
/// is decoded or normalized beyond what `proxy::path::validate` guarantees.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// Host the client asked for, lowercase, without port.
    pub host: &'a str,
    /// Request path exactly as sent on the wire (percent-encoded), starting with `/`.
    pub path: &'a str,
    /// Raw query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// The client's address: the peer, or the address a trusted proxy
    /// reported in `X-Forwarded-For` (see `proxy::client_ip`).
    pub client_ip: Option<IpAddr>,
    /// Request headers (cookies and header-borne tokens), when available.
    pub headers: Option<&'a http::HeaderMap>,
}

/// Why a request was denied. A fixed set: these strings appear in the
/// `x-streamguard-deny` response header and as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No auth params at all.
    MissingToken,
    /// Auth params present but not of the scheme's form (bad hex, missing half, duplicates).
    MalformedToken,
    /// Signature valid but the URL's validity window has passed.
    Expired,
    /// Signature valid but the URL is not valid yet.
    NotYetValid,
    /// No key of the site produced the given signature.
    BadSignature,
    /// The token is bound to another client address.
    WrongClient,
    /// The site has no keys to verify with (nothing configured or synced yet).
    NoKeys,
    /// The vendor reports auth disabled and the site denies then.
    AuthDisabled,
    /// The token is genuine but its ACL does not cover the requested path
    /// (Akamai `acl=` patterns).
    OutsideAcl,
}

impl DenyReason {
    /// The reason's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::MissingToken => "missing_token",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::WrongClient => "wrong_client",
            DenyReason::NoKeys => "no_keys",
            DenyReason::AuthDisabled => "auth_disabled",
            DenyReason::OutsideAcl => "outside_acl",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The URL is genuine and within its validity window.
    Allow,
    /// The URL is rejected, for this reason.
    Deny(DenyReason),
}

/// What a verifier derived from a URL (stream name, signed path, time as
/// written…) for humans (`streamguard check`), never secrets: at most
/// [`Derived::CAPACITY`] labelled values, kept inline.
///
/// Why inline: every request builds one, and the verify path must not
/// allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived<'a> {
    len: usize,
    items: [(&'static str, Cow<'a, str>); Derived::CAPACITY],
}

impl<'a> Derived<'a> {
    /// Most values one verdict carries (Akamai's five fields, with room).
    pub const CAPACITY: usize = 6;

    /// Nothing derived.
    pub fn new() -> Self {
        Derived::default()
    }

    /// Adds `label: value`. Values past [`Derived::CAPACITY`] are dropped:
    /// schemes derive a fixed, smaller number of fields.
    pub fn push(&mut self, label: &'static str, value: Cow<'a, str>) {
        debug_assert!(self.len < Self::CAPACITY, "derived field {label} dropped");
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = (label, value);
            self.len += 1;
        }
    }

    /// The values in the order they were added.
    pub fn iter(&self) -> std::slice::Iter<'_, (&'static str, Cow<'a, str>)> {
        self.items[..self.len].iter()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was derived.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `item` (label and value) was derived.
    pub fn contains(&self, item: &(&'static str, Cow<'a, str>)) -> bool {
        self.iter().any(|i| i == item)
    }
}

impl<'a, const N: usize> From<[(&'static str, Cow<'a, str>); N]> for Derived<'a> {
    fn from(items: [(&'static str, Cow<'a, str>); N]) -> Self {
        let mut d = Derived::new();
        for (label, value) in items {
            d.push(label, value);
        }
        d
    }
}

impl<'b, 'a> IntoIterator for &'b Derived<'a> {
    type Item = &'b (&'static str, Cow<'a, str>);
    type IntoIter = std::slice::Iter<'b, (&'static str, Cow<'a, str>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The outcome of verifying one request, with what the scheme derived from the
/// URL (stream name, signed path, expiry) so an operator can see *why*.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Allow or deny.
    pub decision: Decision,
    /// Unix seconds after which the URL stops being accepted, when known.
    pub expires_at: Option<u64>,
    /// Derived fields for humans (`streamguard check`), never secrets.
    pub derived: Derived<'a>,
    /// The path to forward when it differs from the request path (schemes
    /// that carry auth in the path, e.g. Alibaba Cloud types B and C): a
    /// part of the request path.
    pub forward_path: Option<&'a str>,
    /// The client address the token is bound to (Akamai `ip=`, nginx
    /// `$remote_addr`), so HLS session tokens issued from it stay bound.
    pub bound_ip: Option<IpAddr>,
    /// Index into the keys passed to `verify` of the key that signed the
    /// token, when one did (also for an expired token).
    pub matched_key: Option<usize>,
}

impl<'a> Verdict<'a> {
    /// A denial with nothing derived.
    pub fn deny(reason: DenyReason) -> Self {
        Verdict {
            decision: Decision::Deny(reason),
            expires_at: None,
            derived: Derived::new(),
            forward_path: None,
            bound_ip: None,
            matched_key: None,
        }
    }

    /// A verdict with what was derived so far, denied for `reason` until decided.
    pub fn pending(reason: DenyReason, derived: Derived<'a>) -> Self {
        Verdict {
            derived,
            ..Verdict::deny(reason)
        }
    }

    /// True when the decision is allow.
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// A signed URL's path and query, as produced by [`Verifier::sign`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// Path to request (schemes that carry auth in the path change it).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
}

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The site has no key to sign with.
    #[error("the site has no key to sign with")]
    NoKey,
    /// The path has no stream name or is otherwise unusable for this scheme.
    #[error("cannot sign this path: {0}")]
    BadPath(String),
    /// The scheme cannot honour a requested signing option.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// One signed-URL scheme, configured for one site.
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The scheme's name, e.g. `tencent` (used as a metric label).
    fn scheme(&self) -> &'static str;

    /// Verifies a request against `keys` at time `now` (unix seconds).
    /// Pure: no I/O, no clock.
    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a>;

    /// True when tokens may be bound to the client's address (`streamguard
    /// check` then asks for `--client-ip`).
    fn binds_client(&self) -> bool {
        false
    }

    /// Query parameter names that carry auth, stripped before forwarding when
    /// the site asks for it.
    fn auth_params(&self) -> &[String];

    /// A name under which the token may also come as a cookie or a header
    /// (Akamai's `__token__`): removed from both before forwarding, like
    /// the auth params from the query. `None` for query-only schemes.
    fn token_carrier(&self) -> Option<&str> {
        None
    }

    /// This verifier as the site's publishers are checked with it (with the
    /// push keys), where that differs from players: Volcengine push times
    /// are always decimal, and a combination of verifiers must not bring
    /// its play keys along. `None`: the same verifier.
    fn for_publishers(&self) -> Option<std::sync::Arc<dyn Verifier>> {
        None
    }

    /// This verifier, built from a vendor's answer, with what the answer
    /// does not say taken from the site's own verifier `site` when that is
    /// of the same scheme (Tencent: the param names and the txTime
    /// format). `None`: nothing to take.
    fn named_like(&self, _site: &dyn Verifier) -> Option<std::sync::Arc<dyn Verifier>> {
        None
    }

    /// How the scheme writes its time value, for schemes that offer a
    /// choice.
    fn time_format(&self) -> Option<TimeFormat> {
        None
    }

    /// The origin path for a request path whose auth was checked some other
    /// way (an HLS session token): schemes that carry auth in the path drop
    /// it here, as `verify` does in `Verdict::forward_path`.
    fn origin_path<'a>(&self, path: &'a str) -> &'a str {
        path
    }

    /// Signs `path` on `host` (keeping the non-auth params of `query`) with
    /// `key` so that the URL is accepted until `expires_at` (plus the site's
    /// clock-skew leeway): scheme deltas such as Tencent's AuthDelta are
    /// subtracted from the time written into the URL.
    fn sign(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError>;

    /// Like [`Verifier::sign`], with options only some schemes use: a
    /// client address for schemes that hash it (nginx `$remote_addr`), an
    /// ACL pattern for schemes that sign one (Akamai). Schemes that cannot
    /// honour an option refuse it rather than sign something else.
    fn sign_with(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        opts: &SignOptions,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        if opts.acl.is_some() {
            return Err(SignError::Unsupported(ACL_UNSUPPORTED));
        }
        // Only schemes that bind to the client read `opts.client_ip`.
        self.sign(host, path, query, key, expires_at)
    }
}

/// Why a scheme without ACLs refuses [`SignOptions::acl`].
pub const ACL_UNSUPPORTED: &str = "an ACL pattern (--acl) applies only to the akamai scheme";

/// What [`Verifier::sign_with`] may be asked for beyond path and expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignOptions {
    /// The client address the URL is bound to (`--client-ip`).
    pub client_ip: Option<IpAddr>,
    /// An ACL pattern to sign instead of the exact path (`--acl`, Akamai).
    pub acl: Option<String>,
}

/// Declares the schemes: the `[site.auth]` enum, its parsing by `scheme`
/// name, and the dispatch to each scheme's `build`. Adding a scheme is one
/// line here.
macro_rules! schemes {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$raw:ident) = $name:literal,)*) => {
        /// The `[site.auth]` table: which scheme, and its parameters.
        #[derive(Clone)]
        pub enum RawScheme {
            $($(#[$doc])* $variant($module::$raw),)*
        }

        /// Every `scheme = "…"` name.
        pub const SCHEME_NAMES: &[&str] = &[$($name),*];

        impl RawScheme {
            /// Parses a `[site.auth]` table (at key path `path`) by its
            /// `scheme` key. Every structural problem is returned with its
            /// key path, in words that never quote a value.
            pub fn from_table(mut table: toml::Table, path: &str) -> Result<RawScheme, Vec<Problem>> {
                let name = match table.remove("scheme") {
                    Some(toml::Value::String(s)) => s,
                    Some(_) => return Err(vec![Problem::at(&format!("{path}.scheme"), format!("must be text in quotes, one of {}", SCHEME_NAMES.join(", ")))]),
                    None => return Err(vec![Problem::at(&format!("{path}.scheme"), format!("required key `scheme` is missing; one of {}", SCHEME_NAMES.join(", ")))]),
                };
                match name.as_str() {
                    $($name => {
                        let checked = crate::problems::deserialize_checked::<$module::$raw>(&mut table, path);
                        match checked.value {
                            Some(raw) if checked.problems.is_empty() => Ok(RawScheme::$variant(raw)),
                            _ => Err(checked.problems),
                        }
                    })*
                    _ => Err(vec![Problem::at(&format!("{path}.scheme"), format!("unknown scheme; use one of {}", SCHEME_NAMES.join(", ")))]),
                }
            }

            /// The structural check of a `[site.auth]` table's settings (without
            /// its `scheme` key) for scheme `name`, repairing `table` as
            /// [`crate::problems::deserialize_checked`] does; `None` for an
            /// unknown scheme name.
            pub fn check(name: &str, table: &mut toml::Table, path: &str) -> Option<crate::problems::Checked<()>> {
                match name {
                    $($name => {
                        let c = crate::problems::deserialize_checked::<$module::$raw>(table, path);
                        Some(crate::problems::Checked { value: c.value.map(|_| ()), problems: c.problems, repaired: c.repaired })
                    })*
                    _ => None,
                }
            }

            /// Validates the scheme table at key path `path` and builds its
            /// verifier and static keys. Problems are recorded in `ctx`;
            /// `None` when there were any.
            pub fn build(&self, path: &str, common: Common, ctx: &mut Ctx<'_>) -> Option<(Box<dyn Verifier>, KeySet)> {
                match self {
                    $(RawScheme::$variant(raw) => boxed(raw.build(path, common, ctx)),)*
                }
            }
        }
    };
}

schemes! {
    /// Tencent Cloud Live `txSecret`/`txTime`.
    Tencent(tencent::RawTencent) = "tencent",
    /// Volcengine Live `volcSecret`/`volcTime`.
    Volcengine(volcengine::RawVolcengine) = "volcengine",
    /// Wangsu / ChinaNetCenter `wsSecret`/`wsTime`, several rule groups.
    Wangsu(wangsu::RawWangsu) = "wangsu",
    /// Alibaba Cloud `auth_key` types A, B and C.
    Aliyun(aliyun::RawAliyun) = "aliyun",
    /// Akamai EdgeAuth 2.0 `__token__` (HMAC, acl or url mode).
    Akamai(akamai::RawAkamai) = "akamai",
    /// nginx `secure_link` / `secure_link_md5` (`md5`/`expires`).
    NginxSecureLink(nginx::RawNginxSecureLink) = "nginx_secure_link",
}

/// The end of every scheme's config reader: the verifier and its keys when
/// neither the reader (problems recorded since `before`) nor the settings
/// constructor found a problem; the constructor's problems are recorded at
/// `{path}.` + their field name.
pub fn from_config<V>(
    built: Result<V, Vec<Problem>>,
    keys: Vec<Secret>,
    path: &str,
    ctx: &mut Ctx<'_>,
    before: usize,
) -> Option<(V, KeySet)> {
    match built {
        Ok(v) if ctx.problem_count() == before => Some((v, KeySet::new(keys))),
        Ok(_) => None,
        Err(problems) => {
            ctx.extend(problems, |f| format!("{path}.{f}"));
            None
        }
    }
}

/// Scheme-independent settings a verifier is built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Common {
    /// Seconds of clock skew tolerated past a URL's expiry.
    pub clock_skew_secs: u64,
}

fn boxed<V: Verifier + 'static>(built: Option<(V, KeySet)>) -> Option<(Box<dyn Verifier>, KeySet)> {
    built.map(|(v, k)| (Box::new(v) as Box<dyn Verifier>, k))
}

/// The verifier of a site whose keys come from a vendor that has not
/// answered yet: denies everything with `no_keys`.
#[derive(Debug, Clone, Copy)]
pub struct Pending;

/// The verifier of a site whose vendor reports auth switched off: allows
/// everything (`on_vendor_disabled = "allow"`) or denies with `auth_disabled`.
#[derive(Debug, Clone)]
pub struct VendorDisabled {
    /// Let requests through.
    pub allow: bool,
    /// The scheme's auth params: still stripped before forwarding, so a
    /// signed URL's signature never reaches the origin.
    pub params: Vec<String>,
}

/// The query params scheme `scheme` reads under its default names (what a
/// vendor-synced site's URLs carry when the vendor names none).
pub fn default_params(scheme: &str) -> Vec<String> {
    let names: &[&str] = match scheme {
        "tencent" => &[tencent::DEFAULT_SECRET_PARAM, tencent::DEFAULT_TIME_PARAM],
        "volcengine" => &[
            volcengine::DEFAULT_SECRET_PARAM,
            volcengine::DEFAULT_TIME_PARAM,
        ],
        "wangsu" => &[wangsu::DEFAULT_CIPHER_PARAM, wangsu::DEFAULT_TIME_PARAM],
        "aliyun" => &[
            aliyun::DEFAULT_A_PARAM,
            aliyun::DEFAULT_C_HASH_PARAM,
            aliyun::DEFAULT_C_TIME_PARAM,
        ],
        "nginx_secure_link" => &[nginx::DEFAULT_MD5_PARAM, nginx::DEFAULT_EXPIRES_PARAM],
        "akamai" => &[akamai::DEFAULT_TOKEN_NAME],
        _ => &[],
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

impl Verifier for Pending {
    fn scheme(&self) -> &'static str {
        "pending"
    }
    fn verify<'a>(&self, _: &RequestView<'a>, _: &KeySet, _: u64) -> Verdict<'a> {
        Verdict::deny(DenyReason::NoKeys)
    }
    fn auth_params(&self) -> &[String] {
        &[]
    }
    fn sign(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &Secret,
        _: u64,
    ) -> Result<Signed, SignError> {
        Err(SignError::NoKey)
    }
}

impl Verifier for VendorDisabled {
    fn scheme(&self) -> &'static str {
        "vendor_disabled"
    }
    fn verify<'a>(&self, _: &RequestView<'a>, _: &KeySet, _: u64) -> Verdict<'a> {
        if self.allow {
            Verdict {
                decision: Decision::Allow,
                expires_at: None,
                derived: Derived::from([(
                    "note",
                    Cow::Borrowed("vendor reports auth disabled; on_vendor_disabled = allow"),
                )]),
                forward_path: None,
                bound_ip: None,
                matched_key: None,
            }
        } else {
            Verdict::deny(DenyReason::AuthDisabled)
        }
    }
    fn auth_params(&self) -> &[String] {
        &self.params
    }
    fn sign(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &Secret,
        _: u64,
    ) -> Result<Signed, SignError> {
        Err(SignError::NoKey)
    }
}

/// Accepts a request when any of several verifiers, each with its own keys,
/// accepts it: one vendor answer that holds several parameter sets (a
/// Volcengine domain with per-App entries, or keys with different
/// algorithms), where a key must only verify under the parameters it was
/// listed with.
///
/// The `keys` passed to [`Verifier::verify`] are the site's key set as the
/// snapshot builds it: [`AnyOf::keys`] followed by any static keys of the
/// site. Keys not owned by an inner verifier (those static ones) are tried
/// with every inner verifier, as they would be with a single verifier.
#[derive(Debug)]
pub struct AnyOf {
    inner: Vec<(std::sync::Arc<dyn Verifier>, KeySet)>,
    params: Vec<String>,
    owned: KeySet,
}

impl AnyOf {
    /// Combines `inner` (tried in order); `None` when it is empty.
    pub fn new(inner: Vec<(std::sync::Arc<dyn Verifier>, KeySet)>) -> Option<Self> {
        if inner.is_empty() {
            return None;
        }
        let mut params: Vec<String> = Vec::new();
        let mut owned: Vec<Secret> = Vec::new();
        for (v, keys) in &inner {
            for p in v.auth_params() {
                if !params.contains(p) {
                    params.push(p.clone());
                }
            }
            for k in keys.iter() {
                if !owned.contains(k) {
                    owned.push(k.clone());
                }
            }
        }
        Some(AnyOf {
            inner,
            params,
            owned: KeySet::new(owned),
        })
    }

    /// Every inner key once, in order: the first verifier's primary first.
    pub fn keys(&self) -> KeySet {
        self.owned.clone()
    }

    /// How much a denial says about the URL: a valid signature outside its
    /// window beats a wrong signature, which beats a malformed or absent
    /// token (another verifier may name its params differently).
    fn telling(d: Decision) -> u8 {
        match d {
            Decision::Allow => 6,
            Decision::Deny(
                DenyReason::Expired
                | DenyReason::NotYetValid
                | DenyReason::WrongClient
                | DenyReason::OutsideAcl,
            ) => 5,
            Decision::Deny(DenyReason::BadSignature) => 4,
            Decision::Deny(DenyReason::MalformedToken) => 3,
            Decision::Deny(DenyReason::MissingToken) => 2,
            Decision::Deny(DenyReason::NoKeys) => 1,
            Decision::Deny(DenyReason::AuthDisabled) => 0,
        }
    }
}

impl Verifier for AnyOf {
    fn scheme(&self) -> &'static str {
        self.inner.first().map_or("any_of", |(v, _)| v.scheme())
    }

    /// The same parameter sets with no keys of their own (their keys are
    /// play keys): publishers' keys are tried under every set.
    fn for_publishers(&self) -> Option<std::sync::Arc<dyn Verifier>> {
        let inner = self
            .inner
            .iter()
            .map(|(v, _)| {
                (
                    v.for_publishers().unwrap_or_else(|| v.clone()),
                    KeySet::default(),
                )
            })
            .collect();
        AnyOf::new(inner).map(|a| std::sync::Arc::new(a) as std::sync::Arc<dyn Verifier>)
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        // O(keys × owned) constant-time compares; both are small (the
        // vendor allows 100 keys per entry) and usually no key is extra.
        let extra: Vec<Secret> = keys
            .iter()
            .filter(|k| !self.owned.iter().any(|o| o == *k))
            .cloned()
            .collect();
        let mut best: Option<Verdict<'a>> = None;
        for (v, own) in &self.inner {
            let tried: Cow<'_, KeySet> = if extra.is_empty() {
                Cow::Borrowed(own)
            } else {
                Cow::Owned(KeySet::new(own.iter().chain(&extra).cloned().collect()))
            };
            let mut verdict = v.verify(req, &tried, now);
            // The index is into the keys this verifier was given: report it
            // as an index into the site's keys.
            verdict.matched_key = verdict
                .matched_key
                .and_then(|i| tried.iter().nth(i))
                .and_then(|k| keys.iter().position(|s| s == k));
            if verdict.is_allowed() {
                return verdict;
            }
            if best
                .as_ref()
                .is_none_or(|b| Self::telling(verdict.decision) > Self::telling(b.decision))
            {
                best = Some(verdict);
            }
        }
        best.unwrap_or_else(|| Verdict::deny(DenyReason::NoKeys))
    }

    fn auth_params(&self) -> &[String] {
        &self.params
    }

    fn origin_path<'a>(&self, path: &'a str) -> &'a str {
        self.inner
            .first()
            .map_or(path, |(v, _)| v.origin_path(path))
    }

    /// Signs with the first verifier that owns `key` (else the first).
    fn sign(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        let v = self
            .inner
            .iter()
            .find(|(_, own)| own.iter().any(|k| k == key))
            .or(self.inner.first())
            .ok_or(SignError::NoKey)?;
        v.0.sign(host, path, query, key, expires_at)
    }
}

// ---------------------------------------------------------------------------
// Shared pieces.

/// Looks up one query parameter by exact (raw) name.
///
/// Why: a parameter given twice is ambiguous (which one did the origin or the
/// vendor see?), so it is an error rather than first-wins.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Result<Option<&'a str>, Duplicate> {
    let [found] = query_params(query, [name]);
    found
}

/// [`query_param`] for several names in one pass over the query: entry *i*
/// is what `query_param(query, names[i])` returns.
pub fn query_params<'a, const N: usize>(
    query: Option<&'a str>,
    names: [&str; N],
) -> [Result<Option<&'a str>, Duplicate>; N] {
    let mut found: [Result<Option<&'a str>, Duplicate>; N] = [Ok(None); N];
    for pair in query_pairs(query.unwrap_or("")) {
        for (name, slot) in names.iter().zip(found.iter_mut()) {
            if pair.key == *name {
                *slot = match slot {
                    Ok(None) => Ok(Some(pair.value)),
                    _ => Err(Duplicate),
                };
            }
        }
    }
    found
}

/// One `&`-separated piece of a query: the whole piece, and its halves
/// around the first `=` (the value is empty without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The piece as written (`key=value`).
    pub whole: &'a str,
    /// Up to the first `=` (all of it without one).
    pub key: &'a str,
    /// After the first `=` (empty without one).
    pub value: &'a str,
}

/// The `&`-separated pieces of a query, in order, empty ones included.
pub fn query_pairs(query: &str) -> Pairs<'_> {
    Pairs { query, start: 0 }
}

/// The pieces of a query, as `split('&')` then `split_once('=')` give them
/// (empty pieces included), by byte scans: `&` and `=` are ASCII, so
/// every cut is a char boundary, and there is no searcher to set up (that
/// setup dominated on the short queries of signed URLs). `memchr` finds
/// the `&` after a 32- or 64-digit signature several bytes at a time.
pub struct Pairs<'a> {
    query: &'a str,
    /// Start of the next piece; past the end once the last is given.
    start: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Pair<'a>;

    fn next(&mut self) -> Option<Pair<'a>> {
        let q = self.query;
        let rest = q.as_bytes().get(self.start..)?;
        let end = memchr::memchr(b'&', rest).map_or(q.len(), |i| self.start + i);
        let whole = &q[self.start..end];
        self.start = end + 1;
        let (key, value) = match whole.bytes().position(|b| b == b'=') {
            Some(i) => (&whole[..i], &whole[i + 1..]),
            None => (whole, ""),
        };
        Some(Pair { whole, key, value })
    }
}

/// Both halves of a two-parameter token (signature and time).
///
/// Neither present → `missing_token`; one of them, or either given twice →
/// `malformed_token`.
pub fn param_pair<'a>(
    query: Option<&'a str>,
    a: &str,
    b: &str,
) -> Result<(&'a str, &'a str), DenyReason> {
    match query_params(query, [a, b]) {
        [Ok(None), Ok(None)] => Err(DenyReason::MissingToken),
        [Ok(Some(x)), Ok(Some(y))] => Ok((x, y)),
        _ => Err(DenyReason::MalformedToken),
    }
}

/// A query parameter appeared more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate;

/// The query without the named parameters; `None` when nothing is left.
///
/// One pass, one allocation (the result).
pub fn strip_params<S: AsRef<str>>(query: &str, names: &[S]) -> Option<String> {
    let mut out = String::new();
    push_kept_params(&mut out, query, names).then_some(out)
}

/// Appends to `out` the query's pairs other than the named parameters,
/// joined by `&` (empty pairs dropped); true when any was appended.
pub fn push_kept_params<S: AsRef<str>>(out: &mut String, query: &str, names: &[S]) -> bool {
    let mut kept = false;
    for Pair {
        whole: pair, key, ..
    } in query_pairs(query)
    {
        if pair.is_empty() || names.iter().any(|n| n.as_ref() == key) {
            continue;
        }
        if kept {
            out.push('&');
        } else {
            // Everything else fits: at most the whole query.
            out.reserve(query.len());
            kept = true;
        }
        out.push_str(pair);
    }
    kept
}

/// Appends `name=value` pairs to an optional existing query (whose own copies
/// of those names are dropped first).
pub fn append_params(query: Option<&str>, params: &[(&str, &str)]) -> String {
    let names: Vec<&str> = params.iter().map(|(k, _)| *k).collect();
    let mut out = query
        .and_then(|q| strip_params(q, &names))
        .unwrap_or_default();
    for (k, v) in params {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Most digits of a hex time: unix seconds take 8 until 2106.
pub const MAX_HEX_TIME_DIGITS: usize = 8;

/// Parses unix seconds written in hex (either case), 1 to 8 digits.
///
/// Why 8: no vendor writes more, and a longer value is a mistake that
/// would never expire: a decimal time such as `1546064025` (10 digits, all
/// of them hex digits too) read as hex is an expiry some 3,000 years away.
pub fn parse_hex_time(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_HEX_TIME_DIGITS {
        return None;
    }
    // One pass, no overflow possible in 8 digits (`from_str_radix` after
    // a validity scan took two passes and three times the instructions).
    s.bytes().try_fold(0u64, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(digit))
    })
}

/// Latest time a URL may carry: the end of `u32` unix seconds (2106).
pub const MAX_URL_TIME: u64 = u32::MAX as u64;

/// Parses unix seconds written in decimal: digits only, no sign, no
/// leading zero, no later than [`MAX_URL_TIME`] (so at most 10 digits).
///
/// Why so strict: several schemes hash the stream name or path directly
/// followed by the time (Tencent `StreamName + txTime`, Wangsu
/// `path + time`). With leading zeros or longer numbers allowed, the last
/// digit of a stream name could move into the time and keep the hash:
/// `cam1` + `1700000000` signs `cam` + `11700000000`, an expiry in the
/// year 2340, and `cam0` + `1700000000` signs `cam` + `01700000000`,
/// another stream.
pub fn parse_dec_time(s: &str) -> Option<u64> {
    if s.is_empty()
        || s.len() > 10
        || (s.len() > 1 && s.starts_with('0'))
        || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok().filter(|&t| t <= MAX_URL_TIME)
}

/// How a scheme writes its time value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Hexadecimal unix seconds (`5C271099`).
    #[default]
    Hex,
    /// Decimal unix seconds (`1546064025`).
    Decimal,
}

impl TimeFormat {
    /// Parses a time value in this format.
    pub fn parse(self, s: &str) -> Option<u64> {
        match self {
            TimeFormat::Hex => parse_hex_time(s),
            TimeFormat::Decimal => parse_dec_time(s),
        }
    }

    /// Formats a time the way the vendors' samples do (hex uppercase).
    pub fn format(self, t: u64) -> String {
        match self {
            TimeFormat::Hex => format!("{t:X}"),
            TimeFormat::Decimal => t.to_string(),
        }
    }
}

/// Allowed while `now <= expires_at + leeway`.
pub fn check_expiry(expires_at: u64, now: u64, leeway: u64) -> Decision {
    if now > expires_at.saturating_add(leeway) {
        Decision::Deny(DenyReason::Expired)
    } else {
        Decision::Allow
    }
}

/// The validity window a token claims. `None` bounds are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Not accepted before this unix time (minus leeway).
    pub not_before: Option<u64>,
    /// Not accepted after this unix time (plus leeway).
    pub expires_at: Option<u64>,
}

/// The decision once the signature was checked: a bad signature wins over
/// the window, so `expired` always means "genuine but too old".
pub fn decide(matched: Option<usize>, window: Window, now: u64, leeway: u64) -> Decision {
    if matched.is_none() {
        return Decision::Deny(DenyReason::BadSignature);
    }
    if let Some(nb) = window.not_before {
        if now.saturating_add(leeway) < nb {
            return Decision::Deny(DenyReason::NotYetValid);
        }
    }
    match window.expires_at {
        Some(exp) => check_expiry(exp, now, leeway),
        None => Decision::Allow,
    }
}

/// The common end of every scheme's `verify`: with the token parsed and its
/// window known, find the signing key with `matches` and decide.
pub fn conclude<'a>(
    derived: Derived<'a>,
    keys: &KeySet,
    window: Window,
    now: u64,
    leeway: u64,
    matches: impl FnMut(&Secret) -> bool,
) -> Verdict<'a> {
    let matched = matching_key(keys, matches);
    concluded(derived, keys, window, now, leeway, matched)
}

/// [`conclude`] for schemes whose signature is an MD5 of a message that
/// holds the key: `message` writes a key's message, `signature` is the
/// URL's, decoded. Keys are hashed two at a time ([`md5x2::first_match`]).
pub fn conclude_md5<'a>(
    derived: Derived<'a>,
    keys: &KeySet,
    window: Window,
    now: u64,
    leeway: u64,
    message: impl md5x2::Message,
    signature: &[u8; 16],
) -> Verdict<'a> {
    let matched = md5x2::first_match(keys.iter().enumerate(), message, signature);
    concluded(derived, keys, window, now, leeway, matched)
}

/// The verdict once the signing key was looked for.
fn concluded<'a>(
    derived: Derived<'a>,
    keys: &KeySet,
    window: Window,
    now: u64,
    leeway: u64,
    matched: Option<usize>,
) -> Verdict<'a> {
    let decision = if keys.is_empty() {
        Decision::Deny(DenyReason::NoKeys)
    } else {
        decide(matched, window, now, leeway)
    };
    Verdict {
        decision,
        expires_at: window.expires_at,
        derived,
        forward_path: None,
        bound_ip: None,
        matched_key: matched,
    }
}

/// Index of the first key for which `matches` holds.
///
/// Why stopping at the first match is safe: a forged or unknown signature
/// is tried against every key, so a denial takes the same time whatever
/// the keys are; only a URL that already verifies returns sooner, and it
/// tells its holder nothing new (that it verifies, and whether the primary
/// key signed it). Each comparison itself is constant-time. Most URLs are
/// signed with the primary key, so this halves the digest work with two
/// keys in force (Akamai's HMACs; MD5 schemes hash two keys at once
/// instead, see [`md5x2::first_match`]).
pub fn matching_key(keys: &KeySet, matches: impl FnMut(&Secret) -> bool) -> Option<usize> {
    keys.iter().position(matches)
}

/// `primary`, `backup`, then `key#3`… for the derived fields.
pub fn key_label(i: usize) -> String {
    match i {
        0 => "primary".to_owned(),
        1 => "backup".to_owned(),
        n => format!("key#{}", n + 1),
    }
}

/// Hex MD5 of the concatenation of `parts`.
pub fn md5_parts(parts: &[&[u8]]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Percent-decodes `s` strictly: a `%` not followed by two hex digits is an error.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    percent_decode_into(s, |b| out.extend_from_slice(b)).then_some(out)
}

/// [`percent_decode`] without a buffer: hands the decoded bytes to `out` in
/// pieces (runs of literal bytes, single decoded bytes) and returns whether
/// `s` decoded. On `false`, `out` has seen a prefix: check first with a
/// no-op `out` where a partial result must not be used.
pub fn percent_decode_into(s: &str, mut out: impl FnMut(&[u8])) -> bool {
    let b = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out(&b[run..i]);
            // Two hex digits, nothing else (`u8::from_str_radix` would also
            // take `%+f`, which nginx and every origin refuse).
            let mut byte = [0u8; 1];
            let Some(Ok(())) = b
                .get(i + 1..i + 3)
                .map(|h| hex::decode_to_slice(h, &mut byte))
            else {
                return false;
            };
            out(&byte);
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out(&b[run..]);
    true
}

/// The path's segments after the leading `/` (`/live/a.flv` → `["live", "a.flv"]`).
pub fn segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

/// Lowercase hex of a digest.
pub fn lower_hex(digest: &[u8]) -> String {
    hex::encode(digest)
}

/// True when `given` is the lowercase-hex form of `digest`, compared in
/// constant time and case-insensitively.
///
/// Why constant time: a byte-by-byte early exit would let an attacker learn
/// the expected signature one byte at a time from response timings.
pub fn hex_digest_matches(digest: &[u8], given: &str) -> bool {
    let given = given.as_bytes();
    if given.len() != digest.len() * 2 || digest.len() > 64 {
        return false;
    }
    let hexd = b"0123456789abcdef";
    // Every byte is looked at whatever the earlier ones were: the
    // differences are OR-ed together and only their sum is compared.
    let mut diff = 0u8;
    for (b, pair) in digest.iter().zip(given.chunks_exact(2)) {
        diff |= hexd[usize::from(b >> 4)] ^ pair[0].to_ascii_lowercase();
        diff |= hexd[usize::from(b & 0xf)] ^ pair[1].to_ascii_lowercase();
    }
    std::hint::black_box(diff).ct_eq(&0).into()
}

/// The 16 bytes that 32 hex digits (either case) spell; `None` for
/// anything else. Decoded once per URL, then compared with each key's
/// digest in constant time (the URL's signature is the requester's own
/// input: how long decoding it takes tells them nothing).
pub fn hex16(s: &str) -> Option<[u8; 16]> {
    let mut out = [0; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// True when `s` is `len` hex digits.
pub fn is_hex_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Splits a request path into (directory prefix with trailing `/`, last segment).
pub fn last_segment(path: &str) -> (&str, &str) {
    // A byte scan: `/` is ASCII, so the cut is a char boundary (`rfind`
    // with a char pattern costs a searcher's setup on every request).
    match path.bytes().rposition(|b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The last path segment without its extension: `/live/test01.flv` → `test01`.
///
/// Only the final `.ext` is removed, so `a.b.flv` → `a.b`.
pub fn stream_name(path: &str) -> &str {
    let (_, last) = last_segment(path);
    match last.bytes().rposition(|b| b == b'.') {
        Some(i) if i > 0 => &last[..i],
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The parsers that face clients never panic, and agree with std where they accept.
        #[test]
        fn client_facing_parsers_never_panic(s in "\\PC{0,40}") {
            let _ = query_param(Some(&s), "a");
            let _ = strip_params(&s, &["a".to_owned()]);
            let _ = percent_decode(&s);
            if let Some(t) = parse_hex_time(&s) {
                prop_assert_eq!(Some(t), u64::from_str_radix(&s, 16).ok());
            }
            if let Some(t) = parse_dec_time(&s) {
                prop_assert_eq!(Some(t), s.parse::<u64>().ok());
            }
            let _ = stream_name(&s);
            let _ = crate::host::normalize_host(&s);
            let _ = crate::proxy::path::validate(&s);
        }
    }

    #[test]
    fn percent_decode_takes_two_hex_digits_only() {
        assert_eq!(percent_decode("a%2Fb%7e").as_deref(), Some(&b"a/b~"[..]));
        assert_eq!(
            percent_decode("%E4%B8%AD").as_deref(),
            Some("中".as_bytes())
        );
        // `u8::from_str_radix` reads `+f` as 15; nginx refuses the escape.
        for bad in ["%+f", "%+1", "a%-1", "%g0", "%0", "%", "% 1", "%é"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    proptest! {
        /// The byte scans answer as the `str` methods they replace.
        #[test]
        fn byte_scans_agree_with_str_methods(
            hex in "[0-9a-fA-FgG]{0,18}",
            path in "[a/.é]{0,10}",
        ) {
            let reference = (!hex.is_empty()
                && hex.len() <= MAX_HEX_TIME_DIGITS
                && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(&hex, 16).ok())
            .flatten();
            prop_assert_eq!(parse_hex_time(&hex), reference);
            let last = match path.rfind('/') {
                Some(i) => &path[i + 1..],
                None => path.as_str(),
            };
            let stream = match last.rfind('.') {
                Some(i) if i > 0 => &last[..i],
                _ => last,
            };
            prop_assert_eq!(last_segment(&path).1, last);
            prop_assert_eq!(stream_name(&path), stream);
        }
    }

    proptest! {
        /// The byte-scanning lookup answers as `split('&')` then
        /// `split_once('=')` did, for each name independently.
        #[test]
        fn query_params_agree_with_split(q in "[ab=&]{0,12}", none in any::<bool>()) {
            let query = (!none).then_some(q.as_str());
            let reference = |name: &str| {
                let mut found = None;
                for pair in query.unwrap_or("").split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if k == name {
                        if found.is_some() {
                            return Err(Duplicate);
                        }
                        found = Some(v);
                    }
                }
                Ok(found)
            };
            let got = query_params(query, ["a", "", "ab", "a"]);
            prop_assert_eq!(got, [reference("a"), reference(""), reference("ab"), reference("a")]);
        }

        /// The byte-scanning pair iterator gives exactly the pieces
        /// `split('&')` and `split_once('=')` give.
        #[test]
        fn pairs_agree_with_split(q in "[ab=&é]{0,12}") {
            let got: Vec<(&str, &str, &str)> =
                query_pairs(&q).map(|p| (p.whole, p.key, p.value)).collect();
            let want: Vec<(&str, &str, &str)> = q
                .split('&')
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap_or((w, ""));
                    (w, k, v)
                })
                .collect();
            prop_assert_eq!(got, want);
        }

        /// Stripping keeps the other non-empty pieces in order.
        #[test]
        fn strip_params_agrees_with_split(q in "[ab=&]{0,12}") {
            let names = ["a", "b="];
            let kept: Vec<&str> = q
                .split('&')
                .filter(|w| !w.is_empty() && !names.contains(&w.split_once('=').map_or(*w, |(k, _)| k)))
                .collect();
            let want = (!kept.is_empty()).then(|| kept.join("&"));
            prop_assert_eq!(strip_params(&q, &names), want);
        }

        /// The OR-accumulating compare agrees with comparing the lowercased
        /// text with the hex of the digest.
        #[test]
        fn digest_compare_agrees_with_hex_text(d in proptest::collection::vec(any::<u8>(), 0..4), g in "[0-9a-fA-FxX]{0,8}") {
            prop_assert_eq!(hex_digest_matches(&d, &g), hex::encode(&d) == g.to_ascii_lowercase());
        }
    }

    #[test]
    fn duplicate_params_are_rejected() {
        assert_eq!(query_param(Some("a=1&b=2"), "a"), Ok(Some("1")));
        assert_eq!(query_param(Some("a=1&a=2"), "a"), Err(Duplicate));
        assert_eq!(query_param(None, "a"), Ok(None));
        assert_eq!(query_param(Some("ab=1"), "a"), Ok(None));
        assert_eq!(query_param(Some("a"), "a"), Ok(Some("")));
    }

    #[test]
    fn strip_params_keeps_other_params_in_order() {
        let names = vec!["txSecret".to_owned(), "txTime".to_owned()];
        assert_eq!(
            strip_params("x=1&txSecret=ab&y=2&txTime=5C", &names).as_deref(),
            Some("x=1&y=2")
        );
        assert_eq!(strip_params("txSecret=ab&txTime=5C", &names), None);
        assert_eq!(strip_params("", &names), None);
    }

    #[test]
    fn append_params_replaces_existing_copies() {
        assert_eq!(append_params(Some("a=1&t=9"), &[("t", "2")]), "a=1&t=2");
        assert_eq!(append_params(None, &[("s", "x"), ("t", "2")]), "s=x&t=2");
    }

    #[test]
    fn hex_times_parse_either_case_and_bounded() {
        assert_eq!(parse_hex_time("5C271099"), Some(0x5C27_1099));
        assert_eq!(parse_hex_time("5c271099"), Some(0x5C27_1099));
        assert_eq!(parse_hex_time(""), None);
        assert_eq!(parse_hex_time("+5C"), None);
        assert_eq!(parse_hex_time("0x5C"), None);
        assert_eq!(parse_hex_time("11111111111111111"), None);
        assert_eq!(parse_hex_time("FFFFFFFF"), Some(0xFFFF_FFFF));
        // A decimal time is no hex time: it would expire in the year 4865.
        assert_eq!(parse_hex_time("1546064025"), None);
        assert_eq!(parse_hex_time("05C271099"), None);
        assert_eq!(parse_dec_time("1653632422"), Some(1_653_632_422));
        assert_eq!(parse_dec_time("-1"), None);
        assert_eq!(parse_dec_time("99999999999999999999"), None);
        assert_eq!(parse_dec_time("0"), Some(0));
        assert_eq!(parse_dec_time("4294967295"), Some(4_294_967_295));
        // A stream name's last digit moved into the time: refused.
        assert_eq!(parse_dec_time("11700000000"), None);
        assert_eq!(parse_dec_time("4294967296"), None);
        assert_eq!(parse_dec_time("01700000000"), None);
        assert_eq!(parse_dec_time("0100"), None);
    }

    #[test]
    fn expiry_boundary_is_inclusive() {
        assert_eq!(check_expiry(100, 100, 0), Decision::Allow);
        assert_eq!(
            check_expiry(100, 101, 0),
            Decision::Deny(DenyReason::Expired)
        );
        assert_eq!(check_expiry(100, 105, 5), Decision::Allow);
        assert_eq!(check_expiry(u64::MAX, u64::MAX, 5), Decision::Allow);
    }

    #[test]
    fn digest_compare_is_case_insensitive_and_exact() {
        let d = [0xf8, 0x5a, 0x2a];
        assert!(hex_digest_matches(&d, "f85a2a"));
        assert!(hex_digest_matches(&d, "F85A2A"));
        assert!(!hex_digest_matches(&d, "f85a2b"));
        assert!(!hex_digest_matches(&d, "f85a2"));
        assert!(!hex_digest_matches(&d, "f85a2a0"));
    }

    #[test]
    fn stream_name_drops_app_and_extension() {
        assert_eq!(stream_name("/live/test01.flv"), "test01");
        assert_eq!(stream_name("/live/test01.m3u8"), "test01");
        assert_eq!(stream_name("/live/test01"), "test01");
        assert_eq!(stream_name("/live/a.b.flv"), "a.b");
        assert_eq!(stream_name("/live/.flv"), ".flv");
        assert_eq!(stream_name("/live/"), "");
    }

    #[test]
    fn any_of_checks_each_key_with_its_own_verifier_and_signs_with_the_owner() {
        use std::sync::Arc;
        let scoped = |app: &str| {
            let v = volcengine::Volcengine::from_parts(
                volcengine::Settings {
                    algorithm: volcengine::Algorithm::Md5,
                    fields: Vec::new(),
                    secret_param: "volcSecret".into(),
                    time_param: "volcTime".into(),
                    timestamp_base: 10,
                    valid_duration_secs: 0,
                    app: Some(app.into()),
                },
                Common { clock_skew_secs: 0 },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            Arc::new(v) as Arc<dyn Verifier>
        };
        assert!(AnyOf::new(Vec::new()).is_none());
        let any = AnyOf::new(vec![
            (scoped("a"), KeySet::new(vec![Secret::new("ka")])),
            (scoped("b"), KeySet::new(vec![Secret::new("kb")])),
        ])
        .unwrap_or_else(|| unreachable!());
        let keys = any.keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(any.auth_params(), ["volcSecret", "volcTime"]);
        let signed = any
            .sign("h", "/b/s.flv", None, &Secret::new("kb"), 100)
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict = |path, key: &str| {
            let s = any
                .sign("h", path, None, &Secret::new(key), 100)
                .unwrap_or_else(|e| panic!("{e}"));
            any.verify(&super::prop::view_of(path, &s.query), &keys, 100)
                .decision
        };
        assert!(any
            .verify(&super::prop::view_of("/b/s.flv", &signed.query), &keys, 100)
            .is_allowed());
        assert_eq!(verdict("/a/s.flv", "ka"), Decision::Allow);
        assert_eq!(
            verdict("/b/s.flv", "ka"),
            Decision::Deny(DenyReason::BadSignature)
        );
        assert_eq!(
            verdict("/c/s.flv", "x"),
            Decision::Deny(DenyReason::BadSignature)
        );
        assert_eq!(
            any.verify(&super::prop::view_of("/a/s.flv", ""), &keys, 100)
                .decision,
            Decision::Deny(DenyReason::MissingToken)
        );
    }
}

/// Property-test support shared by every scheme: sign, then tamper one byte.
#[cfg(test)]
pub(crate) mod prop {
    use super::*;
    use std::ops::Range;

    /// The view of a signed `path?query`.
    pub fn view_of<'a>(path: &'a str, query: &'a str) -> RequestView<'a> {
        RequestView {
            host: "play.example.com",
            path,
            query: Some(query),
            client_ip: None,
            headers: None,
        }
    }

    /// Byte range of the value of query param `name` within `path?query`.
    pub fn param_range(pq: &str, name: &str) -> Range<usize> {
        let q = pq.find('?').map_or(0, |i| i + 1);
        let mut at = q;
        for pair in pq[q..].split('&') {
            if let Some(v) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                let start = at + name.len() + 1;
                return start..start + v.len();
            }
            at += pair.len() + 1;
        }
        panic!("{name} not in {pq}")
    }

    /// `s` with the byte at `i` replaced by a different character of the same
    /// class (digit, lower or upper letter), so the URL stays well-formed.
    pub fn tamper(s: &str, i: usize, pick: u8) -> String {
        let b = s.as_bytes()[i];
        let class: &[u8] = if b.is_ascii_digit() {
            b"0123456789"
        } else if b.is_ascii_lowercase() {
            b"abcdefghijklmnopqrstuvwxyz"
        } else if b.is_ascii_uppercase() {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        } else {
            b"-_"
        };
        let mut c = class[usize::from(pick) % class.len()];
        if c == b {
            c = class[(usize::from(pick) + 1) % class.len()];
        }
        let mut out = s.as_bytes().to_vec();
        out[i] = c;
        String::from_utf8(out).unwrap_or_default()
    }

    /// Verifies `path?query`, split at the first `?`.
    pub fn verify_pq(v: &dyn Verifier, keys: &KeySet, pq: &str, now: u64) -> Decision {
        let (p, q) = pq.split_once('?').unwrap_or((pq, ""));
        v.verify(&view_of(p, q), keys, now).decision
    }

    /// Signs `path` with the primary key, checks the URL is allowed at `now`,
    /// then checks that changing one byte inside each region (chosen by
    /// `idx`) denies it. Regions are byte ranges of the signed `path?query`.
    pub fn sign_then_tamper(
        v: &dyn Verifier,
        keys: &KeySet,
        path: &str,
        expires: u64,
        now: u64,
        regions: impl Fn(&str) -> Vec<(&'static str, Range<usize>)>,
        (idx, pick): (usize, u8),
    ) {
        let key = keys.primary().unwrap_or_else(|| unreachable!());
        let signed = v
            .sign("play.example.com", path, None, key, expires)
            .unwrap_or_else(|e| panic!("{e}"));
        let pq = format!("{}?{}", signed.path, signed.query);
        assert_eq!(
            verify_pq(v, keys, &pq, now),
            Decision::Allow,
            "signed URL denied: {pq}"
        );
        for (what, r) in regions(&pq) {
            assert!(!r.is_empty(), "empty region {what} in {pq}");
            let i = r.start + idx % r.len();
            let bad = tamper(&pq, i, pick);
            assert_ne!(
                verify_pq(v, keys, &bad, now),
                Decision::Allow,
                "changing {what} byte {i} still allowed: {bad}"
            );
        }
    }
}
