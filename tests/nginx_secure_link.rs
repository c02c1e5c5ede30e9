//! Black-box tests of `scheme = "nginx_secure_link"`: a real nginx with
//! `secure_link` and the real streamguard binary judge the same generated
//! URLs and must agree on every one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::StatusCode;
use md5::{Digest, Md5};

const HOST: &str = "play.example.com";
const SECRET: &str = "secret";
/// What both servers see as `$remote_addr`.
const CLIENT: &str = "127.0.0.1";

/// `(path on the wire, $uri)` pairs the generated URLs use.
const PATHS: &[(&str, &str)] = &[
    ("/s/link", "/s/link"),
    ("/video/a1.ts", "/video/a1.ts"),
    ("/x/y/z.m3u8", "/x/y/z.m3u8"),
    ("/video/a%20b.ts", "/video/a b.ts"),
    ("/live/%41bc.flv", "/live/Abc.flv"),
];

/// base64url_nopad(MD5("<expires><uri><remote_addr> secret")), computed
/// independently of the crate.
fn nginx_md5(expires: &str, uri: &str) -> String {
    let digest = Md5::digest(format!("{expires}{uri}{CLIENT} {SECRET}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn streamguard_config(origin: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[admin]
listen = "127.0.0.1:0"

[[site]]
id = "nginx"
domains = ["{HOST}"]
origin = "http://{origin}"

[site.auth]
scheme = "nginx_secure_link"
template = "$secure_link_expires$uri$remote_addr $key"
key = "{SECRET}"
"#
    )
}

/// nginx's `secure_link` location, the reference streamguard must agree with.
fn nginx_location() -> String {
    format!(
        r#"location / {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri$remote_addr {SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            return 200 "ok";
        }}"#
    )
}

// ---------------------------------------------------------------------------
// Generated URLs.

/// Knuth's MMIX LCG: deterministic, no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
}

/// The base64url alphabet, in value order.
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Another base64url character than `c`.
fn other_b64_char(c: u8, r: &mut Lcg) -> u8 {
    loop {
        let n = *r.pick(BASE64URL);
        if n != c {
            return n;
        }
    }
}

/// A base64url character with the same top two bits as `c` (the bits the
/// last of 22 characters contributes to a 16-byte digest).
fn same_top_bits(c: u8, r: &mut Lcg) -> u8 {
    let v = BASE64URL.iter().position(|&b| b == c).unwrap();
    BASE64URL[v & 0x30 | usize::try_from(r.below(16)).unwrap()]
}

/// One generated `path?query` and what was done to it (for failure messages).
struct Case {
    pq: String,
    what: &'static str,
}

/// A URL signed for a random path and a time within two hours of `now`
/// (never within a minute of it, so the second ticking mid-test cannot
/// change a verdict), then changed in one way.
fn generate(r: &mut Lcg, now: u64) -> Case {
    let (wire, uri) = *r.pick(PATHS);
    let offset = 60 + r.below(7200);
    let expires = if r.below(2) == 0 {
        now + offset
    } else {
        now - offset
    };
    let mut exp = expires.to_string();
    let mut md5 = nginx_md5(&exp, uri);
    let mut path = wire.to_owned();
    let mut swap = false;
    let what = match r.below(16) {
        0..=2 => "as signed",
        3 => {
            let (other, _) = *r.pick(PATHS);
            path = if other == wire {
                format!("{wire}x")
            } else {
                other.to_owned()
            };
            "other path"
        }
        4 => {
            exp = (expires + 1 + r.below(100)).to_string();
            "other expires"
        }
        5 => {
            // One of the 21 characters that carry all their bits.
            let i = usize::try_from(r.below(21)).unwrap();
            let mut b = md5.into_bytes();
            b[i] = other_b64_char(b[i], r);
            md5 = String::from_utf8(b).unwrap();
            "md5 byte changed"
        }
        6 => {
            // The last character's low four bits are ignored by the decoder.
            let mut b = md5.into_bytes();
            b[21] = same_top_bits(b[21], r);
            md5 = String::from_utf8(b).unwrap();
            "md5 last char's unused bits changed"
        }
        7 => {
            let pad = *r.pick(&["=", "==", "=x", "=%41", "==abc", "=~"]);
            md5.push_str(pad);
            "md5 padded"
        }
        8 => {
            let i = usize::try_from(r.below(22)).unwrap();
            let bad = *r.pick(&["+", "/", ".", "%2D", "~"]);
            md5.replace_range(i..=i, bad);
            "md5 outside the alphabet"
        }
        9 => {
            md5.truncate(usize::try_from(16 + r.below(6)).unwrap());
            "md5 truncated"
        }
        10 => {
            md5.push_str(&"A".repeat(usize::try_from(1 + r.below(3)).unwrap()));
            "md5 lengthened"
        }
        11 => {
            exp = format!(
                "{}{exp}",
                "0".repeat(usize::try_from(1 + r.below(3)).unwrap())
            );
            md5 = nginx_md5(&exp, uri);
            "expires with leading zeros, signed as written"
        }
        12 => {
            exp =
                (*r.pick(&["0", "-5", "abc", "", "0x10", "9223372036854775808", "1e9"])).to_owned();
            md5 = nginx_md5(&exp, uri);
            "expires not a positive decimal"
        }
        13 => {
            exp = "9223372036854775807".to_owned();
            md5 = nginx_md5(&exp, uri);
            "expires i64::MAX"
        }
        14 => {
            swap = true;
            "params swapped, other params around"
        }
        _ => match r.below(4) {
            0 => return case(&path, "missing md5", format!("expires={exp}")),
            1 => return case(&path, "missing expires", format!("md5={md5}")),
            2 => return case(&path, "missing both", "a=1".to_owned()),
            _ => {
                md5 = format!("{md5},{exp}");
                "comma inside md5"
            }
        },
    };
    let query = if swap {
        format!("a=1&expires={exp}&b=2&md5={md5}")
    } else {
        format!("md5={md5}&expires={exp}")
    };
    case(&path, what, query)
}

