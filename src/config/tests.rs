use super::*;
use http::StatusCode;

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
max_connections_per_ip = 2000000

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
        ("server.max_connections_per_ip", "between 0 and 1000000"),
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
        ("site[2].origin_ca_file", "cannot load the CA file"),
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
    // Found by validation, not when the proxy starts (or silently port 80).
    for bad in [
        "http://127.0.0.1:abc",
        "http://127.0.0.1:0",
        "http://o:",
        "http://o:99999",
    ] {
        let p = problems(&MINIMAL.replace("http://127.0.0.1:8000", bad));
        assert!(has(&p, "site[0].origin", "port"), "{bad}: {p:?}");
    }
    let p = problems(&MINIMAL.replace("http://127.0.0.1:8000", "https://-bad-.example"));
    assert!(has(&p, "site[0].origin", "TLS server name"), "{p:?}");
    for good in [
        "https://[::1]:8443",
        "https://127.0.0.1",
        "http://-odd-.example",
    ] {
        assert!(
            parse(&MINIMAL.replace("http://127.0.0.1:8000", good)).is_ok(),
            "{good}"
        );
    }
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

/// Every problem of `text`, rendered as an operator sees it.
fn rendered(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match Config::from_toml(text, Path::new("."), env) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("config was accepted"),
    }
}

#[test]
fn structural_problems_of_every_site_are_reported_together() {
    let text = r#"
state_dir = 5
[server]
listen = "127.0.0.1:80"
bogus = 1
[[site]]
id = "a"
domains = ["a.example.com"]
origin = 8080
colour = "blue"
[site.hls]
child_auth = "nope"
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
scheme = "wangsu"
[[vendor]]
name = "v"
kind = "tencnet"
access_key = "a"
secret_key = "s"
"#;
    let p = problems(text);
    for (path, needle) in [
        ("state_dir", "must be text in quotes"),
        ("server.listen", "must be a list"),
        (
            "server.bogus",
            "unknown key `bogus`; known keys here: listen",
        ),
        ("site[0].origin", "must be text in quotes"),
        ("site[0].colour", "unknown key `colour`"),
        (
            "site[0].hls.child_auth",
            "must be one of session, session_directory, propagate",
        ),
        (
            "site[0].auth.auth_delta_secs",
            "must be a whole number of seconds",
        ),
        ("site[1].strip_auth_params", "must be true or false"),
        ("site[1].auth.rule", "required key `rule` is missing"),
        (
            "vendor[0].kind",
            "must be one of tencent, volcengine, wangsu, aliyun, aliyun_vod",
        ),
    ] {
        assert!(has(&p, path, needle), "{path}: {needle} not in {p:#?}");
    }
    assert_eq!(p.len(), 10, "{p:#?}");
    let text = format!("{p:?}");
    assert!(
        !text.contains("nope") && !text.contains("tencnet"),
        "{text}"
    );
}

#[test]
fn single_bracket_site_table_gets_the_fix() {
    let text = MINIMAL.replace("[[site]]", "[site]");
    let p = problems(&text);
    assert!(has(&p, "site", "write [[site]]"), "{p:?}");
    assert_eq!(p.len(), 1, "{p:?}");
    let text = r#"
[[server]]
listen = ["127.0.0.1:80"]
"#;
    let p = problems(text);
    assert!(has(&p, "server", "write [server] once"), "{p:?}");
}

#[test]
fn structural_and_validation_problems_are_reported_together() {
    let text = MINIMAL
        .replace("id = \"live\"", "id = \"Live\"\ncolour = 1")
        .replace("key = \"k1\"", "key = \"${NOPE}\"");
    let p = problems(&text);
    assert!(has(&p, "site[0].colour", "unknown key"), "{p:?}");
    assert!(has(&p, "site[0].id", "not a usable site id"), "{p:?}");
    assert!(has(&p, "site[0].auth.key", "NOPE is not set"), "{p:?}");
    // A required key with the wrong type is one problem, not two.
    let p = problems(&MINIMAL.replace("origin = \"http://127.0.0.1:8000\"", "origin = 80"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "site[0].origin", "must be text in quotes"), "{p:?}");
}

