//! HLS playlist rewriting: give every child URI of a playlist auth the proxy
//! will accept, because players resolve relative URIs without the
//! playlist's query string.
//!
//! The rewriter is a pure function over the playlist text: URI lines and the
//! `URI="…"` attribute of EXT-X-KEY, EXT-X-MAP, EXT-X-MEDIA,
//! EXT-X-I-FRAME-STREAM-INF, EXT-X-PART, EXT-X-PRELOAD-HINT,
//! EXT-X-RENDITION-REPORT and EXT-X-SESSION-KEY get `params` appended to
//! their query. Comments, other tags, blank lines and line endings (LF or
//! CRLF) are kept byte for byte. URIs on other hosts, and non-HTTP URIs
//! (`skd://`, `data:`), are left alone unless the host is listed.

/// Tags whose `URI` attribute names a resource the player will fetch.
pub const URI_TAGS: [&str; 8] = [
    "#EXT-X-KEY:",
    "#EXT-X-MAP:",
    "#EXT-X-MEDIA:",
    "#EXT-X-I-FRAME-STREAM-INF:",
    "#EXT-X-PART:",
    "#EXT-X-PRELOAD-HINT:",
    "#EXT-X-RENDITION-REPORT:",
    "#EXT-X-SESSION-KEY:",
];

/// True when a response is an HLS playlist, by Content-Type or path.
pub fn is_playlist(content_type: Option<&str>, path: &str) -> bool {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ct.as_str(),
        "application/vnd.apple.mpegurl"
            | "application/x-mpegurl"
            | "audio/mpegurl"
            | "audio/x-mpegurl"
    ) || path.to_ascii_lowercase().ends_with(".m3u8")
}

/// True when `text` starts with the `#EXTM3U` header every playlist must
/// have (RFC 8216 §4.3.1.1), after an optional byte-order mark.
pub fn looks_like_playlist(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').starts_with("#EXTM3U")
}

/// Which URIs get auth.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Hosts (lowercase, no port) whose absolute URLs are rewritten: the
    /// site's domains plus any configured extra hosts.
    pub hosts: &'a [String],
}

impl Scope<'_> {
    /// True for a relative reference, an absolute path, or an http(s) URL on
    /// one of the hosts.
    fn covers(&self, uri: &str) -> bool {
        let lower = uri.to_ascii_lowercase();
        let rest = if let Some(r) = lower.strip_prefix("http://") {
            r
        } else if let Some(r) = lower.strip_prefix("https://") {
            r
        } else if let Some(r) = lower.strip_prefix("//") {
            r
        } else {
            // A relative reference has no scheme: nothing before a ':' that
            // precedes any '/', '?' or '#'.
            let head = lower.split(['/', '?', '#']).next().unwrap_or("");
            return !head.contains(':');
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host =
            crate::proxy::normalize_host(authority.rsplit_once('@').map_or(authority, |(_, h)| h));
        host.is_some_and(|h| self.hosts.contains(&h))
    }
}

/// `uri` with `params` (`a=1&b=2`) appended to its query, before any fragment.
pub fn add_params(uri: &str, params: &str) -> String {
    let (base, frag) = match uri.find('#') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    let sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{base}{sep}{params}{frag}")
}

