//! Key rotation at the vendor, in three steps that never let a verifier see
//! a URL signed with a key it does not hold yet:
//!
//! 1. **stage**: a new strong key is written to the vendor as an accepted
//!    but not signing key (Tencent `AuthBackKey`, appended to Volcengine's
//!    `AuthDetailList`, a new Wangsu rule group), and a Describe confirms the
//!    vendor serves it.
//! 2. **promote**: the new key becomes the signing key (Tencent `AuthKey`,
//!    first in Volcengine's list, the first Wangsu group), no earlier than
//!    [`propagation`] after staging: one full sync interval with its jitter
//!    plus a request timeout, so every replica, syncing on its own schedule,
//!    holds the key before any URL is signed with it.
//! 3. **retire**: the old key is removed, no earlier than [`propagation`]
//!    (replicas that still signed with it until their next sync) plus the
//!    longest validity of a URL signed with it (the account's
//!    `max_url_lifetime_secs`, or the vendor's own window if longer) after
//!    promotion.
//!
//! Each step first reads the vendor's keys (Describe): a step already
//! applied (a crash between the write and the record) is recorded, not
//! written again; a step whose starting point is not what the rotation left
//! (the keys were changed in the console) is refused, so no step ever removes
//! the last working key. Every write is confirmed by a Describe, whose answer
//! is saved to the state directory and published, so `sign` and the running
//! proxy use the keys the vendor serves as soon as a step is confirmed.
//!
//! The rotation is a record per (vendor account, domain) in the state
//! directory, `{state_dir}/{account}/rotations/{domain}.json` (mode 0600,
//! written atomically; it holds both keys until the rotation ends). A
//! rotation survives a restart: [`RotationService`] in the running server
//! (or `streamguard keys rotate --wait`) advances due steps. Steps hold an
//! exclusive lock on `{domain}.lock` next to the record, so two processes
//! never run one step at once. Every step is logged (never a key) and
//! counted in [`crate::metrics::ROTATION_STEPS_TOTAL`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::state::{write_private, StateDir};
use super::{
    exchange, https_client, Answer, HttpsClient, KeyChange, KeyWriter, Sink, SyncError, SyncedAuth,
    VendorApi, WriteError, INITIAL_BACKOFF,
};
use crate::auth::Common;
use crate::config::{Config, VendorConfig};
use crate::keys::Secret;
use crate::metrics::Metrics;

/// How often the running server looks for due steps and new rotations.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Characters in a generated key (62 possible each: about 190 bits).
pub const KEY_LENGTH: usize = 32;
/// The record format version.
const RECORD_VERSION: u32 = 1;

/// Where a rotation stands: the last step done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Recorded; the new key is not confirmed at the vendor yet.
    Pending,
    /// The new key is accepted, not signing.
    Staged,
    /// The new key signs; the old one is still accepted.
    Promoted,
    /// The old key is gone: the rotation is over.
    Retired,
}

impl Phase {
    /// The step that comes next, if any.
    pub fn next_step(self) -> Option<&'static str> {
        match self {
            Phase::Pending => Some("stage"),
            Phase::Staged => Some("promote"),
            Phase::Promoted => Some("retire"),
            Phase::Retired => None,
        }
    }
}

/// The record on disk. Not `Debug`: it holds keys.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    vendor: String,
    domain: String,
    phase: Phase,
    /// The signing key when the rotation started; dropped once retired.
    old_key: Option<String>,
    /// The key rolled in; dropped once retired (the vendor holds it).
    new_key: Option<String>,
    replace_backup: bool,
    started_at: u64,
    staged_at: Option<u64>,
    promoted_at: Option<u64>,
    retired_at: Option<u64>,
    /// The earliest unix time the next step may run.
    next_step_at: u64,
    /// Failed or refused attempts of the current step.
    failures: u32,
    /// When the current step may be tried again after a failure.
    retry_at: Option<u64>,
    last_error: Option<String>,
}

