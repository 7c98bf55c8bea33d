#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Which capabilities aibld and aiblctl need, checked by running them with
# capsh --drop (root without the capability) and as an unprivileged user:
#   aibld:   CAP_BPF (maps, program), CAP_PERFMON (the verifier allows the
#            program's packet pointer arithmetic only with it), CAP_NET_ADMIN
#            (XDP program type, attaching it); it runs as a plain user with
#            exactly these three as ambient capabilities.
#   aiblctl: no capability; reading the pins needs only file access, and
#            the pins are 0600 to the user aibld runs as.
# And, while aibld runs so, its API's request limits (oversized header,
# oversized body to a state-changing endpoint).
# veth rsc<pid>a/b, API port 22070, pins in a bpffs under /tmp/aibl-rs-caps.*.
. "$(dirname "$0")/../lib/lib.sh"

AIBLD=$AIBL_BUILD/aibld
CTL=$AIBL_BUILD/aiblctl
if [ "$(id -u)" -ne 0 ] || ! command -v capsh >/dev/null || [ ! -x "$AIBLD" ] || [ ! -x "$CTL" ]; then
	t_skip all "needs root, capsh (libcap2-bin) and $AIBLD"
	t_done
fi

ID=$(($$ % 10000))
IFA=rsc${ID}a IFB=rsc${ID}b
TMP=$(mktemp -d /tmp/aibl-rs-caps.XXXXXX)
chmod 755 "$TMP"
# nobody runs aibld and aiblctl below, and the checkout may lie where only
# root can reach it (under /root, mode 0700): run copies from $TMP, so a
# refusal comes from the capabilities and pins under test, not the path
cp "$AIBLD" "$CTL" "$TMP/"
AIBLD=$TMP/aibld CTL=$TMP/aiblctl
# The pins go to a bpffs of the test's own, mode 1777 as /sys/fs/bpf is
# when mounted bare (tests/run.sh): where systemd mounts /sys/fs/bpf
# (Debian) it is 0700, and nobody could not reach a pin directory in it.
# root and nobody each make (and teardown removes) their own pin directory.
BPFFS=$TMP/bpffs
PINS=$BPFFS/pins
API=http://127.0.0.1:22070
PID=

cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	"$AIBLD" --teardown --config "$TMP/cfg.yaml" >/dev/null 2>&1
	ip link del "$IFA" 2>/dev/null
	ip link del "rsc${ID}c" 2>/dev/null
	umount "$BPFFS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

mkdir "$BPFFS" && mount -t bpf -o mode=1777 bpf "$BPFFS" || { t_skip all "cannot mount a bpffs"; t_done; }
ip link add "$IFA" type veth peer name "$IFB" && ip link set "$IFA" up && ip link set "$IFB" up &&
	ip addr add 10.231.0.1/24 dev "$IFA" || { t_skip all "cannot create veth"; t_done; }
cat >"$TMP/cfg.yaml" <<EOF
interface: $IFA
xdp_mode: generic
bpffs: $PINS
poll_interval_ms: 200
poll_timeout_ms: 200
status_listen: 127.0.0.1:22070
services:
  - {name: s, vip: 10.231.1.1, port: 80, nodes: [a]}
nodes:
  - {name: a, address: 10.231.0.2, health_port: 22071}
EOF
chmod 644 "$TMP/cfg.yaml"

ALL=$(capsh --print | sed -n 's/^Bounding set =//p')
# drop list: every capability of the bounding set but those in $1
drop_but() {
	local keep=",$1," drop="" c
	for c in ${ALL//,/ }; do
		case "$keep" in *",$c,"*) ;; *) drop+="${drop:+,}$c" ;; esac
	done
	echo "$drop"
}

