//! Volcengine OpenAPI: Live `DescribeAuth` (Version 2023-01-01 by default,
//! 2020-08-01 selectable; both use the same field names), signed with
//! Volcengine's HMAC-SHA256 (SigV4-like) scheme.
//!
//! Request: `POST {endpoint}?Action=DescribeAuth&Version=…` with the JSON body
//! `{"Domain": domain, "SceneType": "pull"}`.
//!
//! Answer: `{"ResponseMetadata":{RequestId,Action,Version,Service,Region},
//! "Result":{"AuthList":[{Vhost, Domain, App, SceneType, AuthStatus,
//! ValidDuration, TimeStampBase?, AuthDetailList:[{SecretKey,
//! EncryptionAlgorithm, AuthField, EncryptField}]}]}}`; errors come with HTTP
//! 4xx/5xx (and `CommonErr` with 200) as `{"ResponseMetadata":{…,"Error":
//! {"Code","CodeN"?,"Message"}}}`.
//!
//! # Reading the answer
//!
//! - Only entries for play (`SceneType` `pull`, or none given), with
//!   `AuthStatus: true`, for the asked domain (or no `Domain`, i.e. the whole
//!   Vhost) count. None such → [`SyncedAuth::Disabled`].
//! - Every `AuthDetailList` `SecretKey` is a key. Each key verifies with the
//!   parameters it is listed with: `EncryptionAlgorithm`, `AuthField`,
//!   `EncryptField`, and its entry's `ValidDuration`, `TimeStampBase` and
//!   `App` (an App scope; empty means every app).
//! - `AuthField` comes as a JSON object (`{"volcSecret":"sign","volcTime":
//!   "expire"}`, as documented) or as a string holding that object (as the
//!   console stores it); an empty object, string or missing name keeps the
//!   default `volcSecret` / `volcTime`.
//! - `EncryptField` comes as a list (documented), a string holding a JSON
//!   list, or a comma-separated string; it is read for `md5_custom` only.
//! - Keys sharing one parameter set become one [`Volcengine`] verifier; when
//!   the answer holds several sets (per-App entries, mixed algorithms) the
//!   verifiers are combined with [`AnyOf`], so a key never verifies under
//!   parameters it was not listed with. Why not one verifier for all keys:
//!   that would accept an App-scoped key for every app.

use std::sync::Arc;

use bytes::Bytes;

use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde::{Deserialize, Deserializer};

use super::{KeyChange, KeyWriter, SyncError, SyncedAuth, VendorApi, WriteError};
use crate::auth::volcengine::{
    Algorithm, Field, Settings, Volcengine, DEFAULT_SECRET_PARAM, DEFAULT_TIMESTAMP_BASE,
    DEFAULT_TIME_PARAM, DEFAULT_VALID_DURATION_SECS,
};
use crate::auth::{AnyOf, Common, Verifier};
use crate::config::VendorConfig;
use crate::keys::{KeySet, Secret};
use crate::problems::Problem;

/// The documented endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://live.volcengineapi.com/";
/// Documented limit: 10 requests per second per user.
pub const RATE_LIMIT: u32 = 10;
/// The region requests are signed for.
pub const REGION: &str = "cn-north-1";
pub use crate::config::{
    VOLCENGINE_API_VERSIONS as API_VERSIONS, VOLCENGINE_DEFAULT_API_VERSION as DEFAULT_API_VERSION,
};
const SERVICE: &str = "live";
const ACTION: &str = "DescribeAuth";

use super::{hmac256, sha256_hex};

/// RFC 3986 percent-encoding: unreserved characters kept, everything else
/// `%XX` with uppercase hex (space is `%20`, `*` is `%2A`, `~` is kept).
pub fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query: pairs sorted by name then value (as written, the
/// way Volcengine's SDKs sort before encoding), each encoded with
/// [`rfc3986`], joined with `&`. Also used as the query actually sent, so the
/// signed and the sent strings are the same bytes.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of unix time `now`, the `X-Date` header.
pub fn x_date(now: u64) -> String {
    let (y, mo, d, h, mi, s) = crate::time::civil(now);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// What a Volcengine signature covers.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The request path, `/` for the OpenAPI endpoints.
    pub path: &'a str,
    /// Query parameters, not yet encoded, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Signed headers as (name, value), in any order: names are lowercased,
    /// values trimmed with their case kept. Include `x-content-sha256` and
    /// `x-date` with the values sent.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body.
    pub payload: &'a [u8],
    /// `X-Date`, `YYYYMMDDTHHMMSSZ`.
    pub x_date: &'a str,
    /// Region, e.g. `cn-north-1`.
    pub region: &'a str,
    /// Service, e.g. `live`.
    pub service: &'a str,
}

/// The HMAC-SHA256 `Authorization` header value.
///
/// ```text
/// CanonicalRequest = METHOD \n path \n canonical_query \n CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
/// StringToSign     = "HMAC-SHA256\n" XDATE "\n" YYYYMMDD/region/service/request "\n" hex(sha256(CanonicalRequest))
/// kSigning         = HMAC(HMAC(HMAC(HMAC(SK, YYYYMMDD), region), service), "request")
/// ```
pub fn authorization(access_key: &str, secret_key: &Secret, input: &SignInput<'_>) -> String {
    let mut headers: Vec<(String, &str)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.path,
        canonical_query(input.query),
        canonical_headers,
        signed_headers,
        sha256_hex(input.payload)
    );
    let date = input.x_date.get(..8).unwrap_or(input.x_date);
    let scope = format!("{date}/{}/{}/request", input.region, input.service);
    let string_to_sign = format!(
        "HMAC-SHA256\n{}\n{scope}\n{}",
        input.x_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac256(secret_key.expose().as_bytes(), date);
    let k_region = hmac256(&k_date, input.region);
    let k_service = hmac256(&k_region, input.service);
    let k_signing = hmac256(&k_service, "request");
    let signature = hex::encode(hmac256(&k_signing, &string_to_sign));
    format!("HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}")
}

/// The client of one Volcengine account.
pub struct VolcengineApi {
    access_key: Secret,
    secret_key: Secret,
    endpoint: Uri,
    version: String,
}

impl VolcengineApi {
    /// A client for a configured account.
    pub fn new(v: &VendorConfig) -> Self {
        VolcengineApi {
            access_key: v.access_key.clone(),
            secret_key: v.secret_key.clone(),
            endpoint: v
                .endpoint
                .clone()
                .unwrap_or_else(|| Uri::from_static(DEFAULT_ENDPOINT)),
            version: v
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned()),
        }
    }
}

