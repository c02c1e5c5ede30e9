//! Wangsu / ChinaNetCenter timestamp anti-hotlinking: `wsSecret` / `wsTime`.
//!
//! ```text
//! wsSecret = lower_hex(MD5(concat in cipheCombination order of {key, path, time}))
//! ```
//! A domain may have several rule groups (`dataId`s), each with its own key,
//! param names, time format, effective-time mode and combination order; a URL
//! passes when any group accepts it. The site's [`KeySet`] starts with one
//! key per group, in group order (key *i* belongs to group *i* and signs
//! for no other); keys after those (added through the operator API, or a
//! site's own keys next to a vendor's answer) are tried under every group.

use std::borrow::Cow;

use serde::Deserialize;

use super::from_config;
use super::md5x2::{self, Message};
use super::{
    append_params, hex16, last_segment, lower_hex, query_params, stream_name, Common, Decision,
    DenyReason, Derived, RequestView, SignError, Signed, Verdict, Verifier, Window,
};
use crate::keys::{KeySet, Secret};
use crate::problems::{given_or, param_name_problems};
use crate::problems::{Ctx, Problem};

/// Default signature param (cipherParam).
pub const DEFAULT_CIPHER_PARAM: &str = "wsSecret";
/// Default time param (timeParam).
pub const DEFAULT_TIME_PARAM: &str = "wsTime";
/// Default combination order.
pub const DEFAULT_COMBINATION: &str = "key+path+time";

/// `timeFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum WsTimeFormat {
    /// Decimal unix seconds (`UNIX timestamp`).
    #[serde(rename = "unix", alias = "UNIX timestamp", alias = "decimal")]
    Unix,
    /// Hex unix seconds.
    #[serde(rename = "hex")]
    Hex,
}

/// `effectiveTimeMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum EffectiveTimeMode {
    /// wsTime is the generation time; valid for `effective_time_secs`.
    #[serde(rename = "duration")]
    Duration,
    /// wsTime is the expiry.
    #[serde(rename = "abstime")]
    AbsTime,
    /// Only the hash is checked.
    #[serde(rename = "none", alias = "no verification")]
    NoVerification,
}

/// The pieces a combination orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Key,
    Path,
    Time,
}

/// `[[site.auth.rule]]`: one rule group.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// secretKey. `${ENV}` allowed.
    pub key: String,
    /// cipherParam. Default `wsSecret`.
    pub cipher_param: Option<String>,
    /// timeParam. Default `wsTime`.
    pub time_param: Option<String>,
    /// cipheCombination, e.g. `key+path+time` (default).
    pub cipher_combination: Option<String>,
    /// timeFormat: `unix` (alias `UNIX timestamp`) or `hex`. Required, as in the vendor API.
    pub time_format: WsTimeFormat,
    /// effectiveTimeMode: `duration`, `abstime` or `none` (alias `no verification`).
    pub effective_time_mode: EffectiveTimeMode,
    /// effectiveTime, required with `duration`.
    pub effective_time_secs: Option<u64>,
    /// tolerantTime: clock-skew slack on both ends. Default 0.
    #[serde(default)]
    pub tolerant_time_secs: u64,
}

/// `[site.auth]` with `scheme = "wangsu"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWangsu {
    /// Rule groups; a URL passes if any accepts it.
    pub rule: Vec<RawRule>,
    /// Whether the hashed path keeps the media extension (OPEN in the vendor
    /// docs). Default true.
    pub path_includes_extension: Option<bool>,
}

/// One validated rule group (its key lives in the site's [`KeySet`]).
#[derive(Debug, Clone)]
struct Rule {
    cipher_param: String,
    time_param: String,
    order: [Part; 3],
    time_format: WsTimeFormat,
    mode: EffectiveTimeMode,
    effective_time_secs: u64,
    tolerant_time_secs: u64,
}

fn parse_combination(s: &str) -> Option<[Part; 3]> {
    let mut out = [Part::Key; 3];
    let mut seen = Vec::new();
    let mut n = 0;
    for p in s.split('+') {
        let part = match p.trim() {
            "key" => Part::Key,
            "path" => Part::Path,
            "time" => Part::Time,
            _ => return None,
        };
        if seen.contains(&part) || n == 3 {
            return None;
        }
        seen.push(part);
        out[n] = part;
        n += 1;
    }
    (n == 3).then_some(out)
}

