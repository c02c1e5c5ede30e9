//! Alibaba Cloud URL authentication, types A, B and C.
//!
//! ```text
//! A: ?auth_key={ts}-{rand}-{uid}-{md5hash}
//!    md5hash = lower_hex(MD5("{URI}-{ts}-{rand}-{uid}-{PrivateKey}"))
//! B: /{YYYYMMDDHHMM, UTC+8}/{md5hash}/{path...}
//!    md5hash = lower_hex(MD5(PrivateKey + YYYYMMDDHHMM + "/" + path))
//! C: /{md5hash}/{hexts}/{path...}   or   /{path}?KEY1={md5hash}&KEY2={hexts}
//!    md5hash = lower_hex(MD5(PrivateKey + "/" + path + hexts))
//! ```
//! Valid while `now <= ts + auth_delta_secs` (ali_auth_delta, default 1800).
//! Type C's `hexts` is hashed as written, so either case verifies; signing
//! writes it in uppercase, as the vendor's example does (`55CE8100`).
//!
//! The settings other than keys are validated in one place,
//! [`Settings::build`], for the config file and for vendor sync alike.
//! Types B and C (path form) carry the auth in the path; the origin gets the
//! path without it.

use std::borrow::Cow;

use serde::Deserialize;

use super::md5x2::{self, Message};
use super::{
    append_params, conclude_md5, hex16, is_hex_of_len, lower_hex, param_pair, parse_dec_time,
    parse_hex_time, query_param, Common, DenyReason, Derived, RequestView, SignError, Signed,
    Verdict, Verifier, Window,
};
use crate::keys::{KeySet, Secret};
use crate::problems::{given_or, param_name_problems, Ctx, Problem};
use crate::time::{civil, from_civil};

/// Default ali_auth_delta.
pub const DEFAULT_AUTH_DELTA_SECS: u64 = 1800;
/// Type A's parameter.
pub const DEFAULT_A_PARAM: &str = "auth_key";
/// Type C query form: default name of the hash parameter.
pub const DEFAULT_C_HASH_PARAM: &str = "KEY1";
/// Type C query form: default name of the time parameter.
pub const DEFAULT_C_TIME_PARAM: &str = "KEY2";
/// Type B times are Beijing time.
const UTC8: u64 = 8 * 3600;

/// auth_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// `?auth_key=ts-rand-uid-hash`.
    #[serde(alias = "type_a")]
    A,
    /// `/YYYYMMDDHHMM/hash/path`.
    #[serde(alias = "type_b")]
    B,
    /// `/hash/hexts/path` or `?KEY1=hash&KEY2=hexts`.
    #[serde(alias = "type_c")]
    C,
}

/// Where type C carries its hash and time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CForm {
    /// `/hash/hexts/path` (default).
    #[default]
    Path,
    /// `/path?KEY1=hash&KEY2=hexts`.
    Query,
}

/// `[site.auth]` with `scheme = "aliyun"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAliyun {
    /// `a`, `b` or `c` (also `type_a`… as the API reports them).
    #[serde(rename = "type")]
    pub auth_type: AuthType,
    /// auth_key1 (primary). `${ENV}` allowed.
    pub key: String,
    /// auth_key2 (backup).
    pub backup_key: Option<String>,
    /// ali_auth_delta. Default 1800; 0 means the URL's time is the expiry.
    pub auth_delta_secs: Option<u64>,
    /// Type C only: `path` (default) or `query`.
    pub c_form: Option<CForm>,
    /// Type A: the parameter name. Default `auth_key`.
    pub param: Option<String>,
    /// Type C query form: the hash parameter. Default `KEY1`.
    pub hash_param: Option<String>,
    /// Type C query form: the time parameter. Default `KEY2`.
    pub time_param: Option<String>,
}