impl VolcengineApi {
    /// A signed `POST {endpoint}?Action=…&Version=…` with the JSON body
    /// `body`: DescribeAuth and UpdateAuthKey are signed alike.
    fn signed_post(
        &self,
        action: &str,
        version: &str,
        body: &serde_json::Value,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, SyncError> {
        let host = super::endpoint_authority(&self.endpoint)?
            .as_str()
            .to_owned();
        let scheme = self.endpoint.scheme_str().unwrap_or("https");
        // The endpoint's path is signed as sent (`/` for the vendor's own
        // endpoints); a query on the endpoint is replaced by ours.
        let path = match self.endpoint.path() {
            "" => "/",
            p => p,
        };
        let query = [("Action", action), ("Version", version)];
        let uri = format!("{scheme}://{host}{path}?{}", canonical_query(&query));
        let body = serde_json::to_vec(body).map_err(|e| SyncError::Request(e.to_string()))?;
        let ct = "application/json";
        let body_hash = sha256_hex(&body);
        let date = x_date(now);
        let auth = authorization(
            self.access_key.expose(),
            &self.secret_key,
            &SignInput {
                method: "POST",
                path,
                query: &query,
                headers: &[
                    ("content-type", ct),
                    ("host", &host),
                    ("x-content-sha256", &body_hash),
                    ("x-date", &date),
                ],
                payload: &body,
                x_date: &date,
                region: REGION,
                service: SERVICE,
            },
        );
        Request::post(uri)
            .header("content-type", ct)
            .header("host", &host)
            .header("x-content-sha256", body_hash)
            .header("x-date", date)
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SyncError::Request(e.to_string()))
    }
}

/// The write call of key rotation and the only version that has it.
const UPDATE_ACTION: &str = "UpdateAuthKey";
const UPDATE_VERSION: &str = "2023-01-01";

/// Whether an `AuthList` entry (raw JSON) is an enabled play entry for
/// `domain`: the entries [`VolcengineApi::parse`] takes keys from.
fn serves_play(entry: &serde_json::Value, domain: &str) -> bool {
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let scene = text("SceneType");
    let d = text("Domain");
    (scene.is_empty() || scene.eq_ignore_ascii_case("pull"))
        && (d.is_empty() || d.eq_ignore_ascii_case(domain))
        && entry.get("AuthStatus") == Some(&serde_json::Value::Bool(true))
}

