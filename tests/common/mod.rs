//! Test harness: the real `streamguard` binary as a child process, a real
//! origin (hyper on loopback), and a real HTTP client.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use md5::{Digest, Md5};
use streamguard::proxy::body::{BoxError, ChannelBody};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const BIN: &str = env!("CARGO_BIN_EXE_streamguard");

/// Tencent signature computed independently of the crate:
/// lower_hex(MD5(key + stream + txTime)).
pub fn tencent_secret(key: &str, stream: &str, tx_time: &str) -> String {
    hex::encode(Md5::digest(format!("{key}{stream}{tx_time}").as_bytes()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A query signing `path` (stream = last segment without extension) until `expires`.
pub fn tencent_query(key: &str, path: &str, expires: u64) -> String {
    let last = path.rsplit('/').next().unwrap();
    let stream = last.rsplit_once('.').map_or(last, |(s, _)| s);
    let t = format!("{expires:X}");
    format!("txSecret={}&txTime={t}", tencent_secret(key, stream, &t))
}

// ---------------------------------------------------------------------------
// The proxy process.

pub struct Proxy {
    child: Child,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub stdout: Vec<String>,
}

/// Writes `config` into `dir` and returns `run --config <file>` plus `extra`.
fn run_args(dir: &tempfile::TempDir, config: &str, extra: &[&str]) -> Vec<String> {
    let path = dir.path().join("streamguard.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

impl Proxy {
    /// Writes `config` to a temp dir and runs `streamguard run --config` on it.
    pub fn start(config: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        Proxy::start_in(dir, config, &[])
    }

    /// Same, in an existing dir (certificates may live there), with extra args.
    pub fn start_in(dir: tempfile::TempDir, config: &str, extra: &[&str]) -> Proxy {
        let args = run_args(&dir, config, extra);
        Proxy::spawn(dir, &args)
    }

    /// Like [`Proxy::start`], with extra environment variables (a fake
    /// vendor's credentials, say).
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let args = run_args(&dir, config, &[]);
        Proxy::spawn_env(dir, &args, env)
    }

    /// Like [`Proxy::start`], with info-level logs (the access log) written
    /// to [`Proxy::log`] instead of the terminal.
    pub fn start_logged(config: &str) -> Proxy {
        Proxy::start_logged_env(config, &[])
    }

    /// Everything the proxy logged so far (only with [`Proxy::start_logged`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// Runs the binary with `args` and waits for its listening lines.
    pub fn spawn(dir: tempfile::TempDir, args: &[String]) -> Proxy {
        Proxy::spawn_with(dir, args, false, &[])
    }

    /// Like [`Proxy::spawn`] with extra environment variables.
    pub fn spawn_env(dir: tempfile::TempDir, args: &[String], env: &[(&str, &str)]) -> Proxy {
        Proxy::spawn_with(dir, args, false, env)
    }

    /// Like [`Proxy::start_logged`], with extra environment variables.
    pub fn start_logged_env(config: &str, env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let args = run_args(&dir, config, &[]);
        Proxy::spawn_full(dir, &args, true, env, None)
    }

    /// Like [`Proxy::start_logged`], under `ulimit -n nofile` (soft and
    /// hard), as a service manager would start it.
    pub fn start_logged_with_nofile(config: &str, nofile: u64) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let args = run_args(&dir, config, &[]);
        Proxy::spawn_full(dir, &args, true, &[], Some(nofile))
    }

    fn spawn_with(
        dir: tempfile::TempDir,
        args: &[String],
        log_to_file: bool,
        env: &[(&str, &str)],
    ) -> Proxy {
        Proxy::spawn_full(dir, args, log_to_file, env, None)
    }

    fn spawn_full(
        dir: tempfile::TempDir,
        args: &[String],
        log_to_file: bool,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Proxy {
        let (level, stderr) = if log_to_file {
            let f = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            ("info", Stdio::from(f))
        } else {
            ("warn", Stdio::inherit())
        };
        let mut command = match nofile {
            None => Command::new(BIN),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                c
            }
        };
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut p = Proxy {
            child,
            http: None,
            https: None,
            admin: "0.0.0.0:0".parse().unwrap(),
            dir,
            stdout: Vec::new(),
        };
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => l,
                Err(e) => panic!(
                    "proxy did not report its listeners ({e}); stdout so far: {:?}",
                    p.stdout
                ),
            };
            p.stdout.push(line.clone());
            if let Some(a) = line.strip_prefix("listening proxy http://") {
                p.http = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("listening proxy https://") {
                p.https = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("listening admin http://") {
                p.admin = a.parse().unwrap();
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe; the
        // demo prints more lines after the admin address.
        let rest = Arc::new(Mutex::new(Vec::new()));
        let sink = rest.clone();
        std::thread::spawn(move || {
            while let Ok(l) = rx.recv() {
                sink.lock().unwrap().push(l);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        p.stdout.extend(rest.lock().unwrap().drain(..));
        p
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM; does not wait.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits up to `within` for the process to exit: its status, or `None`
    /// when it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.expect("no plain listener")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (s, _, b) = get(self.admin, "admin", "/metrics").await;
        assert_eq!(s, StatusCode::OK);
        String::from_utf8(b.to_vec()).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample line (`name{labels} value`) in metrics text, 0 when absent.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|r| r.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

// ---------------------------------------------------------------------------
// The HTTP client.

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path_and_query` from `addr` with the given Host; returns status, headers, whole body.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path_and_query: &str,
) -> (StatusCode, HeaderMap, Bytes) {
    let resp = send(addr, host, path_and_query).await;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body not complete in time")
        .unwrap()
        .to_bytes();
    (parts.status, parts.headers, body)
}

/// GET and return the response with its body still streaming.
pub async fn send(addr: SocketAddr, host: &str, path_and_query: &str) -> Response<Incoming> {
    send_with(addr, host, path_and_query, http::Method::GET, &[]).await
}

/// Opens a raw TCP connection and writes `GET path_and_query` for `host`:
/// for tests that control reading byte by byte or hold a connection open.
pub async fn raw_get(addr: SocketAddr, host: &str, path_and_query: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s
}

/// Sends `request` (a whole HTTP/1.1 request, written as is, with
/// `Connection: close`) and returns everything the server answers, as text.
/// For requests a client library would not send (two Host headers, a raw
/// `#`, a body with text after its JSON).
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("no whole answer in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A request with a method and extra headers; the body still streaming.
pub async fn send_with(
    addr: SocketAddr,
    host: &str,
    path_and_query: &str,
    method: http::Method,
    headers: &[(&str, &str)],
) -> Response<Incoming> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::new()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), client().request(req))
        .await
        .expect("no response in time")
        .unwrap()
}

// ---------------------------------------------------------------------------
// The origin.

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub version: http::Version,
}

/// A real HTTP origin on loopback. Routes:
/// - `/hang/...`: never answers;
/// - `/gated/...`: sends `first\n`, waits for [`Origin::release`], sends `last\n`, ends;
/// - `/bigplaylist/...`: an HLS playlist of about 10 KB;
/// - `/fast/...`: sends 64 KiB chunks as fast as they are taken, counting them;
/// - `/endless/...`: sends a chunk every 20 ms forever; notes when the proxy
///   hangs up ([`Origin::disconnected`]);
/// - anything else: 200 with body `origin saw <path and query>`.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Notify>,
    hung_up: Arc<AtomicBool>,
    /// Bytes a `/fast/` response has handed to hyper so far.
    pub fast_sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Origin::serve(listener, None)
    }

    /// An origin speaking TLS with the given server config.
    pub async fn start_tls(cfg: rustls::ServerConfig) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Origin::serve(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
        )
    }

    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let origin = Origin {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            gate: Arc::default(),
            hung_up: Arc::default(),
            fast_sent: Arc::default(),
        };
        let o = origin.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let o = o.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let o = o.clone();
                        async move { Ok::<_, Infallible>(o.respond(req).await) }
                    });
                    let b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acc) => {
                            if let Ok(s) = acc.accept(stream).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                    }
                });
            }
        });
        origin
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
    ) -> Response<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>> {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        self.seen.lock().unwrap().push(Seen {
            method: req.method().to_string(),
            path_and_query: pq.clone(),
            headers: req.headers().clone(),
            version: req.version(),
        });
        let path = req.uri().path().to_owned();
        if path.starts_with("/hang/") {
            std::future::pending::<()>().await;
        }
        if path.starts_with("/gated/") {
            let (tx, body) = ChannelBody::new(1);
            let gate = self.gate.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first\n")).await;
                gate.notified().await;
                let _ = tx.send(Bytes::from_static(b"last\n")).await;
            });
            return Response::new(body.boxed_unsync());
        }
        if path.starts_with("/bigplaylist/") {
            let mut text = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
            for i in 0..400 {
                text.push_str(&format!("#EXTINF:2,\nsegment-{i:05}.ts\n"));
            }
            let mut resp = Response::new(
                Full::new(Bytes::from(text))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            resp.headers_mut().insert(
                "content-type",
                "application/vnd.apple.mpegurl".parse().unwrap(),
            );
            return resp;
        }
        if path.starts_with("/fast/") {
            // As fast as the receiver takes it; counts what was handed over.
            let (tx, body) = ChannelBody::new(1);
            let sent = self.fast_sent.clone();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
                while tx.send(chunk.clone()).await.is_ok() {
                    sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            });
            return Response::new(body.boxed_unsync());
        }
        if path.starts_with("/endless/") {
            let (tx, body) = ChannelBody::new(1);
            let hung_up = self.hung_up.clone();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 4096]);
                loop {
                    if tx.send(chunk.clone()).await.is_err() {
                        hung_up.store(true, Ordering::SeqCst);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            return Response::new(body.boxed_unsync());
        }
        let mut resp = Response::new(
            Full::new(Bytes::from(format!("origin saw {pq}")))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        resp.headers_mut()
            .insert("x-origin", "yes".parse().unwrap());
        resp
    }

    /// Lets a `/gated/` response finish.
    pub fn release(&self) {
        self.gate.notify_one();
    }

    /// True once an `/endless/` response noticed the proxy hung up.
    pub fn disconnected(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst)
    }

    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("origin saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A self-signed certificate for `names`, written as `<stem>.crt`/`<stem>.key` in `dir`.
pub fn write_cert(
    dir: &Path,
    stem: &str,
    names: &[&str],
) -> (PathBuf, PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(
        names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let crt = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&crt, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (crt, key, ck.cert.der().clone())
}

/// A standard single-site config in front of `origin`, with the given extra
/// site lines and auth lines.
pub fn site_config(origin: &str, site_extra: &str, auth_extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]

[admin]
listen = "127.0.0.1:0"

[[site]]
id = "live"
domains = ["play.example.com"]
origin = "{origin}"
{site_extra}

[site.auth]
scheme = "tencent"
key = "{KEY}"
backup_key = "{BACKUP}"
{auth_extra}
"#
    )
}

