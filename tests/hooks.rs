//! Media-server hooks against the real servers: the distribution's nginx
//! (`auth_request`), nginx-rtmp (`libnginx-mod-rtmp`) with ffmpeg publishing
//! and playing, and SRS's documented `http_hooks` bodies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const PUSH_KEY: &str = "pushkey0123456789abcdef";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// One site with play keys (`KEY`, `BACKUP`) and a push key; no origin is
/// ever contacted.
fn config() -> String {
    site_config(
        "http://127.0.0.1:9",
        &format!("[site.push]\nkeys = [\"{PUSH_KEY}\"]\n"),
        "",
    )
}

/// Skips (or, with `CI` set, fails) when a tool is missing.
fn missing(what: &str, present: bool) -> bool {
    if present {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} must be installed in CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {what} is not installed");
    true
}

async fn post(addr: SocketAddr, path: &str, body: String) -> (StatusCode, String) {
    let req = Request::post(format!("http://{addr}{path}"))
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn srs_body(action: &str, stream: &str, param: &str) -> String {
    // The shape SRS documents in its full.conf (http_hooks).
    serde_json::json!({
        "action": action, "client_id": "9308h583", "ip": "192.168.1.10",
        "vhost": "play.example.com", "app": "live", "stream": stream,
        "param": param, "pageUrl": "http://www.test.com/live.html",
        "server_id": "vid-werty", "stream_url": format!("play.example.com/live/{stream}"),
        "stream_id": "vid-124q9y3"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn srs_hooks_answer_zero_for_signed_play_and_publish_only() {
    let proxy = Proxy::start(&config());
    let exp = now() + 300;
    let play = format!("?{}", tencent_query(KEY, "/live/livestream", exp));
    let push = format!("?{}", tencent_query(PUSH_KEY, "/live/livestream", exp));
    let cases = [
        ("on_play", &play, StatusCode::OK),
        ("on_play", &push, StatusCode::FORBIDDEN),
        ("on_play", &String::new(), StatusCode::FORBIDDEN),
        ("on_publish", &push, StatusCode::OK),
        ("on_publish", &play, StatusCode::FORBIDDEN),
        ("on_publish", &String::new(), StatusCode::FORBIDDEN),
    ];
    for (action, param, want) in cases {
        let (status, body) = post(
            proxy.admin,
            &format!("/hooks/srs/{action}"),
            srs_body(action, "livestream", param),
        )
        .await;
        assert_eq!(status, want, "{action} {param}: {body}");
        assert_eq!(body == "0", want == StatusCode::OK, "{action}: {body}");
    }
    // An expired token and a path the proxy refuses are denied too.
    let expired = format!("?{}", tencent_query(KEY, "/live/s", now() - 10));
    let (status, _) = post(
        proxy.admin,
        "/hooks/srs/on_play",
        srs_body("on_play", "s", &expired),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        proxy.admin,
        "/hooks/srs/on_play",
        srs_body("on_play", "..", &play),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A push token for `livestream` publishes neither `livestream.evil`
    // nor `x/livestream` (a stream-name scheme would judge both as
    // `livestream`).
    for other in ["livestream.evil", "x/livestream"] {
        let (status, _) = post(
            proxy.admin,
            "/hooks/srs/on_publish",
            srs_body("on_publish", other, &push),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{other}");
    }
    // A hook URL pinned to a site (`…/site/{id}`) accepts only that site's
    // hosts: another tenant's vhost and tokens do not pass on this server.
    let (status, body) = post(
        proxy.admin,
        "/hooks/srs/on_play/site/live",
        srs_body("on_play", "livestream", &play),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "0"));
    let (status, _) = post(
        proxy.admin,
        "/hooks/srs/on_play/site/other",
        srs_body("on_play", "livestream", &play),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_hook_decisions_total{hook="srs_on_publish",result="allowed"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_decision_never_outlives_the_token() {
    let proxy = Proxy::start(&config());
    let exp = now() + 1;
    let param = format!("?{}", tencent_query(KEY, "/live/short", exp));
    let body = srs_body("on_play", "short", &param);
    let (status, answer) = post(proxy.admin, "/hooks/srs/on_play", body.clone()).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, "0"));
    // Identical inputs, within the cache's lifetime but past the token's.
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, answer) = post(proxy.admin, "/hooks/srs/on_play", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

// ---------------------------------------------------------------------------
// nginx auth_request.

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_passes_signed_and_refuses_others() {
    if missing("nginx", nginx_bin().is_some()) {
        return;
    }
    let proxy = Proxy::start(&config());
    let nginx = Nginx::start(&format!(
        r#"
    location = /_auth {{
      internal;
      proxy_pass http://{admin}/hooks/auth_request;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Host $host;
    }}
    location /live/ {{
      auth_request /_auth;
    }}"#,
        admin = proxy.admin
    ));
    std::fs::create_dir_all(nginx.www().join("live")).unwrap();
    std::fs::write(nginx.www().join("live/a.ts"), "segment").unwrap();
    let host = "play.example.com";
    let signed = format!(
        "/live/a.ts?{}",
        tencent_query(KEY, "/live/a.ts", now() + 300)
    );
    let (s, _, body) = get(nginx.addr, host, &signed).await;
    assert_eq!((s, &body[..]), (StatusCode::OK, &b"segment"[..]));
    let (s, _, _) = get(nginx.addr, host, "/live/a.ts").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let forged = format!(
        "/live/a.ts?{}",
        tencent_query("not-the-key", "/live/a.ts", now() + 300)
    );
    let (s, _, _) = get(nginx.addr, host, &forged).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let expired = format!(
        "/live/a.ts?{}",
        tencent_query(KEY, "/live/a.ts", now() - 60)
    );
    let (s, _, _) = get(nginx.addr, host, &expired).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A host no site serves is refused, not a 500.
    let (s, _, _) = get(nginx.addr, "other.example.com", &signed).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A raw `#`: nginx serves the path before it, so a token for the
    // stream after it (`cam`) must not open `a.ts`.
    {
        let cam = tencent_query(KEY, "/live/cam", now() + 300);
        let text = raw_exchange(
            nginx.addr,
            &format!(
                "GET /live/a.ts#/cam?{cam} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 403"), "{text}");
        assert!(!text.contains("segment"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// nginx-rtmp with ffmpeg.

/// nginx with the rtmp module, one `live` application whose hooks point at
/// streamguard's admin listener.
struct RtmpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RtmpServer {
    fn start(admin: SocketAddr) -> RtmpServer {
        let bin = nginx_bin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let user = if is_root() { "user root;\n" } else { "" };
        let hook = |name: &str| format!("http://{admin}/hooks/rtmp/{name}");
        let conf = format!(
            r#"load_module {RTMP_MODULE};
{user}worker_processes 1;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    application live {{
      live on;
      on_publish {};
      on_play {};
      on_update {};
      notify_update_timeout 1s;
    }}
  }}
}}
"#,
            hook("on_publish"),
            hook("on_play"),
            hook("on_update"),
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-e"])
            .arg(format!("{d}/error.log"))
            .args(["-g", &format!("daemon off; pid {d}/nginx.pid;")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx-rtmp did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RtmpServer { child, port, dir }
    }

    /// `rtmp://127.0.0.1:port/live/stream?query`, and the tcUrl naming the
    /// site's host (players connect by address here).
    fn url(&self, query: &str) -> (String, String) {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        (
            format!("rtmp://127.0.0.1:{}/live/stream{q}", self.port),
            format!("rtmp://play.example.com:{}/live", self.port),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ffmpeg publishing `secs` of a test pattern, in real time.
fn publish(url: &str, tcurl: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=160x120:rate=10")
        .args(["-t", &secs.to_string(), "-c:v", "flv", "-f", "flv"])
        .args(["-rtmp_tcurl", tcurl, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// ffmpeg reading one second of the stream: true when it could play.
fn plays(url: &str, tcurl: &str) -> bool {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "5000000",
        ])
        .args([
            "-rtmp_tcurl",
            tcurl,
            "-i",
            url,
            "-t",
            "1",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    match wait_exit(&mut child, Duration::from_secs(10)) {
        Some(s) => s.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_rtmp_publish_and_play_need_their_own_keys_and_expiry_cuts_publishers() {
    if missing("nginx", nginx_bin().is_some())
        || missing(
            "the nginx rtmp module (libnginx-mod-rtmp)",
            Path::new(RTMP_MODULE).exists(),
        )
        || missing("ffmpeg", have("ffmpeg"))
    {
        return;
    }
    let proxy = Proxy::start(&config());
    let rtmp = RtmpServer::start(proxy.admin);
    let path = "/live/stream";

    // Publishing with the play key or without a token is refused: ffmpeg
    // fails long before its 5 s of input are sent.
    for query in [tencent_query(KEY, path, now() + 300), String::new()] {
        let (url, tcurl) = rtmp.url(&query);
        let mut ffmpeg = publish(&url, &tcurl, 5);
        let status = wait_exit(&mut ffmpeg, Duration::from_secs(4));
        assert!(
            status.is_some_and(|s| !s.success()),
            "publish with {query:?} was not refused: {}",
            rtmp.log()
        );
    }

    // The push key publishes; players need the play key.
    let (url, tcurl) = rtmp.url(&tencent_query(PUSH_KEY, path, now() + 300));
    let mut publisher = publish(&url, &tcurl, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (signed, tcurl) = rtmp.url(&tencent_query(KEY, path, now() + 300));
    let (unsigned, _) = rtmp.url("");
    let (push_signed, _) = rtmp.url(&tencent_query(PUSH_KEY, path, now() + 300));
    let (a, b, c) = tokio::task::spawn_blocking(move || {
        (
            plays(&signed, &tcurl),
            plays(&unsigned, &tcurl),
            plays(&push_signed, &tcurl),
        )
    })
    .await
    .unwrap();
    assert!(a, "a signed player could not play: {}", rtmp.log());
    assert!(!b, "an unsigned player played");
    assert!(!c, "a player with the push key played");
    let status = wait_exit(&mut publisher, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the signed publisher failed: {}",
        rtmp.log()
    );

    // A publisher whose token expires mid-session is cut by on_update.
    let exp = now() + 3;
    let (url, tcurl) = rtmp.url(&tencent_query(PUSH_KEY, path, exp));
    let started = Instant::now();
    let mut publisher = publish(&url, &tcurl, 30);
    let status = wait_exit(&mut publisher, Duration::from_secs(12));
    if status.is_none() {
        let _ = publisher.kill();
        let _ = publisher.wait();
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "the publisher was not cut within 12 s: {}",
        rtmp.log()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "cut before its token expired"
    );
    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            r#"streamguard_hook_decisions_total{hook="rtmp_on_update",result="denied"}"#
        ) >= 1.0
    );
}
