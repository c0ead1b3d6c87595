#!/usr/bin/env bash
# A small multi-host network on one Linux machine, to measure what the scaling model predicts:
# HOSTS network namespaces ("hosts" halo-h0, halo-h1, ...) joined by veth pairs to one bridge,
# each host's link limited to RATE by a token-bucket filter (tc tbf) in both directions.
# Open MPI ranks are placed in the hosts by netns_rank.py and talk over TCP only (no shared
# memory between hosts), so a run sees a real, slower network between "nodes".
#
#   examples/scaling/netns-testbed.sh up [HOSTS=2] [RATE=1gbit]   (as root)
#   examples/scaling/netns-testbed.sh run RANKS_PER_HOST PROGRAM ARGS...
#   examples/scaling/netns-testbed.sh status | down
#
# netem (added latency) is not available on every kernel; the testbed then has the veth
# pair's own latency, which `run ... halo-bench-allreduce` measures with the small messages.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bridge=br-halo
subnet=10.77.0

need_root() { [ "$(id -u)" -eq 0 ] || { echo "netns-testbed: needs root (network namespaces, tc)" >&2; exit 1; }; }
hosts_up() { ip netns list 2>/dev/null | awk '{print $1}' | grep -c '^halo-h' || true; }

up() {
  need_root
  local hosts=${1:-2} rate=${2:-1gbit}
  [ "$hosts" -ge 2 ] && [ "$hosts" -le 64 ] || { echo "netns-testbed: HOSTS must be 2..64, got $hosts" >&2; exit 2; }
  down quiet
  ip link add "$bridge" type bridge
  ip link set "$bridge" up
  for ((i = 0; i < hosts; i++)); do
    ip netns add "halo-h$i"
    ip link add "vh$i" type veth peer name eth0 netns "halo-h$i"
    ip link set "vh$i" master "$bridge" up
    ip -n "halo-h$i" addr add "$subnet.$((i + 1))/24" dev eth0
    ip -n "halo-h$i" link set eth0 up
    ip -n "halo-h$i" link set lo up
    # A training step leaves the network idle through forward and backward; without this,
    # TCP restarts every gradient allreduce from slow start.
    ip netns exec "halo-h$i" sysctl -qw net.ipv4.tcp_slow_start_after_idle=0
    # Both directions: the host's egress (eth0 in the namespace) and its ingress (the
    # bridge side of the pair). burst is sized for 1-10 Gbit/s at a 1 ms tick; the queue
    # (limit) holds a whole gradient bucket, so the link delays rather than drops and TCP
    # does not fall into loss recovery (which made allreduce times bimodal).
    tc -n "halo-h$i" qdisc add dev eth0 root tbf rate "$rate" burst 256kb limit 64mb
    tc qdisc add dev "vh$i" root tbf rate "$rate" burst 256kb limit 64mb
  done
  echo "netns-testbed: $hosts hosts halo-h0..halo-h$((hosts - 1)) on $subnet.0/24, $rate per host link"
}

down() {
  # The veth pairs first (deleting one end deletes both), so none is left behind while a
  # namespace is torn down in the background and the next `up` finds its name taken.
  for l in $(ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \(vh[0-9]*\)@.*/\1/p'); do ip link del "$l" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^halo-h' || true); do ip netns del "$ns"; done
  ip link del "$bridge" 2>/dev/null || true
  [ "${1:-}" = quiet ] || echo "netns-testbed: removed"
}

run() {
  need_root
  local per_host=$1; shift
  local hosts; hosts=$(hosts_up)
  [ "$hosts" -ge 1 ] || { echo "netns-testbed: no hosts; run '$0 up' first" >&2; exit 1; }
  local ranks=$((hosts * per_host))
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HALO_NETNS_RANKS_PER_HOST=$per_host \
    mpiexec -n "$ranks" --oversubscribe -x HALO_NETNS_RANKS_PER_HOST \
      --mca btl tcp,self --mca btl_tcp_if_include "$subnet.0/24" \
      /usr/bin/python3 "$here/netns_rank.py" "$@"
}

status() {
  echo "hosts: $(hosts_up)"
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^halo-h' || true); do
    echo "$ns: $(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}') $(tc -n "$ns" qdisc show dev eth0 | head -1)"
  done
}

cmd=${1:-}; shift || true
case "$cmd" in
  up) up "$@" ;;
  down) need_root; down ;;
  run) [ $# -ge 2 ] || { echo "usage: $0 run RANKS_PER_HOST PROGRAM ARGS..." >&2; exit 2; }; run "$@" ;;
  status) status ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
