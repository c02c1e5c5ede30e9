//! Fuzz target `verifiers`: every signing scheme (one site per scheme and
//! setting, built once through `Config::from_toml`).
//!
//! Invariant: `verify(sign(x))` allows up to the expiry and denies after it;
//! any single-byte change inside the auth values (signature, time, in-path
//! auth segments) to a different character (not only its case) denies; any
//! other change, and arbitrary path, query, cookie and header input, never
//! panics. The checks live in `fuzz/invariants.rs` (`verifiers`).
#![no_main]

#[path = "../invariants.rs"]
#[allow(dead_code)]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::verifiers(data));
