//! The operator API under `/v1/`: JSON in and out, bearer token
//! (`admin.api_token`) required except for `/v1/openapi.json`.
//!
//! - `POST /v1/sign` — a signed play URL (the code behind `streamguard sign`).
//! - `POST /v1/play-auth` — a short-lived play credential for one media
//!   path, modelled on Alibaba Cloud VOD `GetVideoPlayAuth`.
//! - `GET /v1/keys` — per site: where its keys come from, fingerprints
//!   (never keys), the vendor's last sync.
//! - `PUT /v1/auth-keys` — overwrite one scope's keys, modelled on
//!   Volcengine `UpdateAuthKey`; kept in the state directory.
//! - `POST /v1/keys/rotate` — start a key rotation at a vendor (stage now;
//!   promote and retire follow when due); `GET /v1/keys/rotate?vendor=V&domain=D`
//!   — where it stands.
//!
//! Errors are `{"code","message","request_id"}` with vendor-style codes.
//! Nothing here logs or echoes a key, a token or a signature.

use std::net::IpAddr;

use http::header::{HeaderValue, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{read_body, respond, AdminState};
use crate::auth::{AuthMode, KeySource, SignOptions};
use crate::keys::Secret;
use crate::operator::{ScopeKeys, UpdateAuthKey};
use crate::proxy::body::ProxyBody;
use crate::signing::{self, Expiry, SignError, Target};
use crate::time::{rfc3339, unix_now};

/// Shortest play credential lifetime, seconds (as `GetVideoPlayAuth`).
pub const PLAY_AUTH_MIN_SECS: u64 = 100;
/// Longest play credential lifetime, seconds.
pub const PLAY_AUTH_MAX_SECS: u64 = 3000;
/// Play credential lifetime when none is asked for.
pub const PLAY_AUTH_DEFAULT_SECS: u64 = 100;

const JSON: &str = "application/json";

/// Every API path and the methods it answers (also the metric's `path` labels).
const ROUTES: [(&str, &[Method]); 6] = [
    ("/v1/openapi.json", &[Method::GET]),
    ("/v1/keys", &[Method::GET]),
    ("/v1/sign", &[Method::POST]),
    ("/v1/play-auth", &[Method::POST]),
    ("/v1/auth-keys", &[Method::PUT]),
    ("/v1/keys/rotate", &[Method::POST, Method::GET]),
];

fn route(path: &str) -> Option<(&'static str, &'static [Method])> {
    ROUTES.iter().find(|(p, _)| *p == path).copied()
}

/// An API failure: status, vendor-style code, message (never a value the
/// client sent that could be a secret).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

/// A fresh request id: 16 random bytes as `8-4-4-4-12` upper-case hex.
fn request_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // Not a secret: a clock-derived id is good enough to correlate logs.
        b[..16].copy_from_slice(
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                .to_le_bytes(),
        );
    }
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response<ProxyBody> {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = respond(status, JSON, bytes);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn error_response(e: &ApiError, request_id: &str) -> Response<ProxyBody> {
    let mut resp = json_response(
        e.status,
        &json!({"code": e.code, "message": e.message, "request_id": request_id}),
        request_id,
    );
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"streamguard\""),
        );
    }
    resp
}

/// Answers one `/v1/` request.
pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    remote: std::net::SocketAddr,
) -> Response<ProxyBody> {
    let id = request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = dispatch(state, req, &method, &path, &id).await;
    let status = match &result {
        Ok(r) => r.status(),
        Err(e) => e.status,
    };
    let metric_path = route(&path).map_or("other", |(p, _)| p);
    state
        .shared
        .metrics
        .api_requests
        .with_label_values(&[metric_path, status.as_str()])
        .inc();
    match result {
        Ok(r) => {
            info!(request_id = %id, %method, path = metric_path, status = status.as_u16(), client = %remote, "operator API request");
            r
        }
        Err(e) => {
            warn!(request_id = %id, %method, path = metric_path, status = status.as_u16(), code = e.code, client = %remote, "operator API request refused");
            error_response(&e, &id)
        }
    }
}

