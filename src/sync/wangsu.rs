//! Wangsu / ChinaNetCenter: the streaming timestamp anti-hotlinking config,
//! `GET {endpoint}/api/config/live-timestampvisitcontrol/{domain}`, signed with
//! the documented Basic scheme:
//!
//! ```text
//! Date: Sun, 22 Nov 2026 10:00:00 GMT
//! Authorization: Basic base64(username ":" base64(HMAC-SHA1(apiKey, <Date value>)))
//! ```
//!
//! Answer: `{"code","message":"success","data":{"domainId","domainName",
//! "timestampVisitControlRules":[{dataId, cipherParam, timeParam, secretKey,
//! timeFormat, effectiveTimeMode, effectiveTime, tolerantTime,
//! cipheCombination}]}}`; errors are non-2xx with `{code, message}` (e.g. 404
//! `26932001` "The specified domain does not exist."). Numbers arrive as JSON
//! numbers or as strings (the vendor's own example quotes them): both are read.
//!
//! Not implemented: the newer `CNC-HMAC-SHA256` AK/SK scheme; the Basic scheme
//! is the one this API's documentation shows.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;

use super::{KeyChange, KeyWriter, SyncError, SyncedAuth, VendorApi, WriteError};
use crate::auth::wangsu::{
    EffectiveTimeMode, RuleSettings, Settings, WsTimeFormat, DEFAULT_CIPHER_PARAM,
    DEFAULT_COMBINATION, DEFAULT_TIME_PARAM,
};
use crate::auth::Common;
use crate::config::VendorConfig;
use crate::keys::{KeySet, Secret};
use crate::problems::quoted;
use crate::problems::Problem;

/// The documented endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://open.chinanetcenter.com";
/// The docs give no rate limit for this API; 10 requests per second is a
/// conservative guess (the lowest limit among the other vendors' APIs).
pub const RATE_LIMIT: u32 = 10;
/// The API path; the domain name or domain id follows.
const PATH: &str = "/api/config/live-timestampvisitcontrol/";
/// Whether synced rule groups hash the path with its media extension. The
/// vendor API does not say (SCHEMES.md: OPEN); this is the config's default.
const PATH_INCLUDES_EXTENSION: bool = true;

/// Indexed by days since 1970-01-01, which was a Thursday.
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `unix` as an RFC 1123 HTTP date in GMT: `Sun, 22 Nov 2026 10:00:00 GMT`.
pub fn http_date(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = crate::time::civil(unix);
    // Both indices are reduced modulo the table length, so they cannot be out of range.
    let weekday = WEEKDAYS[usize::try_from(unix / 86_400 % 7).unwrap_or(0)];
    let month = MONTHS[usize::try_from(mo.saturating_sub(1) % 12).unwrap_or(0)];
    format!("{weekday}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} GMT")
}

/// The `Authorization` value of the documented scheme:
/// `Basic base64(username ":" base64(HMAC-SHA1(api_key, date)))`, where `date`
/// is exactly the `Date` header value sent with it.
pub fn basic_authorization(username: &str, api_key: &Secret, date: &str) -> String {
    // HMAC accepts keys of any length, so the error arm is unreachable.
    let password = match Hmac::<Sha1>::new_from_slice(api_key.expose().as_bytes()) {
        Ok(mut m) => {
            m.update(date.as_bytes());
            BASE64.encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

/// The client of one Wangsu account.
pub struct WangsuApi {
    username: Secret,
    api_key: Secret,
    endpoint: Uri,
}

impl WangsuApi {
    /// A client for a configured account: `access_key` is the username,
    /// `secret_key` the apiKey.
    pub fn new(v: &VendorConfig) -> Self {
        WangsuApi {
            username: v.access_key.clone(),
            api_key: v.secret_key.clone(),
            endpoint: v
                .endpoint
                .clone()
                .unwrap_or_else(|| Uri::from_static(DEFAULT_ENDPOINT)),
        }
    }

    /// `{endpoint}/api/config/live-timestampvisitcontrol/{domain}`; an
    /// endpoint path prefix is kept, its query dropped.
    fn url(&self, domain: &str) -> Result<Uri, SyncError> {
        // Why: the domain becomes a path segment; anything beyond a host name
        // or a numeric id could change which resource is asked for.
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(SyncError::Request(format!(
                "`{}` is not a domain name or domain id",
                quoted(domain)
            )));
        }
        let authority = super::endpoint_authority(&self.endpoint)?;
        let scheme = self.endpoint.scheme_str().unwrap_or("https");
        let prefix = self.endpoint.path().trim_end_matches('/');
        format!("{scheme}://{authority}{prefix}{PATH}{domain}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| SyncError::Request(e.to_string()))
    }
}

/// Both the success and the error envelope.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    domain_id: Option<Value>,
    #[serde(default)]
    domain_name: Option<String>,
    #[serde(default)]
    timestamp_visit_control_rules: Option<Vec<VendorRule>>,
}

/// One rule group as sent. Not `Debug`: it holds a key. Numbers and the key
/// are read as raw JSON values so that a type error never quotes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VendorRule {
    #[serde(default)]
    data_id: Option<Value>,
    #[serde(default)]
    cipher_param: Option<String>,
    #[serde(default)]
    time_param: Option<String>,
    #[serde(default)]
    secret_key: Option<Value>,
    #[serde(default)]
    time_format: Option<String>,
    #[serde(default)]
    effective_time_mode: Option<String>,
    #[serde(default)]
    effective_time: Option<Value>,
    #[serde(default)]
    tolerant_time: Option<Value>,
    #[serde(default)]
    ciphe_combination: Option<String>,
}

/// A code or id that may be a JSON string or number, as text; anything
/// else (an object, a list) is not quoted, since it may hold anything.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => "(not text)".to_owned(),
    }
}

