//! The built-in demo behind `streamguard run` without `--config`: a small
//! origin on loopback serving an HLS stream in two renditions and an endless
//! HTTP-FLV stream, a config that puts a Tencent-signed site in front of it,
//! and a player page ([`page`]) served from another origin, so a browser
//! plays the signed URLs through CORS.
//!
//! The FLV stream is real FLV: a 4-second H.264 + AAC clip shipped in
//! `demo/` (test pattern + 440 Hz tone), looped with growing timestamps and
//! paced in real time, so `ffplay` and mpegts.js play it. The HLS
//! master playlist lists two variants (`low` 160x90 and `high` 320x180), each
//! six real 2-second MPEG-TS segments shipped in `demo/` (test pattern +
//! tone); through the proxy its child URIs get session tokens, so `ffplay`
//! and the player page play the signed master URL.

pub mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::debug;

use crate::proxy::body::{full, ChannelBody, ProxyBody};
use http_body_util::BodyExt;

/// Segments per demo HLS variant.
const SEGMENTS_PER_VARIANT: usize = 6;
/// Seconds per demo HLS segment.
const SEGMENT_SECS: usize = 2;

/// One HLS rendition of the demo (see `demo/README.md`).
struct Variant {
    /// Names its playlist (`demo-<name>.m3u8`) and segments (`demo-<name>-N.ts`).
    name: &'static str,
    /// `RESOLUTION` in the master playlist.
    resolution: &'static str,
    /// The MPEG-TS segments.
    segments: [&'static [u8]; SEGMENTS_PER_VARIANT],
}

/// The demo's HLS renditions, lowest first (the master playlist's order).
const VARIANTS: [Variant; 2] = [
    Variant {
        name: "low",
        resolution: "160x90",
        segments: [
            include_bytes!("../demo/low-0.ts"),
            include_bytes!("../demo/low-1.ts"),
            include_bytes!("../demo/low-2.ts"),
            include_bytes!("../demo/low-3.ts"),
            include_bytes!("../demo/low-4.ts"),
            include_bytes!("../demo/low-5.ts"),
        ],
    },
    Variant {
        name: "high",
        resolution: "320x180",
        segments: [
            include_bytes!("../demo/high-0.ts"),
            include_bytes!("../demo/high-1.ts"),
            include_bytes!("../demo/high-2.ts"),
            include_bytes!("../demo/high-3.ts"),
            include_bytes!("../demo/high-4.ts"),
            include_bytes!("../demo/high-5.ts"),
        ],
    },
];
/// Number of variants in the demo master playlist.
pub const DEMO_VARIANTS: usize = VARIANTS.len();
/// The demo FLV clip (H.264 + AAC, see `demo/README.md`), looped forever.
const FLV_CLIP: &[u8] = include_bytes!("../demo/clip.flv");
/// How far ahead of real time the FLV stream runs, so a player starts at once.
const FLV_LEAD: Duration = Duration::from_secs(1);
/// Milliseconds of one video frame of the clip (10 fps): the gap between
/// the clip's last tag and the first of its next loop.
const FLV_FRAME_MS: u32 = 100;

/// Starts the demo origin on `127.0.0.1:0` and returns its address. It runs
/// until the process exits.
pub async fn start_origin() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, |req| async move { Ok(origin(&req)) }));
    Ok(addr)
}

/// Serves HTTP/1.1 on `listener` with `handle` until the process exits.
async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service_fn(handle));
            if let Err(error) = conn.await {
                debug!(%error, "demo connection ended");
            }
        });
    }
}

/// The demo config as TOML: one site for `localhost`/`127.0.0.1` in front of
/// the demo origin, with the given Tencent key, whose CORS policy lets pages
/// on `page_origins` (the player page) read its responses.
pub fn config_toml(
    origin: SocketAddr,
    listen: &str,
    admin_listen: &str,
    key: &str,
    page_origins: &[String],
) -> String {
    let origins = page_origins
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# streamguard built-in demo
[server]
listen = ["{listen}"]

[admin]
listen = "{admin_listen}"

[[site]]
id = "demo"
domains = ["localhost", "127.0.0.1"]
origin = "http://{origin}"

[site.auth]
scheme = "tencent"
key = "{key}"
auth_delta_secs = 0

[site.cors]
allow_origins = [{origins}]
"#
    )
}

