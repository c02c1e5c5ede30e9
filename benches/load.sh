#!/usr/bin/env bash
# Load test, the same job side by side in one run:
#   direct   nginx origin, no proxy                         (the ceiling)
#   nginx    nginx secure_link + proxy_pass + upstream keepalive, 2 workers
#            (the setup streamguard replaces)
#   sg-sl    streamguard, scheme nginx_secure_link (same URLs as nginx)
#   sg-tx    streamguard, scheme tencent
# Bodies of 4 KiB, 64 KiB and 1 MiB over plain HTTP and over TLS (both
# proxies terminate TLS with the same certificate; the origin stays plain),
# and an endless HTTP-FLV-style stream read as fast as the proxy passes it.
# Reported per cell: req/s, p50/p99 latency, and the proxy's CPU seconds per
# 10k requests (utime+stime from /proc, all of its processes; and user and
# system apart). Targets are measured in interleaved rounds and medians
# reported, since shared machines are noisy; ratios are against nginx and against direct, same run.
#
# Needs: wrk, nginx, openssl, curl (apt-get install -y wrk nginx openssl curl).
# Usage: benches/load.sh [DURATION_SECS] [ROUNDS]     (defaults 8, 3)
# Env:   THREADS (2), CONNS (64; 16 for 1 MiB), OUT (markdown table file);
#        for a quicker look at one cell: BODIES ("4k.ts 64k.ts 1m.ts"),
#        TRANSPORTS ("0 1": 0 plain HTTP, 1 TLS), FLV (1; 0 skips the stream);
#        BIN (a streamguard binary to measure instead of the release build);
#        BASE_BIN (an earlier build, run as one more target with the Tencent
#        site, interleaved with the rest: an A/B table is added)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}; ROUNDS=${2:-3}; THREADS=${THREADS:-2}; CONNS=${CONNS:-64}
. benches/common.sh
need wrk openssl curl
HZ=$(getconf CLK_TCK)

mkdir -p "$work/www/live"
head -c 4096 /dev/urandom > "$work/www/live/4k.ts"
head -c 65536 /dev/urandom > "$work/www/live/64k.ts"
head -c 1048576 /dev/urandom > "$work/www/live/1m.ts"
truncate -s 8G "$work/www/live/stream.flv"   # sparse: "endless" for a 10 s read
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.local \
  -addext "subjectAltName=DNS:bench.local,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

start_origin 18101 8192
cat > "$work/nginx.conf" <<NGX
$user
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:18101; keepalive 64; }
  server {
    listen 127.0.0.1:18102 backlog=4096;
    listen 127.0.0.1:18112 ssl backlog=4096;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
$(secure_link_location)
  }
}
NGX
"$NGINX" -c "$work/nginx.conf" -e "$work/nginx.err"

cat > "$work/sg.toml" <<TOML
[server]
listen = ["127.0.0.1:18103"]
tls_listen = ["127.0.0.1:18113"]
[[server.certificate]]
cert_file = "$work/cert.pem"
key_file = "$work/key.pem"
server_names = ["bench.local"]
[admin]
listen = "127.0.0.1:18104"
$(sites_toml 18101)
TOML
RUST_LOG=warn "$BIN" run --config "$work/sg.toml" > "$work/sg.out" 2> "$work/sg.err" &
SG=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18104/healthz && break; sleep 0.1; done
if [ -n "${BASE_BIN:-}" ]; then
  sed -e 's/:18103/:18105/; s/:18113/:18115/; s/:18104/:18106/' "$work/sg.toml" > "$work/base.toml"
  RUST_LOG=warn "$BASE_BIN" run --config "$work/base.toml" > "$work/base.out" 2> "$work/base.err" &
  BASE=$!
  for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18106/healthz && break; sleep 0.1; done
fi

# pids whose CPU is the proxy's: nginx master + workers; streamguard.
pids_of() {
  case $1 in
    nginx) m=$(cat "$work/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
    sg-*) echo "$SG";;
    base-*) echo "$BASE";;
    *) m=$(cat "$work/origin.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
  esac
}
# CPU ticks of pids: "user system".
ticks() {
  local u=0 s=0 a b
  for p in $1; do read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u + a)); s=$((s + b)); done
  echo "$u $s"
}

