//! The built-in demo behind `streamguard run` without `--config`: a small
//! origin on loopback serving an HLS playlist with segments and an endless
//! HTTP-FLV stream, and a config that puts a Tencent-signed site in front of it.
//!
//! The FLV stream is real FLV: an audio-only stream of 16-bit PCM tags
//! carrying a 440 Hz tone, paced in real time, so `ffplay` plays it. The HLS
//! playlist serves three real 2-second MPEG-TS segments shipped in `demo/`
//! (test pattern + tone); through the proxy its segment URIs get session
//! tokens, so `ffplay` plays the signed playlist URL too.

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

/// The demo's MPEG-TS segments (see `demo/README.md`).
const SEGMENTS: [&[u8]; 3] = [
    include_bytes!("../demo/demo-0.ts"),
    include_bytes!("../demo/demo-1.ts"),
    include_bytes!("../demo/demo-2.ts"),
];
/// Number of segments in the demo playlist.
pub const DEMO_SEGMENTS: usize = SEGMENTS.len();
/// Audio sample rate of the demo FLV stream.
const SAMPLE_RATE: u32 = 44_100;
/// Milliseconds of audio per FLV tag.
const TAG_MS: u32 = 100;

/// Starts the demo origin on `127.0.0.1:0` and returns its address. It runs
/// until the process exits.
pub async fn start_origin() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service_fn(origin));
                if let Err(error) = conn.await {
                    debug!(%error, "demo origin connection ended");
                }
            });
        }
    });
    Ok(addr)
}

/// The demo config as TOML: one site for `localhost`/`127.0.0.1` in front of
/// the demo origin, with the given Tencent key.
pub fn config_toml(origin: SocketAddr, listen: &str, admin_listen: &str, key: &str) -> String {
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
"#
    )
}

/// A random 32-hex-digit key for the demo site.
pub fn random_key() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)?;
    Ok(hex::encode(b))
}

async fn origin(req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let path = req.uri().path();
    let (status, ctype, body) = if path == "/live/demo.m3u8" {
        (
            StatusCode::OK,
            "application/vnd.apple.mpegurl",
            full(playlist()),
        )
    } else if let Some(n) = path
        .strip_prefix("/live/demo-")
        .and_then(|r| r.strip_suffix(".ts"))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < DEMO_SEGMENTS)
    {
        (
            StatusCode::OK,
            "video/mp2t",
            full(Bytes::from_static(SEGMENTS[n])),
        )
    } else if path == "/live/demo.flv" {
        (StatusCode::OK, "video/x-flv", endless_flv())
    } else {
        (StatusCode::NOT_FOUND, "text/plain", full("not found\n"))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(resp)
}

fn playlist() -> String {
    let mut p = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for n in 0..DEMO_SEGMENTS {
        p.push_str(&format!("#EXTINF:2.000,\ndemo-{n}.ts\n"));
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
        for s in SEGMENTS {
            assert_eq!(s.len() % 188, 0);
            assert!(s.chunks(188).all(|p| p[0] == 0x47));
        }
    }
}