impl RawAliyun {
    pub(super) fn build(
        &self,
        path: &str,
        common: Common,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Aliyun, KeySet)> {
        // Keys first: `ctx` resolves `${ENV}` and checks them (config only;
        // a vendor's keys are literal). Then the settings' own rules, so every
        // problem is reported at once.
        let before = ctx.problem_count();
        let keys = ctx.primary_and_backup(path, &self.key, self.backup_key.as_deref());
        let settings = Settings {
            auth_type: self.auth_type,
            auth_delta_secs: self.auth_delta_secs,
            c_form: self.c_form,
            param: self.param.as_deref(),
            hash_param: self.hash_param.as_deref(),
            time_param: self.time_param.as_deref(),
        };
        let verifier = match settings.build(common) {
            Ok(v) => Some(v),
            Err(problems) => {
                ctx.extend(problems, |f| format!("{path}.{f}"));
                None
            }
        };
        if ctx.problem_count() > before || keys.is_empty() {
            return None;
        }
        Some((verifier?, KeySet::new(keys)))
    }
}

/// Longest `auth_delta_secs` (ali_auth_delta) accepted: one year, the
/// largest validity Alibaba Cloud's console offers.
///
/// Why: a typo (an expiry pasted as a delta) must not make every URL valid
/// for decades.
pub const MAX_AUTH_DELTA_SECS: u64 = 31_536_000;

/// Alibaba Cloud URL-auth settings other than keys, from whichever source
/// (the config file's `[site.auth]`, a vendor's `aliauth` answer).
///
/// Why one type: each rule is written once, in [`Settings::build`]; sources
/// only name the fields (`Problem::under`) in their own terms.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'s> {
    /// Type A, B or C.
    pub auth_type: AuthType,
    /// ali_auth_delta; `None` is [`DEFAULT_AUTH_DELTA_SECS`].
    pub auth_delta_secs: Option<u64>,
    /// Type C only: where the hash and time go; `None` is the path form.
    pub c_form: Option<CForm>,
    /// Type A only: the parameter name; `None` is [`DEFAULT_A_PARAM`].
    pub param: Option<&'s str>,
    /// Type C query form only: the hash parameter; `None` is `KEY1`.
    pub hash_param: Option<&'s str>,
    /// Type C query form only: the time parameter; `None` is `KEY2`.
    pub time_param: Option<&'s str>,
}

impl Settings<'_> {
    /// The verifier these settings describe, or every problem with them,
    /// each named by its field (`auth_delta_secs`, `c_form`, `param`,
    /// `hash_param`, `time_param`).
    pub fn build(&self, common: Common) -> Result<Aliyun, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut only = |set: bool, field: &str, when: &str| {
            if set {
                problems.push(Problem::field(field, format!("only applies to {when}")));
            }
        };
        let for_c_query = "type = \"c\" with c_form = \"query\"";
        match self.auth_type {
            AuthType::A => {
                only(self.c_form.is_some(), "c_form", "type = \"c\"");
                only(self.hash_param.is_some(), "hash_param", for_c_query);
                only(self.time_param.is_some(), "time_param", for_c_query);
            }
            AuthType::B => {
                only(self.c_form.is_some(), "c_form", "type = \"c\"");
                only(self.param.is_some(), "param", "type = \"a\"");
                only(
                    self.hash_param.is_some() || self.time_param.is_some(),
                    "hash_param",
                    for_c_query,
                );
            }
            AuthType::C => {
                only(self.param.is_some(), "param", "type = \"a\"");
                if self.c_form.unwrap_or_default() == CForm::Path {
                    only(
                        self.hash_param.is_some() || self.time_param.is_some(),
                        "hash_param",
                        "c_form = \"query\"",
                    );
                }
            }
        }
        let form = match (self.auth_type, self.c_form.unwrap_or_default()) {
            (AuthType::A, _) => {
                let p = given_or(self.param, DEFAULT_A_PARAM);
                problems.extend(param_name_problems(&[("param", &p)]));
                Form::A(p)
            }
            (AuthType::B, _) => Form::B,
            (AuthType::C, CForm::Path) => Form::CPath,
            (AuthType::C, CForm::Query) => {
                let h = given_or(self.hash_param, DEFAULT_C_HASH_PARAM);
                let t = given_or(self.time_param, DEFAULT_C_TIME_PARAM);
                problems.extend(param_name_problems(&[
                    ("hash_param", &h),
                    ("time_param", &t),
                ]));
                Form::CQuery([h, t])
            }
        };
        let delta = self.auth_delta_secs.unwrap_or(DEFAULT_AUTH_DELTA_SECS);
        if delta > MAX_AUTH_DELTA_SECS {
            problems.push(Problem::field(
                "auth_delta_secs",
                format!(
                    "is more than {MAX_AUTH_DELTA_SECS} (one year); give the validity in seconds after the URL's time (default {DEFAULT_AUTH_DELTA_SECS})"
                ),
            ));
        }
        if problems.is_empty() {
            Ok(Aliyun::new(form, delta, common))
        } else {
            Err(problems)
        }
    }
}

