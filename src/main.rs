//! The `streamguard` command: parses the CLI, sets up logging, and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use streamguard::auth::{authenticate, AuthMode, DenyReason, RequestView, SignOptions, SiteAuth};
use streamguard::config::{Config, LogFormat, SiteConfig};
use streamguard::time::unix_now;
use streamguard::{demo, publish, time, Server};

/// Auth-token validating reverse proxy for HLS and HTTP-FLV origins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy. Without --config, runs the built-in demo (a demo origin
    /// behind a Tencent-signed site) and prints a signed URL to try.
    Run {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Replace the configured plain listeners with this address (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// Replace the configured admin listener address (e.g. 0.0.0.0:9090
        /// in a container).
        #[arg(long, env = "STREAMGUARD_ADMIN_LISTEN")]
        admin_listen: Option<String>,
        /// The demo's player page address (demo only; default: the proxy's
        /// listen address with any free port).
        #[arg(long)]
        page_listen: Option<String>,
    },
    /// Probe a running instance's admin `/healthz` (for container health
    /// checks): exit 0 healthy, 1 not.
    Healthcheck {
        /// Config file whose `admin.listen` to probe.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Admin address to probe (wins over the config).
        #[arg(long, env = "STREAMGUARD_ADMIN_LISTEN")]
        admin_listen: Option<String>,
    },
    /// Validate a config file; exits non-zero and lists every problem when invalid.
    CheckConfig {
        /// Config file (TOML).
        file: PathBuf,
    },
    /// Explain the verdict for a URL: exit 0 allow, 1 deny, 2 usage or config error.
    Check {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Judge as of this unix time instead of now.
        #[arg(long)]
        at: Option<u64>,
        /// Client address, for schemes that bind tokens to an IP.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// A request header, `Name: value` (repeatable), for tokens carried
        /// in headers.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// A cookie, `name=value` (repeatable), for tokens carried in cookies.
        #[arg(long = "cookie", value_name = "NAME=VALUE")]
        cookies: Vec<String>,
        /// Full URL, e.g. http://play.example.com/live/test.flv?txSecret=..&txTime=..
        url: String,
    },
    /// Print the URL signed with its site's primary key.
    Sign {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Valid for this many seconds from now.
        #[arg(
            long,
            conflicts_with = "expires_at",
            required_unless_present = "expires_at"
        )]
        expires_in: Option<u64>,
        /// Valid until this unix time (scheme deltas such as AuthDelta are
        /// subtracted from the time written into the URL). Must be later
        /// than now (or than --at).
        #[arg(long)]
        expires_at: Option<u64>,
        /// Sign as of this unix time instead of now (reproducing a vendor's
        /// documented example, say): --expires-in counts from it and
        /// --expires-at must be later than it.
        #[arg(long)]
        at: Option<u64>,
        /// Client address, for schemes that bind URLs to it (nginx `$remote_addr`).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// Sign this ACL pattern instead of the exact path (Akamai acl mode;
        /// `*` matches any run of characters, `!` separates patterns), so one
        /// URL's token also opens e.g. the segments of a playlist.
        #[arg(long)]
        acl: Option<String>,
        /// Full URL to sign (existing auth params are replaced).
        url: String,
    },
    /// Manage keys at the vendor.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate a domain's key at its vendor without breaking a URL: stage a
    /// new key (accepted, not signing) now, promote it after a sync interval,
    /// retire the old key after the longest URL lifetime. Without --wait the
    /// running server (same state_dir) runs the later steps.
    Rotate {
        /// Config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Vendor account name (`[[vendor]] name`).
        #[arg(long)]
        vendor: String,
        /// The vendor domain (a site's `vendor_domain`, or its domain).
        #[arg(long)]
        domain: String,
        /// Run the later steps here, sleeping until each is due; resumes an
        /// unfinished rotation of the domain.
        #[arg(long)]
        wait: bool,
        /// Tencent: overwrite an AuthBackKey that is not the signing key.
        #[arg(long)]
        replace_backup: bool,
        /// Only print where the domain's rotation stands.
        #[arg(long, conflicts_with_all = ["wait", "replace_backup"])]
        status: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            admin_listen,
            page_listen,
        } => run(config, listen, admin_listen, page_listen).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig { file } => check_config(&file),
        Command::Healthcheck {
            config,
            admin_listen,
        } => healthcheck(config.as_deref(), admin_listen.as_deref()),
        Command::Check {
            config,
            at,
            client_ip,
            headers,
            cookies,
            url,
        } => check(
            &config,
            &CheckRequest {
                at,
                client_ip,
                headers,
                cookies,
                url,
            },
        ),
        Command::Sign {
            config,
            expires_in,
            expires_at,
            at,
            client_ip,
            acl,
            url,
        } => sign(
            &config,
            (expires_in, expires_at, at),
            SignOptions { client_ip, acl },
            &url,
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    config,
                    vendor,
                    domain,
                    wait,
                    replace_backup,
                    status,
                },
        } => keys_rotate(&config, &vendor, &domain, (wait, replace_backup, status)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamguard: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The log format: `STREAMGUARD_LOG_FORMAT` (`text` or `json`), else the
/// config's `[log] format`, else text.
fn log_format(config: Option<&Config>) -> Result<LogFormat> {
    match std::env::var("STREAMGUARD_LOG_FORMAT") {
        Ok(v) if !v.trim().is_empty() => LogFormat::parse(&v)
            .ok_or_else(|| anyhow!("STREAMGUARD_LOG_FORMAT={v}: give text or json")),
        _ => Ok(config.map_or(LogFormat::Text, |c| c.log_format)),
    }
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            match tracing_subscriber::EnvFilter::try_new(&v) {
                Ok(f) => f,
                Err(e) => {
                    // Said, not swallowed: a typo must not silence every log line.
                    eprintln!("streamguard: RUST_LOG={v:?} is not a valid log filter ({e}); logging at info");
                    tracing_subscriber::EnvFilter::new("info")
                }
            }
        }
        _ => tracing_subscriber::EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        // Colour only for a person at a terminal, never in shipped logs.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// `STREAMGUARD_WORKER_THREADS`: runtime worker threads (default: one per core).
fn worker_threads() -> Result<Option<usize>> {
    match std::env::var("STREAMGUARD_WORKER_THREADS") {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(Some(n)),
            _ => bail!("STREAMGUARD_WORKER_THREADS={v}: give a number from 1 to 1024"),
        },
    }
}

