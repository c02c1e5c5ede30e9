//! Volcengine Live play authentication: `volcSecret` / `volcTime`.
//!
//! ```text
//! md5:        volcSecret = lower_hex(MD5("/" + AppName + "/" + StreamName + SecretKey + volcTime))
//! md5_custom: volcSecret = lower_hex(MD5(concat of EncryptField values in list order))
//! ```
//! `volcTime` is the URL's time in `timestamp_base` (default 10), hashed as
//! written; the URL is valid while `now <= volcTime + valid_duration_secs`.
//! The path is `/AppName/StreamName.ext`; StreamName excludes the extension.

use std::borrow::Cow;

use serde::Deserialize;

use super::md5x2::{self, Message};
use super::{
    append_params, conclude_md5, from_config, hex16, lower_hex, query_params, stream_name, Common,
    DenyReason, Derived, RequestView, SignError, Signed, Verdict, Verifier, Window,
};
use crate::keys::{KeySet, Secret};
use crate::problems::{given_or, param_name_problems, Ctx, Problem};

/// Default signature param (AuthField can rename it).
pub const DEFAULT_SECRET_PARAM: &str = "volcSecret";
/// Default time param.
pub const DEFAULT_TIME_PARAM: &str = "volcTime";
/// Default radix of volcTime (TimeStampBase).
pub const DEFAULT_TIMESTAMP_BASE: u32 = 10;

/// How far ahead of now a binary (`timestamp_base = 2`) volcTime may be.
/// Why: a binary time of today has 31 digits, so with `md5_custom` fields a
/// stream name's trailing `1` moved into the time still fits in `u32`
/// (2^31 + t, the year 2094) and would revive an expired URL. Such a shift
/// of any time after 2004 (31 digits) less than 34 years old lands more
/// than 2^30 s ahead; honest URLs expire sooner.
const BINARY_TIME_HORIZON_SECS: u64 = 1 << 30;

/// Default ValidDuration: the 2020 DescribeAuth API's default (7 days).
/// Set 0 when volcTime should be the hard expiry.
pub const DEFAULT_VALID_DURATION_SECS: u64 = 604_800;
/// Most keys per scope (AuthDetailList holds up to 100).
pub const MAX_KEYS: usize = 100;

/// Signing algorithm (EncryptionAlgorithm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `/App/Stream` + key + time.
    #[default]
    Md5,
    /// The EncryptField list, in order.
    Md5Custom,
}

/// One EncryptField.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The secret key.
    Key,
    /// volcTime as written.
    Time,
    /// The play domain (lowercase, no port).
    Domain,
    /// The app segment.
    App,
    /// The stream name.
    Stream,
}

impl Field {
    /// An EncryptField name as the vendor writes it (`key`, `volcTime`,
    /// `Domain`, `AppName`/`App`, `StreamName`/`Stream`).
    pub fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "key" => Field::Key,
            "volcTime" => Field::Time,
            "Domain" => Field::Domain,
            "AppName" | "App" => Field::App,
            "StreamName" | "Stream" => Field::Stream,
            _ => return None,
        })
    }

    /// An EncryptField list, in order. Each unknown name is a problem named
    /// `encrypt_fields[i]` and is left out of the list.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> (Vec<Field>, Vec<Problem>) {
        let mut fields = Vec::new();
        let mut problems = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            match Field::parse(name) {
                Some(f) => fields.push(f),
                None => problems.push(Problem::field(
                    &format!("{FIELDS}[{i}]"),
                    "is not an EncryptField; use key, volcTime, Domain, AppName or StreamName"
                        .to_owned(),
                )),
            }
        }
        (fields, problems)
    }
}

