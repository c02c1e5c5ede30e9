//! Stage 1: TOML text → [`RawConfig`], with every structural problem.
//!
//! 1. The text is parsed into a plain TOML tree; a syntax error stops here
//!    (line, column and toml's message, never the line itself).
//! 2. `${NAME}` is expanded in every string value except secrets (see
//!    [`SECRET_KEYS`]: [`Ctx::secret`](crate::problems::Ctx::secret)
//!    resolves those, so each is resolved exactly once) and verbatim keys
//!    ([`VERBATIM_KEYS`]).
//! 3. The tree is deserialized with [`deserialize_checked`], which reports
//!    every unknown key, wrong type and missing key, not only the first, and
//!    so is each `[site.auth]` table, by its scheme's settings type.
//!
//! Why this care: serde's and toml's own messages quote the offending value
//! (`invalid type: integer `31415926535897``) or line, and a value in the
//! wrong place may be a key. Every message here names keys, never values.

use crate::auth::{self, SCHEME_NAMES};
use crate::problems::{
    deserialize_checked, expand_env, secret_source, Checked, Problem, SECRET_KEYS, VERBATIM_KEYS,
};

use super::{ConfigError, RawConfig};

/// A parsed config file: the raw config (repaired when there were
/// structural problems), the problems, and the key paths whose stage-2
/// problems would only echo the repairs.
pub(super) struct Parsed {
    /// `None` when the file could not be read as a config at all.
    pub raw: Option<RawConfig>,
    /// Structural and `${ENV}` problems.
    pub problems: Vec<Problem>,
    /// See [`Checked::repaired`].
    pub repaired: Vec<String>,
}

/// Stage 1 for `text`; `env` resolves `${NAME}` in non-secret values.
pub(super) fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ConfigError> {
    let mut tree: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..at).unwrap_or_default();
        ConfigError::Parse {
            file: None,
            line: before.matches('\n').count() + 1,
            column: before.chars().count()
                - before
                    .rfind('\n')
                    .map_or(0, |i| before[..=i].chars().count())
                + 1,
            // Why only the message: toml's Display quotes the source line.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let mut parsed = Parsed {
        raw: None,
        problems: Vec::new(),
        repaired: Vec::new(),
    };
    for (k, v) in tree.iter_mut() {
        reject_datetimes(v, k, &mut parsed);
        expand(v, k, k, env, &mut parsed);
    }
    let Checked {
        value,
        problems,
        repaired,
    } = deserialize_checked::<RawConfig>(&mut tree, "");
    parsed.problems.extend(problems);
    parsed.repaired.extend(repaired);
    let Some(mut raw) = value else {
        parsed.problems.sort_by_cached_key(|p| path_order(&p.path));
        return Ok(parsed);
    };
    for (i, site) in raw.site.iter_mut().enumerate() {
        if let Some(table) = &mut site.auth {
            check_auth(table, &format!("site[{i}].auth"), &mut parsed);
        }
    }
    parsed.raw = Some(raw);
    parsed.problems.sort_by_cached_key(|p| path_order(&p.path));
    Ok(parsed)
}

/// Reports every unquoted date or time in `value` (no setting takes one;
/// toml would otherwise hand it on as text, so `key = 1979-05-27` became a
/// key) and puts an empty placeholder in its place.
fn reject_datetimes(value: &mut toml::Value, path: &str, parsed: &mut Parsed) {
    match value {
        toml::Value::Datetime(_) => {
            parsed.problems.push(Problem {
                path: path.to_owned(),
                message: "must be text in quotes (an unquoted date or time is not a value any setting takes)".to_owned(),
            });
            parsed.repaired.push(path.to_owned());
            *value = toml::Value::String(String::new());
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                reject_datetimes(item, &format!("{path}[{i}]"), parsed);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                reject_datetimes(v, &format!("{path}.{k}"), parsed);
            }
        }
        _ => {}
    }
}

/// Expands `${NAME}` in `value` at `path`, whose nearest key is `key`.
fn expand(
    value: &mut toml::Value,
    key: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    parsed: &mut Parsed,
) {
    if VERBATIM_KEYS.contains(&key) {
        return;
    }
    if SECRET_KEYS.contains(&key) {
        // Resolved later by `Ctx::secret`, which reports the same problem
        // again (deduplicated); checked here too so that a mistyped
        // reference is reported even when the rest of its table is broken.
        check_secret(value, path, parsed);
        return;
    }
    match value {
        toml::Value::String(s) => match expand_env(s, env) {
            Ok(expanded) => *s = expanded,
            Err(messages) => {
                for message in messages {
                    parsed.problems.push(Problem {
                        path: path.to_owned(),
                        message,
                    });
                }
                parsed.repaired.push(path.to_owned());
            }
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, key, &format!("{path}[{i}]"), env, parsed);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                expand(v, k, &format!("{path}.{k}"), env, parsed);
            }
        }
        _ => {}
    }
}

