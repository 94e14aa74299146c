#!/usr/bin/env bash
# Proofs on a cluster with an extra node (add-node.sh NAME): namespace $NS, a pod pinned to each
# node prints its hostname and node, logs + `kubectl exec` through the apiserver for the pod on NAME,
# and a gloo all_reduce between a pod on localhost and a pod on NAME over pod IPs (bridge gfk8s0).
#   prove-multinode.sh [NAME]      (NS=multinode, VENV=$K8S_HOME/venv)
set -euo pipefail
NAME=${1:-node2}
K8S_HOME="${K8S_HOME:-$HOME/.cache/gpufabric-k8s}"
export KUBECONFIG="${KUBECONFIG:-$K8S_HOME/run/admin.kubeconfig}"
NS=${NS:-multinode}
VENV=${VENV:-$K8S_HOME/venv}
k() { kubectl "$@" 2> >(grep -v 'Warning: version difference' >&2); }
k get ns "$NS" >/dev/null 2>&1 || k create ns "$NS" >/dev/null
for i in $(seq 1 100); do k -n "$NS" get sa default -o jsonpath='{.secrets}' 2>/dev/null | grep -q name && break; sleep 0.1; done
pod() {  # name node command-json env-json
  cat <<Y
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $NS}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [$2]}]}]
  tolerations: [{key: gpufabric-k8s/extra-node, operator: Exists, effect: NoSchedule}]
  containers:
  - name: main
    image: localhost/gpufabric-k8s/hostfs:v1
    imagePullPolicy: Never
    command: $3
    env: $4
    volumeMounts: [{name: usr, mountPath: /usr, readOnly: true}, {name: venv, mountPath: "$VENV", readOnly: true}]
  volumes:
  - {name: usr, hostPath: {path: /usr, type: Directory}}
  - {name: venv, hostPath: {path: "$VENV", type: Directory}}
Y
}
wait_phase() {  # pod phase... ; prints the phase reached
  for i in $(seq 1 1200); do
    p=$(k -n "$NS" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    for want in "${@:2}"; do [ "$p" = "$want" ] && { echo "$p"; return 0; }; done
    sleep 0.1
  done
  echo "timeout ($p)"; return 1
}
echo "== 1. a pod pinned to each node prints its hostname and node name"
t0=$(date +%s.%N)
for n in localhost "$NAME"; do
  pod "hello-$n" "$n" '["/bin/sh", "-c", "echo hostname=$(cat /proc/sys/kernel/hostname) node=$NODE ip=$(hostname -i 2>/dev/null || true); sleep 600"]' \
      '[{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]' | k apply -f - >/dev/null
done
for n in localhost "$NAME"; do echo "hello-$n: $(wait_phase "hello-$n" Running Failed) after $(echo "$(date +%s.%N) - $t0" | bc) s"; done
k -n "$NS" get pods -o wide
sleep 1
for n in localhost "$NAME"; do echo "logs hello-$n: $(k -n "$NS" logs "hello-$n")"; done
echo "== 2. kubectl exec into the pod on $NAME (apiserver -> kubelet $NAME by Hostname -> containerd stream)"
k -n "$NS" exec "hello-$NAME" -- /bin/sh -c 'echo exec-ok in $(cat /proc/sys/kernel/hostname), pid1=$(cat /proc/1/cmdline | tr "\0" " "); cat /proc/self/cgroup | grep -E "memory|cpu,|:cpu:"'
echo "== 3. gloo all_reduce: rank 0 on localhost, rank 1 on $NAME, over pod IPs"
code='import os, socket, torch, torch.distributed as d
e = os.environ; rank = int(e["RANK"]); addr = e["MASTER_ADDR"]
d.init_process_group("gloo", init_method=f"tcp://{addr}:29500", rank=rank, world_size=2)
t = torch.tensor([float(rank + 1)]); d.all_reduce(t)
node, ip = e["NODE"], e["POD_IP"]
print(f"rank {rank} on node {node} host {socket.gethostname()} ip {ip}: all_reduce -> {t.item()}", flush=True)
d.destroy_process_group()'
cmd=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$VENV/bin/python" -c "$code")
base='{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}, {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}, {name: GLOO_SOCKET_IFNAME, value: eth0}'
t0=$(date +%s.%N)
pod gloo-0 localhost "$cmd" "[$base, {name: RANK, value: \"0\"}, {name: MASTER_ADDR, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]" | k apply -f - >/dev/null
for i in $(seq 1 300); do ip=$(k -n "$NS" get pod gloo-0 -o jsonpath='{.status.podIP}'); [ -n "$ip" ] && break; sleep 0.1; done
pod gloo-1 "$NAME" "$cmd" "[$base, {name: RANK, value: \"1\"}, {name: MASTER_ADDR, value: \"$ip\"}]" | k apply -f - >/dev/null
for r in 0 1; do echo "gloo-$r: $(wait_phase gloo-$r Succeeded Failed)"; done
echo "both done after $(echo "$(date +%s.%N) - $t0" | bc) s"
k -n "$NS" get pods -o wide
for r in 0 1; do k -n "$NS" logs gloo-$r | grep -v "hostname of the client socket"; done
k -n "$NS" delete pod --all --wait=false >/dev/null