/// A rotation as reported by the CLI and the operator API: no key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationStatus {
    /// Vendor account name.
    pub vendor: String,
    /// The vendor domain.
    pub domain: String,
    /// The last step done.
    pub phase: Phase,
    /// The step that comes next (`stage`, `promote`, `retire`), if any.
    pub next_step: Option<&'static str>,
    /// The earliest unix time the next step runs (later after a failure).
    pub next_step_at: Option<u64>,
    /// Unix time the rotation was started.
    pub started_at: u64,
    /// Unix time the new key was confirmed at the vendor.
    pub staged_at: Option<u64>,
    /// Unix time the new key became the signing key.
    pub promoted_at: Option<u64>,
    /// Unix time the old key was removed.
    pub retired_at: Option<u64>,
    /// Failed or refused attempts of the next step so far.
    pub failures: u32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl Record {
    fn status(&self) -> RotationStatus {
        let next_step = self.phase.next_step();
        RotationStatus {
            vendor: self.vendor.clone(),
            domain: self.domain.clone(),
            phase: self.phase,
            next_step,
            next_step_at: next_step.map(|_| self.due_at()),
            started_at: self.started_at,
            staged_at: self.staged_at,
            promoted_at: self.promoted_at,
            retired_at: self.retired_at,
            failures: self.failures,
            last_error: self.last_error.clone(),
        }
    }

    fn due_at(&self) -> u64 {
        self.next_step_at.max(self.retry_at.unwrap_or(0))
    }

    fn keys(&self) -> Result<(Secret, Secret), RotateError> {
        match (&self.old_key, &self.new_key) {
            (Some(o), Some(n)) => Ok((Secret::new(o.as_str()), Secret::new(n.as_str()))),
            _ => Err(RotateError::Corrupt("the record holds no keys".into())),
        }
    }
}

/// How a rotation starts.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct StartOptions {
    /// Tencent only: stage even when `AuthBackKey` holds a key other than
    /// the signing key (that key stops working at once).
    #[serde(default)]
    pub replace_backup: bool,
}

/// Why a rotation request failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No `[[vendor]]` has that name.
    #[error("no vendor account is named `{0}`")]
    UnknownVendor(String),
    /// No site takes keys for that domain from that account.
    #[error("no site takes keys from vendor account `{vendor}` for domain `{domain}`")]
    UnknownDomain {
        /// Account.
        vendor: String,
        /// Domain.
        domain: String,
    },
    /// The vendor kind has no write API streamguard drives.
    #[error(
        "vendor kind `{0}` cannot be rotated by streamguard; rotate its keys in the vendor console"
    )]
    Unsupported(&'static str),
    /// Rotation needs somewhere to keep the new key.
    #[error("key rotation needs `state_dir` in the config: the new key must survive a restart")]
    NoStateDir,
    /// A rotation of the domain is under way.
    #[error("a rotation of `{domain}` at `{vendor}` is under way (next step {next})")]
    InProgress {
        /// Account.
        vendor: String,
        /// Domain.
        domain: String,
        /// Its next step.
        next: &'static str,
    },
    /// No unfinished rotation of the domain.
    #[error("no rotation of `{domain}` at `{vendor}` is under way")]
    NotFound {
        /// Account.
        vendor: String,
        /// Domain.
        domain: String,
    },
    /// Another process is running a step of this rotation now.
    #[error("another process is running a step of this rotation; try again")]
    Busy,
    /// The step would leave the vendor without a working key, or drop a key
    /// that may still be in use.
    #[error("{step} refused: {reason}")]
    Refused {
        /// The step.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// The vendor call failed or did not show the change.
    #[error("{step} failed: {source}")]
    Vendor {
        /// The step.
        step: &'static str,
        /// The vendor error.
        source: SyncError,
    },
    /// The record could not be read or written.
    #[error("rotation record {path}: {source}")]
    State {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The record does not read as a rotation record.
    #[error("rotation record unreadable: {0}")]
    Corrupt(String),
}

impl RotateError {
    /// A stable label for the kind of failure (API answers, logs).
    pub fn kind(&self) -> &'static str {
        match self {
            RotateError::UnknownVendor(_) | RotateError::UnknownDomain { .. } => "not_found",
            RotateError::NotFound { .. } => "no_rotation",
            RotateError::Unsupported(_) => "unsupported",
            RotateError::NoStateDir => "no_state_dir",
            RotateError::InProgress { .. } | RotateError::Busy => "conflict",
            RotateError::Refused { .. } => "refused",
            RotateError::Vendor { .. } => "vendor",
            RotateError::State { .. } | RotateError::Corrupt(_) => "state",
        }
    }
}

/// The time a key needs to reach every replica: one sync interval with its
/// +10% jitter, plus one whole sync round (a round fetches the account's
/// `domains` one after another, each taking up to a request timeout and
/// paced at the vendor's `rate` per second; the interval starts only after
/// the round), plus one more request timeout (the fetch that brings the
/// key), rounded up to whole seconds.
///
/// Why the round: a replica whose previous round read this domain just
/// before the change reads it again only after the rest of that round and
/// the interval.
pub fn propagation(account: &VendorConfig, domains: usize, rate: u32) -> u64 {
    let timeout = account.request_timeout.as_secs_f64();
    let per_fetch = timeout + 1.0 / f64::from(rate.max(1));
    let round = per_fetch * domains.max(1) as f64;
    let total = account.sync_interval.as_secs_f64() * 1.1 + round + timeout;
    // Whole seconds, rounded up (and a hair of float error not counted).
    (total - 1e-9).ceil().max(0.0) as u64
}

/// The wait between promote and retire: [`propagation`] (replicas sign
/// with the old key until their next sync) plus the longest validity of a
/// URL signed with it, the account's `max_url_lifetime_secs` or the vendor's
/// own window (`vendor_window`) if longer.
pub fn retire_delay(propagation: u64, account: &VendorConfig, vendor_window: u64) -> u64 {
    propagation + account.max_url_lifetime.as_secs().max(vendor_window)
}

impl Rotator {
    /// [`propagation`] for this account's domains (as the running server
    /// syncs them now, a reload included; else as the config named them)
    /// and rate limit.
    fn propagation(&self) -> u64 {
        let domains = self
            .sink
            .as_ref()
            .map_or(self.domains, |s| s.domains(&self.account.name).len());
        propagation(&self.account, domains, self.api.max_requests_per_sec())
    }
}

/// A strong random key of [`KEY_LENGTH`] letters and digits (every vendor
/// accepts those; Volcengine accepts nothing else).
pub fn generate_key() -> Result<Secret, RotateError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(KEY_LENGTH);
    while out.len() < KEY_LENGTH {
        let mut buf = [0u8; 64];
        getrandom::getrandom(&mut buf).map_err(|e| RotateError::State {
            path: "(random source)".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // Why rejection: 248 = 4 × 62, so every character is equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() < KEY_LENGTH {
                out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
            }
        }
    }
    Ok(Secret::new(out))
}

