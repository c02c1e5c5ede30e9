//! Black-box tests: the real proxy binary between a real client and a real origin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "play.example.com";

/// An origin, and a proxy in front of it with `server_extra` added to its
/// `[server]` section.
async fn setup_server(server_extra: &str) -> (Origin, Proxy) {
    let origin = Origin::start().await;
    let cfg = site_config(&format!("http://{}", origin.addr), "", "").replacen(
        "[server]\n",
        &format!("[server]\n{server_extra}\n"),
        1,
    );
    let proxy = Proxy::start(&cfg);
    (origin, proxy)
}

async fn setup(site_extra: &str, auth_extra: &str) -> (Origin, Proxy) {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&site_config(
        &format!("http://{}", origin.addr),
        site_extra,
        auth_extra,
    ));
    (origin, proxy)
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_url_is_forwarded_with_auth_stripped_and_forwarding_headers() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let (status, headers, body) = get(
        proxy.http_addr(),
        "Play.Example.com:8080",
        &format!("/live/test.flv?a=1&{q}&b=2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_map_get(&headers, "x-origin"), Some("yes"));
    assert_eq!(body, Bytes::from("origin saw /live/test.flv?a=1&b=2"));
    let seen = origin.last_seen();
    assert_eq!(seen.path_and_query, "/live/test.flv?a=1&b=2");
    assert_eq!(
        header_map_get(&seen.headers, "host"),
        Some(origin.addr.to_string().as_str())
    );
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-for"),
        Some("127.0.0.1")
    );
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-proto"),
        Some("http")
    );
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-host"),
        Some("Play.Example.com:8080")
    );
    assert!(seen.headers.get("connection").is_none());
}