fn run(
    config: Option<PathBuf>,
    listen: Vec<String>,
    admin_listen: Option<String>,
    page_listen: Option<String>,
) -> Result<()> {
    if config.is_some() && page_listen.is_some() {
        bail!("--page-listen is for the built-in demo only (run without --config)");
    }
    let loaded = config.as_deref().map(Config::load).transpose()?;
    init_tracing(log_format(loaded.as_ref())?);
    if let Some(c) = &loaded {
        c.log_warnings();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads()? {
        builder.worker_threads(n);
    }
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        let mut demo_page = None;
        let config_path = config.clone();
        let mut config = match loaded {
            Some(c) => c,
            None => {
                let origin = demo::start_origin()
                    .await
                    .context("starting the demo origin")?;
                let key = demo::random_key()
                    .map_err(|e| anyhow!("no randomness for the demo key: {e}"))?;
                let proxy_listen = listen
                    .first()
                    .map_or(streamguard::config::DEFAULT_LISTEN, String::as_str);
                let page_addr: std::net::SocketAddr = match &page_listen {
                    Some(a) => a
                        .parse()
                        .with_context(|| format!("--page-listen {a}: not an IP:port address"))?,
                    None => {
                        let mut a: std::net::SocketAddr =
                            proxy_listen.parse().with_context(|| {
                                format!("--listen {proxy_listen}: not an IP:port address")
                            })?;
                        a.set_port(0);
                        a
                    }
                };
                let page = demo::page::PlayerPage::bind(page_addr)
                    .await
                    .with_context(|| format!("binding the demo player page on {page_addr}"))?;
                let toml = demo::config_toml(
                    origin,
                    proxy_listen,
                    admin_listen
                        .as_deref()
                        .unwrap_or(streamguard::config::DEFAULT_ADMIN_LISTEN),
                    &key,
                    &page.origins(),
                );
                demo_page = Some(page);
                Config::from_toml(&toml, std::path::Path::new("."), &|_| None)?
            }
        };
        // Command-line overrides, applied to the first config and every reload.
        let listen_override: Vec<std::net::SocketAddr> = listen
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--listen {a}: not an IP:port address"))
            })
            .collect::<Result<_>>()?;
        let admin_override: Option<std::net::SocketAddr> = admin_listen
            .as_deref()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--admin-listen {a}: not an IP:port address"))
            })
            .transpose()?;
        let adjust = move |c: &mut Config| {
            if !listen_override.is_empty() {
                c.server.listen.clone_from(&listen_override);
            }
            if let Some(a) = admin_override {
                c.admin_listen = a;
            }
        };
        adjust(&mut config);
        let server = Server::bind(config.clone()).await?;
        let reloader = config_path.map(|p| {
            streamguard::reload::Reloader::new(
                p,
                server.publisher().clone(),
                config.clone(),
                Box::new(adjust),
            )
        });
        for (addr, tls) in server.proxy_addrs() {
            println!(
                "listening proxy {}://{addr}",
                if tls { "https" } else { "http" }
            );
        }
        if let Some(addr) = server.admin_addr() {
            println!("listening admin http://{addr}");
        }
        if let Some(page) = demo_page {
            print_demo_urls(&config, &server, page)?;
        }
        use std::io::Write as _;
        std::io::stdout().flush()?;

        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            // Receivers may all be gone already; nothing else to do then.
            tx.send_replace(true);
        });
        server.run(rx, reloader).await?;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c_or_forever() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                ctrl_c_or_forever().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c_or_forever().await;
}

