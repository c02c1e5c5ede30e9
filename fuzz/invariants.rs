//! The invariants the fuzz targets check, one plain function per target.
//!
//! Each function takes the fuzzer's raw bytes and panics when an invariant
//! is broken. The same file is compiled into the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`) and into the main crate's integration test
//! `tests/fuzz_corpus.rs`, which replays every file of `fuzz/corpus/<target>/`
//! through it: that replay is the short smoke run `cargo test` (and so CI)
//! gets.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use streamguard::auth::session::{self, Scope as SessionScope, SessionGrant};
use streamguard::auth::{query_param, strip_params, Decision, DenyReason, RequestView};
use streamguard::config::{Config, SiteConfig};
use streamguard::keys::Secret;
use streamguard::proxy::hls::{self, Scope};
use streamguard::proxy::path;

/// Reads input bytes front to back; past the end every read is zero, so any
/// input (even empty) decodes.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// True when `s` holds a run of at least `n` ASCII hex digits.
fn has_hex_run(s: &str, n: usize) -> bool {
    let mut run = 0;
    for b in s.bytes() {
        if b.is_ascii_hexdigit() {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// True when some `/`-separated segment of `p` is `.` or `..`.
fn has_dot_segment(p: &str) -> bool {
    p.split('/').any(|seg| seg == "." || seg == "..")
}

/// [`has_dot_segment`] as servlet containers see it: a segment's `;`
/// parameters do not count (`..;x=1` is `..`).
fn has_servlet_dot_segment(p: &str) -> bool {
    p.split('/').any(|seg| {
        let bare = seg.split(';').next().unwrap_or(seg);
        bare == "." || bare == ".."
    })
}

fn hex_val(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

// ---------------------------------------------------------------------------
// request_target

/// Request-target and query parsing: `path::validate_with`, `path::for_log`,
/// `auth::query_param`, `auth::strip_params`, `host::normalize_host`,
/// `hls::Scope::target_path` and `hls::remove_dot_segments` never panic, and
/// - a path `validate_with` accepts starts with `/`, has no `.`/`..`
///   segment, no `//`, no `\`, no `;` unless allowed, and every `%` is a
///   well-formed escape that does not decode to `/`, `\`, `.` or NUL;
///   `validate` is `validate_with(_, false)`;
/// - `for_log` keeps every `/`, and its output never holds a run of 16 or
///   more hex digits or a `=`;
/// - `query_param` finds a value only for a `name=value` (or bare `name`)
///   pair of the query, and `strip_params` keeps exactly the other non-empty
///   pairs, in order;
/// - a normalized host has no ASCII upper case and no trailing `.`;
/// - `target_path` and `remove_dot_segments` give paths that start with `/`
///   and hold no `.`/`..` segment, and `remove_dot_segments` is idempotent.
pub fn request_target(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let text = String::from_utf8_lossy(input.rest());
    let mut parts = text.splitn(3, '\n');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");

    for p in [&*text, a, b, c] {
        check_validate(p, flags & 1 == 1);
        check_for_log(p);
        check_dot_removal(p);
        check_host(p);
    }
    check_query(b, a);
    check_query(&text, c);
    let hosts = vec!["play.example.com".to_owned(), "cdn.example.com".to_owned()];
    let scope = Scope { hosts: &hosts };
    for (base, uri) in [(a, b), ("/live/s/index.m3u8", a), (c, &*text)] {
        if let Some(t) = scope.target_path(base, uri) {
            assert!(t.starts_with('/'), "target_path({base:?}, {uri:?}) = {t:?}");
            assert!(
                !has_dot_segment(&t[1..]),
                "target_path({base:?}, {uri:?}) = {t:?} has a dot segment"
            );
        }
    }
}

fn check_validate(p: &str, allow_params: bool) {
    assert_eq!(path::validate(p), path::validate_with(p, false), "{p:?}");
    if path::validate_with(p, allow_params).is_err() {
        return;
    }
    let why =
        |what: &str| format!("validate_with({p:?}, {allow_params}) accepted a path with {what}");
    assert!(p.starts_with('/'), "{}", why("no leading /"));
    assert!(
        !p[1..].contains("//") && !p.starts_with("//"),
        "{}",
        why("//")
    );
    assert!(!p.contains('\\'), "{}", why("a backslash"));
    assert!(allow_params || !p.contains(';'), "{}", why("a ;"));
    assert!(
        !has_servlet_dot_segment(&p[1..]),
        "{}",
        why("a dot segment")
    );
    let bytes = p.as_bytes();
    let mut i = 0;
    let mut decoded = Vec::with_capacity(bytes.len());
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = bytes.get(i + 1).copied().and_then(hex_val);
            let l = bytes.get(i + 2).copied().and_then(hex_val);
            let (Some(h), Some(l)) = (h, l) else {
                panic!("{}", why("a broken escape"));
            };
            let d = h << 4 | l;
            assert!(
                !matches!(d, b'/' | b'\\' | b'.' | 0),
                "{}",
                why("an escape decoding to / \\ . or NUL")
            );
            decoded.push(d);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // Decoding reveals no separator and no dot segment.
    let decoded = String::from_utf8_lossy(&decoded);
    assert_eq!(
        decoded.matches('/').count(),
        p.matches('/').count(),
        "{}",
        why("a hidden /")
    );
    assert!(
        !has_dot_segment(&decoded[1..]),
        "{}",
        why("an encoded dot segment")
    );
}

fn check_for_log(p: &str) {
    let logged = path::for_log(p);
    assert_eq!(
        logged.matches('/').count(),
        p.matches('/').count(),
        "for_log({p:?}) = {logged:?} changed the segments"
    );
    assert!(
        !logged.contains('='),
        "for_log({p:?}) = {logged:?} shows a ="
    );
    assert!(
        !has_hex_run(&logged, 16),
        "for_log({p:?}) = {logged:?} shows a run of 16+ hex digits"
    );
    if let Cow::Borrowed(s) = logged {
        assert_eq!(s, p, "for_log borrowed something else");
    }
}

fn check_dot_removal(p: &str) {
    let once = hls::remove_dot_segments(p);
    assert!(
        once.starts_with('/'),
        "remove_dot_segments({p:?}) = {once:?}"
    );
    assert!(
        !has_dot_segment(&once[1..]),
        "remove_dot_segments({p:?}) = {once:?} has a dot segment"
    );
    let twice = hls::remove_dot_segments(&once);
    assert_eq!(
        twice, once,
        "remove_dot_segments is not idempotent on {p:?}"
    );
}

fn check_host(p: &str) {
    if let Some(h) = streamguard::host::normalize_host(p) {
        assert!(
            !h.bytes().any(|b| b.is_ascii_uppercase()),
            "normalize_host({p:?}) = {h:?} has upper case"
        );
        assert!(
            !h.ends_with('.'),
            "normalize_host({p:?}) = {h:?} ends with ."
        );
    }
}

fn check_query(query: &str, names: &str) {
    let names: Vec<&str> = names.split(',').take(8).collect();
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    for name in &names {
        let matching: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .collect();
        match query_param(Some(query), name) {
            Ok(None) => assert!(matching.is_empty(), "{name:?} missed in {query:?}"),
            Ok(Some(v)) => assert_eq!(matching, [v], "{name:?} in {query:?}"),
            Err(_) => assert!(matching.len() > 1, "{name:?} duplicate in {query:?}"),
        }
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && !names.contains(&k)
        })
        .collect();
    let stripped = strip_params(query, &names);
    let want = (!kept.is_empty()).then(|| kept.join("&"));
    assert_eq!(stripped, want, "strip_params({query:?}, {names:?})");
}

// ---------------------------------------------------------------------------
// verifiers

/// One site per scheme and setting that changes what is signed.
const SITES_TOML: &str = r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[site]]
id = "tencent-hex"
domains = ["t1.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "tencent"
key = "tencent-primary"
backup_key = "tencent-backup"

[[site]]
id = "tencent-dec"
domains = ["t2.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "tencent"
key = "tencent-primary"
auth_delta_secs = 300
time_format = "decimal"
secret_param = "sig"
time_param = "t"

[[site]]
id = "volc-md5"
domains = ["v1.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "volcengine"
keys = ["volc-old", "volc-new"]
valid_duration_secs = 0

[[site]]
id = "volc-md5-hex"
domains = ["v2.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "volcengine"
keys = ["volc-key"]
timestamp_base = 16

[[site]]
id = "volc-custom"
domains = ["v3.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "volcengine"
keys = ["volc-custom-key"]
algorithm = "md5_custom"
encrypt_fields = ["Domain", "AppName", "key", "StreamName", "volcTime"]
timestamp_base = 8
valid_duration_secs = 60

[[site]]
id = "wangsu-abs"
domains = ["w1.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "wangsu"
[[site.auth.rule]]
key = "ws-group-1"
time_format = "hex"
effective_time_mode = "abstime"

[[site]]
id = "wangsu-dur"
domains = ["w2.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "wangsu"
path_includes_extension = false
[[site.auth.rule]]
key = "ws-group-2"
cipher_param = "sign"
time_param = "t"
cipher_combination = "time+key+path"
time_format = "unix"
effective_time_mode = "duration"
effective_time_secs = 300
tolerant_time_secs = 30

[[site]]
id = "ali-a"
domains = ["a.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "aliyun"
type = "a"
key = "ali-a-key"
backup_key = "ali-a-backup"

[[site]]
id = "ali-b"
domains = ["b.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "aliyun"
type = "b"
key = "ali-b-key"

[[site]]
id = "ali-c"
domains = ["c.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "aliyun"
type = "c"
key = "ali-c-key"
auth_delta_secs = 0

[[site]]
id = "ali-cq"
domains = ["cq.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "aliyun"
type = "c"
c_form = "query"
hash_param = "sig"
time_param = "ts"
key = "ali-cq-key"

[[site]]
id = "nginx"
domains = ["n1.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "nginx_secure_link"
template = "$secure_link_expires$uri$host $key"
key = "nginx-secret"
backup_key = "nginx-old"

[[site]]
id = "nginx-noexp"
domains = ["n2.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "nginx_secure_link"
template = "$key:$uri"
key = "nginx-forever"
md5_param = "h"
expires = false

[[site]]
id = "akamai-acl"
domains = ["ak1.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "akamai"
key = "aabbccddeeff00112233445566778899"
backup_key = "00112233445566778899aabbccddeeff"

[[site]]
id = "akamai-url"
domains = ["ak2.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "akamai"
key = "0123456789abcdef0123456789abcdef"
algorithm = "sha1"
mode = "url"
token_name = "hdnts"

[[site]]
id = "akamai-salt"
domains = ["ak3.example.com"]
origin = "http://127.0.0.1:9"
[site.auth]
scheme = "akamai"
key = "fedcba9876543210"
algorithm = "md5"
field_delimiter = ","
salt = "pepper"
escape_early = true
"#;

/// The sites of [`SITES_TOML`], built once through the public config path.
pub fn sites() -> &'static [SiteConfig] {
    static SITES: OnceLock<Vec<SiteConfig>> = OnceLock::new();
    SITES.get_or_init(
        || match Config::from_toml(SITES_TOML, Path::new("."), &|_| None) {
            Ok(c) => c.sites,
            Err(e) => panic!("the fuzz sites do not build: {e:?}"),
        },
    )
}

/// Path-safe ASCII for signing: printable bytes are kept (so the fuzzer's
/// comparisons and dictionary work), anything else is mapped into letters,
/// digits and a few separators.
fn path_from(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFXYZ-_.~/%!$'()*+,:@=&/";
    let mut p = String::with_capacity(bytes.len() + 1);
    p.push('/');
    for &b in bytes {
        let c = if b.is_ascii_graphic() && b != b'?' && b != b'#' {
            b
        } else {
            ALPHABET[usize::from(b % 64)]
        };
        p.push(char::from(c));
    }
    p
}

fn client_ip(sel: u8) -> Option<IpAddr> {
    let ip = match sel % 4 {
        0 => return None,
        1 => "203.0.113.7",
        2 => "::ffff:203.0.113.7",
        _ => "2001:db8::1",
    };
    ip.parse().ok()
}

/// Byte ranges (in `path?query`) of the values of the site's auth params.
fn auth_regions(pq: &str, query_at: usize, params: &[String], nginx: bool) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = query_at;
    for pair in pq[query_at..].split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if params.iter().any(|p| p == k) && !v.is_empty() {
                let start = at + k.len() + 1;
                let mut end = start + v.len();
                // nginx: the last base64 character of a 16-byte digest holds 2
                // bits; its low 4 bits are ignored (as nginx itself does).
                if nginx && params.first().is_some_and(|p| p == k) {
                    end -= 1;
                }
                if end > start {
                    out.push(start..end);
                }
            }
        }
        at += pair.len() + 1;
    }
    out
}

fn verify_pq(site: &SiteConfig, host: &str, pq: &str, ip: Option<IpAddr>, now: u64) -> Decision {
    let (p, q) = match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    };
    let req = RequestView {
        host,
        path: p,
        query: q,
        client_ip: ip,
        headers: None,
    };
    site.verifier.verify(&req, &site.keys, now).decision
}

/// Every verifier: a URL it signed for a valid path is allowed up to its
/// expiry and denied after it; changing any one byte of the auth values
/// (signature, time, in-path auth segments) to a different character (not
/// just another case: hex digests compare case-insensitively) denies it; any
/// other single-byte change, and any path, query, cookie or header at all,
/// never panics.
pub fn verifiers(data: &[u8]) {
    let mut input = Input::new(data);
    let all = sites();
    let site = &all[usize::from(input.u8()) % all.len()];
    let expires = 10_000_000 + u64::from(input.u32()) % 3_990_000_000;
    let early = u64::from(input.u8() % 61);
    let flip_at = usize::from(input.u16());
    let flip_to = input.u8() & 0x7f;
    let mode = input.u8();
    let raw = input.rest();
    let host = site.domains.first().map_or("", String::as_str);
    let scheme = site.verifier.scheme();

    // Arbitrary bytes as path?query, query-borne token, cookie and header.
    let text = String::from_utf8_lossy(raw);
    let _ = verify_pq(site, host, &text, client_ip(mode >> 2), expires);
    let mut headers = http::HeaderMap::new();
    for name in site.verifier.auth_params() {
        if let (Ok(n), Ok(v)) = (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(raw),
        ) {
            headers.insert(n, v.clone());
            if let Ok(c) =
                http::HeaderValue::from_str(&format!("{name}={}", v.to_str().unwrap_or("")))
            {
                headers.insert(http::header::COOKIE, c);
            }
        }
    }
    let req = RequestView {
        host,
        path: "/live/s.m3u8",
        query: None,
        client_ip: client_ip(mode >> 4),
        headers: Some(&headers),
    };
    let _ = site.verifier.verify(&req, &site.keys, expires);

    // Sign a valid path, then tamper with one byte.
    let path = path_from(raw);
    if path::validate(&path).is_err() {
        return;
    }
    let Some(key) = site.keys.primary() else {
        panic!("site {} has no key", site.id);
    };
    let Ok(signed) = site.verifier.sign(host, &path, None, key, expires) else {
        return;
    };
    let pq = if signed.query.is_empty() {
        signed.path.clone()
    } else {
        format!("{}?{}", signed.path, signed.query)
    };
    // Aliyun type B writes its time to the minute (rounded down).
    let now = if site.id == "ali-b" {
        expires - 60
    } else {
        expires - early
    };
    assert_eq!(
        verify_pq(site, host, &pq, None, now),
        Decision::Allow,
        "site {}: signed URL {pq:?} (expires {expires}) denied at {now}",
        site.id
    );
    // wangsu-dur's tolerant_time_secs is clock-skew slack, like
    // clock_skew_secs: added to the window, not subtracted by `sign`.
    let leeway = if site.id == "wangsu-dur" { 30 } else { 0 };
    if site.id != "nginx-noexp" {
        assert_ne!(
            verify_pq(site, host, &pq, None, expires + leeway + 1),
            Decision::Allow,
            "site {}: signed URL {pq:?} (expires {expires}) allowed after its expiry (+{leeway} s)",
            site.id
        );
    }

    // The auth values: query params, and the auth segments in-path schemes
    // put before the path.
    let query_at = if signed.query.is_empty() {
        pq.len()
    } else {
        signed.path.len() + 1
    };
    let mut regions = auth_regions(
        &pq,
        query_at,
        site.verifier.auth_params(),
        scheme == "nginx_secure_link",
    );
    if signed.path.len() > path.len() && signed.path.ends_with(&path) {
        regions.push(1..signed.path.len() - path.len());
    }
    let auth_len: usize = regions.iter().map(Range::len).sum();
    let i = if mode & 1 == 1 && auth_len > 0 {
        let mut k = flip_at % auth_len;
        let mut at = 0;
        for r in &regions {
            if k < r.len() {
                at = r.start + k;
                break;
            }
            k -= r.len();
        }
        at
    } else {
        flip_at % pq.len()
    };
    let old = pq.as_bytes()[i];
    if old == flip_to {
        return;
    }
    let mut bad = pq.clone().into_bytes();
    bad[i] = flip_to;
    let Ok(bad) = String::from_utf8(bad) else {
        return;
    };
    let verdict = verify_pq(site, host, &bad, None, now);
    let in_auth = regions.iter().any(|r| r.contains(&i));
    let bad_path = bad.split('?').next().unwrap_or("");
    if in_auth && !old.eq_ignore_ascii_case(&flip_to) && path::validate(bad_path).is_ok() {
        assert_ne!(
            verdict,
            Decision::Allow,
            "site {}: {pq:?} with byte {i} changed to {:?} is still allowed: {bad:?}",
            site.id,
            char::from(flip_to)
        );
    }
}

// ---------------------------------------------------------------------------
// session_token

/// HLS session tokens: `session::verify` never panics on any token, path or
/// address; a token from `issue_for_path(A)` opens `A` (when `A` is an HLS
/// resource) up to its expiry and nothing else, under either site scope; a
/// directory token opens HLS resources under its directory only where the
/// site opted in; changing any one byte of a token to a different character
/// (not only in case: its hex compares case-insensitively) denies it.
pub fn session_token(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let expires = u64::from(input.u32());
    let ip = client_ip(input.u8()).map(|i| i.to_canonical());
    let flip_at = usize::from(input.u16());
    let flip_to = input.u8() & 0x7f;
    let text = String::from_utf8_lossy(input.rest());
    let mut parts = text.splitn(4, '\n');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let site = parts.next().unwrap_or("live");
    let token = parts.next().unwrap_or("");
    let secret = Secret::new("session-secret");
    let scope = if mode & 1 == 1 {
        SessionScope::Directory
    } else {
        SessionScope::Path
    };
    let now = expires.saturating_sub(u64::from(mode >> 4));
    let check = |t: &str, p: &str, client: Option<IpAddr>, at: u64| {
        session::verify(&secret, site, scope, t, p, "", client, at, 0)
    };

    // Anything at all.
    let _ = check(token, a, ip, now);
    let _ = check(&text, b, ip, now);

    // A path token.
    let issued = session::issue_for_path(&secret, site, a, "", ip, expires);
    assert_eq!(
        issued.is_some(),
        a.starts_with('/') && a.len() <= 1024,
        "issue_for_path({a:?})"
    );
    if let Some(t) = &issued {
        let want = if session::is_hls_child(a) {
            Ok(SessionGrant {
                directory: None,
                expires_at: expires,
                bound_ip: ip,
            })
        } else {
            Err(DenyReason::BadSignature)
        };
        assert_eq!(check(t, a, ip, now), want, "token {t:?} for {a:?}");
        if session::is_hls_child(a) && expires < u64::MAX {
            assert_eq!(
                check(t, a, ip, expires + 1),
                Err(DenyReason::Expired),
                "token {t:?} for {a:?} after expiry"
            );
        }
        if b != a {
            assert!(
                check(t, b, ip, now).is_err(),
                "token for {a:?} opened {b:?}"
            );
        }
        tampered_denies(t, a, flip_at, flip_to, |bad| check(bad, a, ip, now));
    }

    // A directory token.
    let dir = session::scope_of(a);
    if let Some(t) = session::issue_for_directory(&secret, site, dir, ip, expires) {
        assert_ne!(dir, "/", "a directory token for the root");
        let opens = |p: &str| check(&t, p, ip, now).is_ok();
        let want = |p: &str| {
            scope == SessionScope::Directory && p.starts_with(dir) && session::is_hls_child(p)
        };
        assert_eq!(opens(a), want(a), "directory token for {dir:?} on {a:?}");
        assert_eq!(opens(b), want(b), "directory token for {dir:?} on {b:?}");
        if scope == SessionScope::Directory {
            tampered_denies(&t, a, flip_at, flip_to, |bad| check(bad, a, ip, now));
        }
    }
}

fn tampered_denies(
    token: &str,
    path: &str,
    flip_at: usize,
    flip_to: u8,
    check: impl Fn(&str) -> Result<SessionGrant, DenyReason>,
) {
    if token.is_empty() {
        return;
    }
    let i = flip_at % token.len();
    let old = token.as_bytes()[i];
    if old.eq_ignore_ascii_case(&flip_to) {
        return;
    }
    let mut bad = token.as_bytes().to_vec();
    bad[i] = flip_to;
    if let Ok(bad) = String::from_utf8(bad) {
        assert!(
            check(&bad).is_err(),
            "token {token:?} for {path:?} with byte {i} changed to {:?} still opens it",
            char::from(flip_to)
        );
    }
}

// ---------------------------------------------------------------------------
// playlist

/// The playlist rewriter never panics; the output has the same lines; every
/// line that is not a URI line or a URI-bearing tag is byte-identical; every
/// rewritten line is its original with exactly the params handed out for it
/// inserted (after `?`/`&`, before any fragment) and nothing else changed;
/// every path the params are asked for starts with `/` and has no dot segment.
pub fn playlist(data: &[u8]) {
    const BASES: [&str; 4] = [
        "/live/s/index.m3u8",
        "/index.m3u8",
        "/a/b/c/d/master.m3u8",
        "/live/s/",
    ];
    let mut input = Input::new(data);
    let sel = input.u8();
    let base = BASES[usize::from(sel % 4)];
    let text = String::from_utf8_lossy(input.rest());
    let hosts = vec!["play.example.com".to_owned(), "cdn.example.com".to_owned()];
    let mut asked: Vec<String> = Vec::new();
    let Some(out) = hls::rewrite(
        &text,
        Scope { hosts: &hosts },
        base,
        &mut |p| {
            asked.push(p.to_owned());
            Some(format!("sg_session=T{}", p.len()))
        },
        usize::MAX,
    ) else {
        panic!("no bound was given, yet the rewrite gave up");
    };
    for p in &asked {
        // The path the player requests, then the URI's own query after `?`.
        let path = p.split('?').next().unwrap_or(p);
        assert!(path.starts_with('/'), "params asked for {p:?}");
        assert!(!has_dot_segment(&path[1..]), "params asked for {p:?}");
    }
    let before: Vec<&str> = text.split_inclusive('\n').collect();
    let after: Vec<&str> = out.split_inclusive('\n').collect();
    assert_eq!(
        before.len(),
        after.len(),
        "line count changed:\n{text:?}\n{out:?}"
    );
    let params: Vec<String> = asked
        .iter()
        .map(|p| format!("sg_session=T{}", p.len()))
        .collect();
    let mut next = 0;
    for (old, new) in before.iter().zip(&after) {
        let body = old.trim();
        let uri_line = !body.is_empty() && !body.starts_with('#');
        let uri_tag = hls::URI_TAGS.iter().any(|(t, _)| body.starts_with(t));
        if old == new {
            continue;
        }
        assert!(uri_line || uri_tag, "line {old:?} changed to {new:?}");
        // The fewest of the next params whose insertion makes the line: a
        // tag may have several URI attributes (a date range's asset and
        // list, or one attribute given twice), each `=` at most one.
        let most = if uri_line {
            1
        } else {
            old.matches('=').count()
        };
        let took = (1..=most)
            .find(|&k| next + k <= params.len() && is_insertion(old, new, &params[next..next + k]));
        let Some(k) = took else {
            panic!(
                "line {old:?} became {new:?}, not the line with the next params added ({:?})",
                &params[next..]
            );
        };
        next += k;
        if uri_line {
            // Surrounding whitespace and the URI itself come first.
            let uri = body.split('#').next().unwrap_or(body);
            let lead = old.len() - old.trim_start().len();
            assert!(
                new[lead..].starts_with(uri),
                "rewritten {old:?} = {new:?} does not start with its URI"
            );
        }
    }
    assert_eq!(
        next,
        params.len(),
        "params handed out for a line left alone"
    );
}

/// True when `new` is `old` with `?p`, `&p` or `p` inserted, for each `p`
/// of `ps` in order, each at one place.
fn is_insertion(old: &str, new: &str, ps: &[String]) -> bool {
    let Some((p, rest)) = ps.split_first() else {
        return old == new;
    };
    let prefix = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    ["?", "&", ""].iter().any(|sep| {
        let ins = format!("{sep}{p}");
        (0..=prefix.min(old.len())).any(|i| {
            new.get(i..i + ins.len()) == Some(ins.as_str())
                && old.is_char_boundary(i)
                && is_insertion(&old[i..], &new[i + ins.len()..], rest)
        })
    })
}
