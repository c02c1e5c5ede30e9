//! Host names: normalization of a `Host`/`:authority` value and the check of
//! a configured play domain, and IPv4 addresses as text. A leaf shared by
//! routing, config, `check`, verification and forwarding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 address in dotted-quad text, on the stack.
///
/// Why not `Display`: it goes through the formatting machinery (padding,
/// width) at about 1,000 instructions a call, ten times this, and the
/// proxy writes the client's address on every request (`X-Forwarded-For`,
/// nginx `$remote_addr`).
pub struct DottedQuad {
    buf: [u8; 15],
    len: usize,
}

impl DottedQuad {
    /// `ip` as `Display` writes it (`192.0.2.1`).
    pub fn of(ip: Ipv4Addr) -> Self {
        let mut buf = [0u8; 15];
        let mut len = 0;
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        DottedQuad { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Digits and dots only: always UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Lowercases a `host[:port]` and drops the port (IPv6 brackets kept off).
pub fn normalize_host(raw: &str) -> Option<String> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        // Nothing but a port may follow the brackets.
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !port_ok {
            return None;
        }
        inside
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    // One trailing dot is the DNS root (`example.com.`); a host of dots
    // only names nothing.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.ends_with('.') {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// True for a DNS name or IP literal usable as a play domain.
pub fn is_hostname(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A web origin (`scheme://host[:port]`) in the form browsers send it:
/// lowercase, default port dropped (`https://x:443` → `https://x`). `None`
/// for anything that is not an http(s) origin (a path, no host).
pub fn canonical_origin(origin: &str) -> Option<String> {
    let lower = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let host = normalize_host(rest)?;
    if !is_hostname(&host) {
        return None;
    }
    let rest = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{rest}"))
}

/// The address a client is counted by (connection limits, the failed
/// verification budget): IPv4 (and IPv4-mapped IPv6) as it is, other IPv6
/// by its /64, the prefix one subscriber is usually given (a single host
/// can use every address in it).
pub fn subscriber(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_quads_are_spelled_as_display_does() {
        for n in (0..=u32::MAX).step_by(7_919_993).chain([
            0,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0001,
            u32::MAX,
        ]) {
            let ip = Ipv4Addr::from(n);
            assert_eq!(DottedQuad::of(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn origins_compare_as_browsers_send_them() {
        assert_eq!(
            canonical_origin("HTTPS://Player.Example.com:443").as_deref(),
            Some("https://player.example.com")
        );
        assert_eq!(
            canonical_origin("http://x.example:80").as_deref(),
            Some("http://x.example")
        );
        assert_eq!(
            canonical_origin("https://x.example:8443").as_deref(),
            Some("https://x.example:8443")
        );
        assert_eq!(canonical_origin("https://x.example/path"), None);
        assert_eq!(canonical_origin("ftp://x.example"), None);
        assert_eq!(canonical_origin("https://"), None);
    }

    #[test]
    fn hosts_normalize_without_port_and_case() {
        assert_eq!(
            normalize_host("Play.Example.COM:8080").as_deref(),
            Some("play.example.com")
        );
        assert_eq!(
            normalize_host("play.example.com.").as_deref(),
            Some("play.example.com")
        );
        assert_eq!(normalize_host("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host(":80"), None);
        assert_eq!(normalize_host("[::1]@evil.com"), None);
        assert_eq!(normalize_host("[play.example.com]x"), None);
        assert_eq!(normalize_host("."), None);
        assert_eq!(normalize_host("..:80"), None);
        assert_eq!(normalize_host("play.example.com.."), None);
    }
}