/// The configured form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// Type A with its param name.
    A(String),
    /// Type B.
    B,
    /// Type C, path form.
    CPath,
    /// Type C, query form with [hash, time] param names.
    CQuery([String; 2]),
}

/// The Alibaba Cloud verifier for one site.
#[derive(Debug, Clone)]
pub struct Aliyun {
    form: Form,
    params: Vec<String>,
    auth_delta_secs: u64,
    common: Common,
}

/// `YYYYMMDDHHMM` (Beijing time) → unix seconds.
fn parse_b_time(s: &str) -> Option<u64> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let y = i64::from(n(0..4)?);
    from_civil(y, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, 0)?.checked_sub(UTC8)
}

/// Unix seconds → `YYYYMMDDHHMM` in Beijing time (seconds dropped).
fn format_b_time(t: u64) -> String {
    let (y, mo, d, h, mi, _) = civil(t.saturating_add(UTC8));
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}")
}

/// Splits `/first/second/rest…` into (`first`, `second`, `/rest…`); the
/// rest may be `/` alone (the vendor's demo signs the root path).
fn two_leading(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (a, rest) = rest.split_once('/')?;
    let (b, rest) = rest.split_once('/')?;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some((a, b, &path[path.len() - rest.len() - 1..]))
}

impl Aliyun {
    /// A verifier of the given form.
    pub fn new(form: Form, auth_delta_secs: u64, common: Common) -> Self {
        let params = match &form {
            Form::A(p) => vec![p.clone()],
            Form::CQuery(names) => names.to_vec(),
            Form::B | Form::CPath => Vec::new(),
        };
        Aliyun {
            form,
            params,
            auth_delta_secs,
            common,
        }
    }

    fn window(&self, ts: u64) -> Option<Window> {
        Some(Window {
            not_before: None,
            expires_at: Some(ts.checked_add(self.auth_delta_secs)?),
        })
    }

    fn finish<'a>(
        &self,
        derived: Derived<'a>,
        ts: Option<u64>,
        hash: &str,
        keys: &KeySet,
        now: u64,
        message: impl Message,
    ) -> Verdict<'a> {
        let Some(window) = ts.and_then(|t| self.window(t)) else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        let Some(signature) = hex16(hash) else {
            return Verdict::pending(DenyReason::MalformedToken, derived);
        };
        conclude_md5(
            derived,
            keys,
            window,
            now,
            self.common.clock_skew_secs,
            message,
            &signature,
        )
    }
}

