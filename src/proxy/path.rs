//! Request path rules: what the proxy verifies is exactly what it forwards.
//!
//! Why: if the verifier saw one path and the origin another (`/a/../b`,
//! `//b`, `%2e%2e`), a URL signed for one stream could fetch another. So the
//! path is never rewritten; paths the origin might interpret differently
//! from the verifier are rejected instead.

/// Why a path was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not starting with `/` (e.g. `*` or absolute-form leftovers).
    #[error("path must start with /")]
    NotAbsolute,
    /// An empty segment (`//`).
    #[error("path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment, literal or percent-encoded.
    #[error("path has a dot segment")]
    DotSegment,
    /// A percent-encoded `/`, `\`, `.`, `?`, `#`, NUL, or a broken escape.
    #[error("path has an ambiguous or invalid percent-escape")]
    BadEscape,
    /// A backslash, which some origins treat as `/`.
    #[error("path has a backslash")]
    Backslash,
    /// A raw `#`: servers end the path there (a fragment), so what is
    /// served is not what was judged (a media server's hook sees the
    /// client's raw request target).
    #[error("path has a #")]
    Fragment,
    /// A `;` path parameter, which servlet containers strip (so
    /// `/a.flv;x.ts` would be judged as a `.ts` but served as the `.flv`).
    #[error("path has a ; parameter")]
    Params,
}

/// Accepts a path whose meaning is the same to every reasonable origin.
pub fn validate(path: &str) -> Result<(), PathError> {
    validate_with(path, false)
}

/// [`validate`], with `;` path parameters allowed when `allow_params` (a
/// site that opted in: its origin does not strip them).
///
/// One pass over the bytes. When a path breaks several rules the reason is
/// the first of: `;` parameters, not absolute, a backslash, a bad escape,
/// then the first bad segment.
pub fn validate_with(path: &str, allow_params: bool) -> Result<(), PathError> {
    // The reasons that outrank `err`, judged from `rest` (the bytes not
    // scanned yet) alone: everything before it was clean.
    let outranked = |rest: &[u8], err: PathError| {
        if !allow_params && rest.contains(&b';') {
            PathError::Params
        } else if err == PathError::BadEscape && rest.contains(&b'\\') {
            PathError::Backslash
        } else {
            err
        }
    };
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(outranked(bytes, PathError::NotAbsolute));
    }
    // The first bad segment, reported only if nothing outranks it.
    let mut bad_segment = None;
    let mut seg_start = 1;
    // End of the segment's part before any `;` parameter.
    let mut bare_end = None;
    let mut i = 1;
    loop {
        let c = bytes.get(i).copied();
        match c {
            None | Some(b'/') => {
                if bad_segment.is_none() {
                    let seg = &bytes[seg_start..i];
                    let bare = &bytes[seg_start..bare_end.unwrap_or(i)];
                    // `..;jsessionid=x` is `..` to servlet containers:
                    // judge the part before any path parameter. An empty
                    // last segment is a trailing slash.
                    if seg.is_empty() && c.is_some() {
                        bad_segment = Some(PathError::EmptySegment);
                    } else if bare == b"." || bare == b".." {
                        bad_segment = Some(PathError::DotSegment);
                    }
                }
                if c.is_none() {
                    break;
                }
                seg_start = i + 1;
                bare_end = None;
                i += 1;
            }
            Some(b';') => {
                if !allow_params {
                    return Err(PathError::Params);
                }
                bare_end.get_or_insert(i);
                i += 1;
            }
            Some(b'\\') => return Err(outranked(&bytes[i..], PathError::Backslash)),
            Some(b'#') => return Err(outranked(&bytes[i..], PathError::Fragment)),
            Some(b'%') => {
                let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(h), Some(l)) => hex_val(*h).zip(hex_val(*l)).map(|(h, l)| h << 4 | l),
                    _ => None,
                };
                // `%3F`/`%23`: an origin that decodes the path and splits
                // it again would see `/a.flv%3F.ts` as `/a.flv`, a query.
                match decoded {
                    Some(d) if !matches!(d, b'/' | b'\\' | b'.' | b'?' | b'#' | 0) => i += 3,
                    _ => return Err(outranked(&bytes[i..], PathError::BadEscape)),
                }
            }
            Some(_) => i += 1,
        }
    }
    bad_segment.map_or(Ok(()), Err)
}

/// Shortest run of hex digits treated as a possible signature (an MD5 is
/// 32; 16 leaves room for truncated MACs).
const LOGGED_HEX_RUN: usize = 16;

/// True when `s` holds a run of [`LOGGED_HEX_RUN`] or more hex digits.
fn has_hex_run(s: &str) -> bool {
    let mut run = 0;
    for b in s.bytes() {
        run = if b.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= LOGGED_HEX_RUN {
            return true;
        }
    }
    false
}