fn case(path: &str, what: &'static str, query: String) -> Case {
    Case {
        pq: format!("{path}?{query}"),
        what,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Allowed,
    Expired,
    Denied,
}

async fn nginx_verdict(addr: SocketAddr, pq: &str) -> Verdict {
    let (status, _, body) = get(addr, HOST, pq).await;
    match status {
        StatusCode::OK => {
            assert_eq!(body, Bytes::from("ok"), "{pq}");
            Verdict::Allowed
        }
        StatusCode::GONE => Verdict::Expired,
        StatusCode::FORBIDDEN => Verdict::Denied,
        other => panic!("nginx answered {other} to {pq}"),
    }
}

async fn streamguard_verdict(addr: SocketAddr, pq: &str) -> (Verdict, String) {
    let (status, headers, _) = get(addr, HOST, pq).await;
    let reason = header_map_get(&headers, "x-streamguard-deny")
        .unwrap_or("")
        .to_owned();
    let verdict = match status {
        StatusCode::OK => Verdict::Allowed,
        StatusCode::FORBIDDEN if reason == "expired" => Verdict::Expired,
        StatusCode::FORBIDDEN => Verdict::Denied,
        other => panic!("streamguard answered {other} to {pq}"),
    };
    (verdict, reason)
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread")]
async fn streamguard_and_real_nginx_agree_on_generated_urls() {
    if nginx_bin().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx must be installed in CI (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED: no nginx at /usr/sbin/nginx or on PATH; install nginx to run this test"
        );
        return;
    }
    let nginx = Nginx::start(&nginx_location());
    let origin = Origin::start().await;
    let proxy = Proxy::start(&streamguard_config(origin.addr));
    let now = now();
    let mut r = Lcg(0x5EC0_4E11_4E6E_0001);
    let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for _ in 0..400 {
        let c = generate(&mut r, now);
        let theirs = nginx_verdict(nginx.addr, &c.pq).await;
        let (ours, reason) = streamguard_verdict(proxy.http_addr(), &c.pq).await;
        *counts.entry(theirs).or_default() += 1;
        if theirs != ours {
            mismatches.push(format!(
                "{} ({}): nginx {theirs:?}, streamguard {ours:?} {reason}",
                c.pq, c.what
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of 400 verdicts differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for v in [Verdict::Allowed, Verdict::Expired, Verdict::Denied] {
        let n = counts.get(&v).copied().unwrap_or(0);
        assert!(n >= 20, "only {n} {v:?} URLs among {counts:?}");
    }
    eprintln!("nginx and streamguard agreed on 400 URLs: {counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_url_reaches_origin_with_md5_and_expires_stripped() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&streamguard_config(origin.addr));
    let exp = (now() + 600).to_string();
    let md5 = nginx_md5(&exp, "/video/a1.ts");
    let pq = format!("/video/a1.ts?a=1&md5={md5}&expires={exp}&b=2");
    let (status, _, body) = get(proxy.http_addr(), HOST, &pq).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Bytes::from("origin saw /video/a1.ts?a=1&b=2"));
    assert_eq!(origin.last_seen().path_and_query, "/video/a1.ts?a=1&b=2");
    let (status, headers, _) = get(proxy.http_addr(), HOST, "/video/a2.ts?md5=x&expires=1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-deny"),
        Some("malformed_token")
    );
    assert_eq!(origin.count(), 1, "a denied request reached the origin");
}
