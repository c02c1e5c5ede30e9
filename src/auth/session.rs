//! The proxy's own short-lived tokens for HLS children (`child_auth = "session"`).
//!
//! When a playlist is served, each child URI gets a token of its own:
//!
//! - **exact path** (the default): `sg_session={expires}-{hex(ip)}-{mac}`,
//!   `mac = hex(HMAC-SHA256(secret, "sg4\n" site "\n" path "\n" query "\n" ip "\n" expires))[..32]`,
//!   where `path` is the child's origin path exactly as the player will
//!   request it (the playlist's URI resolved against the playlist's URL) and
//!   `query` the URI's own query (without `sg_session`). A token opens that
//!   one URL and nothing else — not the same path with another query — so a
//!   playlist can never hand out more than it references.
//! - **directory** (`child_auth = "session_directory"`, opt-in):
//!   `sg_session={expires}-{hex(scope)}-{hex(ip)}-{mac}` over `"sg2\n"` and
//!   the playlist's directory, which opens every HLS resource under it.
//!   Never issued or accepted for `/`.
//!
//! `ip` is the client address the playlist's own token was bound to (empty
//! when it was not). A child request is accepted when the MAC matches its
//! path (or the path lies under the scope), it asks for an HLS resource (not,
//! say, an endless `.flv`), it comes from the bound address if there is one,
//! and `now <= expires`. The expiry is never later than the token the
//! playlist itself was fetched with.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{hex_digest_matches, is_hex_of_len, parse_hex_time, Decision, DenyReason};
use crate::keys::Secret;

/// The query parameter carrying a session token.
pub const SESSION_PARAM: &str = "sg_session";
/// Longest scope accepted in a token, in bytes.
const MAX_SCOPE_BYTES: usize = 1024;

/// Which children a session token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Exactly the path it was issued for.
    Path,
    /// Every HLS resource under the directory it was issued for (never `/`);
    /// exact-path tokens are accepted too.
    Directory,
}

/// What a valid session token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// The directory a directory token covers (with trailing `/`); `None`
    /// for an exact-path token.
    pub directory: Option<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// The client address it is bound to, if any.
    pub bound_ip: Option<IpAddr>,
}

/// File extensions a session token may open: HLS playlists, segments,
/// init sections, keys, subtitles, JSON (`EXT-X-SESSION-DATA`, content
/// steering manifests, interstitial asset lists) and thumbnail images
/// (`EXT-X-IMAGE-STREAM-INF`). Extension-less paths (key
/// servers) are allowed too.
const HLS_CHILD_EXTENSIONS: [&str; 21] = [
    "m3u8", "m3u", "ts", "m4s", "mp4", "m4a", "m4v", "aac", "ac3", "ec3", "mp3", "cmfv", "cmfa",
    "vtt", "webvtt", "key", "json", "jpg", "jpeg", "png", "webp",
];

/// True when `path` names something an HLS player fetches from a playlist.
/// A directory (`/live/s/`, an index listing) is none.
pub fn is_hls_child(path: &str) -> bool {
    let (_, last) = super::last_segment(path);
    if last.is_empty() {
        return false;
    }
    match last.rsplit_once('.') {
        None => true,
        Some((_, ext)) => HLS_CHILD_EXTENSIONS
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e)),
    }
}

/// The MAC keyed with one session secret, before any message: what
/// [`Secret::derived`] keeps (private to this module, as that contract asks).
struct KeySchedule(Option<Hmac<Sha256>>);

