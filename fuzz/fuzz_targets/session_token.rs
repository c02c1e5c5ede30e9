//! Fuzz target `session_token`: the HLS session tokens of
//! `auth::session`.
//!
//! Invariant: `verify` never panics on any token, path or address; a token
//! from `issue_for_path(A)` opens exactly `A` (an HLS resource) until its
//! expiry and never a path `B != A`; directory tokens open only HLS resources
//! under their directory, and only where the site opted in; any single-byte
//! change to a token (not only its case) denies. The checks live in
//! `fuzz/invariants.rs` (`session_token`).
#![no_main]

#[path = "../invariants.rs"]
#[allow(dead_code)]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::session_token(data));
