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
