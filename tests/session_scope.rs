//! HLS session tokens open exactly what the playlist that issued them
//! referenced: the attack where a Tencent URL signed for
//! `/live/a/index.m3u8` (Tencent signs only the stream name) is replayed on
//! `/index.m3u8`, whose children then opened every file of the site, against
//! the real binary and a real origin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::Full;

/// An origin with a playlist at the site's root, a master with `../`
/// variants, and a secret next to them.
async fn origin() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_fake(
        listener,
        |req: http::Request<hyper::body::Incoming>| async move {
            let path = req.uri().path().to_owned();
            let playlist = |text: &str| {
                let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
                r.headers_mut().insert(
                    "content-type",
                    "application/vnd.apple.mpegurl".parse().unwrap(),
                );
                r
            };
            match path.as_str() {
            "/index.m3u8" => playlist("#EXTM3U\n#EXTINF:2,\nlive/a/seg0.ts\n"),
            "/live/q/index.m3u8" => playlist(
                "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"keys/k?id=1\"\n#EXTINF:2,\nseg0.ts\n",
            ),
            "/live/steered/index.m3u8" => playlist(concat!(
                "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer/m.json\",PATHWAY-ID=\"A\"\n",
                "#EXT-X-DATERANGE:ID=\"ad\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2026-12-03T00:00:00Z\",X-ASSET-LIST=\"ads/list.json\"\n",
                "#EXTINF:2,\nseg0.ts\n"
            )),
            "/live/master/index.m3u8" => playlist(
                "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n../a/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\n../b/index.m3u8\n",
            ),
            "/live/a/index.m3u8" => playlist(concat!(
                "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n",
                "#EXT-X-PART:DURATION=0.5,URI=\"part0.m4s\"\n",
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.m4s\"\n",
                "#EXT-X-RENDITION-REPORT:URI=\"../b/index.m3u8\",LAST-MSN=1\n",
                "#EXTINF:2,\nseg0.ts\n"
            )),
            _ => Response::new(Full::new(Bytes::from(format!("file {path}")))),
        }
        },
    );
    addr
}

fn config(origin: std::net::SocketAddr, child_auth: &str) -> String {
    site_config(
        &format!("http://{origin}"),
        &format!("[site.hls]\nchild_auth = \"{child_auth}\""),
        "",
    )
}

/// The rewritten playlist's lines that carry a session token.
async fn children(proxy: &Proxy, pq: &str) -> Vec<String> {
    let (status, h, body) = get(proxy.http_addr(), "play.example.com", pq).await;
    assert_eq!(status, StatusCode::OK, "{pq}: {h:?}");
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .flat_map(|l| {
            // A URI line, or the quoted attribute value holding the token.
            let uri = if l.starts_with('#') {
                l.split('"').find(|v| v.contains("sg_session="))?
            } else {
                l
            };
            uri.contains("sg_session=").then(|| uri.to_owned())
        })
        .collect()
}

async fn status(proxy: &Proxy, pq: &str) -> (StatusCode, Option<String>) {
    let (s, h, _) = get(proxy.http_addr(), "play.example.com", pq).await;
    (
        s,
        header_map_get(&h, "x-streamguard-deny").map(str::to_owned),
    )
}

