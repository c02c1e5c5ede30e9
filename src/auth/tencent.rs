//! Tencent Cloud Live play authentication: `txSecret` / `txTime`.
//!
//! ```text
//! txSecret = lower_hex(MD5(KEY + StreamName + txTime))
//! ```
//! `StreamName` is the last path segment without app and extension
//! (`/live/test01.flv` → `test01`); `txTime` is the URL's expiry in hex unix
//! seconds and is hashed exactly as written. The URL is valid while
//! `now <= txTime + auth_delta`. Any of the site's keys (AuthKey, AuthBackKey)
//! may have signed it.

use std::borrow::Cow;

use serde::Deserialize;

use super::from_config;
use super::md5x2::{self, Message};
use super::{
    append_params, conclude_md5, hex16, lower_hex, param_pair, stream_name, Common, DenyReason,
    Derived, RequestView, SignError, Signed, TimeFormat, Verdict, Verifier, Window,
};
use crate::keys::{KeySet, Secret};
use crate::problems::{given_or, param_name_problems, Ctx, Problem};

/// Default name of the signature parameter.
pub const DEFAULT_SECRET_PARAM: &str = "txSecret";
/// Default name of the time parameter.
pub const DEFAULT_TIME_PARAM: &str = "txTime";

/// `[site.auth]` with `scheme = "tencent"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTencent {
    /// Primary key (Tencent's AuthKey). `${ENV_VAR}` allowed.
    pub key: String,
    /// Backup key (Tencent's AuthBackKey). `${ENV_VAR}` allowed.
    #[serde(default)]
    pub backup_key: Option<String>,
    /// Seconds a URL stays valid after its txTime (Tencent's AuthDelta). Default 0.
    #[serde(default)]
    pub auth_delta_secs: u64,
    /// How txTime is written: `hex` (Tencent's documented form, default) or `decimal`.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// Name of the signature parameter. Default `txSecret`.
    #[serde(default)]
    pub secret_param: Option<String>,
    /// Name of the time parameter. Default `txTime`.
    #[serde(default)]
    pub time_param: Option<String>,
}

impl RawTencent {
    /// The config reader: resolves the keys and defaults into [`Settings`],
    /// whose one constructor applies every rule; its problems are reported
    /// under `{path}.` + the field name.
    pub(super) fn build(
        &self,
        path: &str,
        common: Common,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Tencent, KeySet)> {
        let before = ctx.problem_count();
        let keys = ctx.primary_and_backup(path, &self.key, self.backup_key.as_deref());
        let settings = Settings {
            secret_param: given_or(self.secret_param.as_deref(), DEFAULT_SECRET_PARAM),
            time_param: given_or(self.time_param.as_deref(), DEFAULT_TIME_PARAM),
            auth_delta_secs: self.auth_delta_secs,
            time_format: self.time_format,
        };
        from_config(settings.build(common), keys, path, ctx, before)
    }
}

/// The scheme's settings, whether read from `[site.auth]` or from a vendor
/// answer (`sync::tencent`). Plain data: [`Settings::build`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Name of the signature parameter, e.g. [`DEFAULT_SECRET_PARAM`].
    pub secret_param: String,
    /// Name of the time parameter, e.g. [`DEFAULT_TIME_PARAM`].
    pub time_param: String,
    /// Seconds a URL stays valid after its txTime (AuthDelta).
    pub auth_delta_secs: u64,
    /// How txTime is written.
    pub time_format: TimeFormat,
}

impl Settings {
    /// The one constructor: applies every rule of the scheme and returns
    /// every problem, each named by its settings field (`secret_param`,
    /// `time_param`) for the caller to map to its own key path.
    pub fn build(self, common: Common) -> Result<Tencent, Vec<Problem>> {
        let problems = param_name_problems(&[
            ("secret_param", &self.secret_param),
            ("time_param", &self.time_param),
        ]);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Tencent {
            params: vec![self.secret_param, self.time_param],
            auth_delta_secs: self.auth_delta_secs,
            time_format: self.time_format,
            common,
        })
    }
}

