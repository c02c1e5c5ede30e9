//! The built-in demo behind `streamguard run` without `--config`: a small
//! origin on loopback serving an HLS stream in two renditions and an endless
//! HTTP-FLV stream, a config that puts a Tencent-signed site in front of it,
//! and a player page ([`page`]) served from another origin, so a browser
//! plays the signed URLs through CORS.
//!
//! The FLV stream is real FLV: an audio-only stream of 16-bit PCM tags
//! carrying a 440 Hz tone, paced in real time, so `ffplay` plays it. The HLS
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
/// Audio sample rate of the demo FLV stream.
const SAMPLE_RATE: u32 = 44_100;
/// Milliseconds of audio per FLV tag.
const TAG_MS: u32 = 100;

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
        (StatusCode::OK, "application/vnd.apple.mpegurl", full(master()))
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
        p.push_str(&format!("#EXTINF:{SEGMENT_SECS}.000,\ndemo-{}-{n}.ts\n", v.name));
    }
    p.push_str("#EXT-X-ENDLIST\n");
    p
}

/// FLV file header (audio only) plus PreviousTagSize0.
pub fn flv_header() -> Bytes {
    Bytes::from_static(b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00")
}

/// One FLV audio tag of `TAG_MS` of 16-bit mono 44.1 kHz PCM (a 440 Hz tone),
/// starting at sample `first_sample`, followed by its PreviousTagSize.
pub fn flv_audio_tag(first_sample: u64) -> Bytes {
    let samples = SAMPLE_RATE * TAG_MS / 1000;
    let data_len = 1 + samples as usize * 2;
    let ts_ms = first_sample * 1000 / u64::from(SAMPLE_RATE);
    let mut b = BytesMut::with_capacity(11 + data_len + 4);
    b.put_u8(8); // audio
    b.put_uint(data_len as u64, 3);
    b.put_uint(ts_ms & 0xFF_FFFF, 3);
    b.put_u8(((ts_ms >> 24) & 0xFF) as u8);
    b.put_uint(0, 3); // stream id
                      // SoundFormat 3 (linear PCM, little endian), 44 kHz, 16-bit, mono.
    b.put_u8(0x3E);
    for i in 0..u64::from(samples) {
        let t = (first_sample + i) as f64 / f64::from(SAMPLE_RATE);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        b.put_i16_le(v as i16);
    }
    b.put_u32(11 + data_len as u32);
    b.freeze()
}

/// An FLV stream that never ends, paced in real time.
fn endless_flv() -> ProxyBody {
    let (tx, body) = ChannelBody::new(4);
    tokio::spawn(async move {
        if tx.send(flv_header()).await.is_err() {
            return;
        }
        let per_tag = u64::from(SAMPLE_RATE * TAG_MS / 1000);
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(TAG_MS)));
        let mut sample = 0u64;
        loop {
            tick.tick().await;
            if tx.send(flv_audio_tag(sample)).await.is_err() {
                return; // client gone
            }
            sample += per_tag;
        }
    });
    body.boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flv_tag_sizes_are_consistent() {
        let tag = flv_audio_tag(0);
        let data_len = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        assert_eq!(tag.len(), 11 + data_len + 4);
        let prev = u32::from_be_bytes([
            tag[tag.len() - 4],
            tag[tag.len() - 3],
            tag[tag.len() - 2],
            tag[tag.len() - 1],
        ]);
        assert_eq!(prev as usize, 11 + data_len);
        assert_eq!(&flv_header()[..3], b"FLV");
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
