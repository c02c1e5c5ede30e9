//! Signing a play URL with its site's signing key: the one code behind
//! `streamguard sign`, the operator API's `POST /v1/sign` and its play
//! credentials.
//!
//! The URL is refused when the proxy would refuse its path, when the
//! expiry is not in the future, and when the site has nothing to sign with,
//! so a URL this module signs is one the proxy accepts until it expires.

use crate::auth::{AuthMode, KeySource, SignOptions, SiteAuth};
use crate::config::SiteConfig;
use crate::host::normalize_host;
use crate::proxy::path;

/// A URL to sign, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host and port as given.
    pub authority: String,
    /// Normalized host (lowercase, no port).
    pub host: String,
    /// Path.
    pub path: String,
    /// Query without `?`, if any.
    pub query: Option<String>,
}

impl Target {
    /// Splits a full URL (`http://play.example.com/live/s.flv?x=1`).
    pub fn parse(url: &str) -> Result<Target, SignError> {
        let uri: http::Uri = url.parse().map_err(|_| SignError::NotAUrl)?;
        let authority = uri
            .authority()
            .ok_or(SignError::NotAUrl)?
            .as_str()
            .to_owned();
        let host = normalize_host(&authority).ok_or(SignError::NotAUrl)?;
        let scheme = uri.scheme_str().unwrap_or("http");
        if scheme != "http" && scheme != "https" {
            return Err(SignError::NotAUrl);
        }
        Ok(Target {
            scheme: scheme.to_owned(),
            authority,
            host,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
        })
    }

    /// The site's URL for `path` (and `query`), on the site's first
    /// domain, plain HTTP.
    pub fn on_site(site: &SiteConfig, path: &str, query: Option<&str>) -> Option<Target> {
        let host = site.domains.first()?.clone();
        Some(Target {
            scheme: "http".to_owned(),
            authority: host.clone(),
            host,
            path: path.to_owned(),
            query: query.map(str::to_owned),
        })
    }
}

/// How long a signed URL works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This many seconds from now.
    In(u64),
    /// Until this unix time.
    At(u64),
}

/// A signed URL.
#[derive(Debug, Clone)]
pub struct SignedUrl {
    /// The whole URL.
    pub url: String,
    /// The path to request (schemes that carry auth in the path change it).
    pub path: String,
    /// The query (auth params included), without `?`.
    pub query: String,
    /// Unix time the URL stops working.
    pub expires_at: u64,
    /// Where the signing key came from.
    pub key_source: Option<KeySource>,
}

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Not an `http(s)://host/path` URL.
    #[error("not a URL with scheme and host, e.g. http://play.example.com/live/s.flv")]
    NotAUrl,
    /// The proxy would refuse the path.
    #[error("the proxy would reject this path: {0}")]
    BadPath(#[from] path::PathError),
    /// The expiry is not in the future.
    #[error("the expiry {at} is not later than now ({now}): the URL would be denied as expired")]
    PastExpiry {
        /// Requested expiry.
        at: u64,
        /// The time signed at.
        now: u64,
    },
    /// A lifetime of zero.
    #[error("the lifetime must be at least 1 second")]
    ZeroLifetime,
    /// Later than any URL time the proxy reads (2106).
    #[error("the expiry is later than 4294967295 (2106), the latest time a URL may carry")]
    TooLate,
    /// The vendor reports auth off: nothing to sign with.
    #[error("the vendor reports auth disabled for site {site}, so there is no key to sign with")]
    VendorDisabled {
        /// Site id.
        site: String,
    },
    /// No key in force.
    #[error("site {site} has no key to sign with (no configured key, no vendor or operator key)")]
    NoKey {
        /// Site id.
        site: String,
    },
    /// The scheme refused.
    #[error(transparent)]
    Scheme(#[from] crate::auth::SignError),
}

/// Which of the site's keys signs: the newest operator key when there is
/// one (it is first, but after the keys bound to Wangsu rule groups), else
/// the primary.
pub fn signing_key(auth: &SiteAuth) -> usize {
    auth.key_sources
        .iter()
        .position(|s| matches!(s, crate::auth::KeySource::Operator { app: None, .. }))
        .unwrap_or(0)
}

/// Signs `target` for `site` (as served: `auth`) with its signing key,
/// valid until `expiry`, as of `now`.
pub fn sign(
    site: &SiteConfig,
    auth: &SiteAuth,
    target: &Target,
    expiry: Expiry,
    now: u64,
    opts: &SignOptions,
) -> Result<SignedUrl, SignError> {
    path::validate_with(&target.path, site.allow_path_params)?;
    let expires_at = match expiry {
        Expiry::At(at) if at <= now => return Err(SignError::PastExpiry { at, now }),
        Expiry::At(at) => at,
        Expiry::In(0) => return Err(SignError::ZeroLifetime),
        Expiry::In(secs) => now.saturating_add(secs),
    };
    // A URL time past this is refused as malformed by every verifier.
    if expires_at > crate::auth::MAX_URL_TIME {
        return Err(SignError::TooLate);
    }
    if let AuthMode::VendorDisabled { .. } = auth.mode {
        return Err(SignError::VendorDisabled {
            site: site.id.clone(),
        });
    }
    let at = signing_key(auth);
    let key = auth.keys.get(at).ok_or_else(|| SignError::NoKey {
        site: site.id.clone(),
    })?;
    let signed = auth.verifier.sign_with(
        &target.host,
        &target.path,
        target.query.as_deref(),
        opts,
        key,
        expires_at,
    )?;
    let url = if signed.query.is_empty() {
        format!("{}://{}{}", target.scheme, target.authority, signed.path)
    } else {
        format!(
            "{}://{}{}?{}",
            target.scheme, target.authority, signed.path, signed.query
        )
    };
    Ok(SignedUrl {
        url,
        path: signed.path,
        query: signed.query,
        expires_at,
        key_source: auth.key_sources.get(at).cloned(),
    })
}
