//! Akamai EdgeAuth 2.0 token authentication: `__token__`.
//!
//! ```text
//! token = [ip=..~][st=..~]exp=..~[acl=..~][id=..~][data=..~]hmac=<hex>
//! hmac  = lower_hex(HMAC-<alg>(hex_decode(KEY), text))
//! text  = the token before "~hmac="                      (mode = "acl")
//!       | the token before "~hmac=" + "~url=" + url       (mode = "url")
//!         then, with a salt, + "~salt=" + salt
//! url   = path                     | escape_early(path)   (escape_early = true)
//! ```
//! This is what Akamai's reference generator (EdgeAuth-Token-Python,
//! `akamai.edgeauth` 0.3.2) signs: its `hash_source` is the token's fields,
//! plus `url=<path>` in url mode, plus `salt=<salt>` when a salt is set,
//! joined by the field delimiter. The salt is never in the token.
//! `<alg>` is SHA-256 unless configured (`sha1`, `md5`); `st`/`exp` are
//! decimal unix seconds.
//!
//! `escape_early` is the generator's option of that name: `ip`, `id`, `data`
//! (in the token) and the url (in the signed text only) are escaped with
//! Python's `quote_plus` (space → `+`, everything but `A-Z a-z 0-9 _ . - ~`
//! → `%XX`), then every `%XX` lowercased. The `acl` is never escaped. The
//! generator's token then holds `%` escapes of its own: it is checked both
//! as the query value decoded once (a client that URL-encoded the token, and
//! what [`Verifier::sign`] emits) and, when that fails, exactly as received
//! (the generator's token pasted raw, as its CLI prints it).
//!
//! The token is read from the query parameter `__token__`, else the cookie of
//! that name, else the request header of that name, and percent-decoded
//! strictly. In acl mode the token's `acl` holds `!`-separated patterns, where
//! `*` matches any run of bytes (`/` included) and `?` exactly one; the request
//! path as sent must match one of them. In url mode the token carries no
//! `acl` and the request path as sent is part of the signed text.
//!
//! Denial order, most fundamental first: malformed token, no keys, bad
//! signature; then, for a genuine token, a path outside its ACL
//! (`outside_acl`), another client's token (`wrong_client`); only then the
//! validity window (`not_yet_valid`, `expired`).

use std::borrow::Cow;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::Deserialize;

use super::{
    append_params, conclude, hex_digest_matches, is_hex_of_len, lower_hex, parse_dec_time,
    percent_decode, percent_decode_into, query_param, Common, Decision, DenyReason, Derived,
    RequestView, SignError, SignOptions, Signed, Verdict, Verifier, Window,
};
use crate::keys::{KeySet, Secret};
use crate::problems::Ctx;

/// Default name of the token's query parameter, cookie and header.
pub const DEFAULT_TOKEN_NAME: &str = "__token__";
/// Default separator between the token's fields (Akamai's default).
pub const DEFAULT_FIELD_DELIMITER: char = '~';
/// Default separator between the patterns of one `acl` field (Akamai's).
pub const ACL_DELIMITER: char = '!';
/// Longest decoded token accepted.
///
/// Why: a token is a few hundred bytes; bounding it bounds the HMAC and ACL
/// work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Field delimiters that would make tokens ambiguous: they occur inside field
/// values (paths, addresses, times), in the `name=value` split, in ACL syntax,
/// or in a query string.
const UNUSABLE_DELIMITERS: &str = "=&#%+!*?/.:-_";

/// ACL delimiters that would make patterns ambiguous: they occur in paths,
/// in ACL syntax, or in a query string.
const UNUSABLE_ACL_DELIMITERS: &str = "=&#%+*?/.:-_";

/// The names of the fields that may precede `hmac`, in Akamai's order.
const FIELDS: [&str; 6] = ["ip", "st", "exp", "acl", "id", "data"];

/// The HMAC's hash function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// HMAC-SHA256 (Akamai's default).
    #[default]
    Sha256,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-MD5.
    Md5,
}

impl Algorithm {
    /// Length of the HMAC in bytes.
    fn output_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha1 => 20,
            Algorithm::Md5 => 16,
        }
    }

    /// The HMAC of the concatenation of `parts` under `key`.
    #[cfg(test)]
    fn mac(self, key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
            let mut m = <M as Mac>::new_from_slice(key).ok()?;
            for p in parts {
                m.update(p);
            }
            Some(m.finalize().into_bytes().to_vec())
        }
        match self {
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
            Algorithm::Md5 => run::<Hmac<md5::Md5>>(key, parts),
        }
    }
}

/// What the token's signature scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The token carries `acl` patterns (one token for a whole HLS directory).
    #[default]
    Acl,
    /// The token signs exactly the request path (`url=` in the signed text).
    Url,
}

/// `[site.auth]` with `scheme = "akamai"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAkamai {
    /// Primary key, hex-encoded as Akamai issues it. `${ENV_VAR}` allowed.
    pub key: String,
    /// Backup key for rotation, hex-encoded. `${ENV_VAR}` allowed.
    #[serde(default)]
    pub backup_key: Option<String>,
    /// HMAC hash: `sha256` (default), `sha1` or `md5`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// `acl` (default: the token carries path patterns) or `url`.
    #[serde(default)]
    pub mode: Mode,
    /// Name of the query parameter, cookie and header. Default `__token__`.
    #[serde(default)]
    pub token_name: Option<String>,
    /// One character between the token's fields. Default `~`.
    #[serde(default)]
    pub field_delimiter: Option<String>,
    /// The generator's `acl_delimiter`: one character between the patterns
    /// of the `acl` field. Default `!`.
    #[serde(default)]
    pub acl_delimiter: Option<String>,
    /// The generator's `salt`: hashed after the fields, never sent in the
    /// token. A secret: `${ENV_VAR}` allowed. Default: none.
    #[serde(default)]
    pub salt: Option<String>,
    /// The generator's `escape_early`: `ip`/`id`/`data` and the url are
    /// `quote_plus`-escaped (lowercase `%xx`) before hashing. Default false.
    #[serde(default)]
    pub escape_early: bool,
}

/// True when `s` is a usable EdgeAuth key: an even number (>0) of hex digits.
fn is_hex_key(s: &str) -> bool {
    !s.is_empty() && hex::decode(s).is_ok()
}

impl RawAkamai {
    pub(super) fn build(
        &self,
        path: &str,
        common: Common,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Akamai, KeySet)> {
        let before = ctx.problem_count();
        let mut keys = Vec::new();
        let configured = [
            ("key", Some(&self.key)),
            ("backup_key", self.backup_key.as_ref()),
        ];
        for (name, raw) in configured {
            let Some(raw) = raw else { continue };
            let at = format!("{path}.{name}");
            if let Some(k) = ctx.secret(&at, raw) {
                if is_hex_key(k.expose()) {
                    keys.push(k);
                } else {
                    // Why: EdgeAuth keys are hex-encoded bytes; hashing the text
                    // instead would produce tokens no Akamai edge accepts.
                    ctx.problem(
                        &at,
                        "must be hex: an even number of 0-9 a-f digits, as Akamai issues EdgeAuth keys",
                    );
                }
            }
        }
        let token_name = ctx.param_name(
            &format!("{path}.token_name"),
            self.token_name.as_deref().unwrap_or(DEFAULT_TOKEN_NAME),
        );
        let delimiter = one_delimiter(
            ctx,
            &format!("{path}.field_delimiter"),
            self.field_delimiter.as_deref(),
            DEFAULT_FIELD_DELIMITER,
            UNUSABLE_DELIMITERS,
        );
        // Any but the field delimiter (never `!`, so the default is fine).
        let acl_delimiter = one_delimiter(
            ctx,
            &format!("{path}.acl_delimiter"),
            self.acl_delimiter.as_deref(),
            ACL_DELIMITER,
            &format!("{UNUSABLE_ACL_DELIMITERS}{delimiter}"),
        );
        // `ctx.secret` refuses an empty, oversized or space-padded salt, and
        // never quotes it. Why not an empty salt as "none": the generator
        // ignores an empty salt, so `salt = ""` would silently not salt.
        let salt = match &self.salt {
            Some(raw) => ctx.secret(&format!("{path}.salt"), raw),
            None => None,
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some((
            Akamai {
                params: vec![token_name],
                algorithm: self.algorithm,
                mode: self.mode,
                delimiter,
                acl_delimiter,
                salt,
                escape_early: self.escape_early,
                common,
            },
            KeySet::new(keys),
        ))
    }
}

/// A configured delimiter: one ASCII punctuation character not in
/// `unusable`; `default` when none is given (or, with a problem recorded,
/// when the given one is not usable).
fn one_delimiter(
    ctx: &mut Ctx<'_>,
    at: &str,
    given: Option<&str>,
    default: char,
    unusable: &str,
) -> char {
    let Some(d) = given else {
        return default;
    };
    let mut chars = d.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_punctuation() && !unusable.contains(c) => c,
        _ => {
            ctx.problem(
                at,
                format!("is not usable; give one ASCII punctuation character other than {unusable} (default {default})"),
            );
            default
        }
    }
}