/// What one step attempt came to, before it is recorded.
enum StepError {
    Refused(String),
    Failed(SyncError),
}

impl StepError {
    /// See [`SyncError::without`].
    fn without(self, secrets: &[&Secret]) -> StepError {
        match self {
            StepError::Failed(e) => StepError::Failed(e.without(secrets)),
            refused => refused,
        }
    }
}

impl From<SyncError> for StepError {
    fn from(e: SyncError) -> Self {
        StepError::Failed(e)
    }
}

impl From<WriteError> for StepError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Refused(r) => StepError::Refused(r),
            WriteError::Sync(e) => StepError::Failed(e),
        }
    }
}

/// An exclusive lock on a rotation, held while a step runs; released when
/// dropped (or when the process dies).
struct StepLock {
    _file: std::fs::File,
}

fn lock(path: &Path) -> Result<StepLock, RotateError> {
    let io = |source| RotateError::State {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(StepLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(RotateError::Busy),
        Err(e) => Err(io(e.into())),
    }
}

/// The rotation driver of one vendor account.
pub struct Rotator {
    account: VendorConfig,
    /// How many domains the account syncs (one sync round fetches each).
    domains: usize,
    api: Arc<dyn VendorApi>,
    writer: Arc<dyn KeyWriter>,
    state: StateDir,
    metrics: Metrics,
    sink: Option<Arc<dyn Sink>>,
    client: HttpsClient,
}

impl Rotator {
    /// The driver for `account`, keeping records in `state_dir` and handing
    /// confirmed vendor answers to `sink` (the running server's publisher;
    /// none in the CLI, which saves them to the state directory only).
    pub fn new(
        account: &VendorConfig,
        config: &Config,
        metrics: &Metrics,
        sink: Option<Arc<dyn Sink>>,
    ) -> Result<Rotator, RotateError> {
        let state_dir = config.state_dir.clone();
        let domains = config
            .sites
            .iter()
            .filter_map(|s| s.vendor.as_ref())
            .filter(|(name, _)| *name == account.name)
            .map(|(_, domain)| domain)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let writer =
            super::writer_for(account).ok_or(RotateError::Unsupported(account.kind.scheme()))?;
        if state_dir.is_none() {
            return Err(RotateError::NoStateDir);
        }
        let client = https_client().map_err(|source| RotateError::Vendor {
            step: "stage",
            source,
        })?;
        for step in ["stage", "promote", "retire"] {
            for result in ["ok", "failed", "refused"] {
                metrics
                    .rotation_steps
                    .with_label_values(&[&account.name, step, result]);
            }
        }
        Ok(Rotator {
            api: super::api_for(account),
            writer,
            account: account.clone(),
            domains,
            state: StateDir::new(state_dir),
            metrics: metrics.clone(),
            sink,
            client,
        })
    }

    /// The vendor account name.
    pub fn vendor(&self) -> &str {
        &self.account.name
    }

    fn record_path(&self, domain: &str) -> Result<PathBuf, RotateError> {
        self.state
            .rotation_path(&self.account.name, domain)
            .ok_or(RotateError::NoStateDir)
    }

    fn load(&self, domain: &str) -> Result<Option<Record>, RotateError> {
        let path = self.record_path(domain)?;
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RotateError::State {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        // Why not the serde message: it may quote a key.
        let record: Record = serde_json::from_slice(&body).map_err(|e| {
            RotateError::Corrupt(format!(
                "{}: {:?} error at line {} column {}",
                path.display(),
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if record.version != RECORD_VERSION {
            return Err(RotateError::Corrupt(format!(
                "{}: version {} is not {RECORD_VERSION}",
                path.display(),
                record.version
            )));
        }
        Ok(Some(record))
    }

    fn save(&self, record: &Record) -> Result<(), RotateError> {
        let path = self.record_path(&record.domain)?;
        let body =
            serde_json::to_vec_pretty(record).map_err(|e| RotateError::Corrupt(e.to_string()))?;
        write_private(&path, &body).map_err(|source| RotateError::State {
            path: path.display().to_string(),
            source,
        })
    }

    fn lock(&self, domain: &str) -> Result<StepLock, RotateError> {
        lock(&self.record_path(domain)?.with_extension("lock"))
    }

    /// The rotation of `domain`, finished or not, if there is one.
    pub fn status(&self, domain: &str) -> Result<Option<RotationStatus>, RotateError> {
        Ok(self.load(domain)?.map(|r| r.status()))
    }

    /// Every rotation record of the account, finished or not.
    pub fn list(&self) -> Vec<RotationStatus> {
        let Some(dir) = self.state.rotations(&self.account.name) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(r) => out.push(r.status()),
                None => {
                    warn!(file = %path.display(), "ignoring an unreadable rotation record");
                }
            }
        }
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// Starts a rotation of `domain`: records it (with a new key) and runs
    /// the stage step at once. Refused while another rotation of the domain
    /// is unfinished. When the stage step fails the rotation stays recorded
    /// (pending) and is retried like any other step.
    pub async fn start(
        &self,
        domain: &str,
        opts: StartOptions,
        now: u64,
    ) -> Result<RotationStatus, RotateError> {
        let _lock = self.lock(domain)?;
        if let Some(mut r) = self.load(domain)? {
            // A stage not yet done (the vendor refused it: Tencent holds two
            // keys already) may be asked again with the backup replaced:
            // the same rotation and new key, so nothing the vendor may hold
            // is lost.
            if r.phase == Phase::Pending && opts.replace_backup && !r.replace_backup {
                r.replace_backup = true;
                r.next_step_at = now;
                r.retry_at = None;
                self.save(&r)?;
                info!(
                    vendor = %self.account.name,
                    domain, "key rotation asked again with the backup key replaced"
                );
                self.run_step(&mut r, now).await?;
                return Ok(r.status());
            }
            if let Some(next) = r.phase.next_step() {
                return Err(RotateError::InProgress {
                    vendor: self.account.name.clone(),
                    domain: domain.to_owned(),
                    next,
                });
            }
        }
        let (_, keys) = self.describe(domain).await.map_err(|e| {
            step_error(
                "stage",
                e.without(&[&self.account.access_key, &self.account.secret_key]),
            )
        })?;
        let old = keys.first().cloned().ok_or_else(|| RotateError::Refused {
            step: "stage",
            reason: "the vendor lists no key".into(),
        })?;
        let new = generate_key()?;
        let mut record = Record {
            version: RECORD_VERSION,
            vendor: self.account.name.clone(),
            domain: domain.to_owned(),
            phase: Phase::Pending,
            old_key: Some(old.expose().to_owned()),
            new_key: Some(new.expose().to_owned()),
            replace_backup: opts.replace_backup,
            started_at: now,
            staged_at: None,
            promoted_at: None,
            retired_at: None,
            next_step_at: now,
            failures: 0,
            retry_at: None,
            last_error: None,
        };
        // Why first: once the vendor may hold the new key, losing it to a
        // crash would leave a key nobody can retire or sign with.
        self.save(&record)?;
        info!(
            vendor = %self.account.name,
            domain, "key rotation started"
        );
        self.run_step(&mut record, now).await?;
        Ok(record.status())
    }

    /// Runs the next step of `domain`'s rotation if it is due at `now`;
    /// returns where the rotation stands. A failed or refused step is
    /// recorded (and retried later), and returned as the error.
    pub async fn advance(&self, domain: &str, now: u64) -> Result<RotationStatus, RotateError> {
        let _lock = self.lock(domain)?;
        let mut record = self.load(domain)?.ok_or_else(|| RotateError::NotFound {
            vendor: self.account.name.clone(),
            domain: domain.to_owned(),
        })?;
        if record.phase.next_step().is_some() && record.due_at() <= now {
            self.run_step(&mut record, now).await?;
        }
        Ok(record.status())
    }

    /// Advances `domain`'s rotation until it is over, sleeping until each
    /// step is due (`streamguard keys rotate --wait`); failed steps are
    /// retried with backoff, refusals end it.
    pub async fn run_to_end(&self, domain: &str) -> Result<RotationStatus, RotateError> {
        loop {
            let now = crate::time::unix_now();
            let status = match self.advance(domain, now).await {
                Ok(s) => s,
                Err(e @ (RotateError::Refused { .. } | RotateError::NotFound { .. })) => {
                    return Err(e)
                }
                Err(RotateError::Busy) => match self.status(domain)? {
                    Some(s) => s,
                    None => return Err(RotateError::Busy),
                },
                Err(error) => {
                    warn!(vendor = %self.account.name, domain, %error, "rotation step failed; retrying");
                    match self.status(domain)? {
                        Some(s) => s,
                        None => return Err(error),
                    }
                }
            };
            let Some(at) = status.next_step_at else {
                return Ok(status);
            };
            let wait = at.saturating_sub(crate::time::unix_now()).max(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    /// The vendor's current answer and keys, signing key first.
    async fn describe(&self, domain: &str) -> Result<(Bytes, Vec<Secret>), StepError> {
        let req = self.api.request(domain, crate::time::unix_now())?;
        let (status, body) = exchange(&self.client, req, self.account.request_timeout).await?;
        match self.api.parse(domain, status, &body, Common::default())? {
            SyncedAuth::Enabled { keys, .. } => {
                let keys = keys.iter().cloned().collect();
                Ok((body, keys))
            }
            SyncedAuth::Disabled => Err(StepError::Refused(
                "the vendor reports play auth disabled for the domain".into(),
            )),
        }
    }

    /// Keeps a confirmed answer: saved for restarts and `sign`, and handed
    /// to the running server's snapshot.
    fn keep(&self, domain: &str, body: Bytes) {
        let name = self.account.name.as_str();
        if let Err(error) = self.state.save(name, domain, &body) {
            warn!(vendor = name, domain, %error, "cannot save the vendor keys to the state directory");
        }
        if let Some(sink) = &self.sink {
            sink.accept(
                name,
                domain,
                Answer {
                    body,
                    at: Some(crate::time::unix_now()),
                    restored: false,
                },
            );
        }
    }

    /// One attempt at the record's next step, recorded and counted.
    async fn run_step(&self, record: &mut Record, now: u64) -> Result<(), RotateError> {
        let Some(step) = record.phase.next_step() else {
            return Ok(());
        };
        let (old, new) = record.keys()?;
        let change = match record.phase {
            Phase::Pending => KeyChange::Stage {
                old: &old,
                new: &new,
                replace_backup: record.replace_backup,
            },
            Phase::Staged => KeyChange::Promote {
                old: &old,
                new: &new,
            },
            Phase::Promoted | Phase::Retired => KeyChange::Retire {
                old: &old,
                new: &new,
            },
        };
        let vendor = self.account.name.as_str();
        let domain = record.domain.clone();
        let domain = domain.as_str();
        let outcome = self.apply(domain, &change).await;
        let (result, error) = match outcome {
            Ok(window) => {
                let done = crate::time::unix_now().max(now);
                match record.phase {
                    Phase::Pending => {
                        record.phase = Phase::Staged;
                        record.staged_at = Some(done);
                        record.next_step_at = done + self.propagation();
                    }
                    Phase::Staged => {
                        record.phase = Phase::Promoted;
                        record.promoted_at = Some(done);
                        record.next_step_at =
                            done + retire_delay(self.propagation(), &self.account, window);
                    }
                    Phase::Promoted | Phase::Retired => {
                        record.phase = Phase::Retired;
                        record.retired_at = Some(done);
                        // The old key is dead and the vendor holds the new one.
                        record.old_key = None;
                        record.new_key = None;
                    }
                }
                record.failures = 0;
                record.retry_at = None;
                record.last_error = None;
                info!(
                    vendor,
                    domain,
                    step,
                    next_step = record.phase.next_step().unwrap_or("none"),
                    next_step_at = record.next_step_at,
                    "key rotation step done"
                );
                ("ok", None)
            }
            Err(e) => {
                let (result, error) = match e {
                    StepError::Refused(reason) => {
                        ("refused", RotateError::Refused { step, reason })
                    }
                    StepError::Failed(source) => ("failed", RotateError::Vendor { step, source }),
                };
                record.failures = record.failures.saturating_add(1);
                let backoff = INITIAL_BACKOFF
                    .saturating_mul(1 << record.failures.min(16).saturating_sub(1))
                    .min(self.account.sync_interval.max(INITIAL_BACKOFF));
                record.retry_at = Some(now + backoff.as_secs());
                record.last_error = Some(error.to_string());
                warn!(vendor, domain, step, %error, failures = record.failures, "key rotation step {result}; nothing was removed, the step is retried");
                (result, Some(error))
            }
        };
        self.metrics
            .rotation_steps
            .with_label_values(&[vendor, step, result])
            .inc();
        self.save(record)?;
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads, writes and confirms one change; the vendor's URL window on
    /// success.
    async fn apply(&self, domain: &str, change: &KeyChange<'_>) -> Result<u64, StepError> {
        // What a vendor's error text must not repeat (it may echo the write,
        // which carries the domain's keys, or the account's name).
        let mut known: Vec<&Secret> = vec![&self.account.access_key, &self.account.secret_key];
        known.extend(change.keys());
        let (current, keys) = self.describe(domain).await.map_err(|e| e.without(&known))?;
        known.extend(keys.iter());
        if holds_after(change, &keys) {
            // Applied before a crash, or by another process.
            info!(vendor = %self.account.name, domain, step = change.step(), "the vendor already shows this step");
            let window = self.writer.url_window_secs(domain, &current);
            self.keep(domain, current);
            return Ok(window);
        }
        check_before(change, &keys)?;
        let req = self
            .writer
            .write(domain, &current, change, crate::time::unix_now())?;
        let (status, body) = exchange(&self.client, req, self.account.request_timeout).await?;
        self.writer
            .written(status, &body)
            .map_err(|e| StepError::from(e).without(&known))?;
        let (confirmed, keys) = self.describe(domain).await.map_err(|e| e.without(&known))?;
        if !holds_after(change, &keys) {
            return Err(StepError::Failed(SyncError::Malformed(
                "the vendor accepted the change but its Describe answer does not show it".into(),
            )));
        }
        let window = self.writer.url_window_secs(domain, &confirmed);
        self.keep(domain, confirmed);
        Ok(window)
    }
}

/// Whether the vendor's keys (signing key first) show `change` done.
fn holds_after(change: &KeyChange<'_>, keys: &[Secret]) -> bool {
    let primary = keys.first();
    match change {
        KeyChange::Stage { old, new, .. } => primary == Some(old) && keys.contains(new),
        KeyChange::Promote { old, new } => primary == Some(new) && keys.contains(old),
        KeyChange::Retire { old, new } => primary == Some(new) && !keys.contains(old),
    }
}

/// Refuses a change whose starting point is not what the rotation left:
/// every refusal here keeps a key that may be the last working one.
fn check_before(change: &KeyChange<'_>, keys: &[Secret]) -> Result<(), StepError> {
    let primary = keys.first();
    let refuse = |why: &str| Err(StepError::Refused(why.to_owned()));
    match change {
        KeyChange::Stage { old, .. } if primary != Some(old) => {
            refuse("the vendor's signing key changed since the rotation started")
        }
        KeyChange::Promote { new, .. } if !keys.contains(new) => {
            refuse("the staged key is no longer at the vendor; promoting it would sign URLs no replica accepts")
        }
        KeyChange::Promote { old, .. } if primary != Some(old) => {
            refuse("the vendor's signing key changed since the key was staged")
        }
        KeyChange::Retire { new, .. } if primary != Some(new) => refuse(
            "the new key is not the vendor's signing key; removing the old key would leave no working key",
        ),
        _ => Ok(()),
    }
}

fn step_error(step: &'static str, e: StepError) -> RotateError {
    match e {
        StepError::Refused(reason) => RotateError::Refused { step, reason },
        StepError::Failed(source) => RotateError::Vendor { step, source },
    }
}

/// The account named `vendor`, checked to supply keys for `domain`.
fn account<'c>(
    config: &'c Config,
    vendor: &str,
    domain: &str,
) -> Result<&'c VendorConfig, RotateError> {
    let account = config
        .vendors
        .iter()
        .find(|v| v.name == vendor)
        .ok_or_else(|| RotateError::UnknownVendor(vendor.to_owned()))?;
    let served = config.sites.iter().any(|s| {
        s.vendor
            .as_ref()
            .is_some_and(|(v, d)| v == vendor && d == domain)
    });
    if !served {
        return Err(RotateError::UnknownDomain {
            vendor: vendor.to_owned(),
            domain: domain.to_owned(),
        });
    }
    Ok(account)
}

/// Starts a rotation of `domain` at vendor account `vendor` and runs its
/// stage step (the operator API's `POST /v1/keys/rotate`, `streamguard keys
/// rotate`). `sink` is the running server's publisher, if any.
pub async fn start(
    config: &Config,
    metrics: &Metrics,
    sink: Option<Arc<dyn Sink>>,
    vendor: &str,
    domain: &str,
    opts: StartOptions,
) -> Result<RotationStatus, RotateError> {
    let account = account(config, vendor, domain)?;
    Rotator::new(account, config, metrics, sink)?
        .start(domain, opts, crate::time::unix_now())
        .await
}

/// Where the rotation of `domain` at `vendor` stands, if one was ever run.
pub fn status(
    config: &Config,
    metrics: &Metrics,
    vendor: &str,
    domain: &str,
) -> Result<Option<RotationStatus>, RotateError> {
    let account = account(config, vendor, domain)?;
    Rotator::new(account, config, metrics, None)?.status(domain)
}

/// Runs the next step of the rotation of `domain` at `vendor` if it is due.
pub async fn advance(
    config: &Config,
    metrics: &Metrics,
    sink: Option<Arc<dyn Sink>>,
    vendor: &str,
    domain: &str,
) -> Result<RotationStatus, RotateError> {
    let account = account(config, vendor, domain)?;
    Rotator::new(account, config, metrics, sink)?
        .advance(domain, crate::time::unix_now())
        .await
}

/// `streamguard keys rotate`: starts a rotation (stage runs at once) and,
/// with `wait`, runs every later step here as it falls due; with `wait` an
/// unfinished rotation of the domain is resumed instead of refused.
pub async fn rotate_command(
    config: &Config,
    vendor: &str,
    domain: &str,
    opts: StartOptions,
    wait: bool,
) -> Result<RotationStatus, RotateError> {
    let metrics = Metrics::new().map_err(|e| RotateError::Corrupt(e.to_string()))?;
    let account = account(config, vendor, domain)?;
    let rotator = Rotator::new(account, config, &metrics, None)?;
    let started = match rotator.start(domain, opts, crate::time::unix_now()).await {
        Err(RotateError::InProgress { .. }) if wait => {
            info!(vendor, domain, "resuming the unfinished key rotation");
            None
        }
        Err(e) if !wait => return Err(e),
        // A failed stage is recorded and retried below.
        Err(RotateError::Vendor { step, source }) => {
            warn!(vendor, domain, step, error = %source, "rotation step failed; retrying");
            None
        }
        Err(e) => return Err(e),
        Ok(s) => Some(s),
    };
    match (started, wait) {
        (Some(s), false) => Ok(s),
        _ => rotator.run_to_end(domain).await,
    }
}

/// One line per fact of a rotation's status, for people.
pub fn describe(s: &RotationStatus) -> String {
    let at = |t: u64| format!("{t} ({})", crate::time::rfc3339(t));
    let mut out = format!(
        "rotation of {} at {}: {}\n",
        s.domain,
        s.vendor,
        match s.phase {
            Phase::Pending => "pending (the new key is not confirmed at the vendor yet)",
            Phase::Staged => "staged (the new key is accepted, the old key still signs)",
            Phase::Promoted => "promoted (the new key signs, the old key is still accepted)",
            Phase::Retired => "done (the old key is removed)",
        }
    );
    for (label, t) in [
        ("started", Some(s.started_at)),
        ("staged", s.staged_at),
        ("promoted", s.promoted_at),
        ("retired", s.retired_at),
    ] {
        if let Some(t) = t {
            out.push_str(&format!("  {label}: {}\n", at(t)));
        }
    }
    if let (Some(step), Some(t)) = (s.next_step, s.next_step_at) {
        out.push_str(&format!(
            "  next: {step} at {} (the running server, or `keys rotate --wait`, runs it)\n",
            at(t)
        ));
    }
    if let Some(e) = &s.last_error {
        out.push_str(&format!("  last error ({} so far): {e}\n", s.failures));
    }
    out
}

/// The background service of the running server: advances every due step
/// of every rotation recorded in the state directory, so a rotation started
/// by the CLI or the API, or interrupted by a restart, goes on.
pub struct RotationService {
    rotators: Vec<Rotator>,
}

impl RotationService {
    /// A service over every rotatable account of `config`.
    pub fn new(config: &Config, metrics: &Metrics, sink: Arc<dyn Sink>) -> RotationService {
        let rotators = config
            .vendors
            .iter()
            .filter_map(|v| Rotator::new(v, config, metrics, Some(sink.clone())).ok())
            .collect();
        RotationService { rotators }
    }

    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.rotators.is_empty()
    }

    /// Advances every due step once.
    pub async fn tick(&self) {
        let now = crate::time::unix_now();
        for r in &self.rotators {
            for s in r.list() {
                let due = s.next_step_at.is_some_and(|at| at <= now);
                if !due {
                    continue;
                }
                match r.advance(&s.domain, now).await {
                    // Logged and counted where it happened.
                    Ok(_) | Err(RotateError::Refused { .. } | RotateError::Vendor { .. }) => {}
                    Err(RotateError::Busy) => {}
                    Err(error) => {
                        warn!(vendor = r.vendor(), domain = %s.domain, %error, "cannot advance the key rotation");
                    }
                }
            }
        }
    }

    /// Advances due steps every [`POLL_INTERVAL`] until `shutdown`; a vendor
    /// request in flight is abandoned at shutdown (the step is retried after
    /// a restart, the record tells where it stood).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.tick() => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(interval: u64, timeout: u64, lifetime: u64) -> VendorConfig {
        VendorConfig {
            name: "tc".into(),
            kind: crate::config::VendorKind::Tencent,
            access_key: Secret::new("id"),
            secret_key: Secret::new("key"),
            endpoint: None,
            sync_interval: Duration::from_secs(interval),
            request_timeout: Duration::from_secs(timeout),
            max_url_lifetime: Duration::from_secs(lifetime),
            api_version: None,
        }
    }

    #[test]
    fn promote_waits_a_jittered_interval_and_a_whole_round_and_retire_the_url_lifetime() {
        // 300 s × 1.1 = 330, + one domain (10 s timeout + 0.5 s pace) + 10 s.
        assert_eq!(propagation(&account(300, 10, 86_400), 1, 2), 351);
        // A round of 10 domains at 10 requests per second: 10 × 10.1 s.
        assert_eq!(
            propagation(&account(300, 10, 86_400), 10, 10),
            330 + 101 + 10
        );
        // No domain counts as one; 1.1 + 1.5 + 1 = 3.6 rounds up to 4.
        assert_eq!(propagation(&account(1, 1, 5), 0, 2), 4);
        assert_eq!(
            retire_delay(351, &account(300, 10, 86_400), 300),
            351 + 86_400
        );
        // A vendor window longer than the setting wins.
        assert_eq!(retire_delay(4, &account(1, 1, 5), 60), 64);
    }

    #[test]
    fn generated_keys_are_long_distinct_alphanumerics() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_eq!(a.expose().len(), KEY_LENGTH);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn no_step_removes_the_last_working_key() {
        let (o, n, x) = (Secret::new("o"), Secret::new("n"), Secret::new("x"));
        let retire = KeyChange::Retire { old: &o, new: &n };
        // The vendor went back to the old key alone: retiring it is refused.
        assert!(matches!(
            check_before(&retire, std::slice::from_ref(&o)),
            Err(StepError::Refused(_))
        ));
        assert!(check_before(&retire, &[n.clone(), o.clone()]).is_ok());
        assert!(holds_after(&retire, std::slice::from_ref(&n)));
        assert!(!holds_after(&retire, &[n.clone(), o.clone()]));
        let promote = KeyChange::Promote { old: &o, new: &n };
        assert!(matches!(
            check_before(&promote, std::slice::from_ref(&o)),
            Err(StepError::Refused(_))
        ));
        assert!(matches!(
            check_before(&promote, &[x.clone(), n.clone()]),
            Err(StepError::Refused(_))
        ));
        assert!(check_before(&promote, &[o.clone(), n.clone()]).is_ok());
        let stage = KeyChange::Stage {
            old: &o,
            new: &n,
            replace_backup: false,
        };
        assert!(holds_after(&stage, &[o.clone(), n.clone()]));
        assert!(!holds_after(&stage, &[n.clone(), o.clone()]));
        assert!(matches!(
            check_before(&stage, &[x]),
            Err(StepError::Refused(_))
        ));
    }
}
