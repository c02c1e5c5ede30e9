//! What the attack run found, each reproduced against the real binary and a
//! real origin: path parameters, signatures in logs, the origin's address
//! and CORS headers leaking, behaviour leaks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::*;
use http::StatusCode;

async fn deny_of(proxy: &Proxy, pq: &str) -> (StatusCode, Option<String>) {
    let (s, h, _) = get(proxy.http_addr(), "play.example.com", pq).await;
    let reason = ["x-streamguard-deny", "x-streamguard-error"]
        .iter()
        .find_map(|n| header_map_get(&h, n).map(str::to_owned));
    (s, reason)
}

#[tokio::test(flavor = "multi_thread")]
async fn path_parameters_are_refused_unless_the_site_opts_in() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&site_config(&format!("http://{}", origin.addr), "", ""));
    // A signed FLV disguised as a segment for an origin that strips ;params.
    let q = tencent_query(KEY, "/live/a/stream.flv", now() + 600);
    for pq in [
        format!("/live/a/stream.flv;x.ts?{q}"),
        format!(
            "/live/a/stream.flv;x.ts?sg_session=00-00-{}",
            "0".repeat(32)
        ),
        format!("/live/a;jsessionid=1/stream.flv?{q}"),
    ] {
        assert_eq!(
            deny_of(&proxy, &pq).await,
            (StatusCode::BAD_REQUEST, Some("bad_path".to_owned())),
            "{pq}"
        );
    }
    assert_eq!(origin.count(), 0);

    let allowing = Proxy::start(&site_config(
        &format!("http://{}", origin.addr),
        "allow_path_params = true",
        "",
    ));
    let q = tencent_query(KEY, "/live/a/stream;v=1", now() + 600);
    let (s, _, _) = get(
        allowing.http_addr(),
        "play.example.com",
        &format!("/live/a/stream;v=1?{q}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(origin.last_seen().path_and_query, "/live/a/stream;v=1");
}
