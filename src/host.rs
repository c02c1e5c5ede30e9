//! Host names: normalization of a `Host`/`:authority` value and the check of
//! a configured play domain. A leaf shared by routing, config and `check`.

/// Lowercases a `host[:port]` and drops the port (IPv6 brackets kept off).
pub fn normalize_host(raw: &str) -> Option<String> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    if host.is_empty() {
        return None;
    }
    Some(host.trim_end_matches('.').to_ascii_lowercase())
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
