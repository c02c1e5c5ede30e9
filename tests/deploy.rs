//! The compose stack's Prometheus config, alert rules and Grafana dashboard
//! are valid (`promtool`), and every metric they query exists in the
//! `/metrics` of a running instance.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const COMPOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose");

fn promtool() -> bool {
    let present = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing (apt-get install prometheus)"
    );
    eprintln!("skipped: promtool is not installed");
    false
}

fn promtool_ok(args: &[&str], stdin: Option<&str>) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(COMPOSE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `streamguard_*` / `process_*` metric name an expression text uses,
/// histogram series mapped to their family.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("streamguard_") || rest.starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            let mut name = rest[..len].to_owned();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    name = base.to_owned();
                }
            }
            if !names.contains(&name) {
                names.push(name);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn prometheus_config_and_alert_rules_are_valid() {
    if !promtool() {
        return;
    }
    promtool_ok(&["check", "config", "prometheus.yml"], None);
    promtool_ok(&["check", "rules", "alerts.yml"], None);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("tencent-main")).unwrap();
    std::fs::write(
        state.join("tencent-main").join("vod.example.com.json"),
        r#"{"Response": {"PlayAuthKeyInfo": {"DomainName": "vod.example.com", "Enable": 1, "AuthKey": "k", "AuthDelta": 0, "AuthBackKey": ""}, "RequestId": "r"}}"#,
    )
    .unwrap();
    let cfg = format!(
        r#"{base}
state_dir = "{state}"
[[vendor]]
name = "tencent-main"
kind = "tencent"
access_key = "id"
secret_key = "secret"
endpoint = "http://127.0.0.1:9/"
[[site]]
id = "vod"
domains = ["vod.example.com"]
origin = "http://{o}"
vendor = "tencent-main"
"#,
        base = site_config(&format!("http://{}", origin.addr), "", ""),
        state = state.display(),
        o = origin.addr
    );
    // Top-level keys must precede the tables: move state_dir to the top.
    let cfg = format!(
        "state_dir = \"{}\"\n{}",
        state.display(),
        cfg.replace(&format!("state_dir = \"{}\"\n", state.display()), "")
    );
    // A TLS listener, so certificate expiry is exported too.
    let (crt, key, _) = write_cert(dir.path(), "tls", &["play.example.com"]);
    let cfg = cfg.replacen(
        "listen = [\"127.0.0.1:0\"]\n",
        &format!(
            "listen = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n[[server.certificate]]\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_names = [\"play.example.com\"]\n",
            crt.display(),
            key.display()
        ),
        1,
    );
    let proxy = Proxy::start_in(dir, &cfg, &[]);
    // A request of each kind.
    let q = tencent_query(KEY, "/live/a.flv", now() + 600);
    let _ = get(
        proxy.http_addr(),
        "play.example.com",
        &format!("/live/a.flv?{q}"),
    )
    .await;
    let _ = get(proxy.http_addr(), "play.example.com", "/live/a.flv").await;
    let metrics = proxy.metrics().await;

    let dashboard =
        std::fs::read_to_string(Path::new(COMPOSE).join("grafana/dashboards/streamguard.json"))
            .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = parsed["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    let rules = std::fs::read_to_string(Path::new(COMPOSE).join("alerts.yml")).unwrap();
    let mut wanted = metric_names(&exprs.join("\n"));
    for n in metric_names(&rules) {
        if !wanted.contains(&n) {
            wanted.push(n);
        }
    }
    assert!(wanted.len() >= 12, "{wanted:?}");
    for name in &wanted {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} is queried but not exported:\n{metrics}"
        );
    }
    if promtool() {
        promtool_ok(&["check", "metrics"], Some(&metrics));
    }
}

const KUBERNETES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/kubernetes/streamguard.yaml"
);

/// The number after `key:` / `key =` on its first line in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix(key)?;
            rest.trim_start_matches([':', '=', ' ']).trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no {key} in the manifest"))
}

#[test]
fn kubernetes_manifests_pass_the_schema_and_their_config_validates() {
    let manifest = std::fs::read_to_string(KUBERNETES).unwrap();
    let has_validator = Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_validator {
        let out = Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict", KUBERNETES])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate is missing (pip install kubernetes-validate)"
        );
        eprintln!("skipped the schema check: kubernetes-validate is not installed");
    }
    // The ConfigMap's config is valid with the Secret's variables set.
    let toml: String = manifest
        .split("streamguard.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamguard.toml");
    std::fs::write(&file, &toml).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .envs([
            ("PLAY_KEY", "k1"),
            ("PLAY_BACKUP_KEY", "k2"),
            ("SESSION_SECRET", "session-secret-0123456789abcdef"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pod outlives the drain: grace > shutdown_grace_secs + preStop.
    let grace = number_after(&manifest, "terminationGracePeriodSeconds");
    let drain = number_after(&toml, "shutdown_grace_secs");
    assert!(
        grace > drain + 5,
        "terminationGracePeriodSeconds {grace} vs drain {drain} + 5"
    );
}
