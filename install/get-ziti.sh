#!/usr/bin/env bash
# get-ziti.sh: print on stdout the path of a usable `ziti` CLI (OpenZiti v1.6.x).
#
# Order of preference:
#   1. $RALPH_ZITI, when set (it must be usable, else this fails);
#   2. `ziti` on PATH, when it reports a v1.6.x version;
#   3. a cached build at ${RALPH_ZITI_CACHE:-$HOME/.cache/ralph-ziti}/bin/ziti;
#   4. otherwise build OpenZiti v1.6.3 from source with Go into that cache
#      (several minutes on 2 cores the first time; progress goes to stderr).
#
# Why not plain `go install github.com/openziti/ziti/ziti@v1.6.3`: the module proxy reachable here
# refuses the zips of two dependency versions that ziti v1.6.3 requires (channel/v4 v4.2.8, storage
# v0.4.17) and the checksum database is unreachable. So the build happens in a throwaway wrapper
# module that requires ziti v1.6.3 and raises those two dependencies to the nearest versions the
# proxy serves (minimal version selection then picks them; no replace directives). Checksums: the
# wrapper's go.sum is ziti v1.6.3's own go.sum plus the pinned lines below; any module hash outside
# that set makes the build fail instead of being trusted silently.
#
# Exit status: 0 with the path on stdout; non-zero with a message on stderr when Go is missing or
# too old, or the build fails.
set -euo pipefail

ZITI_VERSION=v1.6.3
ACCEPT_VERSION_PREFIX=v1.6.
CACHE="${RALPH_ZITI_CACHE:-$HOME/.cache/ralph-ziti}"
BIN="$CACHE/bin/ziti"

log() { printf 'get-ziti: %s\n' "$*" >&2; }
die() { printf 'get-ziti: error: %s\n' "$*" >&2; exit 1; }

# usable BINARY: BINARY runs and reports a v1.6.x version.
usable() {
  local out
  [[ -x "$1" ]] || return 1
  out="$(ZITI_CHECK_VERSION=false "$1" version 2>/dev/null)" || return 1
  out="${out%%$'\n'*}"
  out="${out//[[:space:]]/}"
  [[ "$out" == "$ACCEPT_VERSION_PREFIX"* ]]
}

if [[ -n "${RALPH_ZITI:-}" ]]; then
  usable "$RALPH_ZITI" || die "RALPH_ZITI=$RALPH_ZITI is not an executable ziti ${ACCEPT_VERSION_PREFIX}x"
  printf '%s\n' "$RALPH_ZITI"
  exit 0
fi

if on_path="$(command -v ziti 2>/dev/null)" && usable "$on_path"; then
  printf '%s\n' "$on_path"
  exit 0
fi

if usable "$BIN"; then
  printf '%s\n' "$BIN"
  exit 0
fi

# ---- build -------------------------------------------------------------------------------------

GO="$(command -v go 2>/dev/null || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
[[ -n "$GO" ]] || die "Go is not installed (need Go >= 1.24 on PATH or at /usr/local/go/bin/go) and no usable ziti ${ACCEPT_VERSION_PREFIX}x was found"
go_version="$("$GO" env GOVERSION 2>/dev/null)" || die "cannot run $GO"
if [[ "$go_version" =~ ^go1\.([0-9]+) ]]; then
  (( BASH_REMATCH[1] >= 24 )) || die "$GO is $go_version; building ziti $ZITI_VERSION needs Go >= 1.24"
else
  die "cannot parse the Go version '$go_version' of $GO"
fi

mkdir -p "$CACHE/bin"
# One build at a time per cache (parallel test runs may all ask at once).
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
  log "taking the build lock $CACHE/.lock (another build may be running)"
  flock 9
  if usable "$BIN"; then printf '%s\n' "$BIN"; exit 0; fi
fi

WORK="$CACHE/build-$ZITI_VERSION"
rm -rf "$WORK"
mkdir -p "$WORK"

cat >"$WORK/go.mod" <<'EOF'
module ralph.invalid/zitibuild

go 1.24.0

require (
	github.com/openziti/ziti v1.6.3
	// ziti v1.6.3 asks for v4.2.8 and v0.4.17, whose zips the module proxy here refuses (403).
	github.com/openziti/channel/v4 v4.2.11
	github.com/openziti/storage v0.4.19
)
EOF

cat >"$WORK/tools.go" <<'EOF'
//go:build tools

package tools

import _ "github.com/openziti/ziti/ziti"
EOF

