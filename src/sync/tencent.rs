//! Tencent Cloud API 3.0: `DescribeLivePlayAuthKey` (Version 2018-08-01),
//! signed with TC3-HMAC-SHA256.
//!
//! Answer: `{"Response":{"PlayAuthKeyInfo":{"DomainName","Enable","AuthKey",
//! "AuthDelta","AuthBackKey"},"RequestId"}}`; errors come with HTTP 200 as
//! `{"Response":{"Error":{"Code","Message"},"RequestId"}}`.

use std::sync::Arc;

use bytes::Bytes;

use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Deserialize;

use super::{KeyChange, KeyWriter, SyncError, SyncedAuth, VendorApi, WriteError};
use crate::auth::tencent::{Settings, DEFAULT_SECRET_PARAM, DEFAULT_TIME_PARAM};
use crate::auth::{Common, TimeFormat};
use crate::config::VendorConfig;
use crate::keys::{KeySet, Secret};

/// The documented endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://live.tencentcloudapi.com/";
/// Documented limit: 500 requests per second.
pub const RATE_LIMIT: u32 = 500;
const SERVICE: &str = "live";
const ACTION: &str = "DescribeLivePlayAuthKey";
const VERSION: &str = "2018-08-01";

use super::{hmac256, sha256_hex};

/// What a TC3 signature covers.
#[derive(Debug, Clone)]
pub struct Tc3Input<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// Canonical query string (`Limit=10&Offset=0`), empty for POST.
    pub query: &'a str,
    /// Signed headers as (lowercase name, value), in any order.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body.
    pub payload: &'a [u8],
    /// Unix seconds (`X-TC-Timestamp`).
    pub timestamp: u64,
    /// Service name, e.g. `live`.
    pub service: &'a str,
}

/// The TC3-HMAC-SHA256 `Authorization` header value.
pub fn tc3_authorization(secret_id: &str, secret_key: &Secret, input: &Tc3Input<'_>) -> String {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        input.method,
        input.query,
        canonical_headers,
        signed_headers,
        sha256_hex(input.payload)
    );
    let (y, m, d, ..) = crate::time::civil(input.timestamp);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{scope}\n{}",
        input.timestamp,
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac256(format!("TC3{}", secret_key.expose()).as_bytes(), &date);
    let k_service = hmac256(&k_date, input.service);
    let k_signing = hmac256(&k_service, "tc3_request");
    let signature = hex::encode(hmac256(&k_signing, &string_to_sign));
    format!("TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}")
}

/// The client of one Tencent Cloud account.
pub struct TencentApi {
    secret_id: Secret,
    secret_key: Secret,
    endpoint: Uri,
}

impl TencentApi {
    /// A client for a configured account.
    pub fn new(v: &VendorConfig) -> Self {
        TencentApi {
            secret_id: v.access_key.clone(),
            secret_key: v.secret_key.clone(),
            endpoint: v
                .endpoint
                .clone()
                .unwrap_or_else(|| Uri::from_static(DEFAULT_ENDPOINT)),
        }
    }
}

impl TencentApi {
    /// A TC3-signed `POST` of API 3.0 action `action` (Version 2018-08-01)
    /// with the JSON body `body`: Describe and Modify are signed alike.
    fn signed_post(
        &self,
        action: &str,
        body: &serde_json::Value,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, SyncError> {
        let host = super::endpoint_authority(&self.endpoint)?
            .as_str()
            .to_owned();
        let body = serde_json::to_vec(body).map_err(|e| SyncError::Request(e.to_string()))?;
        let ts = now.to_string();
        let ct = "application/json";
        let auth = tc3_authorization(
            self.secret_id.expose(),
            &self.secret_key,
            &Tc3Input {
                method: "POST",
                query: "",
                headers: &[("content-type", ct), ("host", &host)],
                payload: &body,
                timestamp: now,
                service: SERVICE,
            },
        );
        Request::post(self.endpoint.clone())
            .header("content-type", ct)
            .header("host", &host)
            .header("x-tc-action", action)
            .header("x-tc-version", VERSION)
            .header("x-tc-timestamp", ts)
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SyncError::Request(e.to_string()))
    }
}

/// The write call of key rotation: `ModifyLivePlayAuthKey` (2018-08-01),
/// whose omitted fields stay as they are.
const MODIFY_ACTION: &str = "ModifyLivePlayAuthKey";

/// The Describe answer's key slots (`AuthKey`, `AuthBackKey`, `AuthDelta`).
fn key_info(current: &[u8]) -> Result<PlayAuthKeyInfo, SyncError> {
    let env: Envelope =
        serde_json::from_slice(current).map_err(|e| super::malformed(StatusCode::OK, &e))?;
    env.response
        .and_then(|r| r.play_auth_key_info)
        .ok_or_else(|| SyncError::Malformed("no PlayAuthKeyInfo".into()))
}

