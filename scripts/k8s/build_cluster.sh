#!/usr/bin/env bash
# Build the binaries and images of the local single-node Kubernetes cluster, or find them
# in the cache. Prints the cache directory on stdout (logs go to stderr):
#
#   $DIR/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,pause,tiny}
#   $DIR/images/{pause.tar,tiny.tar}   docker-archives for `ctr -n k8s.io images import`
#   $DIR/images.env                     PAUSE_IMAGE=... TINY_IMAGE=... (their references)
#
# Kubernetes 1.20.2 from Debian's `kubernetes` source package, built with Debian's
# golang-1.19 (see docs in scripts/k8s/README.md and the platform notes): no registry
# or prebuilt release is reachable from this machine kind, Debian packages are.
# Cached under ~/.cache/agentic-orchestration/k8s/<key>/, key = hash of the source
# version, the Go and reflect2 package versions and this script (plus tiny.c): only the
# binaries and image archives are kept (the ~1.9 GB build tree is thrown away).
#
# Usage: build_cluster.sh [--print-dir]   (--print-dir: print the dir, build nothing;
#                                           exit 1 if it is not built yet)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# The exact Debian source version: pinned so the cache key needs no network. The
# "really1.20.2" is Debian's: 1.20.5 was reverted to 1.20.2 plus security patches.
K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_VERSION="v1.20.2"
GO_PKG="golang-1.19-go"
GO="/usr/lib/go-1.19/bin/go"
REFLECT2_PKG="golang-github-modern-go-reflect2-dev"
CACHE_ROOT="${AO_CACHE_DIR:-$HOME/.cache/agentic-orchestration}/k8s"
PAUSE_IMAGE="localhost/ao-pause:3.4.1-k8s1.20.2"
TINY_IMAGE="localhost/ao-tiny:1"

log() { echo "build_cluster: $*" >&2; }
die() { echo "build_cluster: error: $*" >&2; exit 1; }

# Version of a Debian package: the installed one, else the one apt would install (so the
# key is the same before and after the install below).
pkg_version() {
  local v
  v="$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | awk '/install ok installed/{print $4}')"
  if [[ -z "$v" ]]; then
    v="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}')"
  fi
  if [[ -z "$v" || "$v" == "(none)" ]] && [[ $EUID -eq 0 && -z "${_APT_UPDATED:-}" ]]; then
    # A fresh machine may have empty apt lists: fetch them once.
    _APT_UPDATED=1
    apt-get update -qq >&2 || die "apt-get update failed"
    v="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}')"
  fi
  [[ -n "$v" && "$v" != "(none)" ]] || die "package $1 is neither installed nor known to apt"
  echo "$v"
}

cache_key() {
  {
    echo "$K8S_DEB_VERSION"
    echo "$GO_PKG $(pkg_version "$GO_PKG")"
    echo "$REFLECT2_PKG $(pkg_version "$REFLECT2_PKG")"
    cat "$HERE/build_cluster.sh" "$HERE/tiny.c"
  } | sha256sum | cut -c1-16
}

# Installs the Debian packages in "$@" that are missing (one apt-get call for all).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  [[ $EUID -eq 0 ]] || die "need root to install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } \
    || die "apt-get install ${missing[*]} failed"
}

# deb-src lines for bookworm and bookworm-security, in our own file (the host's sources
# carry only binary `deb` lines on this machine kind).
ensure_deb_src() {
  local f=/etc/apt/sources.list.d/agentic-orchestration-src.sources
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: ${K8S_DEB_VERSION}\$"; then
    if [[ ! -f "$f" ]]; then
      log "adding deb-src lines in $f"
      cat >"$f" <<'EOF'
# Added by agentic-orchestration scripts/k8s/build_cluster.sh: Debian's kubernetes source package.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: ${K8S_DEB_VERSION}\$" \
      || die "Debian source kubernetes=${K8S_DEB_VERSION} not available (update K8S_DEB_VERSION in $0)"
  fi
}

# openapi-gen over every package tagged +k8s:openapi-gen, exactly as the upstream
# Makefile.generated_files does for the KUBE target (the tarball lacks this one file).
generate_openapi() {
  local src="$1" bin="$2" dirs
  dirs="$(cd "$src" && find -H . \( -path './_*' -o -path './.*' -o -path ./vendor -o -path ./debian \) -prune \
            -o -type f -name '*.go' -print \
          | sed 's|^\./staging/src|vendor|; s|^\./||' \
          | xargs grep --color=never -l '^// *+k8s:' \
          | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
          | xargs grep --color=never -l '+k8s:openapi-gen=' \
          | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd,)"
  [[ -n "$dirs" ]] || die "no +k8s:openapi-gen packages found"
  (cd "$src" && "$bin" -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h hack/boilerplate/boilerplate.generatego.txt -r /dev/null >&2) || die "openapi-gen failed"
}

