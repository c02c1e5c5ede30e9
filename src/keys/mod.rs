//! Keys: the secret type and the key sets the verifiers check signatures with.
//!
//! A [`KeySet`] holds every key that is valid for one scope right now, primary
//! first. Key sets live inside the routing snapshot (see `proxy::Snapshot`), so a
//! request sees one consistent set for its whole life and a key rotation is a
//! single snapshot swap.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// A secret (signing key, API credential).
///
/// Why: secrets must never reach a log line or a metric label, so `Debug` and
/// `Display` print `***`, and equality is constant-time.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes, for feeding a hash. Never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short public name for the key (`sha256:` and 16 hex digits of a
    /// domain-separated SHA-256), the same on every replica, for telling
    /// keys apart without showing them.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"streamguard key fingerprint\0");
        h.update(self.0.as_bytes());
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
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
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
}

impl KeySet {
    /// A key set from keys in priority order (primary first).
    pub fn new(keys: Vec<Secret>) -> Self {
        KeySet { keys }
    }

    /// The key used for signing, if any.
    pub fn primary(&self) -> Option<&Secret> {
        self.keys.first()
    }

    /// All keys, primary first.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.keys.iter()
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
            "KeySet { keys: [***] }"
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("a"), Secret::new("a"));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
    }
}
