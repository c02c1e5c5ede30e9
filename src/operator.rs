//! Keys set through the operator API (`PUT /v1/auth-keys`), modelled on
//! Volcengine `UpdateAuthKey`: each call overwrites every key of one scope
//! (a site, optionally one app of it, and a scene: `pull` for play, `push`
//! for publish). Validated field by field, kept in the state directory
//! (written atomically: a crash leaves the old file or the new one, never
//! half of one), restored at start, and joined with the other key sources
//! by `publish`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::Secret;

/// File name of the operator keys in the state directory.
pub const FILE_NAME: &str = "operator-keys.json";
/// Most entries in one scope's `AuthDetailList`.
pub const MAX_DETAILS: usize = 100;
/// Longest `SecretKey`.
pub const MAX_SECRET_CHARS: usize = 100;
/// `ValidDuration` range, seconds.
pub const VALID_DURATION_SECS: (u64, u64) = (60, 2_592_000);
/// `ValidDuration` when none is given (a week, as the vendor's default).
pub const DEFAULT_VALID_DURATION_SECS: u64 = 604_800;
/// Longest `App`.
pub const MAX_APP_CHARS: usize = 30;
/// Most scopes (App and SceneType pairs) the operator API keeps per site.
pub const MAX_SCOPES_PER_SITE: usize = 64;

/// Which requests a scope's keys verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scene {
    /// Playing (`pull`).
    Pull,
    /// Publishing (`push`, the media-server hooks' `on_publish`).
    Push,
}

/// One key of a scope, as stored. `Debug` shows `***` for the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// The key.
    pub secret_key: String,
    /// `md5` or `md5_custom`.
    pub algorithm: String,
    /// Auth parameter names, as given (`volcSecret` → `sign`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auth_field: BTreeMap<String, String>,
    /// Signed fields (`md5_custom`), as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_field: Vec<String>,
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detail")
            .field("secret_key", &"***")
            .field("algorithm", &self.algorithm)
            .field("auth_field", &self.auth_field)
            .field("encrypt_field", &self.encrypt_field)
            .finish()
    }
}

/// One scope and its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeKeys {
    /// The site id (`Vhost`).
    pub site: String,
    /// The domain named, if the scope was named by domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// First path segment the keys are limited to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Play or publish.
    pub scene: Scene,
    /// The keys, the first one signing.
    pub details: Vec<Detail>,
    /// `ValidDuration`, seconds.
    pub valid_duration_secs: u64,
    /// `PushPullEnable`: false switches the scope's keys off (kept, unused).
    pub enabled: bool,
    /// Unix time of the update.
    pub updated_at: u64,
}

impl ScopeKeys {
    /// True for the same (site, app, scene).
    pub fn same_scope(&self, other: &ScopeKeys) -> bool {
        self.site == other.site && self.app == other.app && self.scene == other.scene
    }

    /// The keys in force (none when switched off).
    pub fn secrets(&self) -> Vec<Secret> {
        if !self.enabled {
            return Vec::new();
        }
        self.details
            .iter()
            .map(|d| Secret::new(d.secret_key.as_str()))
            .collect()
    }
}

/// Every operator scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorKeys {
    /// Scopes, in the order first set.
    pub scopes: Vec<ScopeKeys>,
}

/// Why operator keys could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server runs without a state directory.
    #[error("no state_dir is configured, so operator keys cannot be kept across restarts; set state_dir")]
    NoStateDir,
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not what this version writes.
    #[error("{path}: unreadable operator keys ({reason})")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a value).
        reason: String,
    },
}

impl OperatorKeys {
    /// Replaces the scope `new` names (or adds it).
    pub fn put(&mut self, new: ScopeKeys) {
        match self.scopes.iter_mut().find(|s| s.same_scope(&new)) {
            Some(s) => *s = new,
            None => self.scopes.push(new),
        }
    }

    /// The scope (`site`, `app`, `scene`), if set.
    pub fn scope(&self, site: &str, app: Option<&str>, scene: Scene) -> Option<&ScopeKeys> {
        self.scopes
            .iter()
            .find(|s| s.site == site && s.app.as_deref() == app && s.scene == scene)
    }

