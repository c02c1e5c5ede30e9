//! Alibaba Cloud: `DescribeLiveDomainConfigs` (ApsaraVideo Live, Version
//! 2016-11-01) and `DescribeVodDomainConfigs` (ApsaraVideo VOD, Version
//! 2017-03-21), asked for the `aliauth` function only. RPC style: a `GET` whose
//! query carries every parameter, signed with HMAC-SHA1 (SignatureVersion 1.0).
//!
//! Answer: `{"RequestId","DomainConfigs":{"DomainConfig":[{"FunctionName":
//! "aliauth","ConfigId","Status","FunctionArgs":{"FunctionArg":[{"ArgName",
//! "ArgValue"}]}}]}}` with the args `auth_type` (`no_auth|type_a|type_b|type_c`),
//! `auth_key1`, `auth_key2` and `ali_auth_delta`, all strings. Errors come
//! with a 4xx/5xx status as `{"RequestId","HostId","Code","Message"}`.
//!
//! Endpoints: Live has one global endpoint (`live.aliyuncs.com`); VOD is
//! regional (`vod.<region>.aliyuncs.com`), so [`DEFAULT_VOD_ENDPOINT`] is the
//! Shanghai region and accounts elsewhere set `endpoint` in `[[vendor]]`.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Deserialize;
use sha1::Sha1;

use super::{malformed, SyncError, SyncedAuth, VendorApi};
use crate::auth::aliyun::{AuthType, Settings};
use crate::auth::Common;
use crate::config::VendorConfig;
use crate::keys::{KeySet, Secret};
use crate::problems::Problem;

/// The documented ApsaraVideo Live endpoint.
pub const DEFAULT_LIVE_ENDPOINT: &str = "https://live.aliyuncs.com/";
/// The ApsaraVideo VOD endpoint of the Shanghai region. VOD endpoints are
/// regional: set `endpoint` for an account in another region.
pub const DEFAULT_VOD_ENDPOINT: &str = "https://vod.cn-shanghai.aliyuncs.com/";
/// Requests per second we allow ourselves.
///
/// Why: the Describe*DomainConfigs APIs document no QPS figure in the
/// material we have (GetVideoPlayAuth documents 360/s per account, shared by
/// every caller of the account), and a throttled account hurts the customer's
/// other tooling too. Ten per second is far below any limit Alibaba Cloud
/// publishes for its Describe APIs and still syncs hundreds of domains per
/// minute.
pub const RATE_LIMIT: u32 = 10;
/// The only function streamguard asks about.
const FUNCTION: &str = "aliauth";

/// Which Alibaba Cloud product an account's domains belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// ApsaraVideo Live: `DescribeLiveDomainConfigs`, 2016-11-01.
    Live,
    /// ApsaraVideo VOD: `DescribeVodDomainConfigs`, 2017-03-21.
    Vod,
}

impl Product {
    /// The API action.
    pub fn action(self) -> &'static str {
        match self {
            Product::Live => "DescribeLiveDomainConfigs",
            Product::Vod => "DescribeVodDomainConfigs",
        }
    }

    /// The API version.
    pub fn version(self) -> &'static str {
        match self {
            Product::Live => "2016-11-01",
            Product::Vod => "2017-03-21",
        }
    }

    /// The endpoint used when the account sets none.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Product::Live => DEFAULT_LIVE_ENDPOINT,
            Product::Vod => DEFAULT_VOD_ENDPOINT,
        }
    }

    /// The vendor kind as written in the config.
    fn kind(self) -> &'static str {
        match self {
            Product::Live => "aliyun",
            Product::Vod => "aliyun_vod",
        }
    }
}

