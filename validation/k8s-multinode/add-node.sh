#!/usr/bin/env bash
# Add an extra node NAME to the RUNNING gpufabric-k8s cluster (/work/shared/k8s/start-cluster.sh):
# a second containerd + kubelet pair on the same machine, registered as Node NAME.
#
#   add-node.sh NAME INDEX        # INDEX 1..9 picks the ports: kubelet 10250+1000*INDEX, healthz 10248+1000*INDEX
#   remove-node.sh NAME           # stops it, removes its state, mounts, cgroups, /etc/hosts line and Node object
#
# What keeps the two kubelets apart:
#   - own kubelet --root-dir, --cert-dir, ports, node name, client cert (CN=system:node:NAME,
#     O=system:nodes) and serving cert (CN/SAN NAME + 127.0.0.1) signed by the cluster CA;
#   - own cgroupRoot /NAME (cgroupfs, v1): its pods live in /NAME/kubepods, not /kubepods;
#   - own containerd: config, root, state dir, socket, runc root;
#   - a private MOUNT NAMESPACE for this containerd + kubelet (unshare --propagation slave), in which
#     the paths kubelet 1.20 hard-codes are bind-mounted from per-node directories:
#       /var/log/pods, /var/log/containers  (else each kubelet's container GC deletes the other node's
#                                            pod log dirs: it treats pods it does not know as deleted)
#       /var/lib/kubelet                    (device-plugins: the device manager wipes it at start; seccomp)
#       /var/lib/cni                        (libcni result cache)
#   - an /etc/hosts line "127.0.0.1 NAME": the apiserver dials kubelets by their Hostname address.
# Shared on purpose: the CNI config (bridge gfk8s0) and the host-local IPAM dir
# (/run/gpufabric-k8s/cni-ipam, file-locked), so pod IPs are unique across nodes and pods on all
# nodes reach each other over the bridge.
# TAINT (default gpufabric-k8s/extra-node=NAME:NoSchedule; "" for none) keeps pods of others that
# do not tolerate it off the extra node.
set -euo pipefail
NAME=${1:?usage: add-node.sh NAME INDEX}
INDEX=${2:?usage: add-node.sh NAME INDEX}
[[ "$NAME" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "bad node name $NAME" >&2; exit 1; }
[[ "$INDEX" =~ ^[1-9]$ ]] || { echo "INDEX must be 1..9" >&2; exit 1; }
K8S_HOME="${K8S_HOME:-$HOME/.cache/gpufabric-k8s}"
SHARED_K8S="${SHARED_K8S:-/work/shared/k8s}"
BIN="${BIN:-$K8S_HOME/bin}"
RUN="${RUN:-$K8S_HOME/run}"
ND="$RUN/nodes/$NAME"                              # pids, logs, certs, configs
DATA="$K8S_HOME/nodes/$NAME"                       # kubelet root, containerd root, the private /var dirs
CTRD_STATE="/run/gpufabric-k8s/nodes/$NAME/containerd"
CTRD_SOCK="$CTRD_STATE/containerd.sock"
PORT=$((10250 + 1000 * INDEX))
HPORT=$((10248 + 1000 * INDEX))
APISERVER_PORT="${APISERVER_PORT:-6443}"
PAUSE_IMAGE="${PAUSE_IMAGE:-localhost/gpufabric-k8s/pause:3.4.1}"
HOSTFS_IMAGE="${HOSTFS_IMAGE:-localhost/gpufabric-k8s/hostfs:v1}"
TAINT="${TAINT-gpufabric-k8s/extra-node=$NAME:NoSchedule}"
HOSTS_MARK="# gpufabric-k8s-multinode $NAME"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export KUBECONFIG="$RUN/admin.kubeconfig"

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ "$NAME" != localhost ] || { echo "localhost is the main node" >&2; exit 1; }
[ -f "$RUN/pki/ca.key" ] && [ -f "$RUN/kube-apiserver.pid" ] && kill -0 "$(cat "$RUN/kube-apiserver.pid")" 2>/dev/null ||
  { echo "the main cluster is not running (start-cluster.sh)" >&2; exit 1; }
for c in containerd kubelet; do
  if [ -f "$ND/$c.pid" ] && kill -0 "$(cat "$ND/$c.pid")" 2>/dev/null; then
    echo "$NAME: $c already running (pid $(cat "$ND/$c.pid")); run remove-node.sh $NAME first" >&2; exit 1
  fi
