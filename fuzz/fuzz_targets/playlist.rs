//! Fuzz target `playlist`: the HLS playlist rewriter `hls::rewrite`.
//!
//! Invariant: never panics; a rewritten playlist keeps every tag and line:
//! same number of lines, every line that is not a URI line or a URI-bearing
//! tag byte-identical, every rewritten line its original with exactly its
//! params inserted (a URI line still starts with its URI). The checks live in
//! `fuzz/invariants.rs` (`playlist`).
#![no_main]

#[path = "../invariants.rs"]
#[allow(dead_code)]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::playlist(data));