/// `path` as it may be logged: anything that could be a signature is
/// replaced by `…` — `;` parameters, segments holding `=`, and runs of 16 or
/// more hex digits (the MD5 of Alibaba Cloud B/C in-path auth, wherever it
/// sits) — whatever the host or verdict. Borrowed when there is nothing to
/// hide.
pub fn for_log(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(['=', ';']) && !has_hex_run(path) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let (bare, params) = match seg.split_once(';') {
            Some((b, _)) => (b, true),
            None => (seg, false),
        };
        if bare.contains('=') {
            out.push('…');
        } else {
            // Keep what surrounds a hex run (`seg-…​.ts`), hide the run.
            let bytes = bare.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let run = bytes[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_hexdigit())
                    .count();
                if run >= LOGGED_HEX_RUN {
                    out.push('…');
                    i += run;
                } else if run > 0 {
                    out.push_str(&bare[i..i + run]);
                    i += run;
                } else {
                    let ch = bare[i..].chars().next().map_or(1, char::len_utf8);
                    out.push_str(&bare[i..i + ch]);
                    i += ch;
                }
            }
        }
        if params {
            out.push_str(";…");
        }
    }
    std::borrow::Cow::Owned(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant: any accepted path has no dot segment, no empty inner
        /// segment and no escape that decodes to a separator, whatever the input.
        #[test]
        fn accepted_paths_are_unambiguous(p in "/[a-zA-Z0-9./%;\\\\-]{0,24}") {
            prop_assert!(validate(&p).is_err() || !p.contains(';'));
            if validate_with(&p, true).is_ok() {
                let decoded = crate::auth::percent_decode(&p).unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded);
                for seg in decoded[1..].split('/') {
                    let bare = seg.split(';').next().unwrap_or(seg);
                    prop_assert!(bare != "." && bare != "..", "{p} decodes to a dot segment");
                }
                prop_assert!(!p[1..].contains("//"), "{p}");
                prop_assert!(!p.contains('\\'), "{p}");
                prop_assert_eq!(decoded.matches('/').count(), p.matches('/').count(), "{} hides a /", p);
            }
        }
    }

    /// The multi-pass `validate_with` the one-pass version replaced, kept
    /// as the reference it must agree with.
    fn reference(path: &str, allow_params: bool) -> Result<(), PathError> {
        if !allow_params && path.contains(';') {
            return Err(PathError::Params);
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(PathError::NotAbsolute);
        };
        if path.contains('\\') {
            return Err(PathError::Backslash);
        }
        let bytes = path.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(PathError::BadEscape);
                };
                let (Some(h), Some(l)) = (hex_val(*h), hex_val(*l)) else {
                    return Err(PathError::BadEscape);
                };
                if matches!(h << 4 | l, b'/' | b'\\' | b'.' | 0) {
                    return Err(PathError::BadEscape);
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let last = segments.len() - 1;
        for (n, seg) in segments.iter().enumerate() {
            let bare = seg.split(';').next().unwrap_or(seg);
            match bare {
                "" if n != last && seg.is_empty() => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                _ => {}
            }
        }
        Ok(())
    }

    proptest! {
        /// The one-pass check gives the same answer, and the same reason, as
        /// the reference on paths mixing every character a rule looks at.
        #[test]
        fn one_pass_agrees_with_the_reference(
            p in "[/a.%;\\\\2eEfF05c]{0,16}",
            allow in any::<bool>(),
        ) {
            prop_assert_eq!(validate_with(&p, allow), reference(&p, allow), "{:?}", p);
        }
    }

    #[test]
    fn plain_paths_pass() {
        for p in [
            "/",
            "/live/test.flv",
            "/live/",
            "/a/b%20c.m3u8",
            "/live/x.y.z",
            "/a/..b",
        ] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn ambiguous_paths_are_rejected() {
        let cases = [
            ("live", PathError::NotAbsolute),
            ("//live/x", PathError::EmptySegment),
            ("/live//x", PathError::EmptySegment),
            ("/live/../x", PathError::DotSegment),
            ("/live/./x", PathError::DotSegment),
            ("/live/..", PathError::DotSegment),
            ("/live/..;x=1/secret", PathError::DotSegment),
            ("/live/.;/x", PathError::DotSegment),
            ("/live/%2e%2e/x", PathError::BadEscape),
            ("/live%2Fx", PathError::BadEscape),
            ("/live%5cx", PathError::BadEscape),
            ("/live%00", PathError::BadEscape),
            ("/live/s/x.flv%3f.ts", PathError::BadEscape),
            ("/live/s/x.flv%23.ts", PathError::BadEscape),
            ("/live%zz", PathError::BadEscape),
            ("/live%2", PathError::BadEscape),
            ("/live\\x", PathError::Backslash),
            ("/live/secret.flv#/cam", PathError::Fragment),
        ];
        for (p, e) in cases {
            assert_eq!(validate_with(p, true), Err(e), "{p}");
        }
    }

    #[test]
    fn logged_paths_hide_anything_signature_like() {
        let h = "a37fa50a5fb8f71214b1e7c95ec7a1bd";
        assert_eq!(for_log("/live/test.flv"), "/live/test.flv");
        assert_eq!(
            for_log(&format!("/{h}/55CE8100/test.flv")),
            "/…/55CE8100/test.flv"
        );
        assert_eq!(
            for_log(&format!("/201508150800/{h}/x/201508150800/{h}/a.flv")),
            "/201508150800/…/x/201508150800/…/a.flv"
        );
        assert_eq!(
            for_log("/live/a.flv;txSecret=f85a2ab363fe4deaffef9754d79da6fe"),
            "/live/a.flv;…"
        );
        assert_eq!(for_log("/live/__token__=exp=1~hmac=ab/x"), "/live/…/x");
        assert_eq!(for_log(&format!("/live/seg-{h}.ts")), "/live/seg-….ts");
        assert_eq!(for_log("/live/cafe-0123.ts"), "/live/cafe-0123.ts");
    }

    #[test]
    fn path_parameters_are_refused_unless_the_site_allows_them() {
        for p in [
            "/live/a/stream.flv;x.ts",
            "/live/a.m3u8;jsessionid=1",
            "/live/a;b/c.ts",
            "/;",
        ] {
            assert_eq!(validate(p), Err(PathError::Params), "{p}");
            assert_eq!(validate_with(p, true), Ok(()), "{p}");
        }
    }
}