async fn dispatch(
    state: &AdminState,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    id: &str,
) -> Result<Response<ProxyBody>, ApiError> {
    let Some((_, allowed)) = route(path) else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no such API; see /v1/openapi.json",
        ));
    };
    if !allowed.contains(method) {
        let mut r = error_response(
            &err(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("use {}", allowed[0]),
            ),
            id,
        );
        r.headers_mut().insert(
            ALLOW,
            HeaderValue::from_str(allowed[0].as_str()).unwrap_or(HeaderValue::from_static("GET")),
        );
        return Ok(r);
    }
    if path == "/v1/openapi.json" {
        return Ok(json_response(StatusCode::OK, &openapi(), id));
    }
    authorize(state, &req)?;
    match path {
        "/v1/keys" => Ok(json_response(StatusCode::OK, &keys(state, id), id)),
        "/v1/keys/rotate" if method == Method::GET => {
            let query = req.uri().query().unwrap_or("");
            let get = |name: &str| crate::auth::query_param(Some(query), name).ok().flatten();
            let (Some(vendor), Some(domain)) = (get("vendor"), get("domain")) else {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "MissingParameter",
                    "vendor and domain query parameters are required",
                ));
            };
            let config = state.publisher.current_config();
            let status =
                crate::sync::rotate::status(&config, &state.shared.metrics, vendor, domain)
                    .map_err(rotate_error)?
                    .ok_or_else(|| {
                        err(
                            StatusCode::NOT_FOUND,
                            "RotationNotFound",
                            "no rotation of this domain was ever started",
                        )
                    })?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"rotation": status, "request_id": id}),
                id,
            ))
        }
        "/v1/keys/rotate" => {
            let body: RotateBody = parse_body(req).await?;
            let config = state.publisher.current_config();
            let sink = state.publisher.clone() as std::sync::Arc<dyn crate::sync::Sink>;
            let status = crate::sync::rotate::start(
                &config,
                &state.shared.metrics,
                Some(sink),
                &body.vendor,
                &body.domain,
                crate::sync::rotate::StartOptions {
                    replace_backup: body.replace_backup,
                },
            )
            .await
            .map_err(rotate_error)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"rotation": status, "request_id": id}),
                id,
            ))
        }
        "/v1/sign" => {
            let body: SignBody = parse_body(req).await?;
            Ok(json_response(StatusCode::OK, &sign(state, body, id)?, id))
        }
        "/v1/play-auth" => {
            let body: PlayAuthBody = parse_body(req).await?;
            Ok(json_response(
                StatusCode::OK,
                &play_auth(state, body, id).await?,
                id,
            ))
        }
        _ => {
            let body: UpdateAuthKey = parse_body(req).await?;
            Ok(json_response(
                StatusCode::OK,
                &put_keys(state, body, id)?,
                id,
            ))
        }
    }
}

/// Checks the bearer token in constant time.
fn authorize(state: &AdminState, req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(token) = state.publisher.api_token() else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Forbidden.ApiDisabled",
            "the operator API is off: set admin.api_token in the config",
        ));
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        None => Err(err(
            StatusCode::UNAUTHORIZED,
            "Unauthorized.MissingToken",
            "send the API token as `Authorization: Bearer TOKEN`",
        )),
        Some(p) if Secret::new(p) == token => Ok(()),
        Some(_) => Err(err(
            StatusCode::UNAUTHORIZED,
            "Unauthorized.InvalidToken",
            "the API token is not valid",
        )),
    }
}

