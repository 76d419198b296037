#!/usr/bin/env bash
# build-ziti-sdk.sh: build the OpenZiti Node SDK (@openziti/ziti-sdk-nodejs 0.13.3) with ralph's
# fixes, and print on stdout the path of the built module (a directory `require()` loads).
#
#   install/build-ziti-sdk.sh [--sources DIR] [--force]
#
# ralph's SDK backend (`--ziti-backend sdk`, and `auto`) finds the build there by itself; set
# RALPH_ZITI_SDK_MODULE to the printed path to use it from somewhere else.
#
# Why a build of our own: the npm package's install downloads a prebuilt binary from a host outside
# the npm registry, its source build needs the OpenZiti C SDK, which the package does not contain,
# and the stock 0.13.3 addon crashes (use-after-free at the end of a dialed stream), never reports a
# failed dial and leaks per write. install/ziti-sdk/ holds our fixes (addon.patch, uv-mbed-zlib.patch,
# ziti-sdk-c-rebind.patch, each explained at its top), our Linux binding.gyp, and the pinned sources.
#
# What it does:
#   1. the C SDK and what its CMake would fetch (uv-mbed, http-parser, uv_link_t) at the commits in
#      install/ziti-sdk/sources: from --sources DIR (`git archive` tarballs, e.g.
#      ../shared/vendor/ziti-sdk-nodejs-0.13.3/, checked against the pinned sha256 of each), else
#      fetched from the upstream repositories at exactly those commits (checked against the pinned
#      sha256 of the same archive, uncompressed);
#   2. the npm package 0.13.3 (DIR/openziti-ziti-sdk-nodejs-0.13.3.tgz if --sources has it, else
#      `npm pack`), checked against its pinned sha256;
#   3. the patches; the C SDK's static library with CMake + Ninja (OpenSSL and libuv headers from
#      the system, libsodium linked); the addon with node-gyp against this Node's headers;
#   4. the result goes to ${RALPH_ZITI_CACHE:-$HOME/.cache/ralph-ziti}/sdk/<version>, with
#      ralph-build.json beside it; a later run with the same fixes prints that path at once.
#
# Needs: Node.js >= 20 with its headers (/usr/include/node, $npm_config_nodedir, or node-gyp's
# download), a C compiler, make, python3, git, patch, cmake, ninja and the development files of
# libuv, libsodium, OpenSSL and zlib. On Debian/Ubuntu:
#   apt-get install -y build-essential python3 git patch cmake ninja-build libuv1-dev libsodium-dev libssl-dev zlib1g-dev
# At run time the module needs libsodium (libsodium23). About a minute on 2 cores.
#
# Exit status: 0 with the path on stdout; non-zero with a message on stderr.
set -euo pipefail

SDK_VERSION=0.13.3
NPM_SPEC="@openziti/ziti-sdk-nodejs@$SDK_VERSION"
NPM_TGZ="openziti-ziti-sdk-nodejs-$SDK_VERSION.tgz"
NPM_TGZ_SHA256=35c49f26f5a7f249efb310117df1ac0b63ff7583734f3f2f6c691763166afe22

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FIXES_DIR="$here/ziti-sdk"
CACHE="${RALPH_ZITI_CACHE:-$HOME/.cache/ralph-ziti}"

log() { printf 'build-ziti-sdk: %s\n' "$*" >&2; }
die() { printf 'build-ziti-sdk: error: %s\n' "$*" >&2; exit 1; }
usage() { printf 'usage: build-ziti-sdk.sh [--sources DIR] [--force]\n' >&2; exit 2; }

