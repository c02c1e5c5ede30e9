//! `[[vendor]]`: vendor accounts whose Describe APIs supply keys.

use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use super::*;
use crate::keys::Secret;

/// `[[vendor]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVendor {
    /// Account name, referenced by `site.vendor`.
    pub name: String,
    /// `tencent`, `volcengine`, `wangsu`, `aliyun` or `aliyun_vod`.
    pub kind: VendorKind,
    /// API version, for kinds that offer a choice (volcengine: `2023-01-01`,
    /// the default, or `2020-08-01`).
    pub api_version: Option<String>,
    /// SecretId / AccessKey / username. `${ENV}` allowed.
    pub access_key: String,
    /// SecretKey / api key. `${ENV}` allowed.
    pub secret_key: String,
    /// API endpoint override (tests, private endpoints).
    pub endpoint: Option<String>,
    /// Seconds between syncs. Default 300.
    pub sync_interval_secs: Option<u64>,
    /// Seconds one API request may take. Default 10.
    pub request_timeout_secs: Option<u64>,
    /// The longest a URL signed with this account's keys stays valid, from
    /// signing to its last accepted second (vendor grace such as AuthDelta
    /// included). Key rotation retires an old key only this long after the
    /// last replica stopped signing with it. Default 86400.
    pub max_url_lifetime_secs: Option<u64>,
}

/// Vendor API kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorKind {
    /// Tencent Cloud `DescribeLivePlayAuthKey`.
    Tencent,
    /// Volcengine Live `DescribeAuth`.
    Volcengine,
    /// Wangsu / ChinaNetCenter timestamp anti-hotlinking config
    /// (`/api/config/live-timestampvisitcontrol/{domain}`).
    Wangsu,
    /// Alibaba Cloud ApsaraVideo Live `DescribeLiveDomainConfigs` (aliauth).
    Aliyun,
    /// Alibaba Cloud ApsaraVideo VOD `DescribeVodDomainConfigs` (aliauth).
    AliyunVod,
}

impl VendorKind {
    /// The scheme its keys are for.
    pub fn scheme(self) -> &'static str {
        match self {
            VendorKind::Tencent => "tencent",
            VendorKind::Wangsu => "wangsu",
            VendorKind::Volcengine => "volcengine",
            VendorKind::Aliyun | VendorKind::AliyunVod => "aliyun",
        }
    }
}

/// The Volcengine `DescribeAuth` version used unless `api_version` says otherwise.
pub const VOLCENGINE_DEFAULT_API_VERSION: &str = "2023-01-01";
/// Every Volcengine `api_version` accepted (both have the same field names).
pub const VOLCENGINE_API_VERSIONS: &[&str] = &["2023-01-01", "2020-08-01"];

/// Default seconds between vendor syncs.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 300;
/// Default seconds a vendor API request may take.
pub const DEFAULT_VENDOR_TIMEOUT_SECS: u64 = 10;
/// Default longest lifetime of a URL signed with a vendor account's keys
/// (one day): how long key rotation keeps an old key after promoting a new one.
pub const DEFAULT_MAX_URL_LIFETIME_SECS: u64 = 86_400;
/// Largest `max_url_lifetime_secs` accepted (Volcengine's longest
/// `ValidDuration`, 30 days).
pub const MAX_URL_LIFETIME_LIMIT_SECS: u64 = 2_592_000;

/// A validated vendor account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorConfig {
    /// Account name.
    pub name: String,
    /// API kind.
    pub kind: VendorKind,
    /// Key id.
    pub access_key: Secret,
    /// Key secret.
    pub secret_key: Secret,
    /// Endpoint override.
    pub endpoint: Option<Uri>,
    /// Sync interval.
    pub sync_interval: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// The longest a URL signed with the account's keys stays valid
    /// (`max_url_lifetime_secs`).
    pub max_url_lifetime: Duration,
    /// API version, resolved to its default for kinds that have versions
    /// (volcengine); `None` for the others.
    pub api_version: Option<String>,
}

pub(super) fn validate_vendor(
    raw: &RawVendor,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Option<VendorConfig> {
    let before = ctx.problem_count();
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        ctx.problem(&format!("{path}.name"), "use 1 or more of A-Z a-z 0-9 - _");
    }
    let access_key = ctx.secret(&format!("{path}.access_key"), &raw.access_key);
    let secret_key = ctx.secret(&format!("{path}.secret_key"), &raw.secret_key);
    let endpoint = match &raw.endpoint {
        None => None,
        Some(e) => match e.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() =>
            {
                Some(u)
            }
            _ => {
                ctx.problem(
                    &format!("{path}.endpoint"),
                    "is not an http(s) URL".to_owned(),
                );
                None
            }
        },
    };
    let sync_interval = secs(
        ctx,
        &format!("{path}.sync_interval_secs"),
        raw.sync_interval_secs,
        DEFAULT_SYNC_INTERVAL_SECS,
        86_400,
    );
    let request_timeout = secs(
        ctx,
        &format!("{path}.request_timeout_secs"),
        raw.request_timeout_secs,
        DEFAULT_VENDOR_TIMEOUT_SECS,
        300,
    );
    let max_url_lifetime = secs(
        ctx,
        &format!("{path}.max_url_lifetime_secs"),
        raw.max_url_lifetime_secs,
        DEFAULT_MAX_URL_LIFETIME_SECS,
        MAX_URL_LIFETIME_LIMIT_SECS,
    );
    let api_version = match (raw.kind, raw.api_version.as_deref()) {
        (VendorKind::Volcengine, v) => {
            let v = v.unwrap_or(VOLCENGINE_DEFAULT_API_VERSION);
            if !VOLCENGINE_API_VERSIONS.contains(&v) {
                ctx.problem(
                    &format!("{path}.api_version"),
                    format!(
                        "is not a DescribeAuth version; use one of {VOLCENGINE_API_VERSIONS:?}"
                    ),
                );
            }
            Some(v.to_owned())
        }
        // Kinds with a single API version.
        (_, None) => None,
        (_, Some(_)) => {
            ctx.problem(
                &format!("{path}.api_version"),
                "only applies to kind = \"volcengine\"; remove it",
            );
            None
        }
    };
    if ctx.problem_count() > before {
        return None;
    }
    Some(VendorConfig {
        api_version,
        name: raw.name.clone(),
        kind: raw.kind,
        access_key: access_key?,
        secret_key: secret_key?,
        endpoint,
        sync_interval,
        request_timeout,
        max_url_lifetime,
    })
}