/// A non-negative integer sent as a JSON number or a decimal string; absent,
/// `null` and `""` are `None`. A problem is named `field`.
fn number(v: Option<&Value>, field: &str) -> Result<Option<u64>, Problem> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| Problem::field(field, "is not a non-negative integer"))
}

fn time_format(s: &str) -> Option<WsTimeFormat> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("UNIX timestamp") {
        Some(WsTimeFormat::Unix)
    } else if s.eq_ignore_ascii_case("hex") {
        Some(WsTimeFormat::Hex)
    } else {
        None
    }
}

fn effective_time_mode(s: &str) -> Option<EffectiveTimeMode> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("duration") {
        Some(EffectiveTimeMode::Duration)
    } else if s.eq_ignore_ascii_case("abstime") {
        Some(EffectiveTimeMode::AbsTime)
    } else if s.eq_ignore_ascii_case("no verification") {
        Some(EffectiveTimeMode::NoVerification)
    } else {
        None
    }
}

/// A param name as sent, the default when absent or empty ("未入参则默认值为…").
fn param_or(v: Option<&String>, default: &str) -> String {
    v.filter(|s| !s.is_empty())
        .map_or_else(|| default.to_owned(), Clone::clone)
}

/// The vendor's name for a [`Settings`] field (`rule[1].cipher_combination`
/// → `timestampVisitControlRules[1].cipheCombination (dataId "7")`), the
/// group's dataId added when sent so the operator finds it in the console.
fn vendor_field(field: &str, raw: &[VendorRule]) -> String {
    const LIST: &str = "timestampVisitControlRules";
    let Some((i, name)) = field
        .strip_prefix("rule[")
        .and_then(|f| f.split_once("]."))
        .and_then(|(i, name)| Some((i.parse::<usize>().ok()?, name)))
    else {
        return match field {
            "rule" => LIST.to_owned(),
            other => format!("{LIST} ({other})"),
        };
    };
    let name = match name {
        "key" => "secretKey",
        "cipher_param" => "cipherParam",
        "time_param" => "timeParam",
        "cipher_combination" => "cipheCombination",
        "time_format" => "timeFormat",
        "effective_time_mode" => "effectiveTimeMode",
        "effective_time_secs" => "effectiveTime",
        "tolerant_time_secs" => "tolerantTime",
        other => other,
    };
    match raw.get(i).and_then(|r| r.data_id.as_ref()) {
        Some(id) if !id.is_null() => {
            // Only a numeric dataId is shown: an answer's text may be anything.
            let id = text_of(id);
            if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
                format!("{LIST}[{i}].{name} (dataId {id})")
            } else {
                format!("{LIST}[{i}].{name}")
            }
        }
        _ => format!("{LIST}[{i}].{name}"),
    }
}

impl VendorRule {
    /// A group whose values were cleared: no key and no setting left.
    fn is_cleared(&self) -> bool {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        let blank_value = |v: &Option<Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        blank_value(&self.secret_key)
            && blank(&self.cipher_param)
            && blank(&self.time_param)
            && blank(&self.time_format)
            && blank(&self.effective_time_mode)
            && blank_value(&self.effective_time)
            && blank_value(&self.tolerant_time)
            && blank(&self.ciphe_combination)
    }
}

/// One rule group's settings and key, as the vendor sends them. Only
/// reading happens here (shapes, numbers, names, the vendor's defaults);
/// every rule is [`Settings::build`]'s. Problems are named by settings field
/// (`rule[i].time_format`); an unreadable field is replaced by a stand-in
/// that raises no further problem, so that every problem is reported.
fn read_rule(
    i: usize,
    r: &VendorRule,
    problems: &mut Vec<Problem>,
) -> (RuleSettings, Option<Secret>) {
    let mut problem = |field: &str, message: String| {
        problems.push(Problem::field(&format!("rule[{i}].{field}"), message));
    };
    let key = match &r.secret_key {
        Some(Value::String(k)) if !k.is_empty() => Some(Secret::new(k.as_str())),
        Some(Value::String(_) | Value::Null) | None => {
            problem("key", "is missing or empty".into());
            None
        }
        Some(_) => {
            problem("key", "is not a string".into());
            None
        }
    };
    let time_format = match r.time_format.as_deref() {
        Some(s) => time_format(s).unwrap_or_else(|| {
            problem("time_format", "is not UNIX timestamp or hex".to_owned());
            WsTimeFormat::Unix
        }),
        None => {
            problem("time_format", "is missing".into());
            WsTimeFormat::Unix
        }
    };
    let mode = match r.effective_time_mode.as_deref() {
        Some(s) => effective_time_mode(s),
        None => None,
    };
    match (&r.effective_time_mode, mode) {
        (_, Some(_)) => {}
        (Some(_), None) => problem(
            "effective_time_mode",
            "is not duration, abstime or no verification".to_owned(),
        ),
        (None, None) => problem("effective_time_mode", "is missing".into()),
    }
    // effectiveTime only means something with `duration` (the vendor clears it
    // for `no verification`), so it is read only then.
    let effective_time_secs = match mode {
        Some(EffectiveTimeMode::Duration) => {
            number(r.effective_time.as_ref(), "effective_time_secs").unwrap_or_else(|p| {
                problem("effective_time_secs", p.message);
                Some(1)
            })
        }
        _ => None,
    };
    let tolerant_time_secs = number(r.tolerant_time.as_ref(), "tolerant_time_secs")
        .unwrap_or_else(|p| {
            problem("tolerant_time_secs", p.message);
            None
        })
        .unwrap_or(0);
    let combination = r.ciphe_combination.clone().unwrap_or_else(|| {
        problem("cipher_combination", "is missing".into());
        DEFAULT_COMBINATION.to_owned()
    });
    let rule = RuleSettings {
        cipher_param: param_or(r.cipher_param.as_ref(), DEFAULT_CIPHER_PARAM),
        time_param: param_or(r.time_param.as_ref(), DEFAULT_TIME_PARAM),
        combination,
        time_format,
        // A stand-in for an unreadable mode: it takes no effective time.
        mode: mode.unwrap_or(EffectiveTimeMode::AbsTime),
        effective_time_secs,
        tolerant_time_secs,
    };
    (rule, key)
}

