//! The proxy's own short-lived tokens for HLS children (`child_auth = "session"`).
//!
//! When a playlist is served, its child URIs get
//! `sg_session={expires}-{hex(scope)}-{mac}` where `scope` is the directory
//! the grant covers (`/live/stream/`) and
//! `mac = hex(HMAC-SHA256(secret, "sg1\n" site "\n" scope "\n" expires))[..32]`.
//! A child request is accepted when the MAC matches, its path lies under the
//! scope, and `now <= expires`. The expiry is never later than the token the
//! playlist itself was fetched with.

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
}

fn mac(secret: &Secret, site: &str, scope: &str, expires: &str) -> [u8; 16] {
    // A key of any length is accepted by HMAC, so this cannot fail.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return [0; 16];
    };
    for part in ["sg1\n", site, "\n", scope, "\n", expires] {
        m.update(part.as_bytes());
    }
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Issues a token for `scope` on `site` until `expires_at`.
pub fn issue(secret: &Secret, site: &str, scope: &str, expires_at: u64) -> String {
    let exp = format!("{expires_at:x}");
    let tag = hex::encode(mac(secret, site, scope, &exp));
    format!("{exp}-{}-{tag}", hex::encode(scope))
}

/// Checks a token for a request to `path` on `site`.
pub fn verify(
    secret: &Secret,
    site: &str,
    token: &str,
    path: &str,
    now: u64,
    leeway: u64,
) -> Result<SessionGrant, DenyReason> {
    let mut parts = token.splitn(3, '-');
    let (Some(exp), Some(scope_hex), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(DenyReason::MalformedToken);
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
    if !hex_digest_matches(&mac(secret, site, &scope, exp), tag) || !path.starts_with(&scope) {
        return Err(DenyReason::BadSignature);
    }
    match super::check_expiry(expires_at, now, leeway) {
        Decision::Allow => Ok(SessionGrant { scope, expires_at }),
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

    #[test]
    fn issued_tokens_verify_within_scope_and_time() {
        let s = Secret::new("session-secret");
        let t = issue(&s, "live", "/live/s/", 1000);
        assert_eq!(
            verify(&s, "live", &t, "/live/s/v0/seg1.ts", 1000, 0),
            Ok(SessionGrant {
                scope: "/live/s/".into(),
                expires_at: 1000
            })
        );
        assert_eq!(
            verify(&s, "live", &t, "/live/s/seg1.ts", 1001, 0),
            Err(DenyReason::Expired)
        );
        assert_eq!(
            verify(&s, "live", &t, "/live/other/seg1.ts", 10, 0),
            Err(DenyReason::BadSignature)
        );
        assert_eq!(
            verify(&s, "other-site", &t, "/live/s/seg1.ts", 10, 0),
            Err(DenyReason::BadSignature)
        );
        assert_eq!(
            verify(&Secret::new("x"), "live", &t, "/live/s/seg1.ts", 10, 0),
            Err(DenyReason::BadSignature)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let s = Secret::new("session-secret");
        let t = issue(&s, "live", "/live/s/", 1000);
        let widened = t.replacen(&hex::encode("/live/s/"), &hex::encode("/live/"), 1);
        assert_eq!(
            verify(&s, "live", &widened, "/live/x.ts", 10, 0),
            Err(DenyReason::BadSignature)
        );
        let later = t.replacen("3e8", "3e9", 1);
        assert_eq!(
            verify(&s, "live", &later, "/live/s/x.ts", 10, 0),
            Err(DenyReason::BadSignature)
        );
        for bad in [
            "",
            "3e8",
            "3e8-zz-00",
            "3e8-2f-",
            "zz-2f6c2f-00000000000000000000000000000000",
            "3e8-6c2f-00000000000000000000000000000000",
        ] {
            assert_eq!(
                verify(&s, "live", bad, "/l/x.ts", 0, 0),
                Err(DenyReason::MalformedToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn scope_is_the_directory() {
        assert_eq!(scope_of("/live/s/a.m3u8"), "/live/s/");
        assert_eq!(scope_of("/a.m3u8"), "/");
    }
}