# start aibld under a capsh prefix; 0 when it serves the API with XDP attached
# within 6 s, 1 when it exits or does not get there. KEEP=1: over what the
# one before left (pins, its program attached), as a restart does
aibld_up() {
	[ -n "${KEEP:-}" ] || "$AIBLD" --teardown --config "$TMP/cfg.yaml" >/dev/null 2>&1
	"$@" -- -c "exec $AIBLD --config ${CFG:-$TMP/cfg.yaml}" >"$TMP/log" 2>&1 &
	PID=$!
	for _ in $(seq 30); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' $API/v1/status)" = 200 ] &&
			ip link show "${IFUP:-$IFA}" | grep -q xdpgeneric; then
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.2
	done
	return 1
}

aibld_stop() {
	kill "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=
}

NEED=cap_bpf,cap_net_admin,cap_perfmon
if aibld_up capsh --drop="$(drop_but $NEED)"; then
	t_pass aibld_runs_with_bpf_netadmin_perfmon
else
	t_fail aibld_runs_with_bpf_netadmin_perfmon "$(tail -3 "$TMP/log")"
fi
aibld_stop
# a restart (systemctl restart, a crash): stopped, its program stays attached
# and its pins stay; started again with the same three, it replaces that
# program, which it cannot look up by id (CAP_SYS_ADMIN)
old_id=$(ip -d link show "$IFA" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1)
if [ -z "$old_id" ]; then
	t_fail aibld_restarts_with_bpf_netadmin_perfmon "no program left attached to restart over"
elif KEEP=1 aibld_up capsh --drop="$(drop_but $NEED)"; then
	new_id=$(ip -d link show "$IFA" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1)
	if [ -n "$new_id" ] && [ "$new_id" != "$old_id" ]; then
		t_pass aibld_restarts_with_bpf_netadmin_perfmon
	else
		t_fail aibld_restarts_with_bpf_netadmin_perfmon "program $old_id still attached, not replaced ($new_id)"
	fi
else
	t_fail aibld_restarts_with_bpf_netadmin_perfmon "$(tail -3 "$TMP/log")"
fi
aibld_stop
# a start that fails before its attach (native asked where generic runs:
# refused), then one as before: it still replaces the program attached.
# The failed start had pinned its own program over the attached one's,
# and no start without CAP_SYS_ADMIN could find the attached one again
sed 's/xdp_mode: generic/xdp_mode: native/' "$TMP/cfg.yaml" >"$TMP/cfg-native.yaml"
chmod 644 "$TMP/cfg-native.yaml"
if CFG=$TMP/cfg-native.yaml KEEP=1 aibld_up capsh --drop="$(drop_but $NEED)"; then
	t_fail aibld_restarts_after_failed_start "native came up over generic"
	aibld_stop
else
	aibld_stop
	if KEEP=1 aibld_up capsh --drop="$(drop_but $NEED)"; then
		t_pass aibld_restarts_after_failed_start
	else
		t_fail aibld_restarts_after_failed_start "$(tail -3 "$TMP/log")"
	fi
	aibld_stop
fi
# restarted on another interface (interface: changed): the program the
# previous run left on the old one comes off it. Left there, it steered
# with frozen tables and the new interface's MAC, and --teardown, which
# looks at the configured interface only, could not take it off
IFC=rsc${ID}c IFD=rsc${ID}d
if ip link add "$IFC" type veth peer name "$IFD" && ip link set "$IFC" up && ip link set "$IFD" up; then
	sed "s/^interface: .*/interface: $IFC/" "$TMP/cfg.yaml" >"$TMP/cfg-moved.yaml"
	chmod 644 "$TMP/cfg-moved.yaml"
	if ! ip link show "$IFA" | grep -q xdpgeneric; then
		t_fail aibld_moved_interface "nothing attached on $IFA to move from"
	elif IFUP=$IFC CFG=$TMP/cfg-moved.yaml KEEP=1 aibld_up capsh --drop="$(drop_but $NEED)"; then
		if ip link show "$IFA" | grep -q xdp; then
			t_fail aibld_moved_interface "the previous run's program still on $IFA"
		else
			t_pass aibld_moved_interface
		fi
	else
		t_fail aibld_moved_interface "$(tail -3 "$TMP/log")"
	fi
	aibld_stop
	"$AIBLD" --teardown --config "$TMP/cfg-moved.yaml" >/dev/null 2>&1
	ip link del "$IFC" 2>/dev/null
