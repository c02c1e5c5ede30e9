//! The one place where refusals, denials and failures become HTTP responses.
//!
//! Client faults → 4xx, origin faults → 502/504, our fault → 500. Every such
//! response carries `x-streamguard-deny` (denials) or `x-streamguard-error`
//! (everything else) naming the reason from a fixed set.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::body::{full, ProxyBody};
use super::path::PathError;
use super::upstream::UpstreamError;
use crate::auth::DenyReason;
use crate::metrics::outcome;

/// Response header naming a denial's reason.
pub const DENY_HEADER: &str = "x-streamguard-deny";
/// Response header naming a refusal's or failure's reason.
pub const ERROR_HEADER: &str = "x-streamguard-error";

/// A request that was not forwarded, or whose forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// The token was denied.
    #[error("denied: {0}")]
    Denied(DenyReason),
    /// No site serves the requested host.
    #[error("no site for this host")]
    NoSiteForHost,
    /// Only GET and HEAD are proxied.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A GET or HEAD carried a body.
    #[error("request body not allowed")]
    RequestBody,
    /// The request named no host.
    #[error("request has no host")]
    MissingHost,
    /// The URI exceeds `server.max_uri_bytes`.
    #[error("uri too long")]
    UriTooLong,
    /// The client address spent its failed-verification budget.
    #[error("too many failed verifications from this address")]
    Throttled {
        /// Seconds until it may try again.
        retry_after_secs: u64,
    },
    /// The path is ambiguous (see `proxy::path`).
    #[error("bad path: {0}")]
    BadPath(#[from] PathError),
    /// The origin failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A playlist exceeded `max_playlist_bytes`.
    #[error("playlist too large to rewrite")]
    PlaylistTooLarge,
    /// A playlist could not be rewritten (compressed, not UTF-8).
    #[error("playlist unreadable: {0}")]
    PlaylistUnreadable(&'static str),
    /// Building the origin request failed (our fault).
    #[error("internal error")]
    Internal(#[source] http::Error),
}

impl Stop {
    /// `(outcome, reason)` metric labels.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Stop::Denied(r) => (outcome::DENIED, r.as_str()),
            Stop::NoSiteForHost => (outcome::REJECTED, "unknown_host"),
            Stop::MissingHost => (outcome::REJECTED, "missing_host"),
            Stop::MethodNotAllowed => (outcome::REJECTED, "method_not_allowed"),
            Stop::RequestBody => (outcome::REJECTED, "request_body"),
            Stop::UriTooLong => (outcome::REJECTED, "uri_too_long"),
            Stop::Throttled { .. } => (outcome::REJECTED, "throttled"),
            Stop::BadPath(_) => (outcome::REJECTED, "bad_path"),
            Stop::Upstream(UpstreamError::Connect(_)) => (outcome::ERROR, "origin_unreachable"),
            Stop::Upstream(UpstreamError::Timeout(_)) => (outcome::ERROR, "origin_timeout"),
            Stop::Upstream(UpstreamError::Protocol(_)) => (outcome::ERROR, "origin_error"),
            Stop::Upstream(UpstreamError::Busy) => (outcome::ERROR, "origin_busy"),
            Stop::PlaylistTooLarge => (outcome::ERROR, "playlist_too_large"),
            Stop::PlaylistUnreadable(_) => (outcome::ERROR, "playlist_unreadable"),
            Stop::Internal(_) => (outcome::ERROR, "internal"),
        }
    }

    /// The response for this stop; `deny_status` is the site's (403 by default).
    pub fn into_response(&self, deny_status: StatusCode) -> Response<ProxyBody> {
        let (_, reason) = self.labels();
        let (status, header) = match self {
            Stop::Denied(_) => (deny_status, DENY_HEADER),
            Stop::NoSiteForHost => (StatusCode::NOT_FOUND, ERROR_HEADER),
            Stop::MissingHost | Stop::BadPath(_) | Stop::RequestBody => {
                (StatusCode::BAD_REQUEST, ERROR_HEADER)
            }
            Stop::UriTooLong => (StatusCode::URI_TOO_LONG, ERROR_HEADER),
            Stop::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, ERROR_HEADER),
            Stop::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ERROR_HEADER),
            Stop::Upstream(UpstreamError::Timeout(_)) => {
                (StatusCode::GATEWAY_TIMEOUT, ERROR_HEADER)
            }
            Stop::Upstream(UpstreamError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, ERROR_HEADER),
            Stop::Upstream(_) | Stop::PlaylistTooLarge | Stop::PlaylistUnreadable(_) => {
                (StatusCode::BAD_GATEWAY, ERROR_HEADER)
            }
            Stop::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ERROR_HEADER),
        };
        let body = format!("{} {}\n", status.as_str(), reason);
        let mut resp = Response::new(full(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header, HeaderValue::from_static(reason));
        match self {
            Stop::MethodNotAllowed => {
                h.insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            Stop::Throttled { retry_after_secs } => {
                h.insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(*retry_after_secs),
                );
            }
            _ => {}
        }
        resp
    }
}
