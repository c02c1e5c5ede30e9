# Set-up shared by the benchmark scripts (sourced, from the repository
# root): the tools a script needs, nginx, the release binary, and a work
# directory removed on exit together with the processes the script started
# (nginx pid files in it; streamguard, a client, a profiled nginx or a
# baseline streamguard in SG, CL, NX, BASE).

# need TOOL...: exits 2 naming the first tool missing.
need() {
  for t in "$@"; do command -v "$t" >/dev/null || { echo "needs $t"; exit 2; }; done
}

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "needs nginx"; exit 2; }

# The binary measured: BIN if given, else the release build.
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin streamguard
  BIN=$PWD/target/release/streamguard
fi

# nginx's user directive when run as root (its workers would be nobody's).
user=""; [ "$(id -u)" = 0 ] && user="user root;"

work=$(mktemp -d)
cleanup() {
  for p in "$work"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  for p in "${SG:-}" "${CL:-}" "${NX:-}" "${BASE:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_origin PORT CONNECTIONS [SERVER_DIRECTIVES]: an nginx origin, one
# worker, serving $work/www on 127.0.0.1:PORT with keep-alive unbounded.
start_origin() {
  cat > "$work/origin.conf" <<NGX
$user
worker_processes 1;
worker_rlimit_nofile $(($2 + 1000));
pid $work/origin.pid;
error_log $work/origin.err warn;
events { worker_connections $2; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1 backlog=8192; root $work/www; ${3:-} }
}
NGX
  chmod -R a+rX "$work"
  "$NGINX" -c "$work/origin.conf" -e "$work/origin.err"
}

# The signing secret of the nginx secure_link URLs.
SECRET=benchsecret0123456789

# secure_link_location: nginx's side of the job (the setup streamguard
# replaces): /live/ checked by secure_link, then proxy_pass to the
# upstream `origin` over keep-alive.
secure_link_location() {
  cat <<NGX
    location /live/ {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 "\$secure_link_expires\$uri $SECRET";
      if (\$secure_link = "") { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering on;
    }
NGX
}

# sites_toml ORIGIN_PORT: streamguard's side of the same job, two sites in
# front of the origin: nginx_secure_link (127.0.0.1 and sl.bench; the same
# URLs as nginx's) and Tencent (tx.bench).
sites_toml() {
  cat <<TOML
[[site]]
id = "sl"
domains = ["127.0.0.1", "sl.bench"]
origin = "http://127.0.0.1:$1"
[site.auth]
scheme = "nginx_secure_link"
template = "\$secure_link_expires\$uri \$key"
key = "$SECRET"
[[site]]
id = "tx"
domains = ["tx.bench"]
origin = "http://127.0.0.1:$1"
[site.auth]
scheme = "tencent"
key = "benchkey0123456789"
backup_key = "benchbackup0123456789"
TOML
}
