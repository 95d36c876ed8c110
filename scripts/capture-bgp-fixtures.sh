#!/usr/bin/env bash
# Captures golden BGP messages from real sessions for test/fixtures/bgp (decoded and
# re-encoded byte for byte by test/unit/bgp/golden.test.ts).
#
#   FRR bgpd (AS 4200000001) <-> ExaBGP (AS 65004)        namespaces vmxcap-frr / vmxcap-exabgp
#   BIRD 2   (AS 65003)      <-> GoBGP  (AS 4200000002)   namespaces vmxcap-bird / vmxcap-gobgp
#   FRR bgpd (AS 65011)      <-> BIRD 2 (AS 65013)        namespaces vmxcap-frr2 / vmxcap-bird2
#
# Each side announces IPv4 and IPv6 unicast routes with communities and large communities
# over an IPv4 session (IPv6 through MP_REACH_NLRI). ExaBGP runs without the 4-octet AS
# capability, so FRR must send AS_TRANS with AS4_PATH (RFC 6793) on that session; BIRD and
# GoBGP carry a 4-octet AS natively. Then route refreshes are requested on every session;
# FRR and BIRD both implement enhanced route refresh (RFC 7313), so on the third session each
# answers the other's request with BoRR ... EoRR. Finally FRR and BIRD shut their sessions
# down with RFC 9003 shutdown communications. tcpdump records
# each link; scripts/capture-bgp-fixtures.ts reassembles the TCP streams and writes every
# BGP message, one hex line per message, per sender.
#
# Needs root. All traffic stays inside the vmxcap-* namespaces; every namespace, daemon and
# temporary file is removed on exit, failure or interrupt.
#
#   sudo scripts/capture-bgp-fixtures.sh [output-dir]      (default test/fixtures/bgp)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/test/fixtures/bgp}
WORK=$(mktemp -d /tmp/vmxcap.XXXXXX)
chmod 755 "$WORK"
NSS=(vmxcap-frr vmxcap-exabgp vmxcap-bird vmxcap-gobgp vmxcap-frr2 vmxcap-bird2)
FRR_PS=vmxcap-frr
FRR_PSS=(vmxcap-frr vmxcap-frr2)
PIDS=()

