//! The proxy's own short-lived tokens for HLS children (`child_auth = "session"`).
//!
//! When a playlist is served, its child URIs get
//! `sg_session={expires}-{hex(scope)}-{hex(ip)}-{mac}` where `scope` is the
//! directory the grant covers (`/live/stream/`), `ip` the client address the
//! playlist's own token was bound to (empty when it was not), and
//! `mac = hex(HMAC-SHA256(secret, "sg2\n" site "\n" scope "\n" ip "\n" expires))[..32]`.
//! A child request is accepted when the MAC matches, its path lies under the
//! scope, it asks for an HLS resource (not, say, an endless `.flv`), it comes
//! from the bound address if there is one, and `now <= expires`. The expiry
//! is never later than the token the playlist itself was fetched with.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{hex_digest_matches, is_hex_of_len, parse_hex_time, Decision, DenyReason};
use crate::keys::Secret;

/// The query parameter carrying a session token.
pub const SESSION_PARAM: &str = "sg_session";
/// Longest scope accepted in a token, in bytes.
const MAX_SCOPE_BYTES: usize = 1024;

/// What a valid session token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// Directory prefix the token covers, with trailing `/`.
    pub scope: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// The client address it is bound to, if any.
    pub bound_ip: Option<IpAddr>,
}

/// File extensions a session token may open: HLS playlists, segments,
/// init sections, keys and subtitles. Extension-less paths (key servers)
/// are allowed too.
const HLS_CHILD_EXTENSIONS: [&str; 16] = [
    "m3u8", "m3u", "ts", "m4s", "mp4", "m4a", "m4v", "aac", "ac3", "ec3", "mp3", "cmfv", "cmfa",
    "vtt", "webvtt", "key",
];

/// True when `path` names something an HLS player fetches from a playlist.
pub fn is_hls_child(path: &str) -> bool {
    let (_, last) = super::last_segment(path);
    match last.rsplit_once('.') {
        None => true,
        Some((_, ext)) => HLS_CHILD_EXTENSIONS
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e)),
    }
}

fn mac(secret: &Secret, site: &str, scope: &str, ip: &str, expires: &str) -> [u8; 16] {
    // A key of any length is accepted by HMAC, so this cannot fail.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return [0; 16];
    };
    for part in ["sg2\n", site, "\n", scope, "\n", ip, "\n", expires] {
        m.update(part.as_bytes());
    }
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Issues a token for `scope` on `site` until `expires_at`, bound to
/// `bound_ip` when given. `None` when the scope is too long to carry.
pub fn issue(
    secret: &Secret,
    site: &str,
    scope: &str,
    bound_ip: Option<IpAddr>,
    expires_at: u64,
) -> Option<String> {
    if scope.len() > MAX_SCOPE_BYTES {
        return None;
    }
    let exp = format!("{expires_at:x}");
    let ip = bound_ip.map(|i| i.to_string()).unwrap_or_default();
    let tag = hex::encode(mac(secret, site, scope, &ip, &exp));
    Some(format!(
        "{exp}-{}-{}-{tag}",
        hex::encode(scope),
        hex::encode(&ip)
    ))
}

