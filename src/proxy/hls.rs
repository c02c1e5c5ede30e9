//! HLS playlist rewriting: give every child URI of a playlist auth the proxy
//! will accept, because players resolve relative URIs without the
//! playlist's query string.
//!
//! The rewriter is a pure function over the playlist text: URI lines, the
//! `URI="…"` attribute of EXT-X-KEY, EXT-X-MAP, EXT-X-MEDIA,
//! EXT-X-I-FRAME-STREAM-INF, EXT-X-PART, EXT-X-PRELOAD-HINT,
//! EXT-X-RENDITION-REPORT, EXT-X-SESSION-KEY, EXT-X-SESSION-DATA and
//! EXT-X-IMAGE-STREAM-INF, the `SERVER-URI` of EXT-X-CONTENT-STEERING and
//! the interstitials' `X-ASSET-URI`/`X-ASSET-LIST` of EXT-X-DATERANGE get
//! params appended to
//! their query: for each, the caller is given the path the player will
//! request (the URI resolved against the playlist's path, RFC 3986 §5.2,
//! dot segments removed) and answers with that child's params. Comments, other tags, blank lines and line endings (LF or
//! CRLF) are kept byte for byte. URIs on other hosts, and non-HTTP URIs
//! (`skd://`, `data:`), are left alone unless the host is listed.

/// Tags with attributes that name a resource the player will fetch, and
/// those attributes' names (RFC 8216bis: content steering's server,
/// interstitials' asset or asset list on a date range).
pub const URI_TAGS: [(&str, &[&str]); 12] = [
    ("#EXT-X-KEY:", &["URI"]),
    ("#EXT-X-MAP:", &["URI"]),
    ("#EXT-X-MEDIA:", &["URI"]),
    ("#EXT-X-I-FRAME-STREAM-INF:", &["URI"]),
    ("#EXT-X-PART:", &["URI"]),
    ("#EXT-X-PRELOAD-HINT:", &["URI"]),
    ("#EXT-X-RENDITION-REPORT:", &["URI"]),
    ("#EXT-X-SESSION-KEY:", &["URI"]),
    ("#EXT-X-SESSION-DATA:", &["URI"]),
    ("#EXT-X-IMAGE-STREAM-INF:", &["URI"]),
    ("#EXT-X-CONTENT-STEERING:", &["SERVER-URI"]),
    ("#EXT-X-DATERANGE:", &["X-ASSET-URI", "X-ASSET-LIST"]),
];

/// True when a response is an HLS playlist, by Content-Type or path.
pub fn is_playlist(content_type: Option<&str>, path: &str) -> bool {
    // Compared in place, case-insensitively: this runs on every request.
    const TYPES: [&str; 4] = [
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    ];
    let typed = content_type.is_some_and(|c| {
        let ct = c.split(';').next().unwrap_or(c).trim();
        TYPES.iter().any(|t| ct.eq_ignore_ascii_case(t))
    });
    let p = path.as_bytes();
    typed || (p.len() >= 5 && p[p.len() - 5..].eq_ignore_ascii_case(b".m3u8"))
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
    /// The path a player requests for `uri` found in a playlist served at
    /// `base` (a path): for a relative reference, an absolute path, or an
    /// http(s) URL on one of the hosts; `None` for anything else (other
    /// hosts, other schemes), which is left alone.
    pub fn target_path(&self, base: &str, uri: &str) -> Option<String> {
        if !unambiguous(uri) {
            return None;
        }
        self.resolve(base, &as_browser_reads(uri))
    }

    /// [`Scope::target_path`] for a URI already cleaned by [`as_browser_reads`].
    fn resolve(&self, base: &str, uri: &str) -> Option<String> {
        let uri = uri.split('#').next().unwrap_or("");
        let lower = uri.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            Some(&uri[7..])
        } else if lower.starts_with("https://") {
            Some(&uri[8..])
        } else if lower.starts_with("//") {
            Some(&uri[2..])
        } else {
            None
        };
        let path = match rest {
            Some(rest) => {
                let end = rest.find(['/', '?']).unwrap_or(rest.len());
                let authority = &rest[..end];
                // Browsers read a backslash as `/`: `evil\@host` is on `evil`.
                if authority.contains('\\') {
                    return None;
                }
                let host = crate::host::normalize_host(
                    authority.rsplit_once('@').map_or(authority, |(_, h)| h),
                )?;
                if !self.hosts.contains(&host) {
                    return None;
                }
                let p = rest[end..].split('?').next().unwrap_or("");
                if p.is_empty() {
                    "/".to_owned()
                } else {
                    p.to_owned()
                }
            }
            None => {
                // A relative reference has no scheme: nothing before a ':'
                // that precedes any '/', '?' or '#'.
                let head = uri.split(['/', '?']).next().unwrap_or("");
                if head.contains(':') {
                    return None;
                }
                let reference = uri.split('?').next().unwrap_or("");
                if reference.starts_with('/') {
                    reference.to_owned()
                } else if reference.is_empty() {
                    base.to_owned()
                } else {
                    let dir = base.rfind('/').map_or("/", |i| &base[..=i]);
                    format!("{dir}{reference}")
                }
            }
        };
        Some(percent_encode(&remove_dot_segments(&path), PATH_SET))
    }
}

