#!/usr/bin/env bash
# The local single-node Kubernetes 1.20 cluster the tests run against: etcd,
# kube-apiserver (TLS + token auth on 127.0.0.1:6443, Node,RBAC), controller-manager,
# scheduler, containerd + runc and a real kubelet, all started from this script and
# stopped by PID. See scripts/k8s/README.md.
#
#   cluster.sh up              start what is not running, wait for Node Ready (no-op when up)
#   cluster.sh down            stop everything, unmount, restore host sysctls
#   cluster.sh status          one line per component; exit 0 only if all are up and Ready
#   cluster.sh env             shell lines: export KUBECONFIG=... AO_K8S_*=...
#   cluster.sh import FILE     import an image archive (docker-archive/oci) into containerd
#   cluster.sh pv NAME DIR [NAMESPACE/CLAIM]   a hostPath PV of class `manual` (optionally
#                              pre-bound to one PVC)
#   cluster.sh logs COMPONENT [N]   last N lines of a component's log
#
# State lives in $AO_K8S_STATE_DIR (default /var/lib/agentic-k8s): pki, tokens, kubeconfig,
# etcd data, containerd root (images survive down/up), kubelet root, logs/, pids/.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${AO_K8S_STATE_DIR:-/var/lib/agentic-k8s}"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
PKI="$STATE/pki"
SOCK="$STATE/containerd.sock"
KUBECONFIG_ADMIN="$STATE/kubeconfig"
SERVER="https://127.0.0.1:6443"
NODE_NAME="${AO_K8S_NODE_NAME:-agentic-node}"
# The kubelet rewrites these at start; saved before the first start, restored by down.
# (ip_forward: the CNI bridge is a gateway.)
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Start order; down goes the other way.
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet)
WAIT_SECONDS="${AO_K8S_WAIT_SECONDS:-90}"
KCTL=(kubectl --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=10s)

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# Fails naming the component and showing the end of its log (the pytest fixture shows
# this text as is).
fail_component() {
  local c="$1"; shift
  echo "cluster: error: $c: $*" >&2
  if [[ -f "$LOGS/$c.log" ]]; then
    echo "cluster: last lines of $LOGS/$c.log:" >&2
    tail -n "${AO_K8S_LOG_LINES:-25}" "$LOGS/$c.log" | sed 's/^/    /' >&2
  fi
  exit 1
}

bin_dir() { echo "$BUILD/bin"; }

# ---- processes -------------------------------------------------------------------------

# PID of a running component, or nothing. The pid file alone is not trusted: the PID may
# have been reused, so its executable name must match too.
pid_of() {
  local c="$1" pid exe
  [[ -f "$PIDS/$c.pid" ]] || return 0
  pid="$(cat "$PIDS/$c.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  alive "$pid" || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "$(basename "${exe% (deleted)}")" == "$c" ]] && echo "$pid"
  return 0
}

# Starts a component in its own session (so a Ctrl-C in the caller's terminal or the end
# of a pytest run does not take it down) with its output in logs/<c>.log. fd 9 (our lock)
# is closed so the daemon does not hold it.
spawn() {
  local c="$1"; shift
  echo "=== $(date -u +%FT%TZ) cluster.sh start: $*" >>"$LOGS/$c.log"
  setsid "$@" </dev/null >>"$LOGS/$c.log" 2>&1 9>&- &
  echo $! >"$PIDS/$c.pid"
}