#[test]
fn no_message_quotes_a_configured_value() {
    let env = |name: &str| (name == "ORIGIN").then(|| "not a url 7777".to_owned());
    let cases = [
        MINIMAL.replace("key = \"k1\"", "key = 31415926535897"),
        MINIMAL.replace(
            "key = \"k1\"",
            "key = \"k1\"\nauth_delta_secs = -31415926535897",
        ),
        MINIMAL.replace(
            "[site.auth]",
            "[site.hls]\nsession_secret = 1.5\n[site.auth]",
        ),
        MINIMAL.replace(
            "[site.auth]",
            "[site.hls]\nsession_secret = 31415926535897\n[site.auth]",
        ),
        MINIMAL.replace(
            "id = \"live\"",
            "id = \"live\"\nconnect_timeout_secs = 31415926535897",
        ),
        MINIMAL.replace(
            "id = \"live\"",
            "id = \"live\"\ndeny_status = 31415926535897",
        ),
        MINIMAL.replace(
            "id = \"live\"",
            "id = \"31415926535897\"\nvendor = \"31415926535897\"",
        ),
        MINIMAL.replace(
            "[site.auth]",
            "[site.hls]\nchild_auth = \"31415926535897\"\n[site.auth]",
        ),
        MINIMAL.replace("scheme = \"tencent\"", "scheme = \"31415926535897\""),
        MINIMAL.replace("\"Play.Example.com\"", "\"31415926535897 x\""),
        MINIMAL.replace("\"http://127.0.0.1:8000\"", "\"${ORIGIN}\""),
        MINIMAL.replace(
            "key = \"k1\"",
            "key = \"k1\"\nbackup_key = [31415926535897]",
        ),
    ];
    for text in cases {
        let out = rendered(&text, &env);
        assert!(!out.contains("31415926535897"), "{out}");
        assert!(!out.contains("7777"), "{out}");
        assert!(out.contains("site[0]"), "{out}");
    }
}

#[test]
fn toml_syntax_errors_give_the_position_but_not_the_text() {
    for (text, line) in [
        (MINIMAL.replace("key = \"k1\"", "key = 31415926535897x"), 8),
        (MINIMAL.replace("key = \"k1\"", "key = 31415926535897"), 0),
        (MINIMAL.replace("key = \"k1\"", "key = \"31415926535897"), 8),
        (MINIMAL.replace("key = \"k1\"", "key = x31415926535897"), 8),
        (MINIMAL.replace("key = \"k1\"", "31415926535897"), 8),
        (
            MINIMAL.replace("key = \"k1\"", "key = 1\nkey = 31415926535897"),
            9,
        ),
    ] {
        let out = rendered(&text, &|_| None);
        assert!(!out.contains("31415926535897"), "{out}");
        if line > 0 {
            assert!(out.contains(&format!("line {line}")), "{out}");
        }
    }
}

#[test]
fn malformed_secret_references_are_errors_not_keys() {
    let env = |name: &str| (name == "VAR").then(|| "from-env".to_owned());
    for raw in ["$VAR", "k-${VAR}", "${VAR", "${VAR}x", "${1X}", "${}"] {
        let text = MINIMAL.replace("key = \"k1\"", &format!("key = \"{raw}\""));
        let p = match Config::from_toml(&text, Path::new("."), &env) {
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => panic!("{raw}: {e}"),
            Ok(_) => panic!("{raw} was accepted as a key"),
        };
        assert_eq!(p.len(), 1, "{raw}: {p:?}");
        assert_eq!(p[0].path, "site[0].auth.key", "{raw}: {p:?}");
        assert!(!p[0].message.contains("VAR}") || raw == "${VAR", "{p:?}");
    }
    // The same rules for vendor secrets and session secrets.
    let text = format!(
        "{MINIMAL}[site.hls]\nsession_secret = \"s-${{VAR}}\"\n[[vendor]]\nname = \"v\"\nkind = \"tencent\"\naccess_key = \"$VAR\"\nsecret_key = \"${{VAR\"\n"
    );
    let p = match Config::from_toml(&text, Path::new("."), &env) {
        Err(ConfigError::Invalid(p)) => p,
        _ => panic!("accepted"),
    };
    for path in [
        "site[0].hls.session_secret",
        "vendor[0].access_key",
        "vendor[0].secret_key",
    ] {
        assert!(p.iter().any(|x| x.path == path), "{path}: {p:?}");
    }
    // `$$` is a literal `$`, and a whole `${VAR}` still works.
    let c = Config::from_toml(
        &MINIMAL.replace("key = \"k1\"", "key = \"a$$b\"\nbackup_key = \"${VAR}\""),
        Path::new("."),
        &env,
    )
    .unwrap();
    let keys: Vec<&str> = c.sites[0].keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, ["a$b", "from-env"]);
}

