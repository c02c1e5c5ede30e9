use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "PLAY_KEY" => Some("from-env".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("."), &env)
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(ConfigError::Invalid(p)) => p,
        Err(e) => panic!("expected validation problems, got {e}"),
        Ok(_) => panic!("expected validation problems, config was accepted"),
    }
}

fn has(problems: &[Problem], path: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.path == path && p.message.contains(needle))
}

const MINIMAL: &str = r#"
[[site]]
id = "live"
domains = ["Play.Example.com"]
origin = "http://127.0.0.1:8000"
[site.auth]
scheme = "tencent"
key = "k1"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(
        c.server.listen,
        vec![DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        c.admin_listen,
        DEFAULT_ADMIN_LISTEN.parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.limits, Limits::default());
    let s = &c.sites[0];
    assert_eq!(s.domains, vec!["play.example.com"]);
    assert!(s.strip_auth_params);
    assert_eq!(s.deny_status, StatusCode::FORBIDDEN);
    assert_eq!(s.origin_host_header, OriginHost::Origin);
    assert_eq!(
        s.connect_timeout,
        Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS)
    );
    assert_eq!(s.keys.len(), 1);
    assert_eq!(s.verifier.scheme(), "tencent");
    assert!(c.site_for_host("play.example.com").is_some());
    assert!(c.site_for_host("other.example.com").is_none());
}

#[test]
fn env_secrets_are_resolved_and_missing_ones_reported() {
    let ok = MINIMAL.replace("key = \"k1\"", "key = \"${PLAY_KEY}\"\nbackup_key = \"b\"");
    let c = parse(&ok).unwrap();
    assert_eq!(c.sites[0].keys.primary().unwrap().expose(), "from-env");
    assert_eq!(c.sites[0].keys.len(), 2);

    let missing = MINIMAL.replace(
        "key = \"k1\"",
        "key = \"${NOPE}\"\nbackup_key = \"${EMPTY}\"",
    );
    let p = problems(&missing);
    assert!(has(&p, "site[0].auth.key", "NOPE is not set"), "{p:?}");
    assert!(
        has(&p, "site[0].auth.backup_key", "EMPTY is not set"),
        "{p:?}"
    );
    let bad = MINIMAL.replace("key = \"k1\"", "key = \"${1X}\"");
    assert!(has(
        &problems(&bad),
        "site[0].auth.key",
        "not a valid environment variable"
    ));
}

#[test]
fn unknown_keys_are_problems_naming_the_key() {
    let text = MINIMAL.replace("origin =", "orign = \"x\"\norigin =");
    let p = problems(&text);
    assert!(
        has(
            &p,
            "site[0].orign",
            "unknown key `orign`; known keys here: id, domains, origin"
        ),
        "{p:?}"
    );
    // Inside [site.auth] the problem names the key, and is reported with the others.
    let text = MINIMAL
        .replace("key = \"k1\"", "key = \"k1\"\nauth_dleta_secs = 5")
        .replace("id = \"live\"", "id = \"Live\"");
    let p = problems(&text);
    assert!(
        has(
            &p,
            "site[0].auth.auth_dleta_secs",
            "unknown key `auth_dleta_secs`"
        ),
        "{p:?}"
    );
    assert!(has(&p, "site[0].id", "not a usable site id"), "{p:?}");
    let text = MINIMAL.replace("key = \"k1\"", "key = \"k1\"\nauth_delta_secs = \"300\"");
    assert!(has(
        &problems(&text),
        "site[0].auth.auth_delta_secs",
        "must be a whole number of seconds"
    ));
    let text = MINIMAL.replace("scheme = \"tencent\"", "scheme = \"tencnet\"");
    let p = problems(&text);
    assert!(
        has(
            &p,
            "site[0].auth.scheme",
            "must be one of tencent, volcengine"
        ),
        "{p:?}"
    );
    assert!(!format!("{p:?}").contains("tencnet"), "{p:?}");
}