impl RawWangsu {
    /// The config reader: resolves each group's key (in group order, for the
    /// site's [`KeySet`]) and defaults into [`Settings`], whose one
    /// constructor applies every rule; its problems are reported under
    /// `{path}.` + the field name.
    pub(super) fn build(
        &self,
        path: &str,
        common: Common,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Wangsu, KeySet)> {
        let before = ctx.problem_count();
        let keys: Vec<Secret> = self
            .rule
            .iter()
            .enumerate()
            .filter_map(|(i, r)| ctx.secret(&format!("{path}.rule[{i}].key"), &r.key))
            .collect();
        let settings = Settings {
            rules: self
                .rule
                .iter()
                .map(|r| RuleSettings {
                    cipher_param: given_or(r.cipher_param.as_deref(), DEFAULT_CIPHER_PARAM),
                    time_param: given_or(r.time_param.as_deref(), DEFAULT_TIME_PARAM),
                    combination: given_or(r.cipher_combination.as_deref(), DEFAULT_COMBINATION),
                    time_format: r.time_format,
                    mode: r.effective_time_mode,
                    effective_time_secs: r.effective_time_secs,
                    tolerant_time_secs: r.tolerant_time_secs,
                })
                .collect(),
            path_includes_extension: self.path_includes_extension.unwrap_or(true),
        };
        from_config(settings.build(common), keys, path, ctx, before)
            .map(|(v, keys)| (v, keys.bound_first(self.rule.len())))
    }
}

/// The distinct param names of `rules`, in group order.
fn params_of(rules: &[Rule]) -> Vec<String> {
    let mut params: Vec<String> = Vec::new();
    for r in rules {
        for n in [&r.cipher_param, &r.time_param] {
            if !params.contains(n) {
                params.push(n.clone());
            }
        }
    }
    params
}

/// The scheme's settings, whether read from `[site.auth]` or from a vendor
/// answer (`sync::wangsu`). Plain data: [`Settings::build`] checks it. The
/// groups' keys are not here: key *i* of the site's [`KeySet`] belongs to
/// group *i*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The rule groups, in order; problems name group *i* `rule[i]`.
    pub rules: Vec<RuleSettings>,
    /// Whether the hashed path keeps the media extension.
    pub path_includes_extension: bool,
}

/// One rule group of [`Settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSettings {
    /// cipherParam, e.g. [`DEFAULT_CIPHER_PARAM`].
    pub cipher_param: String,
    /// timeParam, e.g. [`DEFAULT_TIME_PARAM`].
    pub time_param: String,
    /// cipheCombination, e.g. [`DEFAULT_COMBINATION`]. Problems name it
    /// `cipher_combination`, as the config does.
    pub combination: String,
    /// timeFormat.
    pub time_format: WsTimeFormat,
    /// effectiveTimeMode.
    pub mode: EffectiveTimeMode,
    /// effectiveTime in seconds: required (at least 1) with
    /// [`EffectiveTimeMode::Duration`], refused otherwise.
    pub effective_time_secs: Option<u64>,
    /// tolerantTime: clock-skew slack in seconds on both ends.
    pub tolerant_time_secs: u64,
}

