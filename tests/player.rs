//! The demo's player page in a real browser: headless Chromium loads the
//! page from its own origin and plays the signed demo HLS through the proxy
//! with hls.js (every request cross-origin, so CORS must hold), forces a
//! switch between the two variants, reads the deny reason of an expired URL
//! from JavaScript, and plays the FLV stream with mpegts.js. The page's self-test
//! (`?report=URL`) POSTs its findings to a listener the test opens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

/// Debian's `chromium`, or a skip (a failure when `CI` is set).
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium must be installed in CI (.ci/run installs it)"
        );
        eprintln!("skipping: chromium not installed (.ci/run installs it)");
    }
    found
}

/// Headless Chromium on one page, in a process group of its own so that
/// dropping it ends the browser and every helper process it started.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    log: PathBuf,
}

impl Browser {
    fn open(bin: &Path, url: &str) -> Browser {
        use std::os::unix::process::CommandExt as _;
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromium.log");
        let child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                &format!(
                    "--user-data-dir={}",
                    profile.path().join("profile").display()
                ),
                url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Browser {
            child,
            _profile: profile,
            log,
        }
    }

    /// The end of what the browser logged, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(3000);
        log.get(start..).unwrap_or_default().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A loopback listener taking the page's POSTed report.
async fn report_listener() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/report", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    serve_fake(listener, move |req| {
        let tx = tx.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_plays_hls_across_a_variant_switch_and_reads_the_deny_reason() {
    let Some(bin) = chromium() else { return };
    let args: Vec<String> = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let proxy = Proxy::spawn(tempfile::tempdir().unwrap(), &args);
    let page = proxy
        .stdout
        .iter()
        .skip_while(|l| !l.starts_with("Player page"))
        .nth(1)
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| panic!("no player page link in {:?}", proxy.stdout));
    // The page really is on another origin than the proxy.
    assert!(page.starts_with("http://127.0.0.1:"), "{page}");
    assert!(!page.contains(&proxy.http_addr().to_string()), "{page}");

    let (report_url, mut reports) = report_listener().await;
    let browser = Browser::open(&bin, &format!("{page}?report={report_url}"));
    let report = match tokio::time::timeout(Duration::from_secs(60), reports.recv()).await {
        Ok(Some(r)) => r,
        _ => panic!(
            "the page sent no report; chromium said:\n{}",
            browser.log_tail()
        ),
    };
    drop(browser);
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    eprintln!("the page reported: {r}");
    assert!(r.get("error").is_none(), "the page failed: {r:#}");

    // HLS played past 2 s...
    assert_eq!(r["hls_supported"], true, "{r:#}");
    assert_eq!(r["levels"], 2, "{r:#}");
    assert!(r["played_secs"].as_f64().unwrap() > 2.0, "{r:#}");
    // ...then a forced switch to the other variant, and playback went on there.
    let (first, target) = (&r["first_level"], &r["target_level"]);
    assert_ne!(first, target, "{r:#}");
    assert_eq!(&r["switched_level"], target, "{r:#}");
    assert_eq!(&r["level_after_switch"], target, "{r:#}");
    assert!(
        r["played_after_switch_secs"].as_f64().unwrap() > 1.0,
        "{r:#}"
    );

    // The expired URL failed, and the page read why: in hls.js's own request
    // and with fetch().
    assert_eq!(r["expired_hlsjs"]["status"], 403, "{r:#}");
    assert_eq!(r["expired_hlsjs"]["reason"], "expired", "{r:#}");
    assert_eq!(r["expired_fetch"]["status"], 403, "{r:#}");
    assert_eq!(r["expired_fetch"]["reason"], "expired", "{r:#}");

    // The FLV stream came through cross-origin.
    assert_eq!(r["flv_status"], 200, "{r:#}");
    assert_eq!(r["flv_magic"], "FLV", "{r:#}");
    // ...and mpegts.js played it.
    assert!(r["flv_played_secs"].as_f64().unwrap() > 1.0, "{r:#}");

    // Every request came from the allowed page origin: none refused.
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"streamguard_cors_refused_total{site="demo"}"#),
        0.0,
        "{m}"
    );
}