#[test]
fn parse_errors_do_not_quote_secrets() {
    let text = MINIMAL.replace("key = \"k1\"", "key = \"SUPERSECRET");
    let e = parse(&text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("line 8"), "{e}");
    assert!(!e.contains("SUPERSECRET"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = ["nope", "127.0.0.1:8080"]
max_header_bytes = 100
header_read_timeout_secs = 0

[admin]
listen = "127.0.0.1:8080"

[[site]]
id = "Live!"
domains = []
origin = "ftp://x"
deny_status = 200
[site.auth]
scheme = "tencent"
key = ""
secret_param = "a b"

[[site]]
id = "b"
domains = ["a.example.com", "A.example.com"]
origin = "http://o/base?x=1"
[site.auth]
scheme = "tencent"
key = " padded "

[[site]]
id = "b"
domains = ["a.example.com"]
origin = "https://o"
origin_ca_file = "/nonexistent/ca.pem"
[site.auth]
scheme = "tencent"
key = "k"
"#;
    let p = problems(text);
    let expect = [
        ("server.listen[0]", "not an IP:port"),
        ("server.max_header_bytes", "between 8192"),
        ("server.header_read_timeout_secs", "between 1"),
        ("admin.listen", "also used by server.listen[1]"),
        ("site[0].id", "not a usable site id"),
        ("site[0].domains", "at least one"),
        ("site[0].origin", "http:// or https://"),
        ("site[0].deny_status", "4xx"),
        ("site[0].auth.key", "must not be empty"),
        ("site[0].auth.secret_param", "not a usable query parameter"),
        ("site[1].domains[1]", "listed twice"),
        ("site[1].origin", "query"),
        ("site[1].auth.key", "whitespace"),
        ("site[2].id", "already the id of site[1]"),
        ("site[2].domains[0]", "already a domain of site[1]"),
        ("site[2].origin_ca_file", "cannot load origin CA file"),
    ];
    for (path, needle) in expect {
        assert!(
            has(&p, path, needle),
            "missing problem {path}: {needle}\n got: {p:#?}"
        );
    }
    // The rendered error lists them all, one per line.
    let rendered = ConfigError::Invalid(p.clone()).to_string();
    assert!(rendered.starts_with(&format!("config has {} problem(s)", p.len())));
    assert_eq!(rendered.lines().count(), p.len() + 1);
}

#[test]
fn no_sites_is_a_problem() {
    let p = problems("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    assert!(has(&p, "site", "no [[site]]"));
}

#[test]
fn tls_listener_needs_a_certificate() {
    let text = format!("[server]\ntls_listen = [\"127.0.0.1:0\"]\n{MINIMAL}");
    let p = problems(&text);
    assert!(has(&p, "server.certificate", "at least one"), "{p:?}");
}

#[test]
fn missing_certificate_files_are_reported() {
    let text = format!(
        "[server]\ntls_listen = [\"127.0.0.1:0\"]\n[[server.certificate]]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\nserver_names = [\"play.example.com\"]\n{MINIMAL}"
    );
    let p = problems(&text);
    assert!(
        has(&p, "server.certificate[0].cert_file", "cannot read"),
        "{p:?}"
    );
    assert!(
        has(&p, "server.certificate[0].key_file", "cannot read"),
        "{p:?}"
    );
}

#[test]
fn origin_forms() {
    let c = parse(&MINIMAL.replace(
        "http://127.0.0.1:8000",
        "https://origin.example.com:8443/base/",
    ))
    .unwrap();
    let o = &c.sites[0].origin;
    assert!(o.tls);
    assert_eq!(o.authority.as_str(), "origin.example.com:8443");
    assert_eq!(o.base_path, "/base");
    let p = problems(&MINIMAL.replace("http://127.0.0.1:8000", "http://u:p@o"));
    assert!(has(&p, "site[0].origin", "user info"));
    let p = problems(&MINIMAL.replace("http://127.0.0.1:8000", "127.0.0.1:8000"));
    assert!(has(&p, "site[0].origin", "http:// or https://"), "{p:?}");
}

#[test]
fn example_configs_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Hex, so schemes that want hex keys (Akamai) accept it too.
        let env = |name: &str| Some(hex::encode(name));
        if let Err(e) = Config::from_toml(&text, &dir, &env) {
            panic!("{} does not validate: {e}", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "no example configs found in {}", dir.display());
}