/// The origin's base path goes before the path; a query left empty once
/// the auth params are stripped leaves no `?` behind.
#[tokio::test(flavor = "multi_thread")]
async fn origin_base_path_is_prefixed_and_an_emptied_query_dropped() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&site_config(
        &format!("http://{}/base", origin.addr),
        "",
        "",
    ));
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    for (sent, forwarded) in [
        (format!("/live/test.flv?{q}"), "/base/live/test.flv"),
        (format!("/live/test.flv?&{q}&"), "/base/live/test.flv"),
        (format!("/live/test.flv?a=1&{q}"), "/base/live/test.flv?a=1"),
        (
            format!("/live/test.flv?{q}&b=&c"),
            "/base/live/test.flv?b=&c",
        ),
    ] {
        let (status, _, _) = get(proxy.http_addr(), HOST, &sent).await;
        assert_eq!(status, StatusCode::OK, "{sent}");
        assert_eq!(origin.last_seen().path_and_query, forwarded, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_host_and_auth_params_kept_when_configured() {
    let (origin, proxy) = setup(
        "origin_host_header = \"client\"\nstrip_auth_params = false",
        "",
    )
    .await;
    let q = tencent_query(KEY, "/live/test.m3u8", now() + 60);
    let (status, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.m3u8?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = origin.last_seen();
    assert_eq!(seen.path_and_query, format!("/live/test.m3u8?{q}"));
    assert_eq!(header_map_get(&seen.headers, "host"), Some(HOST));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_denial_reason_is_a_403_naming_it_and_never_reaches_the_origin() {
    let (origin, proxy) = setup("", "").await;
    let t = now() + 60;
    let good = tencent_query(KEY, "/live/test.flv", t);
    let past = tencent_query(KEY, "/live/test.flv", now() - 10);
    let forged = tencent_query("wrong-key", "/live/test.flv", t);
    let other_stream = tencent_query(KEY, "/live/other.flv", t);
    let cases = [
        ("/live/test.flv".to_owned(), "missing_token"),
        ("/live/test.flv?foo=bar".to_owned(), "missing_token"),
        (format!("/live/test.flv?txTime={t:X}"), "malformed_token"),
        (
            format!("/live/test.flv?txSecret=xyz&txTime={t:X}"),
            "malformed_token",
        ),
        (
            format!("/live/test.flv?{good}&txTime={t:X}"),
            "malformed_token",
        ),
        (format!("/live/test.flv?{past}"), "expired"),
        (format!("/live/test.flv?{forged}"), "bad_signature"),
        (format!("/live/test.flv?{other_stream}"), "bad_signature"),
    ];
    for (pq, reason) in cases {
        let (status, headers, body) = get(proxy.http_addr(), HOST, &pq).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{pq}");
        assert_eq!(
            header_map_get(&headers, "x-streamguard-deny"),
            Some(reason),
            "{pq}"
        );
        assert_eq!(body, Bytes::from(format!("403 {reason}\n")));
    }
    assert_eq!(origin.count(), 0, "a denied request reached the origin");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="denied",reason="missing_token",site="live"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="denied",reason="malformed_token",site="live"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="denied",reason="expired",site="live"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="denied",reason="bad_signature",site="live"}"#
        ),
        2.0
    );
    assert!(!m.contains(KEY), "a key leaked into the metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_status_is_configurable() {
    let (_origin, proxy) = setup("deny_status = 401", "").await;
    let (status, headers, _) = get(proxy.http_addr(), HOST, "/live/test.flv").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-deny"),
        Some("missing_token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_key_is_accepted_during_rotation() {
    let (_origin, proxy) = setup("", "").await;
    let q = tencent_query(BACKUP, "/live/test.flv", now() + 60);
    let (status, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_is_404_and_counted() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let (status, headers, _) = get(
        proxy.http_addr(),
        "evil.example.com",
        &format!("/live/test.flv?{q}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-error"),
        Some("unknown_host")
    );
    assert_eq!(origin.count(), 0);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="rejected",reason="unknown_host",site="_unknown"}"#
        ),
        1.0
    );
    assert!(
        !m.contains("evil.example.com"),
        "an unknown host became a label"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_paths_are_rejected_before_auth() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    for p in [
        "/live/../live/test.flv",
        "/live//test.flv",
        "/live%2ftest.flv",
        "/live/%2e%2e/test.flv",
    ] {
        let (status, headers, _) = get(proxy.http_addr(), HOST, &format!("{p}?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        assert_eq!(
            header_map_get(&headers, "x-streamguard-error"),
            Some("bad_path"),
            "{p}"
        );
    }
    assert_eq!(origin.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_uri_is_414() {
    let (_origin, proxy) = setup("", "").await;
    let long = format!("/live/test.flv?pad={}", "a".repeat(9000));
    let (status, _, _) = get(proxy.http_addr(), HOST, &long).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_origin_is_502_and_counted() {
    // Bind then drop a listener: nothing listens on that port any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(&site_config(&format!("http://{dead}"), "", ""));
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let (status, headers, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-error"),
        Some("origin_unreachable")
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_upstream_errors_total{kind="connect",site="live"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="error",reason="origin_unreachable",site="live"}"#
        ),
        1.0
    );
    // The proxy itself keeps serving.
    let (s, _, _) = get(proxy.admin, "admin", "/healthz").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_origin_is_504_after_the_response_header_timeout() {
    let (_origin, proxy) = setup("response_header_timeout_secs = 1", "").await;
    let q = tencent_query(KEY, "/hang/test.flv", now() + 60);
    let started = std::time::Instant::now();
    let (status, headers, _) = get(proxy.http_addr(), HOST, &format!("/hang/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-error"),
        Some("origin_timeout")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_upstream_errors_total{kind="timeout",site="live"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_bytes_reach_the_client_before_the_origin_finishes() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/gated/stream.flv", now() + 60);
    let resp = send(proxy.http_addr(), HOST, &format!("/gated/stream.flv?{q}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    // The origin is still holding its last chunk: the first must already be here.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first bytes did not arrive while the origin was still sending")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, Bytes::from_static(b"first\n"));
    origin.release();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, Bytes::from_static(b"last\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_closes_the_origin_stream() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/endless/live.flv", now() + 60);
    let mut s = raw_get(proxy.http_addr(), HOST, &format!("/endless/live.flv?{q}")).await;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 32 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early");
        got += n;
    }
    let m = proxy.metrics().await;
    assert_eq!(metric(&m, "streamguard_active_streams"), 1.0);
    assert!(metric(&m, r#"streamguard_response_bytes_total{site="live"}"#) > 0.0);
    assert!(!origin.disconnected());
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !origin.disconnected() {
        assert!(
            std::time::Instant::now() < deadline,
            "origin still streaming 5 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = proxy.metrics().await;
    assert_eq!(metric(&m, "streamguard_active_streams"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_prior_knowledge_on_plain_listener() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let (mut send, _conn) = h2c(proxy.http_addr()).await;
    let req = Request::get(format!("http://{HOST}/live/test.flv?{q}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from("origin saw /live/test.flv"));
    // No Host header in HTTP/2: `:authority` is what the client asked for.
    let seen = origin.last_seen();
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-host"),
        Some(HOST)
    );
    assert_eq!(
        header_map_get(&seen.headers, "host"),
        Some(origin.addr.to_string().as_str())
    );
}

fn tls_client(
    roots: &[rustls::pki_types::CertificateDer<'static>],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_over_tls_with_certificates_chosen_by_sni() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1, der1) = write_cert(dir.path(), "play", &["play.example.com"]);
    let (c2, k2, der2) = write_cert(dir.path(), "other", &["other.example.com"]);
    let config = format!(
        r#"
[server]
tls_listen = ["127.0.0.1:0"]
[[server.certificate]]
cert_file = "{}"
key_file = "{}"
server_names = ["play.example.com"]
[[server.certificate]]
cert_file = "play-other.crt"
key_file = "play-other.key"
server_names = ["*.other.example.com", "other.example.com"]
{}"#,
        c1.display(),
        k1.display(),
        site_config(&format!("http://{}", origin.addr), "", "")
            .replace("[server]\nlisten = [\"127.0.0.1:0\"]\n", "")
    );
    // Relative certificate paths resolve against the config file's directory.
    std::fs::rename(&c2, dir.path().join("play-other.crt")).unwrap();
    std::fs::rename(&k2, dir.path().join("play-other.key")).unwrap();
    let proxy = Proxy::start_in(dir, &config, &[]);
    let addr = proxy.https.expect("no tls listener");
    assert!(proxy.http.is_none());

    // h2 via ALPN, SNI play.example.com → the play certificate.
    let connector = tls_client(&[der1.clone(), der2.clone()], &[b"h2", b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("play.example.com").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    {
        let (_, session) = tls.get_ref();
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(session.peer_certificates().unwrap()[0], der1);
    }
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let req = Request::get(format!("https://{HOST}/live/test.flv?{q}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(&origin.last_seen().headers, "x-forwarded-proto"),
        Some("https")
    );
    let req = Request::get(format!("https://{HOST}/live/test.flv"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // SNI under the wildcard → the other certificate (verified by its name).
    for sni in ["a.other.example.com", "other.example.com"] {
        let connector = tls_client(std::slice::from_ref(&der2), &[b"http/1.1"]);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(sni).unwrap();
        let tls = connector.connect(name, tcp).await;
        if sni == "a.other.example.com" {
            // The certificate names only other.example.com: the client must refuse it,
            // which proves the wildcard entry selected the `other` certificate.
            let err = match tls {
                Err(e) => e.to_string(),
                Ok(_) => panic!("hostname mismatch not detected"),
            };
            assert!(
                err.contains("not valid for name") || err.contains("NotValidForName"),
                "{err}"
            );
        } else {
            let tls = tls.unwrap();
            assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], der2);
        }
    }
}

/// An https origin on `localhost` with a self-signed certificate (its PEM
/// file returned, for `origin_ca_file`) offering `alpn`.
async fn tls_origin(dir: &std::path::Path, alpn: &[&[u8]]) -> (Origin, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    let (crt, key, der) = write_cert(dir, "origin", &["localhost"]);
    let key_der = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key_der)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Origin::start_tls(cfg).await, crt)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_origin_is_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, crt) = tls_origin(dir.path(), &[b"http/1.1"]).await;
    let url = format!("https://localhost:{}", origin.addr.port());
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);

    let trusted = Proxy::start(&site_config(
        &url,
        &format!("origin_ca_file = \"{}\"", crt.display()),
        "",
    ));
    let (status, _, body) = get(trusted.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Bytes::from("origin saw /live/test.flv"));

    // Without the CA the self-signed origin is not trusted: 502, not a silent pass.
    let untrusted = Proxy::start(&site_config(&url, "", ""));
    let (status, _, _) = get(untrusted.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

/// An https origin that offers h2 gets HTTP/2, unless the client's Host is
/// forwarded: then HTTP/1.1, since `:authority` and Host would disagree.
#[tokio::test(flavor = "multi_thread")]
async fn https_origin_choosing_h2_is_spoken_to_over_h2_unless_the_client_host_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, crt) = tls_origin(dir.path(), &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}", origin.addr.port());
    let ca = format!("origin_ca_file = \"{}\"", crt.display());

    let proxy = Proxy::start(&site_config(&url, &ca, ""));
    for path in ["/live/a.ts", "/live/b.flv", "/live/c.ts"] {
        let q = tencent_query(KEY, path, now() + 60);
        let (status, _, body) = get(proxy.http_addr(), HOST, &format!("{path}?{q}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, Bytes::from(format!("origin saw {path}")));
        let seen = origin.last_seen();
        assert_eq!(seen.version, Version::HTTP_2);
        assert_eq!(seen.path_and_query, path, "auth stripped, origin-form path");
        assert_eq!(
            header_map_get(&seen.headers, "host"),
            Some(format!("localhost:{}", origin.addr.port()).as_str())
        );
    }

    let client_host = Proxy::start(&site_config(
        &url,
        &format!("{ca}\norigin_host_header = \"client\""),
        "",
    ));
    let q = tencent_query(KEY, "/live/d.ts", now() + 60);
    let (status, _, body) = get(client_host.http_addr(), HOST, &format!("/live/d.ts?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Bytes::from("origin saw /live/d.ts"));
    let seen = origin.last_seen();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(header_map_get(&seen.headers, "host"), Some(HOST));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_on_the_admin_listener() {
    let (_origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    for _ in 0..3 {
        let (s, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="allowed",reason="none",site="live"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"streamguard_request_duration_seconds_count{outcome="allowed",site="live"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(&m, r#"streamguard_response_bytes_total{site="live"}"#),
        3.0 * "origin saw /live/test.flv".len() as f64
    );
    assert!(m.contains("streamguard_active_connections"));
    let (s, _, b) = get(proxy.admin, "admin", "/healthz").await;
    assert_eq!((s, b), (StatusCode::OK, Bytes::from("ok\n")));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_head_is_refused() {
    let origin = Origin::start().await;
    let proxy = Proxy::start_logged(&site_config(&format!("http://{}", origin.addr), "", ""));
    let mut s = tokio::net::TcpStream::connect(proxy.http_addr())
        .await
        .unwrap();
    let big = "x".repeat(64 * 1024);
    let req = format!("GET /live/test.flv HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\n\r\n");
    // The proxy may close before reading everything; a write error is fine.
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(origin.count(), 0);

    // A malformed head: 400, by hyper too.
    let text = raw_exchange(
        proxy.http_addr(),
        "GET /live/test.flv HTTP/1.1\r\nHost: play\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // Neither reached the handler, yet both are counted and logged.
    let counted = async |reason: &str| {
        metric(
            &proxy.metrics().await,
            &format!(
                r#"streamguard_requests_total{{outcome="rejected",reason="{reason}",site="_unknown"}}"#
            ),
        )
    };
    wait_for("both requests counted", async || {
        counted("header_too_large").await == 1.0 && counted("bad_request").await == 1.0
    })
    .await;
    let log = proxy.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("streamguard::access"))
        .collect();
    assert_eq!(access.len(), 2, "{log}");
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=431") && l.contains("header_too_large")),
        "{log}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("status=400") && l.contains("bad_request")),
        "{log}"
    );
    assert!(
        !log.contains(&big[..64]),
        "the oversized header's value was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_request_head_is_cut_off() {
    let (origin, proxy) = setup_server("header_read_timeout_secs = 1").await;
    let mut s = tokio::net::TcpStream::connect(proxy.http_addr())
        .await
        .unwrap();
    s.write_all(b"GET /live/test.flv HTTP/1.1\r\nHost: play")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("connection still open 5 s after a 1 s header timeout")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(origin.count(), 0);
}

/// The head timeout holds for every request of a kept-alive HTTP/1
/// connection, not only the first: a client that starts the next head and
/// trickles it is cut after `header_read_timeout`, long before the idle
/// timeout.
#[tokio::test(flavor = "multi_thread")]
async fn slow_head_of_a_later_request_is_cut_off() {
    let (origin, proxy) =
        setup_server("header_read_timeout_secs = 1\nidle_timeout_secs = 30").await;
    let path = "/live/test.flv";
    let q = tencent_query(KEY, path, now() + 60);
    let mut s = raw_get(proxy.http_addr(), HOST, &format!("{path}?{q}")).await;
    let want = format!("origin saw {path}");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(&want) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before the first response");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // A second head, begun and then trickled a byte every 300 ms.
    s.write_all(b"GET /live/test.flv HTTP/1.1\r\nHost: pl")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let closed = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(b"a").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(_)) => panic!("a response to an unfinished head"),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("connection still open 5 s after a 1 s header timeout");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(origin.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_connection_errors_total{kind="idle_timeout"}"#
        ),
        1.0
    );
}

/// An idle HTTP/2 connection reads pings between requests; that is not a
/// slow request head, and the connection stays usable past the header
/// timeout.
#[tokio::test(flavor = "multi_thread")]
async fn idle_http2_connection_with_pings_outlives_the_header_timeout() {
    let (origin, proxy) =
        setup_server("header_read_timeout_secs = 1\nidle_timeout_secs = 30").await;
    let tcp = tokio::net::TcpStream::connect(proxy.http_addr())
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        let path = "/live/test.flv";
        let q = tencent_query(KEY, path, now() + 60);
        let req = Request::get(format!("http://{HOST}{path}?{q}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    assert_eq!(origin.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let (_origin, proxy) = setup_server("max_connections = 1").await;
    let pq = format!(
        "/live/test.flv?{}",
        tencent_query(KEY, "/live/test.flv", now() + 60)
    );
    // The first connection takes the only slot and stays open (keep-alive).
    let mut a = raw_get(proxy.http_addr(), HOST, &pq).await;
    let mut buf = [0u8; 1024];
    let n = a.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second is not served while the first holds the slot…
    let mut b = raw_get(proxy.http_addr(), HOST, &pq).await;
    let early = tokio::time::timeout(Duration::from_millis(700), b.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "second connection served beyond max_connections = 1"
    );
    // …and is served as soon as the first goes away.
    drop(a);
    let n = tokio::time::timeout(Duration::from_secs(5), b.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_do_not_hold_slots() {
    let (_origin, proxy) = setup_server("header_read_timeout_secs = 1\nmax_connections = 2").await;
    // Two clients connect and say nothing, taking both slots…
    let mut a = tokio::net::TcpStream::connect(proxy.http_addr())
        .await
        .unwrap();
    let mut b = tokio::net::TcpStream::connect(proxy.http_addr())
        .await
        .unwrap();
    for s in [&mut a, &mut b] {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("silent connection still open 5 s after a 1 s header timeout")
            .unwrap();
    }
    // …and once they are cut off a real request is served.
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let (status, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_connection_errors_total{kind="idle_timeout"}"#
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_and_client_forwarded_for_are_not_passed_on() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let resp = send_with(
        proxy.http_addr(),
        HOST,
        &format!("/live/test.flv?{q}"),
        http::Method::GET,
        &[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-original-url", "/live/secret.flv"),
            ("x-rewrite-url", "/live/secret.flv"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = origin.last_seen();
    assert_eq!(
        header_map_get(&seen.headers, "x-real-ip"),
        Some("127.0.0.1"),
        "a client's X-Real-IP reached the origin"
    );
    for h in [
        "x-secret-hop",
        "proxy-authorization",
        "te",
        "forwarded",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(seen.headers.get(h).is_none(), "{h} reached the origin");
    }
    assert_eq!(header_map_get(&seen.headers, "x-kept"), Some("yes"));
    // The peer is not a trusted proxy: its X-Forwarded-For is replaced, not extended.
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-for"),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_forwarded_for_is_extended() {
    let (origin, proxy) = setup("trusted_proxies = [\"127.0.0.0/8\"]", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let resp = send_with(
        proxy.http_addr(),
        HOST,
        &format!("/live/test.flv?{q}"),
        http::Method::GET,
        &[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-real-ip", "9.9.9.9"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(&origin.last_seen().headers, "x-forwarded-for"),
        Some("6.6.6.6, 203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        header_map_get(&origin.last_seen().headers, "x-real-ip"),
        Some("203.0.113.9"),
        "X-Real-IP is the client address the verdict used, not one sent"
    );
    // A `Connection` header naming X-Forwarded-For does not erase the chain.
    let resp = send_with(
        proxy.http_addr(),
        HOST,
        &format!("/live/test.flv?{q}"),
        http::Method::GET,
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("connection", "x-forwarded-for, x-real-ip"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = origin.last_seen();
    assert_eq!(
        header_map_get(&seen.headers, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        header_map_get(&seen.headers, "x-real-ip"),
        Some("203.0.113.9")
    );
}

/// Two `Host` headers: 400 (RFC 9112 §3.2), whichever names a site.
#[tokio::test(flavor = "multi_thread")]
async fn two_host_headers_are_a_bad_request() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let text = raw_exchange(
        proxy.http_addr(),
        &format!(
            "GET /live/test.flv?{q} HTTP/1.1\r\nHost: {HOST}\r\nHost: other.example.com\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert_eq!(origin.count(), 0);
}

/// A GET or HEAD with a body is refused before any origin sees it: an
/// origin that does not read a GET's body (Python's `http.server`, many
/// small servers) takes it for the next request on that pooled connection,
/// an unsigned request smuggled past the verdict. `Content-Length: 0` is no
/// body.
#[tokio::test(flavor = "multi_thread")]
async fn a_get_or_head_with_a_body_is_a_bad_request() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let inner = "GET /live/secret.flv HTTP/1.1\r\nHost: x\r\n\r\n";
    for (method, framing, body) in [
        (
            "GET",
            format!("Content-Length: {}", inner.len()),
            inner.to_owned(),
        ),
        (
            "HEAD",
            format!("Content-Length: {}", inner.len()),
            inner.to_owned(),
        ),
        (
            "GET",
            "Transfer-Encoding: chunked".to_owned(),
            format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len()),
        ),
    ] {
        let text = raw_exchange(
            proxy.http_addr(),
            &format!(
                "{method} /live/test.flv?{q} HTTP/1.1\r\nHost: {HOST}\r\n{framing}\r\nConnection: close\r\n\r\n{body}"
            ),
        )
        .await;
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{method} {framing}: {text}"
        );
        assert!(text.contains("x-streamguard-error: request_body"), "{text}");
    }
    assert_eq!(origin.count(), 0);
    // An empty body is no body: `Content-Length: 0`, or chunked and ended at
    // once; the origin gets a GET without one.
    for framing in [
        "Content-Length: 0\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let text = raw_exchange(
            proxy.http_addr(),
            &format!(
                "GET /live/test.flv?{q} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{framing}"
            ),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200"), "{framing}: {text}");
        let seen = origin.last_seen();
        assert!(seen.headers.get("transfer-encoding").is_none());
    }
    assert_eq!(origin.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_get_and_head_are_proxied() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let resp = send_with(
        proxy.http_addr(),
        HOST,
        &format!("/live/test.flv?{q}"),
        http::Method::HEAD,
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(origin.last_seen().method, "HEAD");
    for m in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        let resp = send_with(
            proxy.http_addr(),
            HOST,
            &format!("/live/test.flv?{q}"),
            m.clone(),
            &[],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(header_map_get(resp.headers(), "allow"), Some("GET, HEAD"));
    }
    assert_eq!(origin.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_never_contains_tokens_or_keys() {
    let origin = Origin::start().await;
    let proxy = Proxy::start_logged(&site_config(&format!("http://{}", origin.addr), "", ""));
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let secret = q
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("txSecret=")
        .to_owned();
    let (s, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{q}")).await;
    assert_eq!(s, StatusCode::OK);
    let forged = tencent_query("wrong", "/live/test.flv", now() + 60);
    let (s, _, _) = get(proxy.http_addr(), HOST, &format!("/live/test.flv?{forged}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = proxy.log();
    assert!(log.contains("/live/test.flv"), "no access log line: {log}");
    assert!(log.contains("bad_signature"), "denial not logged: {log}");
    for needle in [secret.as_str(), KEY, BACKUP, "txSecret"] {
        assert!(!log.contains(needle), "log contains {needle}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_at_expiry_ends_a_stream_when_its_token_expires() {
    let (origin, proxy) = setup("cut_at_expiry = true\ncut_grace_secs = 1", "").await;
    let q = tencent_query(KEY, "/endless/live.flv", now() + 1);
    let resp = send(proxy.http_addr(), HOST, &format!("/endless/live.flv?{q}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    let mut body = resp.into_body();
    let mut got = 0usize;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("stream still running 10 s after expiry")
        {
            Some(Ok(f)) => got += f.into_data().map_or(0, |d| d.len()),
            Some(Err(_)) | None => break started.elapsed(),
        }
    };
    assert!(got > 0, "no bytes before the cut");
    assert!(
        ended >= Duration::from_millis(900) && ended < Duration::from_secs(5),
        "cut after {ended:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !origin.disconnected() {
        assert!(
            std::time::Instant::now() < deadline,
            "origin still streaming after the cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"streamguard_streams_cut_total{site="live"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_and_headers_for_allowed_origins() {
    let (origin, proxy) = setup(
        "[site.cors]\nallow_origins = [\"https://player.example.com\"]\nmax_age_secs = 300",
        "",
    )
    .await;
    let addr = proxy.http_addr();
    let pre = |o: &'static str| async move {
        send_with(
            addr,
            HOST,
            "/live/test.m3u8",
            http::Method::OPTIONS,
            &[("origin", o), ("access-control-request-method", "GET")],
        )
        .await
    };
    let resp = pre("https://player.example.com").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_map_get(resp.headers(), "access-control-allow-origin"),
        Some("https://player.example.com")
    );
    assert_eq!(
        header_map_get(resp.headers(), "access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(
        header_map_get(resp.headers(), "access-control-max-age"),
        Some("300")
    );
    let resp = pre("https://evil.example.com").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(origin.count(), 0, "preflights reached the origin");

    // Real requests: the page can read both the media and a denial's reason.
    let q = tencent_query(KEY, "/live/test.flv", now() + 60);
    let ok = send_with(
        addr,
        HOST,
        &format!("/live/test.flv?{q}"),
        http::Method::GET,
        &[("origin", "https://player.example.com")],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        header_map_get(ok.headers(), "access-control-allow-origin"),
        Some("https://player.example.com")
    );
    let denied = send_with(
        addr,
        HOST,
        "/live/test.flv",
        http::Method::GET,
        &[("origin", "https://player.example.com")],
    )
    .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header_map_get(denied.headers(), "access-control-allow-origin"),
        Some("https://player.example.com")
    );
    assert!(
        header_map_get(denied.headers(), "access-control-expose-headers")
            .unwrap()
            .contains("x-streamguard-deny")
    );
    // Without [site.cors], OPTIONS is just another method.
    let (_o2, plain) = setup("", "").await;
    let resp = send_with(
        plain.http_addr(),
        HOST,
        "/live/test.m3u8",
        http::Method::OPTIONS,
        &[
            ("origin", "https://player.example.com"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn playlist_over_the_bound_is_502_and_counted() {
    let (_origin, proxy) = setup("[site.hls]\nmax_playlist_bytes = 2048", "").await;
    let q = tencent_query(KEY, "/bigplaylist/index.m3u8", now() + 60);
    let (status, headers, _) = get(
        proxy.http_addr(),
        HOST,
        &format!("/bigplaylist/index.m3u8?{q}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-error"),
        Some("playlist_too_large")
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_requests_total{outcome="error",reason="playlist_too_large",site="live"}"#
        ),
        1.0
    );
    // Under the bound the same playlist is rewritten.
    let (_o2, roomy) = setup("", "").await;
    let (status, _, body) = get(
        roomy.http_addr(),
        HOST,
        &format!("/bigplaylist/index.m3u8?{q}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&body)
            .matches("sg_session=")
            .count(),
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_tokens_open_exactly_the_child_they_were_issued_for_and_lower_max_age() {
    let (_origin, proxy) = setup("", "").await;
    let addr = proxy.http_addr();
    let q = tencent_query(KEY, "/bigplaylist/index.m3u8", now() + 120);
    let (status, headers, body) = get(addr, HOST, &format!("/bigplaylist/index.m3u8?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_map_get(&headers, "cache-control"),
        Some("private, no-cache")
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    let first = text.lines().find(|l| l.starts_with("segment-")).unwrap();
    assert!(first.starts_with("segment-00000.ts?sg_session="), "{first}");
    let token = first.split("sg_session=").nth(1).unwrap().to_owned();
    // The child it was written for: allowed.
    let (s, _, _) = get(
        addr,
        HOST,
        &format!("/bigplaylist/segment-00000.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Its sibling, not an HLS resource (an endless FLV next to it), or
    // elsewhere: denied.
    let (s, h, _) = get(
        addr,
        HOST,
        &format!("/bigplaylist/segment-00001.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(
        (s, header_map_get(&h, "x-streamguard-deny")),
        (StatusCode::FORBIDDEN, Some("bad_signature"))
    );
    let (s, h, _) = get(
        addr,
        HOST,
        &format!("/bigplaylist/other.flv?sg_session={token}"),
    )
    .await;
    assert_eq!(
        (s, header_map_get(&h, "x-streamguard-deny")),
        (StatusCode::FORBIDDEN, Some("bad_signature"))
    );
    let (s, _, _) = get(addr, HOST, &format!("/live/x.ts?sg_session={token}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_stops_the_origin() {
    let (origin, proxy) = setup("", "").await;
    let q = tencent_query(KEY, "/fast/live.flv", now() + 60);
    let mut s = raw_get(proxy.http_addr(), HOST, &format!("/fast/live.flv?{q}")).await;
    // Read a little, then stop reading (but keep the connection open).
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < 1024 * 1024 {
        got += tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    // Without backpressure the origin would keep going at loopback speed
    // (gigabytes a second); with it, it stalls once the socket buffers fill.
    let settle = |ms| tokio::time::sleep(Duration::from_millis(ms));
    settle(1500).await;
    let a = origin.fast_sent.load(std::sync::atomic::Ordering::SeqCst);
    settle(1000).await;
    let b = origin.fast_sent.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        a, b,
        "the origin kept sending to a client that stopped reading ({a} then {b} bytes)"
    );
    assert!(
        b < 256 * 1024 * 1024,
        "{b} bytes buffered for a stalled client"
    );
    // Reading again resumes the flow (once the buffers have drained).
    let mut drained = 0usize;
    while origin.fast_sent.load(std::sync::atomic::Ordering::SeqCst) == b {
        drained += tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(drained < 512 * 1024 * 1024, "the stream did not resume");
    }
}

/// A raw keep-alive origin that counts the connections it accepted and the
/// ones that were closed by the other side; `close_after` makes it hang up
/// that long after each response (as an origin's keep-alive timeout does).
async fn counting_origin(
    close_after: Option<Duration>,
    connection: &'static str,
) -> (
    std::net::SocketAddr,
    Arc<[std::sync::atomic::AtomicUsize; 2]>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts: Arc<[std::sync::atomic::AtomicUsize; 2]> = Arc::default();
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            c[0].fetch_add(1, SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            c[1].fetch_add(1, SeqCst);
                            return;
                        }
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let body = "pooled";
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                        if let Some(d) = close_after {
                            tokio::time::sleep(d).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, counts)
}

/// A signed segment request through `proxy` to a [`counting_origin`],
/// which must answer it.
async fn get_pooled_segment(proxy: &Proxy, i: usize) {
    let path = format!("/live/seg{i}.ts");
    let q = tencent_query(KEY, &path, now() + 60);
    let (status, _, body) = get(proxy.http_addr(), HOST, &format!("{path}?{q}")).await;
    assert_eq!((status, body), (StatusCode::OK, Bytes::from("pooled")));
}

/// Origin connections are kept and reused between requests, and closed
/// once idle longer than `pool_idle_timeout_secs`.
#[tokio::test(flavor = "multi_thread")]
async fn origin_connections_are_reused_and_closed_when_idle_too_long() {
    use std::sync::atomic::Ordering::SeqCst;
    let (addr, counts) = counting_origin(None, "keep-alive").await;
    let proxy = Proxy::start(&site_config(
        &format!("http://{addr}"),
        "pool_idle_timeout_secs = 1",
        "",
    ));
    for i in 0..5 {
        get_pooled_segment(&proxy, i).await;
    }
    assert_eq!(
        counts[0].load(SeqCst),
        1,
        "one origin connection for five requests"
    );
    assert_eq!(counts[1].load(SeqCst), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counts[1].load(SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts[1].load(SeqCst), 1, "the idle connection was closed");
}

/// A pooled connection the origin has since closed is not used: the next
/// request gets a new connection and succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_closed_by_the_origin_is_replaced() {
    use std::sync::atomic::Ordering::SeqCst;
    let (addr, counts) = counting_origin(Some(Duration::from_millis(100)), "keep-alive").await;
    let proxy = Proxy::start(&site_config(&format!("http://{addr}"), "", ""));
    for i in 0..3 {
        get_pooled_segment(&proxy, i).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(counts[0].load(SeqCst), 3);
}

/// An origin that answers `Connection: close` gets a new connection per
/// request, and no request fails for it.
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_that_closes_after_each_response_is_never_reused() {
    use std::sync::atomic::Ordering::SeqCst;
    let (addr, counts) = counting_origin(Some(Duration::ZERO), "close").await;
    let proxy = Proxy::start(&site_config(&format!("http://{addr}"), "", ""));
    for i in 0..5 {
        get_pooled_segment(&proxy, i).await;
    }
    assert_eq!(counts[0].load(SeqCst), 5);
}

/// An origin that answers every request head with `response`, as is.
async fn fixed_origin(response: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut chunk).await {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An origin response with both `Transfer-Encoding` and `Content-Length` is
/// read by its chunked framing (RFC 9112 §6.3), so the stale length must
/// not reach the client: it would cut the body short.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_origin_response_loses_its_stale_content_length() {
    let addr = fixed_origin(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let proxy = Proxy::start(&site_config(&format!("http://{addr}"), "", ""));
    let q = tencent_query(KEY, "/live/seg.ts", now() + 60);
    let (status, h, body) = get(proxy.http_addr(), HOST, &format!("/live/seg.ts?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Bytes::from("hello"));
    assert_ne!(header_map_get(&h, "content-length"), Some("3"));
}

/// An origin that sends a head and a little of the body, then nothing, is
/// given up after `origin_read_timeout_secs`: the viewer's response ends
/// (cut short, so it knows), instead of both connections being held forever.
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_stalling_mid_body_is_cut_after_the_read_timeout() {
    let addr = fixed_origin("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nfirst bytes").await;
    let proxy = Proxy::start(&site_config(
        &format!("http://{addr}"),
        "origin_read_timeout_secs = 1",
        "",
    ));
    let q = tencent_query(KEY, "/live/seg.ts", now() + 60);
    let started = std::time::Instant::now();
    let text = raw_exchange(
        proxy.http_addr(),
        &format!("GET /live/seg.ts?{q} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let took = started.elapsed();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("first bytes"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"streamguard_upstream_errors_total{kind="stream",site="live"}"#
        ),
        1.0,
        "{m}"
    );
}
