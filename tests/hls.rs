//! HLS and HTTP-FLV with real media and real players: ffmpeg makes the media,
//! nginx serves it, ffmpeg/ffprobe play it through the proxy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use http::StatusCode;

fn tools_present() -> bool {
    let ok = nginx_bin().is_some() && have("ffmpeg") && have("ffprobe");
    if !ok && std::env::var_os("CI").is_some() {
        panic!("nginx, ffmpeg and ffprobe must be installed in CI (.ci/run installs them)");
    }
    if !ok {
        eprintln!("skipping: nginx/ffmpeg/ffprobe not installed (.ci/run installs them)");
    }
    ok
}

fn ffmpeg(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A master playlist with two variants (video + audio each), 1 s segments.
fn make_hls(live: &std::path::Path) {
    std::fs::create_dir_all(live).unwrap();
    ffmpeg(
        live,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=22050",
            "-t",
            "4",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-c:a",
            "aac",
            "-b:v:0",
            "200k",
            "-b:v:1",
            "80k",
            "-s:v:1",
            "80x60",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            "v:0,a:0 v:1,a:1",
            "-hls_segment_filename",
            "v%v/seg%d.ts",
            "v%v/index.m3u8",
        ],
    );
}

fn config(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[[site]]
id = "hls"
domains = ["127.0.0.1"]
origin = "http://{origin}"
[site.auth]
scheme = "tencent"
key = "{KEY}"
"#
    )
}

