//! Problems found while validating settings, each with the key path it
//! concerns, and the resolution of `${ENV}` references and secrets.
//!
//! A leaf: config validation and every scheme's settings constructor record
//! their problems here, so a scheme never needs to know which file or API
//! its settings came from.

use std::collections::HashSet;
use std::fmt;

use serde::de::DeserializeOwned;

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
    /// A problem at a full key path (`site[2].auth.scheme`).
    pub fn at(path: &str, message: impl Into<String>) -> Problem {
        Problem {
            path: path.to_owned(),
            message: message.into(),
        }
    }

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
    warnings: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl<'e> Ctx<'e> {
    /// A context resolving environment variables with `env`.
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            problems: Vec::new(),
            warnings: Vec::new(),
            env,
        }
    }

    /// Records a warning at `path`: a setting that is valid but weakens
    /// what the signatures protect.
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// The warnings recorded so far, taken out.
    pub fn take_warnings(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.warnings)
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

    /// Resolves a secret: a whole-value `${NAME}` reads environment variable
    /// NAME; anything else is the literal key, with `$$` standing for `$`.
    /// A `$NAME`, an unclosed `${`, or text around a `${NAME}` (`k-${NAME}`)
    /// is a problem, not a literal key. Empty or oversized secrets are
    /// problems.
    ///
    /// Why so strict: a typo in a reference must not silently become the
    /// key, and a key assembled from pieces is hard to rotate. Messages
    /// never quote `raw` (it may be the key itself) nor a variable's value.
    pub fn secret(&mut self, path: &str, raw: &str) -> Option<Secret> {
        let value = match secret_source(raw) {
            Ok(SecretSource::Env(name)) => match (self.env)(name) {
                Some(v) if !v.is_empty() => v,
                _ => {
                    self.problem(path, format!("environment variable {name} is not set or empty; export it or write the key inline"));
                    return None;
                }
            },
            Ok(SecretSource::Literal(v)) => v,
            Err(message) => {
                self.problem(path, message);
                return None;
            }
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
        self.extend(param_name_problems(&[("", name)]), |_| path.to_owned());
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

// ---------------------------------------------------------------------------
// `${ENV}` references.

/// Keys whose string values are secrets: they are resolved by
/// [`Ctx::secret`] alone (whole-value `${NAME}` or a literal), never by the
/// `${ENV}` pass over the rest of a settings tree, so a secret is resolved
/// exactly once. A list under one of these keys holds secrets too.
///
/// Contract: a scheme calls [`Ctx::secret`] (or
/// [`Ctx::primary_and_backup`]) on exactly the fields named here.
pub const SECRET_KEYS: &[&str] = &[
    "key",
    "backup_key",
    "keys",
    "access_key",
    "secret_key",
    "session_secret",
    "api_token",
    "salt",
];

/// Keys whose text has a `$` syntax of its own and is used as written, never
/// expanded: the nginx `secure_link_md5` `template` (`$uri`, `${host}`).
pub const VERBATIM_KEYS: &[&str] = &["template"];

/// One piece of a string value: literal text or a `${NAME}` reference.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits `raw` into text and `${NAME}` references. `$$` is a literal `$`;
/// a `$` before anything but `{`, `$`, a letter or `_` is literal too.
/// Errors never quote `raw`.
fn pieces(raw: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        if at > 0 {
            out.push(Piece::Text(&rest[..at]));
        }
        let after = &rest[at + 1..];
        match after.bytes().next() {
            Some(b'$') => {
                out.push(Piece::Text("$"));
                rest = &after[1..];
            }
            Some(b'{') => {
                let Some(close) = after.find('}') else {
                    return Err(
                        "has a `${` without its closing `}`; write ${NAME}, or $$ for a literal $"
                            .to_owned(),
                    );
                };
                let name = &after[1..close];
                if !is_env_name(name) {
                    return Err("has a `${…}` that is not a valid environment variable reference; write ${NAME} with NAME of letters, digits and _ (not starting with a digit), or $$ for a literal $".to_owned());
                }
                out.push(Piece::Var(name));
                rest = &after[close + 1..];
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                return Err("has a `$` followed by a name; write ${NAME} to use an environment variable, or $$ for a literal $".to_owned());
            }
            _ => {
                out.push(Piece::Text("$"));
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Expands every `${NAME}` in a (non-secret) string value with `env`; `$$`
/// is a literal `$`. Errors name the variable, never its value nor `raw`;
/// all of them are returned.
pub fn expand_env(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(raw.len());
    let mut errors = Vec::new();
    for piece in pieces(raw).map_err(|e| vec![e])? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => match env(name) {
                Some(v) if !v.is_empty() => out.push_str(&v),
                _ => errors.push(format!(
                    "environment variable {name} is not set or empty; export it"
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Where a secret comes from, as written in a secret field.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretSource<'a> {
    /// The whole value was `${NAME}`.
    Env(&'a str),
    /// A literal key (`$$` already turned into `$`).
    Literal(String),
}

/// Reads a secret field: a whole-value `${NAME}`, or a literal with no
/// `${…}` and no `$NAME`. Errors never quote `raw`.
pub fn secret_source(raw: &str) -> Result<SecretSource<'_>, String> {
    let pieces = pieces(raw)?;
    match pieces.as_slice() {
        [Piece::Var(name)] => Ok(SecretSource::Env(name)),
        p if p.iter().any(|x| matches!(x, Piece::Var(_))) => Err(
            "mixes text and ${…}: a secret is either one whole ${NAME} or the key written inline; put the whole key in the variable".to_owned(),
        ),
        p => Ok(SecretSource::Literal(
            p.iter()
                .map(|x| match x {
                    Piece::Text(t) | Piece::Var(t) => *t,
                })
                .collect(),
        )),
    }
}

// ---------------------------------------------------------------------------
// Structural checking: every wrong key and type of a settings tree at once.

/// Most repairs [`deserialize_checked`] makes before giving up.
const MAX_REPAIRS: usize = 200;

/// The values tried, in order, for a required key that is missing, so the
/// rest of the tree can still be checked.
fn placeholder(attempt: usize) -> Option<toml::Value> {
    Some(match attempt {
        0 => toml::Value::String(String::new()),
        1 => toml::Value::Integer(0),
        2 => toml::Value::Boolean(false),
        3 => toml::Value::Array(Vec::new()),
        4 => toml::Value::Table(toml::Table::new()),
        _ => return None,
    })
}

/// What [`deserialize_checked`] found.
pub struct Checked<T> {
    /// The settings, once every structural problem was worked around (the
    /// offending key removed, a placeholder put in for a missing one);
    /// `None` when the tree could not be repaired.
    pub value: Option<T>,
    /// Every structural problem, with full key paths, in the order found.
    pub problems: Vec<Problem>,
    /// Key paths whose later validation problems are artefacts of the
    /// repairs (a removed key; a table given a placeholder) and should not
    /// be reported; see [`is_under`].
    pub repaired: Vec<String>,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

fn join_path(base: &str, segs: &[Seg]) -> String {
    let mut out = base.to_owned();
    for s in segs {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The TOML table header for a key path: `site[0].auth.rule` → `site.auth.rule`.
fn header_of(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// True when `path` is `root` or lies under it (`root.x`, `root[1]`).
pub fn is_under(path: &str, root: &str) -> bool {
    root.is_empty()
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn value_at<'a>(root: &'a mut toml::Value, segs: &[Seg]) -> Option<&'a mut toml::Value> {
    let mut v = root;
    for s in segs {
        v = match (s, v) {
            (Seg::Key(k), toml::Value::Table(t)) => t.get_mut(k)?,
            (Seg::Index(i), toml::Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Removes the key at `segs` (for a list element: the whole list). Returns
/// the path actually removed, or `None` when nothing could be removed.
fn remove_at(root: &mut toml::Value, segs: &[Seg]) -> Option<Vec<Seg>> {
    let key_at = segs.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    let (parent, last) = (&segs[..key_at], &segs[key_at]);
    let Seg::Key(k) = last else { return None };
    match value_at(root, parent)? {
        toml::Value::Table(t) => t.remove(k).map(|_| segs[..=key_at].to_vec()),
        _ => None,
    }
}

fn set_at(root: &mut toml::Value, segs: &[Seg], value: toml::Value) -> bool {
    let Some((Seg::Key(k), parent)) = segs.split_last() else {
        return false;
    };
    match value_at(root, parent) {
        Some(toml::Value::Table(t)) => {
            t.insert(k.clone(), value);
            true
        }
        _ => false,
    }
}

/// The names serde lists after `expected` in `unknown field`/`unknown
/// variant` messages (names from the code, never from the file).
fn expected_names(message: &str) -> Vec<String> {
    let Some(at) = message.rfind(", expected ") else {
        return Vec::new();
    };
    message[at + ", expected ".len()..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// What a deserialization error says, without the value it quotes.
#[derive(Debug, PartialEq, Eq)]
enum DeError {
    UnknownField(Vec<String>),
    MissingField(String),
    UnknownVariant(Vec<String>),
    /// `given` is serde's kind word (`map`, `sequence`, `integer`, …),
    /// `expected` what the field takes (`a string`, `u64`, `struct X`).
    Mismatch {
        given: String,
        expected: String,
    },
    Other,
}

fn classify(message: &str) -> DeError {
    if message.starts_with("unknown field ") {
        return DeError::UnknownField(expected_names(message));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        // A field name from the code: no backtick inside.
        return DeError::MissingField(rest.split('`').next().unwrap_or_default().to_owned());
    }
    if message.starts_with("unknown variant ") {
        return DeError::UnknownVariant(if message.ends_with("there are no variants") {
            Vec::new()
        } else {
            expected_names(message)
        });
    }
    if message.starts_with("wanted exactly 1 element") {
        // toml's words for a table where a name (enum) was expected.
        return DeError::Mismatch {
            given: "map".to_owned(),
            expected: "string only".to_owned(),
        };
    }
    let given = if let Some(rest) = message.strip_prefix("invalid type: ") {
        rest.split([' ', ',']).next().unwrap_or_default()
    } else if message.starts_with("invalid value: ") || message.starts_with("invalid length ") {
        "value"
    } else {
        return DeError::Other;
    };
    match message.rfind(", expected ") {
        Some(at) => DeError::Mismatch {
            given: given.to_owned(),
            expected: message[at + ", expected ".len()..].trim().to_owned(),
        },
        None => DeError::Other,
    }
}

/// True for serde's and toml's words for "a name from a fixed list" (enum).
fn is_enum(expected: &str) -> bool {
    expected.starts_with("enum ") || expected == "string only"
}

/// Rewords a serde/toml deserialization message for an operator, without
/// the value it quotes (`invalid type: integer `31415926535897`, expected a
/// string` → `must be text in quotes`). `key` is the key the message is
/// about (for units: `_secs` → seconds), `path` its full key path (for the
/// `[[table]]` advice).
pub fn describe_de_error(message: &str, key: &str, path: &str) -> String {
    match classify(message) {
        DeError::UnknownField(known) if known.is_empty() => {
            format!("unknown key `{key}`; this table takes no keys")
        }
        DeError::UnknownField(known) => {
            format!("unknown key `{key}`; known keys here: {}", known.join(", "))
        }
        DeError::MissingField(name) => format!("required key `{name}` is missing"),
        DeError::UnknownVariant(names) if names.is_empty() => "has no accepted values".to_owned(),
        DeError::UnknownVariant(names) => format!("must be one of {}", names.join(", ")),
        DeError::Mismatch { given, expected } => describe_mismatch(&given, &expected, key, path),
        DeError::Other => "has a value of the wrong type or form".to_owned(),
    }
}

fn describe_mismatch(given: &str, expected: &str, key: &str, path: &str) -> String {
    let header = header_of(path);
    let is_list = expected.starts_with("a sequence") || expected.starts_with("a vec");
    let is_table = expected.starts_with("struct ") || expected.starts_with("a map");
    if given == "map" && is_list {
        return format!(
            "write [[{header}]] (each entry is its own [[{header}]] table), not [{header}] or a single table"
        );
    }
    if given == "sequence" && is_table {
        return format!("write [{header}] once (a single table), not [[{header}]] or a list");
    }
    let unit = if key.ends_with("_secs") {
        " of seconds"
    } else if key.ends_with("_bytes") {
        " of bytes"
    } else {
        ""
    };
    let max = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => None,
        _ => {
            return match expected {
                "a string" | "a borrowed string" | "path string" | "a character" => {
                    "must be text in quotes".to_owned()
                }
                "a boolean" => "must be true or false, without quotes".to_owned(),
                "f32" | "f64" => "must be a number, without quotes".to_owned(),
                e if e.starts_with('i') && e[1..].bytes().all(|b| b.is_ascii_digit()) => {
                    format!("must be a whole number{unit}, without quotes")
                }
                _ if is_list => "must be a list in brackets, e.g. [\"a\", \"b\"]".to_owned(),
                _ if is_table => format!("must be a table ([{header}] or {{ … }})"),
                e if is_enum(e) => {
                    "must be one of the names this key accepts, in quotes".to_owned()
                }
                _ => "has a value of the wrong type or form".to_owned(),
            }
        }
    };
    match max {
        Some(max) => format!("must be a whole number{unit} from 0 to {max}, without quotes"),
        None => format!("must be a whole number{unit} (0 or more), without quotes"),
    }
}

/// Deserializes `T` from a settings tree and reports *every* structural
/// problem (unknown key, wrong type, `[x]` for `[[x]]`, missing key, unknown
/// name) with its key path under `base`, not only the first: after each
/// error the offending key is removed (or a placeholder put in for a
/// missing one) and deserialization retried. `tree` is left repaired.
///
/// Messages come from [`describe_de_error`]: they name keys, never values.
pub fn deserialize_checked<T: DeserializeOwned>(tree: &mut toml::Table, base: &str) -> Checked<T> {
    let mut root = toml::Value::Table(std::mem::take(tree));
    let checked = check_value(&mut root, base);
    if let toml::Value::Table(t) = root {
        *tree = t;
    }
    checked
}

fn check_value<T: DeserializeOwned>(root: &mut toml::Value, base: &str) -> Checked<T> {
    let mut out = Checked {
        value: None,
        problems: Vec::new(),
        repaired: Vec::new(),
    };
    let mut state = Repairs::default();
    for _ in 0..MAX_REPAIRS {
        let err = match serde_path_to_error::deserialize::<_, T>(root.clone()) {
            Ok(v) => {
                out.value = Some(v);
                return out;
            }
            Err(e) => e,
        };
        let mut segs = Vec::new();
        for s in err.path().iter() {
            match s {
                serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                _ => break,
            }
        }
        let message = err.inner().message().to_owned();
        if !state.repair(root, segs, &message, base, &mut out) {
            break;
        }
    }
    // Gave up: the whole tree is unusable.
    if out.problems.is_empty() {
        out.problems.push(Problem {
            path: if base.is_empty() {
                "config".to_owned()
            } else {
                base.to_owned()
            },
            message: "could not be read as settings".to_owned(),
        });
    }
    out.repaired.push(base.to_owned());
    out
}

/// What [`check_value`] remembers between its repairs.
#[derive(Default)]
struct Repairs {
    /// Placeholders in use: path → attempt, and whether a name was tried.
    placeholders: std::collections::HashMap<Vec<Seg>, (usize, bool)>,
    /// Paths whose wrong value was reported (a later `missing` is the same problem).
    reported: HashSet<Vec<Seg>>,
    /// Enum fields given a non-string, probed with "" to learn their names.
    probing: HashSet<Vec<Seg>>,
}

impl Repairs {
    /// One repair step; false when no repair is possible.
    fn repair<T>(
        &mut self,
        root: &mut toml::Value,
        mut segs: Vec<Seg>,
        message: &str,
        base: &str,
        out: &mut Checked<T>,
    ) -> bool {
        let Repairs {
            placeholders,
            reported,
            probing,
        } = self;
        let kind = classify(message);
        if let DeError::MissingField(name) = &kind {
            segs.push(Seg::Key(name.clone()));
        }
        let key = segs
            .iter()
            .rev()
            .find_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .unwrap_or(base);
        let path = join_path(base, &segs);

        // A placeholder we put in did not fit: try the next kind of value.
        if let Some((attempt, named)) = placeholders.get_mut(&segs) {
            let next = match &kind {
                DeError::UnknownVariant(names) if !*named && !names.is_empty() => {
                    *named = true;
                    Some(toml::Value::String(names[0].clone()))
                }
                _ => {
                    *attempt += 1;
                    placeholder(*attempt)
                }
            };
            return next.is_some_and(|v| set_at(root, &segs, v));
        }
        // A probe for an enum's names answered.
        if probing.remove(&segs) {
            let message = match &kind {
                DeError::UnknownVariant(names) if !names.is_empty() => {
                    format!("must be one of {}, in quotes", names.join(", "))
                }
                _ => "must be one of the names this key accepts, in quotes".to_owned(),
            };
            out.problems.push(Problem {
                path: path.clone(),
                message,
            });
            reported.insert(segs.clone());
            out.repaired.push(path);
            return remove_at(root, &segs).is_some();
        }
        match kind {
            DeError::MissingField(_) => {
                if !reported.contains(&segs) {
                    out.problems.push(Problem {
                        path: path.clone(),
                        message: describe_de_error(message, key, &path),
                    });
                }
                let parent = join_path(base, &segs[..segs.len() - 1]);
                out.repaired.push(parent);
                placeholders.insert(segs.clone(), (0, false));
                placeholder(0).is_some_and(|v| set_at(root, &segs, v))
            }
            DeError::Mismatch { expected, .. }
                if is_enum(&expected)
                    && set_at(root, &segs, toml::Value::String(String::new())) =>
            {
                probing.insert(segs.clone());
                true
            }
            // A table read as a sequence: serde lets a struct be given as a
            // list, so `[[server]]` fails on its first element's first field.
            DeError::Mismatch { given, expected }
                if given == "map"
                    && matches!(segs.last(), Some(Seg::Index(_)))
                    && !expected.starts_with("struct ")
                    && !expected.starts_with("a map") =>
            {
                segs.pop();
                let path = join_path(base, &segs);
                let header = header_of(&path);
                out.problems.push(Problem {
                    path: path.clone(),
                    message: format!(
                        "write [{header}] once (a single table), not [[{header}]] or a list"
                    ),
                });
                out.repaired.push(path);
                remove_at(root, &segs).is_some()
            }
            _ => {
                out.problems.push(Problem {
                    path: path.clone(),
                    message: describe_de_error(message, key, &path),
                });
                match remove_at(root, &segs) {
                    Some(removed) => {
                        out.repaired.push(join_path(base, &removed));
                        reported.insert(removed);
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// A name as given in the config, else the scheme's default.
pub fn given_or(given: Option<&str>, default: &str) -> String {
    given.unwrap_or(default).to_owned()
}

/// Longest value a settings problem quotes, in characters.
const MAX_QUOTED: usize = 64;

/// A vendor-supplied value for a problem message: quoted, escaped and cut to
/// `MAX_QUOTED` (64) characters. Why: vendor answers are not trusted text, and
/// the message ends up in a log line. Never used for a key, nor for a value
/// from the config file (those problems name the key path instead).
pub fn quoted(s: &str) -> String {
    let cut: String = s.chars().take(MAX_QUOTED).collect();
    format!("{cut:?}")
}

/// The rule every scheme applies to the query parameter names it reads,
/// given as (settings field, name): each is usable ([`usable_param_name`])
/// and differs from every earlier one. Problems are named by the field.
pub fn param_name_problems(names: &[(&str, &str)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, (field, name)) in names.iter().enumerate() {
        if !usable_param_name(name) {
            problems.push(Problem::field(
                field,
                "is not a usable query parameter name; use 1–64 of A-Z a-z 0-9 _ - .",
            ));
        } else if names.iter().take(i).any(|(_, earlier)| earlier == name) {
            problems.push(Problem::field(
                field,
                "is already another auth parameter's name; the names must differ",
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn dollar_rules() {
        let env = |n: &str| (n == "A").then(|| "Q".to_owned());
        assert_eq!(expand_env("${A}-${A}$$ $1 $", &env).unwrap(), "Q-Q$ $1 $");
        for bad in ["$A", "${A", "${1A}", "${}", "${B}"] {
            let e = expand_env(bad, &env).unwrap_err();
            assert!(!e.join(" ").contains('Q'), "{e:?}");
        }
        assert_eq!(secret_source("${A}").unwrap(), SecretSource::Env("A"));
        assert_eq!(
            secret_source("a$$b$1").unwrap(),
            SecretSource::Literal("a$b$1".to_owned())
        );
        for bad in ["k-${A}", "${A}${A}", "$A", "${A"] {
            assert!(secret_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn de_errors_are_reworded_without_the_value() {
        let cases = [
            (
                "invalid type: integer `31415926535897`, expected a string",
                "k",
                "must be text in quotes",
            ),
            (
                "invalid type: string \"31415926535897\", expected u64",
                "ttl_secs",
                "whole number of seconds",
            ),
            (
                "invalid value: integer `-31415926535897`, expected u16",
                "deny_status",
                "from 0 to 65535",
            ),
            (
                "unknown variant `31415926535897`, expected `a` or `b`",
                "k",
                "must be one of a, b",
            ),
            (
                "invalid type: map, expected a sequence",
                "site",
                "write [[site]]",
            ),
            (
                "missing field `origin`",
                "origin",
                "required key `origin` is missing",
            ),
        ];
        for (message, key, want) in cases {
            let got = describe_de_error(message, key, key);
            assert!(got.contains(want), "{message}: {got}");
            assert!(!got.contains("31415926535897"), "{got}");
        }
    }
}