fn mac(secret: &Secret, parts: &[&str]) -> [u8; 16] {
    // Why cached: the key schedule hashes the padded key twice and depends
    // on the secret alone; every child URI of every playlist needs it.
    // A key of any length is accepted by HMAC, so this cannot fail.
    let derive = |k: &str| KeySchedule(Hmac::<Sha256>::new_from_slice(k.as_bytes()).ok());
    let fresh;
    let schedule = match secret.derived(derive) {
        Some(s) => s,
        None => {
            fresh = derive(secret.expose());
            &fresh
        }
    };
    let Some(mut m) = schedule.0.clone() else {
        return [0; 16];
    };
    for part in parts {
        m.update(part.as_bytes());
    }
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn path_mac(
    secret: &Secret,
    site: &str,
    path: &str,
    query: &str,
    ip: &str,
    expires: &str,
) -> [u8; 16] {
    mac(
        secret,
        &[
            "sg4\n", site, "\n", path, "\n", query, "\n", ip, "\n", expires,
        ],
    )
}

/// A delivery directive a player adds: one of the names RFC 8216bis
/// defines, with a plain value (digits, letters, `.`, `-`, `_`: what
/// they take). Anything else stays covered: a `;` in the value could be a
/// separator to the origin (`_HLS_x=1;id=2`).
fn is_delivery_directive(pair: &super::Pair<'_>) -> bool {
    const NAMES: [&str; 5] = [
        "_HLS_msn",
        "_HLS_part",
        "_HLS_skip",
        "_HLS_pathway",
        "_HLS_throughput",
    ];
    NAMES.contains(&pair.key)
        && !pair.value.is_empty()
        && pair.value.len() <= 64
        && pair
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The part of a query a path token covers: everything but `sg_session`
/// and the `_HLS_`-prefixed delivery directives, in order (`""` for none).
/// The same function reads the playlist's URI at issue and the request at
/// verification, so both sides agree.
///
/// Why the directives are left out: RFC 8216bis reserves `_HLS_` names for
/// what players add to a URI on their own — blocking playlist reloads
/// (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and content steering requests
/// (`_HLS_pathway`, `_HLS_throughput`) — so no playlist's token could
/// cover them. They still reach the origin, which answers them.
pub fn covered_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut out = String::new();
    for pair in super::query_pairs(query) {
        if pair.whole.is_empty() || pair.key == SESSION_PARAM || is_delivery_directive(&pair) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair.whole);
    }
    out
}

fn directory_mac(secret: &Secret, site: &str, scope: &str, ip: &str, expires: &str) -> [u8; 16] {
    mac(
        secret,
        &["sg2\n", site, "\n", scope, "\n", ip, "\n", expires],
    )
}

/// Issues a token for exactly `path` (an origin path) with `query` (see
/// [`covered_query`]) on `site` until `expires_at`, bound to `bound_ip`
/// when given. `None` when the path is too long to carry.
pub fn issue_for_path(
    secret: &Secret,
    site: &str,
    path: &str,
    query: &str,
    bound_ip: Option<IpAddr>,
    expires_at: u64,
) -> Option<String> {
    if path.len() > MAX_SCOPE_BYTES || !path.starts_with('/') {
        return None;
    }
    let exp = format!("{expires_at:x}");
    let ip = bound_ip.map(|i| i.to_string()).unwrap_or_default();
    let tag = hex::encode(path_mac(secret, site, path, query, &ip, &exp));
    Some(format!("{exp}-{}-{tag}", hex::encode(&ip)))
}

/// Issues a token for every HLS resource under directory `scope` (with
/// trailing `/`). `None` for `/` (a token must never open a whole site) and
/// for a scope too long to carry.
pub fn issue_for_directory(
    secret: &Secret,
    site: &str,
    scope: &str,
    bound_ip: Option<IpAddr>,
    expires_at: u64,
) -> Option<String> {
    if scope.len() > MAX_SCOPE_BYTES
        || scope == "/"
        || !scope.starts_with('/')
        || !scope.ends_with('/')
    {
        return None;
    }
    let exp = format!("{expires_at:x}");
    let ip = bound_ip.map(|i| i.to_string()).unwrap_or_default();
    let tag = hex::encode(directory_mac(secret, site, scope, &ip, &exp));
    Some(format!(
        "{exp}-{}-{}-{tag}",
        hex::encode(scope),
        hex::encode(&ip)
    ))
}