else
	t_fail aibld_moved_interface "cannot create veth $IFC"
fi

for cap in ${NEED//,/ }; do
	keep=$(echo ",$NEED," | sed "s/,$cap,/,/; s/^,//; s/,$//")
	if aibld_up capsh --drop="$(drop_but "$keep")"; then
		t_fail "aibld_refused_without_$cap" "came up without $cap"
	elif kill -0 "$PID" 2>/dev/null; then
		t_fail "aibld_refused_without_$cap" "neither up nor exited"
	elif ip link show "$IFA" | grep -q xdp; then
		t_fail "aibld_refused_without_$cap" "left an XDP program attached"
	elif ! grep -q 'needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN' "$TMP/log"; then
		t_fail "aibld_refused_without_$cap" "no capability hint in its log: $(tail -2 "$TMP/log")"
	else
		echo "  without $cap: $(grep -iE 'aibld (error|warn)' "$TMP/log" | tail -1 | cut -c14-)"
		t_pass "aibld_refused_without_$cap"
	fi
	aibld_stop
done

# as nobody, the three capabilities ambient, nothing else
if aibld_up capsh --caps="$NEED+eip cap_setuid,cap_setgid+ep" --keep=1 --user=nobody \
	--addamb=$NEED; then
	owner=$(stat -c %U "$PINS/aibl_conns")
	mode=$(stat -c %a "$PINS/aibl_conns")
	if [ "$owner" = nobody ] && [ "$mode" = 600 ]; then
		t_pass aibld_as_unprivileged_user
	else
		t_fail aibld_as_unprivileged_user "pins owned by $owner mode $mode"
	fi
else
	t_fail aibld_as_unprivileged_user "$(tail -3 "$TMP/log")"
fi
aibld_stop

# aiblctl: root without any capability reads and test-runs; others cannot
if aibld_up capsh --drop="$(drop_but $NEED)"; then
	if capsh --drop="$ALL" -- -c "$CTL --bpffs $PINS -j service list" >"$TMP/out" 2>&1 &&
		grep -q '"s"' "$TMP/out" &&
		capsh --drop="$ALL" -- -c "$CTL --bpffs $PINS simulate 10.0.0.5:1234 10.231.1.1:80" \
			>/dev/null 2>&1; then
		t_pass aiblctl_needs_no_capability
	else
		t_fail aiblctl_needs_no_capability "$(head -2 "$TMP/out")"
	fi
	# refused for want of permission, not for any failure (a setpriv that
	# does not run, a crash)
	if setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --bpffs "$PINS" service list \
		>"$TMP/out" 2>&1; then
		t_fail aiblctl_other_user_refused "another user read the maps"
	elif grep -qiE 'permission denied|operation not permitted' "$TMP/out"; then
		echo "  as nobody: $(head -1 "$TMP/out")"
		t_pass aiblctl_other_user_refused
	else
		t_fail aiblctl_other_user_refused "refused, but not for permission: $(head -2 "$TMP/out")"
	fi
	# its API's request limits, while it runs with the three capabilities
	big=$(head -c 65536 /dev/zero | tr '\0' a)
	h=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Padding: $big" $API/v1/status)
	head -c $((8 << 20)) /dev/zero >"$TMP/body"
	b=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$TMP/body" $API/v1/nodes/a/drain)
	s=$(curl -s -o /dev/null -w '%{http_code}' $API/v1/status)
	echo "  API: 64 KiB header -> $h, 8 MiB body to drain -> $b (body discarded), then status -> $s"
	if [ "${h:0:1}" = 4 ] && [ "$b" = 200 ] && [ "$s" = 200 ] && kill -0 "$PID" 2>/dev/null; then
		t_pass aibld_api_request_limits
	else
		t_fail aibld_api_request_limits "header $h body $b status $s"
	fi
else
	t_fail aiblctl_needs_no_capability "aibld did not come up"
fi
aibld_stop
t_done
