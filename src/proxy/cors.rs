//! CORS for browser players (hls.js): preflight answers and the headers that
//! let a page on an allowed origin read responses, denials included.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, Response, StatusCode};

use super::body::{empty, ProxyBody};
use super::respond::{DENY_HEADER, ERROR_HEADER};
use crate::config::CorsConfig;

/// The allowed value for an `Origin` request header, if it is allowed.
/// Origins compare as browsers send them (`https://x:443` is `https://x`).
fn allowed(cors: &CorsConfig, origin: &HeaderValue) -> Option<HeaderValue> {
    if cors.any {
        return Some(HeaderValue::from_static("*"));
    }
    let o = crate::host::canonical_origin(origin.to_str().ok()?)?;
    cors.origins.contains(&o).then(|| origin.clone())
}

/// True when a request carries an `Origin` the site does not allow (its
/// response will carry no CORS headers, so the page cannot read it).
pub fn refuses(cors: &CorsConfig, origin: &HeaderValue) -> bool {
    allowed(cors, origin).is_none()
}

/// True for a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(headers: &HeaderMap) -> bool {
    headers.contains_key(ORIGIN) && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 204 with the allowed methods and headers when
/// the origin is allowed, a bare 204 (which the browser treats as a refusal)
/// otherwise. No token is needed: a preflight carries no credentials.
pub fn preflight(cors: &CorsConfig, headers: &HeaderMap) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Origin"));
    if let Some(v) = headers.get(ORIGIN).and_then(|o| allowed(cors, o)) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        if let Ok(v) = HeaderValue::from_str(&cors.allow_headers) {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(cors.max_age_secs));
        if cors.allow_credentials {
            h.insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    resp
}

/// Adds `Access-Control-Allow-Origin` (and the headers a player needs to
/// read) to any response for an allowed origin.
pub fn decorate(cors: &CorsConfig, origin: Option<&HeaderValue>, resp: &mut Response<ProxyBody>) {
    // Why Vary on every response (unless `*`): the answer differs by Origin,
    // and a shared cache must not hand one origin's answer to another.
    if !cors.any {
        resp.headers_mut()
            .append(VARY, HeaderValue::from_static("Origin"));
    }
    let Some(v) = origin.and_then(|o| allowed(cors, o)) else {
        return;
    };
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
    if cors.allow_credentials {
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let expose = format!("Content-Length, Content-Range, {DENY_HEADER}, {ERROR_HEADER}");
    if let Ok(e) = HeaderValue::from_str(&expose) {
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e);
    }
}