impl Settings {
    /// The one constructor: applies every rule of the scheme and returns
    /// every problem, each named by its settings field (`rule`,
    /// `rule[1].cipher_combination`, `rule[0].effective_time_secs`, …) for
    /// the caller to map to its own key path.
    pub fn build(self, common: Common) -> Result<Wangsu, Vec<Problem>> {
        let mut problems = Vec::new();
        if self.rules.is_empty() {
            // Why: with no group every request would be denied.
            problems.push(Problem::field(
                "rule",
                "add at least one rule group ([[site.auth.rule]])",
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in self.rules.into_iter().enumerate() {
            let before = problems.len();
            let at = |field: &str| format!("rule[{i}].{field}");
            let order = parse_combination(&r.combination);
            if order.is_none() {
                problems.push(Problem::field(&at("cipher_combination"), "is not one of key+path+time, key+time+path, path+key+time, path+time+key, time+path+key, time+key+path".to_owned()));
            }
            problems.extend(
                param_name_problems(&[
                    ("cipher_param", &r.cipher_param),
                    ("time_param", &r.time_param),
                ])
                .into_iter()
                .map(|p| p.under(at)),
            );
            let effective_time_secs = match (r.mode, r.effective_time_secs) {
                (EffectiveTimeMode::Duration, Some(t)) if t >= 1 => t,
                (EffectiveTimeMode::Duration, _) => {
                    problems.push(Problem::field(
                        &at("effective_time_secs"),
                        "the duration mode needs an effective time of at least 1 s",
                    ));
                    0
                }
                (_, Some(_)) => {
                    problems.push(Problem::field(
                        &at("effective_time_secs"),
                        "only applies to the duration mode",
                    ));
                    0
                }
                (_, None) => 0,
            };
            if let (Some(order), true) = (order, problems.len() == before) {
                rules.push(Rule {
                    cipher_param: r.cipher_param,
                    time_param: r.time_param,
                    order,
                    time_format: r.time_format,
                    mode: r.mode,
                    effective_time_secs,
                    tolerant_time_secs: r.tolerant_time_secs,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Wangsu {
            params: params_of(&rules),
            rules,
            include_extension: self.path_includes_extension,
            common,
        })
    }
}

/// The Wangsu verifier for one site.
#[derive(Debug, Clone)]
pub struct Wangsu {
    rules: Vec<Rule>,
    params: Vec<String>,
    include_extension: bool,
    common: Common,
}

/// `#1`, `#2`… for the derived `rule` field; borrowed for the first groups
/// so a request does not allocate.
fn rule_label(i: usize) -> Cow<'static, str> {
    const LABELS: [&str; 16] = [
        "#1", "#2", "#3", "#4", "#5", "#6", "#7", "#8", "#9", "#10", "#11", "#12", "#13", "#14",
        "#15", "#16",
    ];
    match LABELS.get(i) {
        Some(l) => Cow::Borrowed(l),
        None => Cow::Owned(format!("#{}", i + 1)),
    }
}

/// How one group judged a request, ranked so the most telling denial wins.
fn rank(d: Decision) -> u8 {
    match d {
        Decision::Allow => 6,
        Decision::Deny(DenyReason::Expired | DenyReason::NotYetValid) => 5,
        Decision::Deny(DenyReason::BadSignature) => 4,
        Decision::Deny(DenyReason::MalformedToken) => 3,
        Decision::Deny(_) => 1,
    }
}

impl Wangsu {
    /// One group with the given parameters and default names (`None` when
    /// [`Settings::build`] refuses them). `effective_time_secs` is read with
    /// [`EffectiveTimeMode::Duration`] only.
    pub fn single(
        combination: &str,
        time_format: WsTimeFormat,
        mode: EffectiveTimeMode,
        effective_time_secs: u64,
        common: Common,
    ) -> Option<Self> {
        Settings {
            rules: vec![RuleSettings {
                cipher_param: DEFAULT_CIPHER_PARAM.to_owned(),
                time_param: DEFAULT_TIME_PARAM.to_owned(),
                combination: combination.to_owned(),
                time_format,
                mode,
                effective_time_secs: (mode == EffectiveTimeMode::Duration)
                    .then_some(effective_time_secs),
                tolerant_time_secs: 0,
            }],
            path_includes_extension: true,
        }
        .build(common)
        .ok()
    }

    /// The path as hashed: with or without the last segment's extension
    /// (either way a prefix of `path`).
    fn signed_path<'a>(&self, path: &'a str) -> &'a str {
        if self.include_extension {
            return path;
        }
        let (dir, last) = last_segment(path);
        &path[..dir.len() + stream_name(last).len()]
    }

    /// The hashed message (the rule's order of key, path and time) under a
    /// key, written to a sink.
    fn message<'m>(rule: &'m Rule, path: &'m str, time: &'m str) -> impl Message + 'm {
        move |key: &Secret, out: &mut dyn FnMut(&[u8])| {
            for part in rule.order {
                out(match part {
                    Part::Key => key.expose().as_bytes(),
                    Part::Path => path.as_bytes(),
                    Part::Time => time.as_bytes(),
                });
            }
        }
    }

    fn window(rule: &Rule, t: u64) -> Window {
        let tol = rule.tolerant_time_secs;
        match rule.mode {
            EffectiveTimeMode::Duration => Window {
                not_before: Some(t.saturating_sub(tol)),
                expires_at: Some(
                    t.saturating_add(rule.effective_time_secs)
                        .saturating_add(tol),
                ),
            },
            EffectiveTimeMode::AbsTime => Window {
                not_before: None,
                expires_at: Some(t.saturating_add(tol)),
            },
            EffectiveTimeMode::NoVerification => Window::default(),
        }
    }

    /// Judges the request against group `i`, with its own key (key `i`) and
    /// the keys bound to no group.
    fn judge<'a>(
        &self,
        i: usize,
        rule: &Rule,
        keys: &KeySet,
        req: &RequestView<'a>,
        path: &'a str,
        now: u64,
    ) -> Option<Verdict<'a>> {
        let [Ok(secret), Ok(time)] =
            query_params(req.query, [&rule.cipher_param, &rule.time_param])
        else {
            return Some(Verdict::deny(DenyReason::MalformedToken));
        };
        let (secret, time) = match (secret, time) {
            (None, None) => return None,
            (Some(s), Some(t)) => (s, t),
            _ => return Some(Verdict::deny(DenyReason::MalformedToken)),
        };
        let derived = Derived::from([
            ("path signed", Cow::Borrowed(path)),
            ("wsTime", Cow::Borrowed(time)),
            ("rule", rule_label(i)),
        ]);
        let t = match rule.time_format {
            WsTimeFormat::Unix => super::parse_dec_time(time),
            WsTimeFormat::Hex => super::parse_hex_time(time),
        };
        let (Some(t), Some(signature)) = (t, hex16(secret)) else {
            return Some(Verdict::pending(DenyReason::MalformedToken, derived));
        };
        let bound = keys.bound();
        let candidates = || {
            keys.iter()
                .enumerate()
                .filter(move |&(j, _)| j == i || j >= bound)
        };
        if candidates().next().is_none() {
            return Some(Verdict::pending(DenyReason::NoKeys, derived));
        }
        let window = Self::window(rule, t);
        let matched = md5x2::first_match(candidates(), Self::message(rule, path, time), &signature);
        Some(Verdict {
            decision: super::decide(matched, window, now, self.common.clock_skew_secs),
            expires_at: window.expires_at,
            derived,
            forward_path: None,
            bound_ip: None,
            matched_key: matched,
        })
    }
}