/// Ctrl-C; if it cannot be watched, never (rather than stopping at once).
async fn ctrl_c_or_forever() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "cannot watch Ctrl-C; stop the process with SIGKILL");
        std::future::pending::<()>().await;
    }
}

fn print_demo_urls(config: &Config, server: &Server, page: demo::page::PlayerPage) -> Result<()> {
    let Some((mut addr, _)) = server.proxy_addrs().into_iter().next() else {
        bail!("the demo has no listener");
    };
    // A wildcard bind (0.0.0.0, e.g. in Docker) is reached as 127.0.0.1, one
    // of the demo site's domains (also for `[::]`: the demo lists no IPv6).
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let site = config
        .sites
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the demo has no site"))?;
    let key = site
        .keys
        .primary()
        .cloned()
        .ok_or_else(|| anyhow!("the demo site has no key"))?;
    let base = format!("http://{addr}");
    let sign = move |p: &str, expires: u64| -> Result<String, String> {
        let s = site
            .verifier
            .sign(&site.domains[0], p, None, &key, expires)
            .map_err(|e| e.to_string())?;
        Ok(format!("{base}{}?{}", s.path, s.query))
    };
    println!();
    println!("streamguard demo: a Tencent-signed site in front of a built-in origin.");
    println!("Signed URLs, valid for one hour:");
    let expires = unix_now() + 3600;
    for p in ["/live/demo.flv", "/live/demo.m3u8"] {
        println!("  {}", sign(p, expires).map_err(|e| anyhow!(e))?);
    }
    println!("Player page (hls.js and mpegts.js, on another origin, so the browser uses CORS):");
    println!("  {}", page.url());
    println!("Try: curl -s '<flv url>' | ffplay -   (or ffplay '<flv url>')");
    println!("     curl -i http://{addr}/live/demo.flv     (denied: missing_token)");
    if let Some(a) = server.admin_addr() {
        println!("Metrics: curl http://{a}/metrics");
    }
    println!();
    page.serve(std::sync::Arc::new(move || {
        let now = unix_now();
        Ok(demo::page::PlayerUrls {
            hls: sign("/live/demo.m3u8", now + 3600)?,
            flv: sign("/live/demo.flv", now + 3600)?,
            // Auth delta is 0 in the demo: a minute ago is expired.
            expired_hls: sign("/live/demo.m3u8", now.saturating_sub(60))?,
        })
    }));
    Ok(())
}