impl VendorApi for WangsuApi {
    fn kind(&self) -> &'static str {
        "wangsu"
    }

    fn max_requests_per_sec(&self) -> u32 {
        RATE_LIMIT
    }

    fn request(&self, domain: &str, now: u64) -> Result<Request<Full<Bytes>>, SyncError> {
        let url = self.url(domain)?;
        let date = http_date(now);
        let auth = basic_authorization(self.username.expose(), &self.api_key, &date);
        // The headers of the vendor's own curl example.
        Request::get(url)
            .header("date", &date)
            .header("authorization", auth)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| SyncError::Request(e.to_string()))
    }

    fn parse(
        &self,
        domain: &str,
        status: StatusCode,
        body: &[u8],
        common: Common,
    ) -> Result<SyncedAuth, SyncError> {
        let parsed = serde_json::from_slice::<Envelope>(body);
        if !status.is_success() {
            return match parsed {
                Ok(Envelope {
                    code: Some(code),
                    message,
                    ..
                }) => Err(super::vendor_error(
                    status,
                    text_of(&code),
                    message.unwrap_or_default(),
                )),
                _ => Err(SyncError::Malformed(format!(
                    "http {status} without an error envelope"
                ))),
            };
        }
        // Not `{e}`: serde_json quotes the offending value, maybe a key.
        let env = parsed.map_err(|e| super::malformed(status, &e))?;
        // The docs send `code` only with errors, and "0" with success.
        if let Some(code) = env.code.as_ref().map(text_of).filter(|c| c != "0") {
            return Err(super::vendor_error(
                status,
                code,
                env.message.unwrap_or_default(),
            ));
        }
        let data = env
            .data
            .ok_or_else(|| SyncError::Malformed("no data".into()))?;
        // Why: the path takes a domain name or a domain id; an answer about
        // another domain must not install its keys here.
        if let Some(name) = data.domain_name.as_deref().filter(|n| !n.is_empty()) {
            let id = data.domain_id.as_ref().map(text_of);
            if !name.eq_ignore_ascii_case(domain) && id.as_deref() != Some(domain) {
                return Err(SyncError::Malformed(format!(
                    "the answer is for another domain, not `{domain}`"
                )));
            }
        }
        // An empty (or absent) list is how the vendor says the config is
        // cleared; so is a group with only its dataId left (the documented
        // answer to a write of `{"dataId": X}` alone: "clear that group's
        // values"), which verifies nothing and is skipped.
        let raw = data.timestamp_visit_control_rules.unwrap_or_default();
        if raw.iter().all(VendorRule::is_cleared) {
            return Ok(SyncedAuth::Disabled);
        }
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in raw.iter().enumerate().filter(|(_, r)| !r.is_cleared()) {
            let (rule, key) = read_rule(i, r, &mut problems);
            rules.push(rule);
            keys.extend(key);
        }
        let settings = Settings {
            rules,
            path_includes_extension: PATH_INCLUDES_EXTENSION,
        };
        // Built even when reading failed, so that every problem is reported.
        let built = settings.build(common);
        match built {
            Ok(verifier) if problems.is_empty() => Ok(SyncedAuth::Enabled {
                verifier: Arc::new(verifier),
                // One key per group, each signing for its group only.
                keys: {
                    let n = keys.len();
                    KeySet::new(keys).bound_first(n)
                },
            }),
            Ok(_) => Err(unusable(problems, &raw)),
            Err(p) => {
                problems.extend(p);
                Err(unusable(problems, &raw))
            }
        }
    }
}