fn play(url: &str) -> std::process::Output {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
            "-i",
            url,
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_plays_a_signed_master_playlist_and_fetches_every_segment() {
    if !tools_present() {
        return;
    }
    let nginx = Nginx::start("");
    let live = nginx.www().join("live");
    make_hls(&live);
    let proxy = Proxy::start(&config(nginx.addr));
    let addr = proxy.http_addr();
    let q = tencent_query(KEY, "/live/master.m3u8", now() + 300);
    let url = format!("http://{addr}/live/master.m3u8?{q}");

    let out = play(&url);
    assert!(
        out.status.success(),
        "ffmpeg could not play through the proxy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every segment on disk was fetched from the origin, without any auth param.
    let on_disk: BTreeSet<String> = ["v0", "v1"]
        .iter()
        .flat_map(|v| {
            std::fs::read_dir(live.join(v))
                .unwrap()
                .filter_map(move |e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.ends_with(".ts").then(|| format!("/live/{v}/{name}"))
                })
        })
        .collect();
    assert!(
        on_disk.len() >= 6,
        "ffmpeg made too few segments: {on_disk:?}"
    );
    let log = nginx.access_log();
    let fetched: BTreeSet<String> = log
        .lines()
        .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 "))
        .filter_map(|l| l.split('"').nth(1)?.split(' ').nth(1).map(str::to_owned))
        .filter(|p| p.ends_with(".ts"))
        .collect();
    assert_eq!(fetched, on_disk, "origin log:\n{log}");
    assert!(
        !log.contains("sg_session") && !log.contains("txSecret"),
        "auth params reached the origin:\n{log}"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"streamguard_playlists_rewritten_total{site="hls"}"#),
        3.0
    );

    // The master as a player sees it: variants carry a session token, the
    // response is private and cacheable no longer than the token lives.
    let (status, headers, body) = get(addr, "127.0.0.1", &format!("/live/master.m3u8?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.lines()
            .filter(|l| l.ends_with(".m3u8") || l.contains(".m3u8?"))
            .all(|l| l.contains("sg_session=")),
        "{text}"
    );
    // nginx sends no max-age: the rewritten playlist must not become cacheable.
    assert_eq!(
        header_map_get(&headers, "cache-control"),
        Some("private, no-cache")
    );
    assert_eq!(
        header_map_get(&headers, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        text.len()
    );
    // A conditional request still gets the rewritten body: the origin's 304
    // (with its validators and caching) is of another body.
    let (_, origin_headers, _) = get(nginx.addr, "127.0.0.1", "/live/master.m3u8").await;
    let etag = header_map_get(&origin_headers, "etag").unwrap().to_owned();
    let resp = send_with(
        addr,
        "127.0.0.1",
        &format!("/live/master.m3u8?{q}"),
        http::Method::GET,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(resp.headers(), "cache-control"),
        Some("private, no-cache")
    );
    // HEAD says what the GET would: private, no validators.
    let resp = send_with(
        addr,
        "127.0.0.1",
        &format!("/live/master.m3u8?{q}"),
        http::Method::HEAD,
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(resp.headers(), "cache-control"),
        Some("private, no-cache")
    );
    assert!(resp.headers().get("etag").is_none());
    assert!(resp.headers().get("last-modified").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_expired_and_bare_segment_requests_are_denied() {
    if !tools_present() {
        return;
    }
    let nginx = Nginx::start("");
    make_hls(&nginx.www().join("live"));
    let proxy = Proxy::start(&config(nginx.addr));
    let addr = proxy.http_addr();

    let out = play(&format!("http://{addr}/live/master.m3u8"));
    assert!(!out.status.success(), "played without a token");
    let q = tencent_query(KEY, "/live/master.m3u8", now() - 5);
    let out = play(&format!("http://{addr}/live/master.m3u8?{q}"));
    assert!(!out.status.success(), "played with an expired token");

    // A segment without auth, and with a session token for another directory.
    let (status, headers, _) = get(addr, "127.0.0.1", "/live/v0/seg0.ts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-deny"),
        Some("missing_token")
    );
    let q = tencent_query(KEY, "/live/v0/index.m3u8", now() + 60);
    let (_, _, body) = get(addr, "127.0.0.1", &format!("/live/v0/index.m3u8?{q}")).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    let seg = text.lines().find(|l| l.starts_with("seg")).unwrap();
    let token = seg.split("sg_session=").nth(1).unwrap();
    let (status, _, _) = get(addr, "127.0.0.1", &format!("/live/v0/{seg}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = get(
        addr,
        "127.0.0.1",
        &format!("/live/v1/seg0.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a token for /live/v0/ opened /live/v1/"
    );
    assert_eq!(
        header_map_get(&headers, "x-streamguard-deny"),
        Some("bad_signature")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flv_through_the_proxy_decodes() {
    if !tools_present() {
        return;
    }
    let nginx = Nginx::start("");
    let live = nginx.www().join("live");
    std::fs::create_dir_all(&live).unwrap();
    ffmpeg(
        &live,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "2",
            "-c:v",
            "flv1",
            "-c:a",
            "mp3",
            "-ar",
            "22050",
            "show.flv",
        ],
    );
    let proxy = Proxy::start(&config(nginx.addr));
    let q = tencent_query(KEY, "/live/show.flv", now() + 60);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            &format!("http://{}/live/show.flv?{q}", proxy.http_addr()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(
        codecs.contains("flv1") && codecs.contains("mp3"),
        "{codecs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn range_head_and_conditional_requests_pass_through() {
    if !tools_present() {
        return;
    }
    let nginx = Nginx::start("");
    let live = nginx.www().join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("clip.ts"), vec![0x47u8; 188 * 10]).unwrap();
    let proxy = Proxy::start(&config(nginx.addr));
    let addr = proxy.http_addr();
    let q = tencent_query(KEY, "/live/clip.ts", now() + 60);
    let pq = format!("/live/clip.ts?{q}");

    let resp = send_with(
        addr,
        "127.0.0.1",
        &pq,
        http::Method::GET,
        &[("range", "bytes=0-187")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_map_get(resp.headers(), "content-range"),
        Some("bytes 0-187/1880")
    );
    let etag = header_map_get(resp.headers(), "etag").unwrap().to_owned();

    let resp = send_with(addr, "127.0.0.1", &pq, http::Method::HEAD, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(resp.headers(), "content-length"),
        Some("1880")
    );

    let resp = send_with(
        addr,
        "127.0.0.1",
        &pq,
        http::Method::GET,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
}
