//! TLS for client listeners: certificates chosen by SNI from the current
//! snapshot, so a reload that changes certificates needs no new listener.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::Snapshot;
use crate::config::Certificate;

/// Certificates by SNI name: exact names, `*.suffix` wildcards, and a default
/// (the first configured certificate) for clients without a matching SNI.
#[derive(Default, Clone)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertTable")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CertTable {
    /// Builds the table from the configured certificates (first one wins on duplicates).
    pub fn new(certs: &[Certificate]) -> Self {
        let mut t = CertTable::default();
        for c in certs {
            if t.default.is_none() {
                t.default = Some(c.key.clone());
            }
            for name in &c.server_names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => t.wildcard.entry(suffix.to_owned()),
                    None => t.exact.entry(name.clone()),
                };
                map.or_insert_with(|| c.key.clone());
            }
        }
        t
    }

    /// The certificate for an SNI name (`None` name: the default).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.exact.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(c) = self.wildcard.get(parent) {
                    return Some(c.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// Resolves certificates from whatever snapshot is current at handshake time.
pub struct SnapshotResolver(pub Arc<ArcSwap<Snapshot>>);

impl fmt::Debug for SnapshotResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotResolver")
    }
}

impl ResolvesServerCert for SnapshotResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().certs.lookup(hello.server_name())
    }
}

/// The rustls server config for TLS listeners: ALPN `h2` then `http/1.1`.
pub fn server_config(snapshot: Arc<ArcSwap<Snapshot>>) -> Result<ServerConfig, rustls::Error> {
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SnapshotResolver(snapshot)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
