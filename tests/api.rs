//! The operator API on the admin listener, against the real binary: bearer
//! token, `/v1/sign` (same URL as `streamguard sign`), `/v1/play-auth`
//! against an nginx origin, `/v1/keys`, `PUT /v1/auth-keys` (validation,
//! persistence across restart, app scopes), the OpenAPI document.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const TOKEN: &str = "api-token-0123456789abcdef";

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    json: Value,
}

async fn call(
    admin: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = req.body(Full::new(body)).unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("no answer in time")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    Reply {
        status: parts.status,
        headers: parts.headers,
        json,
    }
}

/// [`call`] with the token and a JSON body.
async fn call_authed(admin: SocketAddr, method: Method, path: &str, body: Value) -> Reply {
    call(admin, method, path, Some(TOKEN), Some(body)).await
}

fn config(origin: &str, state_dir: &std::path::Path, site_extra: &str) -> String {
    let body = site_config(origin, site_extra, "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\napi_token = \"${SG_TEST_API_TOKEN}\"",
    );
    format!("state_dir = \"{}\"\n{body}", state_dir.display())
}

fn start(config: &str) -> Proxy {
    Proxy::start_logged_env(config, &[("SG_TEST_API_TOKEN", TOKEN)])
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.json["code"], code, "{}", r.json);
    assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    let id = r.json["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn the_token_is_required_compared_and_never_logged() {
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &format!("http://{}", origin.addr),
        state.path(),
        "[site.push]\nkeys = [\"PushKey0123456789\"]\n",
    ));
    let admin = proxy.admin;

    let r = call(admin, Method::GET, "/v1/keys", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "Unauthorized.MissingToken");
    assert!(r.headers.get("www-authenticate").is_some());
    let r = call(
        admin,
        Method::GET,
        "/v1/keys",
        Some("api-token-0123456789abcdeX"),
        None,
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "Unauthorized.InvalidToken");
    let r = call(admin, Method::GET, "/v1/keys", Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Push keys are listed too, as fingerprints.
    let push = &r.json["sites"][0]["push_keys"];
    assert_eq!(push[0]["source"], "config", "{}", r.json);
    assert!(push[0]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(!r.json.to_string().contains("PushKey0123456789"));
    let r = call(admin, Method::POST, "/v1/keys", Some(TOKEN), None).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    let r = call(admin, Method::GET, "/v1/nope", Some(TOKEN), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "NotFound");

    // The document needs no token and describes every operation.
    let r = call(admin, Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["openapi"], "3.0.3");
    for (path, method) in [
        ("/v1/sign", "post"),
        ("/v1/play-auth", "post"),
        ("/v1/keys", "get"),
        ("/v1/auth-keys", "put"),
        ("/v1/keys/rotate", "post"),
        ("/v1/keys/rotate", "get"),
    ] {
        assert!(r.json["paths"][path][method].is_object(), "{path} {method}");
    }
    // Checked by a real validator where one is installed (CI installs it).
    let doc = proxy.path("openapi.json");
    std::fs::write(&doc, r.json.to_string()).unwrap();
    let validated = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from openapi_spec_validator import validate; from openapi_spec_validator.readers import read_from_filename; validate(read_from_filename(sys.argv[1])[0])",
        ])
        .arg(&doc)
        .output()
        .unwrap();
    let missing = String::from_utf8_lossy(&validated.stderr).contains("ModuleNotFoundError");
    if missing && std::env::var_os("CI").is_none() {
        eprintln!("openapi-spec-validator not installed; skipping the schema check");
    } else {
        assert!(
            validated.status.success(),
            "{}",
            String::from_utf8_lossy(&validated.stderr)
        );
    }

    let metrics = proxy.metrics().await;
    assert!(
        metric(
            &metrics,
            "streamguard_api_requests_total{path=\"/v1/keys\",status=\"401\"}"
        ) >= 2.0
    );
    let log = proxy.log();
    assert!(log.contains("operator API request"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("0123456789abcdeX"),
        "{log}"
    );

    // Without a token configured the API is off.
    let off = Proxy::start(&site_config(&format!("http://{}", origin.addr), "", ""));
    let r = call(off.admin, Method::GET, "/v1/keys", Some(TOKEN), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "Forbidden.ApiDisabled");
}