impl KeyWriter for TencentApi {
    /// Tencent has two slots: `AuthKey` signs, `AuthBackKey` is accepted too.
    /// Stage writes the new key as `AuthBackKey`; promote swaps the slots
    /// (`AuthKey` new, `AuthBackKey` old); retire empties `AuthBackKey`.
    fn write(
        &self,
        domain: &str,
        current: &[u8],
        change: &KeyChange<'_>,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, WriteError> {
        let body = match change {
            KeyChange::Stage {
                old,
                new,
                replace_backup,
            } => {
                let info = key_info(current)?;
                let back = info.auth_back_key.as_str();
                // Why: URLs may still be signed with a backup key; dropping it
                // silently would deny them.
                if !back.is_empty()
                    && back != old.expose()
                    && back != new.expose()
                    && !replace_backup
                {
                    return Err(WriteError::Refused(
                        "AuthBackKey holds another key that URLs may still be signed with; rotate with replace_backup once it is unused".into(),
                    ));
                }
                serde_json::json!({ "DomainName": domain, "AuthBackKey": new.expose() })
            }
            KeyChange::Promote { old, new } => serde_json::json!({
                "DomainName": domain, "AuthKey": new.expose(), "AuthBackKey": old.expose()
            }),
            KeyChange::Retire { .. } => {
                serde_json::json!({ "DomainName": domain, "AuthBackKey": "" })
            }
        };
        Ok(self.signed_post(MODIFY_ACTION, &body, now)?)
    }

    fn written(&self, status: StatusCode, body: &[u8]) -> Result<(), SyncError> {
        response(status, body).map(|_| ())
    }