# A `from scratch` image holding one static binary, as a docker-archive. buildah runs
# with its own throwaway storage (vfs) so it neither needs nor touches the host's.
build_image() {
  local binary="$1" name="$2" out="$3" work="$4" ctr
  local -a bah=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
  ctr="$("${bah[@]}" from scratch)"
  "${bah[@]}" copy "$ctr" "$binary" "/$(basename "$binary")" >/dev/null
  "${bah[@]}" config --entrypoint "[\"/$(basename "$binary")\"]" --cmd '[]' "$ctr"
  "${bah[@]}" commit -q "$ctr" "$name" >/dev/null
  "${bah[@]}" push -q "$name" "docker-archive:$out:$name" >&2
  "${bah[@]}" rm "$ctr" >/dev/null
}

build() {
  local dest="$1" work t0 src out
  t0=$SECONDS
  apt_install "$GO_PKG" "$REFLECT2_PKG" dpkg-dev gcc libc6-dev buildah xz-utils
  ensure_deb_src
  work="$(mktemp -d "${TMPDIR:-/var/tmp}/ao-k8s-build.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT
  log "fetching Debian source kubernetes=$K8S_DEB_VERSION into $work"
  # (apt warns that root downloads "unsandboxed" into a private temp dir: harmless.)
  (cd "$work" && apt-get source -qq --download-only "kubernetes=$K8S_DEB_VERSION" >&2) \
    || die "apt-get source kubernetes=$K8S_DEB_VERSION failed"
  # GOPATH mode: module mode fails on this tree ("updates to go.mod needed").
  mkdir -p "$work/go/src/k8s.io"
  src="$work/go/src/k8s.io/kubernetes"
  # (Quiet: it warns that it cannot check the signature, having no keyring; apt did.)
  (cd "$work" && dpkg-source -x kubernetes_*.dsc "$src" >"$work/dpkg-source.log" 2>&1) \
    || { cat "$work/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
  # The vendored reflect2 1.0.1 does not build with Go >= 1.18; Debian's 1.0.2 does.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

  export GOPATH="$work/go" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache" \
    GOTOOLCHAIN=local GOPROXY=off
  out="$work/out"
  mkdir -p "$out/bin" "$out/images"
  log "generating OpenAPI definitions"
  (cd "$src" && "$GO" build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen) \
    || die "building openapi-gen failed"
  generate_openapi "$src" "$work/openapi-gen"

  local vpkg=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  local ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=20 \
-X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  log "go build kubelet, kube-apiserver, kube-controller-manager, kube-scheduler ($($GO version)); several minutes on 2 cores"
  # One `go build` for all four: it shares the compile of the common packages.
  (cd "$src" && "$GO" build -trimpath -ldflags "$ldflags" -o "$out/bin/" \
      ./cmd/kubelet ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler >&2) \
    || die "go build of the Kubernetes components failed"

  log "building the pause and tiny images"
  gcc -Os -static -DVERSION=3.4.1-ao -o "$out/bin/pause" "$src/build/pause/linux/pause.c" \
    || die "gcc pause.c failed"
  gcc -Os -static -o "$out/bin/tiny" "$HERE/tiny.c" || die "gcc tiny.c failed"
  strip "$out/bin/pause" "$out/bin/tiny"
  build_image "$out/bin/pause" "$PAUSE_IMAGE" "$out/images/pause.tar" "$work" || die "buildah: pause image failed"
  build_image "$out/bin/tiny" "$TINY_IMAGE" "$out/images/tiny.tar" "$work" || die "buildah: tiny image failed"
  printf 'PAUSE_IMAGE=%s\nTINY_IMAGE=%s\nK8S_VERSION=%s\n' "$PAUSE_IMAGE" "$TINY_IMAGE" "$K8S_VERSION" >"$out/images.env"
  "$out/bin/kube-apiserver" --version >&2

  # Publish atomically: a half-written dir is never mistaken for a cached build.
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest.tmp"
  mv "$out" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  # Builds of other keys are about 350 MB each: drop those unused for a week (not at once:
  # another checkout on this machine may still be using one).
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name "$(basename "$dest")" -mtime +7 \
    -exec rm -rf {} +
  log "built in $((SECONDS - t0)) s: $dest"
}

main() {
  local key dest
  key="$(cache_key)"
  dest="$CACHE_ROOT/$key"
  if [[ "${1:-}" == "--print-dir" ]]; then
    [[ -x "$dest/bin/kubelet" ]] || exit 1
    echo "$dest"; return 0
  fi
  if [[ ! -x "$dest/bin/kubelet" ]]; then
    mkdir -p "$CACHE_ROOT"
    # Two pytest processes (or test.sh and a developer) may ask at once: one builds.
    exec 9>"$CACHE_ROOT/.build.lock"
    flock 9
    [[ -x "$dest/bin/kubelet" ]] || build "$dest"
  fi
  touch "$dest"  # last used: see the pruning in build()
  echo "$dest"
}

main "$@"