/// The Akamai EdgeAuth 2.0 verifier for one site.
#[derive(Debug, Clone)]
pub struct Akamai {
    /// `[token_name]`.
    params: Vec<String>,
    algorithm: Algorithm,
    mode: Mode,
    delimiter: char,
    /// Between the patterns of one `acl` field.
    acl_delimiter: char,
    /// Hashed after the fields as `<delimiter>salt=<salt>`; never in the token.
    salt: Option<Secret>,
    /// The generator's `escape_early` (see the module docs).
    escape_early: bool,
    common: Common,
}

/// A token split into its fields; borrowed from the decoded token.
struct Token<'t> {
    /// The text before `<delimiter>hmac=`.
    signed: &'t str,
    hmac: &'t str,
    ip: Option<(&'t str, IpAddr)>,
    st: Option<(&'t str, u64)>,
    exp: (&'t str, u64),
    acl: Option<&'t str>,
    id: Option<&'t str>,
}

impl Akamai {
    /// A verifier with the default token name and field delimiter.
    pub fn new(algorithm: Algorithm, mode: Mode, common: Common) -> Self {
        Akamai {
            params: vec![DEFAULT_TOKEN_NAME.to_owned()],
            algorithm,
            mode,
            delimiter: DEFAULT_FIELD_DELIMITER,
            acl_delimiter: ACL_DELIMITER,
            salt: None,
            escape_early: false,
            common,
        }
    }

    /// The same verifier with the generator's `salt` and `escape_early`.
    pub fn with_generator_options(mut self, salt: Option<Secret>, escape_early: bool) -> Self {
        self.salt = salt;
        self.escape_early = escape_early;
        self
    }

    fn token_name(&self) -> &str {
        &self.params[0]
    }

    /// The raw (still percent-encoded) token: query, then cookie, then header.
    /// A source holding the name twice is ambiguous and malformed.
    fn find_token<'a>(&self, req: &RequestView<'a>) -> Result<Option<&'a str>, DenyReason> {
        let name = self.token_name();
        if let Some(v) = query_param(req.query, name).map_err(|_| DenyReason::MalformedToken)? {
            return Ok(Some(v));
        }
        let Some(headers) = req.headers else {
            return Ok(None);
        };
        if let Some(v) = cookie(headers, name)? {
            return Ok(Some(v));
        }
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().map(Some).map_err(|_| DenyReason::MalformedToken),
            (Some(_), Some(_)) => Err(DenyReason::MalformedToken),
            (None, _) => Ok(None),
        }
    }

    /// Splits a decoded token; `None` when it is not strictly of the form.
    fn parse<'t>(&self, token: &'t str) -> Option<Token<'t>> {
        let (signed, last) = token.rsplit_once(self.delimiter)?;
        let hmac = last.strip_prefix("hmac=")?;
        if !is_hex_of_len(hmac, 2 * self.algorithm.output_len()) {
            return None;
        }
        let mut slots: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
        for field in signed.split(self.delimiter) {
            let (name, value) = field.split_once('=')?;
            // An earlier `hmac` is not in FIELDS: hmac must be last.
            let i = FIELDS.iter().position(|f| *f == name)?;
            if slots[i].replace(value).is_some() {
                return None;
            }
        }
        let [ip, st, exp, acl, id, _data] = slots;
        let ip = match ip {
            Some(s) => Some((s, self.parse_ip(s)?)),
            None => None,
        };
        let st = match st {
            Some(s) => Some((s, parse_dec_time(s)?)),
            None => None,
        };
        let exp = exp?;
        let exp = (exp, parse_dec_time(exp)?);
        match (self.mode, acl) {
            (Mode::Acl, Some(a)) if !a.is_empty() => {}
            (Mode::Url, None) => {}
            _ => return None,
        }
        Some(Token {
            signed,
            hmac,
            ip,
            st,
            exp,
            acl,
            id,
        })
    }

    /// The token's `ip` value as an address; escaped in the token when
    /// `escape_early` (`2001%3adb8%3a%3a1`).
    fn parse_ip(&self, value: &str) -> Option<IpAddr> {
        if !self.escape_early {
            return Some(value.parse::<IpAddr>().ok()?.to_canonical());
        }
        // Decoded on the stack: no address is longer than 45 bytes, so a
        // longer text (which would not parse) is refused as it is.
        let mut buf = [0u8; 64];
        let mut len = 0;
        let mut fits = true;
        let decoded = percent_decode_into(value, |b| match buf.get_mut(len..len + b.len()) {
            Some(dst) if fits => {
                dst.copy_from_slice(b);
                len += b.len();
            }
            _ => fits = false,
        });
        if !decoded || !fits {
            return None;
        }
        let text = std::str::from_utf8(&buf[..len]).ok()?;
        Some(text.parse::<IpAddr>().ok()?.to_canonical())
    }

    /// `value` as the generator writes it: escaped when `escape_early`.
    fn early<'v>(&self, value: &'v str) -> Cow<'v, str> {
        if self.escape_early {
            Cow::Owned(escape_early(value))
        } else {
            Cow::Borrowed(value)
        }
    }

    /// Feeds `mac` the signed text, plus `<delimiter>url=<path>` in url
    /// mode, plus `<delimiter>salt=<salt>` when salted (the generator's
    /// `hash_source` order).
    fn feed(&self, mac: &mut impl Mac, signed: &str, path: &str) {
        let mut buf = [0u8; 4];
        let d = self.delimiter.encode_utf8(&mut buf).as_bytes();
        mac.update(signed.as_bytes());
        if self.mode == Mode::Url {
            mac.update(d);
            mac.update(b"url=");
            if self.escape_early {
                escape_early_into(path, |b| mac.update(b));
            } else {
                mac.update(path.as_bytes());
            }
        }
        if let Some(salt) = &self.salt {
            mac.update(d);
            mac.update(b"salt=");
            mac.update(salt.expose().as_bytes());
        }
    }

    /// The HMAC over what [`Akamai::feed`] hashes, under the raw `key`.
    fn digest(&self, key: &[u8], signed: &str, path: &str) -> Option<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(
            v: &Akamai,
            key: &[u8],
            signed: &str,
            path: &str,
        ) -> Option<Vec<u8>> {
            let mut m = <M as Mac>::new_from_slice(key).ok()?;
            v.feed(&mut m, signed, path);
            Some(m.finalize().into_bytes().to_vec())
        }
        match self.algorithm {
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(self, key, signed, path),
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(self, key, signed, path),
            Algorithm::Md5 => run::<Hmac<md5::Md5>>(self, key, signed, path),
        }
    }

    /// True when `hmac` (hex) is the HMAC of the signed text under `key`.
    /// Keys that are not hex (e.g. synced from elsewhere) match nothing.
    fn key_signed(&self, key: &Secret, signed: &str, path: &str, hmac: &str) -> bool {
        match self.algorithm {
            Algorithm::Sha256 => {
                self.key_signed_with::<Hmac<sha2::Sha256>>(key, signed, path, hmac)
            }
            Algorithm::Sha1 => self.key_signed_with::<Hmac<sha1::Sha1>>(key, signed, path, hmac),
            Algorithm::Md5 => self.key_signed_with::<Hmac<md5::Md5>>(key, signed, path, hmac),
        }
    }

    fn key_signed_with<M>(&self, key: &Secret, signed: &str, path: &str, hmac: &str) -> bool
    where
        M: Mac + hmac::digest::KeyInit + Clone + Send + Sync + 'static,
    {
        // Why cached: the key schedule (hex decoding, then hashing the
        // padded key twice) depends on the key alone; kept with the
        // secret, a request pays only for its own text.
        let derive = |k: &str| {
            KeySchedule::<M>(
                hex::decode(k)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .and_then(|k| <M as Mac>::new_from_slice(&k).ok()),
            )
        };
        let fresh;
        let schedule = match key.derived(derive) {
            Some(s) => s,
            None => {
                fresh = derive(key.expose());
                &fresh
            }
        };
        let Some(mac) = &schedule.0 else {
            return false;
        };
        let mut mac = mac.clone();
        self.feed(&mut mac, signed, path);
        hex_digest_matches(&mac.finalize().into_bytes(), hmac)
    }
}

/// An HMAC keyed with one secret, before any message: what
/// [`Secret::derived`] keeps per key (`None`: the key is not non-empty hex).
/// Private to this scheme, one type per hash function, as that contract asks.
struct KeySchedule<M>(Option<M>);

/// The value of cookie `name` across every `Cookie` header, without a pair of
/// surrounding double quotes (RFC 6265 `cookie-value`).
fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Result<Option<&'h str>, DenyReason> {
    let mut found = None;
    for header in headers.get_all(http::header::COOKIE) {
        // Bytes, not `to_str`: another cookie's non-ASCII value must not hide ours.
        for pair in header.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if &pair[..eq] != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(DenyReason::MalformedToken);
            }
            let value = &pair[eq + 1..];
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = Some(std::str::from_utf8(value).map_err(|_| DenyReason::MalformedToken)?);
        }
    }
    Ok(found)
}

/// True when `path` matches one of the patterns of `acl`, separated by
/// `delimiter` (`!` by default).
fn acl_covers(acl: &str, delimiter: char, path: &str) -> bool {
    acl.split(delimiter)
        .any(|pattern| glob_matches(pattern.as_bytes(), path.as_bytes()))
}