/// A wildcard bind address (`0.0.0.0`, `[::]`) as a client reaches it: on
/// loopback of the same family.
fn reach_on_loopback(addr: &mut std::net::SocketAddr) {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
}

/// GET `/healthz` on the admin listener with a plain HTTP/1.0 request.
fn healthcheck(config: Option<&std::path::Path>, admin: Option<&str>) -> Result<ExitCode> {
    use std::io::{Read as _, Write as _};
    let mut addr: std::net::SocketAddr = match (admin, config) {
        (Some(a), _) => a
            .parse()
            .with_context(|| format!("--admin-listen {a}: not an IP:port address"))?,
        (None, Some(c)) => Config::load(c)?.admin_listen,
        (None, None) => streamguard::config::DEFAULT_ADMIN_LISTEN.parse()?,
    };
    reach_on_loopback(&mut addr);
    let timeout = std::time::Duration::from_secs(3);
    let probe = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = Vec::new();
        s.take(4096).read_to_end(&mut head)?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    };
    match probe() {
        Ok(answer) if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") => {
            println!("healthy ({addr})");
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            println!(
                "unhealthy ({addr}): {}",
                answer.lines().next().unwrap_or("no answer")
            );
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            println!("unhealthy ({addr}): {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn check_config(file: &std::path::Path) -> Result<ExitCode> {
    let config = Config::load(file)?;
    println!(
        "{}: ok ({} site(s), {} listener(s))",
        file.display(),
        config.sites.len(),
        config.server.listen.len() + config.server.tls_listen.len()
    );
    for w in &config.warnings {
        println!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A URL split into what the proxy would see.
fn parse_url(url: &str) -> Result<streamguard::signing::Target> {
    // Not quoted: what was given may hold a signature.
    streamguard::signing::Target::parse(url).map_err(|_| {
        anyhow!("the URL needs a scheme and host, e.g. http://play.example.com/live/s.flv")
    })
}

/// What `check` is asked about.
struct CheckRequest {
    at: Option<u64>,
    client_ip: Option<std::net::IpAddr>,
    headers: Vec<String>,
    cookies: Vec<String>,
    url: String,
}

/// The site serving `host`, as `run` would serve it: its config and its
/// auth joined with the vendor answers saved in `state_dir`.
fn served_site<'c>(config: &'c Config, host: &str) -> Option<(&'c SiteConfig, SiteAuth)> {
    let i = config
        .sites
        .iter()
        .position(|s| s.domains.iter().any(|d| d == host))?;
    let sources = publish::restore(config);
    let auth = publish::site_auths(config, &sources).into_iter().nth(i)?;
    Some((&config.sites[i], auth))
}

/// The request headers given with `--header` and `--cookie`.
fn request_headers(headers: &[String], cookies: &[String]) -> Result<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("--header needs `Name: value`"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| anyhow!("--header: `{}` is not a header name", name.trim()))?;
        let value = http::HeaderValue::from_str(value.trim()).map_err(|_| {
            anyhow!("--header {name}: the value has characters a header cannot carry")
        })?;
        map.append(name, value);
    }
    if !cookies.is_empty() {
        if cookies.iter().any(|c| !c.contains('=')) {
            bail!("--cookie needs `name=value`");
        }
        let value = http::HeaderValue::from_str(&cookies.join("; "))
            .map_err(|_| anyhow!("--cookie: the value has characters a cookie cannot carry"))?;
        map.append(http::header::COOKIE, value);
    }
    Ok(map)
}