impl Verifier for Aliyun {
    fn scheme(&self) -> &'static str {
        "aliyun"
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        match &self.form {
            Form::A(param) => {
                let value = match query_param(req.query, param) {
                    Ok(Some(v)) => v,
                    Ok(None) => return Verdict::deny(DenyReason::MissingToken),
                    Err(_) => return Verdict::deny(DenyReason::MalformedToken),
                };
                // Exactly four `-`-separated parts.
                let mut parts = value.split('-');
                let (Some(ts), Some(rand), Some(uid), Some(hash), None) = (
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                ) else {
                    return Verdict::deny(DenyReason::MalformedToken);
                };
                // URL-unreserved characters but `-` (the separator): the
                // vendor asks only that rand and uid hold no `-`.
                let ok_id = |s: &str| {
                    !s.is_empty()
                        && s.len() <= 64
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~'))
                };
                if !ok_id(rand) || !ok_id(uid) {
                    return Verdict::deny(DenyReason::MalformedToken);
                }
                let derived = Derived::from([
                    ("uri signed", Cow::Borrowed(req.path)),
                    ("timestamp", Cow::Borrowed(ts)),
                    ("rand", Cow::Borrowed(rand)),
                    ("uid", Cow::Borrowed(uid)),
                ]);
                let path = req.path;
                let message = md5x2::then_key([path, "-", ts, "-", rand, "-", uid, "-"]);
                self.finish(derived, parse_dec_time(ts), hash, keys, now, message)
            }
            Form::B => {
                let Some((tstr, hash, rest)) = two_leading(req.path) else {
                    return Verdict::deny(DenyReason::MissingToken);
                };
                let derived = Derived::from([
                    ("path signed", Cow::Borrowed(rest)),
                    ("time (UTC+8)", Cow::Borrowed(tstr)),
                ]);
                let message = md5x2::key_then([tstr, rest]);
                let mut v = self.finish(derived, parse_b_time(tstr), hash, keys, now, message);
                v.forward_path = Some(rest);
                v
            }
            Form::CPath => {
                let Some((hash, hexts, rest)) = two_leading(req.path) else {
                    return Verdict::deny(DenyReason::MissingToken);
                };
                let derived = Derived::from([
                    ("path signed", Cow::Borrowed(rest)),
                    ("timestamp", Cow::Borrowed(hexts)),
                ]);
                let message = md5x2::key_then([rest, hexts]);
                let mut v = self.finish(derived, parse_hex_time(hexts), hash, keys, now, message);
                v.forward_path = Some(rest);
                v
            }
            Form::CQuery([hp, tp]) => {
                let (hash, ts) = match param_pair(req.query, hp, tp) {
                    Ok(pair) => pair,
                    Err(reason) => return Verdict::deny(reason),
                };
                let derived = Derived::from([
                    ("path signed", Cow::Borrowed(req.path)),
                    ("timestamp", Cow::Borrowed(ts)),
                ]);
                let path = req.path;
                self.finish(
                    derived,
                    parse_hex_time(ts),
                    hash,
                    keys,
                    now,
                    md5x2::key_then([path, ts]),
                )
            }
        }
    }

    fn auth_params(&self) -> &[String] {
        &self.params
    }

    /// Strips the auth segments only when they have their shape
    /// (`/YYYYMMDDHHMM/<32 hex>/` for B, `/<32 hex>/<hex time>/` for C), so a
    /// plain `/live/sub/seg.ts` (an absolute-path HLS child) stays as it is.
    fn origin_path<'a>(&self, path: &'a str) -> &'a str {
        let Some((a, b, rest)) = two_leading(path) else {
            return path;
        };
        let shaped = match self.form {
            Form::B => {
                a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()) && is_hex_of_len(b, 32)
            }
            Form::CPath => is_hex_of_len(a, 32) && parse_hex_time(b).is_some(),
            Form::A(_) | Form::CQuery(_) => false,
        };
        if shaped {
            rest
        } else {
            path
        }
    }

    fn sign(
        &self,
        _host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        let ts = expires_at.saturating_sub(self.auth_delta_secs);
        // In-path auth goes in front of the path's own `/`.
        if matches!(self.form, Form::B | Form::CPath) && !path.starts_with('/') {
            return Err(SignError::BadPath(
                "in-path auth (types B and C) needs a path starting with /".into(),
            ));
        }
        Ok(match &self.form {
            Form::A(param) => {
                let t = ts.to_string();
                let message = md5x2::then_key([path, "-", &t, "-", "0", "-", "0", "-"]);
                let h = lower_hex(&md5x2::digest_one(&message, key));
                Signed {
                    path: path.to_owned(),
                    query: append_params(query, &[(param, &format!("{t}-0-0-{h}"))]),
                }
            }
            Form::B => {
                let t = format_b_time(ts);
                let h = lower_hex(&md5x2::digest_one(&md5x2::key_then([&t, path]), key));
                Signed {
                    path: format!("/{t}/{h}{path}"),
                    query: query.unwrap_or_default().to_owned(),
                }
            }
            Form::CPath => {
                // Uppercase, as the vendor's own example writes it.
                let t = format!("{ts:X}");
                let h = lower_hex(&md5x2::digest_one(&md5x2::key_then([path, &t]), key));
                Signed {
                    path: format!("/{h}/{t}{path}"),
                    query: query.unwrap_or_default().to_owned(),
                }
            }
            Form::CQuery([hp, tp]) => {
                let t = format!("{ts:X}");
                let h = lower_hex(&md5x2::digest_one(&md5x2::key_then([path, &t]), key));
                Signed {
                    path: path.to_owned(),
                    query: append_params(query, &[(hp, &h), (tp, &t)]),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::prop::{param_range, sign_then_tamper, view_of};
    use crate::auth::{md5_parts, Decision};
    use proptest::prelude::*;

    const C: Common = Common { clock_skew_secs: 0 };

    fn keys(k: &[&str]) -> KeySet {
        KeySet::new(k.iter().map(|s| Secret::new(*s)).collect())
    }

    #[test]
    fn live_type_a_vendor_vector() {
        // Official doc: "/video/standard-1622194197-0-0-aliyunliveexp1234" → 5552ff52….
        let d = md5_parts(&[b"/video/standard-1622194197-0-0-aliyunliveexp1234"]);
        assert_eq!(lower_hex(&d), "5552ff52b5e4e20387c6dc18afce206b");
        let v = Aliyun::new(Form::A(DEFAULT_A_PARAM.into()), 1800, C);
        let q = "auth_key=1622194197-0-0-5552ff52b5e4e20387c6dc18afce206b";
        let k = keys(&["primary", "aliyunliveexp1234"]);
        let verdict = v.verify(&view_of("/video/standard", q), &k, 1_622_194_197 + 1800);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.expires_at, Some(1_622_194_197 + 1800));
        assert_eq!(
            v.verify(&view_of("/video/standard", q), &k, 1_622_194_197 + 1801)
                .decision,
            Decision::Deny(DenyReason::Expired)
        );
        // The URI includes the extension: the same hash does not cover /video/standard.flv.
        assert_eq!(
            v.verify(&view_of("/video/standard.flv", q), &k, 0).decision,
            Decision::Deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn origin_path_strips_only_auth_shaped_segments() {
        let h = "0123456789abcdef0123456789abcdef";
        let b = Aliyun::new(Form::B, 0, C);
        assert_eq!(
            b.origin_path(&format!("/201508150800/{h}/live/x.ts")),
            "/live/x.ts"
        );
        assert_eq!(b.origin_path("/live/sub/x.ts"), "/live/sub/x.ts");
        let c = Aliyun::new(Form::CPath, 0, C);
        assert_eq!(
            c.origin_path(&format!("/{h}/55CE8100/live/x.ts")),
            "/live/x.ts"
        );
        assert_eq!(c.origin_path("/live/sub/x.ts"), "/live/sub/x.ts");
        let a = Aliyun::new(Form::A("auth_key".into()), 0, C);
        assert_eq!(
            a.origin_path(&format!("/{h}/55CE8100/live/x.ts")),
            format!("/{h}/55CE8100/live/x.ts")
        );
    }

    #[test]
    fn type_a_malformed_values() {
        let v = Aliyun::new(Form::A(DEFAULT_A_PARAM.into()), 0, C);
        let k = keys(&["k"]);
        for q in [
            "auth_key=1-0-0",
            "auth_key=1-0-0-0-5552ff52b5e4e20387c6dc18afce206b",
            "auth_key=x-0-0-5552ff52b5e4e20387c6dc18afce206b",
            "auth_key=1--0-5552ff52b5e4e20387c6dc18afce206b",
            "auth_key=1-0-0-zz",
        ] {
            assert_eq!(
                v.verify(&view_of("/a.flv", q), &k, 0).decision,
                Decision::Deny(DenyReason::MalformedToken),
                "{q}"
            );
        }
        assert_eq!(
            v.verify(&view_of("/a.flv", "x=1"), &k, 0).decision,
            Decision::Deny(DenyReason::MissingToken)
        );
        // rand and uid may hold any URL-unreserved character but `-` (the
        // vendor rules out `-` alone); other characters stay malformed.
        let signed = |rand: &str, uid: &str| {
            let h = lower_hex(&md5_parts(&[
                format!("/a.flv-1700000000-{rand}-{uid}-k").as_bytes()
            ]));
            format!("auth_key=1700000000-{rand}-{uid}-{h}")
        };
        for (rand, uid) in [
            ("0", "u_1"),
            ("a_b", "0"),
            ("477b3bbc253f467b8def6711128c7bec", "user.9~x"),
        ] {
            assert_eq!(
                v.verify(&view_of("/a.flv", &signed(rand, uid)), &k, 1_700_000_000)
                    .decision,
                Decision::Allow,
                "{rand} {uid}"
            );
        }
        for (rand, uid) in [("a%2Db", "0"), ("0", "a b"), ("0", "a+b"), ("0", "a/b")] {
            assert_eq!(
                v.verify(&view_of("/a.flv", &signed(rand, uid)), &k, 1_700_000_000)
                    .decision,
                Decision::Deny(DenyReason::MalformedToken),
                "{rand} {uid}"
            );
        }
    }

    /// The vendor's documented type B example (key `aliyuncdnexp1234`,
    /// 2015-08-15 08:00 UTC+8, 1800 s), and the root path its demo signs.
    #[test]
    fn type_b_documented_example_and_the_root_path() {
        let v = Aliyun::new(Form::B, 1800, C);
        let k = keys(&["aliyuncdnexp1234"]);
        let path = "/201508150800/9044548ef1527deadafa49a890a377f0/4/44/44c0909bcfc20a01afaf256ca99a8b8b.mp3";
        let at = |now| v.verify(&view_of(path, ""), &k, now);
        assert_eq!(at(1_439_598_600).decision, Decision::Allow);
        assert_eq!(
            at(1_439_598_600).forward_path,
            Some("/4/44/44c0909bcfc20a01afaf256ca99a8b8b.mp3")
        );
        assert_eq!(
            at(1_439_598_601).decision,
            Decision::Deny(DenyReason::Expired)
        );
        let root = "/201508150800/1cbaa871b429a0677a127bb9d45b35f1/";
        let verdict = v.verify(&view_of(root, ""), &k, 1_439_598_600);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.forward_path, Some("/"));
        let signed = v
            .sign(
                "h",
                "/",
                None,
                &Secret::new("aliyuncdnexp1234"),
                1_439_598_600,
            )
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(signed.path, root);
        // Type C signs the root path the same way.
        let c = Aliyun::new(Form::CPath, 1800, C);
        let signed = c
            .sign("h", "/", None, &Secret::new("k"), 1_439_598_600)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(c
            .verify(&view_of(&signed.path, ""), &keys(&["k"]), 1_439_598_600)
            .is_allowed());
        assert!(v.sign("h", "", None, &Secret::new("k"), 0).is_err());
    }

    #[test]
    fn type_b_is_beijing_time_and_forwards_the_bare_path() {
        // 2015-08-15 08:00 in UTC+8 is 2015-08-15 00:00 UTC = 1439596800.
        assert_eq!(parse_b_time("201508150800"), Some(1_439_596_800));
        assert_eq!(format_b_time(1_439_596_800), "201508150800");
        assert_eq!(parse_b_time("201513150800"), None);
        let v = Aliyun::new(Form::B, 1800, C);
        let h = lower_hex(&md5_parts(&[
            b"aliyuncdnexp1234",
            b"201508150800",
            b"/4/44/44abdd3d8e8a0a2d5b8cb63e84c4c8f0.mp3",
        ]));
        let path = format!("/201508150800/{h}/4/44/44abdd3d8e8a0a2d5b8cb63e84c4c8f0.mp3");
        let verdict = v.verify(
            &view_of(&path, ""),
            &keys(&["aliyuncdnexp1234"]),
            1_439_596_800 + 1800,
        );
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(
            verdict.forward_path,
            Some("/4/44/44abdd3d8e8a0a2d5b8cb63e84c4c8f0.mp3")
        );
        assert_eq!(
            v.verify(
                &view_of(&path, ""),
                &keys(&["aliyuncdnexp1234"]),
                1_439_596_800 + 1801
            )
            .decision,
            Decision::Deny(DenyReason::Expired)
        );
        assert_eq!(
            v.verify(&view_of("/4/44/x.mp3", ""), &keys(&["k"]), 0)
                .decision,
            Decision::Deny(DenyReason::MalformedToken)
        );
        assert_eq!(
            v.verify(&view_of("/x.mp3", ""), &keys(&["k"]), 0).decision,
            Decision::Deny(DenyReason::MissingToken)
        );
    }

    #[test]
    fn type_c_path_and_query_forms() {
        let k = keys(&["aliyuncdnexp1234"]);
        let h = lower_hex(&md5_parts(&[
            b"aliyuncdnexp1234",
            b"/4/44/x.mp3",
            b"55CE8100",
        ]));
        let v = Aliyun::new(Form::CPath, 1800, C);
        let cpath = format!("/{h}/55CE8100/4/44/x.mp3");
        let verdict = v.verify(&view_of(&cpath, ""), &k, 0x55CE_8100);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.forward_path, Some("/4/44/x.mp3"));
        // The hex time is hashed as written.
        assert_eq!(
            v.verify(&view_of(&format!("/{h}/55ce8100/4/44/x.mp3"), ""), &k, 0)
                .decision,
            Decision::Deny(DenyReason::BadSignature)
        );

        let q = Aliyun::new(Form::CQuery(["KEY1".into(), "KEY2".into()]), 1800, C);
        let cquery = format!("KEY1={h}&KEY2=55CE8100");
        let verdict = q.verify(&view_of("/4/44/x.mp3", &cquery), &k, 0x55CE_8100 + 1800);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.forward_path, None);
        assert_eq!(q.auth_params(), ["KEY1", "KEY2"]);
    }

    #[test]
    fn options_of_other_types_are_config_problems() {
        let raw: RawAliyun =
            toml::from_str("type = \"b\"\nkey = \"k\"\nc_form = \"query\"\nparam = \"x\"").unwrap();
        let env = |_: &str| None;
        let mut ctx = Ctx::new(&env);
        assert!(raw.build("auth", C, &mut ctx).is_none());
        assert_eq!(ctx.problem_count(), 2);
        let raw: RawAliyun =
            toml::from_str("type = \"type_a\"\nkey = \"k\"\nbackup_key = \"b\"").unwrap();
        let (v, k) = raw.build("auth", C, &mut Ctx::new(&env)).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(v.auth_delta_secs, DEFAULT_AUTH_DELTA_SECS);
    }

    #[test]
    fn type_c_signs_the_vendor_example_with_uppercase_hex_time() {
        // Vendor example: key aliyuncdnexp1234, /test.flv, time 55CE8100
        // (1439596800) → /a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv.
        let key = Secret::new("aliyuncdnexp1234");
        let want = "/a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv";
        for (delta, expires_at) in [(0, 1_439_596_800), (1800, 1_439_598_600)] {
            let v = Aliyun::new(Form::CPath, delta, C);
            let s = v.sign("h", "/test.flv", None, &key, expires_at).unwrap();
            assert_eq!(s.path, want, "delta {delta}");
            // No other parameters: nothing to print after the path.
            assert_eq!(s.query, "");
            let k = keys(&["aliyuncdnexp1234"]);
            assert_eq!(
                v.verify(&view_of(want, ""), &k, expires_at).decision,
                Decision::Allow
            );
            assert_eq!(
                v.verify(&view_of(want, ""), &k, expires_at + 1).decision,
                Decision::Deny(DenyReason::Expired)
            );
        }
        // Other parameters are kept as they were.
        let v = Aliyun::new(Form::CPath, 0, C);
        let s = v
            .sign("h", "/test.flv", Some("a=1"), &key, 1_439_596_800)
            .unwrap();
        assert_eq!(s.query, "a=1");
        // A lowercase hex time signed by another tool still verifies.
        let lower = lower_hex(&md5_parts(&[
            b"aliyuncdnexp1234",
            b"/test.flv",
            b"55ce8100",
        ]));
        assert_eq!(
            v.verify(
                &view_of(&format!("/{lower}/55ce8100/test.flv"), ""),
                &keys(&["aliyuncdnexp1234"]),
                1_439_596_800
            )
            .decision,
            Decision::Allow
        );
        // The query form writes the same uppercase time.
        let q = Aliyun::new(Form::CQuery(["KEY1".into(), "KEY2".into()]), 0, C);
        let s = q.sign("h", "/test.flv", None, &key, 1_439_596_800).unwrap();
        assert_eq!(
            s.query,
            "KEY1=a37fa50a5fb8f71214b1e7c95ec7a1bd&KEY2=55CE8100"
        );
    }

    #[test]
    fn type_b_path_form_sign_leaves_the_query_empty() {
        let v = Aliyun::new(Form::B, 1800, C);
        let s = v
            .sign("h", "/4/44/x.mp3", None, &Secret::new("k"), 1_439_598_600)
            .unwrap();
        assert!(s.path.starts_with("/201508150800/"), "{}", s.path);
        assert_eq!(s.query, "");
    }

    #[test]
    fn settings_problems_are_named_by_field_under_the_config_path() {
        let env = |_: &str| None;
        let raw: RawAliyun = toml::from_str(
            "type = \"c\"\nkey = \"k\"\nc_form = \"query\"\nhash_param = \"t\"\ntime_param = \"t\"\nauth_delta_secs = 31536001\nparam = \"p\"",
        )
        .unwrap();
        let mut ctx = Ctx::new(&env);
        assert!(raw.build("site[1].auth", C, &mut ctx).is_none());
        let paths: Vec<String> = ctx.into_problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "site[1].auth.param",
                "site[1].auth.time_param",
                "site[1].auth.auth_delta_secs"
            ]
        );
        // The same settings, from any source, through the one constructor.
        let settings = Settings {
            auth_type: AuthType::A,
            auth_delta_secs: Some(MAX_AUTH_DELTA_SECS),
            c_form: None,
            param: Some("bad name"),
            hash_param: None,
            time_param: None,
        };
        let problems = settings.build(C).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "param");
        let ok = Settings {
            param: None,
            ..settings
        };
        assert_eq!(ok.build(C).unwrap().auth_params(), [DEFAULT_A_PARAM]);
        // A key problem and a settings problem are both reported.
        let raw: RawAliyun =
            toml::from_str("type = \"b\"\nkey = \"${UNSET}\"\nparam = \"x\"").unwrap();
        let mut ctx = Ctx::new(&env);
        assert!(raw.build("auth", C, &mut ctx).is_none());
        assert_eq!(ctx.problem_count(), 2);
    }

    proptest! {
        #[test]
        fn every_type_signs_and_any_single_byte_change_denies(
            dir in "[a-z]{1,8}", name in "[A-Za-z0-9]{1,16}", exp in 10_000_000u64..4_000_000_000,
            form in 0usize..4, idx in any::<usize>(), pick in any::<u8>(),
        ) {
            let forms = [Form::A("auth_key".into()), Form::B, Form::CPath, Form::CQuery(["KEY1".into(), "KEY2".into()])];
            let v = Aliyun::new(forms[form].clone(), 600, C);
            let k = keys(&["primary-key", "backup-key"]);
            let path = format!("/{dir}/{name}.m3u8");
            let plen = path.len();
            // Type B rounds its time down to the minute: check at the rounded expiry.
            let now = if form == 1 { (exp - 600) / 60 * 60 + 600 } else { exp };
            sign_then_tamper(&v, &k, &path, exp, now, |pq| {
                let q = pq.find('?').unwrap_or(pq.len());
                let body = &pq[..q];
                match form {
                    0 => {
                        let r = param_range(pq, "auth_key");
                        let dash = pq[r.clone()].find('-').unwrap_or(0);
                        vec![("path", 1..q), ("ts", r.start..r.start + dash), ("hash", r.end - 32..r.end)]
                    }
                    1 | 2 => {
                        let first = body[1..].find('/').unwrap_or(0) + 1;
                        let second = body[first + 1..].find('/').unwrap_or(0) + first + 1;
                        let (t, h) = if form == 1 { (1..first, first + 1..second) } else { (first + 1..second, 1..first) };
                        vec![("path", q - plen + 1..q), ("time", t), ("hash", h)]
                    }
                    _ => vec![("path", 1..q), ("KEY1", param_range(pq, "KEY1")), ("KEY2", param_range(pq, "KEY2"))],
                }
            }, (idx, pick));
        }
    }
}