/// The enabled play entries of a Describe answer, as raw JSON.
fn play_entries(current: &[u8], domain: &str) -> Result<Vec<serde_json::Value>, SyncError> {
    let v: serde_json::Value =
        serde_json::from_slice(current).map_err(|e| super::malformed(StatusCode::OK, &e))?;
    Ok(v.pointer("/Result/AuthList")
        .and_then(serde_json::Value::as_array)
        .map(|l| {
            l.iter()
                .filter(|e| serves_play(e, domain))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// A number the console may send as a string.
fn as_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl KeyWriter for VolcengineApi {
    /// `UpdateAuthKey` replaces the entry's whole config, so the request
    /// carries the entry as Describe returned it (`App`, `ValidDuration`,
    /// every `AuthDetailList` item with its own fields) with the change
    /// applied: stage appends a copy of the signing key's item with the new
    /// key; promote moves the new key's item first (the first key signs);
    /// retire drops the old key's item. `PushPullEnable` is left out: the
    /// switch stays as it is.
    fn write(
        &self,
        domain: &str,
        current: &[u8],
        change: &KeyChange<'_>,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, WriteError> {
        use serde_json::Value;
        let entries = play_entries(current, domain)?;
        let [entry] = entries.as_slice() else {
            return Err(WriteError::Refused(format!(
                "rotation needs exactly one enabled pull auth entry for the domain; DescribeAuth lists {}",
                entries.len()
            )));
        };
        let details: Vec<Value> = entry
            .get("AuthDetailList")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds =
            |d: &Value, k: &Secret| d.get("SecretKey").and_then(Value::as_str) == Some(k.expose());
        let list: Vec<Value> = match change {
            KeyChange::Stage { old, new, .. } => {
                let mut list = details.clone();
                if !list.iter().any(|d| holds(d, new)) {
                    let mut item =
                        details
                            .iter()
                            .find(|d| holds(d, old))
                            .cloned()
                            .ok_or_else(|| {
                                WriteError::Refused(
                                    "the signing key is not in AuthDetailList".into(),
                                )
                            })?;
                    item["SecretKey"] = Value::String(new.expose().to_owned());
                    list.push(item);
                }
                list
            }
            KeyChange::Promote { new, .. } => {
                let first = details
                    .iter()
                    .find(|d| holds(d, new))
                    .cloned()
                    .ok_or_else(|| {
                        WriteError::Refused("the staged key is not in AuthDetailList".into())
                    })?;
                std::iter::once(first)
                    .chain(details.iter().filter(|d| !holds(d, new)).cloned())
                    .collect()
            }
            KeyChange::Retire { old, .. } => {
                details.iter().filter(|d| !holds(d, old)).cloned().collect()
            }
        };
        let mut body = serde_json::json!({ "SceneType": "pull", "AuthDetailList": list });
        match entry
            .get("Domain")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        {
            Some(_) => body["Domain"] = Value::String(domain.to_owned()),
            None => {
                body["Vhost"] = entry
                    .get("Vhost")
                    .cloned()
                    .unwrap_or(Value::String(domain.to_owned()));
            }
        }
        if let Some(app) = entry
            .get("App")
            .filter(|a| a.as_str().is_some_and(|a| !a.is_empty()))
        {
            body["App"] = app.clone();
        }
        if let Some(d) = entry.get("ValidDuration").and_then(as_u64) {
            body["ValidDuration"] = Value::from(d);
        }
        Ok(self.signed_post(UPDATE_ACTION, UPDATE_VERSION, &body, now)?)
    }

    fn written(&self, status: StatusCode, body: &[u8]) -> Result<(), SyncError> {
        answer(status, body).map(drop)
    }

    fn url_window_secs(&self, domain: &str, current: &[u8]) -> u64 {
        play_entries(current, domain)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                e.get("ValidDuration")
                    .and_then(as_u64)
                    .unwrap_or(DEFAULT_VALID_DURATION_SECS)
            })
            .max()
            .unwrap_or(0)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response_metadata: Option<Metadata>,
    /// Missing: `None`; `null`: `Some(None)`.
    #[serde(default, deserialize_with = "present")]
    result: Option<Option<ResultBody>>,
}

/// The answer envelope of any call (Describe or Update): a vendor error in
/// `ResponseMetadata.Error` wins over the HTTP status; a failure status
/// without one is malformed.
fn answer(status: StatusCode, body: &[u8]) -> Result<Envelope, SyncError> {
    let mut env: Envelope =
        serde_json::from_slice(body).map_err(|e| super::malformed(status, &e))?;
    if let Some(e) = env.response_metadata.take().and_then(|m| m.error) {
        return Err(super::vendor_error(status, e.code, e.message));
    }
    if !status.is_success() {
        return Err(malformed(format!(
            "http {status} without an error envelope"
        )));
    }
    Ok(env)
}

/// Tells a field given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    error: Option<VendorErr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VendorErr {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultBody {
    /// Missing: malformed; `null` or `[]`: nothing configured.
    #[serde(default, deserialize_with = "present")]
    auth_list: Option<Option<Vec<AuthEntry>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthEntry {
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    scene_type: Option<String>,
    /// Required: a missing switch is not read as "off".
    auth_status: bool,
    #[serde(default)]
    valid_duration: Option<NumOrStr>,
    #[serde(default)]
    time_stamp_base: Option<NumOrStr>,
    #[serde(default)]
    auth_detail_list: Option<Vec<AuthDetail>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthDetail {
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
    #[serde(default)]
    auth_field: Option<serde_json::Value>,
    #[serde(default)]
    encrypt_field: Option<serde_json::Value>,
}

/// A number the console may also hand out as a decimal string.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

impl NumOrStr {
    /// The value; `None` for an empty string. A problem is named `field`.
    fn get(&self, field: &str) -> Result<Option<u64>, Problem> {
        match self {
            NumOrStr::Num(n) => Ok(Some(*n)),
            NumOrStr::Str(s) if s.trim().is_empty() => Ok(None),
            NumOrStr::Str(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Problem::field(field, "is not a number")),
        }
    }
}

fn malformed(m: impl Into<String>) -> SyncError {
    SyncError::Malformed(m.into())
}

/// The vendor's name for a [`Settings`] field (or a field the reader names
/// itself, such as `AuthField`) of detail `detail` of entry `entry`:
/// `valid_duration_secs` → `AuthList[0].ValidDuration`, `encrypt_fields[1]`
/// → `AuthList[0].AuthDetailList[2].EncryptField[1]`.
fn vendor_field(field: &str, entry: usize, detail: usize) -> String {
    let e = format!("AuthList[{entry}]");
    let d = format!("{e}.AuthDetailList[{detail}]");
    match field {
        "timestamp_base" => format!("{e}.TimeStampBase"),
        "valid_duration_secs" => format!("{e}.ValidDuration"),
        "app" => format!("{e}.App"),
        "algorithm" => format!("{d}.EncryptionAlgorithm"),
        "secret_param" => format!("{d}.AuthField.{DEFAULT_SECRET_PARAM}"),
        "time_param" => format!("{d}.AuthField.{DEFAULT_TIME_PARAM}"),
        f => match f.strip_prefix("encrypt_fields") {
            Some(index) => format!("{d}.EncryptField{index}"),
            None => format!("{d}.{f}"),
        },
    }
}

/// `AuthField` → (secret param, time param). Problems are named
/// `AuthField` (its shape) or by the settings field.
fn auth_field(v: Option<&serde_json::Value>) -> Result<(String, String), Problem> {
    use serde_json::Value;
    let parsed;
    let map = match v {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<serde_json::Map<String, Value>>(s)
                .map_err(|_| Problem::field("AuthField", "is a string but not a JSON object"))?;
            Some(&parsed)
        }
        Some(_) => {
            return Err(Problem::field(
                "AuthField",
                "is neither an object nor a string",
            ))
        }
    };
    let name = |vendor: &str, field: &str| -> Result<String, Problem> {
        match map.and_then(|m| m.get(vendor)) {
            None | Some(Value::Null) => Ok(vendor.to_owned()),
            Some(Value::String(s)) if s.is_empty() => Ok(vendor.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Problem::field(field, "is not a string")),
        }
    };
    Ok((
        name(DEFAULT_SECRET_PARAM, "secret_param")?,
        name(DEFAULT_TIME_PARAM, "time_param")?,
    ))
}

/// `EncryptField` → the names in list order (read by [`Field::parse_list`]).
fn encrypt_field(v: Option<&serde_json::Value>) -> Result<Vec<String>, Problem> {
    use serde_json::Value;
    let shape = |m: &str| Problem::field("encrypt_fields", m);
    Ok(match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| shape("holds a non-string"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) if s.trim_start().starts_with('[') => {
            serde_json::from_str(s).map_err(|_| shape("is a string but not a JSON list"))?
        }
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err(shape("is neither a list nor a string")),
    })
}

/// The [`Settings`] one key is listed with, as the vendor sends them. Only
/// reading happens here (shapes, numbers, names, the vendor's defaults);
/// every rule is [`Settings::build`]'s. Problems are named by settings field.
fn settings(entry: &AuthEntry, detail: &AuthDetail) -> Result<Settings, Vec<Problem>> {
    let mut problems = Vec::new();
    let algorithm = match detail
        .encryption_algorithm
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
    {
        // UpdateAuthKey requires it; md5 is the documented default otherwise.
        "" => Algorithm::Md5,
        a if a.eq_ignore_ascii_case("md5") => Algorithm::Md5,
        a if a.eq_ignore_ascii_case("md5_custom") => Algorithm::Md5Custom,
        _ => {
            problems.push(Problem::field("algorithm", "is not md5 or md5_custom"));
            Algorithm::Md5
        }
    };
    // EncryptField is read for md5_custom only (md5 ignores it).
    let fields = match algorithm {
        Algorithm::Md5 => Vec::new(),
        Algorithm::Md5Custom => match encrypt_field(detail.encrypt_field.as_ref()) {
            Ok(names) => {
                let (fields, p) = Field::parse_list(&names);
                problems.extend(p);
                fields
            }
            Err(p) => {
                problems.push(p);
                Vec::new()
            }
        },
    };
    let (secret_param, time_param) = auth_field(detail.auth_field.as_ref()).unwrap_or_else(|p| {
        problems.push(p);
        (
            DEFAULT_SECRET_PARAM.to_owned(),
            DEFAULT_TIME_PARAM.to_owned(),
        )
    });
    let mut number = |v: &Option<NumOrStr>, field: &str| match v.as_ref().map(|n| n.get(field)) {
        None => None,
        Some(Ok(n)) => n,
        Some(Err(p)) => {
            problems.push(p);
            None
        }
    };
    let timestamp_base = match number(&entry.time_stamp_base, "timestamp_base") {
        None | Some(0) => DEFAULT_TIMESTAMP_BASE,
        Some(b) => u32::try_from(b).unwrap_or(u32::MAX),
    };
    // Taken as given, 0 included (volcTime is then the hard expiry).
    let valid_duration_secs =
        number(&entry.valid_duration, "valid_duration_secs").unwrap_or(DEFAULT_VALID_DURATION_SECS);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        algorithm,
        fields,
        secret_param,
        time_param,
        timestamp_base,
        valid_duration_secs,
        app: entry.app.clone().filter(|a| !a.is_empty()),
    })
}