log() { printf '[capture] %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "cleaning up"
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null; done
  for ps in "${FRR_PSS[@]}"; do
    for f in "/var/run/frr/$ps"/*.pid; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
  done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for ps in "${FRR_PSS[@]}"; do
    for f in "/var/run/frr/$ps"/*.pid; do
      [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
  done
  # Anything still running inside our namespaces (only processes we started live there).
  for ns in "${NSS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  for ps in "${FRR_PSS[@]}"; do rm -rf "/etc/frr/$ps" "/var/run/frr/$ps"; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in "${NSS[@]}"; do
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  nsx "$ns" ip link set lo up
done

# link <nsA> <nsB> <v4 prefix> <v6 prefix>: veth pair with .1 / .2 (::1 / ::2).
link() {
  ip link add vmxcap0 netns "$1" type veth peer name vmxcap0 netns "$2"
  nsx "$1" ip addr add "$3.1/30" dev vmxcap0
  nsx "$2" ip addr add "$3.2/30" dev vmxcap0
  nsx "$1" ip -6 addr add "$4::1/64" dev vmxcap0 nodad
  nsx "$2" ip -6 addr add "$4::2/64" dev vmxcap0 nodad
  nsx "$1" ip link set vmxcap0 up
  nsx "$2" ip link set vmxcap0 up
}
link vmxcap-frr vmxcap-exabgp 10.255.1 fd00:1
link vmxcap-bird vmxcap-gobgp 10.255.2 fd00:2
link vmxcap-frr2 vmxcap-bird2 10.255.3 fd00:3

for pair in frr bird frr2; do
  ip netns exec "vmxcap-$pair" tcpdump -i vmxcap0 -U -s 0 -w "$WORK/$pair.pcap" 'tcp port 179' 2>"$WORK/tcpdump-$pair.log" &
  PIDS+=($!)
done
sleep 1

# ---- FRR <-> ExaBGP ----
mkdir -p "/etc/frr/$FRR_PS" "/var/run/frr/$FRR_PS"
# Background processes are started with `ip netns exec` itself (not a shell function) so
# that $! is the daemon's own pid and signals reach it.
touch "/etc/frr/$FRR_PS/vtysh.conf"
cat >"/etc/frr/$FRR_PS/zebra.conf" <<'CONF'
hostname vmxcap-frr
CONF
cat >"/etc/frr/$FRR_PS/bgpd.conf" <<'CONF'
hostname vmxcap-frr
route-map TAG permit 10
 set community 65001:100 65001:200
 set large-community 4200000001:1:1 4200000001:2:2
!
router bgp 4200000001
 bgp router-id 10.255.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.255.1.2 remote-as 65004
 address-family ipv4 unicast
  network 198.51.100.0/24 route-map TAG
  network 203.0.113.7/32 route-map TAG
  neighbor 10.255.1.2 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:100::/48 route-map TAG
  network 2001:db8:1::7/128 route-map TAG
  neighbor 10.255.1.2 activate
 exit-address-family
!
CONF
chown -R frr:frr "/etc/frr/$FRR_PS" "/var/run/frr/$FRR_PS"
nsx vmxcap-frr /usr/lib/frr/zebra -d -N "$FRR_PS" -f "/etc/frr/$FRR_PS/zebra.conf" --log "file:$WORK/zebra.log"
for _ in $(seq 50); do [ -S "/var/run/frr/$FRR_PS/zserv.api" ] && break; sleep 0.1; done
nsx vmxcap-frr /usr/lib/frr/bgpd -d -N "$FRR_PS" -f "/etc/frr/$FRR_PS/bgpd.conf" --log "file:$WORK/bgpd.log"

# ExaBGP speaks 2-octet AS only, so it knows FRR as AS_TRANS (RFC 6793 §4.1).
cat >"$WORK/exabgp.conf" <<'CONF'
neighbor 10.255.1.1 {
  router-id 10.255.1.2;
  local-address 10.255.1.2;
  local-as 65004;
  peer-as 23456;
  family {
    ipv4 unicast;
    ipv6 unicast;
  }
  capability {
    asn4 disable;
    route-refresh;
  }
  static {
    route 192.0.2.128/26 next-hop 10.255.1.2 community [ 65004:100 65004:200 ] large-community [ 65004:1:1 ];
    route 192.0.2.250/32 next-hop 10.255.1.2 med 50 community [ 65004:100 ] large-community [ 65004:9:9 ];
    route 2001:db8:400::/48 next-hop fd00:1::2 community [ 65004:100 ] large-community [ 65004:1:1 65004:2:2 ];
  }
}
CONF
ip netns exec vmxcap-exabgp env exabgp.daemon.user=root exabgp.daemon.daemonize=false exabgp.api.cli=false \
  exabgp.log.destination=stdout exabgp "$WORK/exabgp.conf" >"$WORK/exabgp.log" 2>&1 &
PIDS+=($!)

# ---- BIRD <-> GoBGP ----
cat >"$WORK/bird.conf" <<'CONF'
router id 10.255.2.1;
protocol device {}
protocol static s4 { ipv4; route 198.18.0.0/24 unreachable; route 198.18.1.7/32 unreachable; }
protocol static s6 { ipv6; route 2001:db8:300::/48 unreachable; route 2001:db8:3::7/128 unreachable; }
filter vmxtag {
  bgp_community.add((65003,100));
  bgp_community.add((65003,200));
  bgp_large_community.add((65003,1,1));
  accept;
}
protocol bgp gb {
  local 10.255.2.1 as 65003;
  neighbor 10.255.2.2 as 4200000002;
  ipv4 { import all; export filter vmxtag; };
  ipv6 { import all; export filter vmxtag; next hop address fd00:2::1; };
}
CONF
ip netns exec vmxcap-bird bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid" >"$WORK/bird.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/gobgp.toml" <<'CONF'
[global.config]
  as = 4200000002
  router-id = "10.255.2.2"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.255.2.1"
    peer-as = 65003
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
CONF
ip netns exec vmxcap-gobgp gobgpd -f "$WORK/gobgp.toml" -t toml --api-hosts 127.0.0.1:50051 >"$WORK/gobgpd.log" 2>&1 &
PIDS+=($!)
gobgp_cli() { nsx vmxcap-gobgp gobgp -u 127.0.0.1 -p 50051 "$@"; }
for _ in $(seq 100); do gobgp_cli global >/dev/null 2>&1 && break; sleep 0.1; done
gobgp_cli global rib -a ipv4 add 192.0.2.0/25 nexthop 10.255.2.2 origin igp community 65002:100,65002:300 large-community 4200000002:1:1
gobgp_cli global rib -a ipv4 add 192.0.2.200/32 nexthop 10.255.2.2 origin igp med 20 community 65002:100 large-community 4200000002:7:7
gobgp_cli global rib -a ipv6 add 2001:db8:200::/48 nexthop fd00:2::2 origin igp community 65002:100 large-community 4200000002:1:1,4200000002:2:2

# ---- FRR <-> BIRD (enhanced route refresh on both sides) ----
PS2=vmxcap-frr2
mkdir -p "/etc/frr/$PS2" "/var/run/frr/$PS2"
touch "/etc/frr/$PS2/vtysh.conf"
echo "hostname vmxcap-frr2" >"/etc/frr/$PS2/zebra.conf"
cat >"/etc/frr/$PS2/bgpd.conf" <<'CONF'
hostname vmxcap-frr2
route-map TAG permit 10
 set community 65011:100
 set large-community 65011:1:1
!
router bgp 65011
 bgp router-id 10.255.3.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.255.3.2 remote-as 65013
 address-family ipv4 unicast
  network 198.51.100.128/25 route-map TAG
  neighbor 10.255.3.2 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:1100::/48 route-map TAG
  neighbor 10.255.3.2 activate
 exit-address-family
!
CONF
chown -R frr:frr "/etc/frr/$PS2" "/var/run/frr/$PS2"
nsx vmxcap-frr2 /usr/lib/frr/zebra -d -N "$PS2" -f "/etc/frr/$PS2/zebra.conf" --log "file:$WORK/zebra2.log"
for _ in $(seq 50); do [ -S "/var/run/frr/$PS2/zserv.api" ] && break; sleep 0.1; done
nsx vmxcap-frr2 /usr/lib/frr/bgpd -d -N "$PS2" -f "/etc/frr/$PS2/bgpd.conf" --log "file:$WORK/bgpd2.log"

cat >"$WORK/bird2.conf" <<'CONF'
router id 10.255.3.2;
protocol device {}
protocol static s4 { ipv4; route 198.18.3.0/24 unreachable; }
protocol static s6 { ipv6; route 2001:db8:1300::/48 unreachable; }
filter vmxtag {
  bgp_community.add((65013,100));
  bgp_large_community.add((65013,1,1));
  accept;
}
protocol bgp fr {
  local 10.255.3.2 as 65013;
  neighbor 10.255.3.1 as 65011;
  ipv4 { import all; export filter vmxtag; };
  ipv6 { import all; export filter vmxtag; next hop address fd00:3::2; };
}
CONF
ip netns exec vmxcap-bird2 bird -f -c "$WORK/bird2.conf" -s "$WORK/bird2.ctl" -P "$WORK/bird2.pid" >"$WORK/bird2.log" 2>&1 &
PIDS+=($!)

# ---- wait for both sessions to carry routes both ways ----
frr_received() {
  nsx vmxcap-frr vtysh -N "$FRR_PS" -c "show bgp $1 unicast summary json" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p.get("pfxRcd",0) for p in d.get("peers",{}).values()))' 2>/dev/null || echo 0
}
bird_received() {
  nsx vmxcap-bird birdc -s "$WORK/bird.ctl" show route protocol gb count 2>/dev/null |
    awk '/routes for/ {n += $1} END {print n+0}'
}
ok=0
for _ in $(seq 120); do
  if [ "$(frr_received ipv4)" -ge 2 ] && [ "$(frr_received ipv6)" -ge 1 ] && [ "$(bird_received)" -ge 3 ] &&
    [ "$(gobgp_cli global rib -a ipv6 2>/dev/null | grep -c 2001:db8)" -ge 3 ] &&
    [ "$(nsx vmxcap-bird2 birdc -s "$WORK/bird2.ctl" show route protocol fr count 2>/dev/null |
      awk '/routes for/ {n += $1} END {print n+0}')" -ge 2 ] &&
    [ "$(nsx vmxcap-frr2 vtysh -N vmxcap-frr2 -c "show bgp ipv6 unicast summary json" 2>/dev/null |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p.get("pfxRcd",0) for p in d.get("peers",{}).values()))' 2>/dev/null || echo 0)" -ge 1 ]; then
    ok=1
    break
  fi
  sleep 0.5
done
if [ "$ok" != 1 ]; then
  log "sessions did not exchange all routes; logs follow"
  tail -n 20 "$WORK"/*.log >&2 || true
  exit 1
fi
log "routes exchanged; requesting route refresh and shutting down with a communication"
sleep 2 # let the initial UPDATE bursts settle so the refresh is a separate exchange
nsx vmxcap-frr vtysh -N "$FRR_PS" -c "clear bgp ipv4 unicast 10.255.1.2 in" | sed 's/^/[vtysh] /' >&2
gobgp_cli neighbor 10.255.2.1 softresetin -a ipv4 | sed 's/^/[gobgp] /' >&2
nsx vmxcap-frr2 vtysh -N vmxcap-frr2 -c "clear bgp ipv4 unicast 10.255.3.2 soft in" | sed 's/^/[vtysh] /' >&2
sleep 2
nsx vmxcap-bird2 birdc -s "$WORK/bird2.ctl" reload in fr | sed 's/^/[birdc] /' >&2
sleep 3
nsx vmxcap-frr vtysh -N "$FRR_PS" -c "configure terminal" -c "router bgp 4200000001" \
  -c "neighbor 10.255.1.2 shutdown message vmxcap maintenance ✓" >/dev/null
nsx vmxcap-bird birdc -s "$WORK/bird.ctl" 'disable gb "vmxcap: shutting down"' >/dev/null
sleep 2
for pid in "${PIDS[@]:0:3}"; do kill -INT "$pid"; done
wait "${PIDS[0]}" "${PIDS[1]}" "${PIDS[2]}" 2>/dev/null || true

mkdir -p "$OUT"
versions="frr $(/usr/lib/frr/bgpd --version | awk 'NR==1 {print $3}'), gobgp $(gobgpd --version | awk '{print $3}'), bird $(bird --version 2>&1 | awk '{print $3}'), exabgp $(exabgp --version 2>&1 | awk '/ExaBGP/ {print $3}')"
node "$ROOT/scripts/capture-bgp-fixtures.ts" "$WORK/frr.pcap" "$OUT" "10.255.1.1=frr,10.255.1.2=exabgp" "$versions"
node "$ROOT/scripts/capture-bgp-fixtures.ts" "$WORK/bird.pcap" "$OUT" "10.255.2.1=bird,10.255.2.2=gobgp" "$versions"
node "$ROOT/scripts/capture-bgp-fixtures.ts" "$WORK/frr2.pcap" "$OUT" "10.255.3.1=frr2,10.255.3.2=bird2" "$versions"
cp "$WORK/frr2.pcap" "$OUT/frr2-bird2.pcap"
cp "$WORK/frr.pcap" "$OUT/frr-exabgp.pcap"
cp "$WORK/bird.pcap" "$OUT/bird-gobgp.pcap"
log "fixtures written to $OUT ($versions)"
