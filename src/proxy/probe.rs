//! Asking a site's origin about one media path, for the operator API's play
//! credentials: does it exist, how big is it, how long does it play.
//!
//! A playlist is fetched (bounded by the site's `max_playlist_bytes`) and a
//! VOD playlist's `#EXTINF` durations are summed; anything else is asked
//! with `HEAD`, so an endless live stream is never read.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Empty;

use super::upstream::{build_client_for, UpstreamError, ORIGIN_MAX_BUF_BYTES};
use crate::config::{OriginHost, SiteConfig};

/// What the origin told about a media path.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaMeta {
    /// The origin's status.
    pub status: StatusCode,
    /// Bytes, when the origin said (`Content-Length`, not for playlists).
    pub size: Option<u64>,
    /// Seconds, for a VOD playlist (sum of `#EXTINF`).
    pub duration_secs: Option<f64>,
    /// The origin's `Content-Type`.
    pub content_type: Option<String>,
}

/// Asks the origin of `site` about `path` (an origin path, already
/// validated). `host` is the play domain a client would send.
pub async fn probe(site: &SiteConfig, host: &str, path: &str) -> Result<MediaMeta, UpstreamError> {
    let client = build_client_for::<Empty<Bytes>>(site, ORIGIN_MAX_BUF_BYTES)
        .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
    let playlist = super::hls::is_playlist(None, path);
    let origin = &site.origin;
    let uri = Uri::try_from(format!("{}{}", origin.base_path, path))
        .map_err(|e| UpstreamError::Protocol(Box::new(e)))?;
    let host_header = match site.origin_host_header {
        OriginHost::Origin => HeaderValue::from_str(origin.authority.as_str()),
        OriginHost::Client => HeaderValue::from_str(host),
    }
    .map_err(|e| UpstreamError::Protocol(Box::new(e)))?;
    let req = Request::builder()
        .method(if playlist { Method::GET } else { Method::HEAD })
        .uri(uri)
        .header(HOST, host_header)
        .header("accept-encoding", "identity")
        .body(Empty::new())
        .map_err(|e| UpstreamError::Protocol(Box::new(e)))?;
    let timeout = site.response_header_timeout;
    let resp = match tokio::time::timeout(timeout, client.send(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(UpstreamError::Timeout("response head")),
    };
    let status = resp.status();
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE);
    let length = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if !playlist || !status.is_success() {
        return Ok(MediaMeta {
            status,
            size: length,
            duration_secs: None,
            content_type,
        });
    }
    let read = super::body::read_bounded(resp.into_body(), site.hls.max_playlist_bytes);
    let bytes = match tokio::time::timeout(timeout.max(Duration::from_secs(1)), read).await {
        Ok(Ok(b)) => b,
        Ok(Err(super::body::ReadError::TooLarge)) => {
            return Err(UpstreamError::Protocol(
                "playlist larger than max_playlist_bytes".into(),
            ))
        }
        Ok(Err(super::body::ReadError::Body(e))) => return Err(UpstreamError::Protocol(e)),
        Err(_) => return Err(UpstreamError::Timeout("playlist body")),
    };
    Ok(MediaMeta {
        status,
        size: Some(bytes.len() as u64),
        duration_secs: vod_duration(&String::from_utf8_lossy(&bytes)),
        content_type,
    })
}

/// The duration of a VOD media playlist (one with `#EXT-X-ENDLIST`): the
/// sum of its `#EXTINF` durations. `None` for live and master playlists.
pub fn vod_duration(playlist: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut ended = false;
    for line in playlist.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let secs = rest.split(',').next().unwrap_or("").trim();
            total += secs
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite() && *d >= 0.0)?;
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        }
    }
    ended.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::vod_duration;

    #[test]
    fn vod_playlists_have_a_duration_live_ones_do_not() {
        let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\na.ts\n#EXTINF:1.5,\nb.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(vod_duration(vod), Some(3.5));
        assert_eq!(vod_duration(&vod.replace("#EXT-X-ENDLIST\n", "")), None);
        assert_eq!(
            vod_duration("#EXTM3U\n#EXTINF:x,\na.ts\n#EXT-X-ENDLIST"),
            None
        );
    }
}
