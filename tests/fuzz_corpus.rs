#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
//! Replays every input kept in `fuzz/corpus/<target>/` through the same
//! invariant checks the fuzz targets run (`fuzz/invariants.rs`): the short
//! fuzz smoke run `cargo test` (and so CI) gets. The fuzzers themselves
//! (`fuzz/README.md`) grow these corpora.

#[path = "../fuzz/invariants.rs"]
mod invariants;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>/`, naming the file
/// that breaks an invariant.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            panic!("{}: {msg}", file.display());
        }
    }
}

#[test]
fn request_target_corpus_holds() {
    replay("request_target", invariants::request_target);
}

#[test]
fn verifiers_corpus_holds() {
    replay("verifiers", invariants::verifiers);
}

#[test]
fn session_token_corpus_holds() {
    replay("session_token", invariants::session_token);
}

#[test]
fn playlist_corpus_holds() {
    replay("playlist", invariants::playlist);
}

#[test]
fn every_fuzz_site_builds() {
    assert_eq!(invariants::sites().len(), 16);
}