/// Reads and parses a JSON body. Type errors name the field, never the value.
async fn parse_body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = read_body(req.into_body()).await.map_err(|e| {
        let status = match e {
            super::BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            super::BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            super::BodyError::Read => StatusCode::BAD_REQUEST,
        };
        err(status, "InvalidParam.Body", e.to_string())
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                if text.starts_with("unknown field") || text.starts_with("missing field") {
                    // Field names only.
                    text.split(" at line").next().unwrap_or(&text).to_owned()
                } else {
                    let expected = text
                        .split_once(", expected ")
                        .map(|(_, e)| e.split(" at line").next().unwrap_or(e).to_owned())
                        .unwrap_or_else(|| "another type".to_owned());
                    format!("`{path}` has the wrong type: expected {expected}")
                }
            }
            _ => format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        };
        err(StatusCode::BAD_REQUEST, "InvalidParam.BindError", message)
    })?;
    // One JSON value and nothing after it but whitespace.
    de.end().map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "InvalidParam.BindError",
            format!(
                "the body is not valid JSON: text after the value (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

/// The served site and its target for a URL or a (site, path).
fn resolve(
    state: &AdminState,
    url: Option<&str>,
    site: Option<&str>,
    path: Option<&str>,
    what: &'static str,
) -> Result<(std::sync::Arc<crate::proxy::Site>, Target), ApiError> {
    let snap = state.shared.snapshot.load();
    match (url, site) {
        (Some(u), _) if u.starts_with("http://") || u.starts_with("https://") => {
            let t = Target::parse(u).map_err(|e| {
                err(
                    StatusCode::BAD_REQUEST,
                    "InvalidParam",
                    format!("{what}: {e}"),
                )
            })?;
            let s = snap.site(&t.host).cloned().ok_or_else(|| {
                err(
                    StatusCode::NOT_FOUND,
                    "InvalidSite.NotFound",
                    format!("no site serves the host of {what}"),
                )
            })?;
            Ok((s, t))
        }
        (url, site) => {
            let p = url.or(path).ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "MissingParameter",
                    format!("{what} is required"),
                )
            })?;
            let s = match site {
                Some(id) => snap.sites().iter().find(|s| s.config.id == id).cloned(),
                None if snap.sites().len() == 1 => snap.sites().first().cloned(),
                None => {
                    return Err(err(
                        StatusCode::BAD_REQUEST,
                        "MissingParameter",
                        format!("{what} is a path: give `site` too, or a full URL"),
                    ))
                }
            }
            .ok_or_else(|| {
                err(
                    StatusCode::NOT_FOUND,
                    "InvalidSite.NotFound",
                    "no site has this id",
                )
            })?;
            let (p, q) = match p.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (p, None),
            };
            if !p.starts_with('/') {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "InvalidParam",
                    format!("{what} must be a full URL or a path starting with /"),
                ));
            }
            let t = Target::on_site(&s.config, p, q).ok_or_else(|| {
                err(
                    StatusCode::CONFLICT,
                    "InvalidSite.NoDomain",
                    "the site has no domain",
                )
            })?;
            Ok((s, t))
        }
    }
}

fn sign_error(e: SignError) -> ApiError {
    match e {
        SignError::NoKey { .. } => err(StatusCode::CONFLICT, "Forbidden.NoKey", e.to_string()),
        SignError::VendorDisabled { .. } => err(
            StatusCode::CONFLICT,
            "Forbidden.AuthDisabled",
            e.to_string(),
        ),
        _ => err(StatusCode::BAD_REQUEST, "InvalidParam", e.to_string()),
    }
}

