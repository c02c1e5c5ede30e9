//! The container image builds from exactly what its Dockerfile copies: the
//! build stage's `COPY` lines are replayed into an empty folder and the crate
//! is built there, so a new `include_bytes!` of an uncopied file fails here
//! rather than in an operator's `docker build`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The sources of the build stage's `COPY` lines (before the second `FROM`).
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    let mut froms = 0;
    let mut out = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            froms += 1;
            continue;
        }
        if froms != 1 {
            continue;
        }
        if let Some(rest) = line.strip_prefix("COPY ") {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            if let Some((_, sources)) = words.split_last() {
                out.extend(sources.iter().map(|s| (*s).to_owned()));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn the_crate_builds_from_the_dockerfiles_copy_set() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let copies = build_stage_copies(&dockerfile);
    for needed in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(
            copies.iter().any(|c| c == needed),
            "{needed} not copied: {copies:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for c in &copies {
        copy_tree(&Path::new(ROOT).join(c), &dir.path().join(c));
    }
    // Its own target folder (the test's cargo holds the main one), kept
    // between runs so only the crate itself is rebuilt.
    let target: PathBuf = Path::new(ROOT).join("target").join("dockerfile-copy-set");
    let out = Command::new(env!("CARGO"))
        .args(["check", "--locked", "--offline", "--bin", "streamguard"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Dockerfile's copy set does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_runs_as_a_non_root_user_with_a_health_check() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(runtime.contains("\nUSER streamguard"), "{runtime}");
    assert!(runtime.contains("HEALTHCHECK"), "{runtime}");
    assert!(runtime.contains("\"healthcheck\""), "{runtime}");
    assert!(runtime.contains("/etc/streamguard/streamguard.toml"));
    assert!(runtime.contains("chown streamguard:streamguard /var/lib/streamguard"));
    assert!(runtime.contains("STREAMGUARD_ADMIN_LISTEN=0.0.0.0:9090"));
    assert!(!runtime.contains("curl"), "no curl in the image");
}
