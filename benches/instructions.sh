#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a
# measure that load from other processes on a shared machine does not move
# (req/s and CPU seconds do). streamguard runs under callgrind in front of
# an nginx origin; after a warm-up, counting is switched on, wrk sends
# 4 KiB requests for DURATION seconds, counting is switched off, and the
# instructions of all the proxy's threads are divided by the requests
# served. Printed per scheme (Tencent, nginx secure_link), and for nginx
# doing the same job (secure_link + proxy_pass, one process); KEEP=DIR keeps
# the callgrind files for `callgrind_annotate --inclusive=yes DIR/<name>.*`;
# BIN=path measures another streamguard binary (an A/B of two builds);
# BREAKDOWN=1 adds, per run, instructions per request grouped by crate.
#
# Needs: valgrind, wrk, nginx, curl (apt-get install -y valgrind wrk nginx curl).
# Usage: benches/instructions.sh [DURATION_SECS]    (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
. benches/common.sh
need valgrind callgrind_control wrk curl
mkdir -p "$work/www/live"
head -c 4096 /dev/urandom > "$work/www/live/4k.ts"
start_origin 18301 1024
cat > "$work/sg.toml" <<TOML
[server]
listen = ["127.0.0.1:18303"]
[admin]
listen = "127.0.0.1:18304"
$(sites_toml 18301)
TOML

# The setup streamguard replaces, for comparison: nginx secure_link +
# proxy_pass + upstream keepalive, one process (no master) under callgrind.
cat > "$work/proxy.conf" <<NGX
$user
daemon off; master_process off; worker_processes 1;
pid $work/proxy.pid;
error_log $work/proxy.err warn;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:18301; keepalive 64; }
  server {
    listen 127.0.0.1:18302;
$(secure_link_location)
  }
}
NGX
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/nx.%p" \
  "$NGINX" -c "$work/proxy.conf" -e "$work/proxy.err" > /dev/null 2>&1 &
NX=$!

RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$work/cg.%p" "$BIN" run --config "$work/sg.toml" \
  > "$work/sg.out" 2> "$work/sg.err" &
SG=$!
for _ in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:18304/healthz && break; sleep 0.2; done
curl -s -o /dev/null http://127.0.0.1:18304/healthz || { echo "streamguard did not start"; cat "$work/sg.err"; exit 1; }

echo "$(date -u +%F), $(nproc) cores, wrk -t1 -c16 -d${DUR}s, 4 KiB bodies, release build under callgrind"
# breakdown REQS FILE: instructions per request by where they run (each
# function's own instructions, grouped by crate or library).
breakdown() {
  callgrind_annotate --threshold=100 "$2" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' |
    sed 's/,//g' | awk -v reqs="$1" '{
      n = $1; g = "other"
      if ($0 ~ /malloc\.c|arena\.c/) g = "malloc/free"
      else if ($0 ~ /memmove|memcpy|memset|memcmp/) g = "libc memcpy etc."
      else if ($0 ~ /streamguard::auth|md5::|sha2::|hmac::/) g = "streamguard verification"
      else if ($0 ~ /streamguard::/) g = "streamguard proxy"
      else if ($0 ~ /hyper_util::/) g = "hyper-util"
      else if ($0 ~ /hyper::/) g = "hyper"
      else if ($0 ~ /httparse::/) g = "httparse"
      else if ($0 ~ /http::header/) g = "http header maps"
      else if ($0 ~ /http::/) g = "http (uri, method)"
      else if ($0 ~ /tokio::/) g = "tokio"
      else if ($0 ~ /bytes::/) g = "bytes"
      else if ($0 ~ /ngx_|nginx/) g = "nginx"
      t[g] += n
    } END { for (g in t) printf "    %7.0f  %s\n", t[g] / reqs, g }' | sort -rn
}

# count NAME PID URL HOST FILES: one counted wrk run against PID.
count() {
  local name=$1 pid=$2 url=$3 host=$4 files=$5 out reqs ir
  wrk -t1 -c16 -d2s -H "Host: $host" "$url" > /dev/null   # warm up: pools, caches
  callgrind_control -z "$pid" > /dev/null 2>&1
  callgrind_control -i on "$pid" > /dev/null 2>&1
  out=$(wrk -t1 -c16 -d"${DUR}s" -H "Host: $host" "$url")
  callgrind_control -i off "$pid" > /dev/null 2>&1
  echo "$out" | grep -q "Non-2xx" && { echo "$name: non-2xx answers"; echo "$out"; exit 1; }
  rm -f "$work/$files".*.[0-9]*
  callgrind_control -d "$name" "$pid" > /dev/null 2>&1
  sleep 1
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  ir=$(cat "$work/$files".*.[0-9]* | awk '/^summary:|^totals:/ {s += $2} END {print s + 0}')
  awk -v n="$name" -v r="$reqs" -v i="$ir" 'BEGIN {printf "%-30s %8d requests  %7.0f instructions per request\n", n, r, i / r}'
  [ -n "${BREAKDOWN:-}" ] && breakdown "$reqs" "$work/$files".*.[0-9]*
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    for f in "$work/$files".*.[0-9]*; do cp "$f" "$KEEP/${name// /_}.$(basename "$f")"; done
  fi
}

for site in tx sl; do
  path=$("$BIN" sign --config "$work/sg.toml" --expires-in 7200 "http://$site.bench/live/4k.ts" 2>/dev/null | sed 's#^http://[^/]*##')
  url="http://127.0.0.1:18303$path"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $site.bench" "$url")" = 200 ] || { echo "$site: signed URL refused"; exit 1; }
  count "streamguard $([ "$site" = tx ] && echo tencent || echo nginx_secure_link)" "$SG" "$url" "$site.bench" cg
done
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18302/ && break; sleep 0.2; done
count "nginx secure_link proxy" "$NX" "http://127.0.0.1:18302$path" sl.bench nx