/// `*` matches any run of bytes (including `/`), `?` exactly one byte, any
/// other byte itself. Paths on the wire are ASCII (non-ASCII is
/// percent-encoded), so a byte is a character; `?` does not match a whole
/// `%XX` escape.
///
/// Greedy with backtracking to the last `*`: O(pattern × path) at worst, and
/// only reached for patterns a key signed.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// The generator's `_escape_early`: Python's `quote_plus(text)` (UTF-8;
/// `A-Z a-z 0-9 _ . - ~` kept, space → `+`, any other byte → `%XX`) with
/// every `%XX` then lowercased.
fn escape_early(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape_early_into(text, |b| out.extend_from_slice(b));
    String::from_utf8(out).unwrap_or_default()
}

/// [`escape_early`] in pieces, without a buffer (the verify path hashes
/// them as they come).
fn escape_early_into(text: &str, mut out: impl FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = text.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'~') {
            continue;
        }
        out(&b[run..i]);
        if c == b' ' {
            out(b"+");
        } else {
            out(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0x0f)]]);
        }
        run = i + 1;
    }
    out(&b[run..]);
}

/// Percent-encodes what a query value cannot hold raw. `~ = / * !` stay raw.
///
/// Why `+` too: form decoders (some CDNs, origins, log tools) read it as a space.
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'&' | b'#' | b'%' | b'+') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Verifier for Akamai {
    fn scheme(&self) -> &'static str {
        "akamai"
    }

    fn token_carrier(&self) -> Option<&str> {
        Some(self.token_name())
    }

    fn verify<'a>(&self, req: &RequestView<'a>, keys: &KeySet, now: u64) -> Verdict<'a> {
        let raw = match self.find_token(req) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Verdict::deny(DenyReason::MissingToken),
            Err(reason) => return Verdict::deny(reason),
        };
        // Without a `%` the decoded token is the raw one: borrow it (and
        // the derived fields from it) rather than copy.
        let token: Cow<'a, str> = if raw.contains('%') {
            match percent_decode(raw).and_then(|t| String::from_utf8(t).ok()) {
                // The token's size is what it decodes to (the query form
                // escapes it further).
                Some(t) if t.len() > MAX_TOKEN_BYTES => {
                    return Verdict::deny(DenyReason::MalformedToken)
                }
                Some(t) => Cow::Owned(t),
                None if raw.len() > MAX_TOKEN_BYTES => {
                    return Verdict::deny(DenyReason::MalformedToken)
                }
                // A `%` that does not decode (`%zz`, or bytes that are no
                // UTF-8, such as an acl for `/live/caf%E9/*`): only the
                // token as received can be genuine. One that is not (no
                // key signed it) stays malformed, as it cannot be read.
                None => {
                    let as_received = self.verify_token(raw, req, keys, now, Cow::Borrowed);
                    return match as_received.decision {
                        Decision::Deny(DenyReason::BadSignature) => {
                            Verdict::deny(DenyReason::MalformedToken)
                        }
                        _ => as_received,
                    };
                }
            }
        } else if raw.len() > MAX_TOKEN_BYTES {
            return Verdict::deny(DenyReason::MalformedToken);
        } else {
            Cow::Borrowed(raw)
        };
        let verdict = match &token {
            Cow::Borrowed(t) => self.verify_token(t, req, keys, now, Cow::Borrowed),
            Cow::Owned(t) => self.verify_token(t, req, keys, now, |v| Cow::Owned(v.to_owned())),
        };
        // Why a second reading: a token may hold `%xx` inside its signed
        // text (escape_early escapes; an acl, id or data written with
        // escapes, e.g. an acl for `/live/a%20b/*`, which matches the path
        // as sent), so the generator's token pasted unencoded into a URL,
        // cookie or header is only genuine as received. Both readings must
        // carry a valid HMAC over exactly the text they parse, so accepting
        // either grants nothing a key did not sign; it costs at most one
        // more HMAC per key, and only for tokens holding a `%`.
        if token != raw
            && raw.len() <= MAX_TOKEN_BYTES
            && matches!(
                verdict.decision,
                Decision::Deny(DenyReason::MalformedToken | DenyReason::BadSignature)
            )
        {
            let as_received = self.verify_token(raw, req, keys, now, Cow::Borrowed);
            if as_received.decision != Decision::Deny(DenyReason::MalformedToken) {
                return as_received;
            }
        }
        verdict
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
        self.sign_with(host, path, query, &SignOptions::default(), key, expires_at)
    }

    /// Signs like the reference generator: `ip` from `opts.client_ip`, and in
    /// acl mode the acl `opts.acl` (patterns joined by `!`) or else the exact
    /// path. The signed URL must verify: an acl that does not cover `path`
    /// is refused.
    fn sign_with(
        &self,
        _host: &str,
        path: &str,
        query: Option<&str>,
        opts: &SignOptions,
        key: &Secret,
        expires_at: u64,
    ) -> Result<Signed, SignError> {
        // A key that is not hex cannot sign (build rejects such keys).
        let key = hex::decode(key.expose())
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or(SignError::NoKey)?;
        let d = self.delimiter;
        let mut fields = String::new();
        if let Some(ip) = opts.client_ip {
            let ip = ip.to_canonical().to_string();
            fields.push_str(&format!("ip={}{d}", self.early(&ip)));
        }
        fields.push_str(&format!("exp={expires_at}"));
        match (self.mode, opts.acl.as_deref()) {
            (Mode::Acl, Some(acl)) => {
                check_acl(acl, d, self.acl_delimiter)?;
                if !acl_covers(acl, self.acl_delimiter, path) {
                    return Err(SignError::BadPath(format!(
                        "the acl does not cover {}; the signed URL would be denied (outside_acl)",
                        path.escape_default()
                    )));
                }
                fields.push_str(&format!("{d}acl={acl}"));
            }
            (Mode::Acl, None) => {
                // Why: the acl is the exact path; ACL syntax or the delimiter in
                // it would widen the grant or break the token.
                let ad = self.acl_delimiter;
                if path.contains([d, ad, '*', '?']) {
                    return Err(SignError::BadPath(format!(
                        "an Akamai acl cannot hold a path with {d}, {ad}, * or ?"
                    )));
                }
                fields.push_str(&format!("{d}acl={path}"));
            }
            (Mode::Url, Some(_)) => {
                return Err(SignError::Unsupported(
                    "an ACL pattern (--acl) needs mode = \"acl\"; this site's tokens sign exact URLs (mode = \"url\")",
                ))
            }
            (Mode::Url, None) => {}
        }
        let mac = self.digest(&key, &fields, path).ok_or(SignError::NoKey)?;
        let token = format!("{fields}{d}hmac={}", lower_hex(&mac));
        // The verifier refuses longer tokens (it bounds the work of an
        // unauthenticated request): never sign one it would refuse.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(SignError::BadPath(format!(
                "the token would be longer than {MAX_TOKEN_BYTES} bytes; sign a shorter path or an ACL pattern"
            )));
        }
        Ok(Signed {
            path: path.to_owned(),
            query: append_params(query, &[(self.token_name(), &encode_query_value(&token))]),
        })
    }
}

/// Checks an ACL to sign: `!`-separated patterns, each starting with `/` or
/// `*` (a request path starts with `/`, so anything else matches nothing),
/// of printable ASCII (paths on the wire are ASCII), without the field
/// delimiter (it would end the `acl` field).
fn check_acl(acl: &str, delimiter: char, acl_delimiter: char) -> Result<(), SignError> {
    for pattern in acl.split(acl_delimiter) {
        if !(pattern.starts_with('/') || pattern.starts_with('*')) {
            return Err(SignError::BadPath(format!(
                "acl pattern `{}` must start with / or * (patterns are separated by {acl_delimiter})",
                pattern.escape_default()
            )));
        }
        if !pattern.bytes().all(|b| b.is_ascii_graphic()) || pattern.contains(delimiter) {
            return Err(SignError::BadPath(format!(
                "acl pattern `{}` must be printable ASCII without spaces or the field delimiter {delimiter}",
                pattern.escape_default()
            )));
        }
    }
    Ok(())
}