/// A random 32-hex-digit key for the demo site.
pub fn random_key() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)?;
    Ok(hex::encode(b))
}

fn origin(req: &Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path();
    let segment = |rest: &str| {
        let (name, n) = rest.strip_suffix(".ts")?.rsplit_once('-')?;
        let v = VARIANTS.iter().find(|v| v.name == name)?;
        v.segments.get(n.parse::<usize>().ok()?).copied()
    };
    let (status, ctype, body) = if path == "/live/demo.m3u8" {
        (
            StatusCode::OK,
            "application/vnd.apple.mpegurl",
            full(master()),
        )
    } else if let Some(v) = path
        .strip_prefix("/live/demo-")
        .and_then(|r| r.strip_suffix(".m3u8"))
        .and_then(|name| VARIANTS.iter().find(|v| v.name == name))
    {
        (
            StatusCode::OK,
            "application/vnd.apple.mpegurl",
            full(media_playlist(v)),
        )
    } else if let Some(s) = path.strip_prefix("/live/demo-").and_then(segment) {
        (StatusCode::OK, "video/mp2t", full(Bytes::from_static(s)))
    } else if path == "/live/demo.flv" {
        (StatusCode::OK, "video/x-flv", endless_flv())
    } else {
        (StatusCode::NOT_FOUND, "text/plain", full("not found\n"))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// The master playlist: one `EXT-X-STREAM-INF` per variant, its `BANDWIDTH`
/// the peak segment bit rate.
fn master() -> String {
    let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for v in &VARIANTS {
        let peak = v.segments.iter().map(|s| s.len()).max().unwrap_or(0) * 8 / SEGMENT_SECS;
        p.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},RESOLUTION={}\ndemo-{}.m3u8\n",
            v.resolution, v.name
        ));
    }
    p
}

fn media_playlist(v: &Variant) -> String {
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{SEGMENT_SECS}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    for n in 0..v.segments.len() {
        p.push_str(&format!(
            "#EXTINF:{SEGMENT_SECS}.000,\ndemo-{}-{n}.ts\n",
            v.name
        ));
    }
    p.push_str("#EXT-X-ENDLIST\n");
    p
}

/// FLV file header (audio and video) plus PreviousTagSize0.
const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// One FLV tag of the clip.
#[derive(Debug, Clone, Copy)]
struct Tag {
    /// 8 audio, 9 video.
    kind: u8,
    /// Milliseconds.
    ts: u32,
    data: &'static [u8],
}

impl Tag {
    /// True for the AVC and AAC sequence headers a player needs once, first.
    fn is_sequence_header(&self) -> bool {
        let (Some(&b0), Some(&b1)) = (self.data.first(), self.data.get(1)) else {
            return false;
        };
        match self.kind {
            9 => b0 & 0x0F == 7 && b1 == 0,
            8 => b0 >> 4 == 10 && b1 == 0,
            _ => false,
        }
    }

    /// The tag as sent at `ts`, with its PreviousTagSize.
    fn encode(&self, ts: u32) -> Bytes {
        let mut b = BytesMut::with_capacity(11 + self.data.len() + 4);
        b.put_u8(self.kind);
        b.put_uint(self.data.len() as u64, 3);
        b.put_uint(u64::from(ts & 0xFF_FFFF), 3);
        b.put_u8((ts >> 24) as u8);
        b.put_uint(0, 3); // stream id
        b.put_slice(self.data);
        b.put_u32(11 + self.data.len() as u32);
        b.freeze()
    }
}