fn token(child: &str) -> &str {
    child.split("sg_session=").nth(1).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_root_playlist_token_opens_only_what_that_playlist_references() {
    let origin = origin().await;
    for child_auth in ["session", "session_directory"] {
        let proxy = Proxy::start(&config(origin, child_auth));
        // Signed for /live/a/index.m3u8; Tencent covers only the stream name,
        // so the same params also open /index.m3u8 (as at Tencent's edge).
        let q = tencent_query(KEY, "/live/a/index.m3u8", now() + 600);
        let kids = children(&proxy, &format!("/index.m3u8?{q}")).await;
        assert_eq!(kids.len(), 1, "{kids:?}");
        let t = token(&kids[0]);
        assert_eq!(
            status(&proxy, &format!("/live/a/seg0.ts?sg_session={t}")).await,
            (StatusCode::OK, None),
            "{child_auth}"
        );
        for elsewhere in [
            "/secret/aes.key",
            "/live/a/seg1.ts",
            "/live/b/index.m3u8",
            "/index.m3u8",
            "/keys/k1",
        ] {
            assert_eq!(
                status(&proxy, &format!("{elsewhere}?sg_session={t}")).await,
                (StatusCode::FORBIDDEN, Some("bad_signature".to_owned())),
                "{child_auth}: {elsewhere}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_dot_variants_ll_hls_parts_and_rendition_reports_keep_playing() {
    let origin = origin().await;
    let proxy = Proxy::start(&config(origin, "session"));
    let q = tencent_query(KEY, "/live/master/index.m3u8", now() + 600);
    let variants = children(&proxy, &format!("/live/master/index.m3u8?{q}")).await;
    assert_eq!(variants.len(), 2, "{variants:?}");
    assert!(variants[0].starts_with("../a/index.m3u8?sg_session="));
    // The player resolves ../a/index.m3u8 against the master's URL.
    let variant = format!("/live/a/index.m3u8?sg_session={}", token(&variants[0]));
    let kids = children(&proxy, &variant).await;
    let want = [
        "init.mp4",
        "part0.m4s",
        "part1.m4s",
        "../b/index.m3u8",
        "seg0.ts",
    ];
    assert_eq!(kids.len(), want.len(), "{kids:?}");
    for (kid, name) in kids.iter().zip(want) {
        assert!(kid.starts_with(&format!("{name}?sg_session=")), "{kid}");
        let path = hls_resolve("/live/a/index.m3u8", name);
        assert_eq!(
            status(&proxy, &format!("{path}?sg_session={}", token(kid))).await,
            (StatusCode::OK, None),
            "{path}"
        );
    }
    // A variant's token opens the variant, not its sibling.
    assert_eq!(
        status(
            &proxy,
            &format!("/live/b/index.m3u8?sg_session={}", token(&variants[0]))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Byte ranges of an allowed child pass through.
    let seg = kids.last().unwrap();
    let resp = send_with(
        proxy.http_addr(),
        "play.example.com",
        &format!("/live/a/seg0.ts?sg_session={}", token(seg)),
        http::Method::GET,
        &[("range", "bytes=0-3")],
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// `name` as a player resolves it against `base` (only `../` and plain names).
fn hls_resolve(base: &str, name: &str) -> String {
    let mut dir: Vec<&str> = base.split('/').collect();
    dir.pop();
    let mut rest = name;
    while let Some(r) = rest.strip_prefix("../") {
        dir.pop();
        rest = r;
    }
    format!("{}/{rest}", dir.join("/"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_token_opens_its_query_and_no_other() {
    let origin = origin().await;
    let proxy = Proxy::start(&config(origin, "session"));
    let q = tencent_query(KEY, "/live/q/index.m3u8", now() + 600);
    let kids = children(&proxy, &format!("/live/q/index.m3u8?{q}")).await;
    let key = kids.iter().find(|k| k.starts_with("keys/k?id=1&")).unwrap();
    let t = token(key);
    assert_eq!(
        status(&proxy, &format!("/live/q/keys/k?id=1&sg_session={t}")).await,
        (StatusCode::OK, None)
    );
    for other in ["id=2", "id=1&more=1"] {
        assert_eq!(
            status(&proxy, &format!("/live/q/keys/k?{other}&sg_session={t}")).await,
            (StatusCode::FORBIDDEN, Some("bad_signature".to_owned())),
            "{other}"
        );
    }
}

/// A content steering manifest and an interstitial's asset list are
/// fetched with their own tokens, which open those files and no sibling.
#[tokio::test(flavor = "multi_thread")]
async fn steering_manifests_and_interstitial_asset_lists_get_their_own_tokens() {
    let origin = origin().await;
    let proxy = Proxy::start(&config(origin, "session"));
    let q = tencent_query(KEY, "/live/steered/index.m3u8", now() + 600);
    let kids = children(&proxy, &format!("/live/steered/index.m3u8?{q}")).await;
    assert_eq!(kids.len(), 3, "{kids:?}");
    for (kid, path, sibling) in [
        (&kids[0], "/steer/m.json", "/steer/other.json"),
        (
            &kids[1],
            "/live/steered/ads/list.json",
            "/live/steered/ads/x.json",
        ),
    ] {
        assert!(
            path.ends_with(kid.split('?').next().unwrap()),
            "{kid} for {path}"
        );
        let t = token(kid);
        assert_eq!(
            status(&proxy, &format!("{path}?sg_session={t}")).await,
            (StatusCode::OK, None),
            "{path}"
        );
        // Players add delivery directives of their own (content steering:
        // pathway and throughput; blocking reloads: _HLS_msn, _HLS_part).
        for directives in [
            "&_HLS_pathway=A&_HLS_throughput=5000000",
            "&_HLS_msn=12&_HLS_part=2",
        ] {
            assert_eq!(
                status(&proxy, &format!("{path}?sg_session={t}{directives}")).await,
                (StatusCode::OK, None),
                "{path} {directives}"
            );
        }
        assert_eq!(
            status(&proxy, &format!("{path}?sg_session={t}&other=1")).await,
            (StatusCode::FORBIDDEN, Some("bad_signature".to_owned())),
        );
        assert_eq!(
            status(&proxy, &format!("{sibling}?sg_session={t}")).await,
            (StatusCode::FORBIDDEN, Some("bad_signature".to_owned())),
            "{sibling}"
        );
    }
}