/// `[site.auth]` with `scheme = "volcengine"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVolcengine {
    /// Every valid key (AuthDetailList SecretKey values), primary first. `${ENV}` allowed.
    pub keys: Vec<String>,
    /// `md5` (default) or `md5_custom`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// For `md5_custom`: the EncryptField list (`key`, `volcTime`, `Domain`, `AppName`, `StreamName`).
    #[serde(default)]
    pub encrypt_fields: Vec<String>,
    /// AuthField rename of `volcSecret`.
    pub secret_param: Option<String>,
    /// AuthField rename of `volcTime`.
    pub time_param: Option<String>,
    /// TimeStampBase: 2, 8, 10 (default) or 16.
    pub timestamp_base: Option<u32>,
    /// ValidDuration added to volcTime. Default [`DEFAULT_VALID_DURATION_SECS`].
    pub valid_duration_secs: Option<u64>,
    /// Only this AppName is accepted (scope), if set.
    pub app: Option<String>,
}

impl RawVolcengine {
    /// The config reader: resolves the keys and defaults into [`Settings`],
    /// whose one constructor applies every rule; its problems are reported
    /// under `{path}.` + the field name.
    pub(super) fn build(
        &self,
        path: &str,
        common: Common,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Volcengine, KeySet)> {
        let before = ctx.problem_count();
        if self.keys.is_empty() || self.keys.len() > MAX_KEYS {
            ctx.problem(
                &format!("{path}.keys"),
                format!("give 1 to {MAX_KEYS} keys"),
            );
        }
        let keys: Vec<Secret> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| ctx.secret(&format!("{path}.keys[{i}]"), k))
            .collect();
        let (fields, field_problems) = Field::parse_list(&self.encrypt_fields);
        let settings = Settings {
            algorithm: self.algorithm,
            fields,
            secret_param: given_or(self.secret_param.as_deref(), DEFAULT_SECRET_PARAM),
            time_param: given_or(self.time_param.as_deref(), DEFAULT_TIME_PARAM),
            timestamp_base: self.timestamp_base.unwrap_or(DEFAULT_TIMESTAMP_BASE),
            valid_duration_secs: self
                .valid_duration_secs
                .unwrap_or(DEFAULT_VALID_DURATION_SECS),
            app: self.app.clone(),
        };
        ctx.extend(field_problems, |f| format!("{path}.{f}"));
        if settings.fields.windows(2).any(|w| {
            matches!(
                (w[0], w[1]),
                (Field::App, Field::Stream) | (Field::Stream, Field::App)
            )
        }) {
            ctx.warn(
                &format!("{path}.{FIELDS}"),
                "AppName and StreamName are next to each other: their concatenation does not say where one ends, so a URL signed for /live/cam.flv also opens /livec/am.flv (as at the vendor's edge); put key or volcTime between them",
            );
        }
        from_config(settings.build(common), keys, path, ctx, before)
    }
}

/// The Volcengine verifier for one site.
#[derive(Debug, Clone)]
pub struct Volcengine {
    params: Vec<String>,
    algorithm: Algorithm,
    fields: Vec<Field>,
    base: u32,
    valid_duration_secs: u64,
    app: Option<String>,
    common: Common,
}

/// Problem name of [`Settings::fields`]: the config key `encrypt_fields`,
/// so that the config maps every problem by prefixing its path alone.
const FIELDS: &str = "encrypt_fields";
/// Longest [`Settings::valid_duration_secs`]: 30 days, the documented maximum.
pub const MAX_VALID_DURATION_SECS: u64 = 2_592_000;

/// One parameter set of the scheme, whether read from `[site.auth]` or from
/// a vendor answer (key sync builds one [`Volcengine`] per distinct value,
/// see `sync::volcengine`). Plain data: [`Settings::build`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// EncryptionAlgorithm.
    pub algorithm: Algorithm,
    /// EncryptField, for `md5_custom` (must be empty for `md5`). Problems
    /// name it `encrypt_fields`.
    pub fields: Vec<Field>,
    /// AuthField rename of `volcSecret`.
    pub secret_param: String,
    /// AuthField rename of `volcTime`.
    pub time_param: String,
    /// TimeStampBase: 2, 8, 10 or 16.
    pub timestamp_base: u32,
    /// ValidDuration added to volcTime, at most [`MAX_VALID_DURATION_SECS`].
    pub valid_duration_secs: u64,
    /// Only this AppName is accepted, if set.
    pub app: Option<String>,
}