/// The rule groups of a Describe answer, as raw JSON.
fn raw_rules(current: &[u8]) -> Result<Vec<Value>, SyncError> {
    let v: Value =
        serde_json::from_slice(current).map_err(|e| super::malformed(StatusCode::OK, &e))?;
    Ok(v.pointer("/data/timestampVisitControlRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Whether a rule group carries its `dataId`.
fn has_data_id(rule: &Value) -> bool {
    match rule.get("dataId") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

impl KeyWriter for WangsuApi {
    /// The config update, `PUT` on the Describe path with the body
    /// `{"timestampVisitControlRules":[…]}`, signed with the same Basic
    /// scheme. Its `dataId` semantics decide every body:
    ///
    /// - a group sent with its `dataId` modifies that group only; a group
    ///   without one is added — but only when some group in the request
    ///   carries a `dataId`: a request in which none does *replaces the whole
    ///   config*, and a group with nothing but a `dataId` clears that group.
    /// - stage sends every current group with its `dataId` (unchanged) plus
    ///   a copy of the signing key's group with the new key and no `dataId`
    ///   (added). Sending the new group alone would replace the config and
    ///   drop every working key.
    /// - promote sends the two groups with their `dataId`s, the keys swapped:
    ///   the first group (whose key signs) gets the new key, the staged group
    ///   the old one. Both stay accepted throughout.
    /// - retire sends `{"dataId": …}` alone for the group holding the old
    ///   key, which clears it.
    ///
    /// When the vendor sends groups without `dataId`s, every body is the
    /// whole list instead (the replace-all case), with the same effect.
    fn write(
        &self,
        domain: &str,
        current: &[u8],
        change: &KeyChange<'_>,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, WriteError> {
        let rules = raw_rules(current)?;
        let with_ids = rules.iter().all(has_data_id);
        if !with_ids && rules.iter().any(has_data_id) {
            return Err(WriteError::Refused(
                "some rule groups carry a dataId and some do not; an update would add duplicates"
                    .into(),
            ));
        }
        let holds =
            |r: &Value, k: &Secret| r.get("secretKey").and_then(Value::as_str) == Some(k.expose());
        let list: Vec<Value> = match change {
            KeyChange::Stage { old, new, .. } => {
                let mut list = rules.clone();
                if !rules.iter().any(|r| holds(r, new)) {
                    let mut copy = rules
                        .iter()
                        .find(|r| holds(r, old))
                        .cloned()
                        .ok_or_else(|| WriteError::Refused("no rule group holds the signing key".into()))?;
                    if let Some(o) = copy.as_object_mut() {
                        o.remove("dataId");
                        o.insert("secretKey".into(), Value::String(new.expose().to_owned()));
                    }
                    list.push(copy);
                }
                list
            }
            KeyChange::Promote { old, new } => {
                if !rules.iter().any(|r| holds(r, new)) {
                    return Err(WriteError::Refused("no rule group holds the staged key".into()));
                }
                rules
                    .iter()
                    .filter(|r| !with_ids || holds(r, old) || holds(r, new))
                    .map(|r| {
                        let mut r = r.clone();
                        let swapped = if holds(&r, old) { new } else if holds(&r, new) { old } else { return r };
                        r["secretKey"] = Value::String(swapped.expose().to_owned());
                        r
                    })
                    .collect()
            }
            KeyChange::Retire { old, .. } if with_ids => rules
                .iter()
                .filter(|r| holds(r, old))
                .map(|r| serde_json::json!({ "dataId": r.get("dataId").cloned().unwrap_or(Value::Null) }))
                .collect(),
            KeyChange::Retire { old, .. } => rules.iter().filter(|r| !holds(r, old)).cloned().collect(),
        };
        if list.is_empty() {
            // An update without groups clears the whole config.
            return Err(WriteError::Refused(
                "the update would clear every rule group".into(),
            ));
        }
        let body = serde_json::to_vec(&serde_json::json!({ "timestampVisitControlRules": list }))
            .map_err(|e| SyncError::Request(e.to_string()))?;
        let url = self.url(domain)?;
        let date = http_date(now);
        let auth = basic_authorization(self.username.expose(), &self.api_key, &date);
        Ok(Request::put(url)
            .header("date", &date)
            .header("authorization", auth)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SyncError::Request(e.to_string()))?)
    }

    fn written(&self, status: StatusCode, body: &[u8]) -> Result<(), SyncError> {
        let parsed = serde_json::from_slice::<Envelope>(body);
        let code = match &parsed {
            Ok(env) => env.code.as_ref().map(text_of),
            Err(_) => None,
        };
        let message = parsed.ok().and_then(|e| e.message).unwrap_or_default();
        match code {
            Some(code) if !status.is_success() || code != "0" => {
                Err(super::vendor_error(status, code, message))
            }
            None if !status.is_success() => Err(SyncError::Malformed(format!(
                "http {status} without an error envelope"
            ))),
            _ => Ok(()),
        }
    }

    fn url_window_secs(&self, _domain: &str, current: &[u8]) -> u64 {
        raw_rules(current)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let n = |k: &str| number(r.get(k), k).ok().flatten().unwrap_or(0);
                n("effectiveTime").saturating_add(n("tolerantTime"))
            })
            .max()
            .unwrap_or(0)
    }
}

/// Settings problems as one error, each at its vendor path.
fn unusable(problems: Vec<Problem>, raw: &[VendorRule]) -> SyncError {
    super::unusable_settings(
        problems
            .into_iter()
            .map(|p| p.under(|f| vendor_field(f, raw))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::prop::view_of;
    use crate::auth::{lower_hex, md5_parts, Decision, DenyReason, Verifier};

    const C: Common = Common { clock_skew_secs: 0 };

    fn api() -> WangsuApi {
        WangsuApi {
            username: Secret::new("example_username"),
            api_key: Secret::new("example_apiKey"),
            endpoint: Uri::from_static(DEFAULT_ENDPOINT),
        }
    }

    #[test]
    fn basic_authorization_matches_an_independent_computation() {
        // Computed outside the crate, both ways:
        //   python3 -c 'import hmac,hashlib,base64; d="Sun, 22 Nov 2026 10:00:00 GMT";
        //     p=base64.b64encode(hmac.new(b"example_apiKey",d.encode(),hashlib.sha1).digest()).decode();
        //     print(p, base64.b64encode(("example_username:"+p).encode()).decode())'
        //   and the vendor doc's bash: echo -en "$date" | openssl dgst -sha1 -hmac $apiKey -binary | openssl enc -base64
        // Both give the password CFACq23Y8qubKteiOEnavgUtVBI=.
        let auth = basic_authorization(
            "example_username",
            &Secret::new("example_apiKey"),
            "Sun, 22 Nov 2026 10:00:00 GMT",
        );
        assert_eq!(
            auth,
            "Basic ZXhhbXBsZV91c2VybmFtZTpDRkFDcTIzWThxdWJLdGVpT0VuYXZnVXRWQkk9"
        );
        let decoded = BASE64
            .decode(auth.trim_start_matches("Basic "))
            .map(String::from_utf8);
        assert_eq!(
            decoded.ok().and_then(Result::ok).as_deref(),
            Some("example_username:CFACq23Y8qubKteiOEnavgUtVBI=")
        );
    }

    #[test]
    fn http_date_is_rfc1123_gmt_with_the_right_weekday() {
        assert_eq!(http_date(1_795_341_600), "Sun, 22 Nov 2026 10:00:00 GMT");
        // The Date of the vendor doc's response example.
        assert_eq!(http_date(1_557_047_333), "Sun, 05 May 2019 09:08:53 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
        // Every weekday, across a month end, one second before midnight.
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        for (i, day) in days.iter().enumerate() {
            let t = 1_795_341_600 + 86_400 * i as u64 + 50_399;
            assert!(http_date(t).starts_with(&format!("{day}, ")), "{t}");
            assert!(http_date(t).ends_with(" 23:59:59 GMT"), "{t}");
        }
        assert_eq!(
            http_date(1_795_341_600 + 86_400 * 8),
            "Mon, 30 Nov 2026 10:00:00 GMT"
        );
        assert_eq!(
            http_date(1_795_341_600 + 86_400 * 9),
            "Tue, 01 Dec 2026 10:00:00 GMT"
        );
    }

    #[test]
    fn request_is_a_signed_get_of_the_domain_config() {
        let req = api().request("play.example.com", 1_795_341_600).unwrap();
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri(),
            "https://open.chinanetcenter.com/api/config/live-timestampvisitcontrol/play.example.com"
        );
        let h = req.headers();
        assert_eq!(h["date"], "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(
            h["authorization"],
            "Basic ZXhhbXBsZV91c2VybmFtZTpDRkFDcTIzWThxdWJLdGVpT0VuYXZnVXRWQkk9"
        );
        assert_eq!(h["accept"], "application/json");
        // An endpoint override keeps its path prefix, with or without a slash.
        for e in [
            "http://127.0.0.1:8080/prefix/",
            "http://127.0.0.1:8080/prefix",
        ] {
            let a = WangsuApi {
                endpoint: e.parse().unwrap(),
                ..api()
            };
            assert_eq!(
                a.request("123344", 0).unwrap().uri(),
                "http://127.0.0.1:8080/prefix/api/config/live-timestampvisitcontrol/123344"
            );
        }
        for bad in ["", "a/b", "a?b", "a b", "../x"] {
            assert!(
                matches!(api().request(bad, 0), Err(SyncError::Request(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn kind_wangsu_in_the_config_builds_this_client() {
        let cfg = crate::config::Config::from_toml(
            r#"
            [[vendor]]
            name = "ws"
            kind = "wangsu"
            access_key = "user"
            secret_key = "${WS_KEY}"
            [[site]]
            id = "live"
            domains = ["play.example.com"]
            origin = "http://127.0.0.1:8000"
            vendor = "ws"
            [site.auth]
            scheme = "wangsu"
            [[site.auth.rule]]
            key = "k"
            time_format = "hex"
            effective_time_mode = "abstime"
            "#,
            std::path::Path::new("."),
            &|n: &str| (n == "WS_KEY").then(|| "api-key".to_owned()),
        )
        .unwrap();
        let v = &cfg.vendors[0];
        assert_eq!(v.kind, crate::config::VendorKind::Wangsu);
        assert_eq!(v.kind.scheme(), "wangsu");
        let api = super::super::api_for(v);
        assert_eq!(api.kind(), "wangsu");
        assert_eq!(api.max_requests_per_sec(), RATE_LIMIT);
        let req = api.request("play.example.com", 1_795_341_600).unwrap();
        assert_eq!(
            req.headers()["authorization"],
            basic_authorization(
                "user",
                &Secret::new("api-key"),
                "Sun, 22 Nov 2026 10:00:00 GMT"
            )
        );
    }

    fn enabled(body: &str) -> (Arc<dyn Verifier>, KeySet) {
        match api().parse("www.example.com", StatusCode::OK, body.as_bytes(), C) {
            Ok(SyncedAuth::Enabled { verifier, keys }) => (verifier, keys),
            Ok(SyncedAuth::Disabled) => panic!("enabled config read as disabled"),
            Err(e) => panic!("{e}"),
        }
    }

    fn malformed(body: &str) -> String {
        match api().parse("www.example.com", StatusCode::OK, body.as_bytes(), C) {
            Err(SyncError::Malformed(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// The two rule groups of [`TWO_GROUPS`].
    const TWO_GROUPS: &str = r#"{"code":"0","message":"success","data":{"domainId":"123344","domainName":"www.example.com","timestampVisitControlRules":[
        {"dataId":"123","cipherParam":"wsSecret","timeParam":"wsTime","secretKey":"group-one-key","timeFormat":"hex","effectiveTimeMode":"abstime","effectiveTime":"","tolerantTime":"60","cipheCombination":"key+path+time"},
        {"dataId":124,"cipherParam":"sign","timeParam":"t","secretKey":"group-two-key","timeFormat":"UNIX timestamp","effectiveTimeMode":"duration","effectiveTime":3600,"tolerantTime":5,"cipheCombination":"time+path+key"}]}}"#;

    #[test]
    fn two_rule_groups_become_one_verifier_with_a_key_each() {
        let (v, keys) = enabled(TWO_GROUPS);
        assert_eq!(v.scheme(), "wangsu");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["group-one-key", "group-two-key"]
        );
        assert_eq!(v.auth_params(), ["wsSecret", "wsTime", "sign", "t"]);
        // Group 1: abstime, hex, tolerance 60 s (string numbers).
        let s1 = lower_hex(&md5_parts(&[b"group-one-key", b"/live/s.flv", b"6553f100"]));
        let q1 = format!("wsSecret={s1}&wsTime=6553f100");
        assert!(v
            .verify(&view_of("/live/s.flv", &q1), &keys, 0x6553_f100 + 60)
            .is_allowed());
        assert_eq!(
            v.verify(&view_of("/live/s.flv", &q1), &keys, 0x6553_f100 + 61)
                .decision,
            Decision::Deny(DenyReason::Expired)
        );
        // Group 2: duration 3600 s, decimal, time+path+key (JSON numbers).
        let s2 = lower_hex(&md5_parts(&[
            b"1700000000",
            b"/live/s.flv",
            b"group-two-key",
        ]));
        let q2 = format!("sign={s2}&t=1700000000");
        assert!(v
            .verify(&view_of("/live/s.flv", &q2), &keys, 1_700_003_605)
            .is_allowed());
        assert_eq!(
            v.verify(&view_of("/live/s.flv", &q2), &keys, 1_700_003_606)
                .decision,
            Decision::Deny(DenyReason::Expired)
        );
        // Group 1's key does not sign for group 2.
        let wrong = lower_hex(&md5_parts(&[
            b"1700000000",
            b"/live/s.flv",
            b"group-one-key",
        ]));
        assert_eq!(
            v.verify(
                &view_of("/live/s.flv", &format!("sign={wrong}&t=1700000000")),
                &keys,
                1_700_000_000
            )
            .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn the_vendor_doc_example_parses_with_default_params() {
        // The doc's example, with its JSON typos (`"code":0"`, bare `data`)
        // fixed and the param names left out so the defaults apply.
        let (v, keys) = enabled(
            r#"{"code":"0","message":"success","data":{"domainId":"123344","domainName":"www.example.com","timestampVisitControlRules":[{"dataId":"123","secretKey":"yoursecretkey","timeFormat":"hex","effectiveTimeMode":"duration","effectiveTime":"3600","tolerantTime":"60","cipheCombination":"time+path+key"}]}}"#,
        );
        assert_eq!(keys.len(), 1);
        assert_eq!(v.auth_params(), ["wsSecret", "wsTime"]);
        // Asked by domain id, the answer is accepted too.
        assert!(api()
            .parse("123344", StatusCode::OK, TWO_GROUPS.as_bytes(), C)
            .is_ok());
    }

    #[test]
    fn empty_or_absent_rules_mean_disabled() {
        for body in [
            r#"{"code":"0","message":"success","data":{"domainId":"1","domainName":"www.example.com","timestampVisitControlRules":[]}}"#,
            r#"{"message":"success","data":{"domainId":"1","domainName":"www.example.com"}}"#,
            r#"{"code":0,"message":"success","data":{"timestampVisitControlRules":null}}"#,
            // A group whose values were cleared by dataId, and nothing else.
            r#"{"code":"0","data":{"domainName":"www.example.com","timestampVisitControlRules":[{"dataId":7,"secretKey":"","cipherParam":null}]}}"#,
        ] {
            assert!(
                matches!(
                    api().parse("www.example.com", StatusCode::OK, body.as_bytes(), C),
                    Ok(SyncedAuth::Disabled)
                ),
                "{body}"
            );
        }
    }

    /// A cleared group next to a working one: skipped, not a malformed
    /// answer (which would stop every sync of the domain).
    #[test]
    fn a_cleared_group_is_skipped() {
        let body = r#"{"code":"0","data":{"domainName":"www.example.com","timestampVisitControlRules":[
            {"dataId":7,"secretKey":""},
            {"dataId":8,"secretKey":"live-key","timeFormat":"hex","effectiveTimeMode":"abstime","cipheCombination":"key+path+time"}]}}"#;
        match api().parse("www.example.com", StatusCode::OK, body.as_bytes(), C) {
            Ok(SyncedAuth::Enabled { keys, .. }) => {
                assert_eq!(keys.len(), 1);
                assert_eq!(keys.primary().map(Secret::expose), Some("live-key"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_envelopes_become_vendor_errors() {
        let not_found = br#"{"code":"26932001","message":"The specified domain does not exist."}"#;
        match api().parse("www.example.com", StatusCode::NOT_FOUND, not_found, C) {
            Err(SyncError::Vendor {
                status,
                code,
                message,
            }) => {
                assert_eq!(status, 404);
                assert_eq!(code, "26932001");
                assert_eq!(message, "The specified domain does not exist.");
            }
            other => panic!("{other:?}"),
        }
        // A numeric code, and an error code on a 200.
        let internal =
            br#"{"code":26939999,"message":"We encountered an internal error. Please try again."}"#;
        assert!(matches!(
            api().parse("www.example.com", StatusCode::INTERNAL_SERVER_ERROR, internal, C),
            Err(SyncError::Vendor { status: 500, ref code, .. }) if code == "26939999"
        ));
        assert!(matches!(
            api().parse("www.example.com", StatusCode::OK, br#"{"code":"26932002","message":"customer not own domain name[x]"}"#, C),
            Err(SyncError::Vendor { status: 200, ref code, .. }) if code == "26932002"
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for (status, body) in [
            (StatusCode::OK, &b"<html>not an api</html>"[..]),
            (StatusCode::OK, b"\"<html>\""),
            (StatusCode::OK, b"{\"code\":\"0\",\"message\":\"success\"}"),
            (StatusCode::OK, b""),
            (StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            (StatusCode::BAD_GATEWAY, b"{}"),
        ] {
            assert!(
                matches!(
                    api().parse("www.example.com", status, body, C),
                    Err(SyncError::Malformed(_))
                ),
                "{status} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn unusable_rules_are_malformed_naming_the_field_never_the_key() {
        let with = |field: &str, value: &str| {
            let mut rule = serde_json::json!({"dataId": "7", "secretKey": "TOP-SECRET-KEY", "timeFormat": "hex", "effectiveTimeMode": "abstime", "cipheCombination": "key+path+time"});
            rule[field] = serde_json::from_str(value).unwrap();
            malformed(
                &serde_json::json!({"code": "0", "message": "success", "data": {"domainName": "www.example.com", "timestampVisitControlRules": [rule]}})
                    .to_string(),
            )
        };
        for (field, value, named) in [
            ("timeFormat", r#""decimal""#, "timeFormat"),
            ("effectiveTimeMode", r#""forever""#, "effectiveTimeMode"),
            ("cipheCombination", r#""key+key+time""#, "cipheCombination"),
            ("cipherParam", r#""ws Secret""#, "cipherParam"),
            ("timeParam", r#""wsSecret""#, "timeParam"),
            ("tolerantTime", r#""-5""#, "tolerantTime"),
            ("tolerantTime", "true", "tolerantTime"),
            ("secretKey", r#""""#, "secretKey"),
            ("secretKey", "12345", "secretKey"),
            ("timeFormat", "null", "timeFormat"),
        ] {
            let m = with(field, value);
            assert!(m.contains(named), "{field}={value}: {m}");
            assert!(m.contains("dataId 7"), "{m}");
            assert!(!m.contains("TOP-SECRET-KEY") && !m.contains("12345"), "{m}");
        }
        // Duration needs an effective time.
        let m = malformed(
            r#"{"data":{"timestampVisitControlRules":[{"secretKey":"k","timeFormat":"hex","effectiveTimeMode":"duration","cipheCombination":"key+path+time"}]}}"#,
        );
        assert!(m.contains("effectiveTime"), "{m}");
        // An answer about another domain.
        let m = malformed(
            r#"{"data":{"domainId":"9","domainName":"other.example.com","timestampVisitControlRules":[]}}"#,
        );
        assert!(
            m.contains("another domain") && !m.contains("other.example.com"),
            "{m}"
        );
    }

    #[test]
    fn one_rule_judges_config_and_vendor_alike() {
        // (vendor field and value, vendor path, config line, config path)
        let cases = [
            (
                ("cipherParam", r#""ws Secret""#),
                r#"timestampVisitControlRules[1].cipherParam (dataId 7)"#,
                r#"cipher_param = "ws Secret""#,
                "site[0].auth.rule[1].cipher_param",
            ),
            (
                ("timeParam", r#""wsSecret""#),
                r#"timestampVisitControlRules[1].timeParam (dataId 7)"#,
                r#"time_param = "wsSecret""#,
                "site[0].auth.rule[1].time_param",
            ),
            (
                ("cipheCombination", r#""key+time""#),
                r#"timestampVisitControlRules[1].cipheCombination (dataId 7)"#,
                r#"cipher_combination = "key+time""#,
                "site[0].auth.rule[1].cipher_combination",
            ),
            (
                ("effectiveTimeMode", r#""duration""#),
                r#"timestampVisitControlRules[1].effectiveTime (dataId 7)"#,
                r#"effective_time_mode = "duration""#,
                "site[0].auth.rule[1].effective_time_secs",
            ),
        ];
        for ((field, value), vendor_path, line, config_path) in cases {
            let mut rule = serde_json::json!({"dataId": "7", "secretKey": "TOP-SECRET-KEY", "timeFormat": "hex", "effectiveTimeMode": "abstime", "cipheCombination": "key+path+time"});
            rule[field] = serde_json::from_str(value).unwrap();
            let good = serde_json::json!({"secretKey": "k0", "timeFormat": "hex", "effectiveTimeMode": "abstime", "cipheCombination": "key+path+time"});
            let from_vendor = malformed(
                &serde_json::json!({"data": {"timestampVisitControlRules": [good, rule]}})
                    .to_string(),
            );
            assert!(!from_vendor.contains("TOP-SECRET-KEY"), "{from_vendor}");
            let toml = format!(
                r#"
                [[site]]
                id = "live"
                domains = ["www.example.com"]
                origin = "http://127.0.0.1:8000"
                [site.auth]
                scheme = "wangsu"
                [[site.auth.rule]]
                key = "k0"
                time_format = "hex"
                effective_time_mode = "abstime"
                [[site.auth.rule]]
                key = "TOP-SECRET-KEY"
                time_format = "hex"
                effective_time_mode = "abstime"
                {line}
                "#
            )
            // A later key of the same table replaces the one before it.
            .replace(
                "effective_time_mode = \"abstime\"\n                effective_time_mode",
                "effective_time_mode",
            );
            let from_config = match crate::config::Config::from_toml(
                &toml,
                std::path::Path::new("."),
                &|_: &str| None,
            ) {
                Err(crate::config::ConfigError::Invalid(p)) => p,
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("accepted: {toml}"),
            };
            let p = from_config
                .iter()
                .find(|p| p.path == config_path)
                .unwrap_or_else(|| panic!("{config_path} not in {from_config:?}"));
            assert!(!p.message.contains("TOP-SECRET-KEY"), "{p}");
            assert!(
                from_vendor.contains(&format!("{vendor_path}: {}", p.message)),
                "{from_vendor}\n vs {p}"
            );
        }
    }

    async fn body_of(req: Request<Full<Bytes>>) -> Value {
        use http_body_util::BodyExt;
        let b = req.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn rotation_writes_follow_the_data_id_semantics() {
        let current = serde_json::to_vec(&serde_json::json!({"code": "0", "data": {"domainName": "d",
            "timestampVisitControlRules": [
                {"dataId": "7", "secretKey": "old", "timeFormat": "hex", "effectiveTimeMode": "duration", "effectiveTime": "30", "tolerantTime": "5"},
                {"dataId": "9", "secretKey": "other", "timeFormat": "hex"}]}}))
        .unwrap();
        let (old, new) = (Secret::new("old"), Secret::new("new"));
        let req = api()
            .write(
                "d",
                &current,
                &KeyChange::Stage {
                    old: &old,
                    new: &new,
                    replace_backup: false,
                },
                0,
            )
            .unwrap();
        assert_eq!(req.method(), http::Method::PUT);
        assert!(req.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let rules = body_of(req).await["timestampVisitControlRules"].clone();
        // Every existing group with its dataId (modified, unchanged), and the
        // new one without (added): never a replace-all body.
        assert_eq!(rules.as_array().unwrap().len(), 3);
        assert_eq!(rules[0]["dataId"], "7");
        assert_eq!(rules[1]["dataId"], "9");
        assert_eq!(rules[2].get("dataId"), None);
        assert_eq!(rules[2]["secretKey"], "new");
        assert_eq!(rules[2]["effectiveTime"], "30");

        let staged = serde_json::to_vec(&serde_json::json!({"data": {"timestampVisitControlRules": [
            {"dataId": "7", "secretKey": "old"}, {"dataId": "9", "secretKey": "other"}, {"dataId": "10", "secretKey": "new"}]}}))
        .unwrap();
        let req = api()
            .write(
                "d",
                &staged,
                &KeyChange::Promote {
                    old: &old,
                    new: &new,
                },
                0,
            )
            .unwrap();
        let rules = body_of(req).await["timestampVisitControlRules"].clone();
        assert_eq!(
            rules,
            serde_json::json!([{"dataId": "7", "secretKey": "new"}, {"dataId": "10", "secretKey": "old"}])
        );
        let promoted = serde_json::to_vec(&serde_json::json!({"data": {"timestampVisitControlRules": [
            {"dataId": "7", "secretKey": "new"}, {"dataId": "9", "secretKey": "other"}, {"dataId": "10", "secretKey": "old"}]}}))
        .unwrap();
        let req = api()
            .write(
                "d",
                &promoted,
                &KeyChange::Retire {
                    old: &old,
                    new: &new,
                },
                0,
            )
            .unwrap();
        // A group with nothing but its dataId clears that group.
        assert_eq!(
            body_of(req).await["timestampVisitControlRules"],
            serde_json::json!([{"dataId": "10"}])
        );
        assert_eq!(api().url_window_secs("d", &current), 35);

        let mixed =
            serde_json::to_vec(&serde_json::json!({"data": {"timestampVisitControlRules": [
            {"dataId": "7", "secretKey": "old"}, {"secretKey": "other"}]}}))
            .unwrap();
        assert!(matches!(
            api().write(
                "d",
                &mixed,
                &KeyChange::Promote {
                    old: &old,
                    new: &new
                },
                0
            ),
            Err(WriteError::Refused(_))
        ));
        assert!(api()
            .written(StatusCode::OK, br#"{"code":"0","message":"success"}"#)
            .is_ok());
        assert!(matches!(
            api().written(
                StatusCode::UNAUTHORIZED,
                br#"{"code":"AuthFailed","message":"no"}"#
            ),
            Err(SyncError::Vendor { .. })
        ));
    }
}