/// Records the problems of the secret syntax in `value` (a string or a
/// list of them), without resolving anything.
fn check_secret(value: &toml::Value, path: &str, parsed: &mut Parsed) {
    match value {
        toml::Value::String(s) => {
            if let Err(message) = secret_source(s) {
                parsed.problems.push(Problem {
                    path: path.to_owned(),
                    message,
                });
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_secret(item, &format!("{path}[{i}]"), parsed);
            }
        }
        _ => {}
    }
}

/// Orders key paths as a reader would: `site[2]` before `site[10]`.
pub(super) fn path_order(path: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in path.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    out.push((text, digits.parse().unwrap_or(0)));
    out
}

/// Checks a `[site.auth]` table at `path` with its scheme's settings type,
/// leaving it repaired so that [`auth::RawScheme::from_table`] accepts it.
fn check_auth(table: &mut toml::Table, path: &str, parsed: &mut Parsed) {
    let at = format!("{path}.scheme");
    let names = SCHEME_NAMES.join(", ");
    let scheme = match table.get("scheme") {
        Some(toml::Value::String(s)) if SCHEME_NAMES.contains(&s.as_str()) => s.clone(),
        found => {
            let message = match found {
                None => format!("required key `scheme` is missing; use one of {names}"),
                Some(_) => format!("must be one of {names}, in quotes"),
            };
            parsed.problems.push(Problem { path: at, message });
            parsed.repaired.push(path.to_owned());
            return;
        }
    };
    let mut settings = table.clone();
    settings.remove("scheme");
    let Some(checked) = check_scheme(&scheme, &mut settings, path) else {
        return;
    };
    parsed.problems.extend(checked.problems);
    parsed.repaired.extend(checked.repaired);
    settings.insert("scheme".to_owned(), toml::Value::String(scheme));
    *table = settings;
}

/// The structural check of scheme `name`'s settings: `RawScheme::check`,
/// generated with the list of schemes itself, so a new scheme is checked
/// without a change here.
fn check_scheme(name: &str, table: &mut toml::Table, path: &str) -> Option<Checked<()>> {
    auth::RawScheme::check(name, table, path)
}

/// Replaces configured values quoted in a stage-2 message by `this value`.
///
/// Why: stage-2 messages quote the value they reject (`` `x` is not a host
/// name``, `got 31415926535897`); a value in the wrong key may be a secret,
/// and an expanded `${NAME}` would show the variable's value. `values` are
/// every scalar of the file (strings after expansion), lowercase.
pub(super) fn redact(message: &str, values: &std::collections::HashSet<String>) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let rest: Vec<&str> = parts.collect();
    let mut i = 0;
    while i < rest.len() {
        // rest[i] is inside backticks when a closing one follows.
        if i + 1 < rest.len() {
            if values.contains(&rest[i].to_ascii_lowercase()) {
                out.push_str("this value");
            } else {
                out.push('`');
                out.push_str(rest[i]);
                out.push('`');
            }
            out.push_str(rest[i + 1]);
            i += 2;
        } else {
            out.push('`');
            out.push_str(rest[i]);
            i += 1;
        }
    }
    // `…, got N`: the number as configured.
    if let Some(at) = out.rfind(", got ") {
        if values.contains(&out[at + ", got ".len()..].to_ascii_lowercase()) {
            out.truncate(at);
        }
    }
    out
}

/// Every scalar value in `tree`, as text, lowercase (for [`redact`]).
pub(super) fn scalars(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::collections::HashSet<String> {
    fn walk(
        v: &toml::Value,
        env: &dyn Fn(&str) -> Option<String>,
        out: &mut std::collections::HashSet<String>,
    ) {
        match v {
            toml::Value::String(s) => {
                out.insert(s.to_ascii_lowercase());
                if let Ok(e) = expand_env(s, env) {
                    out.insert(e.to_ascii_lowercase());
                }
            }
            toml::Value::Integer(i) => {
                out.insert(i.to_string());
            }
            toml::Value::Float(f) => {
                out.insert(f.to_string());
            }
            toml::Value::Array(a) => a.iter().for_each(|x| walk(x, env, out)),
            toml::Value::Table(t) => t.values().for_each(|x| walk(x, env, out)),
            toml::Value::Boolean(_) | toml::Value::Datetime(_) => {}
        }
    }
    let mut out = std::collections::HashSet::new();
    if let Ok(tree) = text.parse::<toml::Table>() {
        tree.values().for_each(|v| walk(v, env, &mut out));
    }
    out
}

/// True when [`check_scheme`] knows scheme `name`.
#[cfg(test)]
pub(super) fn check_scheme_for_test(name: &str, table: &mut toml::Table) -> bool {
    check_scheme(name, table, "t").is_some()
}
