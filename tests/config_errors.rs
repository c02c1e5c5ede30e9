//! `streamguard check-config` on broken files: every problem is listed with
//! the file name and key path, exit code 2, and no configured value or
//! environment variable's value is ever printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_streamguard");
const SECRET: &str = "31415926535897";

/// Runs `check-config` on `text`; returns exit code and stderr.
fn check(text: &str, env: &[(&str, &str)]) -> (i32, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamguard.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", file.to_str().unwrap()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), all, file)
}

const SITE: &str = r#"
[[site]]
id = "live"
domains = ["play.example.com"]
origin = "http://127.0.0.1:8000"
[site.auth]
scheme = "tencent"
key = "k1"
"#;

#[test]
fn structural_problems_are_listed_together_with_file_and_key_path() {
    let text = r#"
[server]
listen = "127.0.0.1:80"
[[site]]
id = "a"
domains = ["a.example.com"]
origin = 8000
colour = "blue"
[site.auth]
scheme = "tencent"
key = "k1"
auth_delta_secs = "300"
[[site]]
id = "b"
domains = ["b.example.com"]
origin = "http://127.0.0.1:1"
strip_auth_params = "yes"
[site.auth]
scheme = "tencent"
key = "k2"
"#;
    let (code, out, file) = check(text, &[]);
    assert_eq!(code, 2, "{out}");
    for needle in [
        format!("config file {} has 5 problem(s)", file.display()),
        "server.listen: must be a list".to_owned(),
        "site[0].origin: must be text in quotes".to_owned(),
        "site[0].colour: unknown key `colour`; known keys here: id, domains".to_owned(),
        "site[0].auth.auth_delta_secs: must be a whole number of seconds".to_owned(),
        "site[1].strip_auth_params: must be true or false".to_owned(),
    ] {
        assert!(out.contains(&needle), "missing {needle:?} in: {out}");
    }
    assert!(!out.contains("expected"), "{out}");
}

#[test]
fn single_bracket_site_gets_the_fix() {
    let (code, out, _) = check(&SITE.replace("[[site]]", "[site]"), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("site: write [[site]]"), "{out}");
}

#[test]
fn configured_values_are_never_echoed() {
    let cases = [
        SITE.replace("key = \"k1\"", &format!("key = {SECRET}")),
        SITE.replace(
            "[site.auth]",
            "[site.hls]\nsession_secret = 1.5\n[site.auth]",
        ),
        SITE.replace(
            "[site.auth]",
            &format!("[site.hls]\nsession_secret = {SECRET}\n[site.auth]"),
        ),
        // A secret pasted into a field of another type.
        SITE.replace(
            "id = \"live\"",
            &format!("id = \"live\"\ncut_at_expiry = \"{SECRET}\""),
        ),
        SITE.replace(
            "id = \"live\"",
            &format!("id = \"live\"\nconnect_timeout_secs = {SECRET}"),
        ),
        // An unknown name for an enum.
        SITE.replace(
            "[site.auth]",
            &format!("[site.hls]\nchild_auth = \"{SECRET}\"\n[site.auth]"),
        ),
        SITE.replace("scheme = \"tencent\"", &format!("scheme = \"{SECRET}\"")),
        // TOML syntax errors.
        SITE.replace("key = \"k1\"", &format!("key = {SECRET}x")),
        SITE.replace("key = \"k1\"", &format!("key = \"{SECRET}")),
    ];
    for text in cases {
        let (code, out, _) = check(&text, &[]);
        assert_eq!(code, 2, "{out}");
        assert!(!out.contains(SECRET), "{out}");
        assert!(!out.contains("1.5"), "{out}");
    }
}

#[test]
fn env_values_are_never_echoed() {
    let text = SITE
        .replace("\"http://127.0.0.1:8000\"", "\"${ORIGIN}\"")
        .replace("[\"play.example.com\"]", "[\"${DOMAIN}\"]");
    let (code, out, _) = check(
        &text,
        &[
            ("ORIGIN", "ftp://31415926535897"),
            ("DOMAIN", "bad domain 31415926535897"),
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("site[0].origin"), "{out}");
    assert!(out.contains("site[0].domains[0]"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
}

#[test]
fn malformed_secret_references_are_errors() {
    for raw in ["$PLAY_KEY", "k-${PLAY_KEY}", "${PLAY_KEY"] {
        let (code, out, _) = check(
            &SITE.replace("key = \"k1\"", &format!("key = \"{raw}\"")),
            &[("PLAY_KEY", SECRET)],
        );
        assert_eq!(code, 2, "{raw}: {out}");
        assert!(out.contains("site[0].auth.key: "), "{raw}: {out}");
        assert!(!out.contains(SECRET), "{out}");
    }
}

#[test]
fn env_references_work_in_plain_values() {
    let text = SITE
        .replace("\"http://127.0.0.1:8000\"", "\"${ORIGIN}\"")
        .replace("[\"play.example.com\"]", "[\"${DOMAIN}\"]")
        .replace("key = \"k1\"", "key = \"${PLAY_KEY}\"");
    let (code, out, _) = check(
        &text,
        &[
            ("ORIGIN", "http://127.0.0.1:8001"),
            ("DOMAIN", "env.example.com"),
            ("PLAY_KEY", "k1"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 site(s)"), "{out}");
}

/// Valid settings whose concatenation cannot say where a client-chosen value
/// ends are accepted with a warning naming the setting (never its value):
/// an nginx template with `$uri` right before `$secure_link_expires`, and
/// Volcengine `md5_custom` fields with AppName next to StreamName.
#[test]
fn ambiguous_signed_strings_are_warned_about() {
    let site = |auth: &str| {
        format!(
            "[[site]]\nid = \"s\"\ndomains = [\"play.example.com\"]\norigin = \"http://127.0.0.1:8000\"\n[site.auth]\n{auth}\n"
        )
    };
    for (auth, setting, warned) in [
        (
            format!("scheme = \"nginx_secure_link\"\nkey = \"{SECRET}\"\ntemplate = \"$uri$secure_link_expires $key\""),
            "site[0].auth.template",
            true,
        ),
        (
            format!("scheme = \"nginx_secure_link\"\nkey = \"{SECRET}\"\ntemplate = \"$secure_link_expires$remote_addr $key\""),
            "site[0].auth.template",
            true,
        ),
        (
            format!("scheme = \"nginx_secure_link\"\nkey = \"{SECRET}\"\ntemplate = \"$secure_link_expires$uri$remote_addr $key\""),
            "site[0].auth.template",
            false,
        ),
        (
            format!("scheme = \"volcengine\"\nkeys = [\"{SECRET}\"]\nalgorithm = \"md5_custom\"\nencrypt_fields = [\"AppName\", \"StreamName\", \"key\", \"volcTime\"]"),
            "site[0].auth.encrypt_fields",
            true,
        ),
        (
            format!("scheme = \"volcengine\"\nkeys = [\"{SECRET}\"]\nalgorithm = \"md5_custom\"\nencrypt_fields = [\"AppName\", \"key\", \"StreamName\", \"volcTime\"]"),
            "site[0].auth.encrypt_fields",
            false,
        ),
    ] {
        let (code, out, _) = check(&site(&auth), &[]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            out.contains(&format!("warning: {setting}: ")),
            warned,
            "{auth}: {out}"
        );
        assert!(!out.contains(SECRET), "{out}");
    }
}
