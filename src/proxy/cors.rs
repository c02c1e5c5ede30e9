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
    // A preflight answer already says so: once is enough.
    let varies = resp
        .headers()
        .get_all(VARY)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"origin"));
    if !cors.any && !varies {
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
    // Why Retry-After: a throttled page should know when to try again.
    let expose =
        format!("Content-Length, Content-Range, Retry-After, {DENY_HEADER}, {ERROR_HEADER}");
    if let Ok(e) = HeaderValue::from_str(&expose) {
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            any: false,
            origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            max_age_secs: 600,
            allow_credentials: true,
            allow_headers: "Range, X-Player".to_owned(),
        }
    }

    #[test]
    fn a_preflight_answer_varies_on_origin_once_and_names_the_allowed_headers() {
        let c = cors(&["https://player.example.com"]);
        let mut req = HeaderMap::new();
        req.insert(
            ORIGIN,
            HeaderValue::from_static("https://player.example.com"),
        );
        req.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        let mut resp = preflight(&c, &req);
        decorate(&c, req.get(ORIGIN), &mut resp);
        let h = resp.headers();
        assert_eq!(h.get_all(VARY).iter().count(), 1);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "Range, X-Player");
        assert_eq!(h[http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn a_denial_exposes_its_reason_to_an_allowed_page_only() {
        let c = cors(&["https://player.example.com"]);
        let mut resp = Response::new(empty());
        let page = HeaderValue::from_static("https://player.example.com");
        decorate(&c, Some(&page), &mut resp);
        let expose = resp.headers()[ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            expose.contains(DENY_HEADER) && expose.contains("Retry-After"),
            "{expose}"
        );
        let mut other = Response::new(empty());
        let evil = HeaderValue::from_static("https://evil.example.com");
        assert!(refuses(&c, &evil));
        decorate(&c, Some(&evil), &mut other);
        assert!(other.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(other.headers().get(ACCESS_CONTROL_EXPOSE_HEADERS).is_none());
    }
}
