//! `[server]` and `[admin]`: listeners, TLS certificates, connection limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use super::*;

/// Default plain listener when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listener (metrics, health).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Seconds a client has to send a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Seconds a client has to complete a TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Largest request head (request line + headers) accepted, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Smallest value hyper accepts for the HTTP/1 read buffer.
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// Longest request URI (path + query) accepted, in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Most client connections served at once; further clients wait in the kernel backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Most client connections open at once from one address (IPv6: one /64,
/// what a subscriber is usually given); further connections from it are
/// closed as soon as accepted. 0 (the default, as nginx has no
/// `limit_conn` unless configured): no limit, since viewers behind one
/// carrier-grade NAT share an address. Peers in a site's
/// `trusted_proxies` (a CDN or load balancer in front) are exempt.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 0;
/// Seconds a client connection may sit with no request in flight.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Seconds a response write may make no progress before the connection is
/// closed (nginx's `send_timeout`): a client that stopped reading cannot
/// hold its buffers and origin connection for ever. A slow client that
/// keeps reading is never cut.
pub const DEFAULT_SEND_TIMEOUT_SECS: u64 = 60;
/// Failed verifications (bad signature, malformed token, wrong client,
/// outside ACL) a client address may cause per minute before its requests
/// are answered 429 until the budget refills; 0 turns throttling off.
pub const DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE: u32 = 300;
/// Seconds in-flight requests get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;

/// `[server]`: listeners, TLS certificates and limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Plain listeners (HTTP/1.1 and prior-knowledge h2c).
    pub listen: Option<Vec<String>>,
    /// TLS listeners (HTTP/1.1 and h2 via ALPN).
    #[serde(default)]
    pub tls_listen: Vec<String>,
    /// Certificates for the TLS listeners, chosen by SNI.
    #[serde(default)]
    pub certificate: Vec<RawCertificate>,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT_SECS`].
    pub header_read_timeout_secs: Option<u64>,
    /// See [`DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS`].
    pub tls_handshake_timeout_secs: Option<u64>,
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: Option<usize>,
    /// See [`DEFAULT_MAX_URI_BYTES`].
    pub max_uri_bytes: Option<usize>,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// See [`DEFAULT_MAX_CONNECTIONS_PER_IP`].
    pub max_connections_per_ip: Option<usize>,
    /// See [`DEFAULT_SHUTDOWN_GRACE_SECS`].
    pub shutdown_grace_secs: Option<u64>,
    /// See [`DEFAULT_IDLE_TIMEOUT_SECS`].
    pub idle_timeout_secs: Option<u64>,
    /// See [`DEFAULT_SEND_TIMEOUT_SECS`].
    pub send_timeout_secs: Option<u64>,
    /// See [`DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE`].
    pub max_auth_failures_per_minute: Option<u32>,
}

impl RawServer {
    /// The plain listeners: as written, or [`DEFAULT_LISTEN`] when neither
    /// `listen` nor `tls_listen` is given.
    pub(super) fn plain_listen(&self) -> Vec<String> {
        match &self.listen {
            Some(l) => l.clone(),
            None if self.tls_listen.is_empty() => vec![DEFAULT_LISTEN.to_owned()],
            None => Vec::new(),
        }
    }
}

/// `[[server.certificate]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// SNI names this certificate serves (exact, or `*.example.com`).
    pub server_names: Vec<String>,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Admin listener address (`/metrics`, `/healthz`).
    pub listen: Option<String>,
    /// Bearer token of the operator API (`/v1/`); the API is off without one.
    pub api_token: Option<String>,
}

/// Validated `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain listeners.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Loaded certificates; the first one also serves clients without a matching SNI.
    pub certificates: Vec<Certificate>,
    /// Connection limits and timeouts.
    pub limits: Limits,
}