/// Alibaba Cloud's percent-encoding (`percentEncode` in its SDKs): RFC 3986
/// unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, every other byte of the
/// UTF-8 encoding becomes `%XX` with uppercase hex. So a space is `%20` (never
/// `+`), `*` is `%2A`, `/` is `%2F`, and `~` is kept.
pub fn pe(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// The canonical query: `pe(k)=pe(v)` joined by `&`, sorted by key (then
/// value). `params` must not contain `Signature`.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (pe(k), pe(v))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The RPC signature (SignatureVersion 1.0) of a request with `params` (all
/// but `Signature`): `base64(HMAC-SHA1(secret + "&", METHOD & pe("/") &
/// pe(canonical query)))`.
pub fn rpc_signature(method: &str, params: &[(&str, &str)], secret: &Secret) -> String {
    let string_to_sign = format!("{method}&{}&{}", pe("/"), pe(&canonical_query(params)));
    let key = format!("{}&", secret.expose());
    // HMAC accepts keys of any length, so this never fails.
    match Hmac::<Sha1>::new_from_slice(key.as_bytes()) {
        Ok(mut m) => {
            m.update(string_to_sign.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The client of one Alibaba Cloud account.
pub struct AliyunApi {
    product: Product,
    access_key_id: Secret,
    access_key_secret: Secret,
    endpoint: Uri,
}

impl AliyunApi {
    /// A client for a configured account of `product`.
    pub fn new(v: &VendorConfig, product: Product) -> Self {
        AliyunApi {
            product,
            access_key_id: v.access_key.clone(),
            access_key_secret: v.secret_key.clone(),
            endpoint: v
                .endpoint
                .clone()
                .unwrap_or_else(|| Uri::from_static(product.default_endpoint())),
        }
    }

    /// The full signed query (with `Signature`) for `domain` at `now`, with
    /// the given `SignatureNonce`. Pure: [`VendorApi::request`] draws the nonce.
    pub fn signed_query(&self, domain: &str, now: u64, nonce: &str) -> String {
        let timestamp = crate::time::rfc3339(now);
        let params: [(&str, &str); 10] = [
            ("Action", self.product.action()),
            ("Version", self.product.version()),
            ("DomainName", domain),
            ("FunctionNames", FUNCTION),
            ("Format", "JSON"),
            ("AccessKeyId", self.access_key_id.expose()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce),
            ("Timestamp", &timestamp),
        ];
        let signature = rpc_signature("GET", &params, &self.access_key_secret);
        format!("{}&Signature={}", canonical_query(&params), pe(&signature))
    }
}

/// A fresh `SignatureNonce`: 128 random bits as hex.
///
/// Why: Alibaba Cloud rejects a nonce it has seen within 15 minutes
/// (`SignatureNonceUsed`), so a retry must never repeat one.
fn nonce() -> Result<String, SyncError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)
        .map_err(|e| SyncError::Request(format!("no randomness for SignatureNonce: {e}")))?;
    Ok(hex::encode(b))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    domain_configs: Option<DomainConfigs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VendorErr {
    code: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DomainConfigs {
    #[serde(default)]
    domain_config: Vec<DomainConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DomainConfig {
    function_name: String,
    config_id: Option<ConfigId>,
    #[serde(default)]
    function_args: FunctionArgs,
}

/// The API documents `ConfigId` as a number in some versions and a string in
/// others; it is only used in messages.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigId {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for ConfigId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigId::Number(n) => write!(f, "{n}"),
            ConfigId::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct FunctionArgs {
    #[serde(default)]
    function_arg: Vec<FunctionArg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionArg {
    arg_name: String,
    arg_value: String,
}

impl DomainConfig {
    fn arg(&self, name: &str) -> Option<&str> {
        self.function_args
            .function_arg
            .iter()
            .find(|a| a.arg_name == name)
            .map(|a| a.arg_value.as_str())
    }

    fn id(&self) -> String {
        self.config_id
            .as_ref()
            .map_or_else(|| "without ConfigId".to_owned(), |c| c.to_string())
    }
}

impl VendorApi for AliyunApi {
    fn kind(&self) -> &'static str {
        self.product.kind()
    }

    fn max_requests_per_sec(&self) -> u32 {
        RATE_LIMIT
    }

    fn request(&self, domain: &str, now: u64) -> Result<Request<Full<Bytes>>, SyncError> {
        let scheme = self
            .endpoint
            .scheme_str()
            .ok_or_else(|| SyncError::Request("endpoint has no scheme".into()))?;
        let authority = super::endpoint_authority(&self.endpoint)?;
        if self.endpoint.query().is_some() {
            return Err(SyncError::Request("endpoint must not have a query".into()));
        }
        let query = self.signed_query(domain, now, &nonce()?);
        let uri = format!("{scheme}://{authority}{}?{query}", self.endpoint.path());
        Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| SyncError::Request(e.to_string()))
    }

    fn parse(
        &self,
        _domain: &str,
        status: StatusCode,
        body: &[u8],
        common: Common,
    ) -> Result<SyncedAuth, SyncError> {
        if !status.is_success() {
            return match serde_json::from_slice::<VendorErr>(body) {
                Ok(e) => Err(super::vendor_error(status, e.code, e.message)),
                Err(_) => Err(SyncError::Malformed(format!(
                    "http {status} without an error envelope"
                ))),
            };
        }
        let answer: Answer = serde_json::from_slice(body).map_err(|e| malformed(status, &e))?;
        let configs = answer
            .domain_configs
            .ok_or_else(|| SyncError::Malformed(format!("http {status}: no DomainConfigs")))?;
        // No aliauth entry: the domain has URL authentication off.
        let Some(cfg) = configs
            .domain_config
            .iter()
            .find(|c| c.function_name == FUNCTION)
        else {
            return Ok(SyncedAuth::Disabled);
        };
        let auth_type = match cfg.arg("auth_type") {
            Some("no_auth") => return Ok(SyncedAuth::Disabled),
            Some("type_a") => AuthType::A,
            Some("type_b") => AuthType::B,
            Some("type_c") => AuthType::C,
            Some(_) => {
                // The value is not quoted: an answer's text may be anything.
                return Err(SyncError::Malformed(format!(
                    "aliauth config {}: auth_type is none of no_auth, type_a, type_b, type_c",
                    cfg.id()
                )));
            }
            None => {
                return Err(SyncError::Malformed(format!(
                    "aliauth config {}: no auth_type",
                    cfg.id()
                )))
            }
        };
        let bad = |problems: Vec<Problem>| {
            let named: Vec<String> = problems
                .into_iter()
                .map(|p| p.under(vendor_field).to_string())
                .collect();
            SyncError::Malformed(format!("aliauth config {}: {}", cfg.id(), named.join("; ")))
        };
        // An empty ali_auth_delta is the console's "not set": the default.
        let auth_delta_secs = match cfg.arg("ali_auth_delta").map(str::trim) {
            None | Some("") => None,
            Some(d) => Some(d.parse::<u64>().map_err(|_| {
                bad(vec![Problem::field(
                    "auth_delta_secs",
                    "is not whole seconds",
                )])
            })?),
        };
        // Alibaba Cloud's aliauth has no parameter names or C query form: the
        // defaults apply, and every rule is the settings' own.
        let verifier = Settings {
            auth_type,
            auth_delta_secs,
            c_form: None,
            param: None,
            hash_param: None,
            time_param: None,
        }
        .build(common)
        .map_err(bad)?;
        let primary = cfg.arg("auth_key1").unwrap_or_default();
        if primary.is_empty() {
            return Err(SyncError::Malformed(format!(
                "aliauth config {}: auth enabled but no auth_key1",
                cfg.id()
            )));
        }
        let keys: Vec<Secret> = [Some(primary), cfg.arg("auth_key2")]
            .into_iter()
            .flatten()
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        Ok(SyncedAuth::Enabled {
            verifier: Arc::new(verifier),
            keys: KeySet::new(keys),
        })
    }
}

/// The `aliauth` argument behind a [`Settings`] field, for messages.
fn vendor_field(field: &str) -> String {
    let arg = match field {
        "auth_type" => "auth_type",
        "auth_delta_secs" => "ali_auth_delta",
        "key" => "auth_key1",
        "backup_key" => "auth_key2",
        // Fields aliauth does not have (parameter names, c_form).
        other => other,
    };
    format!("aliauth.{arg}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Decision, DenyReason, RequestView, Verifier};

    #[test]
    fn rpc_signature_matches_the_documented_vector() {
        // Official doc: DescribeRegions with AccessKeyId testid, secret testsecret.
        let params = [
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ];
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26"
        );
        assert_eq!(
            rpc_signature("GET", &params, &Secret::new("testsecret")),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn pe_is_rfc3986_with_uppercase_hex() {
        assert_eq!(pe("a b"), "a%20b");
        assert_eq!(pe("a*b"), "a%2Ab");
        assert_eq!(pe("a~b"), "a~b");
        assert_eq!(pe("/"), "%2F");
        assert_eq!(pe("a+b=c&d"), "a%2Bb%3Dc%26d");
        assert_eq!(pe("-_.AZaz09"), "-_.AZaz09");
        assert_eq!(pe("直播"), "%E7%9B%B4%E6%92%AD");
        assert_eq!(pe("é"), "%C3%A9");
        assert_eq!(pe("%"), "%25");
        assert_eq!(pe(""), "");
    }

    fn api(product: Product) -> AliyunApi {
        AliyunApi {
            product,
            access_key_id: Secret::new("testid"),
            access_key_secret: Secret::new("testsecret"),
            endpoint: Uri::from_static(product.default_endpoint()),
        }
    }

    const C: Common = Common { clock_skew_secs: 0 };

    #[test]
    fn request_is_a_signed_get_with_the_live_action() {
        let req = api(Product::Live)
            .request("play.example.com", 1_456_231_584)
            .unwrap();
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(req.uri().host(), Some("live.aliyuncs.com"));
        assert_eq!(req.uri().path(), "/");
        let q = req.uri().query().unwrap();
        for p in [
            "Action=DescribeLiveDomainConfigs",
            "Version=2016-11-01",
            "DomainName=play.example.com",
            "FunctionNames=aliauth",
            "Format=JSON",
            "AccessKeyId=testid",
            "SignatureMethod=HMAC-SHA1",
            "SignatureVersion=1.0",
            "Timestamp=2016-02-23T12%3A46%3A24Z",
        ] {
            assert!(q.split('&').any(|x| x == p), "{p} missing from {q}");
        }
        assert!(q.contains("&Signature="));
        assert!(!q.contains("testsecret"));
        // A nonce per request.
        let again = api(Product::Live)
            .request("play.example.com", 1_456_231_584)
            .unwrap();
        assert_ne!(req.uri(), again.uri());
    }

    #[test]
    fn vod_uses_its_own_action_version_and_endpoint() {
        let req = api(Product::Vod).request("vod.example.com", 0).unwrap();
        assert_eq!(req.uri().host(), Some("vod.cn-shanghai.aliyuncs.com"));
        let q = req.uri().query().unwrap();
        assert!(q.contains("Action=DescribeVodDomainConfigs"));
        assert!(q.contains("Version=2017-03-21"));
        assert_eq!(api(Product::Vod).kind(), "aliyun_vod");
    }

    #[test]
    fn signed_query_signs_exactly_what_it_sends() {
        let a = api(Product::Live);
        let q = a.signed_query("a b*~.example.com", 1_456_231_584, "n-1");
        let (rest, sig) = q.rsplit_once("&Signature=").unwrap();
        assert!(rest.contains("DomainName=a%20b%2A~.example.com"));
        let params = [
            ("Action", "DescribeLiveDomainConfigs"),
            ("Version", "2016-11-01"),
            ("DomainName", "a b*~.example.com"),
            ("FunctionNames", "aliauth"),
            ("Format", "JSON"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "n-1"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
        ];
        assert_eq!(rest, canonical_query(&params));
        assert_eq!(
            sig,
            pe(&rpc_signature("GET", &params, &Secret::new("testsecret")))
        );
    }

    fn answer(config_id: &str, args: &[(&str, &str)]) -> Vec<u8> {
        let args: Vec<_> = args
            .iter()
            .map(|(n, v)| serde_json::json!({"ArgName": n, "ArgValue": v}))
            .collect();
        format!(
            r#"{{"RequestId":"F4C3A8B0","DomainConfigs":{{"DomainConfig":[{{"FunctionName":"aliauth","ConfigId":{config_id},"Status":"success","FunctionArgs":{{"FunctionArg":{}}}}}]}}}}"#,
            serde_json::Value::Array(args)
        )
        .into_bytes()
    }

    fn enabled(body: &[u8]) -> (Arc<dyn Verifier>, KeySet) {
        match api(Product::Live).parse("d", StatusCode::OK, body, C) {
            Ok(SyncedAuth::Enabled { verifier, keys }) => (verifier, keys),
            other => panic!("{other:?}"),
        }
    }

    fn view<'a>(path: &'a str, query: &'a str) -> RequestView<'a> {
        RequestView {
            host: "d",
            path,
            query: Some(query),
            client_ip: None,
            headers: None,
        }
    }

    #[test]
    fn type_a_answer_gives_an_auth_key_verifier_with_both_keys() {
        let body = answer(
            "5003576",
            &[
                ("auth_type", "type_a"),
                ("auth_key1", "aliyunliveexp1234"),
                ("auth_key2", "backup"),
                ("ali_auth_delta", "600"),
            ],
        );
        let (v, keys) = enabled(&body);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.primary().unwrap().expose(), "aliyunliveexp1234");
        assert_eq!(v.scheme(), "aliyun");
        assert_eq!(v.auth_params(), ["auth_key"]);
        // The documented type A vector verifies, with ali_auth_delta applied.
        let q = "auth_key=1622194197-0-0-5552ff52b5e4e20387c6dc18afce206b";
        let at = |now| v.verify(&view("/video/standard", q), &keys, now).decision;
        assert_eq!(at(1_622_194_197 + 600), Decision::Allow);
        assert_eq!(at(1_622_194_197 + 601), Decision::Deny(DenyReason::Expired));
    }

    #[test]
    fn type_b_and_c_answers_carry_auth_in_the_path() {
        let h = "0123456789abcdef0123456789abcdef";
        for (t, prefix) in [
            ("type_b", format!("/201508150800/{h}")),
            ("type_c", format!("/{h}/55CE8100")),
        ] {
            let rest = "/4/44/x.mp3";
            let body = answer("\"5003577\"", &[("auth_type", t), ("auth_key1", "k")]);
            let (v, keys) = enabled(&body);
            assert_eq!(keys.len(), 1, "{t}: an absent auth_key2 is no key");
            assert!(v.auth_params().is_empty(), "{t}");
            assert_eq!(v.origin_path(&format!("{prefix}{rest}")), rest, "{t}");
            // Sign and verify through the verifier: ali_auth_delta defaults to 1800.
            let signed = v.sign(
                "d",
                rest,
                None,
                keys.primary().unwrap(),
                1_439_596_800 + 1800,
            );
            let signed = signed.unwrap();
            let ok = v.verify(&view(&signed.path, ""), &keys, 1_439_596_800 + 1800);
            assert_eq!(ok.decision, Decision::Allow, "{t}");
            let late = v.verify(&view(&signed.path, ""), &keys, 1_439_596_800 + 1801);
            assert_eq!(late.decision, Decision::Deny(DenyReason::Expired), "{t}");
        }
    }

    #[test]
    fn config_id_may_be_a_number_or_a_string() {
        for id in ["5003576", "\"5003576\""] {
            let body = answer(id, &[("auth_type", "type_a"), ("auth_key1", "k")]);
            assert!(matches!(
                api(Product::Live).parse("d", StatusCode::OK, &body, C),
                Ok(SyncedAuth::Enabled { .. })
            ));
        }
        let missing = br#"{"RequestId":"r","DomainConfigs":{"DomainConfig":[{"FunctionName":"aliauth","FunctionArgs":{"FunctionArg":[{"ArgName":"auth_type","ArgValue":"type_a"},{"ArgName":"auth_key1","ArgValue":"k"}]}}]}}"#;
        assert!(matches!(
            api(Product::Live).parse("d", StatusCode::OK, missing, C),
            Ok(SyncedAuth::Enabled { .. })
        ));
    }

    #[test]
    fn no_auth_or_no_aliauth_config_is_disabled() {
        let off = answer(
            "1",
            &[
                ("auth_type", "no_auth"),
                ("auth_key1", "k"),
                ("auth_key2", ""),
            ],
        );
        for body in [
            off,
            br#"{"RequestId":"r","DomainConfigs":{"DomainConfig":[]}}"#.to_vec(),
            br#"{"RequestId":"r","DomainConfigs":{}}"#.to_vec(),
            br#"{"RequestId":"r","DomainConfigs":{"DomainConfig":[{"FunctionName":"referer_white_list_set","ConfigId":2,"FunctionArgs":{"FunctionArg":[]}}]}}"#.to_vec(),
        ] {
            assert!(
                matches!(
                    api(Product::Live).parse("d", StatusCode::OK, &body, C),
                    Ok(SyncedAuth::Disabled)
                ),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn error_envelopes_are_vendor_errors() {
        let body = br#"{"RequestId":"7AE72C75","HostId":"live.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation.","Recommend":"https://api.aliyun.com/troubleshoot"}"#;
        match api(Product::Live).parse("d", StatusCode::BAD_REQUEST, body, C) {
            Err(SyncError::Vendor {
                status,
                code,
                message,
            }) => {
                assert_eq!(status, 400);
                assert_eq!(code, "SignatureDoesNotMatch");
                assert!(message.starts_with("Specified signature"));
            }
            other => panic!("{other:?}"),
        }
        let unavailable = br#"{"RequestId":"r","HostId":"live.aliyuncs.com","Code":"ServiceUnavailable","Message":"The request has failed due to a temporary failure of the server."}"#;
        assert!(matches!(
            api(Product::Live).parse("d", StatusCode::SERVICE_UNAVAILABLE, unavailable, C),
            Err(SyncError::Vendor { status: 503, .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_and_never_quotes_a_key() {
        let cases: [(StatusCode, &[u8]); 8] = [
            (StatusCode::OK, b"<html>"),
            (StatusCode::OK, b"{}"),
            (StatusCode::OK, b"{\"Code\":\"X\",\"Message\":\"y\"}"),
            (StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            (StatusCode::INTERNAL_SERVER_ERROR, b"{}"),
            (
                StatusCode::OK,
                br#"{"DomainConfigs":{"DomainConfig":[{"FunctionName":"aliauth","FunctionArgs":{"FunctionArg":[{"ArgName":"auth_type","ArgValue":"type_a"},{"ArgName":"auth_key1","ArgValue":918273645}]}}]}}"#,
            ),
            (
                StatusCode::OK,
                br#"{"DomainConfigs":{"DomainConfig":[{"FunctionName":"aliauth","FunctionArgs":{"FunctionArg":[{"ArgName":"auth_type","ArgValue":"type_z"},{"ArgName":"auth_key1","ArgValue":"918273645"}]}}]}}"#,
            ),
            (
                StatusCode::OK,
                br#"{"DomainConfigs":{"DomainConfig":[{"FunctionName":"aliauth","FunctionArgs":{"FunctionArg":[{"ArgName":"auth_type","ArgValue":"type_a"},{"ArgName":"auth_key2","ArgValue":"918273645"}]}}]}}"#,
            ),
        ];
        for (status, body) in cases {
            match api(Product::Live).parse("d", status, body, C) {
                Err(e @ SyncError::Malformed(_)) => {
                    assert!(!e.to_string().contains("918273645"), "{e}");
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let bad_delta = answer(
            "1",
            &[
                ("auth_type", "type_a"),
                ("auth_key1", "k"),
                ("ali_auth_delta", "soon"),
            ],
        );
        match api(Product::Live).parse("d", StatusCode::OK, &bad_delta, C) {
            Err(SyncError::Malformed(m)) => assert_eq!(
                m,
                "aliauth config 1: aliauth.ali_auth_delta: is not whole seconds"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_rules_apply_to_answers_under_the_vendor_field_names() {
        // The same rule as `auth_delta_secs` in the config file, named as
        // the vendor names it.
        let long = answer(
            "7",
            &[
                ("auth_type", "type_c"),
                ("auth_key1", "k"),
                ("ali_auth_delta", "31536001"),
            ],
        );
        match api(Product::Vod).parse("d", StatusCode::OK, &long, C) {
            Err(SyncError::Malformed(m)) => {
                assert!(
                    m.starts_with("aliauth config 7: aliauth.ali_auth_delta: is more than"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        let year = answer(
            "7",
            &[
                ("auth_type", "type_c"),
                ("auth_key1", "k"),
                ("ali_auth_delta", "31536000"),
            ],
        );
        enabled(&year);
        assert_eq!(vendor_field("auth_type"), "aliauth.auth_type");
    }
}