impl Settings {
    /// The one constructor: applies every rule of the scheme and returns
    /// every problem, each named by its settings field (`timestamp_base`,
    /// `encrypt_fields`, `time_param`, …) for the caller to map to its own
    /// key path. Messages quote no key (settings hold none).
    pub fn build(self, common: Common) -> Result<Volcengine, Vec<Problem>> {
        let mut problems = param_name_problems(&[
            ("secret_param", &self.secret_param),
            ("time_param", &self.time_param),
        ]);
        match self.algorithm {
            Algorithm::Md5 if !self.fields.is_empty() => {
                problems.push(Problem::field(
                    FIELDS,
                    "only applies to the md5_custom algorithm",
                ));
            }
            Algorithm::Md5Custom
                if !(self.fields.contains(&Field::Key) && self.fields.contains(&Field::Time)) =>
            {
                // Why: without the key anyone can sign; without the time anyone can extend a URL.
                problems.push(Problem::field(FIELDS, "must include both key and volcTime"));
            }
            _ => {}
        }
        if ![2, 8, 10, 16].contains(&self.timestamp_base) {
            problems.push(Problem::field("timestamp_base", "must be 2, 8, 10 or 16"));
        }
        if self.valid_duration_secs > MAX_VALID_DURATION_SECS {
            problems.push(Problem::field(
                "valid_duration_secs",
                format!("must be at most {MAX_VALID_DURATION_SECS} (30 days)"),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Volcengine {
            params: vec![self.secret_param, self.time_param],
            algorithm: self.algorithm,
            fields: self.fields,
            base: self.timestamp_base,
            valid_duration_secs: self.valid_duration_secs,
            app: self.app,
            common,
        })
    }
}

/// The parts of a request the signature covers.
struct Parts<'a> {
    domain: &'a str,
    app: &'a str,
    stream: &'a str,
    time: &'a str,
}

impl Volcengine {
    /// A `md5` verifier with default params.
    pub fn md5(base: u32, valid_duration_secs: u64, common: Common) -> Self {
        Volcengine {
            params: vec![
                DEFAULT_SECRET_PARAM.to_owned(),
                DEFAULT_TIME_PARAM.to_owned(),
            ],
            algorithm: Algorithm::Md5,
            fields: Vec::new(),
            base,
            valid_duration_secs,
            app: None,
            common,
        }
    }

    /// [`Settings::build`] with its problems joined into one message (the
    /// shape callers had before the settings constructor existed).
    pub fn from_parts(s: Settings, common: Common) -> Result<Self, String> {
        s.build(common).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The hashed message of `p` under a key, written to a sink.
    fn message<'m>(&'m self, p: &'m Parts<'_>) -> impl Message + 'm {
        move |key: &Secret, out: &mut dyn FnMut(&[u8])| match self.algorithm {
            Algorithm::Md5 => {
                for part in ["/", p.app, "/", p.stream, key.expose(), p.time] {
                    out(part.as_bytes());
                }
            }
            Algorithm::Md5Custom => {
                for f in &self.fields {
                    out(match f {
                        Field::Key => key.expose().as_bytes(),
                        Field::Time => p.time.as_bytes(),
                        Field::Domain => p.domain.as_bytes(),
                        Field::App => p.app.as_bytes(),
                        Field::Stream => p.stream.as_bytes(),
                    });
                }
            }
        }
    }