#[tokio::test]
async fn sign_gives_the_cli_s_url_and_refuses_what_the_proxy_would_deny() {
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&format!("http://{}", origin.addr), state.path(), "");
    let proxy = start(&cfg);
    let exp = now() + 600;
    let r = call_authed(
        proxy.admin,
        Method::POST,
        "/v1/sign",
        json!({"url": "http://play.example.com/live/test.flv", "expires_at": exp}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let url = r.json["url"].as_str().unwrap().to_owned();
    assert_eq!(r.json["key_source"], "config");
    let cli = std::process::Command::new(BIN)
        .args(["sign", "--config"])
        .arg(proxy.path("streamguard.toml"))
        .args([
            "--expires-at",
            &exp.to_string(),
            "http://play.example.com/live/test.flv",
        ])
        .env("SG_TEST_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), url);
    let pq = url.strip_prefix("http://play.example.com").unwrap();
    let (status, _, _) = get(proxy.http_addr(), "play.example.com", pq).await;
    assert_eq!(status, StatusCode::OK);

    // A path with the site id, and a lifetime.
    let r = call_authed(
        proxy.admin,
        Method::POST,
        "/v1/sign",
        json!({"site": "live", "path": "/live/other.flv", "expires_in": 60}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let pq = r.json["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://play.example.com")
        .unwrap()
        .to_owned();
    assert_eq!(
        get(proxy.http_addr(), "play.example.com", &pq).await.0,
        StatusCode::OK
    );

    for (body, status, code) in [
        (
            json!({"url": "http://play.example.com/live/a.flv"}),
            StatusCode::BAD_REQUEST,
            "MissingParameter",
        ),
        (
            json!({"url": "http://play.example.com/live/a.flv", "expires_at": 1}),
            StatusCode::BAD_REQUEST,
            "InvalidParam",
        ),
        (
            json!({"url": "http://play.example.com/a/../b.flv", "expires_in": 60}),
            StatusCode::BAD_REQUEST,
            "InvalidParam",
        ),
        (
            json!({"url": "http://nobody.example.com/live/a.flv", "expires_in": 60}),
            StatusCode::NOT_FOUND,
            "InvalidSite.NotFound",
        ),
        (
            json!({"url": "http://play.example.com/live/a.flv", "expires_in": "soon"}),
            StatusCode::BAD_REQUEST,
            "InvalidParam.BindError",
        ),
        (
            json!({"url": "http://play.example.com/live/a.flv", "expires_in": 60, "key": "x"}),
            StatusCode::BAD_REQUEST,
            "InvalidParam.BindError",
        ),
        // Past 2106 no verifier reads the time.
        (
            json!({"url": "http://play.example.com/live/a.flv", "expires_in": u64::MAX}),
            StatusCode::BAD_REQUEST,
            "InvalidParam",
        ),
        // A fragment would sit before the query the signature goes in.
        (
            json!({"site": "live", "path": "/live/a.flv#frag", "expires_in": 60}),
            StatusCode::BAD_REQUEST,
            "InvalidParam",
        ),
    ] {
        let r = call_authed(proxy.admin, Method::POST, "/v1/sign", body.clone()).await;
        assert_error(&r, status, code);
        assert!(
            !r.json["message"].as_str().unwrap().contains("soon"),
            "{}",
            r.json
        );
    }
    // One JSON value, nothing after it.
    let body = r#"{"url": "http://play.example.com/live/a.flv", "expires_in": 60} trailing {{"#;
    let text = raw_exchange(
        proxy.admin,
        &format!(
            "POST /v1/sign HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("InvalidParam.BindError"), "{text}");
}

#[tokio::test]
async fn play_auth_asks_the_origin_and_its_credential_opens_only_that_media() {
    if nginx_bin().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("nginx not installed; skipping");
        return;
    }
    let nginx = Nginx::start("");
    let vod = nginx.www().join("vod");
    std::fs::create_dir_all(&vod).unwrap();
    std::fs::write(
        vod.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.ts\n#EXTINF:2.5,\nb.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(vod.join("other.m3u8"), "#EXTM3U\n#EXT-X-ENDLIST\n").unwrap();
    std::fs::write(vod.join("a.ts"), vec![0u8; 1880]).unwrap();
    std::fs::write(vod.join("movie.flv"), vec![1u8; 12345]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(&vod).unwrap() {
        std::fs::set_permissions(e.unwrap().path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    std::fs::set_permissions(&vod, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &format!("http://{}", nginx.addr),
        state.path(),
        "[site.hls]\nchild_auth = \"session\"",
    ));
    let admin = proxy.admin;

    // A playlist: a session credential for exactly that path, VOD duration.
    let r = call_authed(
        admin,
        Method::POST,
        "/v1/play-auth",
        json!({"VideoId": "http://play.example.com/vod/index.m3u8", "AuthInfoTimeout": 300}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["VideoMeta"]["Status"], "Normal");
    assert_eq!(r.json["VideoMeta"]["Duration"], 6.5);
    let expires = r.json["ExpiresAt"].as_u64().unwrap();
    assert!((now() + 295..=now() + 305).contains(&expires), "{expires}");
    let credential = r.json["PlayAuth"].as_str().unwrap().to_owned();
    let (status, _, body) = get(
        proxy.http_addr(),
        "play.example.com",
        &format!("/vod/index.m3u8?{credential}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&body).contains("a.ts?sg_session="),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = get(
        proxy.http_addr(),
        "play.example.com",
        &format!("/vod/other.m3u8?{credential}"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the credential opened another playlist"
    );
    let play_url = r.json["PlayURL"].as_str().unwrap();
    let pq = play_url.strip_prefix("http://play.example.com").unwrap();
    assert_eq!(
        get(proxy.http_addr(), "play.example.com", pq).await.0,
        StatusCode::OK
    );

    // A file: the scheme's signature; size from the origin; default 100 s.
    let r = call_authed(
        admin,
        Method::POST,
        "/v1/play-auth",
        json!({"video_id": "/vod/movie.flv", "site": "live"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["VideoMeta"]["Size"], 12345);
    let expires = r.json["ExpiresAt"].as_u64().unwrap();
    assert!((now() + 95..=now() + 105).contains(&expires), "{expires}");
    let pq = r.json["PlayURL"]
        .as_str()
        .unwrap()
        .strip_prefix("http://play.example.com")
        .unwrap()
        .to_owned();
    let (status, _, body) = get(proxy.http_addr(), "play.example.com", &pq).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 12345));

    // The documented errors.
    for (body, status, code) in [
        (
            json!({"AuthInfoTimeout": 100}),
            StatusCode::BAD_REQUEST,
            "MissingVideoId",
        ),
        (
            json!({"VideoId": "http://play.example.com/vod/missing.m3u8"}),
            StatusCode::NOT_FOUND,
            "InvalidVideo.NotFound",
        ),
    ] {
        let r = call_authed(admin, Method::POST, "/v1/play-auth", body).await;
        assert_error(&r, status, code);
    }
    for t in [99, 3001, 0] {
        let r = call_authed(
            admin,
            Method::POST,
            "/v1/play-auth",
            json!({"VideoId": "http://play.example.com/vod/index.m3u8", "AuthInfoTimeout": t}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidParameter.AuthInfoTimeout",
        );
        assert!(
            r.json["message"].as_str().unwrap().contains("[100, 3000]"),
            "{}",
            r.json
        );
    }
}

#[tokio::test]
async fn auth_keys_are_validated_applied_kept_and_restored() {
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&format!("http://{}", origin.addr), state.path(), "");
    let op_key = "OperatorKey0123456789";
    let vip_key = "VipKey987654321";
    // The site-wide play key, its scope switched on or off.
    let site_wide = |enable: bool| {
        json!({"Domain": "play.example.com", "SceneType": "pull", "PushPullEnable": enable,
            "AuthDetailList": [{"SecretKey": op_key, "EncryptionAlgorithm": "md5"}]})
    };
    {
        let proxy = start(&cfg);
        let admin = proxy.admin;
        // Each violation names its field; nothing is kept.
        let r = call_authed(
            admin,
            Method::PUT,
            "/v1/auth-keys",
            json!({
                "Domain": "play.example.com",
                "App": "no/slash",
                "AuthDetailList": [{"SecretKey": "has-dash", "EncryptionAlgorithm": "sha256"}],
                "ValidDuration": 59
            }),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
        let message = r.json["message"].as_str().unwrap();
        for field in [
            "App",
            "SceneType",
            "ValidDuration",
            "AuthDetailList[0].SecretKey",
            "AuthDetailList[0].EncryptionAlgorithm",
        ] {
            assert!(message.contains(field), "{field}: {message}");
        }
        assert!(!message.contains("has-dash"), "{message}");
        let too_many: Vec<Value> = (0..101)
            .map(|i| json!({"SecretKey": format!("k{i}"), "EncryptionAlgorithm": "md5"}))
            .collect();
        let r = call_authed(
            admin,
            Method::PUT,
            "/v1/auth-keys",
            json!({
            "Vhost": "live", "SceneType": "pull", "AuthDetailList": too_many}),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "InvalidParam.Length");
        assert!(r.json["message"]
            .as_str()
            .unwrap()
            .contains("AuthDetailList"));
        let r = call_authed(
            admin,
            Method::PUT,
            "/v1/auth-keys",
            json!({
            "Domain": "other.example.com", "SceneType": "pull",
            "AuthDetailList": [{"SecretKey": "abc", "EncryptionAlgorithm": "md5"}]}),
        )
        .await;
        assert_error(&r, StatusCode::NOT_FOUND, "ResourceNotFound");
        assert!(!state.path().join("operator-keys.json").exists());

        // A site-wide play key and an app-limited one.
        let r = call_authed(admin, Method::PUT, "/v1/auth-keys", site_wide(true)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert!(!r.json.to_string().contains(op_key), "{}", r.json);
        let r = call_authed(admin, Method::PUT, "/v1/auth-keys", json!({
            "Vhost": "live", "App": "vip", "SceneType": "pull", "PushPullEnable": true, "ValidDuration": 3600,
            "AuthDetailList": [{"SecretKey": vip_key, "EncryptionAlgorithm": "md5"}]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);

        let keys = call(admin, Method::GET, "/v1/keys", Some(TOKEN), None)
            .await
            .json;
        let text = keys.to_string();
        assert!(
            !text.contains(op_key) && !text.contains(vip_key) && !text.contains(KEY),
            "{text}"
        );
        let site_keys = keys["sites"][0]["keys"].as_array().unwrap();
        assert_eq!(site_keys[0]["source"], "operator");
        assert_eq!(site_keys[0]["signing"], true);
        assert!(site_keys.iter().any(|k| k["source"] == "config"));
        assert!(site_keys.iter().any(|k| k["app"] == "vip"));
        let metrics = proxy.metrics().await;
        assert_eq!(
            metric(
                &metrics,
                "streamguard_site_keys_by_source{site=\"live\",source=\"operator\"}"
            ),
            2.0
        );
    }
    // Kept atomically, owner-only, and in force after a restart.
    let file = state.path().join("operator-keys.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let proxy = start(&cfg);
    let addr = proxy.http_addr();
    let exp = now() + 300;
    let ok = |key: &str, path: &str| format!("{path}?{}", tencent_query(key, path, exp));
    for (key, path, status) in [
        (op_key, "/live/a.flv", StatusCode::OK),
        (KEY, "/live/a.flv", StatusCode::OK),
        (vip_key, "/vip/a.flv", StatusCode::OK),
        (op_key, "/vip/a.flv", StatusCode::OK),
        (vip_key, "/live/a.flv", StatusCode::FORBIDDEN),
    ] {
        let got = get(addr, "play.example.com", &ok(key, path)).await.0;
        assert_eq!(got, status, "{path}");
    }
    // Signing now uses the operator key.
    let r = call_authed(
        proxy.admin,
        Method::POST,
        "/v1/sign",
        json!({"url": "http://play.example.com/live/b.flv", "expires_at": exp}),
    )
    .await;
    assert_eq!(r.json["key_source"], "operator");
    assert_eq!(
        r.json["url"],
        format!("http://play.example.com{}", ok(op_key, "/live/b.flv"))
    );

    // Switching the scope off removes its keys, without a restart.
    let r = call_authed(proxy.admin, Method::PUT, "/v1/auth-keys", site_wide(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        get(addr, "play.example.com", &ok(op_key, "/live/a.flv"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(addr, "play.example.com", &ok(KEY, "/live/a.flv"))
            .await
            .0,
        StatusCode::OK
    );
}

/// The operator API keeps at most 64 scopes (App and SceneType pairs) per
/// site: the 65th new one is refused, an update of a held one is not.
#[tokio::test]
async fn auth_key_scopes_per_site_are_bounded() {
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &format!("http://{}", origin.addr),
        state.path(),
        "",
    ));
    let put = |app: String| {
        json!({"Vhost": "live", "App": app, "SceneType": "pull",
            "AuthDetailList": [{"SecretKey": "Key0123456789", "EncryptionAlgorithm": "md5"}]})
    };
    for i in 0..64 {
        let r = call_authed(
            proxy.admin,
            Method::PUT,
            "/v1/auth-keys",
            put(format!("app{i}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{i}: {}", r.json);
    }
    let r = call_authed(
        proxy.admin,
        Method::PUT,
        "/v1/auth-keys",
        put("app64".into()),
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "LimitExceeded.Scopes");
    let r = call_authed(
        proxy.admin,
        Method::PUT,
        "/v1/auth-keys",
        put("app3".into()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}