#[test]
fn env_references_work_in_every_string_value() {
    let env = |name: &str| match name {
        "ORIGIN" => Some("http://127.0.0.1:8001".to_owned()),
        "DOMAIN" => Some("env.example.com".to_owned()),
        "SITE" => Some("live".to_owned()),
        _ => None,
    };
    let text = MINIMAL
        .replace("\"http://127.0.0.1:8000\"", "\"${ORIGIN}/base\"")
        .replace(
            "[\"Play.Example.com\"]",
            "[\"${DOMAIN}\", \"cost-$$5.example.com\"]",
        )
        .replace("id = \"live\"", "id = \"${SITE}\"");
    let c = Config::from_toml(&text, Path::new("."), &env);
    // `$` is not allowed in a host name, so only the domain list complains.
    let p = match c {
        Err(ConfigError::Invalid(p)) => p,
        _ => panic!("expected the $ domain to be rejected"),
    };
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "site[0].domains[1]");
    let text = text.replace(", \"cost-$$5.example.com\"", "");
    let c = Config::from_toml(&text, Path::new("."), &env).unwrap();
    assert_eq!(c.sites[0].id, "live");
    assert_eq!(c.sites[0].domains, ["env.example.com"]);
    assert_eq!(c.sites[0].origin.authority.as_str(), "127.0.0.1:8001");
    assert_eq!(c.sites[0].origin.base_path, "/base");
    // Unset, malformed and `$NAME` references name the key, never a value.
    let text = MINIMAL
        .replace("\"http://127.0.0.1:8000\"", "\"${NOPE}\"")
        .replace("[\"Play.Example.com\"]", "[\"$DOMAIN\"]")
        .replace("id = \"live\"", "id = \"${SITE\"");
    let p = problems(&text);
    assert!(
        has(&p, "site[0].origin", "environment variable NOPE is not set"),
        "{p:?}"
    );
    assert!(has(&p, "site[0].domains[0]", "write ${NAME}"), "{p:?}");
    assert!(has(&p, "site[0].id", "without its closing"), "{p:?}");
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn nginx_template_keeps_its_own_dollar_syntax() {
    let text = MINIMAL.replace(
        "scheme = \"tencent\"",
        "scheme = \"nginx_secure_link\"\ntemplate = \"$secure_link_expires${uri} $key\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.sites[0].verifier.scheme(), "nginx_secure_link");
}

#[test]
fn every_scheme_is_checked() {
    for name in crate::auth::SCHEME_NAMES {
        let mut table = toml::Table::new();
        assert!(
            parse::check_scheme_for_test(name, &mut table),
            "scheme {name} is not structurally checked in config/parse.rs"
        );
    }
}

#[test]
fn file_name_is_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        MINIMAL.replace("id = \"live\"", "colour = 1\nid = \"live\""),
    )
    .unwrap();
    let e = Config::load(&file).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!("config file {} has 1 problem(s):", file.display())),
        "{e}"
    );
    std::fs::write(&file, "[[site]\n").unwrap();
    let e = Config::load(&file).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!(
            "config file {} is not valid TOML: line 1",
            file.display()
        )),
        "{e}"
    );
}