fn source_name(s: Option<&KeySource>) -> Value {
    s.map_or(Value::Null, |s| Value::from(s.kind()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    vendor: String,
    domain: String,
    #[serde(default)]
    replace_backup: bool,
}

fn rotate_error(e: crate::sync::rotate::RotateError) -> ApiError {
    let (status, code) = match e.kind() {
        "not_found" => (StatusCode::NOT_FOUND, "ResourceNotFound"),
        "no_rotation" => (StatusCode::NOT_FOUND, "RotationNotFound"),
        "unsupported" => (StatusCode::BAD_REQUEST, "UnsupportedOperation"),
        "no_state_dir" => (StatusCode::CONFLICT, "Conflict.NoStateDir"),
        "conflict" => (StatusCode::CONFLICT, "Conflict.RotationInProgress"),
        "refused" => (StatusCode::CONFLICT, "Conflict.Refused"),
        "vendor" => (StatusCode::BAD_GATEWAY, "VendorError"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    err(status, code, e.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    /// Full URL, or a path with `site`.
    url: Option<String>,
    site: Option<String>,
    path: Option<String>,
    expires_at: Option<u64>,
    /// Lifetime in seconds.
    expires_in: Option<u64>,
    client_ip: Option<IpAddr>,
    acl: Option<String>,
}

fn sign(state: &AdminState, b: SignBody, id: &str) -> Result<Value, ApiError> {
    let (site, target) = resolve(
        state,
        b.url.as_deref(),
        b.site.as_deref(),
        b.path.as_deref(),
        "url",
    )?;
    let expiry = match (b.expires_at, b.expires_in) {
        (Some(at), None) => Expiry::At(at),
        (None, Some(secs)) => Expiry::In(secs),
        (Some(_), Some(_)) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "InvalidParam",
                "give expires_at or expires_in, not both",
            ))
        }
        (None, None) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "MissingParameter",
                "expires_at (unix seconds) or expires_in (seconds) is required",
            ))
        }
    };
    let opts = SignOptions {
        client_ip: b.client_ip,
        acl: b.acl,
    };
    let signed = signing::sign(&site.config, &site.auth, &target, expiry, unix_now(), &opts)
        .map_err(sign_error)?;
    Ok(json!({
        "url": signed.url,
        "expires_at": signed.expires_at,
        "expires": rfc3339(signed.expires_at),
        "site": site.config.id,
        "key_source": source_name(signed.key_source.as_ref()),
        "request_id": id,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayAuthBody {
    /// A full URL, or a path on `site`.
    #[serde(alias = "VideoId")]
    video_id: Option<String>,
    site: Option<String>,
    #[serde(alias = "AuthInfoTimeout")]
    auth_info_timeout: Option<u64>,
    client_ip: Option<IpAddr>,
}

async fn play_auth(state: &AdminState, b: PlayAuthBody, id: &str) -> Result<Value, ApiError> {
    let video_id = match b.video_id.as_deref() {
        Some(v) if !v.trim().is_empty() => v,
        _ => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "MissingVideoId",
                "VideoId is mandatory for this action.",
            ))
        }
    };
    let timeout = b.auth_info_timeout.unwrap_or(PLAY_AUTH_DEFAULT_SECS);
    if !(PLAY_AUTH_MIN_SECS..=PLAY_AUTH_MAX_SECS).contains(&timeout) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "InvalidParameter.AuthInfoTimeout",
            format!(
                "AuthInfoTimeout must be in [{PLAY_AUTH_MIN_SECS}, {PLAY_AUTH_MAX_SECS}] seconds"
            ),
        ));
    }
    let (site, target) = resolve(state, Some(video_id), b.site.as_deref(), None, "VideoId")?;
    crate::proxy::path::validate_with(&target.path, site.config.allow_path_params).map_err(
        |e| {
            err(
                StatusCode::BAD_REQUEST,
                "InvalidParam",
                format!("VideoId: {e}"),
            )
        },
    )?;
    if let AuthMode::VendorDisabled { .. } = site.auth.mode {
        return Err(sign_error(SignError::VendorDisabled {
            site: site.config.id.clone(),
        }));
    }
    let origin_path = site.auth.origin_path(&target.path).to_owned();
    let meta = crate::proxy::probe::probe(&site.config, &target.host, &origin_path)
        .await
        .map_err(|e| {
            warn!(site = %site.config.id, error = %e, "play-auth: origin probe failed");
            err(
                StatusCode::BAD_GATEWAY,
                "InvalidVideo.OriginUnavailable",
                format!(
                    "the origin could not be asked about the video ({})",
                    e.kind()
                ),
            )
        })?;
    match meta.status.as_u16() {
        404 | 410 => {
            return Err(err(
                StatusCode::NOT_FOUND,
                "InvalidVideo.NotFound",
                "The video does not exist.",
            ))
        }
        s if (200..300).contains(&s) => {}
        s if (400..500).contains(&s) => {
            return Err(err(
                StatusCode::FORBIDDEN,
                "Forbidden.IllegalStatus",
                format!("Status of the video is illegal (the origin answers {s})."),
            ))
        }
        s => {
            return Err(err(
                StatusCode::BAD_GATEWAY,
                "InvalidVideo.OriginUnavailable",
                format!("the origin answers {s} for the video"),
            ))
        }
    }
    let now = unix_now();
    let expires_at = now.saturating_add(timeout);
    // An exact-path session token where the site issues them (it opens that
    // one path, and a playlist's children through the rewrite); else the
    // site's own scheme, signed like `/v1/sign`.
    let (credential, url, kind) = match site.auth.play_token(&target.path, b.client_ip, expires_at)
    {
        Some(token) => {
            let url = format!(
                "{}://{}{}?{}",
                target.scheme, target.authority, target.path, token
            );
            (token, url, "session")
        }
        None => {
            let opts = SignOptions {
                client_ip: b.client_ip,
                acl: None,
            };
            let signed = signing::sign(
                &site.config,
                &site.auth,
                &target,
                Expiry::At(expires_at),
                now,
                &opts,
            )
            .map_err(sign_error)?;
            (signed.query, signed.url, "scheme")
        }
    };
    let mut video_meta = json!({
        "VideoId": video_id,
        "Status": "Normal",
    });
    if let Some(size) = meta.size {
        video_meta["Size"] = json!(size);
    }
    if let Some(d) = meta.duration_secs {
        video_meta["Duration"] = json!(d);
    }
    if let Some(ct) = meta.content_type {
        video_meta["ContentType"] = json!(ct);
    }
    Ok(json!({
        "PlayAuth": credential,
        "PlayURL": url,
        "CredentialKind": kind,
        "ExpiresAt": expires_at,
        "ExpireTime": rfc3339(expires_at),
        "RequestId": id,
        "VideoMeta": video_meta,
    }))
}