    fn url_window_secs(&self, _domain: &str, current: &[u8]) -> u64 {
        key_info(current).map_or(0, |i| i.auth_delta)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response: Option<ResponseBody>,
}

/// The `Response` of an API 3.0 answer, or the failure it reports: the
/// vendor's error envelope, or a non-2xx status without one.
fn response(status: StatusCode, body: &[u8]) -> Result<ResponseBody, SyncError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| super::malformed(status, &e))?;
    let resp = env
        .response
        .ok_or_else(|| SyncError::Malformed(format!("http {status}: no Response")))?;
    if let Some(e) = resp.error {
        return Err(super::vendor_error(status, e.code, e.message));
    }
    if !status.is_success() {
        return Err(SyncError::Malformed(format!(
            "http {status} without an error envelope"
        )));
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody {
    error: Option<VendorErr>,
    play_auth_key_info: Option<PlayAuthKeyInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VendorErr {
    code: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PlayAuthKeyInfo {
    /// The domain the answer is about (absent: not checked).
    #[serde(default)]
    domain_name: Option<String>,
    enable: i64,
    #[serde(default)]
    auth_key: String,
    #[serde(default)]
    auth_delta: u64,
    #[serde(default)]
    auth_back_key: String,
}

/// The vendor's name for a [`Settings`] field.
fn vendor_field(field: &str) -> String {
    match field {
        "auth_delta_secs" => "PlayAuthKeyInfo.AuthDelta".to_owned(),
        // Not in the answer: the defaults stand for them.
        other => format!("PlayAuthKeyInfo ({other})"),
    }
}

impl VendorApi for TencentApi {
    fn kind(&self) -> &'static str {
        "tencent"
    }

    fn max_requests_per_sec(&self) -> u32 {
        RATE_LIMIT
    }

    fn request(&self, domain: &str, now: u64) -> Result<Request<Full<Bytes>>, SyncError> {
        self.signed_post(ACTION, &serde_json::json!({ "DomainName": domain }), now)
    }

    fn parse(
        &self,
        domain: &str,
        status: StatusCode,
        body: &[u8],
        common: Common,
    ) -> Result<SyncedAuth, SyncError> {
        let resp = response(status, body)?;
        let info = resp
            .play_auth_key_info
            .ok_or_else(|| SyncError::Malformed("no PlayAuthKeyInfo".into()))?;
        // Why: an answer about another domain must not install its keys here.
        if info
            .domain_name
            .as_deref()
            .is_some_and(|d| !d.is_empty() && !d.eq_ignore_ascii_case(domain))
        {
            return Err(SyncError::Malformed(
                "PlayAuthKeyInfo.DomainName is another domain than the one asked".into(),
            ));
        }
        if info.enable == 0 {
            return Ok(SyncedAuth::Disabled);
        }
        let keys: Vec<Secret> = [info.auth_key, info.auth_back_key]
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        if keys.is_empty() {
            return Err(SyncError::Malformed("auth enabled but no AuthKey".into()));
        }
        // The API reports no param names or time format: the scheme's defaults.
        let settings = Settings {
            secret_param: DEFAULT_SECRET_PARAM.to_owned(),
            time_param: DEFAULT_TIME_PARAM.to_owned(),
            auth_delta_secs: info.auth_delta,
            time_format: TimeFormat::Hex,
        };
        let verifier = settings
            .build(common)
            .map_err(|p| super::unusable_settings(p.into_iter().map(|p| p.under(vendor_field))))?;
        Ok(SyncedAuth::Enabled {
            verifier: Arc::new(verifier),
            keys: KeySet::new(keys),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc3_signature_matches_the_documented_vector() {
        // Official doc: GET cvm.tencentcloudapi.com/?Limit=10&Offset=0, ts 1539084154.
        let auth = tc3_authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            &Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
            &Tc3Input {
                method: "GET",
                query: "Limit=10&Offset=0",
                headers: &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "cvm.tencentcloudapi.com"),
                ],
                payload: b"",
                timestamp: 1_539_084_154,
                service: "cvm",
            },
        );
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2018-10-09/cvm/tc3_request, SignedHeaders=content-type;host, Signature=5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
        );
    }

    fn api() -> TencentApi {
        TencentApi {
            secret_id: Secret::new("id"),
            secret_key: Secret::new("key"),
            endpoint: Uri::from_static(DEFAULT_ENDPOINT),
        }
    }

    const C: Common = Common { clock_skew_secs: 0 };

    #[test]
    fn parses_keys_disabled_and_error_envelopes() {
        let ok = br#"{"Response":{"PlayAuthKeyInfo":{"DomainName":"5000.livepush.myqcloud.com","Enable":1,"AuthKey":"xxxx","AuthDelta":300,"AuthBackKey":"yyy"},"RequestId":"8e50cdb5"}}"#;
        match api()
            .parse("5000.livepush.myqcloud.com", StatusCode::OK, ok, C)
            .unwrap()
        {
            SyncedAuth::Enabled { keys, .. } => assert_eq!(keys.len(), 2),
            SyncedAuth::Disabled => panic!("enabled domain read as disabled"),
        }
        // An answer about another domain installs nothing.
        assert!(matches!(
            api().parse("play.example.com", StatusCode::OK, ok, C),
            Err(SyncError::Malformed(_))
        ));
        let off = br#"{"Response":{"PlayAuthKeyInfo":{"DomainName":"d","Enable":0,"AuthKey":"","AuthDelta":0,"AuthBackKey":""},"RequestId":"r"}}"#;
        assert!(matches!(
            api().parse("d", StatusCode::OK, off, C).unwrap(),
            SyncedAuth::Disabled
        ));
        let err = br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"r"}}"#;
        match api().parse("d", StatusCode::OK, err, C) {
            Err(SyncError::Vendor { code, .. }) => assert_eq!(code, "AuthFailure.SignatureFailure"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            api().parse("d", StatusCode::OK, b"<html>", C),
            Err(SyncError::Malformed(_))
        ));
        assert!(matches!(
            api().parse("d", StatusCode::BAD_GATEWAY, b"{}", C),
            Err(SyncError::Malformed(_))
        ));
    }

    #[test]
    fn request_is_signed_post_with_the_action_headers() {
        let req = api().request("play.example.com", 1_539_084_154).unwrap();
        assert_eq!(req.method(), http::Method::POST);
        let h = req.headers();
        assert_eq!(h["x-tc-action"], "DescribeLivePlayAuthKey");
        assert_eq!(h["x-tc-version"], "2018-08-01");
        assert_eq!(h["x-tc-timestamp"], "1539084154");
        assert!(h["authorization"].to_str().unwrap().starts_with("TC3-HMAC-SHA256 Credential=id/2018-10-09/live/tc3_request, SignedHeaders=content-type;host, Signature="));
    }

    #[test]
    fn stage_keeps_a_backup_key_in_use_unless_told() {
        let current = br#"{"Response":{"PlayAuthKeyInfo":{"Enable":1,"AuthKey":"old","AuthDelta":30,"AuthBackKey":"third"},"RequestId":"r"}}"#;
        let (old, new) = (Secret::new("old"), Secret::new("new"));
        let stage = |replace_backup| KeyChange::Stage {
            old: &old,
            new: &new,
            replace_backup,
        };
        assert!(matches!(
            api().write("d", current, &stage(false), 0),
            Err(WriteError::Refused(_))
        ));
        let req = api().write("d", current, &stage(true), 0).unwrap();
        assert_eq!(req.headers()["x-tc-action"], "ModifyLivePlayAuthKey");
        assert!(req.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("TC3-HMAC-SHA256 Credential=id/"));
        assert_eq!(api().url_window_secs("d", current), 30);
        assert!(api()
            .written(StatusCode::OK, br#"{"Response":{"RequestId":"r"}}"#)
            .is_ok());
    }
}