    /// The scopes of `site` for `scene`.
    pub fn for_site<'a>(
        &'a self,
        site: &'a str,
        scene: Scene,
    ) -> impl Iterator<Item = &'a ScopeKeys> + 'a {
        self.scopes
            .iter()
            .filter(move |s| s.site == site && s.scene == scene)
    }

    /// Reads the operator keys from `state_dir` (none when there is no file).
    pub fn load(state_dir: &Path) -> Result<OperatorKeys, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(OperatorKeys::default())
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&text).map_err(|e| StoreError::Unreadable {
            path,
            reason: format!("line {} column {}", e.line(), e.column()),
        })
    }

    /// Writes the operator keys to `state_dir` atomically (temp file,
    /// fsync, rename), readable by the owner only.
    pub fn save(&self, state_dir: Option<&Path>) -> Result<(), StoreError> {
        let dir = state_dir.ok_or(StoreError::NoStateDir)?;
        let path = dir.join(FILE_NAME);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Best effort: the rename is durable once the directory is synced.
            if let Err(error) = d.sync_all() {
                tracing::debug!(%error, "cannot sync the state directory");
            }
        }
        Ok(())
    }
}

/// A field that failed validation: its name as the API spells it, and what
/// is wrong (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Vendor-style error code (`InvalidParam`, `InvalidParam.Length`, `MissingParameter`).
    pub code: &'static str,
    /// Field path, e.g. `AuthDetailList[2].SecretKey`.
    pub field: String,
    /// What to change.
    pub message: String,
}

/// An `UpdateAuthKey`-style request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAuthKey {
    /// The site id.
    #[serde(rename = "Vhost")]
    pub vhost: Option<String>,
    /// A play domain of the site.
    #[serde(rename = "Domain")]
    pub domain: Option<String>,
    /// First path segment the keys are limited to.
    #[serde(rename = "App")]
    pub app: Option<String>,
    /// `push` or `pull`.
    #[serde(rename = "SceneType")]
    pub scene_type: Option<String>,
    /// The keys.
    #[serde(rename = "AuthDetailList")]
    pub auth_detail_list: Option<Vec<RawDetail>>,
    /// Seconds.
    #[serde(rename = "ValidDuration")]
    pub valid_duration: Option<u64>,
    /// Keys on or off.
    #[serde(rename = "PushPullEnable")]
    pub push_pull_enable: Option<bool>,
}

/// One `AuthDetailList` entry as sent. `Debug` shows `***` for the key.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetail {
    /// The key.
    #[serde(rename = "SecretKey")]
    pub secret_key: Option<String>,
    /// `md5` or `md5_custom`.
    #[serde(rename = "EncryptionAlgorithm")]
    pub encryption_algorithm: Option<String>,
    /// Param names.
    #[serde(rename = "AuthField")]
    pub auth_field: Option<BTreeMap<String, String>>,
    /// Signed fields.
    #[serde(rename = "EncryptField")]
    pub encrypt_field: Option<Vec<String>>,
}

impl std::fmt::Debug for RawDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDetail")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("encryption_algorithm", &self.encryption_algorithm)
            .field("auth_field", &self.auth_field)
            .field("encrypt_field", &self.encrypt_field)
            .finish()
    }
}

/// The scope named by a request, before it is matched to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeName {
    /// `Vhost`: a site id.
    Site(String),
    /// `Domain`: a play domain.
    Domain(String),
}

/// A request that passed field validation.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Which site.
    pub name: ScopeName,
    /// Limited to this app.
    pub app: Option<String>,
    /// Play or publish.
    pub scene: Scene,
    /// Keys.
    pub details: Vec<Detail>,
    /// Seconds.
    pub valid_duration_secs: u64,
    /// `PushPullEnable`, if given.
    pub enabled: Option<bool>,
}

fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        code,
        field: field.into(),
        message: message.into(),
    }
}