/// [`hex_text`] decoded into `buf`, whose length is the longest text
/// accepted.
fn hex_text_in<'b>(h: &str, buf: &'b mut [u8]) -> Result<&'b str, DenyReason> {
    if h.len() > 2 * buf.len() {
        return Err(DenyReason::MalformedToken);
    }
    let out = buf
        .get_mut(..h.len() / 2)
        .ok_or(DenyReason::MalformedToken)?;
    hex::decode_to_slice(h, out).map_err(|_| DenyReason::MalformedToken)?;
    std::str::from_utf8(out).map_err(|_| DenyReason::MalformedToken)
}

fn hex_text(h: &str, max: usize) -> Result<String, DenyReason> {
    if h.len() > 2 * max {
        return Err(DenyReason::MalformedToken);
    }
    hex::decode(h)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(DenyReason::MalformedToken)
}

/// Checks a token for a request to `path` (its origin path) on `site` from
/// `client_ip`. A site with [`Scope::Path`] accepts exact-path tokens only.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one input of the decision"
)]
pub fn verify(
    secret: &Secret,
    site: &str,
    scope: Scope,
    token: &str,
    path: &str,
    query: &str,
    client_ip: Option<IpAddr>,
    now: u64,
    leeway: u64,
) -> Result<SessionGrant, DenyReason> {
    let mut parts = token.splitn(5, '-');
    let (exp, scope_hex, ip_hex, tag) = match [(); 5].map(|()| parts.next()) {
        [Some(exp), Some(ip), Some(tag), None, None] => (exp, None, ip, tag),
        [Some(exp), Some(sc), Some(ip), Some(tag), None] => (exp, Some(sc), ip, tag),
        _ => return Err(DenyReason::MalformedToken),
    };
    let mut ip_buf = [0u8; 45];
    let ip = hex_text_in(ip_hex, &mut ip_buf)?;
    let bound_ip = if ip.is_empty() {
        None
    } else {
        Some(
            ip.parse::<IpAddr>()
                .map_err(|_| DenyReason::MalformedToken)?,
        )
    };
    let expires_at = parse_hex_time(exp).ok_or(DenyReason::MalformedToken)?;
    if !is_hex_of_len(tag, 32) {
        return Err(DenyReason::MalformedToken);
    }
    let directory = match scope_hex {
        None => {
            if !hex_digest_matches(&path_mac(secret, site, path, query, ip, exp), tag) {
                return Err(DenyReason::BadSignature);
            }
            None
        }
        Some(h) => {
            let dir = hex_text(h, MAX_SCOPE_BYTES)?;
            if !dir.starts_with('/') || !dir.ends_with('/') {
                return Err(DenyReason::MalformedToken);
            }
            // Directory tokens are honoured only where the site opted in,
            // and never for the whole site.
            if scope != Scope::Directory
                || dir == "/"
                || !hex_digest_matches(&directory_mac(secret, site, &dir, ip, exp), tag)
                || !path.starts_with(&dir)
            {
                return Err(DenyReason::BadSignature);
            }
            Some(dir)
        }
    };
    if !is_hls_child(path) {
        return Err(DenyReason::BadSignature);
    }
    if bound_ip.is_some() && bound_ip != client_ip.map(|c| c.to_canonical()) {
        return Err(DenyReason::WrongClient);
    }
    match super::check_expiry(expires_at, now, leeway) {
        Decision::Allow => Ok(SessionGrant {
            directory,
            expires_at,
            bound_ip,
        }),
        Decision::Deny(r) => Err(r),
    }
}

