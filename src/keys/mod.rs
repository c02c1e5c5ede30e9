//! Keys: the secret type and the key sets the verifiers check signatures with.
//!
//! A [`KeySet`] holds every key that is valid for one scope right now, primary
//! first. Key sets live inside the routing snapshot (see `proxy::Snapshot`), so a
//! request sees one consistent set for its whole life and a key rotation is a
//! single snapshot swap.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use subtle::ConstantTimeEq;

/// A secret (signing key, API credential).
///
/// Why: secrets must never reach a log line or a metric label, so `Debug` and
/// `Display` print `***`, and equality is constant-time.
///
/// Clones share the value and its [`Secret::derived`] cache.
#[derive(Clone)]
pub struct Secret(Arc<Inner>);

struct Inner {
    value: Arc<str>,
    /// One value derived from `value` alone (see [`Secret::derived`]).
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(Arc::new(Inner {
            value: value.into(),
            derived: OnceLock::new(),
        }))
    }

    /// The secret's bytes, for feeding a hash. Never log them.
    pub fn expose(&self) -> &str {
        &self.0.value
    }

    /// A value computed from this secret alone by `derive` (a MAC's key
    /// schedule, a decoded key), computed on first use and kept with the
    /// secret for as long as any clone of it lives, so a request does not
    /// redo per-key work. `None` when the slot already holds a value of
    /// another type (a secret used two ways): the caller then derives it
    /// itself.
    ///
    /// Contract: `T` must be a type private to one caller, so that one type
    /// always means one derivation; two callers sharing a type could read
    /// each other's (different) derivation.
    pub fn derived<T: Any + Send + Sync>(&self, derive: impl FnOnce(&str) -> T) -> Option<&T> {
        self.0
            .derived
            .get_or_init(|| Box::new(derive(self.expose())))
            .downcast_ref::<T>()
    }

    /// A short public name for the key (`sha256:` and 16 hex digits of a
    /// domain-separated SHA-256), the same on every replica, for telling
    /// keys apart without showing them.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"streamguard key fingerprint\0");
        h.update(self.expose().as_bytes());
        let digest = h.finalize();
        format!("sha256:{}", hex::encode(&digest[..8]))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Secret {}

/// Every key currently valid for one scope, primary first.
///
/// A signature made with any key in the set is accepted (primary, backup, and
/// keys kept during a rotation). Signing (`streamguard sign`) uses the primary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Secret>,
    /// How many keys, from the first, each belong to one part of the
    /// verifier only (Wangsu: key *i* to rule group *i*); the rest are
    /// tried under every part.
    bound: usize,
}

impl KeySet {
    /// A key set from keys in priority order (primary first).
    pub fn new(keys: Vec<Secret>) -> Self {
        KeySet { keys, bound: 0 }
    }

    /// This set with its first `n` keys (at most all) bound each to one
    /// part of the verifier: key *i* to part *i*.
    pub fn bound_first(mut self, n: usize) -> Self {
        self.bound = n.min(self.keys.len());
        self
    }

    /// How many keys, from the first, are bound each to one part of the
    /// verifier (see [`KeySet::bound_first`]); 0 for most schemes.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// The key used for signing, if any.
    pub fn primary(&self) -> Option<&Secret> {
        self.keys.first()
    }

    /// All keys, primary first.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.keys.iter()
    }

    /// The key at `index` (0 is the primary).
    pub fn get(&self, index: usize) -> Option<&Secret> {
        self.keys.get(index)
    }

    /// Number of keys in the set.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is configured: every request is then denied.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_hide_the_value() {
        let s = Secret::new("topsecret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(
            format!("{:?}", KeySet::new(vec![s])),
            "KeySet { keys: [***], bound: 0 }"
        );
    }

    #[test]
    fn derived_values_are_computed_once_and_shared_by_clones() {
        struct Len(usize);
        struct Other;
        let s = Secret::new("abc");
        let copy = s.clone();
        let mut calls = 0;
        assert_eq!(
            s.derived(|v| {
                calls += 1;
                Len(v.len())
            })
            .map(|l| l.0),
            Some(3)
        );
        assert_eq!(
            copy.derived(|_| {
                calls += 1;
                Len(0)
            })
            .map(|l| l.0),
            Some(3)
        );
        assert_eq!(calls, 1);
        // The slot holds a `Len`: another type is the caller's to derive.
        assert!(s.derived(|_| Other).is_none());
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("a"), Secret::new("a"));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
    }
}
