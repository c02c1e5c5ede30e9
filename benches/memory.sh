#!/usr/bin/env bash
# Memory per connection, measured on the release binary:
#   1. N slow HTTP-FLV viewers: each requests a signed endless stream (an
#      nginx origin paced at 64 KiB/s per stream with limit_rate) and reads
#      only 4 KiB per second, so every buffer between origin and viewer
#      fills; streamguard's RSS with them open minus its RSS before,
#      divided by N.
#   2. N idle keep-alive connections (one small request each, then quiet).
# Needs: nginx, python3, curl. Usage: benches/memory.sh [N]   (default 5000)
# Env:   WRAP, a command the proxy runs under, for a heap profile of what a
#        connection holds, e.g. (RSS is then valgrind's, not the proxy's):
#        WRAP="valgrind --tool=massif --massif-out-file=/tmp/sg.massif" \
#          benches/memory.sh 300 && ms_print /tmp/sg.massif
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
ulimit -n $((N * 3 + 1000)) || { echo "cannot raise the open file limit to $((N * 3 + 1000))"; exit 2; }
. benches/common.sh
need python3 curl
mkdir -p "$work/www/live"
truncate -s 64G "$work/www/live/stream.flv"
head -c 2048 /dev/urandom > "$work/www/live/small.ts"
start_origin 18201 $((N * 2 + 100)) "location /live/stream.flv { limit_rate 64k; }"
cat > "$work/sg.toml" <<TOML
[server]
listen = ["127.0.0.1:18203"]
max_connections = $((N + 100))
[admin]
listen = "127.0.0.1:18204"
[[site]]
id = "mem"
domains = ["127.0.0.1"]
origin = "http://127.0.0.1:18201"
[site.auth]
scheme = "tencent"
key = "benchkey0123456789"
TOML
# shellcheck disable=SC2086 # WRAP is a command line, split on purpose
RUST_LOG=warn ${WRAP:-} "$BIN" run --config "$work/sg.toml" > "$work/sg.out" 2> "$work/sg.err" &
SG=$!
for _ in $(seq 600); do curl -s -o /dev/null http://127.0.0.1:18204/healthz && break; sleep 0.1; done
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SG/status"; }

STREAM=$("$BIN" sign --config "$work/sg.toml" --expires-in 7200 http://127.0.0.1:18203/live/stream.flv 2>/dev/null | sed 's#^http://[^/]*##')
SMALL=$("$BIN" sign --config "$work/sg.toml" --expires-in 7200 http://127.0.0.1:18203/live/small.ts 2>/dev/null | sed 's#^http://[^/]*##')
# Warm up (allocator arenas, pools) so the baseline is not a cold process.
for _ in $(seq 20); do curl -s -o /dev/null "http://127.0.0.1:18203$SMALL"; done

measure() { # mode path -> prints RSS delta per connection in KiB
  local mode=$1 path=$2 base
  base=$(rss_kib)
  python3 - "$mode" "$path" "$N" > "$work/client.out" 2>&1 <<'PY' &
import asyncio, sys
mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def viewer(i, ready):
    r, w = await asyncio.open_connection("127.0.0.1", 18203)
    w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"viewer {i}: {head[:60]!r}")
    if mode == "idle":
        await r.readexactly(2048)
        ready.append(1)
        await asyncio.sleep(3600)
    ready.append(1)
    while True:
        await r.read(4096)      # 4 KiB per second: far slower than the stream
        await asyncio.sleep(1)
async def main():
    ready = []
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(viewer(i, ready)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    while len(ready) < n:
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()
        await asyncio.sleep(0.2)
    print("ready", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
PY
  CL=$!
  for _ in $(seq 600); do grep -q ready "$work/client.out" && break; kill -0 $CL 2>/dev/null || { cat "$work/client.out"; exit 1; }; sleep 0.5; done
  grep -q ready "$work/client.out" || { echo "clients never got ready"; exit 1; }
  sleep 15   # let every buffer fill
  local now; now=$(rss_kib)
  kill $CL 2>/dev/null; wait $CL 2>/dev/null || true; CL=""
  sleep 3
  awk -v a="$now" -v b="$base" -v n="$N" 'BEGIN {printf "%.1f KiB per connection (RSS %d -> %d KiB)\n", (a-b)/n, b, a}'
}
echo "$(date -u +%F), $(nproc) cores, $N connections, release build"
echo "slow FLV viewers:     $(measure stream "$STREAM")"
echo "idle keep-alive:      $(measure idle "$SMALL")"
