//! Configuration: TOML parsed in two stages into plain validated data.
//!
//! 1. `parse`: the text becomes a table, `${ENV}` is expanded in every
//!    string, and the tree is checked against [`RawConfig`] (which mirrors the
//!    file with `deny_unknown_fields`): every unknown key, wrong type or
//!    missing key is reported with its key path, never with its value.
//! 2. [`Config::validate`] resolves defaults (`DEFAULT_*`), secrets,
//!    addresses, origins, certificates and CA roots (loaded once, here) and
//!    cross-field rules, and reports *every* problem at once, each with its
//!    key path and what to do.
//!
//! One file per part of the file: `server` (`[server]`, `[admin]`), `site`
//! (`[[site]]`), `vendor` (`[[vendor]]`). Everything parses from `&str`, so
//! tests need no files.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::host::is_hostname;
use crate::problems::is_under;
pub use crate::problems::{usable_param_name, Ctx, Problem, MAX_SECRET_BYTES};

mod parse;
mod server;
mod site;
mod vendor;

pub use server::*;
pub use site::*;
pub use vendor::*;

/// The config file as written.
/// Not `Debug`: it holds secrets as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[[site]]`.
    #[serde(default)]
    pub site: Vec<RawSite>,
    /// `[[vendor]]`: accounts whose Describe APIs supply keys.
    #[serde(default)]
    pub vendor: Vec<RawVendor>,
    /// Where the last good synced keys are kept (mode 0600 files).
    pub state_dir: Option<PathBuf>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`; `STREAMGUARD_LOG_FORMAT` overrides it.
    pub format: Option<LogFormat>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json` (as `STREAMGUARD_LOG_FORMAT` is written).
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Shortest operator API token accepted.
pub const MIN_API_TOKEN_CHARS: usize = 16;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, certificates, limits.
    pub server: ServerConfig,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Bearer token of the operator API (`admin.api_token`); `None`: the API is off.
    pub admin_api_token: Option<crate::keys::Secret>,
    /// Sites, in file order.
    pub sites: Vec<SiteConfig>,
    /// Vendor accounts.
    pub vendors: Vec<VendorConfig>,
    /// State directory for synced keys.
    pub state_dir: Option<PathBuf>,
    /// Log line format (fixed at start).
    pub log_format: LogFormat,
    /// Unix time this config was validated (the age of its keys).
    pub loaded_at: u64,
    /// Valid settings that weaken what signatures protect (logged at load,
    /// printed by `check-config`).
    pub warnings: Vec<Problem>,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The text is not TOML.
    ///
    /// Why not toml's own message: it quotes the offending line, which may
    /// hold a key.
    #[error("{} is not valid TOML: line {line}, column {column}: {message}", Subject(.file.as_deref()))]
    Parse {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Unknown or mistyped keys, or validation problems; all are listed.
    /// Messages name keys, never the values configured.
    #[error("config has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// [`ConfigError::Invalid`] for a config read from `path`.
    #[error("config file {} has {} problem(s):\n{}", .path.display(), .problems.len(), ProblemList(.problems))]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// "config" or "config file PATH".
struct Subject<'a>(Option<&'a Path>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "config file {}", p.display()),
            None => f.write_str("config"),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file, resolving `${ENV}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, &|name| std::env::var(name).ok()).map_err(|e| match e {
            ConfigError::Invalid(problems) => ConfigError::InvalidFile {
                path: path.to_owned(),
                problems,
            },
            ConfigError::Parse {
                file: None,
                line,
                column,
                message,
            } => ConfigError::Parse {
                file: Some(path.to_owned()),
                line,
                column,
                message,
            },
            e => e,
        })
    }

    /// Parses and validates TOML text, reporting every structural and
    /// validation problem together (see the `parse` module). Relative file paths are
    /// resolved against `base_dir`; `${ENV}` references are looked up with
    /// `env`. No message quotes a configured value.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parsed = parse::parse(text, env)?;
        let mut problems = parsed.problems;
        let Some(raw) = parsed.raw else {
            return Err(ConfigError::Invalid(problems));
        };
        let stage2 = match Config::validate(&raw, base_dir, env) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => return Err(e),
        };
        let values = parse::scalars(text, env);
        let stage2: Vec<Problem> = stage2
            .into_iter()
            .filter(|p| !parsed.repaired.iter().any(|r| is_under(&p.path, r)))
            .filter(|p| !problems.contains(p))
            .map(|p| Problem {
                message: parse::redact(&p.message, &values),
                path: p.path,
            })
            .collect();
        problems.extend(stage2);
        Err(ConfigError::Invalid(problems))
    }

    /// Logs each of [`Config::warnings`] (they name settings, never values).
    pub fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!(setting = %w.path, "{}", w.message);
        }
    }

    /// Stage 2: turns a raw config into a validated one, reporting every problem.
    pub fn validate(
        raw: &RawConfig,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut ctx = Ctx::new(env);
        let server = validate_server(&raw.server, base_dir, &mut ctx);
        let admin_listen = parse_addr(
            &mut ctx,
            "admin.listen",
            raw.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
        );
        let admin_api_token = raw.admin.api_token.as_deref().and_then(|t| {
            let token = ctx.secret("admin.api_token", t)?;
            if token.expose().len() < MIN_API_TOKEN_CHARS {
                ctx.problem(
                    "admin.api_token",
                    format!("the API token must be at least {MIN_API_TOKEN_CHARS} characters (a random one: `openssl rand -hex 32`)"),
                );
                return None;
            }
            Some(token)
        });
        let mut seen_addrs: HashMap<SocketAddr, String> = HashMap::new();
        let mut note_addr = |ctx: &mut Ctx<'_>, addr: SocketAddr, path: String| {
            if addr.port() == 0 {
                return; // ephemeral ports never collide
            }
            if let Some(prev) = seen_addrs.insert(addr, path.clone()) {
                ctx.problem(
                    &path,
                    format!(
                        "the same address is also used by {prev}; give each listener its own address"
                    ),
                );
            }
        };
        // Checked on the raw lists so a clash is reported even when another
        // server problem made `server` None.
        let listen_raw = raw.server.plain_listen();
        for (kind, list) in [
            ("listen", &listen_raw),
            ("tls_listen", &raw.server.tls_listen),
        ] {
            for (i, a) in list.iter().enumerate() {
                if let Ok(a) = a.parse() {
                    note_addr(&mut ctx, a, format!("server.{kind}[{i}]"));
                }
            }
        }
        if let Some(a) = admin_listen {
            note_addr(&mut ctx, a, "admin.listen".to_owned());
        }

        if raw.site.is_empty() {
            ctx.problem("site", "no [[site]] is configured; add at least one");
        }
        let mut sites = Vec::new();
        // Which `[[site]]` each valid site came from (invalid ones are left out).
        let mut raw_index = Vec::new();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut domains: HashMap<String, usize> = HashMap::new();
        for (i, s) in raw.site.iter().enumerate() {
            let path = format!("site[{i}]");
            if let Some(prev) = ids.insert(s.id.as_str(), i) {
                ctx.problem(
                    &format!("{path}.id"),
                    format!("is already the id of site[{prev}]; ids must be unique"),
                );
            }
            if let Some(v) = &s.vendor {
                if !raw.vendor.iter().any(|a| &a.name == v) {
                    ctx.problem(
                        &format!("{path}.vendor"),
                        "no [[vendor]] has this name".to_owned(),
                    );
                }
            }
            for (j, d) in s.domains.iter().enumerate() {
                let d = d.to_ascii_lowercase();
                if let Some(prev) = domains.insert(d.clone(), i) {
                    if prev != i {
                        ctx.problem(
                            &format!("{path}.domains[{j}]"),
                            format!(
                                "is already a domain of site[{prev}]; a domain belongs to one site"
                            ),
                        );
                    } else {
                        ctx.problem(
                            &format!("{path}.domains[{j}]"),
                            "is listed twice".to_owned(),
                        );
                    }
                }
            }
            if let Some(site) = validate_site(s, &path, base_dir, &mut ctx) {
                sites.push(site);
                raw_index.push(i);
            }
        }

        let mut vendors = Vec::new();
        let mut names = HashSet::new();
        for (i, v) in raw.vendor.iter().enumerate() {
            let path = format!("vendor[{i}]");
            if !names.insert(v.name.as_str()) {
                ctx.problem(
                    &format!("{path}.name"),
                    "is already the name of another vendor".to_owned(),
                );
            }
            if let Some(vc) = validate_vendor(v, &path, &mut ctx) {
                vendors.push(vc);
            }
        }
        for (&i, s) in raw_index.iter().zip(&sites) {
            if let Some((v, _)) = &s.vendor {
                if let Some(vc) = vendors.iter().find(|vc| &vc.name == v) {
                    if raw.site[i].auth.is_some() && s.verifier.scheme() != vc.kind.scheme() {
                        ctx.problem(&format!("site[{i}].auth.scheme"), format!("the site's vendor supplies {} keys; use that scheme or drop [site.auth]", vc.kind.scheme()));
                    }
                }
            }
        }
        let warnings = ctx.take_warnings();
        match (server, admin_listen) {
            (Some(server), Some(admin_listen)) if ctx.problem_count() == 0 => Ok(Config {
                server,
                admin_listen,
                admin_api_token,
                sites,
                vendors,
                state_dir: raw.state_dir.as_ref().map(|d| resolve(base_dir, d)),
                log_format: raw.log.format.unwrap_or_default(),
                loaded_at: crate::time::unix_now(),
                warnings,
            }),
            _ => Err(ConfigError::Invalid(ctx.into_problems())),
        }
    }

    /// The site serving `host` (already lowercase, without port).
    pub fn site_for_host(&self, host: &str) -> Option<&SiteConfig> {
        self.sites
            .iter()
            .find(|s| s.domains.iter().any(|d| d == host))
    }
}

fn parse_addr(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.problem(
                path,
                "is not an IP:port address (e.g. 0.0.0.0:8080 or [::]:8443)".to_owned(),
            );
            None
        }
    }
}

fn secs(ctx: &mut Ctx<'_>, path: &str, value: Option<u64>, default: u64, max: u64) -> Duration {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        ctx.problem(path, format!("must be between 1 and {max} seconds"));
    }
    Duration::from_secs(v)
}

fn bounded(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> usize {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        ctx.problem(path, format!("must be between {min} and {max}"));
    }
    v
}

fn resolve(base_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base_dir.join(p)
    }
}

#[cfg(test)]
mod tests;