pub const KEY: &str = "e12c46f2612d5106e2034781ab261ca3";
pub const BACKUP: &str = "backupkey0123456789";

pub fn header_map_get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub type Labels = HashMap<String, String>;

// ---------------------------------------------------------------------------
// nginx as a real origin.

/// The nginx binary, if installed (`.ci/run` installs it).
pub fn nginx_bin() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        return Some(sbin);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("nginx"))
        .find(|p| p.exists())
}

/// True when `name` runs (`name -version` exits 0).
pub fn have(name: &str) -> bool {
    Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// nginx serving `www/` of its own temp dir on loopback, as a static origin.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `extra` inside its `server {}` block.
    pub fn start(extra: &str) -> Nginx {
        let bin = nginx_bin().expect("nginx is not installed (.ci/run installs it)");
        let dir = tempfile::tempdir().unwrap();
        // nginx workers may run as another user: let them read the tree.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = dir.path().display();
        // As root nginx would switch its workers to `nobody`, whose group may
        // not exist; as anyone else the directive only draws a warning.
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            r#"{user}worker_processes 1;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/x-flv flv; text/plain txt; }}
  server {{
    listen {addr};
    root {d}/www;
    {extra}
  }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .args([
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
                "-g",
                &format!("daemon off; pid {d}/nginx.pid;"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, dir }
    }

    /// The directory nginx serves.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master then stops its worker too, where SIGKILL
    /// would leave the worker holding the port.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when running as root (`id -u` is 0).
pub fn is_root() -> bool {
    match Command::new("id").arg("-u").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim() == "0",
        Err(_) => std::env::var("USER").is_ok_and(|u| u == "root"),
    }
}

/// Polls `check` every 100 ms until it holds; fails the test after 15 s.
pub async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JSON response, as the fake vendors send them.
pub fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// A Tencent Cloud API 3.0 error answer (HTTP 200, `Response.Error`).
pub fn tencent_error(code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        serde_json::json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "fake"}}),
    )
}