/// Rewrites a playlist; see the module docs.
pub fn rewrite(playlist: &str, scope: Scope<'_>, params: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + playlist.len() / 4);
    for line in playlist.split_inclusive('\n') {
        let (body, ending) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        let trimmed = body.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if trimmed.starts_with('#') {
            if URI_TAGS.iter().any(|t| trimmed.starts_with(t)) {
                out.push_str(&rewrite_uri_attribute(body, scope, params));
                out.push_str(ending);
            } else {
                out.push_str(line);
            }
        } else if scope.covers(trimmed) {
            // Keep surrounding whitespace as it was.
            let start = body.len() - body.trim_start().len();
            out.push_str(&body[..start]);
            out.push_str(&add_params(trimmed, params));
            out.push_str(&body[start + trimmed.len()..]);
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Rewrites the `URI="…"` attribute of a tag line, scanning the attribute
/// list properly so a `URI=` inside another quoted value is not touched.
fn rewrite_uri_attribute(line: &str, scope: Scope<'_>, params: &str) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_owned();
    };
    let bytes = line.as_bytes();
    let mut i = colon + 1;
    while i < bytes.len() {
        // At the start of an attribute name.
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b',' {
            i += 1;
            continue;
        }
        let name = line[name_start..i].trim();
        i += 1; // '='
        if i < bytes.len() && bytes[i] == b'"' {
            let value_start = i + 1;
            let Some(len) = line[value_start..].find('"') else {
                return line.to_owned(); // unterminated: leave the line alone
            };
            let value_end = value_start + len;
            if name == "URI" {
                let value = &line[value_start..value_end];
                if !scope.covers(value) {
                    return line.to_owned();
                }
                return format!(
                    "{}{}{}",
                    &line[..value_start],
                    add_params(value, params),
                    &line[value_end..]
                );
            }
            i = value_end + 1;
        } else {
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
        }
        // Skip the ',' separator.
        if i < bytes.len() && bytes[i] == b',' {
            i += 1;
        }
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "tok=1";

    fn hosts() -> Vec<String> {
        vec!["play.example.com".to_owned()]
    }

    fn rw(text: &str) -> String {
        let h = hosts();
        rewrite(text, Scope { hosts: &h }, P)
    }

    #[test]
    fn detects_playlists() {
        assert!(is_playlist(Some("application/vnd.apple.mpegurl"), "/x"));
        assert!(is_playlist(Some("Audio/MPEGURL; charset=utf-8"), "/x"));
        assert!(is_playlist(
            Some("application/octet-stream"),
            "/live/a.M3U8"
        ));
        assert!(!is_playlist(Some("video/mp2t"), "/live/a.ts"));
        assert!(!is_playlist(None, "/live/a.flv"));
    }

    #[test]
    fn media_playlist_segments_get_params_and_tags_stay() {
        let src = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\n# a comment\n#EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts?x=1\n#EXTINF:2.0,\n/abs/seg2.ts\n#EXTINF:2.0,\nhttp://play.example.com:8080/seg3.ts\n#EXTINF:2.0,\nhttps://cdn.other.com/seg4.ts\n#EXT-X-ENDLIST\n";
        let want = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\n# a comment\n#EXTINF:2.0,\nseg0.ts?tok=1\n#EXTINF:2.0,\nseg1.ts?x=1&tok=1\n#EXTINF:2.0,\n/abs/seg2.ts?tok=1\n#EXTINF:2.0,\nhttp://play.example.com:8080/seg3.ts?tok=1\n#EXTINF:2.0,\nhttps://cdn.other.com/seg4.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(rw(src), want);
    }

    #[test]
    fn every_uri_tag_is_rewritten() {
        let src = concat!(
            "#EXTM3U\n",
            "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"key0.bin\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/en.m3u8\"\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aud\"\n",
            "v0/index.m3u8\n",
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"v0/iframes.m3u8\"\n",
            "#EXT-X-KEY:METHOD=AES-128,URI=\"https://play.example.com/keys/k1?id=3\",IV=0x1234\n",
            "#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\n",
            "#EXT-X-PART:DURATION=0.5,URI=\"part1.m4s\",INDEPENDENT=YES\n",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.m4s\"\n",
            "#EXT-X-RENDITION-REPORT:URI=\"../v1/index.m3u8\",LAST-MSN=7,LAST-PART=2\n",
        );
        let out = rw(src);
        for want in [
            "URI=\"key0.bin?tok=1\"",
            "URI=\"audio/en.m3u8?tok=1\"",
            "\nv0/index.m3u8?tok=1\n",
            "URI=\"v0/iframes.m3u8?tok=1\"",
            "URI=\"https://play.example.com/keys/k1?id=3&tok=1\",IV=0x1234",
            "URI=\"init.mp4?tok=1\",BYTERANGE=\"720@0\"",
            "URI=\"part1.m4s?tok=1\",INDEPENDENT=YES",
            "URI=\"part2.m4s?tok=1\"",
            "URI=\"../v1/index.m3u8?tok=1\",LAST-MSN=7",
            "CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aud\"\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert_eq!(out.matches("tok=1").count(), 9);
    }

    #[test]
    fn other_hosts_and_non_http_uris_are_left_alone_unless_listed() {
        let src = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"data:text/plain;base64,AAAA\"\nhttps://cdn.other.com/a.ts\n";
        assert_eq!(rw(src), src);
        let h = vec!["play.example.com".to_owned(), "cdn.other.com".to_owned()];
        let out = rewrite(src, Scope { hosts: &h }, P);
        assert!(out.contains("https://cdn.other.com/a.ts?tok=1"));
        assert!(out.contains("skd://key-id\""));
    }

    #[test]
    fn uri_inside_another_quoted_value_is_not_touched() {
        let src = "#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"x,URI=\\\"no\\\"\",URI=\"a.m3u8\"\n";
        // The NAME value contains `URI=`; only the real attribute changes.
        let src2 = "#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"URI=nope\",URI=\"a.m3u8\"\n";
        assert_eq!(
            rw(src2),
            "#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"URI=nope\",URI=\"a.m3u8?tok=1\"\n"
        );
        let _ = rw(src); // malformed quoting never panics
    }

    #[test]
    fn crlf_and_missing_final_newline_are_kept() {
        let src = "#EXTM3U\r\n#EXTINF:2,\r\nseg0.ts\r\n#EXTINF:2,\r\nseg1.ts";
        assert_eq!(
            rw(src),
            "#EXTM3U\r\n#EXTINF:2,\r\nseg0.ts?tok=1\r\n#EXTINF:2,\r\nseg1.ts?tok=1"
        );
    }

    #[test]
    fn fragments_and_trailing_separators() {
        assert_eq!(add_params("a.ts#t=1", P), "a.ts?tok=1#t=1");
        assert_eq!(add_params("a.ts?", P), "a.ts?tok=1");
        assert_eq!(add_params("a.ts?x=1&", P), "a.ts?x=1&tok=1");
    }
}