/// The Tencent verifier for one site.
#[derive(Debug, Clone)]
pub struct Tencent {
    /// `[secret_param, time_param]`.
    params: Vec<String>,
    auth_delta_secs: u64,
    time_format: TimeFormat,
    common: Common,
}

impl Tencent {
    /// A verifier with default param names.
    pub fn new(auth_delta_secs: u64, time_format: TimeFormat, common: Common) -> Self {
        Tencent {
            params: vec![
                DEFAULT_SECRET_PARAM.to_owned(),
                DEFAULT_TIME_PARAM.to_owned(),
            ],
            auth_delta_secs,
            time_format,
            common,
        }
    }

    /// `MD5(KEY + StreamName + txTime)`.
    pub fn digest(key: &Secret, stream: &str, tx_time: &str) -> [u8; 16] {
        md5x2::digest_one(&Self::message(stream, tx_time), key)
    }

    /// `KEY + StreamName + txTime` under a key.
    fn message<'m>(stream: &'m str, tx_time: &'m str) -> impl Message + 'm {
        md5x2::key_then([stream, tx_time])
    }
}

impl Verifier for Tencent {
    fn scheme(&self) -> &'static str {
        "tencent"
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        let (secret, time) = match param_pair(req.query, &self.params[0], &self.params[1]) {
            Ok(pair) => pair,
            Err(reason) => return Verdict::deny(reason),
        };
        let stream = stream_name(req.path);
        let derived = Derived::from([
            ("stream", Cow::Borrowed(stream)),
            ("txTime", Cow::Borrowed(time)),
        ]);
        let expires_at = self
            .time_format
            .parse(time)
            .and_then(|t| t.checked_add(self.auth_delta_secs));
        let Some(expires_at) = expires_at else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        let Some(signature) = hex16(secret).filter(|_| !stream.is_empty()) else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        let window = Window {
            not_before: None,
            expires_at: Some(expires_at),
        };
        conclude_md5(
            derived,
            keys,
            window,
            now,
            self.common.clock_skew_secs,
            Self::message(stream, time),
            &signature,
        )
    }

    fn auth_params(&self) -> &[String] {
        &self.params
    }

    fn time_format(&self) -> Option<TimeFormat> {
        Some(self.time_format)
    }

    /// Tencent's API reports the keys and AuthDelta only: the site's own
    /// `[site.auth]` (when Tencent) names the params and the txTime format.
    fn named_like(&self, site: &dyn Verifier) -> Option<std::sync::Arc<dyn Verifier>> {
        let time_format = site.time_format()?;
        let params = site.auth_params();
        if site.scheme() != self.scheme()
            || params.len() != 2
            || (params == self.params.as_slice() && time_format == self.time_format)
        {
            return None;
        }
        Some(std::sync::Arc::new(Tencent {
            params: params.to_vec(),
            time_format,
            ..self.clone()
        }))
    }

    fn sign(
        &self,
        _host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        let stream = stream_name(path);
        if stream.is_empty() {
            return Err(SignError::BadPath("the path has no stream name".into()));
        }
        let tx_time = self
            .time_format
            .format(expires_at.saturating_sub(self.auth_delta_secs));
        let secret = lower_hex(&Self::digest(key, stream, &tx_time));
        Ok(Signed {
            path: path.to_owned(),
            query: append_params(
                query,
                &[(&self.params[0], &secret), (&self.params[1], &tx_time)],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Decision;

    const VECTOR_KEY: &str = "e12c46f2612d5106e2034781ab261ca3";

    fn verifier() -> Tencent {
        Tencent::new(0, TimeFormat::Hex, Common { clock_skew_secs: 0 })
    }

    fn keys(k: &[&str]) -> KeySet {
        KeySet::new(k.iter().map(|s| Secret::new(*s)).collect())
    }

    fn view<'a>(path: &'a str, query: &'a str) -> RequestView<'a> {
        RequestView {
            host: "play.example.com",
            path,
            query: Some(query),
            client_ip: None,
            headers: None,
        }
    }

    #[test]
    fn vendor_vector_matches() {
        // Official doc: key e12c…ca3, stream "test", txTime 5C271099.
        let d = Tencent::digest(&Secret::new(VECTOR_KEY), "test", "5C271099");
        assert_eq!(lower_hex(&d), "f85a2ab363fe4deaffef9754d79da6fe");
    }

    #[test]
    fn vendor_vector_url_is_allowed_until_its_time() {
        let v = verifier();
        let req = view(
            "/live/test.flv",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
        );
        let verdict = v.verify(&req, &keys(&[VECTOR_KEY]), 0x5C27_1099);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.expires_at, Some(0x5C27_1099));
        assert!(verdict.derived.contains(&("stream", Cow::Borrowed("test"))));
    }

    #[test]
    fn expiry_boundary_now_equal_allowed_plus_one_denied() {
        let v = Tencent::new(300, TimeFormat::Hex, Common { clock_skew_secs: 0 });
        let req = view(
            "/live/test.m3u8",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
        );
        let k = keys(&[VECTOR_KEY]);
        assert_eq!(
            v.verify(&req, &k, 0x5C27_1099 + 300).decision,
            Decision::Allow
        );
        assert_eq!(
            v.verify(&req, &k, 0x5C27_1099 + 301).decision,
            Decision::Deny(DenyReason::Expired)
        );
    }

    #[test]
    fn clock_skew_leeway_extends_the_window() {
        let v = Tencent::new(0, TimeFormat::Hex, Common { clock_skew_secs: 5 });
        let req = view(
            "/live/test.flv",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
        );
        let k = keys(&[VECTOR_KEY]);
        assert!(v.verify(&req, &k, 0x5C27_1099 + 5).is_allowed());
        assert!(!v.verify(&req, &k, 0x5C27_1099 + 6).is_allowed());
    }

    #[test]
    fn backup_key_is_accepted_during_rotation() {
        let v = verifier();
        let req = view(
            "/live/test.flv",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
        );
        let verdict = v.verify(&req, &keys(&["newprimary", VECTOR_KEY]), 0);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.matched_key, Some(1));
    }

    #[test]
    fn lowercase_tx_time_changes_the_hash() {
        // The hash covers txTime as written: the same instant in lowercase hex
        // is a different message, so the uppercase-signed secret fails.
        let v = verifier();
        let req = view(
            "/live/test.flv",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5c271099",
        );
        assert_eq!(
            v.verify(&req, &keys(&[VECTOR_KEY]), 0).decision,
            Decision::Deny(DenyReason::BadSignature)
        );
        // …and a URL signed over the lowercase form verifies.
        let s = lower_hex(&Tencent::digest(
            &Secret::new(VECTOR_KEY),
            "test",
            "5c271099",
        ));
        let q = format!("txSecret={s}&txTime=5c271099");
        assert!(v
            .verify(&view("/live/test.flv", &q), &keys(&[VECTOR_KEY]), 0)
            .is_allowed());
    }

    #[test]
    fn app_or_extension_in_the_hash_fails() {
        let v = verifier();
        let k = Secret::new(VECTOR_KEY);
        for wrong in ["live/test", "/live/test", "test.flv", "live/test.flv"] {
            let s = lower_hex(&Tencent::digest(&k, wrong, "5C271099"));
            let q = format!("txSecret={s}&txTime=5C271099");
            assert_eq!(
                v.verify(&view("/live/test.flv", &q), &keys(&[VECTOR_KEY]), 0)
                    .decision,
                Decision::Deny(DenyReason::BadSignature),
                "signing over {wrong:?} must not verify"
            );
        }
    }

    #[test]
    fn uppercase_signature_is_accepted() {
        let v = verifier();
        let req = view(
            "/live/test.flv",
            "txSecret=F85A2AB363FE4DEAFFEF9754D79DA6FE&txTime=5C271099",
        );
        assert!(v.verify(&req, &keys(&[VECTOR_KEY]), 0).is_allowed());
    }

    #[test]
    fn denial_reasons() {
        let v = verifier();
        let k = keys(&[VECTOR_KEY]);
        let cases = [
            ("", DenyReason::MissingToken),
            ("foo=bar", DenyReason::MissingToken),
            ("txTime=5C271099", DenyReason::MalformedToken),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=zz5a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6f&txTime=5C271099",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C27109G",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=1FFFFFFFFFFFFFFFF",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099&txTime=5C271099",
                DenyReason::MalformedToken,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C27109A",
                DenyReason::BadSignature,
            ),
            (
                "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
                DenyReason::Expired,
            ),
        ];
        for (q, reason) in cases {
            let mut now = 0;
            if reason == DenyReason::Expired {
                now = 0x5C27_1099 + 1;
            }
            assert_eq!(
                v.verify(&view("/live/test.flv", q), &k, now).decision,
                Decision::Deny(reason),
                "query {q:?}"
            );
        }
        let empty = KeySet::default();
        let req = view(
            "/live/test.flv",
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
        );
        assert_eq!(
            v.verify(&req, &empty, 0).decision,
            Decision::Deny(DenyReason::NoKeys)
        );
    }

    #[test]
    fn decimal_time_format_when_configured() {
        let v = Tencent::new(0, TimeFormat::Decimal, Common { clock_skew_secs: 0 });
        let k = Secret::new("k");
        let signed = v
            .sign("h", "/live/s.flv", Some("a=1"), &k, 1_700_000_000)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(signed.query.starts_with("a=1&txSecret="));
        assert!(signed.query.ends_with("&txTime=1700000000"));
        let req = view("/live/s.flv", &signed.query);
        assert!(v
            .verify(&req, &KeySet::new(vec![k.clone()]), 1_700_000_000)
            .is_allowed());
        // The same URL to a site left at hex: a decimal txTime read as hex
        // would expire in the year 4865; it is no hex time at all.
        let hex = verifier().verify(&req, &KeySet::new(vec![k]), 1_800_000_000);
        assert_eq!(hex.decision, Decision::Deny(DenyReason::MalformedToken));
    }

    /// `MD5(KEY + StreamName + txTime)` has nothing between name and time:
    /// the last digit of a stream name moved into a decimal txTime keeps
    /// the hash. Such times are refused, so an expired URL for `cam1`
    /// opens neither `cam` for centuries, nor (`cam0`) another stream.
    #[test]
    fn a_digit_moved_from_the_stream_name_into_the_time_is_refused() {
        let v = Tencent::new(0, TimeFormat::Decimal, Common { clock_skew_secs: 0 });
        let k = KeySet::new(vec![Secret::new("k")]);
        for (signed_stream, shifted_stream, digit) in [("cam1", "cam", "1"), ("cam0", "cam", "0")] {
            let path = format!("/live/{signed_stream}.flv");
            let signed = v
                .sign("h", &path, None, &Secret::new("k"), 1_700_000_000)
                .unwrap_or_else(|e| unreachable!("{e}"));
            let secret = signed
                .query
                .split('&')
                .find_map(|p| p.strip_prefix("txSecret="))
                .unwrap_or_default();
            let shifted = format!("txSecret={secret}&txTime={digit}1700000000");
            let shifted_path = format!("/live/{shifted_stream}.flv");
            let verdict = v.verify(&view(&shifted_path, &shifted), &k, 1_700_000_100);
            assert_eq!(
                verdict.decision,
                Decision::Deny(DenyReason::MalformedToken),
                "{signed_stream}"
            );
        }
    }

    #[test]
    fn sign_produces_the_vendor_vector() {
        let v = verifier();
        let signed = v
            .sign(
                "h",
                "/live/test.flv",
                None,
                &Secret::new(VECTOR_KEY),
                0x5C27_1099,
            )
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            signed.query,
            "txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
        );
        assert_eq!(signed.path, "/live/test.flv");
    }
}
