//! The `streamguard` command: parses the CLI, sets up logging, and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use streamguard::auth::{Decision, RequestView};
use streamguard::config::Config;
use streamguard::proxy::{normalize_host, path, unix_now};
use streamguard::{demo, time, Server};

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
        /// Replace the configured admin listener address.
        #[arg(long)]
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
        /// subtracted from the time written into the URL).
        #[arg(long)]
        expires_at: Option<u64>,
        /// Client address, for schemes that bind URLs to it (nginx `$remote_addr`).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// Full URL to sign (existing auth params are replaced).
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            admin_listen,
        } => run(config, listen, admin_listen).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig { file } => check_config(&file),
        Command::Check {
            config,
            at,
            client_ip,
            url,
        } => check(&config, at, client_ip, &url),
        Command::Sign {
            config,
            expires_in,
            expires_at,
            client_ip,
            url,
        } => sign(&config, expires_in, expires_at, client_ip, &url).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamguard: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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

fn run(config: Option<PathBuf>, listen: Vec<String>, admin_listen: Option<String>) -> Result<()> {
    init_tracing();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads()? {
        builder.worker_threads(n);
    }
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        let mut demo_key = None;
        let config_path = config.clone();
        let mut config = match config {
            Some(path) => Config::load(&path)?,
            None => {
                let origin = demo::start_origin()
                    .await
                    .context("starting the demo origin")?;
                let key = demo::random_key()
                    .map_err(|e| anyhow!("no randomness for the demo key: {e}"))?;
                let toml = demo::config_toml(
                    origin,
                    listen
                        .first()
                        .map_or(streamguard::config::DEFAULT_LISTEN, String::as_str),
                    admin_listen
                        .as_deref()
                        .unwrap_or(streamguard::config::DEFAULT_ADMIN_LISTEN),
                    &key,
                );
                demo_key = Some(key);
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
        if demo_key.is_some() {
            print_demo_urls(&config, &server)?;
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

fn print_demo_urls(config: &Config, server: &Server) -> Result<()> {
    let Some((mut addr, _)) = server.proxy_addrs().into_iter().next() else {
        bail!("the demo has no listener");
    };
    // A wildcard bind (0.0.0.0, e.g. in Docker) is reached as 127.0.0.1, one
    // of the demo site's domains.
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let site = config
        .sites
        .first()
        .ok_or_else(|| anyhow!("the demo has no site"))?;
    let key = site
        .keys
        .primary()
        .ok_or_else(|| anyhow!("the demo site has no key"))?;
    let expires = unix_now() + 3600;
    let base = format!("http://{addr}");
    println!();
    println!("streamguard demo: a Tencent-signed site in front of a built-in origin.");
    println!("Signed URLs, valid for one hour:");
    for p in ["/live/demo.flv", "/live/demo.m3u8"] {
        let s = site
            .verifier
            .sign(&site.domains[0], p, None, key, expires)?;
        println!("  {base}{}?{}", s.path, s.query);
    }
    println!("Try: curl -s '<flv url>' | ffplay -   (or ffplay '<flv url>')");
    println!("     curl -i {base}/live/demo.flv     (denied: missing_token)");
    if let Some(a) = server.admin_addr() {
        println!("Metrics: curl http://{a}/metrics");
    }
    println!();
    Ok(())
}

fn check_config(file: &std::path::Path) -> Result<ExitCode> {
    let config = Config::load(file)?;
    println!(
        "{}: ok ({} site(s), {} listener(s))",
        file.display(),
        config.sites.len(),
        config.server.listen.len() + config.server.tls_listen.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// A URL split into what the proxy would see.
struct Target {
    scheme: String,
    authority: String,
    host: String,
    path: String,
    query: Option<String>,
}

fn parse_url(url: &str) -> Result<Target> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| {
            anyhow!("`{url}` needs scheme and host, e.g. http://play.example.com/live/s.flv")
        })?
        .as_str()
        .to_owned();
    let host = normalize_host(&authority).ok_or_else(|| anyhow!("`{url}` has an empty host"))?;
    Ok(Target {
        scheme: uri.scheme_str().unwrap_or("http").to_owned(),
        authority,
        host,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
    })
}

fn check(
    config: &std::path::Path,
    at: Option<u64>,
    client_ip: Option<std::net::IpAddr>,
    url: &str,
) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let t = parse_url(url)?;
    let now = at.unwrap_or_else(unix_now);
    let Some(site) = config.site_for_host(&t.host) else {
        println!("host:     {}", t.host);
        println!("verdict:  deny (unknown_host: no site lists this domain; the proxy answers 404)");
        return Ok(ExitCode::from(1));
    };
    println!("site:     {} (scheme {})", site.id, site.verifier.scheme());
    println!("path:     {}", t.path);
    if let Err(e) = path::validate(&t.path) {
        println!("verdict:  deny (bad_path: {e}; the proxy answers 400)");
        return Ok(ExitCode::from(1));
    }
    let view = RequestView {
        host: &t.host,
        path: &t.path,
        query: t.query.as_deref(),
        client_ip,
        headers: None,
    };
    let verdict = site.verifier.verify(&view, &site.keys, now);
    for (k, v) in &verdict.derived {
        println!("{:<9} {v}", format!("{k}:"));
    }
    if let Some(p) = &verdict.forward_path {
        println!("forward:  {p}");
    }
    if let Some(exp) = verdict.expires_at {
        let rel = if now <= exp {
            format!("{} s left", exp - now)
        } else {
            format!("expired {} s ago", now - exp)
        };
        println!("expires:  {exp} ({}; now {now}, {rel})", time::rfc3339(exp));
    }
    match verdict.decision {
        Decision::Allow => {
            println!("verdict:  allow");
            Ok(ExitCode::SUCCESS)
        }
        Decision::Deny(reason) => {
            println!(
                "verdict:  deny ({reason}; the proxy answers {})",
                site.deny_status.as_u16()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn sign(
    config: &std::path::Path,
    expires_in: Option<u64>,
    expires_at: Option<u64>,
    client_ip: Option<std::net::IpAddr>,
    url: &str,
) -> Result<()> {
    let config = Config::load(config)?;
    let t = parse_url(url)?;
    let site = config
        .site_for_host(&t.host)
        .ok_or_else(|| anyhow!("no site lists the domain `{}`", t.host))?;
    path::validate(&t.path)
        .with_context(|| format!("the proxy would reject the path {}", t.path))?;
    let expires = match (expires_in, expires_at) {
        (_, Some(at)) => at,
        (Some(secs), None) => unix_now().saturating_add(secs),
        (None, None) => bail!("give --expires-in or --expires-at"),
    };
    let key = site
        .keys
        .primary()
        .ok_or_else(|| anyhow!("site {} has no key to sign with", site.id))?;
    let opts = streamguard::auth::SignOptions {
        client_ip,
        acl: None,
    };
    let signed =
        site.verifier
            .sign_with(&t.host, &t.path, t.query.as_deref(), &opts, key, expires)?;
    println!(
        "{}://{}{}?{}",
        t.scheme, t.authority, signed.path, signed.query
    );
    Ok(())
}