/// `label: value` lines with the values aligned.
struct Report(Vec<(String, String)>);

impl Report {
    fn line(&mut self, label: impl Into<String>, value: impl Into<String>) {
        self.0.push((label.into(), value.into()));
    }

    fn print(&self) {
        let width = self
            .0
            .iter()
            .map(|(l, _)| l.len() + 1)
            .max()
            .unwrap_or(0)
            .max(9);
        for (label, value) in &self.0 {
            println!("{:<width$} {value}", format!("{label}:"));
        }
    }
}

fn check(config: &std::path::Path, q: &CheckRequest) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let t = parse_url(&q.url)?;
    let headers = request_headers(&q.headers, &q.cookies)?;
    let now = q.at.unwrap_or_else(unix_now);
    let mut out = Report(Vec::new());
    let Some((site, auth)) = served_site(&config, &t.host) else {
        out.line("host", &t.host);
        out.line(
            "verdict",
            "deny (unknown_host: no site lists this domain; the proxy answers 404)",
        );
        out.print();
        return Ok(ExitCode::from(1));
    };
    out.line(
        "site",
        format!("{} (scheme {})", site.id, auth.verifier.scheme()),
    );
    // As the access log shows it: in-path signatures (Alibaba Cloud B/C)
    // hidden.
    out.line("path", streamguard::proxy::path::for_log(&t.path));
    let pq = match &t.query {
        Some(q) => format!("{}?{q}", t.path),
        None => t.path.clone(),
    };
    if let Err(stop) = streamguard::proxy::check_target(&config.server.limits, site, &pq, &t.path) {
        let (_, reason) = stop.labels();
        let status = stop.into_response(site.deny_status).status();
        out.line(
            "verdict",
            format!(
                "deny ({reason}: {stop}; the proxy answers {})",
                status.as_u16()
            ),
        );
        out.print();
        return Ok(ExitCode::from(1));
    }
    let view = RequestView {
        host: &t.host,
        path: &t.path,
        query: t.query.as_deref(),
        client_ip: q.client_ip,
        headers: Some(&headers),
    };
    let verdict = authenticate(&auth, &view, now);
    let params = auth.verifier.auth_params();
    for (label, value) in &verdict.derived {
        if *label == "key" {
            continue; // printed below with where it came from
        }
        out.line(
            param_label(label, value, params, t.query.as_deref()),
            value.as_ref(),
        );
    }
    if let Some(i) = verdict.matched_key {
        let name = streamguard::auth::key_label(i);
        let (_, sources) = auth.keys_for(auth.origin_path(&t.path));
        match sources.get(i) {
            Some(source) => out.line("key", format!("{name} ({source})")),
            None => out.line("key", name),
        }
    } else if auth.keys.is_empty() {
        out.line(
            "keys",
            "none (nothing configured, and no vendor answer in the state directory)",
        );
    }
    if let Ok(streamguard::auth::Grant::Scheme {
        forward_path: Some(p),
        ..
    }) = &verdict.result
    {
        out.line("forward", p);
    }
    // A time is only worth explaining when the signature is genuine: a
    // forged URL can claim any expiry.
    let genuine = matches!(
        verdict.result,
        Ok(_)
            | Err(DenyReason::Expired
                | DenyReason::NotYetValid
                | DenyReason::WrongClient
                | DenyReason::OutsideAcl)
    );
    if let (Some(exp), true) = (verdict.expires_at, genuine) {
        let rel = if now <= exp {
            format!("{} s left", exp - now)
        } else {
            format!("expired {} s ago", now - exp)
        };
        out.line(
            "expires",
            format!("{exp} ({}; now {now}, {rel})", time::rfc3339(exp)),
        );
    }
    if verdict.by_session && !site.hls.session_secret_configured {
        out.line(
            "note",
            "this site's session secret is random per process: only the running proxy can check its session tokens (set site.hls.session_secret to check them here)",
        );
    }
    let bound = verdict.bound_ip.is_some() || auth.verifier.binds_client();
    if q.client_ip.is_none() && bound && verdict.result.is_err() {
        out.line(
            "hint",
            "the token is bound to a client address: pass --client-ip ADDR to check it as that client",
        );
    }
    let code = match &verdict.result {
        Ok(_) => {
            out.line("verdict", "allow");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            let status = if *reason == DenyReason::Expired {
                site.expired_status
            } else {
                site.deny_status
            };
            out.line(
                "verdict",
                format!("deny ({reason}; the proxy answers {})", status.as_u16()),
            );
            ExitCode::from(1)
        }
    };
    out.print();
    Ok(code)
}

