#!/usr/bin/env bash
# Remove an extra node made by add-node.sh: delete its pods through the API (its kubelet tears them
# down), stop its kubelet and containerd by their recorded PIDs, kill what is left in its mount
# namespace (shims), drop leftover IPAM leases, its cgroups (/NAME), its /etc/hosts line, its state
# and the Node object.  KEEP_LOGS=1 keeps $RUN/nodes/NAME (logs, certs, configs).
#   remove-node.sh NAME
set -uo pipefail
NAME=${1:?usage: remove-node.sh NAME}
[ "$NAME" != localhost ] || { echo "localhost is the main node" >&2; exit 1; }
K8S_HOME="${K8S_HOME:-$HOME/.cache/gpufabric-k8s}"
RUN="${RUN:-$K8S_HOME/run}"
ND="$RUN/nodes/$NAME"
DATA="$K8S_HOME/nodes/$NAME"
CTRD_STATE="/run/gpufabric-k8s/nodes/$NAME/containerd"
CTR=(ctr -a "$CTRD_STATE/containerd.sock" -n k8s.io)
IPAM=/run/gpufabric-k8s/cni-ipam/gpufabric-k8s
HOSTS_MARK="# gpufabric-k8s-multinode $NAME"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export KUBECONFIG="$RUN/admin.kubeconfig"

alive() { [ -f "$ND/$1.pid" ] && kill -0 "$(cat "$ND/$1.pid")" 2>/dev/null; }
stop() {  # component timeout-seconds
  local f="$ND/$1.pid" t="$2" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for i in $(seq 1 $((t*10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "$1 ($pid) did not exit, SIGKILL"; kill -9 "$pid"; }
  fi
  rm -f "$f"
  echo "$NAME: stopped $1 ($pid)"
}
in_ns() { nsenter --mount="/proc/$(cat "$ND/containerd.pid")/ns/mnt" -- "$@"; }

# 1. pods on the node, through the API, while its kubelet still runs
if alive kubelet && kubectl version >/dev/null 2>&1; then
  kubectl get pods -A --field-selector "spec.nodeName=$NAME" --no-headers 2>/dev/null | awk '{print $1, $2}' |
    while read -r ns pod; do kubectl -n "$ns" delete pod "$pod" --wait=false --grace-period="${GRACE:-5}" >/dev/null 2>&1; done
  for i in $(seq 1 600); do
    n=$(kubectl get pods -A --field-selector "spec.nodeName=$NAME" --no-headers 2>/dev/null | wc -l)
    t=$("${CTR[@]}" tasks ls -q 2>/dev/null | wc -l)
    [ "$n" = 0 ] && [ "$t" = 0 ] && break
    sleep 0.1
  done
  echo "$NAME: pods left in API: $n, containerd tasks left: $t"
fi
stop kubelet 10

# 2. whatever containerd still runs; remember sandbox ids to drop their IPAM leases
sandboxes=""
if alive containerd; then
  for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  sleep 0.5
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    sandboxes+="$id "
    "${CTR[@]}" tasks delete -f "$id" >/dev/null 2>&1
    "${CTR[@]}" containers rm "$id" >/dev/null 2>&1
  done
  # netns files and volumes live in the node's mount namespace: unmount them there
  in_ns sh -c 'for f in /run/netns/cni-* /var/run/netns/cni-*; do [ -e "$f" ] || continue; umount "$f" 2>/dev/null; done' 2>/dev/null
  in_ns awk -v r="$DATA/kubelet" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r | uniq |
    while read -r m; do in_ns umount "$m" 2>/dev/null || in_ns umount -l "$m" 2>/dev/null; done
fi
mntns=$(cat "$ND/mntns" 2>/dev/null || true)
stop containerd 10

# 3. anything left in the node's mount namespace (shims of killed tasks): ours, by namespace
if [ -n "$mntns" ]; then
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mntns" ] || continue
    echo "$NAME: killing leftover $(cat "$p/comm" 2>/dev/null) (${p#/proc/})"; kill -9 "${p#/proc/}" 2>/dev/null
  done
fi

# 4. IPAM leases of sandboxes that were not torn down by the kubelet
if [ -n "$sandboxes" ] && [ -d "$IPAM" ]; then
  for f in "$IPAM"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in lock|last_reserved_ip*) continue;; esac
    id=$(head -1 "$f" 2>/dev/null | tr -d '[:space:]')
    [[ " $sandboxes " == *" $id "* ]] && rm -f "$f" && echo "$NAME: dropped IPAM lease $(basename "$f")"
  done
fi

# 5. cgroups, /etc/hosts line, state, Node object
for h in /sys/fs/cgroup/*/"$NAME"; do
  [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
done
left=$(ls -d /sys/fs/cgroup/*/"$NAME" 2>/dev/null)
[ -n "$left" ] && echo "$NAME: cgroups not removed: $left"
if grep -qF "$HOSTS_MARK" /etc/hosts; then
  grep -vF "$HOSTS_MARK" /etc/hosts > /etc/hosts.multinode.tmp && cat /etc/hosts.multinode.tmp > /etc/hosts && rm -f /etc/hosts.multinode.tmp
fi
rm -rf "$DATA" "/run/gpufabric-k8s/nodes/$NAME"
rmdir "$K8S_HOME/nodes" /run/gpufabric-k8s/nodes 2>/dev/null
[ "${KEEP_LOGS:-0}" = 1 ] || { rm -rf "$ND"; rmdir "$RUN/nodes" 2>/dev/null; }
kubectl delete node "$NAME" --ignore-not-found >/dev/null 2>&1 && echo "$NAME: Node object deleted"
exit 0