# Fails naming the component if one of its TCP ports is taken (by a host etcd, or another
# cluster from another state dir): else its health probe could reach the other process.
ports_free() {
  local c="$1" port holder; shift
  for port in "$@"; do
    holder="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 || true)"
    if [[ -n "$holder" ]] || [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
      fail_component "$c" "port $port is already in use${holder:+ by ${holder#users:((}} (another cluster or a host service?)"
    fi
  done
}

# Waits until "$@" succeeds; fails naming the component if it dies or times out.
wait_for() {
  local c="$1" what="$2"; shift 2
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    # By PID only: just after spawn the executable may still be setsid's.
    alive "$(cat "$PIDS/$c.pid")" || fail_component "$c" "exited while waiting for $what"
    ((SECONDS < deadline)) || fail_component "$c" "not $what after ${WAIT_SECONDS}s"
    sleep 0.2
  done
}

# Alive and not a zombie: our daemons are reparented to PID 1, which may reap them late.
alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

stop_pid() {
  local c="$1" pid="$2" grace="${3:-10}" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  # The apiserver may sit on SIGTERM for its shutdown delay: do not wait longer.
  log "$c (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

# ---- one-time setup ----------------------------------------------------------------------

node_ip() {
  local ip
  ip="$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="src") print $(i+1)}' | head -n1)"
  echo "${ip:-127.0.0.1}"
}

ensure_packages() {
  local missing=() p
  for p in etcd-server containerd runc containernetworking-plugins openssl iproute2 curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } \
    || die "apt-get install ${missing[*]} failed"
  # Debian's postinst would start them under systemd; without systemd nothing runs, but
  # make sure a distro etcd is not holding our port.
}

random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# A CA, the apiserver's serving cert, its client cert for the kubelet, the
# service-account key pair and one token per identity. Made once; kept across down/up.
ensure_pki() {
  [[ -f "$PKI/done" ]] && return 0
  log "creating CA, certificates and tokens in $PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  local ip; ip="$(node_ip)"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=agentic-k8s-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat >apiserver.ext <<EOF
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$ip
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # The apiserver's identity towards the kubelet (logs, exec): in system:masters.
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      -keyout apiserver-kubelet-client.key -out apiserver-kubelet-client.csr 2>/dev/null
    openssl x509 -req -in apiserver-kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -extfile client.ext -out apiserver-kubelet-client.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext
    # token,user,uid,"groups": the admin is in system:masters; the node and the two
    # controllers get the identities the bootstrap RBAC roles and the Node authorizer expect.
    {
      echo "$(random_token),admin,admin,\"system:masters\""
      echo "$(random_token),system:node:$NODE_NAME,kubelet,\"system:nodes\""
      echo "$(random_token),system:kube-controller-manager,kube-controller-manager,"
      echo "$(random_token),system:kube-scheduler,kube-scheduler,"
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
    touch done
  ) || die "openssl failed while creating $PKI"
}

token_of() { awk -F, -v u="$1" '$2 == u {print $1}' "$PKI/tokens.csv"; }

write_kubeconfig() {
  local file="$1" user="$2"
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentic
  cluster:
    server: $SERVER
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    token: $(token_of "$user")
contexts:
- name: agentic
  context: {cluster: agentic, user: $user, namespace: default}
current-context: agentic
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

save_sysctls() {
  [[ -f "$STATE/sysctl.saved" ]] && return 0
  local k
  for k in "${SYSCTLS[@]}"; do
    [[ -e "/proc/sys/${k//.//}" ]] && echo "$k=$(cat "/proc/sys/${k//.//}")"
  done >"$STATE/sysctl.saved.tmp"
  mv "$STATE/sysctl.saved.tmp" "$STATE/sysctl.saved"
}

restore_sysctls() {
  [[ -f "$STATE/sysctl.saved" ]] || return 0
  local line
  while IFS= read -r line; do
    echo "${line#*=}" >"/proc/sys/$(echo "${line%%=*}" | tr . /)" 2>/dev/null \
      || log "could not restore ${line%%=*}"
  done <"$STATE/sysctl.saved"
  rm -f "$STATE/sysctl.saved"
}

write_configs() {
  local ip; ip="$(node_ip)"
  mkdir -p "$STATE/containerd/root" "$STATE/containerd/state" "$STATE/cni/net.d" \
    "$STATE/cni/ipam" "$STATE/kubelet/root" "$STATE/pv"
  write_kubeconfig "$KUBECONFIG_ADMIN" admin
  write_kubeconfig "$STATE/kubelet.kubeconfig" "system:node:$NODE_NAME"
  write_kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager
  write_kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler

  # containerd: its own root, state and socket (a host containerd may run beside it).
  # restrict_oom_score_adj: without it every sandbox fails here (no CAP_SYS_RESOURCE in
  # this VM's bounding set: "can't get final child's PID from pipe: EOF").
  containerd config default | sed \
    -e "s|^root = .*|root = \"$STATE/containerd/root\"|" \
    -e "s|^state = .*|state = \"$STATE/containerd/state\"|" \
    -e "s|^  address = \"/run/containerd/containerd.sock\"|  address = \"$SOCK\"|" \
    -e "s|sandbox_image = .*|sandbox_image = \"$PAUSE_IMAGE\"|" \
    -e "s|restrict_oom_score_adj = .*|restrict_oom_score_adj = true|" \
    -e "s|SystemdCgroup = .*|SystemdCgroup = false|" \
    -e "s|BinaryName = \"\"|BinaryName = \"/usr/sbin/runc\"|" \
    -e "s|bin_dir = .*|bin_dir = \"/usr/lib/cni\"|" \
    -e "s|conf_dir = \"/etc/cni/net.d\"|conf_dir = \"$STATE/cni/net.d\"|" \
    >"$STATE/containerd/config.toml"
  grep -q "restrict_oom_score_adj = true" "$STATE/containerd/config.toml" \
    && grep -q "address = \"$SOCK\"" "$STATE/containerd/config.toml" \
    || die "containerd config default changed shape: edit write_configs in $0"

  # A bridge network so the runtime reports NetworkReady (else the Node stays NotReady)
  # and non-hostNetwork pods work too; no masquerade: nothing here needs to leave the host.
  cat >"$STATE/cni/net.d/10-agentic.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "agentic-pods",
  "plugins": [
    {"type": "bridge", "bridge": "ao-cni0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
              "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
EOF

  cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
enforceNodeAllocatable: []
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
kubeAPIQPS: 50
kubeAPIBurst: 100
serializeImagePulls: false
volumePluginDir: $STATE/kubelet/volume-plugins
staticPodPath: ""
EOF
}

# ---- start -------------------------------------------------------------------------------

http_ok() { curl -fsS --max-time 2 "$@"; }
api_ok() { http_ok --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" "$SERVER$1"; }

start_etcd() {
  ports_free etcd 2379 2380
  spawn etcd etcd --name agentic --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster agentic=http://127.0.0.1:2380 --log-level warn
  wait_for etcd "healthy on 127.0.0.1:2379" http_ok http://127.0.0.1:2379/health
}

start_kube-apiserver() {
  ports_free kube-apiserver 6443
  spawn kube-apiserver "$(bin_dir)/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --secure-port=6443 --advertise-address="$(node_ip)" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true --feature-gates=TTLAfterFinished=true \
    --profiling=false --v=1
  wait_for kube-apiserver "ready on $SERVER" api_ok /readyz
}

start_containerd() {
  spawn containerd containerd --config "$STATE/containerd/config.toml"
  wait_for containerd "serving on $SOCK" ctr -a "$SOCK" version
  import_image_if_missing "$PAUSE_IMAGE" "$BUILD/images/pause.tar"
  import_image_if_missing "$TINY_IMAGE" "$BUILD/images/tiny.tar"
}

import_image_if_missing() {
  local ref="$1" archive="$2"
  ctr -a "$SOCK" -n k8s.io images ls -q | grep -qxF "$ref" && return 0
  ctr -a "$SOCK" -n k8s.io images import "$archive" >/dev/null \
    || fail_component containerd "importing $archive failed"
}

start_kube-controller-manager() {
  ports_free kube-controller-manager 10252
  spawn kube-controller-manager "$(bin_dir)/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --controllers=job,garbagecollector,ttl-after-finished,namespace,persistentvolume-binder,pv-protection,pvc-protection,nodelifecycle,podgc,replicaset,deployment,serviceaccount,serviceaccount-token,root-ca-cert-publisher \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --feature-gates=TTLAfterFinished=true \
    --kube-api-qps=100 --kube-api-burst=200 \
    --leader-elect=false --secure-port=0 --address=127.0.0.1 --port=10252 --v=1
  wait_for kube-controller-manager "healthy on 127.0.0.1:10252" http_ok http://127.0.0.1:10252/healthz
}

start_kube-scheduler() {
  ports_free kube-scheduler 10251
  spawn kube-scheduler "$(bin_dir)/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --leader-elect=false --secure-port=0 --address=127.0.0.1 --port=10251 --v=1
  wait_for kube-scheduler "healthy on 127.0.0.1:10251" http_ok http://127.0.0.1:10251/healthz
}

start_kubelet() {
  ports_free kubelet 10250 10248
  save_sysctls
  spawn kubelet "$(bin_dir)/kubelet" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --config="$STATE/kubelet/config.yaml" \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
    --pod-infra-container-image="$PAUSE_IMAGE" \
    --root-dir="$STATE/kubelet/root" --cert-dir="$STATE/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$(node_ip)" --v=1
  wait_for kubelet "healthy on 127.0.0.1:10248" http_ok http://127.0.0.1:10248/healthz
}

node_ready() {
  [[ "$("${KCTL[@]}" get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == "True" ]]
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ -n "$(pid_of "$c")" ]] || return 1; done
}

# A hostPath PV of class `manual` (no StorageClass object: PVCs that name it bind
# statically). With NAMESPACE/CLAIM it is pre-bound to that PVC alone.
make_pv() {
  local name="$1" dir="$2" claim="${3:-}" claim_ref=""
  mkdir -p "$dir"
  if [[ -n "$claim" ]]; then
    claim_ref="  claimRef: {namespace: ${claim%%/*}, name: ${claim#*/}}"
  fi
  "${KCTL[@]}" apply -f - >/dev/null <<EOF || die "creating PersistentVolume $name failed"
apiVersion: v1
kind: PersistentVolume
metadata: {name: $name, labels: {agentic.io/test-cluster: "true"}}
spec:
  storageClassName: manual
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $dir, type: DirectoryOrCreate}
$claim_ref
EOF
}

cmd_up() {
  local t0=$SECONDS c
  mkdir -p "$STATE" "$LOGS" "$PIDS"
  exec 9>"$STATE/.lock"
  flock 9
  if all_running && node_ready; then
    return 0
  fi
  ensure_packages
  BUILD="$(bash "$HERE/build_cluster.sh")" || die "build_cluster.sh failed"
  # shellcheck disable=SC1091
  source "$BUILD/images.env"
  # What this cluster runs, for `env` (the build key may change under a running cluster).
  printf 'BUILD=%s\nPAUSE_IMAGE=%s\nTINY_IMAGE=%s\n' "$BUILD" "$PAUSE_IMAGE" "$TINY_IMAGE" \
    >"$STATE/build.env"
  ensure_pki
  write_configs
  local timings="" t
  for c in "${COMPONENTS[@]}"; do
    [[ -n "$(pid_of "$c")" ]] && continue
    t=$SECONDS
    "start_$c"
    timings+=" $c $((SECONDS - t))s"
  done
  t=$SECONDS
  local deadline=$((SECONDS + WAIT_SECONDS))
  until node_ready; do
    [[ -n "$(pid_of kubelet)" ]] || fail_component kubelet "exited before the Node was Ready"
    ((SECONDS < deadline)) || fail_component kubelet "Node $NODE_NAME not Ready after ${WAIT_SECONDS}s"
    sleep 0.2
  done
  # The default run-store volume, for the first PVC of class `manual` that asks.
  "${KCTL[@]}" get pv agentic-run-store >/dev/null 2>&1 \
    || make_pv agentic-run-store "$STATE/pv/run-store"
  log "up in $((SECONDS - t0)) s (${timings# }, Node Ready $((SECONDS - t))s): KUBECONFIG=$KUBECONFIG_ADMIN"
}

# ---- stop --------------------------------------------------------------------------------

# Every process in the kubelet's pod cgroups (containers, whatever they forked).
pod_pids() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$d" ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

# Shims started by our containerd carry its socket in their arguments.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "containerd-shim.* -address $SOCK" && echo "${p#/proc/}"
  done
  return 0
}

cmd_down() {
  mkdir -p "$STATE" "$PIDS"
  exec 9>"$STATE/.lock"
  flock 9
  local c pid i t
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${COMPONENTS[$i]}"
    if [[ "$c" == containerd && -n "$(pid_of containerd)" ]]; then
      # Containers outlive the kubelet and containerd (their shims are reparented):
      # kill and delete every task first, then sweep the pod cgroups.
      for id in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
      done
      sleep 0.3
      for id in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$SOCK" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
      done
    fi
    pid="$(pid_of "$c")"
    if [[ -n "$pid" ]]; then
      t=$SECONDS
      stop_pid "$c" "$pid" 10
      log "stopped $c (pid $pid) in $((SECONDS - t)) s"
    fi
    rm -f "$PIDS/$c.pid"
  done
  for pid in $(pod_pids) $(our_shims); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the state dir (the kubelet's self bind mount, pod volumes, overlay
  # rootfs, sandbox shm), deepest first; lazily if still busy.
  local m
  for ((i = 0; i < 50; i++)); do
    [[ -z "$(pod_pids)$(our_shims)" ]] && break
    sleep 0.1
  done
  awk -v s="$STATE/" '{print $5}' /proc/self/mountinfo | grep -F "$STATE/" | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
  # The emptied pod cgroups, leaves first.
  for m in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$m" ]] && find "$m" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  ip link delete ao-cni0 2>/dev/null || true
  rm -rf "$STATE/cni/ipam"
  restore_sysctls
  log "down"
}

# ---- other commands ----------------------------------------------------------------------

cmd_status() {
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    pid="$(pid_of "$c")"
    if [[ -n "$pid" ]]; then
      printf '%-24s running (pid %s, %s MiB)\n' "$c" "$pid" \
        "$(awk '/VmRSS/{print int($2/1024)}' "/proc/$pid/status" 2>/dev/null)"
    else
      printf '%-24s stopped\n' "$c"; rc=1
    fi
  done
  if [[ -f "$KUBECONFIG_ADMIN" ]] && node_ready; then
    printf '%-24s Ready\n' "node/$NODE_NAME"
  else
    printf '%-24s not Ready\n' "node/$NODE_NAME"; rc=1
  fi
  return "$rc"
}

cmd_env() {
  [[ -f "$PKI/tokens.csv" ]] || die "no cluster state in $STATE: run $0 up"
  [[ -f "$STATE/build.env" ]] || die "no cluster started from $STATE: run $0 up"
  # shellcheck disable=SC1091
  source "$STATE/build.env"
  cat <<EOF
export KUBECONFIG=$KUBECONFIG_ADMIN
export AO_K8S_SERVER=$SERVER
export AO_K8S_TOKEN=$(token_of admin)
export AO_K8S_CA=$PKI/ca.crt
export AO_K8S_NODE=$NODE_NAME
export AO_K8S_STATE_DIR=$STATE
export AO_K8S_CONTAINERD_SOCK=$SOCK
export AO_K8S_PAUSE_IMAGE=$PAUSE_IMAGE
export AO_K8S_TINY_IMAGE=$TINY_IMAGE
export AO_K8S_BIN_DIR=$BUILD/bin
EOF
}

cmd_import() {
  local archive="${1:?usage: cluster.sh import IMAGE_ARCHIVE}"
  [[ -f "$archive" ]] || die "no such image archive: $archive"
  [[ -n "$(pid_of containerd)" ]] || die "containerd is not running: run $0 up"
  ctr -a "$SOCK" -n k8s.io images import "$archive" >&2 \
    || fail_component containerd "importing $archive failed"
}

cmd_logs() {
  local c="${1:?usage: cluster.sh logs COMPONENT [LINES]}"
  [[ -f "$LOGS/$c.log" ]] || die "no log for $c (components: ${COMPONENTS[*]})"
  tail -n "${2:-50}" "$LOGS/$c.log"
}

[[ $EUID -eq 0 ]] || die "must run as root (it starts a kubelet and containerd)"
case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  import) shift; cmd_import "$@" ;;
  pv) shift; [[ $# -ge 2 ]] || die "usage: cluster.sh pv NAME DIR [NAMESPACE/CLAIM]"; make_pv "$@" ;;
  logs) shift; cmd_logs "$@" ;;
  *) die "usage: cluster.sh up|down|status|env|import FILE|pv NAME DIR [NS/CLAIM]|logs COMPONENT [N]" ;;
esac