impl VendorApi for VolcengineApi {
    fn kind(&self) -> &'static str {
        "volcengine"
    }

    fn max_requests_per_sec(&self) -> u32 {
        RATE_LIMIT
    }

    fn request(&self, domain: &str, now: u64) -> Result<Request<Full<Bytes>>, SyncError> {
        self.signed_post(
            ACTION,
            &self.version,
            &serde_json::json!({ "Domain": domain, "SceneType": "pull" }),
            now,
        )
    }

    fn parse(
        &self,
        domain: &str,
        status: StatusCode,
        body: &[u8],
        common: Common,
    ) -> Result<SyncedAuth, SyncError> {
        let env = answer(status, body)?;
        let list = match env.result {
            None | Some(None) => return Err(malformed("no Result")),
            Some(Some(r)) => match r.auth_list {
                None => return Err(malformed("no Result.AuthList")),
                Some(list) => list.unwrap_or_default(),
            },
        };
        let mut any_enabled = false;
        let mut problems: Vec<Problem> = Vec::new();
        let mut groups: Vec<(Settings, Volcengine, Vec<Secret>)> = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let pull = entry
                .scene_type
                .as_deref()
                .is_none_or(|s| s.is_empty() || s.eq_ignore_ascii_case("pull"));
            let ours = entry
                .domain
                .as_deref()
                .is_none_or(|d| d.is_empty() || d.eq_ignore_ascii_case(domain));
            if !(pull && ours && entry.auth_status) {
                continue;
            }
            any_enabled = true;
            for (j, detail) in entry.auth_detail_list.iter().flatten().enumerate() {
                let Some(key) = detail.secret_key.as_deref().filter(|k| !k.is_empty()) else {
                    continue;
                };
                let key = Secret::new(key);
                // Every problem of every key's settings is reported, each at
                // its vendor path; equal settings are checked once.
                let built = settings(entry, detail).and_then(|s| {
                    match groups.iter().position(|(g, ..)| *g == s) {
                        Some(at) => Ok((s, None, at)),
                        None => s.clone().build(common).map(|v| (s, Some(v), groups.len())),
                    }
                });
                match built {
                    Err(p) => {
                        problems.extend(p.into_iter().map(|p| p.under(|f| vendor_field(f, i, j))))
                    }
                    Ok((s, Some(v), _)) => groups.push((s, v, vec![key])),
                    Ok((_, None, at)) => {
                        if let Some((_, _, keys)) = groups.get_mut(at) {
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                }
            }
        }
        if !any_enabled {
            return Ok(SyncedAuth::Disabled);
        }
        if !problems.is_empty() {
            return Err(super::unusable_settings(problems));
        }
        let mut inner: Vec<(Arc<dyn Verifier>, KeySet)> = groups
            .into_iter()
            .map(|(_, v, keys)| (Arc::new(v) as Arc<dyn Verifier>, KeySet::new(keys)))
            .collect();
        if inner.len() == 1 {
            if let Some((verifier, keys)) = inner.pop() {
                return Ok(SyncedAuth::Enabled { verifier, keys });
            }
        }
        let any = AnyOf::new(inner).ok_or_else(|| malformed("auth enabled but no SecretKey"))?;
        Ok(SyncedAuth::Enabled {
            keys: any.keys(),
            verifier: Arc::new(any),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Decision, DenyReason, RequestView};
    use md5::Md5;

    #[test]
    fn signature_matches_the_documented_vector() {
        // Official doc: GET iam.volcengineapi.com ListUsers, X-Date 20201230T081805Z.
        let empty = sha256_hex(b"");
        let auth = authorization(
            "AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE",
            &Secret::new("TnpCak5XWXpZV1U0WkRaaE5ERmxaR0ZpTmpjeVkyUXlZek0wTWpJMU1qWQ=="),
            &SignInput {
                method: "GET",
                path: "/",
                // Out of order on purpose: the signer sorts.
                query: &[
                    ("Version", "2018-01-01"),
                    ("Offset", "0"),
                    ("Action", "ListUsers"),
                    ("Limit", "10"),
                ],
                headers: &[
                    ("X-Date", "20201230T081805Z"),
                    (
                        "Content-Type",
                        " application/x-www-form-urlencoded; charset=utf-8",
                    ),
                    ("Host", "iam.volcengineapi.com"),
                    ("X-Content-Sha256", &empty),
                ],
                payload: b"",
                x_date: "20201230T081805Z",
                region: "cn-north-1",
                service: "iam",
            },
        );
        assert_eq!(
            auth,
            "HMAC-SHA256 Credential=AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE/20201230/cn-north-1/iam/request, SignedHeaders=content-type;host;x-content-sha256;x-date, Signature=28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
        );
    }

    #[test]
    fn canonical_query_sorts_and_encodes_rfc3986() {
        assert_eq!(
            canonical_query(&[("b", "a b*~"), ("a", "2"), ("a", "1"), ("ü", "/=&")]),
            "a=1&a=2&b=a%20b%2A~&%C3%BC=%2F%3D%26"
        );
        assert_eq!(x_date(1_609_316_285), "20201230T081805Z");
    }

    fn api(version: &str) -> VolcengineApi {
        VolcengineApi {
            access_key: Secret::new("AKLTid"),
            secret_key: Secret::new("sk"),
            endpoint: Uri::from_static(DEFAULT_ENDPOINT),
            version: version.to_owned(),
        }
    }

    const C: Common = Common { clock_skew_secs: 0 };

    #[test]
    fn request_is_a_signed_post_of_describe_auth_for_pull() {
        let req = api("2023-01-01")
            .request("play.example.com", 1_609_316_285)
            .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "https://live.volcengineapi.com/?Action=DescribeAuth&Version=2023-01-01"
        );
        let h = req.headers();
        assert_eq!(h["host"], "live.volcengineapi.com");
        assert_eq!(h["x-date"], "20201230T081805Z");
        assert_eq!(h["content-type"], "application/json");
        assert!(h["authorization"].to_str().unwrap().starts_with(
            "HMAC-SHA256 Credential=AKLTid/20201230/cn-north-1/live/request, SignedHeaders=content-type;host;x-content-sha256;x-date, Signature="
        ));
        let old = api("2020-08-01").request("d", 0).unwrap();
        assert!(old.uri().query().unwrap().ends_with("Version=2020-08-01"));
    }

    #[tokio::test]
    async fn request_body_and_hash_header_agree() {
        use http_body_util::BodyExt;
        let req = api(DEFAULT_API_VERSION)
            .request("play.example.com", 0)
            .unwrap();
        let hash = req.headers()["x-content-sha256"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(hash, sha256_hex(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Domain": "play.example.com", "SceneType": "pull"})
        );
    }

    fn view<'a>(host: &'a str, path: &'a str, query: &'a str) -> RequestView<'a> {
        RequestView {
            host,
            path,
            query: Some(query),
            client_ip: None,
            headers: None,
        }
    }

    fn md5_hex(s: &str) -> String {
        use md5::Digest as _;
        hex::encode(Md5::digest(s.as_bytes()))
    }

    fn enabled(r: Result<SyncedAuth, SyncError>) -> (Arc<dyn Verifier>, KeySet) {
        match r {
            Ok(SyncedAuth::Enabled { verifier, keys }) => (verifier, keys),
            other => panic!("expected enabled, got {other:?}"),
        }
    }

    /// The shape of the vendor doc's example, turned on, with the SCHEMES.md
    /// key (`A1B2C3d4e5f6`) next to a second key, a push entry and another
    /// domain's entry (both ignored).
    const SUCCESS: &str = r#"{
      "ResponseMetadata": {"RequestId": "20210829114930010210039045250DAD6E", "Action": "DescribeAuth",
                           "Version": "2023-01-01", "Service": "live", "Region": "cn-north-1"},
      "Result": {"AuthList": [
        {"App": "", "AuthDetailList": [
            {"AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": "A1B2C3d4e5f6"},
            {"AuthField": {"volcSecret": "volcSecret", "volcTime": "volcTime"}, "EncryptField": null,
             "EncryptionAlgorithm": "md5", "SecretKey": "backup2"}],
         "AuthStatus": true, "Domain": "play.example.com", "SceneType": "pull",
         "ValidDuration": 0, "Vhost": "vhost.example.com"},
        {"App": "", "AuthDetailList": [{"AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": "pushkey"}],
         "AuthStatus": true, "Domain": "play.example.com", "SceneType": "push", "ValidDuration": 604800, "Vhost": "vhost.example.com"},
        {"App": "", "AuthDetailList": [{"AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": "otherkey"}],
         "AuthStatus": true, "Domain": "other.example.com", "SceneType": "pull", "ValidDuration": 604800, "Vhost": "vhost.example.com"}
      ]}
    }"#;

    #[test]
    fn parses_keys_of_enabled_pull_entries() {
        let (v, keys) = enabled(api(DEFAULT_API_VERSION).parse(
            "play.example.com",
            StatusCode::OK,
            SUCCESS.as_bytes(),
            C,
        ));
        assert_eq!(v.scheme(), "volcengine");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.primary().unwrap().expose(), "A1B2C3d4e5f6");
        // The scheme vector, with ValidDuration 0 from the answer.
        let q = "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422";
        let at = |now| {
            v.verify(
                &view("play.example.com", "/live/livestream.flv", q),
                &keys,
                now,
            )
            .decision
        };
        assert_eq!(at(1_653_632_422), Decision::Allow);
        assert_eq!(at(1_653_632_423), Decision::Deny(DenyReason::Expired));
        // Push and other-domain keys are not play keys.
        for k in ["pushkey", "otherkey"] {
            let t = "1653632422";
            let q = format!(
                "volcSecret={}&volcTime={t}",
                md5_hex(&format!("/live/livestream{k}{t}"))
            );
            assert_eq!(
                v.verify(
                    &view("play.example.com", "/live/livestream.flv", &q),
                    &keys,
                    0
                )
                .decision,
                Decision::Deny(DenyReason::BadSignature),
                "{k}"
            );
        }
    }

    #[test]
    fn auth_field_and_encrypt_field_are_read_in_either_shape() {
        let body = r#"{"ResponseMetadata": {"RequestId": "r"}, "Result": {"AuthList": [
          {"App": "live", "AuthStatus": true, "Domain": "play.example.com", "SceneType": "pull",
           "ValidDuration": "60", "TimeStampBase": 16, "AuthDetailList": [
             {"SecretKey": "k1", "EncryptionAlgorithm": "md5_custom",
              "AuthField": "{\"volcSecret\":\"sign\",\"volcTime\":\"expire\"}",
              "EncryptField": "Domain, StreamName,key,AppName,volcTime"},
             {"SecretKey": "k2", "EncryptionAlgorithm": "md5_custom",
              "AuthField": {"volcSecret": "sign", "volcTime": "expire"},
              "EncryptField": ["Domain", "StreamName", "key", "AppName", "volcTime"]}]}]}}"#;
        let (v, keys) = enabled(api(DEFAULT_API_VERSION).parse(
            "play.example.com",
            StatusCode::OK,
            body.as_bytes(),
            C,
        ));
        // Both shapes give the same settings: one verifier, two keys.
        assert_eq!(keys.len(), 2);
        assert_eq!(v.auth_params(), ["sign", "expire"]);
        let t = "6553f100";
        for k in ["k1", "k2"] {
            let sign = md5_hex(&format!("play.example.coms1{k}live{t}"));
            let q = format!("sign={sign}&expire={t}");
            let d = |now| {
                v.verify(&view("play.example.com", "/live/s1.flv", &q), &keys, now)
                    .decision
            };
            assert_eq!(d(0x6553_f100 + 60), Decision::Allow, "{k}");
            assert_eq!(d(0x6553_f100 + 61), Decision::Deny(DenyReason::Expired));
        }
        // App scope from the entry.
        let sign = md5_hex(&format!("play.example.coms1k1other{t}"));
        let q = format!("sign={sign}&expire={t}");
        assert_eq!(
            v.verify(&view("play.example.com", "/other/s1.flv", &q), &keys, 0)
                .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn entries_with_different_parameters_keep_their_keys_apart() {
        let body = r#"{"ResponseMetadata": {}, "Result": {"AuthList": [
          {"App": "a", "AuthStatus": true, "SceneType": "pull", "ValidDuration": 0,
           "AuthDetailList": [{"SecretKey": "key-a", "EncryptionAlgorithm": "md5"}]},
          {"App": "b", "AuthStatus": true, "SceneType": "pull", "ValidDuration": 0,
           "AuthDetailList": [{"SecretKey": "key-b", "EncryptionAlgorithm": "md5",
                               "AuthField": {"volcSecret": "s", "volcTime": "t"}}]}]}}"#;
        let (v, keys) = enabled(api(DEFAULT_API_VERSION).parse(
            "play.example.com",
            StatusCode::OK,
            body.as_bytes(),
            C,
        ));
        assert_eq!(keys.len(), 2);
        assert_eq!(v.scheme(), "volcengine");
        // Both param pairs are auth params (stripped before forwarding).
        assert_eq!(v.auth_params(), ["volcSecret", "volcTime", "s", "t"]);
        let t = "1700000000";
        let url = |app: &str, key: &str, names: (&str, &str)| {
            let s = md5_hex(&format!("/{app}/s{key}{t}"));
            (
                format!("/{app}/s.flv"),
                format!("{}={s}&{}={t}", names.0, names.1),
            )
        };
        let d = |(p, q): (String, String)| {
            v.verify(&view("play.example.com", &p, &q), &keys, 1_700_000_000)
                .decision
        };
        assert_eq!(
            d(url("a", "key-a", ("volcSecret", "volcTime"))),
            Decision::Allow
        );
        assert_eq!(d(url("b", "key-b", ("s", "t"))), Decision::Allow);
        // A key only verifies with the parameters it was listed with.
        assert_eq!(
            d(url("b", "key-a", ("s", "t"))),
            Decision::Deny(DenyReason::BadSignature)
        );
        assert_eq!(
            d(url("a", "key-b", ("volcSecret", "volcTime"))),
            Decision::Deny(DenyReason::BadSignature)
        );
        // The most telling denial wins: expired, not "missing" from the other set.
        let (p, q) = url("a", "key-a", ("volcSecret", "volcTime"));
        assert_eq!(
            v.verify(&view("play.example.com", &p, &q), &keys, 1_700_000_001)
                .decision,
            Decision::Deny(DenyReason::Expired)
        );
        // A static key of the site (not in the answer) is tried with every set.
        let mut with_static: Vec<Secret> = keys.iter().cloned().collect();
        with_static.push(Secret::new("static"));
        let (p, q) = url("b", "static", ("s", "t"));
        assert!(v
            .verify(
                &view("play.example.com", &p, &q),
                &KeySet::new(with_static),
                1_700_000_000
            )
            .is_allowed());
    }

    #[test]
    fn disabled_or_no_pull_entry_is_disabled() {
        let p = |b: &str| {
            api(DEFAULT_API_VERSION).parse("play.example.com", StatusCode::OK, b.as_bytes(), C)
        };
        // The vendor doc's own example: push, AuthStatus false.
        let doc = r#"{"ResponseMetadata": {"RequestID": "20210829114930010210039045250DAD6E", "Action": "DescribeAuth",
            "Version": "2020-08-01", "Service": "live", "Region": "cn-north-1"},
          "Result": {"AuthList": [{"App": "test", "AuthDetailList": [{"AuthField": {}, "EncryptField": [],
            "EncryptionAlgorithm": "md5", "SecretKey": "1asd111"}], "AuthStatus": false, "Domain": "",
            "SceneType": "push", "ValidDuration": 604800, "Vhost": "vhost-lh-pull-test.example.com"}]}}"#;
        let off = SUCCESS.replace(r#""AuthStatus": true"#, r#""AuthStatus": false"#);
        for body in [
            doc,
            off.as_str(),
            r#"{"ResponseMetadata": {}, "Result": {"AuthList": []}}"#,
            r#"{"ResponseMetadata": {}, "Result": {"AuthList": null}}"#,
        ] {
            assert!(matches!(p(body), Ok(SyncedAuth::Disabled)), "{body}");
        }
    }

    #[test]
    fn error_envelopes_are_vendor_errors() {
        let body = br#"{"ResponseMetadata": {"RequestId": "r", "Action": "DescribeAuth", "Version": "2023-01-01",
            "Service": "live", "Region": "cn-north-1",
            "Error": {"CodeN": 100010, "Code": "SignatureDoesNotMatch",
                      "Message": "The request signature we calculated does not match the signature you provided."}}}"#;
        match api(DEFAULT_API_VERSION).parse("d", StatusCode::UNAUTHORIZED, body, C) {
            Err(SyncError::Vendor {
                status,
                code,
                message,
            }) => {
                assert_eq!((status, code.as_str()), (401, "SignatureDoesNotMatch"));
                assert!(message.starts_with("The request signature"));
            }
            other => panic!("{other:?}"),
        }
        let common_err = br#"{"ResponseMetadata": {"Error": {"Code": "CommonErr", "Message": ""}}, "Result": null}"#;
        assert!(matches!(
            api(DEFAULT_API_VERSION).parse("d", StatusCode::OK, common_err, C),
            Err(SyncError::Vendor { status: 200, .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_and_never_quotes_a_key() {
        let p = |s: StatusCode, b: &str| {
            api(DEFAULT_API_VERSION).parse("play.example.com", s, b.as_bytes(), C)
        };
        for (status, body) in [
            (StatusCode::OK, "<html>not an api</html>"),
            (StatusCode::OK, "{}"),
            (StatusCode::OK, r#"{"ResponseMetadata": {}, "Result": {}}"#),
            (StatusCode::OK, r#"{"Result": null}"#),
            (StatusCode::BAD_GATEWAY, r#"{"message": "bad gateway"}"#),
            // A key where a flag should be, and a numeric key.
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": "SeCrEtKeY1", "AuthDetailList": []}]}}"#,
            ),
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "AuthDetailList": [{"SecretKey": 987654321}]}]}}"#,
            ),
            // Documented fields with unusable values.
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "AuthDetailList": [{"SecretKey": "SeCrEtKeY1", "EncryptionAlgorithm": "sha1"}]}]}}"#,
            ),
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "AuthDetailList": [{"SecretKey": "SeCrEtKeY1", "EncryptionAlgorithm": "md5_custom", "EncryptField": ["StreamName", "volcTime"]}]}]}}"#,
            ),
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "TimeStampBase": 7, "AuthDetailList": [{"SecretKey": "SeCrEtKeY1"}]}]}}"#,
            ),
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "AuthDetailList": [{"SecretKey": "SeCrEtKeY1", "AuthField": "{not json"}]}]}}"#,
            ),
            // Auth on, but no key at all.
            (
                StatusCode::OK,
                r#"{"Result": {"AuthList": [{"AuthStatus": true, "AuthDetailList": []}]}}"#,
            ),
        ] {
            match p(status, body) {
                Err(e @ SyncError::Malformed(_)) => {
                    let m = e.to_string();
                    assert!(!m.contains("SeCrEtKeY1") && !m.contains("987654321"), "{m}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    /// The problems of a one-site config whose `[site.auth]` is `auth`.
    fn config_problems(auth: &str) -> Vec<crate::problems::Problem> {
        let text = format!(
            "[[site]]\nid = \"live\"\ndomains = [\"play.example.com\"]\norigin = \"http://127.0.0.1:8000\"\n[site.auth]\nscheme = \"volcengine\"\nkeys = [\"SeCrEtKeY1\"]\n{auth}\n"
        );
        match crate::config::Config::from_toml(&text, std::path::Path::new("."), &|_: &str| None) {
            Err(crate::config::ConfigError::Invalid(p)) => p,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    /// The Malformed message of a one-entry answer whose only detail is `detail`.
    fn answer_problem(entry: &str, detail: &str) -> String {
        let body = format!(
            r#"{{"ResponseMetadata": {{}}, "Result": {{"AuthList": [
              {{"AuthStatus": false, "SceneType": "pull", "AuthDetailList": []}},
              {{"AuthStatus": true, "SceneType": "pull", {entry} "AuthDetailList": [
                {{"SecretKey": "other", "EncryptionAlgorithm": "md5"}},
                {{"SecretKey": "SeCrEtKeY1", {detail}}}]}}]}}}}"#
        );
        match api(DEFAULT_API_VERSION).parse("play.example.com", StatusCode::OK, body.as_bytes(), C)
        {
            Err(SyncError::Malformed(m)) => {
                assert!(!m.contains("SeCrEtKeY1"), "{m}");
                m
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn valid_duration_out_of_range_is_named_by_the_vendor_field_never_the_key() {
        let m = answer_problem(
            r#""ValidDuration": "2592001","#,
            r#""EncryptionAlgorithm": "md5""#,
        );
        assert!(
            m.contains("AuthList[1].ValidDuration: must be at most 2592000"),
            "{m}"
        );
        // The same value in the config file, at its key path.
        let p = config_problems("valid_duration_secs = 2592001");
        assert!(
            p.iter()
                .any(|p| p.path == "site[0].auth.valid_duration_secs"
                    && p.message.contains("must be at most 2592000")),
            "{p:?}"
        );
    }

    #[test]
    fn one_rule_judges_config_and_vendor_alike() {
        // The same unusable values through both readers: the same messages,
        // each at its own path.
        let cases = [
            (
                r#""AuthField": {"volcSecret": "a b"}"#,
                "AuthList[1].AuthDetailList[1].AuthField.volcSecret",
                r#"secret_param = "a b""#,
                "site[0].auth.secret_param",
            ),
            (
                r#""AuthField": "{\"volcTime\": \"volcSecret\"}""#,
                "AuthList[1].AuthDetailList[1].AuthField.volcTime",
                r#"time_param = "volcSecret""#,
                "site[0].auth.time_param",
            ),
            (
                r#""EncryptionAlgorithm": "md5_custom", "EncryptField": ["StreamName", "Bogus", "volcTime"]"#,
                "AuthList[1].AuthDetailList[1].EncryptField[1]",
                r#"algorithm = "md5_custom"
                   encrypt_fields = ["StreamName", "Bogus", "volcTime"]"#,
                "site[0].auth.encrypt_fields[1]",
            ),
            (
                r#""EncryptionAlgorithm": "md5_custom", "EncryptField": "StreamName,volcTime""#,
                "AuthList[1].AuthDetailList[1].EncryptField",
                r#"algorithm = "md5_custom"
                   encrypt_fields = ["StreamName", "volcTime"]"#,
                "site[0].auth.encrypt_fields",
            ),
        ];
        for (detail, vendor_path, toml, config_path) in cases {
            let from_vendor = answer_problem("", detail);
            let from_config = config_problems(toml);
            let p = from_config
                .iter()
                .find(|p| p.path == config_path)
                .unwrap_or_else(|| panic!("{config_path} not in {from_config:?}"));
            assert!(
                from_vendor.contains(&format!("{vendor_path}: {}", p.message)),
                "{from_vendor}\n vs {p}"
            );
        }
        // TimeStampBase is an entry field.
        let m = answer_problem(r#""TimeStampBase": 7,"#, r#""EncryptionAlgorithm": "md5""#);
        assert!(
            m.contains("AuthList[1].TimeStampBase: must be 2, 8, 10 or 16"),
            "{m}"
        );
    }

    #[test]
    fn api_version_is_validated_per_vendor_kind() {
        let cfg = |kind: &str, extra: &str| {
            format!(
                r#"
[[vendor]]
name = "v"
kind = "{kind}"
access_key = "ak"
secret_key = "sk"
{extra}

[[site]]
id = "live"
domains = ["play.example.com"]
origin = "http://127.0.0.1:8000"
vendor = "v"
"#
            )
        };
        let load = |t: &str| {
            crate::config::Config::from_toml(t, std::path::Path::new("."), &|_: &str| None)
        };
        let version = |t: &str| load(t).unwrap().vendors[0].api_version.clone();
        assert_eq!(
            version(&cfg("volcengine", "")).as_deref(),
            Some("2023-01-01")
        );
        assert_eq!(
            version(&cfg("volcengine", "api_version = \"2020-08-01\"")).as_deref(),
            Some("2020-08-01")
        );
        assert_eq!(version(&cfg("tencent", "")), None);
        for bad in [
            cfg("volcengine", "api_version = \"2018-08-01\""),
            cfg("tencent", "api_version = \"2023-01-01\""),
        ] {
            match load(&bad) {
                Err(crate::config::ConfigError::Invalid(p)) => {
                    assert!(p.iter().any(|p| p.path == "vendor[0].api_version"), "{p:?}");
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("accepted: {bad}"),
            }
        }
        // A site fed by a volcengine account verifies the volcengine scheme.
        let c = load(&cfg("volcengine", "")).unwrap();
        assert_eq!(c.vendors[0].kind.scheme(), "volcengine");
    }

    #[tokio::test]
    async fn update_auth_key_carries_the_whole_entry_with_the_change() {
        use http_body_util::BodyExt;
        let current = serde_json::to_vec(&serde_json::json!({"ResponseMetadata": {}, "Result": {"AuthList": [
            {"Domain": "d", "SceneType": "push", "AuthStatus": true, "AuthDetailList": [{"SecretKey": "pushkey"}]},
            {"Domain": "d", "App": "live", "SceneType": "pull", "AuthStatus": true, "ValidDuration": "120",
             "AuthDetailList": [{"SecretKey": "old", "EncryptionAlgorithm": "md5_custom", "EncryptField": ["key", "volcTime"], "AuthField": "{}"}]}]}}))
        .unwrap();
        let (old, new) = (Secret::new("old"), Secret::new("new"));
        let api = api("2020-08-01");
        let body = |req: Request<Full<Bytes>>| async move {
            assert!(req
                .uri()
                .query()
                .unwrap()
                .contains("Action=UpdateAuthKey&Version=2023-01-01"));
            let b = req.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()
        };
        let stage = KeyChange::Stage {
            old: &old,
            new: &new,
            replace_backup: false,
        };
        let b = body(api.write("d", &current, &stage, 0).unwrap()).await;
        assert_eq!(b["Domain"], "d");
        assert_eq!(b["App"], "live");
        assert_eq!(b["SceneType"], "pull");
        assert_eq!(b["ValidDuration"], 120);
        assert!(b.get("PushPullEnable").is_none());
        let list = b["AuthDetailList"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["SecretKey"], "new");
        assert_eq!(list[1]["EncryptionAlgorithm"], "md5_custom");
        assert_eq!(
            list[1]["EncryptField"],
            serde_json::json!(["key", "volcTime"])
        );
        assert_eq!(api.url_window_secs("d", &current), 120);

        let staged = serde_json::to_vec(&serde_json::json!({"Result": {"AuthList": [
            {"Domain": "d", "AuthStatus": true, "AuthDetailList": [{"SecretKey": "old"}, {"SecretKey": "new"}]}]}}))
        .unwrap();
        let b = body(
            api.write(
                "d",
                &staged,
                &KeyChange::Promote {
                    old: &old,
                    new: &new,
                },
                0,
            )
            .unwrap(),
        )
        .await;
        assert_eq!(
            b["AuthDetailList"],
            serde_json::json!([{"SecretKey": "new"}, {"SecretKey": "old"}])
        );
        let b = body(
            api.write(
                "d",
                &staged,
                &KeyChange::Retire {
                    old: &old,
                    new: &new,
                },
                0,
            )
            .unwrap(),
        )
        .await;
        assert_eq!(
            b["AuthDetailList"],
            serde_json::json!([{"SecretKey": "new"}])
        );

        let two = serde_json::to_vec(&serde_json::json!({"Result": {"AuthList": [
            {"Domain": "d", "App": "a", "AuthStatus": true, "AuthDetailList": [{"SecretKey": "old"}]},
            {"Domain": "d", "App": "b", "AuthStatus": true, "AuthDetailList": [{"SecretKey": "old"}]}]}}))
        .unwrap();
        assert!(matches!(
            api.write("d", &two, &stage, 0),
            Err(WriteError::Refused(_))
        ));
        assert!(matches!(
            api.written(
                StatusCode::UNAUTHORIZED,
                br#"{"ResponseMetadata":{"Error":{"Code":"SignatureDoesNotMatch","Message":"x"}}}"#
            ),
            Err(SyncError::Vendor { .. })
        ));
    }
}
