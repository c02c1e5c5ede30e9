//! Problems found while validating settings, each with the key path it
//! concerns, and the resolution of `${ENV}` references and secrets.
//!
//! A leaf: config validation and every scheme's settings constructor record
//! their problems here, so a scheme never needs to know which file or API
//! its settings came from.

use std::fmt;

use crate::keys::Secret;

/// Longest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 1024;

/// One problem found while validating, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `site[0].auth.key`.
    pub path: String,
    /// What is wrong and what to change.
    pub message: String,
}

impl Problem {
    /// A problem with one settings field, named as the settings type names
    /// it (`valid_duration_secs`); the caller maps it to its own key path
    /// with [`Problem::under`].
    pub fn field(field: &str, message: impl Into<String>) -> Problem {
        Problem {
            path: field.to_owned(),
            message: message.into(),
        }
    }

    /// The same problem with its field name mapped to a caller's key path:
    /// `site[2].auth.` + field for the config file, the vendor's own field
    /// name (`AuthDetailList[1].EncryptField`) for a vendor answer.
    pub fn under(self, map: impl Fn(&str) -> String) -> Problem {
        Problem {
            path: map(&self.path),
            message: self.message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Validation context: collects problems and resolves `${ENV_VAR}` secrets.
pub struct Ctx<'e> {
    problems: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl<'e> Ctx<'e> {
    /// A context resolving environment variables with `env`.
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            problems: Vec::new(),
            env,
        }
    }

    /// Records a problem at `path`.
    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Problems recorded so far.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Records problems of a settings value, their field names mapped to key
    /// paths with `map` (see [`Problem::under`]).
    pub fn extend(&mut self, problems: Vec<Problem>, map: impl Fn(&str) -> String) {
        self.problems
            .extend(problems.into_iter().map(|p| p.under(&map)));
    }

    /// Every problem recorded, in order.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Resolves a secret: `${NAME}` reads environment variable NAME, anything
    /// else is the literal key. Empty or oversized secrets are problems.
    pub fn secret(&mut self, path: &str, raw: &str) -> Option<Secret> {
        let value = if let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            let valid_name = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid_name {
                self.problem(path, format!("`${{{name}}}` is not a valid environment variable reference; use ${{NAME}} with NAME of letters, digits and _"));
                return None;
            }
            match (self.env)(name) {
                Some(v) if !v.is_empty() => v,
                _ => {
                    self.problem(path, format!("environment variable {name} is not set or empty; export it or write the key inline"));
                    return None;
                }
            }
        } else {
            raw.to_owned()
        };
        if value.is_empty() {
            self.problem(path, "must not be empty");
            return None;
        }
        if value.len() > MAX_SECRET_BYTES {
            self.problem(path, format!("is longer than {MAX_SECRET_BYTES} bytes"));
            return None;
        }
        if value.trim() != value {
            self.problem(
                path,
                "has leading or trailing whitespace; remove it (the vendor would hash it)",
            );
            return None;
        }
        Some(Secret::new(value))
    }

    /// Resolves a primary and an optional backup key (`{path}.key`,
    /// `{path}.backup_key`) into key-set order.
    pub fn primary_and_backup(
        &mut self,
        path: &str,
        key: &str,
        backup: Option<&str>,
    ) -> Vec<Secret> {
        let mut keys = Vec::new();
        if let Some(k) = self.secret(&format!("{path}.key"), key) {
            keys.push(k);
        }
        if let Some(b) = backup {
            if let Some(k) = self.secret(&format!("{path}.backup_key"), b) {
                keys.push(k);
            }
        }
        keys
    }

    /// Checks a query parameter name (`[A-Za-z0-9_.-]`, 1–64 chars).
    pub fn param_name(&mut self, path: &str, name: &str) -> String {
        if !usable_param_name(name) {
            self.problem(
                path,
                format!(
                    "`{name}` is not a usable query parameter name; use 1–64 of A-Z a-z 0-9 _ - ."
                ),
            );
        }
        name.to_owned()
    }
}

/// True for a query parameter name a scheme may use: 1–64 of `A-Z a-z 0-9 _ - .`.
/// Shared by [`Ctx::param_name`] and vendor answers that name parameters.
pub fn usable_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