sources_dir=""
force=0
while (($#)); do
  case "$1" in
    --sources) (($# >= 2)) || usage; sources_dir="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) usage ;;
  esac
done
if [[ -n "$sources_dir" ]]; then
  [[ -d "$sources_dir" ]] || die "--sources $sources_dir: no such directory"
  sources_dir="$(cd "$sources_dir" && pwd)"
fi

# The fixes' identity: sha256 of the files in install/ziti-sdk/, in name order, concatenated. The
# binary carries it (`ralph_fixes`) and ralph compares it with the same sum over its own copy, so a
# build made with other (older) fixes is never taken for this one. transport/ziti/sdk.ts computes it
# the same way.
fixes_id() {
  local f
  (cd "$FIXES_DIR" && for f in $(LC_ALL=C ls); do [[ -f "$f" ]] && cat -- "$f"; done) | sha256sum | cut -c1-12
}
FIXES="$SDK_VERSION+ralph.$(fixes_id)"
OUT="$CACHE/sdk/ziti-sdk-nodejs-$FIXES"

# usable DIR: DIR holds a module that loads in this Node and carries these fixes.
usable() {
  [[ -f "$1/ralph-build.json" && -f "$1/build/Release/ziti_sdk_nodejs.node" ]] || return 1
  node -e 'process.exit(require(process.argv[1]).ralph_fixes === process.argv[2] ? 0 : 1)' "$1" "$FIXES" >/dev/null 2>&1
}

if ((!force)) && usable "$OUT"; then
  printf '%s\n' "$OUT"
  exit 0
fi

# ---- prerequisites -------------------------------------------------------------------------------

apt_hint="on Debian/Ubuntu: apt-get install -y build-essential python3 git patch cmake ninja-build libuv1-dev libsodium-dev libssl-dev zlib1g-dev"
missing=()
for cmd in node npm cc c++ make python3 git patch cmake ninja tar gzip sha256sum; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
((${#missing[@]} == 0)) || die "missing ${missing[*]} ($apt_hint)"
for header in uv.h sodium.h openssl/ssl.h zlib.h; do
  printf '#include <%s>\n' "$header" | cc -E -x c - >/dev/null 2>&1 || missing+=("$header")
done
((${#missing[@]} == 0)) || die "missing the development headers ${missing[*]} ($apt_hint)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js $(node -v) is too old: ralph needs Node.js 20 or newer"

# node-gyp: the one npm runs for install scripts, else npm's own copy, else one on PATH.
node_gyp="${npm_config_node_gyp:-}"
if [[ -z "$node_gyp" || ! -f "$node_gyp" ]]; then
  node_gyp="$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"
  [[ -f "$node_gyp" ]] || node_gyp="$(command -v node-gyp 2>/dev/null || true)"
fi
[[ -n "$node_gyp" && -f "$node_gyp" ]] || die "cannot find node-gyp (it comes with npm; or: npm install -g node-gyp)"
# Node's headers: the local ones when installed (no download), else node-gyp fetches them.
nodedir_args=()
if [[ -n "${npm_config_nodedir:-}" ]]; then
  nodedir_args=(--nodedir="$npm_config_nodedir")
elif [[ -f /usr/include/node/node_api.h && "$(command -v node)" == /usr/bin/node ]]; then
  nodedir_args=(--nodedir=/usr)
fi

mkdir -p "$CACHE/sdk"
# One build at a time per cache (parallel test runs may all ask at once).
exec 9>"$CACHE/.sdk-lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  if ((!force)) && usable "$OUT"; then printf '%s\n' "$OUT"; exit 0; fi
fi

WORK="$(mktemp -d "$CACHE/sdk-build.XXXXXX")"   # kept when the build fails, for its log
mkdir -p "$WORK/src" "$WORK/fetch"
build_log="$WORK/build.log"
: >"$build_log"

# run WHAT CMD...: run CMD with its output in the build log; on failure show the log's end.
run() {
  local what="$1"; shift
  log "$what"
  if ! "$@" >>"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    die "$what failed (full log: $build_log)"
  fi
}

sha256_of() { sha256sum | cut -d' ' -f1; }

# Git without the user's configuration, hooks or signing: these repositories are scratch.
git_() {
  GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 \
    git -c user.name=ralph -c user.email=ralph@localhost -c commit.gpgsign=false -c tag.gpgsign=false \
    -c core.hooksPath=/dev/null -c init.defaultBranch=main -c advice.detachedHead=false "$@"
}

start=$SECONDS
log "building $NPM_SPEC with ralph's fixes ($FIXES) into $OUT"

# ---- the C SDK and its dependencies --------------------------------------------------------------

# describe_repo DIR DESCRIBE: make DIR a git repository whose `git describe --tags` says DESCRIBE
# (TAG or TAG-N-gHASH), which is how these CMake files learn their versions.
describe_repo() {
  local dir="$1" describe="$2" tag count=0 i
  tag="${describe%%-*}"
  if [[ "$describe" =~ ^(.+)-([0-9]+)$ ]]; then tag="${BASH_REMATCH[1]}"; count="${BASH_REMATCH[2]}"; fi
  git_ -C "$dir" init -q
  git_ -C "$dir" add -A
  git_ -C "$dir" commit -qm "pinned source" --no-verify
  git_ -C "$dir" tag "$tag"
  for ((i = 0; i < count; i++)); do git_ -C "$dir" commit -q --allow-empty -m "after $tag ($((i + 1)))"; done
}

declare -A srcdir
while read -r archive repo commit describe sum_tgz sum_tar; do
  [[ -z "$archive" || "$archive" == \#* ]] && continue
  name="${archive%.tar.gz}"
  dir="$WORK/src/$name"
  mkdir -p "$dir"
  if [[ -n "$sources_dir" ]]; then
    [[ -f "$sources_dir/$archive" ]] || die "--sources $sources_dir has no $archive"
    [[ "$(sha256_of <"$sources_dir/$archive")" == "$sum_tgz" ]] || die "$sources_dir/$archive does not have the pinned sha256 $sum_tgz"
    tar -xzf "$sources_dir/$archive" -C "$dir"
  else
    mirror="$WORK/fetch/$name.git"
    git_ init -q --bare "$mirror"
    log "fetching $repo at $commit"
    git_ -C "$mirror" fetch -q --depth 1 "$repo" "$commit" >>"$build_log" 2>&1 || {
      tail -n 5 "$build_log" >&2
      die "cannot fetch $repo at $commit; on a machine that cannot reach it, build from the pinned archives: --sources DIR (see install/ziti-sdk/sources)"
    }
    tar_file="$WORK/fetch/$name.tar"
    git_ -C "$mirror" archive --format=tar -o "$tar_file" "$commit"
    [[ "$(sha256_of <"$tar_file")" == "$sum_tar" ]] || die "$repo at $commit does not give the pinned archive (sha256 $sum_tar)"
    tar -xf "$tar_file" -C "$dir"
  fi
  [[ "$describe" == - ]] || describe_repo "$dir" "$describe"
  case "$name" in
    ziti-sdk-c-*) srcdir[sdk]="$dir" ;;
    uv-mbed-*) srcdir[uv_mbed]="$dir" ;;
    http-parser-*) srcdir[http_parser]="$dir" ;;
    uv_link_t-*) srcdir[uv_link]="$dir" ;;
  esac
done <"$FIXES_DIR/sources"
for k in sdk uv_mbed http_parser uv_link; do
  [[ -n "${srcdir[$k]:-}" ]] || die "install/ziti-sdk/sources names no $k source"
done
# The C SDK's CMake also wants openziti/subcommands.c, for its sample programs only (not built).
mkdir -p "$WORK/src/subcommand-unused"

# ---- the npm package -----------------------------------------------------------------------------

tgz="$WORK/fetch/$NPM_TGZ"
if [[ -n "$sources_dir" && -f "$sources_dir/$NPM_TGZ" ]]; then
  cp "$sources_dir/$NPM_TGZ" "$tgz"
else
  run "fetching $NPM_SPEC from the npm registry" npm pack "$NPM_SPEC" --pack-destination "$WORK/fetch" --silent
fi
[[ "$(sha256_of <"$tgz")" == "$NPM_TGZ_SHA256" ]] || die "$NPM_TGZ does not have the pinned sha256 $NPM_TGZ_SHA256"
mkdir -p "$WORK/addon"
tar -xzf "$tgz" -C "$WORK/addon" --strip-components=1

run "applying ziti-sdk-c-rebind.patch" patch -d "${srcdir[sdk]}" -p1 --forward --batch -i "$FIXES_DIR/ziti-sdk-c-rebind.patch"
run "applying uv-mbed-zlib.patch" patch -d "${srcdir[uv_mbed]}" -p1 --forward --batch -i "$FIXES_DIR/uv-mbed-zlib.patch"
run "applying addon.patch" patch -d "$WORK/addon" -p1 --forward --batch -i "$FIXES_DIR/addon.patch"
cp "$FIXES_DIR/binding.gyp" "$WORK/addon/binding.gyp"

# ---- build ---------------------------------------------------------------------------------------

jobs="$(nproc 2>/dev/null || echo 2)"
cbuild="$WORK/c-sdk-build"
run "configuring the C SDK (cmake)" cmake -G Ninja -S "${srcdir[sdk]}" -B "$cbuild" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DUSE_OPENSSL=ON -DHAVE_LIBUV=ON -DHAVE_LIBSODIUM=ON \
  -DZITI_BUILD_PROGRAMS=OFF -DZITI_BUILD_TESTS=OFF \
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
  "-DFETCHCONTENT_SOURCE_DIR_UV-MBED=${srcdir[uv_mbed]}" \
  "-DFETCHCONTENT_SOURCE_DIR_HTTP_PARSER=${srcdir[http_parser]}" \
  "-DFETCHCONTENT_SOURCE_DIR_UV_LINK=${srcdir[uv_link]}" \
  "-DFETCHCONTENT_SOURCE_DIR_SUBCOMMAND=$WORK/src/subcommand-unused"
run "compiling the C SDK (libziti, uv-mbed)" cmake --build "$cbuild" --target ziti -j "$jobs"

run "compiling the addon (node-gyp)" env -C "$WORK/addon" node "$node_gyp" rebuild "${nodedir_args[@]}" -j "$jobs" -- \
  "-Dsdk_src=${srcdir[sdk]}" "-Dsdk_build=$cbuild" "-Duv_mbed_src=${srcdir[uv_mbed]}" \
  "-Dhttp_parser_src=${srcdir[http_parser]}" "-Duv_link_src=${srcdir[uv_link]}" \
  "-Dsdk_version=$SDK_VERSION" "-Dralph_fixes=$FIXES"

# ---- install into the cache ----------------------------------------------------------------------

stage="$OUT.tmp.$$"
rm -rf "$stage"
mkdir -p "$stage/build/Release"
cp -R "$WORK/addon/lib" "$WORK/addon/package.json" "$WORK/addon/LICENSE" "$stage/"
cp "$WORK/addon/build/Release/ziti_sdk_nodejs.node" "$stage/build/Release/"
cat >"$stage/ralph-build.json" <<EOF
{
  "package": "@openziti/ziti-sdk-nodejs",
  "version": "$SDK_VERSION",
  "fixes": "$FIXES",
  "sources": "$( [[ -n "$sources_dir" ]] && printf '%s' "$sources_dir" || printf 'upstream repositories' )",
  "node": "$(node -v)",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
usable "$stage" || { rm -rf "$stage"; die "the built module does not load in $(node -v) (see $build_log)"; }
rm -rf "$OUT"
mv "$stage" "$OUT"
rm -rf "$WORK"
log "built $OUT in $((SECONDS - start))s"
printf '%s\n' "$OUT"