impl UpdateAuthKey {
    /// Checks every field; returns every problem.
    pub fn check(self) -> Result<Checked, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = match (self.vhost, self.domain) {
            (Some(v), None) if !v.is_empty() => Some(ScopeName::Site(v)),
            (None, Some(d)) if !d.is_empty() => {
                match crate::host::normalize_host(&d).filter(|h| crate::host::is_hostname(h)) {
                    Some(h) => Some(ScopeName::Domain(h)),
                    None => {
                        errors.push(field(
                            "InvalidParam",
                            "Domain",
                            "Domain is not a domain name",
                        ));
                        None
                    }
                }
            }
            (Some(_), Some(_)) => {
                errors.push(field(
                    "InvalidParam",
                    "Vhost",
                    "give Vhost (a site id) or Domain (one of its domains), not both",
                ));
                None
            }
            _ => {
                errors.push(field(
                    "MissingParameter",
                    "Domain",
                    "Vhost (a site id) or Domain (one of its domains) is required",
                ));
                None
            }
        };
        if let Some(app) = &self.app {
            let ok_chars = app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if app.is_empty() || app.chars().count() > MAX_APP_CHARS {
                errors.push(field(
                    "InvalidParam.Length",
                    "App",
                    format!("App must be 1 to {MAX_APP_CHARS} characters"),
                ));
            } else if !ok_chars || app == "." || app == ".." {
                errors.push(field(
                    "InvalidParam",
                    "App",
                    "App may contain only letters, digits, `_`, `-` and `.`",
                ));
            }
        }
        let scene = match self.scene_type.as_deref() {
            None | Some("") => {
                errors.push(field(
                    "MissingParameter",
                    "SceneType",
                    "SceneType is required: `push` or `pull`",
                ));
                None
            }
            Some("pull") => Some(Scene::Pull),
            Some("push") => Some(Scene::Push),
            Some(_) => {
                errors.push(field(
                    "InvalidParam",
                    "SceneType",
                    "SceneType must be `push` or `pull`",
                ));
                None
            }
        };
        let valid_duration_secs = self.valid_duration.unwrap_or(DEFAULT_VALID_DURATION_SECS);
        let (lo, hi) = VALID_DURATION_SECS;
        if !(lo..=hi).contains(&valid_duration_secs) {
            errors.push(field(
                "InvalidParam",
                "ValidDuration",
                format!("ValidDuration must be in [{lo}, {hi}] seconds"),
            ));
        }
        let mut details = Vec::new();
        match self.auth_detail_list {
            None => errors.push(field(
                "MissingParameter",
                "AuthDetailList",
                "AuthDetailList is required",
            )),
            Some(list) if list.is_empty() => errors.push(field(
                "InvalidParam",
                "AuthDetailList",
                "AuthDetailList needs at least one key",
            )),
            Some(list) if list.len() > MAX_DETAILS => errors.push(field(
                "InvalidParam.Length",
                "AuthDetailList",
                format!("AuthDetailList holds at most {MAX_DETAILS} entries"),
            )),
            Some(list) => {
                for (i, d) in list.into_iter().enumerate() {
                    if let Some(d) = check_detail(i, d, &mut errors) {
                        details.push(d);
                    }
                }
            }
        }
        match (name, scene) {
            (Some(name), Some(scene)) if errors.is_empty() => Ok(Checked {
                name,
                app: self.app,
                scene,
                details,
                valid_duration_secs,
                enabled: self.push_pull_enable,
            }),
            _ => Err(errors),
        }
    }
}

/// The `EncryptField` names a Volcengine `md5_custom` signature may cover.
const ENCRYPT_FIELDS: [&str; 6] = ["Domain", "App", "Stream", "SecretKey", "Time", "Path"];