# Module hashes not in ziti v1.6.3's own go.sum (ziti itself and what the two bumps pull in).
cat >"$WORK/pinned.sum" <<'EOF'
github.com/openziti/channel/v4 v4.2.11 h1:jsuMcxvGzdeBxnisk7SzZ+8Nn9USuEWtcB2k1qC/kUY=
github.com/openziti/channel/v4 v4.2.11/go.mod h1:QIxr6xbqNC40Ch/uvgtaDfN33wMRJr4q7T8oqu3xYBA=
github.com/openziti/foundation/v2 v2.0.68 h1:694GKCSpIJpqllkrlNpdjo1DpoRx58i0ngzxl/wTTCE=
github.com/openziti/foundation/v2 v2.0.68/go.mod h1:sAtu+ulsxJWJ2iZ16UMBZVocRB3beBpHOE6Wy5RuvJI=
github.com/openziti/identity v1.0.107 h1:IHG/idv8Fc93kXyf3l6WyzOI5XIholbQpzaGmDe3waA=
github.com/openziti/identity v1.0.107/go.mod h1:H1HqLn9bIq3s71j1mWEuQEfQd0B4R7bOCRGIzChYtYA=
github.com/openziti/storage v0.4.19 h1:iRpZhHSU9KPVXQ++NjoZfpQL/8NkXHyg6N9wJ8cKABg=
github.com/openziti/storage v0.4.19/go.mod h1:vGoXfYYZCS2dh8KoHD0IF6QevcOfS4J8RhJvKTb2U98=
github.com/openziti/transport/v2 v2.0.179 h1:OF3fyteCrLHA7LCRlfHIh+mqOrpjfG4bhV/nnhCQKKo=
github.com/openziti/transport/v2 v2.0.179/go.mod h1:0dIVDbAdAiv0q0uNtXmxOXaA0lDoQpNP/6DcBoOmwJQ=
github.com/openziti/ziti v1.6.3 h1:RPJyfSFTDclDFTafF/FXf9ZZL9dofGpijdwgrh2a3Jo=
github.com/openziti/ziti v1.6.3/go.mod h1:6ZQUxjAu/pKlmELE+w2aEuwbEyU+chIc6dqmZMDk5mg=
EOF
cp "$WORK/pinned.sum" "$WORK/go.sum"

# The checksum database is unreachable here; integrity comes from the pinned go.sum instead.
export GOSUMDB=off GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod
unset GOOS GOARCH

build_log="$WORK/build.log"
: >"$build_log"
# run STEP-DESCRIPTION CMD...: run in $WORK, output to the build log, explain failures.
run() {
  local what="$1"; shift
  log "$what"
  if ! (cd "$WORK" && "$@") >>"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    if grep -q 'This module version is not available' "$build_log"; then
      grep -o '[^ ]*@v[^:]*: reading [^ ]*' "$build_log" | sort -u | sed 's/^/get-ziti:   refused by the module proxy: /' >&2
      log "hint: raise the refused module(s) in the wrapper go.mod of $0 to the nearest served version and pin their go.sum lines"
    fi
    die "$what failed (full log: $build_log)"
  fi
}

start=$SECONDS
log "building ziti $ZITI_VERSION with $go_version into $BIN (first time: several minutes)"
run "downloading github.com/openziti/ziti@$ZITI_VERSION" "$GO" mod download "github.com/openziti/ziti@$ZITI_VERSION"
ziti_dir="$(cd "$WORK" && "$GO" list -m -f '{{.Dir}}' github.com/openziti/ziti)" \
  || die "cannot locate the downloaded ziti module"
[[ -f "$ziti_dir/go.sum" ]] || die "no go.sum in $ziti_dir"
cat "$ziti_dir/go.sum" >>"$WORK/pinned.sum"
sort -u "$WORK/pinned.sum" -o "$WORK/pinned.sum"
cp "$WORK/pinned.sum" "$WORK/go.sum"

run "resolving dependencies (go mod tidy)" "$GO" mod tidy
unpinned="$(sort -u "$WORK/go.sum" | comm -23 - "$WORK/pinned.sum")"
if [[ -n "$unpinned" ]]; then
  printf '%s\n' "$unpinned" >&2
  die "the module hashes above are not pinned; refusing to build with unverified modules"
fi
run "verifying module contents (go mod verify)" "$GO" mod verify

export GOFLAGS=-mod=readonly
pkg=github.com/openziti/ziti/common/version
ldflags="-s -w -X $pkg.Version=$ZITI_VERSION -X $pkg.Revision=ralph-get-ziti -X '$pkg.BuildDate=$(date -u '+%Y-%m-%d %H:%M:%S')'"
tmp_bin="$BIN.tmp.$$"
run "compiling (go build github.com/openziti/ziti/ziti)" \
  "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp_bin" github.com/openziti/ziti/ziti
usable "$tmp_bin" || { rm -f "$tmp_bin"; die "the built binary does not report $ZITI_VERSION"; }
mv -f "$tmp_bin" "$BIN"
log "built $BIN in $((SECONDS - start))s"
printf '%s\n' "$BIN"