    /// Digits of the base only (`from_str_radix` alone takes a leading
    /// `+`), no leading zero, and no later than 2106 (`u32` seconds): a
    /// decimal time read in base 16 would otherwise be an expiry thousands
    /// of years away, and with `md5_custom` fields a stream name's last
    /// digit could move into the time (see [`super::parse_dec_time`]).
    fn parse_time(&self, s: &str) -> Option<u64> {
        if s.is_empty()
            || s.len() > 64
            || (s.len() > 1 && s.starts_with('0'))
            || !s.chars().all(|c| c.is_digit(self.base))
        {
            return None;
        }
        u64::from_str_radix(s, self.base)
            .ok()
            .filter(|&t| t <= super::MAX_URL_TIME)
    }

    fn format_time(&self, t: u64) -> String {
        match self.base {
            2 => format!("{t:b}"),
            8 => format!("{t:o}"),
            16 => format!("{t:x}"),
            _ => t.to_string(),
        }
    }

    /// `(app, stream)` of `/app/stream.ext`; `None` for other shapes.
    fn app_stream(path: &str) -> Option<(&str, &str)> {
        // Exactly two segments, both non-empty.
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (app, last) = rest.split_once('/')?;
        if app.is_empty() || last.is_empty() || last.contains('/') {
            return None;
        }
        Some((app, stream_name(last)))
    }
}