sign() { # site-domain path -> path?query
  "$BIN" sign --config "$work/sg.toml" --expires-in 7200 "http://$1$2" 2>/dev/null | sed 's#^http://[^/]*##'
}
url_for() { # target body tls
  local target=$1 body=$2 tls=$3 port path host=""
  path=/live/$body
  case $target in
    direct) port=18101;;
    nginx) port=$([ "$tls" = 1 ] && echo 18112 || echo 18102); path=$(sign 127.0.0.1 "$path");;
    sg-sl) port=$([ "$tls" = 1 ] && echo 18113 || echo 18103); path=$(sign 127.0.0.1 "$path");;
    sg-tx) port=$([ "$tls" = 1 ] && echo 18113 || echo 18103); path=$(sign tx.bench "$path"); host=tx.bench;;
    base-tx) port=$([ "$tls" = 1 ] && echo 18115 || echo 18105); path=$(sign tx.bench "$path"); host=tx.bench;;
  esac
  local scheme=http; [ "$tls" = 1 ] && [ "$target" != direct ] && scheme=https
  echo "$scheme://127.0.0.1:$port$path $host"
}

# One wrk run: prints "rps p50_ms p99_ms cpu_s_per_10k user_s_per_10k system_s_per_10k"
run_wrk() { # url host conns
  local url=$1 host=$2 conns=$3 pids u0 s0 u1 s1 out reqs
  pids=$(pids_of "$TARGET")
  read -r u0 s0 < <(ticks "$pids")
  if [ -n "$host" ]; then
    out=$(wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --latency -H "Host: $host" "$url")
  else
    out=$(wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --latency "$url")
  fi
  read -r u1 s1 < <(ticks "$pids")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | grep -q "Non-2xx" && { echo "non-2xx answers from $TARGET $url" >&2; echo "$out" >&2; exit 1; }
  echo "$out" | awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v reqs="$reqs" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    function per10k(t) { return (t/hz)/reqs*10000 }
    /Requests\/sec/ {rps=$2} / 50%/ {p50=ms($2)} / 99%/ {p99=ms($2)}
    END {printf "%s %.2f %.2f %.3f %.3f %.3f\n", rps, p50, p99, per10k(u+s), per10k(u), per10k(s)}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$1" '{print $c}'; }

TARGETS="direct nginx sg-sl sg-tx"; [ -n "${BASE_BIN:-}" ] && TARGETS="$TARGETS base-tx"
BODIES=${BODIES:-4k.ts 64k.ts 1m.ts}; TRANSPORTS=${TRANSPORTS:-0 1}; FLV=${FLV:-1}
for tls in $TRANSPORTS; do
  for body in $BODIES; do
    conns=$CONNS; [ "$body" = 1m.ts ] && conns=16
    for r in $(seq "$ROUNDS"); do
      for TARGET in $TARGETS; do
        [ "$tls" = 1 ] && [ "$TARGET" = direct ] && continue
        read -r url host < <(url_for "$TARGET" "$body" "$tls")
        run_wrk "$url" "$host" "$conns" >> "$work/res.$tls.$body.$TARGET"
      done
      echo "tls=$tls $body round $r done" >&2
    done
  done
done

# The endless stream: bytes per second one reader gets in DUR seconds.
flv() { # url host -> MiB/s
  local url=$1 host=$2 bytes
  if [ -n "$host" ]; then
    bytes=$(curl -sk -H "Host: $host" --max-time "$DUR" -o /dev/null -w '%{size_download}' "$url" || true)
  else
    bytes=$(curl -sk --max-time "$DUR" -o /dev/null -w '%{size_download}' "$url" || true)
  fi
  awk -v b="$bytes" -v d="$DUR" 'BEGIN {printf "%.0f\n", b/d/1048576}'
}
for r in $(seq "$ROUNDS"); do
  [ "$FLV" = 1 ] || break
  for TARGET in $TARGETS; do
    read -r url host < <(url_for "$TARGET" stream.flv 0)
    flv "$url" "$host" >> "$work/flv.$TARGET"
  done
done

# Medians of one measured column: m TARGET COLUMN, for the cell $tls/$body.
m() { col "$2" < "$work/res.$tls.$body.$1" | median; }
# cells FN: runs FN once per measured cell, with $tls, $body and $proto set.
cells() {
  for tls in $TRANSPORTS; do
    for body in $BODIES; do
      proto=$([ "$tls" = 1 ] && echo TLS || echo HTTP)
      "$1"
    done
  done
}
main_row() {
  d=$([ "$tls" = 0 ] && m direct 1 || echo "")
  n=$(m nginx 1); s=$(m sg-sl 1); t=$(m sg-tx 1)
  nc=$(m nginx 4); sc=$(m sg-sl 4)
  ratio_d=$([ -n "$d" ] && awk -v a="$s" -v b="$d" 'BEGIN {printf "%.2f", a/b}' || echo "—")
  printf '| %s | %s | %s | %s (%s/%s, %s) | %s (%s/%s, %s) | %s | **%.2f** | %s | %.2f |\n' \
    "${body%.ts}" "$proto" "${d:-—}" \
    "$n" "$(m nginx 2)" "$(m nginx 3)" "$nc" \
    "$s" "$(m sg-sl 2)" "$(m sg-sl 3)" "$sc" "$t" \
    "$(awk -v a="$s" -v b="$n" 'BEGIN {print a/b}')" "$ratio_d" \
    "$(awk -v a="$sc" -v b="$nc" 'BEGIN {print a/b}')"
}
cpu_row() {
  printf '| %s | %s | %s / %s | %s / %s | %s / %s |\n' "${body%.ts}" "$proto" \
    "$(m nginx 5)" "$(m nginx 6)" "$(m sg-sl 5)" "$(m sg-sl 6)" "$(m sg-tx 5)" "$(m sg-tx 6)"
}
ab_row() {
  printf '| %s | %s | %s (%s, %s / %s) | %s (%s, %s / %s) | %.2f |\n' "${body%.ts}" "$proto" \
    "$(m sg-tx 1)" "$(m sg-tx 3)" "$(m sg-tx 5)" "$(m sg-tx 6)" \
    "$(m base-tx 1)" "$(m base-tx 3)" "$(m base-tx 5)" "$(m base-tx 6)" \
    "$(awk -v a="$(m sg-tx 1)" -v b="$(m base-tx 1)" 'BEGIN {print a/b}')"
}
{
  echo "$(date -u +%F), $(nproc) cores ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')), wrk -t$THREADS -c$CONNS (16 for 1 MiB) -d${DUR}s, median of $ROUNDS interleaved rounds"
  echo
  echo "| body | transport | direct req/s | nginx req/s (p50/p99 ms, CPU s/10k) | streamguard secure_link req/s (p50/p99 ms, CPU s/10k) | streamguard tencent req/s | sg ÷ nginx | sg ÷ direct | CPU sg ÷ nginx |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cells main_row
  echo
  echo "CPU seconds per 10k requests, user / system (medians):"
  echo
  echo "| body | transport | nginx | streamguard secure_link | streamguard tencent |"
  echo "|---|---|---|---|---|"
  cells cpu_row
  if [ "$FLV" = 1 ]; then
    echo
    echo "Endless stream, one reader, MiB/s: direct $(median < "$work/flv.direct"), nginx $(median < "$work/flv.nginx"), streamguard secure_link $(median < "$work/flv.sg-sl"), streamguard tencent $(median < "$work/flv.sg-tx")"
  fi
  if [ -n "${BASE_BIN:-}" ]; then
    echo
    echo "A/B, streamguard tencent: this build against BASE_BIN, req/s (p99 ms, CPU s/10k user / system):"
    echo
    echo "| body | transport | this build | BASE_BIN | this ÷ BASE_BIN |"
    echo "|---|---|---|---|---|"
    cells ab_row
  fi
} > "$work/table.md"
cat "$work/table.md"
[ -n "${OUT:-}" ] && cp "$work/table.md" "$OUT"
exit 0