/// A loaded certificate and the SNI names it serves (lowercase).
#[derive(Debug, Clone)]
pub struct Certificate {
    /// SNI names, exact or `*.suffix`.
    pub server_names: Vec<String>,
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`, unix seconds.
    pub not_after: Option<i64>,
    /// The certificate and key files (watched: a renewal reloads them).
    pub files: Vec<PathBuf>,
}

/// Limits applied to client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Time to complete a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Longest request URI.
    pub max_uri_bytes: usize,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Most concurrent connections from one address or IPv6 /64 (0: no limit).
    pub max_connections_per_ip: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Longest time a connection may have no request in flight.
    pub idle_timeout: Duration,
    /// Longest time a response write may make no progress (a client that
    /// stopped reading) before the connection is closed.
    pub send_timeout: Duration,
    /// Failed verifications per client address and minute before it is
    /// answered 429 (0: off).
    pub max_auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            tls_handshake_timeout: Duration::from_secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            send_timeout: Duration::from_secs(DEFAULT_SEND_TIMEOUT_SECS),
            max_auth_failures_per_minute: DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE,
        }
    }
}

pub(super) fn validate_server(
    raw: &RawServer,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<ServerConfig> {
    let before = ctx.problem_count();
    let listen_raw = raw.plain_listen();
    let listen: Vec<SocketAddr> = listen_raw
        .iter()
        .enumerate()
        .filter_map(|(i, a)| parse_addr(ctx, &format!("server.listen[{i}]"), a))
        .collect();
    let tls_listen: Vec<SocketAddr> = raw
        .tls_listen
        .iter()
        .enumerate()
        .filter_map(|(i, a)| parse_addr(ctx, &format!("server.tls_listen[{i}]"), a))
        .collect();
    if listen_raw.is_empty() && raw.tls_listen.is_empty() {
        ctx.problem(
            "server.listen",
            "no listener: give server.listen or server.tls_listen at least one address",
        );
    }
    if !raw.tls_listen.is_empty() && raw.certificate.is_empty() {
        ctx.problem(
            "server.certificate",
            "server.tls_listen needs at least one [[server.certificate]]",
        );
    }
    let mut certificates = Vec::new();
    for (i, c) in raw.certificate.iter().enumerate() {
        let path = format!("server.certificate[{i}]");
        if let Some(cert) = load_certificate(c, &path, base_dir, ctx) {
            certificates.push(cert);
        }
    }
    let limits = Limits {
        header_read_timeout: secs(
            ctx,
            "server.header_read_timeout_secs",
            raw.header_read_timeout_secs,
            DEFAULT_HEADER_READ_TIMEOUT_SECS,
            300,
        ),
        tls_handshake_timeout: secs(
            ctx,
            "server.tls_handshake_timeout_secs",
            raw.tls_handshake_timeout_secs,
            DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS,
            300,
        ),
        max_header_bytes: bounded(
            ctx,
            "server.max_header_bytes",
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            MIN_MAX_HEADER_BYTES,
            1 << 20,
        ),
        max_uri_bytes: bounded(
            ctx,
            "server.max_uri_bytes",
            raw.max_uri_bytes,
            DEFAULT_MAX_URI_BYTES,
            256,
            64 * 1024,
        ),
        max_connections: bounded(
            ctx,
            "server.max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1,
            1_000_000,
        ),
        max_connections_per_ip: bounded(
            ctx,
            "server.max_connections_per_ip",
            raw.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP,
            0,
            1_000_000,
        ),
        shutdown_grace: secs(
            ctx,
            "server.shutdown_grace_secs",
            raw.shutdown_grace_secs,
            DEFAULT_SHUTDOWN_GRACE_SECS,
            3600,
        ),
        idle_timeout: secs(
            ctx,
            "server.idle_timeout_secs",
            raw.idle_timeout_secs,
            DEFAULT_IDLE_TIMEOUT_SECS,
            86_400,
        ),
        send_timeout: secs(
            ctx,
            "server.send_timeout_secs",
            raw.send_timeout_secs,
            DEFAULT_SEND_TIMEOUT_SECS,
            86_400,
        ),
        max_auth_failures_per_minute: raw
            .max_auth_failures_per_minute
            .unwrap_or(DEFAULT_MAX_AUTH_FAILURES_PER_MINUTE),
    };
    if ctx.problem_count() > before {
        return None;
    }
    Some(ServerConfig {
        listen,
        tls_listen,
        certificates,
        limits,
    })
}

fn load_certificate(
    raw: &RawCertificate,
    path: &str,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<Certificate> {
    let mut names = Vec::new();
    if raw.server_names.is_empty() {
        ctx.problem(
            &format!("{path}.server_names"),
            "list the SNI names this certificate serves",
        );
    }
    for (i, n) in raw.server_names.iter().enumerate() {
        let n = n.to_ascii_lowercase();
        let bare = n.strip_prefix("*.").unwrap_or(&n);
        if !is_hostname(bare) {
            ctx.problem(
                &format!("{path}.server_names[{i}]"),
                "is not a host name or *.suffix".to_owned(),
            );
        }
        names.push(n);
    }
    let cert_file = resolve(base_dir, &raw.cert_file);
    let key_file = resolve(base_dir, &raw.key_file);
    let chain: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_file_iter(&cert_file).and_then(|it| it.collect());
    let chain = match chain {
        Ok(c) if !c.is_empty() => Some(c),
        Ok(_) => {
            ctx.problem(
                &format!("{path}.cert_file"),
                "holds no PEM certificate".to_owned(),
            );
            None
        }
        Err(e) => {
            ctx.problem(
                &format!("{path}.cert_file"),
                format!("cannot read PEM certificates from the file: {e}"),
            );
            None
        }
    };
    let key = match PrivateKeyDer::from_pem_file(&key_file) {
        Ok(k) => match rustls::crypto::ring::sign::any_supported_type(&k) {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.problem(
                    &format!("{path}.key_file"),
                    format!("unsupported private key in the file: {e}"),
                );
                None
            }
        },
        Err(e) => {
            ctx.problem(
                &format!("{path}.key_file"),
                format!("cannot read a PEM private key from the file: {e}"),
            );
            None
        }
    };
    let chain = chain?;
    let not_after = chain.first().and_then(|leaf| {
        x509_parser::parse_x509_certificate(leaf.as_ref())
            .ok()
            .map(|(_, c)| c.validity().not_after.timestamp())
    });
    let certified = CertifiedKey::new(chain, key?);
    if let Err(e) = certified.keys_match() {
        ctx.problem(path, format!("the key does not match the certificate: {e}"));
        return None;
    }
    Some(Certificate {
        not_after,
        files: vec![cert_file, key_file],
        server_names: names,
        key: Arc::new(certified),
    })
}