fn check_detail(i: usize, d: RawDetail, errors: &mut Vec<FieldError>) -> Option<Detail> {
    let at = |f: &str| format!("AuthDetailList[{i}].{f}");
    let before = errors.len();
    let secret_key = match d.secret_key {
        None => {
            errors.push(field(
                "MissingParameter",
                at("SecretKey"),
                "SecretKey is required",
            ));
            String::new()
        }
        Some(k) if k.is_empty() || k.len() > MAX_SECRET_CHARS => {
            errors.push(field(
                "InvalidParam.Length",
                at("SecretKey"),
                format!("SecretKey must be 1 to {MAX_SECRET_CHARS} characters"),
            ));
            String::new()
        }
        Some(k) if !k.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            errors.push(field(
                "InvalidParam",
                at("SecretKey"),
                "SecretKey may contain only letters and digits",
            ));
            String::new()
        }
        Some(k) => k,
    };
    let algorithm = match d.encryption_algorithm.as_deref() {
        Some(a @ ("md5" | "md5_custom")) => a.to_owned(),
        None => {
            errors.push(field(
                "MissingParameter",
                at("EncryptionAlgorithm"),
                "EncryptionAlgorithm is required: `md5` or `md5_custom`",
            ));
            String::new()
        }
        Some(_) => {
            errors.push(field(
                "InvalidParam",
                at("EncryptionAlgorithm"),
                "EncryptionAlgorithm must be `md5` or `md5_custom`",
            ));
            String::new()
        }
    };
    let auth_field = d.auth_field.unwrap_or_default();
    for (name, value) in &auth_field {
        if !matches!(name.as_str(), "volcSecret" | "volcTime") {
            errors.push(field(
                "InvalidParam",
                at("AuthField"),
                "AuthField keys are `volcSecret` and `volcTime`",
            ));
        } else if !crate::problems::usable_param_name(value) {
            errors.push(field(
                "InvalidParam",
                format!("{}.{name}", at("AuthField")),
                "a parameter name must be 1 to 64 letters, digits, `_`, `-` or `.`",
            ));
        }
    }
    let encrypt_field = d.encrypt_field.unwrap_or_default();
    if encrypt_field.len() > ENCRYPT_FIELDS.len()
        || encrypt_field
            .iter()
            .any(|f| !ENCRYPT_FIELDS.contains(&f.as_str()))
    {
        errors.push(field(
            "InvalidParam",
            at("EncryptField"),
            format!("EncryptField entries are {}", ENCRYPT_FIELDS.join(", ")),
        ));
    }
    if algorithm == "md5_custom" && encrypt_field.is_empty() && errors.len() == before {
        errors.push(field(
            "MissingParameter",
            at("EncryptField"),
            "md5_custom needs EncryptField (the fields the signature covers)",
        ));
    }
    (errors.len() == before).then_some(Detail {
        secret_key,
        algorithm,
        auth_field,
        encrypt_field,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> UpdateAuthKey {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_vendor_example_body_passes() {
        let c = body(r#"{"Vhost":"demo","App":"test","SceneType":"push","AuthDetailList":[{"EncryptionAlgorithm":"md5","SecretKey":"abc123","AuthField":{"volcSecret":"sign","volcTime":"expire"}}],"ValidDuration":100,"PushPullEnable":true}"#)
            .check()
            .unwrap();
        assert_eq!(c.name, ScopeName::Site("demo".into()));
        assert_eq!(c.scene, Scene::Push);
        assert_eq!(c.valid_duration_secs, 100);
        assert_eq!(c.details[0].auth_field["volcTime"], "expire");
    }

    #[test]
    fn every_violation_names_its_field() {
        let long = "a".repeat(101);
        let json = format!(
            r#"{{"Domain":"play.example.com","App":"bad/app","AuthDetailList":[{{"SecretKey":"{long}","EncryptionAlgorithm":"sha1"}},{{"SecretKey":"no-dash","EncryptionAlgorithm":"md5"}}],"ValidDuration":59}}"#
        );
        let errors = body(&json).check().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "App",
            "SceneType",
            "ValidDuration",
            "AuthDetailList[0].SecretKey",
            "AuthDetailList[0].EncryptionAlgorithm",
            "AuthDetailList[1].SecretKey",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        for e in &errors {
            assert!(!e.message.contains(&long) && !e.message.contains("no-dash"));
        }
        let many: Vec<String> = (0..101)
            .map(|i| format!(r#"{{"SecretKey":"k{i}","EncryptionAlgorithm":"md5"}}"#))
            .collect();
        let json = format!(
            r#"{{"Vhost":"s","SceneType":"pull","AuthDetailList":[{}]}}"#,
            many.join(",")
        );
        let errors = body(&json).check().unwrap_err();
        assert_eq!(errors[0].field, "AuthDetailList");
        assert_eq!(errors[0].code, "InvalidParam.Length");
        let long_app = format!(
            r#"{{"Vhost":"s","SceneType":"pull","App":"{}","AuthDetailList":[{{"SecretKey":"k","EncryptionAlgorithm":"md5"}}],"ValidDuration":2592001}}"#,
            "a".repeat(31)
        );
        let errors = body(&long_app).check().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["App", "ValidDuration"]);
    }

    #[test]
    fn put_overwrites_one_scope_and_saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = OperatorKeys::default();
        let scope = |app: Option<&str>, k: &str| ScopeKeys {
            site: "s".into(),
            domain: None,
            app: app.map(str::to_owned),
            scene: Scene::Pull,
            details: vec![Detail {
                secret_key: k.into(),
                algorithm: "md5".into(),
                auth_field: BTreeMap::new(),
                encrypt_field: Vec::new(),
            }],
            valid_duration_secs: 60,
            enabled: true,
            updated_at: 1,
        };
        keys.put(scope(None, "a"));
        keys.put(scope(Some("live"), "b"));
        keys.put(scope(None, "c"));
        assert_eq!(keys.scopes.len(), 2);
        assert_eq!(keys.scopes[0].details[0].secret_key, "c");
        keys.save(Some(dir.path())).unwrap();
        assert_eq!(OperatorKeys::load(dir.path()).unwrap(), keys);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        assert!(matches!(keys.save(None), Err(StoreError::NoStateDir)));
    }
}