fn keys(state: &AdminState, id: &str) -> Value {
    let snap = state.shared.snapshot.load();
    let operator = state.publisher.operator_keys();
    let sites: Vec<Value> = snap
        .sites()
        .iter()
        .map(|site| {
            let auth = &site.auth;
            let signing = signing::signing_key(auth);
            let mut keys: Vec<Value> = auth
                .keys
                .iter()
                .zip(&auth.key_sources)
                .enumerate()
                .map(|(i, (k, s))| key_json(k, s, i == signing))
                .collect();
            // The publishers' keys, app-scoped operator keys included.
            let push_keys: Vec<Value> =
                auth.push
                    .iter()
                    .flat_map(|p| {
                        let app_only = p.app_keys.iter().flat_map(|a| {
                            a.keys.iter().zip(&a.key_sources).filter(|(_, s)| {
                                matches!(s, KeySource::Operator { app: Some(_), .. })
                            })
                        });
                        p.keys.iter().zip(&p.key_sources).chain(app_only)
                    })
                    .map(|(k, s)| key_json(k, s, false))
                    .collect();
            for a in &auth.app_keys {
                for (k, s) in a.keys.iter().zip(&a.key_sources) {
                    if matches!(s, KeySource::Operator { app: Some(_), .. }) {
                        keys.push(key_json(k, s, false));
                    }
                }
            }
            let vendor = site.config.vendor.as_ref().map(|(account, domain)| {
                let status = state.publisher.sync_status(account, domain);
                let answer_at = auth.key_sources.iter().find_map(|s| match s {
                    KeySource::Vendor { at, restored, .. } => Some((*at, *restored)),
                    _ => None,
                });
                json!({
                    "account": account,
                    "domain": domain,
                    "keys_from": answer_at.map(|(at, restored)| json!({
                        "at": at,
                        "restored_from_state_dir": restored,
                    })),
                    "last_attempt_at": status.last_attempt_at,
                    "last_outcome": status.last_outcome,
                    "last_success_at": status.last_success_at,
                })
            });
            let mode = match auth.mode {
                AuthMode::Verify => "verify",
                AuthMode::VendorDisabled { allow: true } => "vendor_disabled_allow",
                AuthMode::VendorDisabled { allow: false } => "vendor_disabled_deny",
            };
            json!({
                "site": site.config.id,
                "domains": site.config.domains,
                "scheme": auth.verifier.scheme(),
                "mode": mode,
                "ready": site.ready(),
                "keys": keys,
                "push_keys": push_keys,
                "vendor": vendor,
            })
        })
        .collect();
    let scopes: Vec<Value> = operator.scopes.iter().map(scope_json).collect();
    json!({"sites": sites, "operator_scopes": scopes, "request_id": id})
}