/// One request to a fake vendor API, read whole.
pub struct FakeRequest {
    pub parts: http::request::Parts,
    pub body: Bytes,
}

impl FakeRequest {
    /// A header's value; "" when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        header_map_get(&self.parts.headers, name).unwrap_or("")
    }

    /// The raw query string; "" when there is none.
    pub fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }
}

/// Binds a loopback port, builds the fake on its address with `make` and
/// serves it until the test ends: each request is read whole and handed to
/// `answer` with a clone of the fake.
pub async fn start_fake<T, F, Fut>(make: impl FnOnce(SocketAddr) -> T, answer: F) -> T
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, FakeRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = make(listener.local_addr().unwrap());
    let f = fake.clone();
    serve_fake(listener, move |req: Request<Incoming>| {
        let f = f.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            answer(f, FakeRequest { parts, body }).await
        }
    });
    fake
}

/// Serves `answer` on `listener` (HTTP/1.1 and h2) until the test ends: the
/// accept loop of every fake vendor API.
pub fn serve_fake<F, Fut>(listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = answer(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

// ---------------------------------------------------------------------------
// Vendor signatures, recomputed the way the vendor checks them.

/// HMAC-SHA256.
pub fn hmac256(key: &[u8], msg: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The `Authorization` a Tencent Cloud API 3.0 POST (service `live`,
/// signed headers `content-type;host`) must carry, recomputed from what
/// arrived: TC3-HMAC-SHA256 as the vendor documents it.
pub fn tc3_authorization(
    secret_id: &str,
    secret: &str,
    content_type: &str,
    host: &str,
    ts: u64,
    body: &[u8],
) -> String {
    use sha2::Sha256;
    let (y, m, d, ..) = streamguard::time::civil(ts);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        content_type.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        hex::encode(<Sha256 as sha2::Digest>::digest(body))
    );
    let sts = format!(
        "TC3-HMAC-SHA256\n{ts}\n{date}/live/tc3_request\n{}",
        hex::encode(<Sha256 as sha2::Digest>::digest(canonical.as_bytes()))
    );
    let k = hmac256(format!("TC3{secret}").as_bytes(), &date);
    let k = hmac256(&k, "live");
    let k = hmac256(&k, "tc3_request");
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/live/tc3_request, SignedHeaders=content-type;host, Signature={}",
        hex::encode(hmac256(&k, &sts))
    )
}

/// True when a Tencent Cloud API 3.0 request carries the `Authorization`
/// [`tc3_authorization`] recomputes and an `X-TC-Timestamp` within five
/// minutes.
pub fn tc3_signature_ok(req: &FakeRequest, secret_id: &str, secret: &str) -> bool {
    let ts: u64 = req.header("x-tc-timestamp").parse().unwrap_or(0);
    let want = tc3_authorization(
        secret_id,
        secret,
        req.header("content-type"),
        req.header("host"),
        ts,
        &req.body,
    );
    req.header("authorization") == want && now().abs_diff(ts) <= 300
}

/// Unix seconds of a Volcengine `X-Date` (`YYYYMMDDTHHMMSSZ`), `None` if malformed.
pub fn parse_x_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    streamguard::time::from_civil(
        i64::from(n(0..4)?),
        n(4..6)?,
        n(6..8)?,
        n(9..11)?,
        n(11..13)?,
        n(13..15)?,
    )
}

/// True when a Volcengine OpenAPI request (`POST /`, service `live` in
/// `cn-north-1`) carries the HMAC-SHA256 `Authorization` the vendor would
/// compute with `ak`/`sk`, an `X-Content-Sha256` that is its body's hash and
/// an `X-Date` within five minutes. The canonical request is rebuilt from
/// what arrived: the query pairs as sent, sorted; the four signed headers as
/// sent; the body's hash. A request with another method or path cannot match.
pub fn volc_signature_ok(req: &FakeRequest, ak: &str, sk: &str) -> bool {
    use sha2::{Digest, Sha256};
    const SIGNED: &str = "content-type;host;x-content-sha256;x-date";
    let body_hash = hex::encode(Sha256::digest(&req.body));
    let x_date = req.header("x-date");
    let date = x_date.get(..8).unwrap_or("");
    let mut pairs: Vec<&str> = req.query().split('&').collect();
    pairs.sort_unstable();
    let canonical_headers: String = SIGNED
        .split(';')
        .map(|k| format!("{k}:{}\n", req.header(k)))
        .collect();
    let canonical = format!(
        "POST\n/\n{}\n{canonical_headers}\n{SIGNED}\n{body_hash}",
        pairs.join("&")
    );
    let scope = format!("{date}/cn-north-1/live/request");
    let sts = format!(
        "HMAC-SHA256\n{x_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac256(sk.as_bytes(), date);
    let k = hmac256(&k, "cn-north-1");
    let k = hmac256(&k, "live");
    let k = hmac256(&k, "request");
    let want = format!(
        "HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={SIGNED}, Signature={}",
        hex::encode(hmac256(&k, &sts))
    );
    let fresh = parse_x_date(x_date).is_some_and(|t| now().abs_diff(t) <= 300);
    req.header("authorization") == want && req.header("x-content-sha256") == body_hash && fresh
}

/// Unix seconds of an RFC 1123 GMT date (`Sun, 22 Nov 2026 10:00:00 GMT`),
/// `None` unless it is exactly that form with the right weekday.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (weekday, rest) = s.split_once(", ")?;
    let f: Vec<&str> = rest.split(' ').collect();
    if f.len() != 5 || f[0].len() != 2 || f[2].len() != 4 || f[3].len() != 8 || f[4] != "GMT" {
        return None;
    }
    let month = u32::try_from(MONTHS.iter().position(|m| *m == f[1])?).ok()? + 1;
    let hms: Vec<u32> = f[3]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, sec] = hms[..] else { return None };
    let ts =
        streamguard::time::from_civil(f[2].parse().ok()?, month, f[0].parse().ok()?, h, mi, sec)?;
    // 1970-01-01 was a Thursday.
    let want = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(ts / 86_400 % 7) as usize];
    (weekday == want).then_some(ts)
}

/// True when a Wangsu API request carries an RFC 1123 `Date` within five
/// minutes and `Authorization: Basic base64(user ":" base64(HMAC-SHA1(api_key,
/// Date)))` recomputed from that Date.
pub fn wangsu_signature_ok(req: &FakeRequest, user: &str, api_key: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = req.header("date");
    let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(api_key.as_bytes()).unwrap();
    m.update(date.as_bytes());
    let password = b64.encode(m.finalize().into_bytes());
    let want = format!("Basic {}", b64.encode(format!("{user}:{password}")));
    let fresh = parse_http_date(date).is_some_and(|ts| now().abs_diff(ts) <= 300);
    fresh && req.header("authorization") == want
}

/// An HTTP/2 client connection (cleartext, prior knowledge) to `addr`: its
/// sender, and the connection's task, which ends when the server closes
/// the connection.
pub async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (send, tokio::spawn(conn))
}