/// The label a derived value is shown with: a scheme's default parameter
/// name (`volcTime`) becomes the name this site uses (`expire`) when the URL
/// carries the value under that name.
fn param_label(label: &str, value: &str, params: &[String], query: Option<&str>) -> String {
    let is_param_like = label.ends_with("Time") || label == "expires";
    if is_param_like {
        for p in params {
            if streamguard::auth::query_param(query, p) == Ok(Some(value)) {
                return p.clone();
            }
        }
    }
    label.to_owned()
}

fn sign(
    config: &std::path::Path,
    (expires_in, expires_at, at): (Option<u64>, Option<u64>, Option<u64>),
    opts: SignOptions,
    url: &str,
) -> Result<()> {
    use streamguard::signing::{self, Expiry, SignError};
    let config = Config::load(config)?;
    let t = parse_url(url)?;
    let (site, auth) = served_site(&config, &t.host)
        .ok_or_else(|| anyhow!("no site lists the domain `{}`", t.host))?;
    let now = at.unwrap_or_else(unix_now);
    let expiry = match (expires_in, expires_at) {
        (_, Some(at)) => Expiry::At(at),
        (Some(secs), None) => Expiry::In(secs),
        (None, None) => bail!("give --expires-in or --expires-at"),
    };
    let signed = match signing::sign(site, &auth, &t, expiry, now, &opts) {
        Ok(s) => s,
        Err(SignError::PastExpiry { at, now }) => bail!(
            "--expires-at {at} is in the past ({}; now {now}): the URL would be denied as expired",
            time::rfc3339(at)
        ),
        Err(SignError::ZeroLifetime) => bail!("--expires-in must be at least 1 second"),
        Err(SignError::VendorDisabled { site: id }) => bail!(
            "site {id}: the vendor reports auth disabled, so there is no key to sign with (on_vendor_disabled = {} applies)",
            match auth.mode {
                AuthMode::VendorDisabled { allow: true } => "allow",
                _ => "deny",
            }
        ),
        Err(SignError::NoKey { site: id }) => bail!(
            "site {id} has no key to sign with (no key in [site.auth], and no vendor answer saved in the state directory)"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot sign {}", t.path)),
    };
    match &signed.key_source {
        Some(source) => eprintln!("signed with the primary key ({source})"),
        None => eprintln!("signed with the primary key"),
    }
    println!("{}", signed.url);
    Ok(())
}

/// `keys rotate`: the rotation is the library's; this prints where it stands.
fn keys_rotate(
    config: &std::path::Path,
    vendor: &str,
    domain: &str,
    (wait, replace_backup, status): (bool, bool, bool),
) -> Result<ExitCode> {
    use streamguard::sync::rotate;
    let config = Config::load(config)?;
    init_tracing(log_format(Some(&config))?);
    let result = if status {
        let metrics = streamguard::metrics::Metrics::new()?;
        rotate::status(&config, &metrics, vendor, domain)?
            .ok_or_else(|| anyhow!("no rotation of {domain} at {vendor} was ever started"))
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let opts = rotate::StartOptions { replace_backup };
        rt.block_on(rotate::rotate_command(&config, vendor, domain, opts, wait))
            .map_err(anyhow::Error::from)
    };
    let s = result?;
    print!("{}", rotate::describe(&s));
    Ok(ExitCode::SUCCESS)
}