fn key_json(k: &Secret, s: &KeySource, signing: bool) -> Value {
    let mut v = json!({
        "fingerprint": k.fingerprint(),
        "source": s.kind(),
        "signing": signing,
    });
    match s {
        KeySource::Vendor {
            account,
            at,
            restored,
        } => {
            v["vendor"] = json!(account);
            v["at"] = json!(at);
            v["restored_from_state_dir"] = json!(restored);
        }
        KeySource::Operator { at, app } => {
            v["at"] = json!(at);
            v["app"] = json!(app);
        }
        KeySource::Config => {}
    }
    v
}

fn scope_json(s: &ScopeKeys) -> Value {
    json!({
        "Vhost": s.site,
        "Domain": s.domain,
        "App": s.app,
        "SceneType": match s.scene {
            crate::operator::Scene::Pull => "pull",
            crate::operator::Scene::Push => "push",
        },
        "PushPullEnable": s.enabled,
        "ValidDuration": s.valid_duration_secs,
        "UpdatedAt": s.updated_at,
        "AuthDetailList": s.details.iter().map(|d| json!({
            "Fingerprint": Secret::new(d.secret_key.as_str()).fingerprint(),
            "EncryptionAlgorithm": d.algorithm,
            "AuthField": d.auth_field,
            "EncryptField": d.encrypt_field,
        })).collect::<Vec<_>>(),
    })
}

fn put_keys(state: &AdminState, body: UpdateAuthKey, id: &str) -> Result<Value, ApiError> {
    let checked = body.check().map_err(|errors| {
        let code = errors.first().map_or("InvalidParam", |e| e.code);
        let message = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        err(StatusCode::BAD_REQUEST, code, message)
    })?;
    let scope = state
        .publisher
        .put_operator_keys(checked, unix_now())
        .map_err(|e| match e {
            crate::publish::PutKeysError::NoSuchSite(field) => err(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("{field}: no site is named by it"),
            ),
            e @ crate::publish::PutKeysError::TooManyScopes => err(
                StatusCode::CONFLICT,
                "LimitExceeded.Scopes",
                format!("{e}; update an existing one (the API removes none)"),
            ),
            crate::publish::PutKeysError::Store(crate::operator::StoreError::NoStateDir) => err(
                StatusCode::CONFLICT,
                "Conflict.NoStateDir",
                "no state_dir is configured, so operator keys could not be kept across restarts; set state_dir",
            ),
            other => {
                warn!(error = %other, "operator keys not kept");
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the keys could not be kept; nothing changed (see the server log)",
                )
            }
        })?;
    Ok(json!({"scope": scope_json(&scope), "request_id": id}))
}