/// Whether every player resolves `uri` the same way: no control character
/// (players end a line at a lone CR; browsers drop tabs and newlines, and
/// trim leading controls), no backslash (read as `/`, so `/\\evil/x` is on
/// another host), no `{$var}` (EXT-X-DEFINE: the player substitutes it).
/// Anything else is left alone: no auth is added to a URI that some player
/// might fetch from another host.
fn unambiguous(uri: &str) -> bool {
    !uri.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') && !uri.contains("{$")
}

/// `uri` as a browser reads a URL: tabs and newlines dropped (borrowed when
/// there are none).
fn as_browser_reads(uri: &str) -> std::borrow::Cow<'_, str> {
    if uri.contains(['\t', '\n', '\r']) {
        std::borrow::Cow::Owned(
            uri.chars()
                .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(uri)
    }
}

/// Bytes a browser percent-encodes in a URL path (WHATWG URL "path
/// percent-encode set"), besides controls and non-ASCII.
const PATH_SET: &[u8] = b" \"#<>?`{}";
/// The same for a query of an http(s) URL ("special-query percent-encode set").
const QUERY_SET: &[u8] = b" \"#<>'";

/// `s` with what a browser would percent-encode encoded, so a token is
/// issued for the bytes the player will send (`seg 1.ts` → `seg%201.ts`,
/// `é` → `%C3%A9`); existing escapes are kept.
fn percent_encode(s: &str, set: &[u8]) -> String {
    if s.bytes()
        .all(|b| (0x21..0x7f).contains(&b) && !set.contains(&b))
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if (0x21..0x7f).contains(&b) && !set.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Scope<'_> {
    /// What a player requests for `uri`: [`Scope::target_path`], with the
    /// URI's own query (if any) after a `?`. The query is part of what a
    /// child token opens: an origin may pick the resource by it (`key?id=1`).
    pub fn target(&self, base: &str, uri: &str) -> Option<String> {
        if !unambiguous(uri) {
            return None;
        }
        let cleaned = as_browser_reads(uri);
        let path = self.resolve(base, &cleaned)?;
        let query = cleaned
            .split('#')
            .next()
            .and_then(|u| u.split_once('?'))
            .map_or(String::new(), |(_, q)| percent_encode(q, QUERY_SET));
        Some(if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        })
    }
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments resolved the
/// way a player resolves them (never above the root).
pub fn remove_dot_segments(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    let last = segs.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate().skip(1) {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
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

/// Rewrites a playlist served at `base` (its request path); see the module
/// docs. `params` gives each child's params from what the player will
/// request ([`Scope::target`]: the path, and `?query` when the URI has one);
/// `None` leaves that URI as it is. `None` when the result would pass
/// `max_len` bytes: given up as soon as it does, so that a playlist of
/// very many short lines costs neither the memory nor a token per line.
pub fn rewrite(
    playlist: &str,
    scope: Scope<'_>,
    base: &str,
    params: &mut dyn FnMut(&str) -> Option<String>,
    max_len: usize,
) -> Option<String> {
    let mut out = String::with_capacity((playlist.len() + playlist.len() / 4).min(max_len));
    for line in playlist.split_inclusive('\n') {
        if out.len() > max_len {
            return None;
        }
        let (body, ending) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        // A byte-order mark (first line) is kept, but is no part of a URI
        // or tag: `lead` is the line after whitespace and any mark.
        let lead = body.trim_start().trim_start_matches('\u{FEFF}');
        let trimmed = lead.trim_end();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if trimmed.starts_with('#') {
            if let Some((_, names)) = URI_TAGS.iter().find(|(t, _)| trimmed.starts_with(t)) {
                out.push_str(&rewrite_uri_attributes(body, names, scope, base, params));
                out.push_str(ending);
            } else {
                out.push_str(line);
            }
        } else if let Some(p) = scope
            .target(base, trimmed)
            .and_then(|target| params(&target))
        {
            // Keep surrounding whitespace (and a mark) as it was.
            let start = body.len() - lead.len();
            out.push_str(&body[..start]);
            out.push_str(&add_params(trimmed, &p));
            out.push_str(&body[start + trimmed.len()..]);
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    (out.len() <= max_len).then_some(out)
}

/// Rewrites the URI-valued attributes `names` of a tag line, scanning the
/// attribute list properly so a `URI=` inside another quoted value is not
/// touched. An attribute whose URI gets no params is kept as it is; a line
/// with an unterminated quoted value is left alone (and no params asked).
fn rewrite_uri_attributes(
    line: &str,
    names: &[&str],
    scope: Scope<'_>,
    base: &str,
    params: &mut dyn FnMut(&str) -> Option<String>,
) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_owned();
    };
    let bytes = line.as_bytes();
    // The byte ranges of the values to rewrite, found before any is.
    let mut values = Vec::new();
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
            if names.contains(&name) {
                values.push(value_start..value_end);
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
    let mut out = String::new();
    // `line[copied..]` is still to be copied to `out`.
    let mut copied = 0;
    for range in values {
        let value = &line[range.clone()];
        if let Some(p) = scope.target(base, value).and_then(|target| params(&target)) {
            out.push_str(&line[copied..range.start]);
            out.push_str(&add_params(value, &p));
            copied = range.end;
        }
    }
    if copied == 0 {
        return line.to_owned();
    }
    out.push_str(&line[copied..]);
    out
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
        rewrite(
            text,
            Scope { hosts: &h },
            "/live/s/index.m3u8",
            &mut |_| Some(P.to_owned()),
            usize::MAX,
        )
        .unwrap_or_default()
    }

    /// URIs some player resolves to another host get no auth: a lone CR
    /// (hls.js ends the line there), backslashes, a leading control
    /// character, an EXT-X-DEFINE variable.
    #[test]
    fn uris_a_player_may_read_as_another_host_get_no_auth() {
        for src in [
            "#EXTM3U\n#EXTINF:2,\nseg0.ts\r//evil.example/x.ts\n",
            "#EXTM3U\n/\\evil.example/a.ts\n",
            "#EXTM3U\n\\\\evil.example\\a.ts\n",
            "#EXTM3U\n\u{1}//evil.example/a.ts\n",
            "#EXTM3U\n#EXT-X-DEFINE:NAME=\"cdn\",VALUE=\"//evil.example/live\"\n{$cdn}/x.ts\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"/\\evil.example/init.mp4\"\n",
            "#EXTM3U\n/li\tve/a.ts\n",
        ] {
            assert_eq!(rw(src), src, "{src:?}");
        }
        assert_eq!(rw("#EXTM3U\nseg0.ts\n"), format!("#EXTM3U\nseg0.ts?{P}\n"));
        // Session data and image streams (thumbnails) are children too.
        assert_eq!(
            rw("#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"t\",URI=\"t.json\"\n#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=1,URI=\"img/i.m3u8\"\n"),
            format!("#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"t\",URI=\"t.json?{P}\"\n#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=1,URI=\"img/i.m3u8?{P}\"\n")
        );
        // A byte-order mark before the header, or a URI, stays as it is.
        assert_eq!(
            rw("\u{FEFF}#EXTM3U\nseg0.ts\n"),
            format!("\u{FEFF}#EXTM3U\nseg0.ts?{P}\n")
        );
        assert_eq!(
            rw("#EXTM3U\n\u{FEFF}seg1.ts\n \u{FEFF}a/éé \n"),
            format!("#EXTM3U\n\u{FEFF}seg1.ts?{P}\n \u{FEFF}a/éé?{P} \n")
        );
    }

    #[test]
    fn a_rewrite_past_its_bound_stops_there() {
        let h = hosts();
        let text = format!("#EXTM3U\n{}", "a.ts\n".repeat(10_000));
        let mut calls = 0;
        let out = rewrite(
            &text,
            Scope { hosts: &h },
            "/live/s/index.m3u8",
            &mut |_| {
                calls += 1;
                Some("tok=0123456789".to_owned())
            },
            1_000,
        );
        assert!(out.is_none());
        assert!(calls < 100, "{calls} tokens made past the bound");
        let within = rewrite(
            "#EXTM3U\na.ts\n",
            Scope { hosts: &h },
            "/live/s/index.m3u8",
            &mut |_| Some("t=1".to_owned()),
            "#EXTM3U\na.ts?t=1\n".len(),
        );
        assert_eq!(within.as_deref(), Some("#EXTM3U\na.ts?t=1\n"));
    }

    #[test]
    fn children_resolve_to_the_path_the_player_requests() {
        let h = hosts();
        let scope = Scope { hosts: &h };
        let t = |uri| scope.target_path("/live/master/index.m3u8", uri);
        assert_eq!(t("seg0.ts").as_deref(), Some("/live/master/seg0.ts"));
        assert_eq!(
            t("v0/index.m3u8?x=1#f").as_deref(),
            Some("/live/master/v0/index.m3u8")
        );
        assert_eq!(t("../a/index.m3u8").as_deref(), Some("/live/a/index.m3u8"));
        assert_eq!(t("./b/../c.ts").as_deref(), Some("/live/master/c.ts"));
        assert_eq!(t("../../../../x.ts").as_deref(), Some("/x.ts"));
        assert_eq!(t("/abs/seg.ts").as_deref(), Some("/abs/seg.ts"));
        assert_eq!(t("?only=query").as_deref(), Some("/live/master/index.m3u8"));
        assert_eq!(
            t("HTTPS://Play.Example.com:443/k/key?id=1").as_deref(),
            Some("/k/key")
        );
        assert_eq!(t("//play.example.com").as_deref(), Some("/"));
        assert_eq!(t("https://cdn.other.com/a.ts"), None);
        assert_eq!(t("skd://key-id"), None);
        assert_eq!(t("data:text/plain;base64,AAAA"), None);
        // Encoded the way a browser sends it.
        assert_eq!(t("seg 1.ts").as_deref(), Some("/live/master/seg%201.ts"));
        assert_eq!(t("é.ts").as_deref(), Some("/live/master/%C3%A9.ts"));
        assert_eq!(t("a%20b.ts").as_deref(), Some("/live/master/a%20b.ts"));
        assert_eq!(t("https://evil\\@play.example.com/x.ts"), None);
        assert_eq!(
            scope
                .target("/live/master/index.m3u8", "k?id=a b")
                .as_deref(),
            Some("/live/master/k?id=a%20b")
        );
    }

    #[test]
    fn each_child_gets_the_params_for_its_own_path() {
        let h = hosts();
        let src = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\nseg0.ts\n../v1/index.m3u8\nhttps://cdn.other.com/x.ts\n";
        let mut seen = Vec::new();
        let out = rewrite(
            src,
            Scope { hosts: &h },
            "/live/v0/index.m3u8",
            &mut |p| {
                seen.push(p.to_owned());
                Some(format!("for={}", p.len()))
            },
            usize::MAX,
        )
        .unwrap_or_default();
        assert_eq!(
            seen,
            [
                "/live/v0/init.mp4",
                "/live/v0/seg0.ts",
                "/live/v1/index.m3u8"
            ]
        );
        assert!(out.contains("URI=\"init.mp4?for=17\""), "{out}");
        assert!(out.contains("\nseg0.ts?for=16\n"), "{out}");
        assert!(out.contains("\n../v1/index.m3u8?for=19\n"), "{out}");
        assert!(out.contains("\nhttps://cdn.other.com/x.ts\n"), "{out}");
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

    /// Content steering's server and interstitials' assets (RFC 8216bis)
    /// are fetched by the player too; other attributes, and a date range's
    /// other client attributes, are not URIs and stay as they are.
    #[test]
    fn steering_server_and_interstitial_assets_get_auth() {
        let src = concat!(
            "#EXTM3U\n",
            "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer/manifest.json\",PATHWAY-ID=\"CDN-A\"\n",
            "#EXT-X-DATERANGE:ID=\"ad1\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2026-12-03T00:00:00Z\",X-ASSET-URI=\"ads/ad1.m3u8\",X-ASSET-LIST=\"https://cdn.other.com/list.json\",X-RESUME-OFFSET=0\n",
            "#EXT-X-DATERANGE:ID=\"ad2\",X-COM-EXAMPLE-URI=\"x.json\",X-ASSET-LIST=\"ads/list.json\"\n",
            "#EXT-X-DATERANGE:ID=\"ad3\",X-ASSET-URI=\"a.m3u8\",X-ASSET-LIST=\"b.json\"\n",
        );
        let want = concat!(
            "#EXTM3U\n",
            "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer/manifest.json?tok=1\",PATHWAY-ID=\"CDN-A\"\n",
            "#EXT-X-DATERANGE:ID=\"ad1\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2026-12-03T00:00:00Z\",X-ASSET-URI=\"ads/ad1.m3u8?tok=1\",X-ASSET-LIST=\"https://cdn.other.com/list.json\",X-RESUME-OFFSET=0\n",
            "#EXT-X-DATERANGE:ID=\"ad2\",X-COM-EXAMPLE-URI=\"x.json\",X-ASSET-LIST=\"ads/list.json?tok=1\"\n",
            "#EXT-X-DATERANGE:ID=\"ad3\",X-ASSET-URI=\"a.m3u8?tok=1\",X-ASSET-LIST=\"b.json?tok=1\"\n",
        );
        assert_eq!(rw(src), want);
        // An unterminated value leaves the whole line as it was.
        let bad = "#EXT-X-DATERANGE:ID=\"a\",X-ASSET-URI=\"a.m3u8\",X-B=\"open\n";
        assert_eq!(rw(bad), bad);
        // Each attribute asks for its own resolved path.
        let h = hosts();
        let mut asked = Vec::new();
        rewrite(
            src,
            Scope { hosts: &h },
            "/live/s/index.m3u8",
            &mut |t| {
                asked.push(t.to_owned());
                None
            },
            usize::MAX,
        );
        assert_eq!(
            asked,
            [
                "/steer/manifest.json",
                "/live/s/ads/ad1.m3u8",
                "/live/s/ads/list.json",
                "/live/s/a.m3u8",
                "/live/s/b.json"
            ]
        );
    }

    #[test]
    fn other_hosts_and_non_http_uris_are_left_alone_unless_listed() {
        let src = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"data:text/plain;base64,AAAA\"\nhttps://cdn.other.com/a.ts\n";
        assert_eq!(rw(src), src);
        let h = vec!["play.example.com".to_owned(), "cdn.other.com".to_owned()];
        let out = rewrite(
            src,
            Scope { hosts: &h },
            "/live/s/index.m3u8",
            &mut |_| Some(P.to_owned()),
            usize::MAX,
        )
        .unwrap_or_default();
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