/// The directory of a request path, with trailing `/` (`/live/s/a.m3u8` → `/live/s/`).
pub fn scope_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directives players add are left out; anything else named like
    /// one, or with a value an origin could split (`;`), stays covered.
    #[test]
    fn delivery_directives_are_left_out_and_nothing_else() {
        assert_eq!(covered_query(Some("id=1&_HLS_msn=5&_HLS_part=2")), "id=1");
        assert_eq!(
            covered_query(Some(
                "_HLS_pathway=CDN-A&_HLS_throughput=5000000&sg_session=x"
            )),
            ""
        );
        for kept in [
            "id=1&_HLS_x=1",
            "id=1&_HLS_msn=1;id=2",
            "_hls_msn=1",
            "%5FHLS_msn=1",
            "_HLS_msn=",
        ] {
            assert_eq!(covered_query(Some(kept)), kept, "{kept}");
        }
    }

    fn ok(t: &str, path: &str) -> Result<SessionGrant, DenyReason> {
        verify(
            &Secret::new("session-secret"),
            "live",
            Scope::Path,
            t,
            path,
            "",
            None,
            10,
            0,
        )
    }

    #[test]
    fn a_directory_is_no_hls_child() {
        for child in ["/live/s/a.ts", "/live/s/index.m3u8", "/live/s/key"] {
            assert!(is_hls_child(child), "{child}");
        }
        for other in [
            "/live/s/",
            "/live/s/sub/",
            "/live/s/s.flv/",
            "/live/s/s.flv",
        ] {
            assert!(!is_hls_child(other), "{other}");
        }
    }

    #[test]
    fn a_path_token_opens_exactly_its_path() {
        let s = Secret::new("session-secret");
        let t = issue_for_path(&s, "live", "/live/s/seg1.ts", "", None, 1000).unwrap();
        assert_eq!(
            verify(
                &s,
                "live",
                Scope::Path,
                &t,
                "/live/s/seg1.ts",
                "",
                None,
                1000,
                0
            ),
            Ok(SessionGrant {
                directory: None,
                expires_at: 1000,
                bound_ip: None
            })
        );
        assert_eq!(
            verify(
                &s,
                "live",
                Scope::Path,
                &t,
                "/live/s/seg1.ts",
                "",
                None,
                1001,
                0
            ),
            Err(DenyReason::Expired)
        );
        for other in [
            "/live/s/seg2.ts",
            "/live/s/seg1.ts/",
            "/live/s/Seg1.ts",
            "/live/s/",
            "/",
            "/secret/aes.key",
        ] {
            assert_eq!(ok(&t, other), Err(DenyReason::BadSignature), "{other}");
        }
        assert_eq!(
            verify(
                &s,
                "other-site",
                Scope::Path,
                &t,
                "/live/s/seg1.ts",
                "",
                None,
                10,
                0
            ),
            Err(DenyReason::BadSignature)
        );
        assert_eq!(
            verify(
                &Secret::new("x"),
                "live",
                Scope::Path,
                &t,
                "/live/s/seg1.ts",
                "",
                None,
                10,
                0
            ),
            Err(DenyReason::BadSignature)
        );
    }

    #[test]
    fn a_path_token_opens_only_its_own_query() {
        let s = Secret::new("session-secret");
        let t = issue_for_path(&s, "live", "/keys/k", "id=1", None, 1000).unwrap();
        let at = |q: &str| verify(&s, "live", Scope::Path, &t, "/keys/k", q, None, 10, 0);
        assert!(at("id=1").is_ok());
        for other in ["id=2", "", "id=1&x=1", "x=1&id=1"] {
            assert_eq!(at(other), Err(DenyReason::BadSignature), "{other}");
        }
        assert_eq!(covered_query(Some("id=1&sg_session=abc")), "id=1");
        assert_eq!(covered_query(Some("sg_session=abc")), "");
        assert_eq!(covered_query(None), "");
    }

    #[test]
    fn directory_tokens_need_the_opt_in_and_never_cover_the_root() {
        let s = Secret::new("session-secret");
        let t = issue_for_directory(&s, "live", "/live/s/", None, 1000).unwrap();
        assert_eq!(ok(&t, "/live/s/seg1.ts"), Err(DenyReason::BadSignature));
        let dir = |path| verify(&s, "live", Scope::Directory, &t, path, "", None, 10, 0);
        assert_eq!(
            dir("/live/s/v0/seg1.ts").map(|g| g.directory),
            Ok(Some("/live/s/".to_owned()))
        );
        assert_eq!(dir("/live/other/seg1.ts"), Err(DenyReason::BadSignature));
        assert!(issue_for_directory(&s, "live", "/", None, 1000).is_none());
        // A forged root token (the MAC would be right with the secret) is refused.
        let exp = "3e8";
        let tag = hex::encode(directory_mac(&s, "live", "/", "", exp));
        let root = format!("{exp}-{}--{tag}", hex::encode("/"));
        assert_eq!(
            verify(
                &s,
                "live",
                Scope::Directory,
                &root,
                "/a.ts",
                "",
                None,
                10,
                0
            ),
            Err(DenyReason::BadSignature)
        );
        // Path tokens work on directory sites too.
        let p = issue_for_path(&s, "live", "/x/a.ts", "", None, 1000).unwrap();
        assert!(verify(&s, "live", Scope::Directory, &p, "/x/a.ts", "", None, 10, 0).is_ok());
    }

    #[test]
    fn session_tokens_open_hls_resources_only() {
        let s = Secret::new("session-secret");
        for good in [
            "/live/a.m3u8",
            "/live/a-1.ts",
            "/live/v0/init.mp4",
            "/live/p.m4s",
            "/live/keys/k1",
            "/live/k.key",
        ] {
            let t = issue_for_path(&s, "live", good, "", None, 1000).unwrap();
            assert!(ok(&t, good).is_ok(), "{good}");
        }
        for no in ["/live/other.flv", "/live/x.php", "/live/a.mkv"] {
            let t = issue_for_path(&s, "live", no, "", None, 1000).unwrap();
            assert_eq!(ok(&t, no), Err(DenyReason::BadSignature), "{no}");
        }
    }

    #[test]
    fn a_bound_address_stays_bound() {
        let s = Secret::new("session-secret");
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t = issue_for_path(&s, "live", "/live/a.ts", "", Some(ip), 1000).unwrap();
        let at = |client| verify(&s, "live", Scope::Path, &t, "/live/a.ts", "", client, 10, 0);
        assert!(at(Some(ip)).is_ok());
        assert_eq!(
            at(Some("198.51.100.1".parse().unwrap())),
            Err(DenyReason::WrongClient)
        );
        assert_eq!(at(None), Err(DenyReason::WrongClient));
        // Dropping the binding breaks the MAC.
        let unbound = t.replacen(&format!("-{}-", hex::encode("203.0.113.7")), "--", 1);
        assert_eq!(ok(&unbound, "/live/a.ts"), Err(DenyReason::BadSignature));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let s = Secret::new("session-secret");
        let t = issue_for_path(&s, "live", "/live/s/x.ts", "", None, 1000).unwrap();
        let later = t.replacen("3e8", "3e9", 1);
        assert_eq!(ok(&later, "/live/s/x.ts"), Err(DenyReason::BadSignature));
        for bad in [
            "",
            "3e8",
            "3e8-zz-00",
            "zz--00000000000000000000000000000000",
            "3e8-7a7a-00000000000000000000000000000000",
            "3e8-2f6c2f-7a7a-00000000000000000000000000000000",
            "3e8-6c2f--00000000000000000000000000000000",
            "3e8-a-b-c-d",
        ] {
            assert_eq!(ok(bad, "/l/x.ts"), Err(DenyReason::MalformedToken), "{bad}");
        }
        assert!(
            issue_for_path(&s, "live", &format!("/{}", "a".repeat(2000)), "", None, 1).is_none()
        );
    }

    #[test]
    fn scope_is_the_directory() {
        assert_eq!(scope_of("/live/s/a.m3u8"), "/live/s/");
        assert_eq!(scope_of("/a.m3u8"), "/");
    }
}