impl Akamai {
    /// Verifies one reading of the token (see [`Verifier::verify`]);
    /// `keep` makes a derived field of a part of the token (borrowed when
    /// the token is the request's own text).
    fn verify_token<'a, 't>(
        &self,
        token: &'t str,
        req: &RequestView<'a>,
        keys: &KeySet,
        now: u64,
        keep: impl Fn(&'t str) -> Cow<'a, str>,
    ) -> Verdict<'a> {
        let Some(t) = self.parse(token) else {
            return Verdict::deny(DenyReason::MalformedToken);
        };

        let mut derived = Derived::from([("exp", keep(t.exp.0))]);
        if let Some((st, _)) = t.st {
            derived.push("st", keep(st));
        }
        match (self.mode, t.acl) {
            (Mode::Acl, Some(acl)) => derived.push("acl", keep(acl)),
            _ => derived.push("url", Cow::Borrowed(req.path)),
        }
        if let Some((ip, _)) = t.ip {
            derived.push("ip", keep(ip));
        }
        if let Some(id) = t.id {
            derived.push("id", keep(id));
        }

        let window = Window {
            not_before: t.st.map(|(_, st)| st),
            expires_at: Some(t.exp.1),
        };
        let mut verdict = conclude(
            derived,
            keys,
            window,
            now,
            self.common.clock_skew_secs,
            |key| self.key_signed(key, t.signed, req.path, t.hmac),
        );
        if matches!(
            verdict.decision,
            Decision::Deny(DenyReason::BadSignature | DenyReason::NoKeys)
        ) {
            return verdict;
        }
        // The token is genuine; now its scope, before the client and the
        // window: a token for another directory is denied as such even when
        // it has also expired.
        if let (Mode::Acl, Some(acl)) = (self.mode, t.acl) {
            if !acl_covers(acl, self.acl_delimiter, req.path) {
                verdict.decision = Decision::Deny(DenyReason::OutsideAcl);
                return verdict;
            }
        }
        if let Some((_, bound)) = t.ip {
            if req.client_ip.map(|ip| ip.to_canonical()) != Some(bound) {
                verdict.decision = Decision::Deny(DenyReason::WrongClient);
            }
            verdict.bound_ip = Some(bound);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl_covers_default(acl: &str, path: &str) -> bool {
        acl_covers(acl, ACL_DELIMITER, path)
    }
    use crate::auth::prop::{sign_then_tamper, view_of};
    use proptest::prelude::*;

    const C: Common = Common { clock_skew_secs: 0 };
    const KEY: &str = "aabbccddeeff00112233445566778899";
    const EXP: u64 = 1_700_000_000;

    /// Computed independently with Python's hmac/hashlib, as
    /// EdgeAuth-Token-Python does: `hmac.new(a2b_hex(KEY), "~".join(fields), sha256)`.
    const SHA256_ACL: &str = "exp=1700000000~acl=/live/*~hmac=b001693dbba3621846f08184a0b838fad4b49103e9f51702cc74d87a86431936";
    const SHA1_ACL: &str =
        "exp=1700000000~acl=/live/*~hmac=0215fe2430fa9d40ffa7c76d0bbf4b0c0f5f5173";
    const MD5_ACL: &str = "exp=1700000000~acl=/live/*~hmac=96b16d938618a26622ffbe4135f82a96";
    /// Hash source `exp=1700000000~url=/live/a.m3u8`.
    const SHA256_URL: &str =
        "exp=1700000000~hmac=871e77a837e8d376329bd96610fa30b03813240aa28744d36d6f3af6d8b8d903";
    /// Every optional field, and an acl list with `?`.
    const SHA256_FULL: &str = "ip=203.0.113.7~st=1699990000~exp=1700000000~acl=/live/*!/vod/??.mp4~id=abc~hmac=37a45fb8087c54aa9b3bf75d8b3c66d10b3fad5f60598bc8f536daa3512d22e8";
    /// `exp=1700000000,acl=/live/*` with `,` as the field delimiter.
    const SHA256_COMMA: &str = "exp=1700000000,acl=/live/*,hmac=0eaf72c73b7090b218e6246c8b4f756190ef79aba416d558a25bcfa34fb663a5";

    fn keys(k: &[&str]) -> KeySet {
        KeySet::new(k.iter().map(|s| Secret::new(*s)).collect())
    }

    fn acl() -> Akamai {
        Akamai::new(Algorithm::Sha256, Mode::Acl, C)
    }

    fn q(token: &str) -> String {
        format!("__token__={token}")
    }

    fn decide(v: &Akamai, path: &str, query: &str, now: u64) -> Decision {
        v.verify(&view_of(path, query), &keys(&[KEY]), now).decision
    }

    fn deny(r: DenyReason) -> Decision {
        Decision::Deny(r)
    }

    fn build(raw: &RawAkamai, env: &dyn Fn(&str) -> Option<String>) -> (Option<Akamai>, usize) {
        let mut ctx = Ctx::new(env);
        let built = raw.build("site.auth", C, &mut ctx).map(|(v, _)| v);
        (built, ctx.problem_count())
    }

    fn raw(key: &str) -> RawAkamai {
        RawAkamai {
            key: key.to_owned(),
            backup_key: None,
            algorithm: Algorithm::default(),
            mode: Mode::default(),
            token_name: None,
            field_delimiter: None,
            acl_delimiter: None,
            salt: None,
            escape_early: false,
        }
    }

    #[test]
    fn reference_generator_vector_is_allowed() {
        let query = q(SHA256_ACL);
        let verdict = acl().verify(&view_of("/live/stream.m3u8", &query), &keys(&[KEY]), EXP);
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.expires_at, Some(EXP));
        assert_eq!(
            verdict.derived,
            Derived::from([
                ("exp", Cow::Borrowed("1700000000")),
                ("acl", Cow::Borrowed("/live/*")),
            ])
        );
        assert_eq!(verdict.matched_key, Some(0));
    }

    /// EdgeAuth-Token-Python without escape_early copies acl and data into
    /// the token as given: `generate_acl_token('/live/a%20b/*')` and
    /// `E(payload='a%2Fb').generate_acl_token('/live/*')` (HMACs computed
    /// independently with Python's hmac over the hash source).
    #[test]
    fn tokens_holding_escapes_verify_as_received_without_escape_early() {
        let spaced = "exp=1700000000~acl=/live/a%20b/*~hmac=6997a0329bcb381b3685915c749d9952a30a336fc6f40dec526847e30795bf0d";
        assert_eq!(
            decide(&acl(), "/live/a%20b/x.ts", &q(spaced), EXP),
            Decision::Allow
        );
        assert_eq!(
            decide(&acl(), "/live/a%20b/x.ts", &q(spaced), EXP + 1),
            deny(DenyReason::Expired)
        );
        let data = "exp=1700000000~acl=/live/*~data=a%2Fb~hmac=ba9ad32d7c55c051728af6eb341a8134d9dcbcda9896a7405141577b39876653";
        assert_eq!(decide(&acl(), "/live/x.ts", &q(data), EXP), Decision::Allow);
        // An escape that decodes to no UTF-8: the token as received.
        let latin = "exp=1700000000~acl=/live/caf%E9/*~hmac=47d5fb420692f5d6a4c87a5639e04f49ffdd4d9aed9c2db3ac9ed5c84d1679d6";
        assert_eq!(
            decide(&acl(), "/live/caf%E9/x.ts", &q(latin), EXP),
            Decision::Allow
        );
        // The same token with the escape altered is no token of the key.
        let altered = data.replace("a%2Fb", "a%2Fc");
        assert_eq!(
            decide(&acl(), "/live/x.ts", &q(&altered), EXP),
            deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn sign_reproduces_the_reference_generator() {
        let v = Akamai::new(Algorithm::Sha256, Mode::Url, C);
        let s = v
            .sign("h", "/live/a.m3u8", Some("x=1"), &Secret::new(KEY), EXP)
            .unwrap();
        assert_eq!(s.query, format!("x=1&{}", q(SHA256_URL)));
        assert_eq!(s.path, "/live/a.m3u8");
        let s = acl()
            .sign("h", "/live/a.m3u8", None, &Secret::new(KEY), EXP)
            .unwrap();
        let mac = lower_hex(
            &Algorithm::Sha256
                .mac(
                    &hex::decode(KEY).unwrap(),
                    &[b"exp=1700000000~acl=/live/a.m3u8"],
                )
                .unwrap(),
        );
        assert_eq!(
            s.query,
            format!("__token__=exp=1700000000~acl=/live/a.m3u8~hmac={mac}")
        );
    }

    #[test]
    fn sha1_and_md5_when_configured() {
        for (alg, token) in [(Algorithm::Sha1, SHA1_ACL), (Algorithm::Md5, MD5_ACL)] {
            let v = Akamai::new(alg, Mode::Acl, C);
            assert_eq!(decide(&v, "/live/a.ts", &q(token), EXP), Decision::Allow);
            // Another algorithm's hmac has the wrong length: malformed.
            assert_eq!(
                decide(&v, "/live/a.ts", &q(SHA256_ACL), EXP),
                deny(DenyReason::MalformedToken)
            );
            let s = v
                .sign("h", "/live/b.ts", None, &Secret::new(KEY), EXP)
                .unwrap();
            assert_eq!(decide(&v, "/live/b.ts", &s.query, EXP), Decision::Allow);
        }
    }

    #[test]
    fn acl_wildcards_cover_subpaths_lists_and_single_chars() {
        assert!(acl_covers_default("/live/*", "/live/a/b.ts"));
        assert!(acl_covers_default("/live/*", "/live/"));
        assert!(!acl_covers_default("/live/*", "/live"));
        assert!(!acl_covers_default("/live/*", "/vod/live/a.ts"));
        assert!(acl_covers_default("/a/*/c*.ts", "/a/x/y/c1.ts"));
        assert!(!acl_covers_default("/a/*/c*.ts", "/a/x/y/c1.m3u8"));
        assert!(acl_covers_default("/vod/??.mp4", "/vod/ab.mp4"));
        assert!(!acl_covers_default("/vod/??.mp4", "/vod/abc.mp4"));
        assert!(!acl_covers_default("/vod/??.mp4", "/vod/a.mp4"));
        assert!(acl_covers_default("/x!/live/*", "/live/s.ts"));
        assert!(acl_covers_default("/x!/live/*", "/x"));
        assert!(!acl_covers_default("/x!/live/*", "/x/y"));
        assert!(acl_covers_default("*", "/anything/at/all"));
        assert!(!acl_covers_default("", "/"));

        let v = acl();
        let k = keys(&[KEY]);
        let query = q(SHA256_FULL);
        let at = |path: &str| {
            let mut req = view_of(path, &query);
            req.client_ip = Some("203.0.113.7".parse().unwrap());
            v.verify(&req, &k, EXP).decision
        };
        assert_eq!(at("/live/a/b.ts"), Decision::Allow);
        assert_eq!(at("/vod/ab.mp4"), Decision::Allow);
        assert_eq!(at("/vod/abc.mp4"), deny(DenyReason::OutsideAcl));
    }

    #[test]
    fn genuine_token_for_another_path_is_outside_acl() {
        assert_eq!(
            decide(&acl(), "/vod/a.ts", &q(SHA256_ACL), EXP),
            deny(DenyReason::OutsideAcl)
        );
        // …even when also expired: scope is decided before the window.
        assert_eq!(
            decide(&acl(), "/vod/a.ts", &q(SHA256_ACL), EXP + 1),
            deny(DenyReason::OutsideAcl)
        );
        // A forged token for that path is still bad_signature: the signature
        // is checked first.
        let forged = SHA256_ACL.replace("/live/*", "/vod/*");
        assert_eq!(
            decide(&acl(), "/vod/a.ts", &q(&forged), EXP),
            deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn url_mode_signs_the_request_path() {
        let v = Akamai::new(Algorithm::Sha256, Mode::Url, C);
        let query = q(SHA256_URL);
        let verdict = v.verify(&view_of("/live/a.m3u8", &query), &keys(&[KEY]), EXP);
        assert_eq!(verdict.decision, Decision::Allow);
        assert!(verdict
            .derived
            .contains(&("url", Cow::Borrowed("/live/a.m3u8"))));
        assert_eq!(
            decide(&v, "/live/b.m3u8", &q(SHA256_URL), EXP),
            deny(DenyReason::BadSignature)
        );
        // A url-mode token carries no acl, and an acl-mode one needs it.
        assert_eq!(
            decide(&v, "/live/a.m3u8", &q(SHA256_ACL), EXP),
            deny(DenyReason::MalformedToken)
        );
        assert_eq!(
            decide(&acl(), "/live/a.m3u8", &q(SHA256_URL), EXP),
            deny(DenyReason::MalformedToken)
        );
    }

    #[test]
    fn ip_binding_match_mismatch_and_absent() {
        let v = acl();
        let k = keys(&[KEY]);
        let query = q(SHA256_FULL);
        let with = |ip: Option<&str>| {
            let mut req = view_of("/live/s.ts", &query);
            req.client_ip = ip.map(|s| s.parse().unwrap());
            v.verify(&req, &k, EXP)
        };
        let ok = with(Some("203.0.113.7"));
        assert_eq!(ok.decision, Decision::Allow);
        assert!(ok.derived.contains(&("ip", Cow::Borrowed("203.0.113.7"))));
        assert!(ok.derived.contains(&("id", Cow::Borrowed("abc"))));
        assert!(ok.derived.contains(&("st", Cow::Borrowed("1699990000"))));
        // The IPv4-mapped IPv6 form of the same client is the same client.
        assert_eq!(with(Some("::ffff:203.0.113.7")).decision, Decision::Allow);
        assert_eq!(
            with(Some("203.0.113.8")).decision,
            deny(DenyReason::WrongClient)
        );
        assert_eq!(with(None).decision, deny(DenyReason::WrongClient));
        // A token without ip= is not bound to any client.
        assert_eq!(
            v.verify(&view_of("/live/s.ts", &q(SHA256_ACL)), &k, EXP)
                .decision,
            Decision::Allow
        );
    }

    #[test]
    fn start_time_not_yet_valid_until_st() {
        let k = keys(&[KEY]);
        let query = q(SHA256_FULL);
        for (skew, now, expected) in [
            (0, 1_699_989_999, deny(DenyReason::NotYetValid)),
            (0, 1_699_990_000, Decision::Allow),
            (5, 1_699_989_995, Decision::Allow),
            (5, 1_699_989_994, deny(DenyReason::NotYetValid)),
        ] {
            let v = Akamai::new(
                Algorithm::Sha256,
                Mode::Acl,
                Common {
                    clock_skew_secs: skew,
                },
            );
            let mut req = view_of("/live/s.ts", &query);
            req.client_ip = Some("203.0.113.7".parse().unwrap());
            assert_eq!(v.verify(&req, &k, now).decision, expected, "{skew} {now}");
        }
    }

    #[test]
    fn expiry_boundary_now_equal_allowed_plus_one_denied() {
        let v = acl();
        assert_eq!(
            decide(&v, "/live/a.ts", &q(SHA256_ACL), EXP),
            Decision::Allow
        );
        assert_eq!(
            decide(&v, "/live/a.ts", &q(SHA256_ACL), EXP + 1),
            deny(DenyReason::Expired)
        );
        let skewed = Akamai::new(Algorithm::Sha256, Mode::Acl, Common { clock_skew_secs: 3 });
        assert_eq!(
            decide(&skewed, "/live/a.ts", &q(SHA256_ACL), EXP + 3),
            Decision::Allow
        );
        assert_eq!(
            decide(&skewed, "/live/a.ts", &q(SHA256_ACL), EXP + 4),
            deny(DenyReason::Expired)
        );
    }

    #[test]
    fn token_from_cookie_or_header_when_not_in_query() {
        let v = acl();
        let k = keys(&[KEY]);
        let check = |headers: &http::HeaderMap, query: &str| {
            let mut req = view_of("/live/a.ts", query);
            req.headers = Some(headers);
            v.verify(&req, &k, EXP).decision
        };
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append(
            "cookie",
            format!("b=2; __token__={SHA256_ACL}; c=3").parse().unwrap(),
        );
        assert_eq!(check(&h, "x=1"), Decision::Allow);
        // Quoted cookie values are unwrapped.
        let mut quoted = http::HeaderMap::new();
        quoted.append(
            "cookie",
            format!("__token__=\"{SHA256_ACL}\"").parse().unwrap(),
        );
        assert_eq!(check(&quoted, ""), Decision::Allow);
        // The same cookie twice is ambiguous.
        h.append("cookie", format!("__token__={SHA1_ACL}").parse().unwrap());
        assert_eq!(check(&h, ""), deny(DenyReason::MalformedToken));

        let mut h = http::HeaderMap::new();
        h.insert("__token__", SHA256_ACL.parse().unwrap());
        assert_eq!(check(&h, ""), Decision::Allow);
        // The query wins over the header.
        assert_eq!(check(&h, &q(SHA1_ACL)), deny(DenyReason::MalformedToken));
        h.append("__token__", SHA256_ACL.parse().unwrap());
        assert_eq!(check(&h, ""), deny(DenyReason::MalformedToken));

        assert_eq!(
            check(&http::HeaderMap::new(), ""),
            deny(DenyReason::MissingToken)
        );
    }

    #[test]
    fn percent_encoded_token_is_decoded() {
        let encoded = SHA256_ACL.replace('~', "%7E").replace('/', "%2F");
        assert_eq!(
            decide(&acl(), "/live/a.ts", &q(&encoded), EXP),
            Decision::Allow
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let h = "b001693dbba3621846f08184a0b838fad4b49103e9f51702cc74d87a86431936";
        let cases = [
            format!("exp=1700000000~acl=/live/*~foo=1~hmac={h}"),
            format!("exp=1700000000~acl=/live/*~exp=1700000000~hmac={h}"),
            format!("acl=/live/*~hmac={h}"),
            format!("exp=17000000x0~acl=/live/*~hmac={h}"),
            format!("exp=~acl=/live/*~hmac={h}"),
            format!("st=soon~exp=1700000000~acl=/live/*~hmac={h}"),
            format!("ip=not-an-ip~exp=1700000000~acl=/live/*~hmac={h}"),
            format!("exp=1700000000~acl=~hmac={h}"),
            "exp=1700000000~acl=/live/*~hmac=zz01693dbba3621846f08184a0b838fad4b49103e9f51702cc74d87a86431936".to_owned(),
            format!("exp=1700000000~acl=/live/*~hmac={}", &h[1..]),
            format!("exp=1700000000~acl=/live/*~hmac={h}~hmac={h}"),
            format!("exp=1700000000~hmac={h}~acl=/live/*"),
            format!("hmac={h}"),
            format!("exp=1700000000~acl~hmac={h}"),
            "exp=1700000000~acl=/live/*".to_owned(),
            format!("exp=1700000000~acl=/live/%zz~hmac={h}"),
            format!("exp=1700000000~acl=/live/%2~hmac={h}"),
            format!("exp=1700000000~acl=/live/%ff~hmac={h}"),
            String::new(),
            format!("{}~hmac={h}", "x".repeat(MAX_TOKEN_BYTES)),
        ];
        for token in &cases {
            assert_eq!(
                decide(&acl(), "/live/a.ts", &q(token), EXP),
                deny(DenyReason::MalformedToken),
                "{token}"
            );
        }
        // A token given twice in the query is ambiguous.
        let twice = format!("{}&{}", q(SHA256_ACL), q(SHA256_ACL));
        assert_eq!(
            decide(&acl(), "/live/a.ts", &twice, EXP),
            deny(DenyReason::MalformedToken)
        );
    }

    #[test]
    fn missing_token_bad_signature_and_no_keys() {
        let v = acl();
        assert_eq!(
            decide(&v, "/live/a.ts", "", EXP),
            deny(DenyReason::MissingToken)
        );
        assert_eq!(
            decide(&v, "/live/a.ts", "token=x&__token=y", EXP),
            deny(DenyReason::MissingToken)
        );
        let wrong = SHA256_ACL.replace("hmac=b0", "hmac=b1");
        assert_eq!(
            decide(&v, "/live/a.ts", &q(&wrong), EXP),
            deny(DenyReason::BadSignature)
        );
        // Uppercase hex is the same hmac.
        let upper = SHA256_ACL.replace("b001693dbba", "B001693DBBA");
        assert_eq!(decide(&v, "/live/a.ts", &q(&upper), EXP), Decision::Allow);
        assert_eq!(
            v.verify(
                &view_of("/live/a.ts", &q(SHA256_ACL)),
                &KeySet::default(),
                EXP
            )
            .decision,
            deny(DenyReason::NoKeys)
        );
        // A key that is not hex matches nothing rather than failing.
        assert_eq!(
            v.verify(&view_of("/live/a.ts", &q(SHA256_ACL)), &keys(&["xyz"]), EXP)
                .decision,
            deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn backup_key_is_accepted_during_rotation() {
        let query = q(SHA256_ACL);
        let verdict = acl().verify(
            &view_of("/live/a.ts", &query),
            &keys(&["00112233", KEY]),
            EXP,
        );
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.matched_key, Some(1));
    }

    #[test]
    fn derived_fields_never_hold_the_hmac_or_the_key() {
        let query = q(SHA256_FULL);
        let verdict = acl().verify(&view_of("/live/a.ts", &query), &keys(&[KEY]), EXP);
        for (name, value) in &verdict.derived {
            assert_ne!(*name, "hmac");
            assert!(
                !value.contains("37a45fb8") && !value.contains(KEY),
                "{name}"
            );
        }
    }

    #[test]
    fn custom_delimiter_and_token_name() {
        let mut r = raw(KEY);
        r.field_delimiter = Some(",".into());
        r.token_name = Some("hdnts".into());
        let (v, problems) = build(&r, &|_| None);
        assert_eq!(problems, 0);
        let v = v.unwrap();
        assert_eq!(v.auth_params(), ["hdnts".to_owned()]);
        let query = format!("hdnts={SHA256_COMMA}");
        assert_eq!(decide(&v, "/live/a.ts", &query, EXP), Decision::Allow);
        assert_eq!(
            decide(&v, "/live/a.ts", &q(SHA256_COMMA), EXP),
            deny(DenyReason::MissingToken)
        );
        let s = v
            .sign("h", "/live/a.ts", None, &Secret::new(KEY), EXP)
            .unwrap();
        assert!(s
            .query
            .starts_with("hdnts=exp=1700000000,acl=/live/a.ts,hmac="));
        assert_eq!(decide(&v, "/live/a.ts", &s.query, EXP), Decision::Allow);
    }

    /// The generator's `acl_delimiter` (EdgeAuth-Token-Python:
    /// `EdgeAuth(key=KEY, end_time=1700000000, acl_delimiter=',')
    /// .generate_acl_token(['/vod/*', '/live/cam-1/*'])`).
    #[test]
    fn acl_delimiter_splits_the_patterns_as_the_generator_joined_them() {
        const TOKEN: &str = "exp=1700000000~acl=/vod/*,/live/cam-1/*~hmac=2be878c673cc83ab9f12944014754f53417c4c43219d57250c49539315438e3c";
        let mut r = raw(KEY);
        r.acl_delimiter = Some(",".into());
        let (v, problems) = build(&r, &|_| None);
        assert_eq!(problems, 0);
        let v = v.unwrap();
        for path in ["/live/cam-1/index.m3u8", "/vod/a.mp4"] {
            assert_eq!(
                decide(&v, path, &q(TOKEN), EXP - 9_500),
                Decision::Allow,
                "{path}"
            );
        }
        assert_eq!(
            decide(&v, "/live/cam-2/index.m3u8", &q(TOKEN), EXP - 9_500),
            deny(DenyReason::OutsideAcl)
        );
        // With the default `!`, the same token is one pattern.
        assert_eq!(
            decide(&acl(), "/live/cam-1/index.m3u8", &q(TOKEN), EXP - 9_500),
            deny(DenyReason::OutsideAcl)
        );
        let opts = SignOptions {
            client_ip: None,
            acl: Some("/vod/*,/live/cam-1/*".into()),
        };
        let s = v
            .sign_with(
                "h",
                "/live/cam-1/index.m3u8",
                None,
                &opts,
                &Secret::new(KEY),
                EXP,
            )
            .unwrap();
        assert!(
            s.query
                .contains("2be878c673cc83ab9f12944014754f53417c4c43219d57250c49539315438e3c"),
            "{}",
            s.query
        );
        for d in ["", "~", "/", "*", "-", "ab"] {
            let mut r = raw(KEY);
            r.acl_delimiter = Some(d.into());
            assert_eq!(build(&r, &|_| None).1, 1, "{d:?}");
        }
        let mut clash = raw(KEY);
        clash.field_delimiter = Some(",".into());
        clash.acl_delimiter = Some(",".into());
        assert_eq!(build(&clash, &|_| None).1, 1);
    }

    #[test]
    fn config_accepts_hex_keys_from_env_and_rejects_the_rest() {
        let env = |name: &str| (name == "AKAMAI_KEY").then(|| KEY.to_owned());
        let mut ok = raw("${AKAMAI_KEY}");
        ok.backup_key = Some("00FF".into());
        let mut ctx = Ctx::new(&env);
        let (v, k) = ok.build("site.auth", C, &mut ctx).unwrap();
        assert_eq!(ctx.problem_count(), 0);
        assert_eq!(k.len(), 2);
        assert_eq!(v.auth_params(), [DEFAULT_TOKEN_NAME.to_owned()]);

        for bad in ["xyz", "abc", "0g", " aabb"] {
            let (built, problems) = build(&raw(bad), &env);
            assert!(built.is_none() && problems == 1, "{bad:?}");
        }
        let mut both = raw("not hex");
        both.backup_key = Some("123".into());
        both.field_delimiter = Some("~~".into());
        assert_eq!(build(&both, &env).1, 3);
        for d in ["", "=", "&", "/", "!", "*", "a", "é"] {
            let mut r = raw(KEY);
            r.field_delimiter = Some(d.into());
            assert_eq!(build(&r, &env).1, 1, "{d:?}");
        }
        let mut r = raw(KEY);
        r.token_name = Some("bad name".into());
        assert_eq!(build(&r, &env).1, 1);
    }

    #[test]
    fn config_parses_from_the_scheme_table() {
        let table: toml::Table = toml::from_str(
            "scheme = \"akamai\"\nkey = \"aabb\"\nalgorithm = \"sha1\"\nmode = \"url\"",
        )
        .unwrap();
        let Ok(crate::auth::RawScheme::Akamai(r)) =
            crate::auth::RawScheme::from_table(table, "auth")
        else {
            panic!("not parsed as akamai");
        };
        assert_eq!((r.algorithm, r.mode), (Algorithm::Sha1, Mode::Url));
        let table: toml::Table = toml::from_str(
            "scheme = \"akamai\"\nkey = \"aabb\"\nsalt = \"${SALT}\"\nescape_early = true",
        )
        .unwrap();
        let Ok(crate::auth::RawScheme::Akamai(r)) =
            crate::auth::RawScheme::from_table(table, "auth")
        else {
            panic!("not parsed as akamai");
        };
        assert_eq!((r.salt.as_deref(), r.escape_early), (Some("${SALT}"), true));
        let table: toml::Table =
            toml::from_str("scheme = \"akamai\"\nkey = \"aabb\"\npepper = \"x\"").unwrap();
        assert!(crate::auth::RawScheme::from_table(table, "auth").is_err());
    }

    #[test]
    fn sign_escapes_what_a_query_cannot_hold_and_refuses_acl_syntax() {
        let v = Akamai::new(Algorithm::Sha256, Mode::Url, C);
        let path = "/live/a b&c#d%41+e.ts";
        let s = v.sign("h", path, None, &Secret::new(KEY), EXP).unwrap();
        assert!(s.query.starts_with("__token__=exp=1700000000~hmac="));
        let acl_path = "/live/a%20b.ts";
        let s = acl()
            .sign("h", acl_path, None, &Secret::new(KEY), EXP)
            .unwrap();
        assert!(s.query.contains("acl=/live/a%2520b.ts~"), "{}", s.query);
        assert_eq!(decide(&acl(), acl_path, &s.query, EXP), Decision::Allow);
        for bad in ["/a!b.ts", "/a*.ts", "/a~b.ts"] {
            assert!(matches!(
                acl().sign("h", bad, None, &Secret::new(KEY), EXP),
                Err(SignError::BadPath(_))
            ));
        }
        assert_eq!(
            acl().sign("h", "/a.ts", None, &Secret::new("nothex"), EXP),
            Err(SignError::NoKey)
        );
        assert_eq!(
            encode_query_value("a b&c#d%e+f~=/*!"),
            "a%20b%26c%23d%25e%2Bf~=/*!"
        );
    }

    // Vectors below come from the reference generator itself: PyPI
    // `akamai-edgeauth` 0.3.2 (EdgeAuth-Token-Python, module `akamai.edgeauth`)
    // under CPython 3.11.7, with K=aabbccddeeff00112233445566778899 (= KEY).
    // Each command is `python3 -c "from akamai.edgeauth import EdgeAuth as E; print(E(...)...)"`;
    // only the `E(...)...` part is quoted next to each constant.

    /// `E(key=K, end_time=1700000000, salt='s3cr3t').generate_acl_token('/live/*')`
    const SALT_ACL: &str = "exp=1700000000~acl=/live/*~hmac=71f7c42d3e80852492a7123a72c256f1016422b19addfd0f759efafb55057eb7";
    /// `E(key=K, end_time=1700000000, salt='s3cr3t').generate_url_token('/live/a.m3u8')`
    const SALT_URL: &str =
        "exp=1700000000~hmac=c5649b5320ae8d26e2e750b9ecdf80892150c9eeaf3d39fcf022af6c3565cb5c";
    /// `E(key=K, ip='203.0.113.7', end_time=1700000000, salt='s3cr3t').generate_acl_token('/live/*')`
    const SALT_IP_ACL: &str = "ip=203.0.113.7~exp=1700000000~acl=/live/*~hmac=ce1ba0202bd077303aeba5b2f85138c67c602365aa9414f992986d5eb165a9a3";
    /// `E(key=K, end_time=1700000000, escape_early=True).generate_url_token('/live/a.m3u8')`
    const EARLY_URL: &str =
        "exp=1700000000~hmac=e70e19133f273c2f268204c8b8c6f320155cdf4f2bedacafd34cd8fad1c4403e";
    /// `E(key=K, end_time=1700000000, escape_early=True).generate_acl_token('/live/*')`:
    /// the acl is not escaped, so this is [`SHA256_ACL`] byte for byte.
    const EARLY_ACL: &str = "exp=1700000000~acl=/live/*~hmac=b001693dbba3621846f08184a0b838fad4b49103e9f51702cc74d87a86431936";
    /// `E(key=K, ip='2001:db8::1', session_id='user 1,x', payload='a/b', start_time=1699990000, end_time=1700000000, escape_early=True).generate_acl_token('/live/*')`
    const EARLY_FULL: &str = "ip=2001%3adb8%3a%3a1~st=1699990000~exp=1700000000~acl=/live/*~id=user+1%2cx~data=a%2fb~hmac=8b226dc3e038e9f03a0df4f2b01ea65d5b96469a2e6a4633d49e4e6c8ae1e36c";
    /// `E(key=K, algorithm='sha1', end_time=1700000000, escape_early=True, salt='s3cr3t').generate_url_token('/live/a~b.m3u8')`
    const EARLY_SALT_SHA1_URL: &str =
        "exp=1700000000~hmac=1289bee95966d552e967975fe9c690ed954bbd86";
    /// `E(key=K, ip='2001:db8::1', end_time=1700000000, escape_early=True).generate_url_token('/live/a.m3u8')`
    const EARLY_IP_URL: &str = "ip=2001%3adb8%3a%3a1~exp=1700000000~hmac=7268090b638c056a730d27c707a0ea2879c6fe475d34d90e7276235dccc56c4c";
    /// `E(key=K, end_time=1700000000).generate_acl_token(['/live/*','/vod/*'])`
    const ACL_LIST: &str = "exp=1700000000~acl=/live/*!/vod/*~hmac=d5d38a78c44b59165e9dcf72c1e8b53c1e7a519d347d342605fa640f73590abc";

    fn with(alg: Algorithm, mode: Mode, salt: Option<&str>, early: bool) -> Akamai {
        Akamai::new(alg, mode, C).with_generator_options(salt.map(Secret::new), early)
    }

    fn sign_opts(v: &Akamai, path: &str, opts: &SignOptions) -> Result<Signed, SignError> {
        v.sign_with("h", path, None, opts, &Secret::new(KEY), EXP)
    }

    fn acl_opts(acl: &str) -> SignOptions {
        SignOptions {
            client_ip: None,
            acl: Some(acl.to_owned()),
        }
    }

    #[test]
    fn salted_generator_tokens_verify_and_sign_reproduces_them() {
        let salted = with(Algorithm::Sha256, Mode::Acl, Some("s3cr3t"), false);
        assert_eq!(
            decide(&salted, "/live/a.ts", &q(SALT_ACL), EXP),
            Decision::Allow
        );
        // The salt is part of the signature: unsalted tokens and unsalted
        // verifiers do not mix.
        assert_eq!(
            decide(&salted, "/live/a.ts", &q(SHA256_ACL), EXP),
            deny(DenyReason::BadSignature)
        );
        assert_eq!(
            decide(&acl(), "/live/a.ts", &q(SALT_ACL), EXP),
            deny(DenyReason::BadSignature)
        );
        let wrong_salt = with(Algorithm::Sha256, Mode::Acl, Some("s3cr3u"), false);
        assert_eq!(
            decide(&wrong_salt, "/live/a.ts", &q(SALT_ACL), EXP),
            deny(DenyReason::BadSignature)
        );
        assert_eq!(
            sign_opts(&salted, "/live/a.m3u8", &acl_opts("/live/*"))
                .unwrap()
                .query,
            q(SALT_ACL)
        );
        let ip = SignOptions {
            client_ip: Some("203.0.113.7".parse().unwrap()),
            acl: Some("/live/*".into()),
        };
        assert_eq!(
            sign_opts(&salted, "/live/a.m3u8", &ip).unwrap().query,
            q(SALT_IP_ACL)
        );

        let url = with(Algorithm::Sha256, Mode::Url, Some("s3cr3t"), false);
        assert_eq!(
            decide(&url, "/live/a.m3u8", &q(SALT_URL), EXP),
            Decision::Allow
        );
        assert_eq!(
            decide(&url, "/live/b.m3u8", &q(SALT_URL), EXP),
            deny(DenyReason::BadSignature)
        );
        assert_eq!(
            url.sign("h", "/live/a.m3u8", None, &Secret::new(KEY), EXP)
                .unwrap()
                .query,
            q(SALT_URL)
        );
    }

    #[test]
    fn escape_early_is_quote_plus_with_lowercase_escapes() {
        // Python: `re.sub(r'(%..)', lambda m: m.group(1).lower(), quote_plus(s))`.
        assert_eq!(escape_early("/live/a.m3u8"), "%2flive%2fa.m3u8");
        assert_eq!(escape_early("user 1,x"), "user+1%2cx");
        assert_eq!(escape_early("2001:db8::1"), "2001%3adb8%3a%3a1");
        assert_eq!(escape_early("aZ09_.-~"), "aZ09_.-~");
        assert_eq!(escape_early("é+%"), "%c3%a9%2b%25");
    }

    #[test]
    fn escape_early_generator_tokens_verify_and_sign_reproduces_them() {
        let url = with(Algorithm::Sha256, Mode::Url, None, true);
        assert_eq!(
            decide(&url, "/live/a.m3u8", &q(EARLY_URL), EXP),
            Decision::Allow
        );
        // The url is hashed escaped: a verifier without escape_early disagrees.
        assert_eq!(
            decide(
                &Akamai::new(Algorithm::Sha256, Mode::Url, C),
                "/live/a.m3u8",
                &q(EARLY_URL),
                EXP
            ),
            deny(DenyReason::BadSignature)
        );
        assert_eq!(
            url.sign("h", "/live/a.m3u8", None, &Secret::new(KEY), EXP)
                .unwrap()
                .query,
            q(EARLY_URL)
        );

        // In acl mode the acl is not escaped.
        let early_acl = with(Algorithm::Sha256, Mode::Acl, None, true);
        assert_eq!(
            decide(&early_acl, "/live/a.ts", &q(EARLY_ACL), EXP),
            Decision::Allow
        );
        assert_eq!(
            sign_opts(&early_acl, "/live/a.m3u8", &acl_opts("/live/*"))
                .unwrap()
                .query,
            q(EARLY_ACL)
        );

        // Salt, escape_early and sha1 together; `~` is kept by quote_plus.
        let all = with(Algorithm::Sha1, Mode::Url, Some("s3cr3t"), true);
        assert_eq!(
            decide(&all, "/live/a~b.m3u8", &q(EARLY_SALT_SHA1_URL), EXP),
            Decision::Allow
        );
        assert_eq!(
            all.sign("h", "/live/a~b.m3u8", None, &Secret::new(KEY), EXP)
                .unwrap()
                .query,
            q(EARLY_SALT_SHA1_URL)
        );

        // An escaped IPv6 ip= is bound to that client; sign_with writes it
        // escaped as the generator does.
        let ip = SignOptions {
            client_ip: Some("2001:db8::1".parse().unwrap()),
            acl: None,
        };
        let s = sign_opts(&url, "/live/a.m3u8", &ip).unwrap();
        assert_eq!(s.query, q(&encode_query_value(EARLY_IP_URL)));
        let k = keys(&[KEY]);
        for query in [q(EARLY_IP_URL), s.query] {
            let mut req = view_of("/live/a.m3u8", &query);
            req.client_ip = Some("2001:db8::1".parse().unwrap());
            assert_eq!(url.verify(&req, &k, EXP).decision, Decision::Allow);
            req.client_ip = Some("2001:db8::2".parse().unwrap());
            assert_eq!(
                url.verify(&req, &k, EXP).decision,
                deny(DenyReason::WrongClient)
            );
        }
    }

    #[test]
    fn escape_early_token_verifies_pasted_raw_or_url_encoded() {
        let v = with(Algorithm::Sha256, Mode::Acl, None, true);
        let k = keys(&[KEY]);
        // As the generator prints it, and as a client that URL-encodes the
        // whole value would send it.
        for query in [q(EARLY_FULL), q(&encode_query_value(EARLY_FULL))] {
            let mut req = view_of("/live/s.ts", &query);
            req.client_ip = Some("2001:db8::1".parse().unwrap());
            let verdict = v.verify(&req, &k, EXP);
            assert_eq!(verdict.decision, Decision::Allow, "{query}");
            assert!(verdict
                .derived
                .contains(&("id", Cow::Borrowed("user+1%2cx"))));
            req.client_ip = Some("203.0.113.7".parse().unwrap());
            assert_eq!(
                v.verify(&req, &k, EXP).decision,
                deny(DenyReason::WrongClient)
            );
            let mut outside = view_of("/vod/s.ts", &query);
            outside.client_ip = Some("2001:db8::1".parse().unwrap());
            assert_eq!(
                v.verify(&outside, &k, EXP).decision,
                deny(DenyReason::OutsideAcl)
            );
        }
        // Without escape_early the raw reading is never tried: the
        // decoded reading does not carry the generator's signature.
        let raw_query = q(EARLY_FULL);
        let mut req = view_of("/live/s.ts", &raw_query);
        req.client_ip = Some("2001:db8::1".parse().unwrap());
        assert_eq!(
            acl().verify(&req, &k, EXP).decision,
            deny(DenyReason::BadSignature)
        );
        // A tampered token fails both readings.
        let tampered = EARLY_FULL.replace("user+1", "user+2");
        let tampered_query = q(&tampered);
        let mut req = view_of("/live/s.ts", &tampered_query);
        req.client_ip = Some("2001:db8::1".parse().unwrap());
        assert_eq!(
            v.verify(&req, &k, EXP).decision,
            deny(DenyReason::BadSignature)
        );
    }

    #[test]
    fn playlist_signed_for_an_acl_covers_its_segments() {
        // `streamguard sign --acl '/live/*'` on a playlist URL, for
        // child_auth = "propagate": the same token must verify for segments.
        let s = sign_opts(&acl(), "/live/index.m3u8", &acl_opts("/live/*")).unwrap();
        assert_eq!(s.path, "/live/index.m3u8");
        // Byte for byte the generator's `generate_acl_token('/live/*')`.
        assert_eq!(s.query, q(SHA256_ACL));
        for path in ["/live/index.m3u8", "/live/seg1.ts", "/live/a/seg.ts"] {
            assert_eq!(
                decide(&acl(), path, &s.query, EXP),
                Decision::Allow,
                "{path}"
            );
        }
        assert_eq!(
            decide(&acl(), "/vod/x.ts", &s.query, EXP),
            deny(DenyReason::OutsideAcl)
        );
        // Several patterns, joined by `!` as the generator joins a list.
        let s = sign_opts(&acl(), "/vod/x.mp4", &acl_opts("/live/*!/vod/*")).unwrap();
        assert_eq!(s.query, q(ACL_LIST));
        assert_eq!(decide(&acl(), "/live/a.ts", &s.query, EXP), Decision::Allow);
        // Default signing still signs the exact path.
        let s = sign_opts(&acl(), "/live/a.ts", &SignOptions::default()).unwrap();
        assert!(s.query.contains("~acl=/live/a.ts~"), "{}", s.query);
        assert_eq!(
            decide(&acl(), "/live/b.ts", &s.query, EXP),
            deny(DenyReason::OutsideAcl)
        );
    }

    #[test]
    fn sign_with_an_acl_refuses_url_mode_and_unusable_patterns() {
        let url = Akamai::new(Algorithm::Sha256, Mode::Url, C);
        assert!(matches!(
            sign_opts(&url, "/live/a.m3u8", &acl_opts("/live/*")),
            Err(SignError::Unsupported(m)) if m.contains("mode = \"acl\"")
        ));
        for bad in [
            "",
            "live/*",
            "/live/*!",
            "/live/*!vod/*",
            "/live/a b*",
            "/live/~*",
            "/live/\u{e9}*",
        ] {
            assert!(
                matches!(
                    sign_opts(&acl(), "/live/a.m3u8", &acl_opts(bad)),
                    Err(SignError::BadPath(_))
                ),
                "{bad:?}"
            );
        }
        // An acl that does not cover the signed path would print a URL that
        // is denied.
        assert!(matches!(
            sign_opts(&acl(), "/vod/a.m3u8", &acl_opts("/live/*")),
            Err(SignError::BadPath(m)) if m.contains("outside_acl")
        ));
        // With an explicit acl the path itself may hold ACL syntax.
        assert!(sign_opts(&acl(), "/live/a!b.ts", &acl_opts("/live/*")).is_ok());
    }

    #[test]
    fn config_salt_is_a_secret_and_each_problem_names_its_field() {
        let env = |name: &str| (name == "AKAMAI_SALT").then(|| "s3cr3t".to_owned());
        let mut r = raw(KEY);
        r.salt = Some("${AKAMAI_SALT}".into());
        r.escape_early = true;
        let (v, problems) = build(&r, &env);
        assert_eq!(problems, 0);
        let v = v.unwrap();
        assert!(v.escape_early);
        assert_eq!(decide(&v, "/live/a.ts", &q(SALT_ACL), EXP), Decision::Allow);

        for (salt, secret_text) in [
            ("", None),
            ("${UNSET_SALT}", None),
            (" padded-salt ", Some("padded-salt")),
        ] {
            let mut r = raw(KEY);
            r.salt = Some(salt.into());
            let mut ctx = Ctx::new(&env);
            assert!(r.build("site[0].auth", C, &mut ctx).is_none(), "{salt:?}");
            let problems = ctx.into_problems();
            assert_eq!(problems.len(), 1, "{salt:?}");
            assert_eq!(problems[0].path, "site[0].auth.salt");
            if let Some(text) = secret_text {
                assert!(!problems[0].message.contains(text));
            }
        }
        // Every bad setting at once, each under its own field.
        let mut r = raw("nothex");
        r.salt = Some(String::new());
        r.field_delimiter = Some("~~".into());
        let mut ctx = Ctx::new(&env);
        assert!(r.build("site[0].auth", C, &mut ctx).is_none());
        let paths: Vec<String> = ctx.into_problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "site[0].auth.key",
                "site[0].auth.field_delimiter",
                "site[0].auth.salt"
            ]
        );
    }

    /// Byte range of the value of token field `name` (up to the next `~`) in `pq`.
    fn field_range(pq: &str, name: &str) -> std::ops::Range<usize> {
        let start = pq.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let end = pq[start..].find('~').map_or(pq.len(), |i| start + i);
        start..end
    }

    proptest! {
        #[test]
        fn sign_then_any_single_byte_change_denies(
            path in "(/[a-zA-Z0-9_-]{1,8}){1,4}\\.(ts|m3u8)",
            exp in 1_000_000u64..4_000_000_000,
            alg in prop::sample::select(vec![Algorithm::Sha256, Algorithm::Sha1, Algorithm::Md5]),
            url_mode in any::<bool>(),
            idx in any::<usize>(), pick in any::<u8>(),
        ) {
            let mode = if url_mode { Mode::Url } else { Mode::Acl };
            let v = Akamai::new(alg, mode, C);
            let k = keys(&[KEY, "0011223344556677"]);
            let plen = path.len();
            sign_then_tamper(&v, &k, &path, exp, exp, |pq| {
                let mut r = vec![
                    ("path", 1..plen),
                    ("exp", field_range(pq, "exp")),
                    ("hmac", field_range(pq, "hmac")),
                ];
                if mode == Mode::Acl {
                    r.push(("acl", field_range(pq, "acl")));
                }
                r
            }, (idx, pick));
            let s = v.sign("h", &path, None, &Secret::new(KEY), exp).unwrap();
            prop_assert_eq!(
                v.verify(&view_of(&path, &s.query), &k, exp + 1).decision,
                Decision::Deny(DenyReason::Expired)
            );
        }
    }
}