/// The OpenAPI 3.0 description of this API.
pub fn openapi() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let errors = |codes: &[(&str, &str)]| {
        let mut m = serde_json::Map::new();
        for (status, desc) in codes {
            m.insert(
                (*status).to_owned(),
                json!({"description": desc, "content": {"application/json": {"schema": error}}}),
            );
        }
        m
    };
    let ok = |desc: &str, schema: Value, codes: &[(&str, &str)]| {
        let mut m = errors(codes);
        m.insert(
            "200".to_owned(),
            json!({"description": desc, "content": {"application/json": {"schema": schema}}}),
        );
        m.insert(
            "401".to_owned(),
            json!({"description": "missing or wrong bearer token", "content": {"application/json": {"schema": error}}}),
        );
        Value::Object(m)
    };
    let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "streamguard operator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Signed play URLs, play credentials, key status and operator keys. Every operation but this document needs `Authorization: Bearer <admin.api_token>`."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/openapi.json": {"get": {
                "operationId": "openapi", "security": [],
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }},
            "/v1/sign": {"post": {
                "operationId": "sign",
                "summary": "Sign a play URL with its site's signing key (as `streamguard sign`)",
                "requestBody": body(json!({"$ref": "#/components/schemas/SignRequest"})),
                "responses": ok("the signed URL", json!({"$ref": "#/components/schemas/SignResponse"}),
                    &[("400", "invalid parameter (path the proxy would refuse, past expiry, …)"),
                      ("404", "no site for the URL's host or the site id"),
                      ("409", "the site has no key to sign with, or its vendor reports auth off")])
            }},
            "/v1/play-auth": {"post": {
                "operationId": "playAuth",
                "summary": "A play credential for one media path, valid 100–3000 s (modelled on GetVideoPlayAuth)",
                "requestBody": body(json!({"$ref": "#/components/schemas/PlayAuthRequest"})),
                "responses": ok("the credential", json!({"$ref": "#/components/schemas/PlayAuthResponse"}),
                    &[("400", "MissingVideoId, or AuthInfoTimeout outside [100, 3000]"),
                      ("403", "Forbidden.IllegalStatus: the origin refuses the video"),
                      ("404", "InvalidVideo.NotFound: the origin answers 404"),
                      ("409", "the site has no key to sign with"),
                      ("502", "the origin could not be asked")])
            }},
            "/v1/keys": {"get": {
                "operationId": "keys",
                "summary": "Per site: keys in force by source (fingerprints, never keys) and the vendor's last sync",
                "responses": ok("key status", json!({"$ref": "#/components/schemas/KeysResponse"}), &[])
            }},
            "/v1/keys/rotate": {
                "post": {
                    "operationId": "startRotation",
                    "summary": "Start a key rotation at a vendor: stage a new key now; promote and retire follow when due",
                    "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["vendor", "domain"], "properties": {
                        "vendor": {"type": "string"}, "domain": {"type": "string"}, "replace_backup": {"type": "boolean", "default": false}}})),
                    "responses": ok("the rotation as it stands", json!({"type": "object", "properties": {"rotation": {"type": "object"}, "request_id": {"type": "string"}}}),
                        &[("400", "the vendor cannot rotate"), ("404", "no such vendor account or domain"),
                          ("409", "a rotation is in progress, no state_dir, or the step was refused"), ("502", "the vendor refused or failed")])
                },
                "get": {
                    "operationId": "rotationStatus",
                    "summary": "Where the rotation of a domain stands",
                    "parameters": [
                        {"name": "vendor", "in": "query", "required": true, "schema": {"type": "string"}},
                        {"name": "domain", "in": "query", "required": true, "schema": {"type": "string"}}],
                    "responses": ok("the rotation", json!({"type": "object", "properties": {"rotation": {"type": "object"}, "request_id": {"type": "string"}}}),
                        &[("400", "vendor and domain are required"), ("404", "no such vendor, domain or rotation")])
                }
            },
            "/v1/auth-keys": {"put": {
                "operationId": "updateAuthKey",
                "summary": "Overwrite one scope's keys (modelled on UpdateAuthKey); kept in the state directory",
                "requestBody": body(json!({"$ref": "#/components/schemas/UpdateAuthKeyRequest"})),
                "responses": ok("the scope as kept", json!({"type": "object", "properties": {"scope": {"$ref": "#/components/schemas/Scope"}, "request_id": {"type": "string"}}}),
                    &[("400", "a field failed validation; the message names it"),
                      ("404", "ResourceNotFound: no site has that Vhost or Domain"),
                      ("409", "no state_dir is configured")])
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["code", "message", "request_id"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}},
                "SignRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "url": {"type": "string", "description": "full URL, or a path with `site`"},
                    "site": {"type": "string"}, "path": {"type": "string"},
                    "expires_at": {"type": "integer", "format": "int64", "minimum": 0},
                    "expires_in": {"type": "integer", "format": "int64", "minimum": 1},
                    "client_ip": {"type": "string"},
                    "acl": {"type": "string"}}},
                "SignResponse": {"type": "object", "required": ["url", "expires_at", "request_id"], "properties": {
                    "url": {"type": "string"}, "expires_at": {"type": "integer", "format": "int64"},
                    "expires": {"type": "string", "format": "date-time"}, "site": {"type": "string"},
                    "key_source": {"type": "string", "nullable": true, "enum": ["config", "vendor", "operator", null]},
                    "request_id": {"type": "string"}}},
                "PlayAuthRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "video_id": {"type": "string", "description": "full URL, or a path with `site` (alias VideoId)"},
                    "VideoId": {"type": "string"},
                    "site": {"type": "string"},
                    "auth_info_timeout": {"type": "integer", "minimum": 100, "maximum": 3000, "default": 100},
                    "AuthInfoTimeout": {"type": "integer", "minimum": 100, "maximum": 3000},
                    "client_ip": {"type": "string"}}},
                "PlayAuthResponse": {"type": "object", "required": ["PlayAuth", "PlayURL", "ExpiresAt", "RequestId", "VideoMeta"], "properties": {
                    "PlayAuth": {"type": "string", "description": "the credential: query parameters that open this media only"},
                    "PlayURL": {"type": "string"},
                    "CredentialKind": {"type": "string", "enum": ["session", "scheme"]},
                    "ExpiresAt": {"type": "integer", "format": "int64"},
                    "ExpireTime": {"type": "string", "format": "date-time"},
                    "RequestId": {"type": "string"},
                    "VideoMeta": {"type": "object", "properties": {
                        "VideoId": {"type": "string"}, "Status": {"type": "string"},
                        "Size": {"type": "integer", "format": "int64"}, "Duration": {"type": "number"},
                        "ContentType": {"type": "string"}}}}},
                "KeysResponse": {"type": "object", "properties": {
                    "sites": {"type": "array", "items": {"type": "object", "properties": {
                        "site": {"type": "string"}, "domains": {"type": "array", "items": {"type": "string"}},
                        "scheme": {"type": "string"}, "mode": {"type": "string"}, "ready": {"type": "boolean"},
                        "keys": {"type": "array", "items": {"type": "object", "properties": {
                            "fingerprint": {"type": "string"}, "source": {"type": "string", "enum": ["config", "vendor", "operator"]},
                            "signing": {"type": "boolean"}}}},
                        "push_keys": {"type": "array", "items": {"type": "object", "properties": {
                            "fingerprint": {"type": "string"}, "source": {"type": "string", "enum": ["config", "vendor", "operator"]}}}},
                        "vendor": {"type": "object", "nullable": true}}}},
                    "operator_scopes": {"type": "array", "items": {"$ref": "#/components/schemas/Scope"}},
                    "request_id": {"type": "string"}}},
                "UpdateAuthKeyRequest": {"type": "object", "additionalProperties": false, "required": ["SceneType", "AuthDetailList"], "properties": {
                    "Vhost": {"type": "string", "description": "a site id"},
                    "Domain": {"type": "string", "description": "a domain of the site"},
                    "App": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,30}$"},
                    "SceneType": {"type": "string", "enum": ["push", "pull"]},
                    "AuthDetailList": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                        "type": "object", "additionalProperties": false, "required": ["SecretKey", "EncryptionAlgorithm"], "properties": {
                            "SecretKey": {"type": "string", "pattern": "^[A-Za-z0-9]{1,100}$"},
                            "EncryptionAlgorithm": {"type": "string", "enum": ["md5", "md5_custom"]},
                            "AuthField": {"type": "object", "additionalProperties": {"type": "string"}},
                            "EncryptField": {"type": "array", "items": {"type": "string"}}}}},
                    "ValidDuration": {"type": "integer", "minimum": 60, "maximum": 2_592_000, "default": 604_800},
                    "PushPullEnable": {"type": "boolean"}}},
                "Scope": {"type": "object", "properties": {
                    "Vhost": {"type": "string"}, "Domain": {"type": "string", "nullable": true},
                    "App": {"type": "string", "nullable": true}, "SceneType": {"type": "string"},
                    "PushPullEnable": {"type": "boolean"}, "ValidDuration": {"type": "integer"},
                    "UpdatedAt": {"type": "integer", "format": "int64"},
                    "AuthDetailList": {"type": "array", "items": {"type": "object", "properties": {
                        "Fingerprint": {"type": "string"}, "EncryptionAlgorithm": {"type": "string"},
                        "AuthField": {"type": "object"}, "EncryptField": {"type": "array", "items": {"type": "string"}}}}}}}
            }
        }
    })
}