/// Checks a token for a request to `path` on `site` from `client_ip`.
pub fn verify(
    secret: &Secret,
    site: &str,
    token: &str,
    path: &str,
    client_ip: Option<IpAddr>,
    now: u64,
    leeway: u64,
) -> Result<SessionGrant, DenyReason> {
    let mut parts = token.splitn(4, '-');
    let (Some(exp), Some(scope_hex), Some(ip_hex), Some(tag)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DenyReason::MalformedToken);
    };
    if ip_hex.len() > 2 * 45 {
        return Err(DenyReason::MalformedToken);
    }
    let ip = hex::decode(ip_hex)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(DenyReason::MalformedToken)?;
    let bound_ip = if ip.is_empty() {
        None
    } else {
        Some(
            ip.parse::<IpAddr>()
                .map_err(|_| DenyReason::MalformedToken)?,
        )
    };
    let expires_at = parse_hex_time(exp).ok_or(DenyReason::MalformedToken)?;
    if scope_hex.len() > 2 * MAX_SCOPE_BYTES || !is_hex_of_len(tag, 32) {
        return Err(DenyReason::MalformedToken);
    }
    let scope = hex::decode(scope_hex)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| s.starts_with('/') && s.ends_with('/'))
        .ok_or(DenyReason::MalformedToken)?;
    if !hex_digest_matches(&mac(secret, site, &scope, &ip, exp), tag)
        || !path.starts_with(&scope)
        || !is_hls_child(path)
    {
        return Err(DenyReason::BadSignature);
    }
    if bound_ip.is_some() && bound_ip != client_ip.map(|c| c.to_canonical()) {
        return Err(DenyReason::WrongClient);
    }
    match super::check_expiry(expires_at, now, leeway) {
        Decision::Allow => Ok(SessionGrant {
            scope,
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

    fn tok(s: &Secret, scope: &str, ip: Option<IpAddr>, exp: u64) -> String {
        issue(s, "live", scope, ip, exp).unwrap_or_default()
    }

    #[test]
    fn issued_tokens_verify_within_scope_and_time() {
        let s = Secret::new("session-secret");
        let t = tok(&s, "/live/s/", None, 1000);
        let grant = SessionGrant {
            scope: "/live/s/".into(),
            expires_at: 1000,
            bound_ip: None,
        };
        assert_eq!(
            verify(&s, "live", &t, "/live/s/v0/seg1.ts", None, 1000, 0),
            Ok(grant)
        );
        assert_eq!(
            verify(&s, "live", &t, "/live/s/seg1.ts", None, 1001, 0),
            Err(DenyReason::Expired)
        );
        assert_eq!(
            verify(&s, "live", &t, "/live/other/seg1.ts", None, 10, 0),
            Err(DenyReason::BadSignature)
        );
        assert_eq!(
            verify(&s, "other-site", &t, "/live/s/seg1.ts", None, 10, 0),
            Err(DenyReason::BadSignature)
        );
        assert_eq!(
            verify(
                &Secret::new("x"),
                "live",
                &t,
                "/live/s/seg1.ts",
                None,
                10,
                0
            ),
            Err(DenyReason::BadSignature)
        );
    }

    #[test]
    fn session_tokens_open_hls_resources_only() {
        let s = Secret::new("session-secret");
        let t = tok(&s, "/live/", None, 1000);
        for ok in [
            "/live/a.m3u8",
            "/live/a-1.ts",
            "/live/v0/init.mp4",
            "/live/p.m4s",
            "/live/keys/k1",
            "/live/k.key",
        ] {
            assert!(verify(&s, "live", &t, ok, None, 10, 0).is_ok(), "{ok}");
        }
        for no in ["/live/other.flv", "/live/x.php", "/live/a.mkv"] {
            assert_eq!(
                verify(&s, "live", &t, no, None, 10, 0),
                Err(DenyReason::BadSignature),
                "{no}"
            );
        }
    }

    #[test]
    fn a_bound_address_stays_bound() {
        let s = Secret::new("session-secret");
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t = tok(&s, "/live/", Some(ip), 1000);
        assert!(verify(&s, "live", &t, "/live/a.ts", Some(ip), 10, 0).is_ok());
        assert_eq!(
            verify(
                &s,
                "live",
                &t,
                "/live/a.ts",
                Some("198.51.100.1".parse().unwrap()),
                10,
                0
            ),
            Err(DenyReason::WrongClient)
        );
        assert_eq!(
            verify(&s, "live", &t, "/live/a.ts", None, 10, 0),
            Err(DenyReason::WrongClient)
        );
        // Dropping the binding breaks the MAC.
        let unbound = t.replacen(&format!("-{}-", hex::encode("203.0.113.7")), "--", 1);
        assert_eq!(
            verify(&s, "live", &unbound, "/live/a.ts", None, 10, 0),
            Err(DenyReason::BadSignature)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let s = Secret::new("session-secret");
        let t = tok(&s, "/live/s/", None, 1000);
        let widened = t.replacen(&hex::encode("/live/s/"), &hex::encode("/live/"), 1);
        assert_eq!(
            verify(&s, "live", &widened, "/live/x.ts", None, 10, 0),
            Err(DenyReason::BadSignature)
        );
        let later = t.replacen("3e8", "3e9", 1);
        assert_eq!(
            verify(&s, "live", &later, "/live/s/x.ts", None, 10, 0),
            Err(DenyReason::BadSignature)
        );
        for bad in [
            "",
            "3e8",
            "3e8-zz--00",
            "3e8-2f6c2f-",
            "zz-2f6c2f--00000000000000000000000000000000",
            "3e8-6c2f--00000000000000000000000000000000",
            "3e8-2f6c2f-7a7a-00000000000000000000000000000000",
        ] {
            assert_eq!(
                verify(&s, "live", bad, "/l/x.ts", None, 0, 0),
                Err(DenyReason::MalformedToken),
                "{bad}"
            );
        }
        assert!(issue(&s, "live", &format!("/{}/", "a".repeat(2000)), None, 1).is_none());
    }

    #[test]
    fn scope_is_the_directory() {
        assert_eq!(scope_of("/live/s/a.m3u8"), "/live/s/");
        assert_eq!(scope_of("/a.m3u8"), "/");
    }
}