impl Verifier for Wangsu {
    fn scheme(&self) -> &'static str {
        "wangsu"
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        let path = self.signed_path(req.path);
        let mut best: Option<Verdict<'a>> = None;
        // Groups are judged in order until one allows (nothing outranks
        // that); a URL no group allows meets every group, as with keys in
        // `matching_key`.
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(v) = self.judge(i, rule, keys, req, path, now) else {
                continue;
            };
            if v.decision == Decision::Allow {
                return v;
            }
            if best
                .as_ref()
                .is_none_or(|b| rank(v.decision) > rank(b.decision))
            {
                best = Some(v);
            }
        }
        best.unwrap_or_else(|| Verdict::deny(DenyReason::MissingToken))
    }

    fn auth_params(&self) -> &[String] {
        &self.params
    }

    fn sign(
        &self,
        _host: &str,
        path: &str,
        query: Option<&str>,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        let rule = self.rules.first().ok_or(SignError::NoKey)?;
        let t = match rule.mode {
            EffectiveTimeMode::Duration => expires_at.saturating_sub(rule.effective_time_secs),
            EffectiveTimeMode::AbsTime | EffectiveTimeMode::NoVerification => expires_at,
        };
        let time = match rule.time_format {
            WsTimeFormat::Unix => t.to_string(),
            WsTimeFormat::Hex => format!("{t:x}"),
        };
        let message = Self::message(rule, self.signed_path(path), &time);
        let secret = lower_hex(&md5x2::digest_one(&message, key));
        Ok(Signed {
            path: path.to_owned(),
            query: append_params(
                query,
                &[(&rule.cipher_param, &secret), (&rule.time_param, &time)],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::md5_parts;
    use crate::auth::prop::{param_range, sign_then_tamper, view_of};
    use proptest::prelude::*;

    const C: Common = Common { clock_skew_secs: 0 };
    const COMBOS: [&str; 6] = [
        "key+path+time",
        "key+time+path",
        "path+key+time",
        "path+time+key",
        "time+path+key",
        "time+key+path",
    ];

    fn keys(k: &[&str]) -> KeySet {
        KeySet::new(k.iter().map(|s| Secret::new(*s)).collect())
    }

    #[test]
    fn documented_example_matches() {
        // SCHEMES.md: key mysecretkey, path /live/stream, wsTime 6553f100, key+path+time.
        let v = Wangsu::single(
            "key+path+time",
            WsTimeFormat::Hex,
            EffectiveTimeMode::AbsTime,
            0,
            C,
        )
        .unwrap();
        let q = "wsSecret=230d2d413dd00abfa2a897f05fbbbec5&wsTime=6553f100";
        let verdict = v.verify(
            &view_of("/live/stream", q),
            &keys(&["mysecretkey"]),
            0x6553_f100,
        );
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(
            v.verify(
                &view_of("/live/stream", q),
                &keys(&["mysecretkey"]),
                0x6553_f101
            )
            .decision,
            Decision::Deny(DenyReason::Expired)
        );
    }

    #[test]
    fn all_six_combinations_hash_in_their_order() {
        let k = Secret::new("k");
        for combo in COMBOS {
            let v = Wangsu::single(combo, WsTimeFormat::Unix, EffectiveTimeMode::AbsTime, 0, C)
                .unwrap();
            let parts: Vec<&str> = combo
                .split('+')
                .map(|p| match p {
                    "key" => "k",
                    "path" => "/live/s.flv",
                    _ => "1700000000",
                })
                .collect();
            let expected = lower_hex(&md5_parts(&[
                parts[0].as_bytes(),
                parts[1].as_bytes(),
                parts[2].as_bytes(),
            ]));
            let q = format!("wsSecret={expected}&wsTime=1700000000");
            assert!(
                v.verify(
                    &view_of("/live/s.flv", &q),
                    &KeySet::new(vec![k.clone()]),
                    1_700_000_000
                )
                .is_allowed(),
                "{combo}"
            );
            for other in COMBOS.iter().filter(|c| **c != combo) {
                let w = Wangsu::single(other, WsTimeFormat::Unix, EffectiveTimeMode::AbsTime, 0, C)
                    .unwrap();
                assert!(
                    !w.verify(
                        &view_of("/live/s.flv", &q),
                        &KeySet::new(vec![k.clone()]),
                        0
                    )
                    .is_allowed(),
                    "{combo} accepted as {other}"
                );
            }
        }
    }

    #[test]
    fn duration_mode_with_tolerance() {
        let mut v = Wangsu::single(
            "key+path+time",
            WsTimeFormat::Unix,
            EffectiveTimeMode::Duration,
            100,
            C,
        )
        .unwrap();
        v.rules[0].tolerant_time_secs = 5;
        let k = keys(&["k"]);
        let s = lower_hex(&md5_parts(&[b"k", b"/live/s.flv", b"1000"]));
        let q = format!("wsSecret={s}&wsTime=1000");
        let at = |now| v.verify(&view_of("/live/s.flv", &q), &k, now).decision;
        assert_eq!(at(994), Decision::Deny(DenyReason::NotYetValid));
        assert_eq!(at(995), Decision::Allow);
        assert_eq!(at(1105), Decision::Allow);
        assert_eq!(at(1106), Decision::Deny(DenyReason::Expired));
    }

    #[test]
    fn no_verification_mode_checks_only_the_hash() {
        let v = Wangsu::single(
            "key+path+time",
            WsTimeFormat::Unix,
            EffectiveTimeMode::NoVerification,
            0,
            C,
        )
        .unwrap();
        let s = lower_hex(&md5_parts(&[b"k", b"/live/s.flv", b"5"]));
        assert!(v
            .verify(
                &view_of("/live/s.flv", &format!("wsSecret={s}&wsTime=5")),
                &keys(&["k"]),
                u64::MAX
            )
            .is_allowed());
        assert!(!v
            .verify(
                &view_of("/live/t.flv", &format!("wsSecret={s}&wsTime=5")),
                &keys(&["k"]),
                0
            )
            .is_allowed());
    }

    #[test]
    fn extension_excluded_when_configured() {
        let mut v = Wangsu::single(
            "key+path+time",
            WsTimeFormat::Unix,
            EffectiveTimeMode::AbsTime,
            0,
            C,
        )
        .unwrap();
        v.include_extension = false;
        let s = lower_hex(&md5_parts(&[b"k", b"/live/s", b"1700000000"]));
        let q = format!("wsSecret={s}&wsTime=1700000000");
        assert!(v
            .verify(&view_of("/live/s.flv", &q), &keys(&["k"]), 0)
            .is_allowed());
        assert!(v
            .verify(&view_of("/live/s.m3u8", &q), &keys(&["k"]), 0)
            .is_allowed());
    }

    fn two_groups() -> (Wangsu, KeySet) {
        let raw: RawWangsu = toml::from_str(
            r#"
            [[rule]]
            key = "k1"
            time_format = "hex"
            effective_time_mode = "abstime"
            [[rule]]
            key = "k2"
            cipher_param = "sign"
            time_param = "t"
            cipher_combination = "time+key+path"
            time_format = "UNIX timestamp"
            effective_time_mode = "duration"
            effective_time_secs = 60
            "#,
        )
        .unwrap();
        let env = |_: &str| None;
        let mut ctx = Ctx::new(&env);
        raw.build("auth", C, &mut ctx).unwrap()
    }

    #[test]
    fn any_rule_group_may_accept() {
        let (v, k) = two_groups();
        let s1 = lower_hex(&md5_parts(&[b"k1", b"/a/b.flv", b"64"]));
        assert!(v
            .verify(
                &view_of("/a/b.flv", &format!("wsSecret={s1}&wsTime=64")),
                &k,
                100
            )
            .is_allowed());
        let s2 = lower_hex(&md5_parts(&[b"100", b"k2", b"/a/b.flv"]));
        assert!(v
            .verify(&view_of("/a/b.flv", &format!("sign={s2}&t=100")), &k, 160)
            .is_allowed());
        assert_eq!(
            v.verify(&view_of("/a/b.flv", &format!("sign={s2}&t=100")), &k, 161)
                .decision,
            Decision::Deny(DenyReason::Expired)
        );
        // Group 1's key does not sign for group 2's params.
        let wrong = lower_hex(&md5_parts(&[b"100", b"k1", b"/a/b.flv"]));
        assert_eq!(
            v.verify(
                &view_of("/a/b.flv", &format!("sign={wrong}&t=100")),
                &k,
                100
            )
            .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
        assert_eq!(
            v.verify(&view_of("/a/b.flv", "x=1"), &k, 100).decision,
            Decision::Deny(DenyReason::MissingToken)
        );
        assert_eq!(v.auth_params(), ["wsSecret", "wsTime", "sign", "t"]);
    }

    #[test]
    fn keys_past_the_groups_own_sign_under_every_group() {
        let (v, k) = two_groups();
        assert_eq!(k.bound(), 2);
        let extra = KeySet::new(vec![
            k.get(0).unwrap().clone(),
            k.get(1).unwrap().clone(),
            Secret::new("op"),
        ])
        .bound_first(2);
        let by_op_1 = lower_hex(&md5_parts(&[b"op", b"/a/b.flv", b"64"]));
        let q1 = format!("wsSecret={by_op_1}&wsTime=64");
        let v1 = v.verify(&view_of("/a/b.flv", &q1), &extra, 100);
        assert!(v1.is_allowed());
        assert_eq!(v1.matched_key, Some(2));
        let by_op_2 = lower_hex(&md5_parts(&[b"100", b"op", b"/a/b.flv"]));
        assert!(v
            .verify(
                &view_of("/a/b.flv", &format!("sign={by_op_2}&t=100")),
                &extra,
                100
            )
            .is_allowed());
        // Still: group 1's key does not sign for group 2's params.
        let wrong = lower_hex(&md5_parts(&[b"100", b"k1", b"/a/b.flv"]));
        assert_eq!(
            v.verify(
                &view_of("/a/b.flv", &format!("sign={wrong}&t=100")),
                &extra,
                100
            )
            .decision,
            Decision::Deny(DenyReason::BadSignature)
        );
        // Unbound, every key is tried under every group (push keys).
        let push = KeySet::new(vec![Secret::new("p1"), Secret::new("p2")]);
        let by_p1 = lower_hex(&md5_parts(&[b"100", b"p1", b"/a/b.flv"]));
        assert!(v
            .verify(
                &view_of("/a/b.flv", &format!("sign={by_p1}&t=100")),
                &push,
                100
            )
            .is_allowed());
    }

    fn spec() -> RuleSettings {
        RuleSettings {
            cipher_param: DEFAULT_CIPHER_PARAM.to_owned(),
            time_param: DEFAULT_TIME_PARAM.to_owned(),
            combination: "key+path+time".to_owned(),
            time_format: WsTimeFormat::Hex,
            mode: EffectiveTimeMode::AbsTime,
            effective_time_secs: None,
            tolerant_time_secs: 0,
        }
    }

    fn settings(rules: Vec<RuleSettings>) -> Settings {
        Settings {
            rules,
            path_includes_extension: true,
        }
    }

    #[test]
    fn settings_build_the_same_groups_as_the_config() {
        let second = RuleSettings {
            cipher_param: "sign".into(),
            time_param: "t".into(),
            combination: "time+key+path".into(),
            time_format: WsTimeFormat::Unix,
            mode: EffectiveTimeMode::Duration,
            effective_time_secs: Some(60),
            tolerant_time_secs: 0,
        };
        let v = settings(vec![spec(), second]).build(C).unwrap();
        let k = keys(&["k1", "k2"]);
        let s2 = lower_hex(&md5_parts(&[b"100", b"k2", b"/a/b.flv"]));
        assert!(v
            .verify(&view_of("/a/b.flv", &format!("sign={s2}&t=100")), &k, 160)
            .is_allowed());
        assert_eq!(v.auth_params(), ["wsSecret", "wsTime", "sign", "t"]);
    }

    #[test]
    fn settings_name_every_unusable_field() {
        let bad = |f: fn(&mut RuleSettings)| {
            let mut s = spec();
            f(&mut s);
            let problems = settings(vec![spec(), s]).build(C).unwrap_err();
            problems.into_iter().map(|p| p.path).collect::<Vec<_>>()
        };
        assert_eq!(
            bad(|s| s.combination = "key+key+time".into()),
            ["rule[1].cipher_combination"]
        );
        assert_eq!(
            bad(|s| s.cipher_param = "a b".into()),
            ["rule[1].cipher_param"]
        );
        assert_eq!(
            bad(|s| s.time_param = "wsSecret".into()),
            ["rule[1].time_param"]
        );
        assert_eq!(
            bad(|s| s.mode = EffectiveTimeMode::Duration),
            ["rule[1].effective_time_secs"]
        );
        assert_eq!(
            bad(|s| s.effective_time_secs = Some(5)),
            ["rule[1].effective_time_secs"]
        );
        // Every problem at once.
        assert_eq!(
            bad(|s| {
                s.combination = "key".into();
                s.cipher_param = String::new();
                s.mode = EffectiveTimeMode::Duration;
            }),
            [
                "rule[1].cipher_combination",
                "rule[1].cipher_param",
                "rule[1].effective_time_secs"
            ]
        );
        let none = settings(Vec::new()).build(C).unwrap_err();
        assert_eq!(none[0].path, "rule");
    }

    #[test]
    fn config_problems() {
        let raw: RawWangsu = toml::from_str(
            r#"
            [[rule]]
            key = "k"
            cipher_combination = "key+key+time"
            time_format = "hex"
            effective_time_mode = "duration"
            "#,
        )
        .unwrap();
        let env = |_: &str| None;
        let mut ctx = Ctx::new(&env);
        assert!(raw.build("auth", C, &mut ctx).is_none());
        assert_eq!(ctx.problem_count(), 2);
    }

    proptest! {
        #[test]
        fn sign_then_any_single_byte_change_denies(
            dir in "[a-z]{1,8}", name in "[A-Za-z0-9]{1,16}", exp in 1_000_000u64..4_000_000_000,
            combo in prop::sample::select(COMBOS.to_vec()), hex in any::<bool>(), idx in any::<usize>(), pick in any::<u8>(),
        ) {
            let fmt = if hex { WsTimeFormat::Hex } else { WsTimeFormat::Unix };
            let v = Wangsu::single(combo, fmt, EffectiveTimeMode::Duration, 300, C).unwrap();
            let k = keys(&["group-key"]);
            let path = format!("/{dir}/{name}.flv");
            sign_then_tamper(&v, &k, &path, exp, exp, |pq| vec![
                ("path", 1..pq.find('?').unwrap_or(1)),
                ("wsSecret", param_range(pq, "wsSecret")),
                ("wsTime", param_range(pq, "wsTime")),
            ], (idx, pick));
        }
    }
}