/// The audio and video tags of an FLV file (script data dropped), up to the
/// first truncated tag.
fn flv_tags(file: &'static [u8]) -> Vec<Tag> {
    let mut tags = Vec::new();
    let Some(&[a, b, c, d]) = file.get(5..9) else {
        return tags;
    };
    let mut pos = u32::from_be_bytes([a, b, c, d]) as usize + 4;
    while let Some(&[kind, s0, s1, s2, t0, t1, t2, t3, ..]) = file.get(pos..pos + 11) {
        let size = u32::from_be_bytes([0, s0, s1, s2]) as usize;
        let Some(data) = file.get(pos + 11..pos + 11 + size) else {
            break;
        };
        if kind == 8 || kind == 9 {
            let ts = u32::from_be_bytes([t3, t0, t1, t2]);
            tags.push(Tag { kind, ts, data });
        }
        pos += 11 + size + 4;
    }
    tags
}

/// An FLV stream that never ends: the clip's sequence headers, then its
/// media tags looped with ever-growing timestamps, paced in real time
/// ([`FLV_LEAD`] ahead).
fn endless_flv() -> ProxyBody {
    let (tx, body) = ChannelBody::new(4);
    tokio::spawn(async move {
        let tags = flv_tags(FLV_CLIP);
        let (headers, media): (Vec<Tag>, Vec<Tag>) =
            tags.into_iter().partition(Tag::is_sequence_header);
        let clip_ms = media.iter().map(|t| t.ts).max().unwrap_or(0) + FLV_FRAME_MS;
        if tx.send(Bytes::from_static(FLV_HEADER)).await.is_err() {
            return;
        }
        for h in &headers {
            if tx.send(h.encode(0)).await.is_err() {
                return;
            }
        }
        let start = tokio::time::Instant::now();
        for n in 0u64.. {
            for t in &media {
                let ts = n * u64::from(clip_ms) + u64::from(t.ts);
                let due = start + Duration::from_millis(ts);
                tokio::time::sleep_until(due.checked_sub(FLV_LEAD).unwrap_or(start)).await;
                // FLV timestamps wrap after 2^32 ms (49 days), as players expect.
                if tx.send(t.encode(ts as u32)).await.is_err() {
                    return; // client gone
                }
            }
        }
    });
    body.boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flv_clip_has_sequence_headers_and_rewritten_tags_keep_their_sizes() {
        let tags = flv_tags(FLV_CLIP);
        assert!(tags.iter().filter(|t| t.is_sequence_header()).count() == 2);
        assert!(tags.iter().any(|t| t.kind == 8) && tags.iter().any(|t| t.kind == 9));
        let tag = tags[tags.len() - 1].encode(0x0123_4567);
        let data_len = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        assert_eq!(tag.len(), 11 + data_len + 4);
        assert_eq!(
            u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]),
            0x0123_4567
        );
        let prev = u32::from_be_bytes([
            tag[tag.len() - 4],
            tag[tag.len() - 3],
            tag[tag.len() - 2],
            tag[tag.len() - 1],
        ]);
        assert_eq!(prev as usize, 11 + data_len);
        assert_eq!(&FLV_HEADER[..3], b"FLV");
    }

    #[test]
    fn segments_are_whole_ts_packets() {
        for s in VARIANTS.iter().flat_map(|v| v.segments) {
            assert_eq!(s.len() % 188, 0);
            assert!(s.chunks(188).all(|p| p[0] == 0x47));
        }
    }

    #[test]
    fn master_lists_every_variant_and_each_lists_its_segments() {
        let m = master();
        assert_eq!(m.matches("#EXT-X-STREAM-INF:").count(), DEMO_VARIANTS);
        for v in &VARIANTS {
            assert!(m.contains(&format!("\ndemo-{}.m3u8\n", v.name)), "{m}");
            let p = media_playlist(v);
            assert_eq!(p.matches(".ts\n").count(), SEGMENTS_PER_VARIANT);
            assert!(p.ends_with("#EXT-X-ENDLIST\n"));
        }
    }
}
