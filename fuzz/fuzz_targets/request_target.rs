//! Fuzz target `request_target`: request-target and query parsing.
//!
//! Invariant: `path::validate_with`, `path::for_log`, `auth::query_param`,
//! `auth::strip_params`, `host::normalize_host`, `hls::Scope::target_path`
//! and `hls::remove_dot_segments` never panic; an accepted path has no dot
//! segment, no `//`, no `\`, no `;` unless allowed and no escape decoding to
//! `/`, `\`, `.` or NUL; `for_log` output never shows a run of 16+ hex digits
//! or a `=`; `target_path` results start with `/` and hold no `.`/`..`
//! segment. The checks live in `fuzz/invariants.rs` (`request_target`).
#![no_main]

#[path = "../invariants.rs"]
#[allow(dead_code)]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::request_target(data));