done
for p in $PORT $HPORT; do
  ss -ltn "sport = :$p" | grep -q LISTEN && { echo "port $p is in use" >&2; exit 1; }
done
t0=$(date +%s.%N)
el() { echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.2f'; }
mkdir -p "$ND/pki" "$DATA"/{kubelet,containerd,var-log-pods,var-log-containers,var-lib-kubelet,var-lib-cni} "$CTRD_STATE"

# ---------------------------------------------------------------- certificates (signed by the cluster CA)
sign() {  # name subject ext-lines...
  local n=$1 subj=$2; shift 2
  openssl genrsa -out "$ND/pki/$n.key" 2048 2>/dev/null
  openssl req -new -key "$ND/pki/$n.key" -subj "$subj" -out "$ND/pki/$n.csr"
  printf '%s\n' "$@" > "$ND/pki/$n.ext"
  openssl x509 -req -in "$ND/pki/$n.csr" -CA "$RUN/pki/ca.crt" -CAkey "$RUN/pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$ND/pki/$n.ext" -out "$ND/pki/$n.crt" 2>/dev/null
}
if [ ! -f "$ND/pki/kubelet-serving.crt" ]; then
  sign kubelet-client "/O=system:nodes/CN=system:node:$NAME" "extendedKeyUsage=clientAuth"
  sign kubelet-serving "/CN=$NAME" "subjectAltName=DNS:$NAME,IP:127.0.0.1" "extendedKeyUsage=serverAuth"
fi
cat > "$ND/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $RUN/pki/ca.crt
users:
- name: kubelet
  user:
    client-certificate: $ND/pki/kubelet-client.crt
    client-key: $ND/pki/kubelet-client.key
contexts:
- name: local
  context: {cluster: local, user: kubelet}
current-context: local
EOF

# ---------------------------------------------------------------- NAME -> 127.0.0.1 (the apiserver dials the Hostname address)
if ! getent ahostsv4 "$NAME" | awk '{print $1}' | grep -qx 127.0.0.1; then
  printf '127.0.0.1 %s %s\n' "$NAME" "$HOSTS_MARK" >> /etc/hosts
fi

# ---------------------------------------------------------------- cgroup root /NAME in every v1 hierarchy
for h in /sys/fs/cgroup/*; do
  [ "$(basename "$h")" = unified ] && continue
  mountpoint -q "$h" || continue
  mkdir -p "$h/$NAME"
done
if [ -d /sys/fs/cgroup/cpuset/"$NAME" ]; then   # a new v1 cpuset cgroup starts empty: no task could join it
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/"$NAME"/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/"$NAME"/cpuset.mems
fi

# ---------------------------------------------------------------- containerd (own root/state/socket/runc root)
sed -e "s#@K8S_HOME@/containerd#$DATA/containerd#g" -e "s#@K8S_HOME@#$K8S_HOME#g" \
    -e "s#@CTRD_STATE@#$CTRD_STATE#g" -e "s#@PAUSE_IMAGE@#$PAUSE_IMAGE#g" \
    -e "s#^\( *\)SystemdCgroup = false#&\n\1Root = \"$CTRD_STATE/runc\"#" \
    "$SHARED_K8S/containerd.toml.in" > "$ND/containerd.toml"
grep -q "^root = \"$DATA/containerd\"" "$ND/containerd.toml" || { echo "containerd.toml: root not rewritten" >&2; exit 1; }
[ -f "$K8S_HOME/etc/cni/net.d/10-gpufabric-k8s.conflist" ] || { echo "main cluster's CNI config missing" >&2; exit 1; }

# The private mount namespace lives as long as a process in it does (containerd, its shims, kubelet).
unshare --mount --propagation slave -- sh -c '
  set -e
  mount --bind "$1/var-log-pods" /var/log/pods
  mount --bind "$1/var-log-containers" /var/log/containers
  mount --bind "$1/var-lib-kubelet" /var/lib/kubelet
  mount --bind "$1/var-lib-cni" /var/lib/cni
  exec containerd --config "$2"' sh "$DATA" "$ND/containerd.toml" > "$ND/containerd.log" 2>&1 &
echo $! > "$ND/containerd.pid"
CPID=$(cat "$ND/containerd.pid")
CTR=(ctr -a "$CTRD_SOCK" -n k8s.io)
for i in $(seq 1 150); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${CTR[@]}" version >/dev/null 2>&1 || { echo "$NAME: containerd not answering; see $ND/containerd.log" >&2; exit 1; }
readlink "/proc/$CPID/ns/mnt" > "$ND/mntns"
have=$("${CTR[@]}" images ls -q)
for ref in "$PAUSE_IMAGE" "$HOSTFS_IMAGE"; do
  grep -qxF "$ref" <<<"$have" && continue
  tar="$K8S_HOME/images/$(tr '/:' '__' <<<"$ref").tar"
  [ -f "$tar" ] || { echo "$tar missing (start-cluster.sh makes it)" >&2; exit 1; }
  "${CTR[@]}" images import "$tar" >/dev/null
done
echo "$NAME: containerd ready, images imported after $(el) s"

# ---------------------------------------------------------------- kubelet (in the same mount namespace)
cat > "$ND/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HPORT
tlsCertFile: $ND/pki/kubelet-serving.crt
tlsPrivateKeyFile: $ND/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $RUN/pki/ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: /$NAME
cgroupsPerQOS: true
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
volumePluginDir: $DATA/kubelet/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
nodeStatusUpdateFrequency: 3s
fileCheckFrequency: 20s
syncFrequency: 30s
maxPods: 110
kubeAPIQPS: 50
kubeAPIBurst: 100
eventRecordQPS: 50
eventBurst: 100
containerLogMaxSize: 10Mi
containerLogMaxFiles: 3
featureGates:
  SizeMemoryBackedVolumes: true
EOF
taint_args=()
[ -n "$TAINT" ] && taint_args=(--register-with-taints "$TAINT")
nsenter --mount="/proc/$CPID/ns/mnt" -- "$BIN/kubelet" \
  --kubeconfig "$ND/kubelet.kubeconfig" --config "$ND/kubelet-config.yaml" \
  --hostname-override "$NAME" --root-dir "$DATA/kubelet" --cert-dir "$DATA/kubelet/pki" \
  --seccomp-profile-root "$DATA/kubelet/seccomp" \
  --container-runtime remote --container-runtime-endpoint "unix://$CTRD_SOCK" \
  --runtime-request-timeout 2m --pod-infra-container-image "$PAUSE_IMAGE" \
  --node-labels "gpufabric-k8s/node=true,gpufabric-k8s/extra-node=$NAME" \
  "${taint_args[@]}" --v "${KUBELET_V:-2}" \
  > "$ND/kubelet.log" 2>&1 &
echo $! > "$ND/kubelet.pid"
kubelet_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---------------------------------------------------------------- wait: Ready, fresh heartbeat, no not-ready taint
TOKEN=$(cut -d, -f1 "$RUN/pki/tokens.csv")
KC=(--cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $TOKEN")
for i in $(seq 1 1200); do
  if curl -sf "http://127.0.0.1:$HPORT/healthz" >/dev/null 2>&1 &&
     curl -sf "${KC[@]}" "https://127.0.0.1:$APISERVER_PORT/api/v1/nodes/$NAME" 2>/dev/null \
     | python3 -c 'import json,sys; n=json.load(sys.stdin); c=[x for x in n["status"].get("conditions",[]) if x["type"]=="Ready"]; t=[x for x in n["spec"].get("taints",[]) or [] if x["key"].startswith("node.kubernetes.io/not-ready")]; sys.exit(0 if c and c[0]["status"]=="True" and c[0]["lastHeartbeatTime"] >= sys.argv[1] and not t else 1)' "$kubelet_started" 2>/dev/null
  then ready=1; break; fi
  kill -0 "$(cat "$ND/kubelet.pid")" 2>/dev/null || { echo "$NAME: kubelet died; see $ND/kubelet.log" >&2; tail -5 "$ND/kubelet.log" >&2; exit 1; }
  sleep 0.1
done
[ "${ready:-0}" = 1 ] || { echo "$NAME: not Ready after $(el) s; see $ND/kubelet.log" >&2; exit 1; }
echo "node $NAME Ready after $(el) s (kubelet :$PORT, healthz :$HPORT, containerd $CTRD_SOCK, cgroups /$NAME)"