#[test]
fn unquoted_dates_are_type_errors_not_keys() {
    let text = MINIMAL.replace(
        "id = \"live\"",
        "id = \"live\"\nvendor_domain = 1979-05-27T07:32:00Z",
    );
    let problems = problems(&text);
    let p = problems
        .iter()
        .find(|p| p.path == "site[0].vendor_domain")
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert!(p.message.contains("must be text in quotes"), "{p}");
    assert!(!p.message.contains("1979"), "{p}");
}

#[test]
fn push_keys_are_secrets_and_an_empty_list_is_a_problem() {
    let with = |push: &str| format!("{MINIMAL}[site.push]\n{push}\n");
    let c = parse(&with("keys = [\"${PLAY_KEY}\", \"p2\"]")).unwrap();
    let push = &c.sites[0].push_keys;
    assert_eq!(push.len(), 2);
    assert_eq!(push.primary().unwrap().expose(), "from-env");
    assert!(parse(MINIMAL).unwrap().sites[0].push_keys.is_empty());

    let p = problems(&with("keys = []"));
    assert!(
        has(&p, "site[0].push.keys", "at least one push key"),
        "{p:?}"
    );
    let p = problems(&with("keys = [\"${NOPE}\", \"k-${PLAY_KEY}\"]"));
    assert!(has(&p, "site[0].push.keys[0]", "NOPE is not set"), "{p:?}");
    assert!(has(&p, "site[0].push.keys[1]", "mixes text"), "{p:?}");
    // The message never quotes a key.
    assert!(p.iter().all(|x| !x.message.contains("from-env")), "{p:?}");
    let p = problems(&with("key = \"x\""));
    assert!(
        p.iter().any(|x| x.path.starts_with("site[0].push")),
        "{p:?}"
    );
}

/// A site left out for its own problems does not shift the checks made on
/// the sites after it: each is judged with its own `[site.auth]`, and
/// reported at its own index.
#[test]
fn an_invalid_site_does_not_shift_the_vendor_scheme_check() {
    let text = r#"
[[vendor]]
name = "tc"
kind = "tencent"
access_key = "AKID"
secret_key = "secret"

[[site]]
id = "broken"
domains = ["a.example.com"]
origin = "not a url"
[site.auth]
scheme = "tencent"
key = "k"

[[site]]
id = "synced"
domains = ["b.example.com"]
origin = "http://127.0.0.1:8000"
vendor = "tc"
[site.auth]
scheme = "nginx_secure_link"
key = "k"
template = "$secure_link_expires$uri $key"
"#;
    let p = problems(text);
    assert!(
        p.iter().any(|p| p.path.starts_with("site[0].origin")),
        "{p:?}"
    );
    assert!(
        has(&p, "site[1].auth.scheme", "supplies tencent keys"),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.path == "site[0].auth.scheme"), "{p:?}");
}

#[test]
fn a_short_session_secret_is_refused() {
    let with = |secret: &str| {
        MINIMAL.replace(
            "[site.auth]",
            &format!("[site.hls]\nsession_secret = \"{secret}\"\n[site.auth]"),
        )
    };
    let p = problems(&with("ninechars"));
    assert!(
        has(&p, "site[0].hls.session_secret", "at least 16"),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.message.contains("ninechars")));
    assert!(parse(&with("sixteen-chars-ok")).is_ok());
}

#[test]
fn trusting_every_address_is_warned_about() {
    let with = |nets: &str| {
        MINIMAL.replace(
            "[site.auth]",
            &format!("trusted_proxies = [{nets}]\n[site.auth]"),
        )
    };
    let c = parse(&with("\"0.0.0.0/0\", \"10.0.0.0/8\"")).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].path, "site[0].trusted_proxies[0]");
    assert!(parse(&with("\"10.0.0.0/8\", \"::1\""))
        .unwrap()
        .warnings
        .is_empty());
}