impl Verifier for Volcengine {
    fn scheme(&self) -> &'static str {
        "volcengine"
    }

    /// Push URLs write volcTime in decimal whatever the play side's
    /// TimeStampBase.
    fn for_publishers(&self) -> Option<std::sync::Arc<dyn Verifier>> {
        (self.base != DEFAULT_TIMESTAMP_BASE).then(|| {
            std::sync::Arc::new(Volcengine {
                base: DEFAULT_TIMESTAMP_BASE,
                ..self.clone()
            }) as std::sync::Arc<dyn Verifier>
        })
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        let [Ok(secret), Ok(time)] = query_params(req.query, [&self.params[0], &self.params[1]])
        else {
            return Verdict::deny(DenyReason::MalformedToken);
        };
        let (secret, time) = match (secret, time) {
            (None, None) => return Verdict::deny(DenyReason::MissingToken),
            (Some(s), Some(t)) => (s, t),
            _ => return Verdict::deny(DenyReason::MalformedToken),
        };
        let Some((app, stream)) = Self::app_stream(req.path) else {
            return Verdict::deny(DenyReason::MalformedToken);
        };
        let derived = Derived::from([
            ("app", Cow::Borrowed(app)),
            ("stream", Cow::Borrowed(stream)),
            ("volcTime", Cow::Borrowed(time)),
        ]);
        let Some(expires_at) = self
            .parse_time(time)
            .filter(|&t| self.base != 2 || t <= now.saturating_add(BINARY_TIME_HORIZON_SECS))
            .and_then(|t| t.checked_add(self.valid_duration_secs))
        else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        let Some(signature) = hex16(secret).filter(|_| !stream.is_empty()) else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        if self.app.as_deref().is_some_and(|a| a != app) {
            // Out of the keys' scope: no key of this site may sign it.
            return Verdict::pending(DenyReason::BadSignature, derived);
        }
        let parts = Parts {
            domain: req.host,
            app,
            stream,
            time,
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
            self.message(&parts),
            &signature,
        )
    }

    fn auth_params(&self) -> &[String] {
        &self.params
    }

    fn sign(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        // volcTime is the expiry minus the validity the edge adds back.
        let (app, stream) = Self::app_stream(path).ok_or_else(|| {
            SignError::BadPath("Volcengine paths are /AppName/StreamName.ext".into())
        })?;
        let t = self.format_time(expires_at.saturating_sub(self.valid_duration_secs));
        let parts = Parts {
            domain: host,
            app,
            stream,
            time: &t,
        };
        let secret = lower_hex(&md5x2::digest_one(&self.message(&parts), key));
        Ok(Signed {
            path: path.to_owned(),
            query: append_params(query, &[(&self.params[0], &secret), (&self.params[1], &t)]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::prop::{param_range, sign_then_tamper, view_of};
    use crate::auth::{md5_parts, AnyOf, Decision};
    use proptest::prelude::*;

    const C: Common = Common { clock_skew_secs: 0 };

    fn keys(k: &[&str]) -> KeySet {
        KeySet::new(k.iter().map(|s| Secret::new(*s)).collect())
    }

    #[test]
    fn vendor_vector_matches() {
        // Official doc: /live/livestream, key A1B2C3d4e5f6, volcTime 1653632422.
        let v = Volcengine::md5(10, 0, C);
        let q = "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422";
        for path in [
            "/live/livestream.flv",
            "/live/livestream.m3u8",
            "/live/livestream",
        ] {
            let verdict = v.verify(
                &view_of(path, q),
                &keys(&["other", "A1B2C3d4e5f6"]),
                1_653_632_422,
            );
            assert_eq!(verdict.decision, Decision::Allow, "{path}");
        }
        assert_eq!(
            v.verify(
                &view_of("/live/livestream.flv", q),
                &keys(&["A1B2C3d4e5f6"]),
                1_653_632_423
            )
            .decision,
            Decision::Deny(DenyReason::Expired)
        );
    }

    #[test]
    fn valid_duration_extends_volc_time() {
        let v = Volcengine::md5(10, 60, C);
        let q = "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422";
        let k = keys(&["A1B2C3d4e5f6"]);
        assert!(v
            .verify(&view_of("/live/livestream.flv", q), &k, 1_653_632_482)
            .is_allowed());
        assert!(!v
            .verify(&view_of("/live/livestream.flv", q), &k, 1_653_632_483)
            .is_allowed());
    }

    #[test]
    fn hex_time_base_is_hashed_as_written() {
        let v = Volcengine::md5(16, 0, C);
        let k = Secret::new("A1B2C3d4e5f6");
        let t = "628f9f26"; // 1653317414
        let s = lower_hex(&md5_parts(&[
            b"/live/s",
            k.expose().as_bytes(),
            t.as_bytes(),
        ]));
        let q = format!("volcSecret={s}&volcTime={t}");
        assert!(v
            .verify(
                &view_of("/live/s.flv", &q),
                &KeySet::new(vec![k.clone()]),
                1_653_317_414
            )
            .is_allowed());
        let upper = format!("volcSecret={s}&volcTime=628F9F26");
        assert_eq!(
            v.verify(&view_of("/live/s.flv", &upper), &KeySet::new(vec![k]), 0)
                .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn times_are_digits_of_the_base_up_to_2106() {
        let sign = |base: u32, t: &str| {
            let s = lower_hex(&md5_parts(&[b"/live/s", b"k", t.as_bytes()]));
            let q = format!("volcSecret={s}&volcTime={t}");
            Volcengine::md5(base, 0, C)
                .verify(&view_of("/live/s.flv", &q), &keys(&["k"]), 1_000)
                .decision
        };
        assert_eq!(sign(10, "1653632422"), Decision::Allow);
        let malformed = Decision::Deny(DenyReason::MalformedToken);
        assert_eq!(sign(10, "+1653632422"), malformed);
        assert_eq!(sign(16, "+628f9f26"), malformed);
        assert_eq!(sign(10, "4294967296"), malformed);
        // A decimal time read in base 16 would be the year 4865.
        assert_eq!(sign(16, "1653632422"), malformed);
        assert_eq!(sign(16, "628f9f26"), Decision::Allow);
        assert_eq!(sign(2, "1102"), malformed);
        assert_eq!(sign(10, "01653632422"), malformed);
        assert_eq!(sign(16, "0628f9f26"), malformed);
    }

    /// With `md5_custom` fields `StreamName` then `volcTime`, a stream name's
    /// trailing `1` moved into a binary time keeps the hash: an expired URL
    /// for `cam1` would open `cam` until 2094. Binary times more than 2^30 s
    /// ahead are refused.
    #[test]
    fn a_digit_moved_into_a_binary_time_revives_nothing() {
        let mut v = custom(&["key", "AppName", "StreamName", "volcTime"], None);
        v.base = 2;
        let k = keys(&["k"]);
        let now = 1_764_800_000u64;
        let expired = format!("{:b}", now - 3_600);
        let signed = v
            .sign("h", "/live/cam1.flv", None, &Secret::new("k"), now - 3_600)
            .unwrap_or_else(|_| unreachable!());
        assert!(signed.query.ends_with(&expired), "{}", signed.query);
        let q = signed.query;
        assert_eq!(
            v.verify(&view_of("/live/cam1.flv", &q), &k, now).decision,
            Decision::Deny(DenyReason::Expired)
        );
        let shifted = q.replace(
            &format!("volcTime={expired}"),
            &format!("volcTime=1{expired}"),
        );
        assert_eq!(
            v.verify(&view_of("/live/cam.flv", &shifted), &k, now)
                .decision,
            Decision::Deny(DenyReason::MalformedToken)
        );
        // Honest binary URLs, decades ahead included, still verify.
        for ahead in [60, 86_400 * 365 * 30] {
            let s = v
                .sign("h", "/live/cam.flv", None, &Secret::new("k"), now + ahead)
                .unwrap_or_else(|_| unreachable!());
            assert!(v
                .verify(&view_of("/live/cam.flv", &s.query), &k, now)
                .is_allowed());
        }
    }

    #[test]
    fn publishers_are_checked_with_decimal_times() {
        let play = Volcengine::md5(16, 0, C);
        let push = play.for_publishers().unwrap_or_else(|| unreachable!());
        let q = "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422";
        let k = keys(&["A1B2C3d4e5f6"]);
        assert!(push
            .verify(&view_of("/live/livestream", q), &k, 1_653_632_422)
            .is_allowed());
        assert!(!play
            .verify(&view_of("/live/livestream", q), &k, 1_653_632_422)
            .is_allowed());
        assert!(Volcengine::md5(10, 0, C).for_publishers().is_none());
        // Combined parameter sets bring no play key to publishers.
        let any = AnyOf::new(vec![
            (
                std::sync::Arc::new(play) as std::sync::Arc<dyn Verifier>,
                keys(&["play"]),
            ),
            (
                std::sync::Arc::new(Volcengine::md5(10, 0, C)),
                keys(&["play2"]),
            ),
        ])
        .unwrap_or_else(|| unreachable!());
        let push = any.for_publishers().unwrap_or_else(|| unreachable!());
        let by = |key: &str| {
            let s = lower_hex(&md5_parts(&[b"/live/s", key.as_bytes(), b"1653632422"]));
            format!("volcSecret={s}&volcTime=1653632422")
        };
        let pushers = keys(&["pushkey"]);
        for (key, allowed) in [("pushkey", true), ("play", false), ("play2", false)] {
            let q = by(key);
            assert_eq!(
                push.verify(&view_of("/live/s.flv", &q), &pushers, 1_000)
                    .is_allowed(),
                allowed,
                "{key}"
            );
        }
    }

    fn custom(fields: &[&str], auth_field: Option<(&str, &str)>) -> Volcengine {
        let raw = RawVolcengine {
            keys: vec!["k".into()],
            algorithm: Algorithm::Md5Custom,
            encrypt_fields: fields.iter().map(|s| (*s).to_owned()).collect(),
            secret_param: auth_field.map(|a| a.0.to_owned()),
            time_param: auth_field.map(|a| a.1.to_owned()),
            timestamp_base: None,
            valid_duration_secs: Some(0),
            app: None,
        };
        let env = |_: &str| None;
        let mut ctx = Ctx::new(&env);
        raw.build("auth", C, &mut ctx)
            .map(|(v, _)| v)
            .unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn md5_custom_concatenates_fields_in_list_order_with_renamed_params() {
        let v = custom(
            &["Domain", "StreamName", "key", "AppName", "volcTime"],
            Some(("sign", "expire")),
        );
        let s = lower_hex(&md5_parts(&[
            b"play.example.com",
            b"s1",
            b"k",
            b"live",
            b"1700000000",
        ]));
        let q = format!("sign={s}&expire=1700000000");
        assert!(v
            .verify(&view_of("/live/s1.flv", &q), &keys(&["k"]), 1_700_000_000)
            .is_allowed());
        // Same fields, another order: another hash.
        let v2 = custom(
            &["key", "Domain", "StreamName", "AppName", "volcTime"],
            Some(("sign", "expire")),
        );
        assert_eq!(
            v2.verify(&view_of("/live/s1.flv", &q), &keys(&["k"]), 0)
                .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
        // The default names are not read once renamed.
        let q_default = format!("volcSecret={s}&volcTime=1700000000");
        assert_eq!(
            v.verify(&view_of("/live/s1.flv", &q_default), &keys(&["k"]), 0)
                .decision,
            Decision::Deny(DenyReason::MissingToken)
        );
    }

    #[test]
    fn md5_custom_without_key_or_time_is_a_config_error() {
        let raw = RawVolcengine {
            keys: vec!["k".into()],
            algorithm: Algorithm::Md5Custom,
            encrypt_fields: vec!["StreamName".into(), "volcTime".into(), "Bogus".into()],
            secret_param: None,
            time_param: None,
            timestamp_base: Some(7),
            valid_duration_secs: None,
            app: None,
        };
        let env = |_: &str| None;
        let mut ctx = Ctx::new(&env);
        assert!(raw.build("auth", C, &mut ctx).is_none());
        assert_eq!(ctx.problem_count(), 3);
    }

    #[test]
    fn app_scope_and_path_shape() {
        let mut v = Volcengine::md5(10, 0, C);
        v.app = Some("live".into());
        let k = keys(&["A1B2C3d4e5f6"]);
        let signed = v
            .sign(
                "play.example.com",
                "/other/livestream.flv",
                None,
                &Secret::new("A1B2C3d4e5f6"),
                1_653_632_422,
            )
            .unwrap();
        assert_eq!(
            v.verify(&view_of("/other/livestream.flv", &signed.query), &k, 0)
                .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
        for p in ["/livestream.flv", "/a/b/livestream.flv"] {
            let q = "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422";
            assert_eq!(
                v.verify(&view_of(p, q), &k, 0).decision,
                Decision::Deny(DenyReason::MalformedToken),
                "{p}"
            );
        }
    }

    #[test]
    fn sign_reproduces_the_vendor_vector() {
        let v = Volcengine::md5(10, 0, C);
        let s = v
            .sign(
                "play.example.com",
                "/live/livestream.flv",
                None,
                &Secret::new("A1B2C3d4e5f6"),
                1_653_632_422,
            )
            .unwrap();
        assert_eq!(
            s.query,
            "volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212&volcTime=1653632422"
        );
    }

    proptest! {
        #[test]
        fn sign_then_any_single_byte_change_denies(
            app in "[a-z]{1,8}", stream in "[A-Za-z0-9]{1,16}", exp in 1_000_000u64..4_000_000_000,
            base in prop::sample::select(vec![2u32, 8, 10, 16]), idx in any::<usize>(), pick in any::<u8>(),
        ) {
            let v = Volcengine::md5(base, 30, C);
            let k = keys(&["primary-key", "backup-key"]);
            let path = format!("/{app}/{stream}.flv");
            let stream_at = app.len() + 2;
            sign_then_tamper(&v, &k, &path, exp, exp, |pq| vec![
                ("app", 1..1 + app.len()),
                ("stream", stream_at..stream_at + stream.len()),
                ("volcSecret", param_range(pq, "volcSecret")),
                ("volcTime", param_range(pq, "volcTime")),
            ], (idx, pick));
            prop_assert!(!v.verify(&view_of(&path, &v.sign("play.example.com", &path, None, &Secret::new("primary-key"), exp).unwrap().query), &k, exp + 1).is_allowed());
        }
    }
}
