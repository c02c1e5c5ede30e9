//! Config hot reload against the running binary: edits on disk (saved the
//! way editors save, by rename) and SIGHUP, while requests keep flowing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;

const SITE_B: &str = r#"
[[site]]
id = "b"
domains = ["b.example.com"]
origin = "ORIGIN"
[site.auth]
scheme = "tencent"
key = "key-b"
"#;

/// Saves like an editor: write a temp file, then rename it over the config.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Requests to site A (`/live/a.flv`) from `loops` concurrent loops until
/// `stop`: (ok, failed) counters and the tasks to await.
fn steady_traffic(
    addr: std::net::SocketAddr,
    loops: usize,
    pause: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks = (0..loops)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let q = tencent_query(KEY, "/live/a.flv", now() + 60);
                    let (s, _, _) =
                        get(addr, "play.example.com", &format!("/live/a.flv?{q}")).await;
                    if s == StatusCode::OK { &ok } else { &failed }.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    (ok, failed, tasks)
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_on_disk_and_sighup_reload_without_dropping_requests() {
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let proxy = Proxy::start(&base);
    let cfg_path = proxy.path("streamguard.toml");
    let addr = proxy.http_addr();

    // Requests to site A keep flowing through every reload below.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed, mut traffic) =
        steady_traffic(addr, 1, Duration::from_millis(10), stop.clone());
    let traffic = traffic.remove(0);
    let b_url = format!(
        "/live/b.flv?{}",
        tencent_query("key-b", "/live/b.flv", now() + 600)
    );

    // 1. A new site appears.
    let with_b = format!(
        "{base}{}",
        SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
    );
    assert_eq!(
        get(addr, "b.example.com", &b_url).await.0,
        StatusCode::NOT_FOUND
    );
    save(&cfg_path, &with_b);
    wait_for("site b to go live", async || {
        get(addr, "b.example.com", &b_url).await.0 == StatusCode::OK
    })
    .await;

    // 2. An invalid edit is rejected as a whole; both sites keep serving.
    save(
        &cfg_path,
        &with_b.replace("key = \"key-b\"", "key = \"key-b\"\nbogus = 1"),
    );
    wait_for("the rejected reload to be counted", async || {
        metric(
            &proxy.metrics().await,
            r#"streamguard_config_reloads_total{outcome="rejected"}"#,
        ) >= 1.0
    })
    .await;
    assert_eq!(get(addr, "b.example.com", &b_url).await.0, StatusCode::OK);

    // 3. A key rotation: the new key verifies, the removed one stops.
    save(
        &cfg_path,
        &with_b.replace("key = \"key-b\"", "key = \"key-b2\""),
    );
    let b2_url = format!(
        "/live/b.flv?{}",
        tencent_query("key-b2", "/live/b.flv", now() + 600)
    );
    wait_for("the rotated key", async || {
        get(addr, "b.example.com", &b2_url).await.0 == StatusCode::OK
    })
    .await;
    let (s, h, _) = get(addr, "b.example.com", &b_url).await;
    assert_eq!(
        (s, header_map_get(&h, "x-streamguard-deny")),
        (StatusCode::FORBIDDEN, Some("bad_signature"))
    );

    // 4. SIGHUP re-reads the file even when it did not change.
    let applied = |m: &str| metric(m, r#"streamguard_config_reloads_total{outcome="applied"}"#);
    let before = applied(&proxy.metrics().await);
    assert!(Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .unwrap()
        .success());
    wait_for("the SIGHUP reload", async || {
        applied(&proxy.metrics().await) > before
    })
    .await;

    // 5. A listener change is applied no further than it can be: reported.
    save(
        &cfg_path,
        &with_b
            .replace("key = \"key-b\"", "key = \"key-b2\"")
            .replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]"),
    );
    wait_for("the restart-required flag", async || {
        metric(
            &proxy.metrics().await,
            "streamguard_config_restart_required",
        ) == 1.0
    })
    .await;

    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    assert!(
        ok.load(Ordering::SeqCst) > 20,
        "too little traffic to show anything"
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
    assert_eq!(
        get(
            addr,
            "play.example.com",
            &format!(
                "/live/a.flv?{}",
                tencent_query(KEY, "/live/a.flv", now() + 60)
            )
        )
        .await
        .0,
        StatusCode::OK
    );
}

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let with_b = format!(
        "{base}{}",
        SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
    );
    // The layout kubelet writes: file -> ..data/file, ..data -> ..<timestamp>/.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/streamguard.toml"), &base).unwrap();
    symlink("..v1", d.join("..data")).unwrap();
    symlink("..data/streamguard.toml", d.join("streamguard.toml")).unwrap();
    let args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        d.join("streamguard.toml").display().to_string(),
    ];
    let proxy = Proxy::spawn(tempfile::tempdir().unwrap(), &args);
    let b_url = format!(
        "/live/b.flv?{}",
        tencent_query("key-b", "/live/b.flv", now() + 600)
    );
    assert_eq!(
        get(proxy.http_addr(), "b.example.com", &b_url).await.0,
        StatusCode::NOT_FOUND
    );

    // An update: new folder, then ..data swapped by rename.
    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(d.join("..v2/streamguard.toml"), &with_b).unwrap();
    symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    wait_for("the swapped config", async || {
        get(proxy.http_addr(), "b.example.com", &b_url).await.0 == StatusCode::OK
    })
    .await;
    // Unrelated files in the folder do not cause reloads.
    let applied = metric(
        &proxy.metrics().await,
        r#"streamguard_config_reloads_total{outcome="applied"}"#,
    );
    std::fs::write(d.join("unrelated.txt"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        metric(
            &proxy.metrics().await,
            r#"streamguard_config_reloads_total{outcome="applied"}"#
        ),
        applied
    );
}

/// Reloads until `applied` has grown past `before`, returning the new count.
async fn reload_applied(proxy: &Proxy, before: f64) -> f64 {
    let applied = |m: &str| metric(m, r#"streamguard_config_reloads_total{outcome="applied"}"#);
    let mut now_applied = before;
    wait_for("the reload to be applied", async || {
        now_applied = applied(&proxy.metrics().await);
        now_applied > before
    })
    .await;
    now_applied
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_required_tracks_what_the_process_bound() {
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let proxy = Proxy::start(&base);
    let cfg_path = proxy.path("streamguard.toml");
    let flag = async || {
        metric(
            &proxy.metrics().await,
            "streamguard_config_restart_required",
        )
    };
    let with_b = format!(
        "{base}{}",
        SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
    );

    // Adding or removing an ordinary site needs no restart.
    save(&cfg_path, &with_b);
    let mut applied = reload_applied(&proxy, 0.0).await;
    assert_eq!(flag().await, 0.0);
    save(&cfg_path, &base);
    applied = reload_applied(&proxy, applied).await;
    assert_eq!(flag().await, 0.0);

    // A limit the accept loops were built with does.
    let limited = base.replace("[server]\n", "[server]\nmax_connections = 77\n");
    assert_ne!(limited, base);
    save(&cfg_path, &limited);
    applied = reload_applied(&proxy, applied).await;
    assert_eq!(flag().await, 1.0);

    // An unrelated reload after it does not clear the flag: the process
    // still runs with the old limit.
    save(
        &cfg_path,
        &format!(
            "{limited}{}",
            SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
        ),
    );
    applied = reload_applied(&proxy, applied).await;
    assert_eq!(flag().await, 1.0);

    // Back to what was bound: cleared.
    save(&cfg_path, &base);
    reload_applied(&proxy, applied).await;
    assert_eq!(flag().await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_reloads_valid_and_invalid_alternating_fail_no_request() {
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let proxy = Proxy::start(&base);
    let cfg_path = proxy.path("streamguard.toml");
    let addr = proxy.http_addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed, traffic) = steady_traffic(addr, 4, Duration::ZERO, stop.clone());
    let count = |m: &str, outcome: &str| {
        metric(
            m,
            &format!("streamguard_config_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    };
    for i in 0..50 {
        let valid = i % 2 == 0;
        // Each valid version differs (a new backup key), so it is a change.
        let text = if valid {
            base.replace(BACKUP, &format!("backup-{i}"))
        } else {
            format!("{base}\n[[site]]\nid = 7\n")
        };
        let outcome = if valid { "applied" } else { "rejected" };
        let before = count(&proxy.metrics().await, outcome);
        save(&cfg_path, &text);
        wait_for("the reload", async || {
            count(&proxy.metrics().await, outcome) > before
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in traffic {
        t.await.unwrap();
    }
    let m = proxy.metrics().await;
    assert_eq!(count(&m, "applied"), 25.0);
    assert_eq!(count(&m, "rejected"), 25.0);
    assert!(ok.load(Ordering::SeqCst) > 100, "too little traffic");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_site_leaves_no_series_behind() {
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let with_b = format!(
        "{base}{}",
        SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
    );
    let proxy = Proxy::start(&with_b);
    let b_url = format!(
        "/live/b.flv?{}",
        tencent_query("key-b", "/live/b.flv", now() + 600)
    );
    assert_eq!(
        get(proxy.http_addr(), "b.example.com", &b_url).await.0,
        StatusCode::OK
    );
    let _ = get(proxy.http_addr(), "b.example.com", "/live/b.flv").await;
    let m = proxy.metrics().await;
    assert!(m.contains("site=\"b\""), "{m}");
    assert_eq!(
        metric(
            &m,
            r#"streamguard_site_keys_by_source{site="b",source="config"}"#
        ),
        1.0
    );
    assert!(
        metric(
            &m,
            r#"streamguard_site_keys_updated_timestamp_seconds{site="b"}"#
        ) > 0.0
    );
    save(&proxy.path("streamguard.toml"), &base);
    wait_for("site b to go", async || {
        get(proxy.http_addr(), "b.example.com", &b_url).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let m = proxy.metrics().await;
    assert!(!m.contains("site=\"b\""), "{m}");
    assert!(m.contains("site=\"live\""));
}

/// A self-signed certificate for `name` valid until `year`-01-01.
fn cert_until(dir: &std::path::Path, name: &str, year: i32) {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    save(&dir.join("tls.crt"), &cert.pem());
    save(&dir.join("tls.key"), &key.serialize_pem());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_picked_up_and_its_expiry_exported() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    cert_until(&certs, "play.example.com", 2030);
    let cfg = site_config(&format!("http://{}", origin.addr), "", "").replace(
        "[server]\n",
        &format!(
            "[server]\ntls_listen = [\"127.0.0.1:0\"]\n[[server.certificate]]\ncert_file = \"{c}/tls.crt\"\nkey_file = \"{c}/tls.key\"\nserver_names = [\"play.example.com\"]\n",
            c = certs.display()
        ),
    );
    // The [[server.certificate]] table must not swallow the listen key.
    let cfg = cfg.replace("listen = [\"127.0.0.1:0\"]\n\n[admin]", "\n[admin]");
    let cfg = cfg.replacen("[server]\n", "[server]\nlisten = [\"127.0.0.1:0\"]\n", 1);
    let proxy = Proxy::start_in(dir, &cfg, &[]);
    let expiry = async || {
        metric(
            &proxy.metrics().await,
            r#"streamguard_tls_certificate_expiry_timestamp_seconds{certificate="play.example.com"}"#,
        )
    };
    assert_eq!(expiry().await, 1_893_456_000.0); // 2030-01-01
                                                 // certbot renews: new files in the certificate folder, config untouched.
    cert_until(&certs, "play.example.com", 2031);
    wait_for("the renewed certificate", async || {
        expiry().await == 1_924_992_000.0 // 2031-01-01
    })
    .await;
}

/// A config written in pieces (a tool appending line by line, 150 ms
/// apart) is read once, whole: no reload of a half-written file, none
/// rejected, and site b never served by a truncated config in between.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_written_in_pieces_is_read_once_whole() {
    use std::io::Write;
    let origin = Origin::start().await;
    let base = site_config(&format!("http://{}", origin.addr), "", "");
    let proxy = Proxy::start(&base);
    let reloads = |m: &str, outcome: &str| {
        metric(
            m,
            &format!("streamguard_config_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let m = proxy.metrics().await;
    let (applied0, rejected0) = (reloads(&m, "applied"), reloads(&m, "rejected"));
    let full = format!(
        "{base}{}",
        SITE_B.replace("ORIGIN", &format!("http://{}", origin.addr))
    );
    let path = proxy.path("streamguard.toml");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    for piece in full.as_bytes().chunks(full.len().div_ceil(8)) {
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    drop(file);
    let b_url = format!(
        "/live/b.flv?{}",
        tencent_query("key-b", "/live/b.flv", now() + 600)
    );
    wait_for("site b", async || {
        get(proxy.http_addr(), "b.example.com", &b_url).await.0 == StatusCode::OK
    })
    .await;
    let m = proxy.metrics().await;
    assert_eq!(
        reloads(&m, "rejected"),
        rejected0,
        "a half-written file was read"
    );
    assert_eq!(reloads(&m, "applied"), applied0 + 1.0, "{m}");
}
