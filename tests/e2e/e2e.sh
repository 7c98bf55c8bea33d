# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
# Shared by the end-to-end suites (tests/e2e/test_*.sh): each builds its own
# lab (lab/lab.sh) under a unique prefix, runs the real aibld, agents,
# simnodes and aibl-loadgen in it, and removes everything on exit, also
# after a failure or a timeout (trap).
. "$(dirname "$0")/../lib/lib.sh"
. "$AIBL_ROOT/lab/lab.sh"

E2E_TMP=$(mktemp -d /tmp/aibl-e2e.XXXXXX)
E2E_PREFIX=

e2e_cleanup() {
	[ -n "$E2E_PREFIX" ] && "$AIBL_ROOT/lab/lab.sh" down --prefix "$E2E_PREFIX" 2>/dev/null
	[ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_TMP"
}
trap e2e_cleanup EXIT
trap 'exit 124' TERM INT

# e2e_need CASE...: skip every named case (and exit) when the suite cannot
# run here: not root, or a component not built yet.
e2e_need() {
	local why="" b c
	[ "$(id -u)" -eq 0 ] || why="needs root (network namespaces, XDP)"
	for b in aibld aibl-agent aibl-simnode aibl-loadgen aiblctl aibl_xdp.bpf.o; do
		[ -n "$why" ] || [ -e "$AIBL_BUILD/$b" ] || why="$AIBL_BUILD/$b not built"
	done
	command -v python3 >/dev/null || why=${why:-"needs python3 to read JSON"}
	[ -z "$why" ] && return 0
	for c in "$@"; do t_skip "$c" "$why"; done
	exit 0
}

# e2e_need_fake_nvml CASE...: the lab's GPU nodes get the fake NVML
# (LAB_FAKE_NVML, lab.sh); skip every named case (and exit) when it is not
# built
e2e_need_fake_nvml() {
	local c
	export LAB_FAKE_NVML=$AIBL_BUILD/tests/libfake_nvml.so
	[ -e "$LAB_FAKE_NVML" ] && return 0
	for c in "$@"; do t_skip "$c" "$LAB_FAKE_NVML not built"; done
	exit 0
}

# e2e_lab TAG [lab up options]: a lab with a prefix unique to this run
e2e_lab() {
	E2E_PREFIX="lb$1$(($$ % 1000))"
	shift
	"$AIBL_ROOT/lab/lab.sh" up --prefix "$E2E_PREFIX" "$@" >"$E2E_TMP/lab.log" 2>&1 || {
		cat "$E2E_TMP/lab.log"
		return 1
	}
	lab_load "$E2E_PREFIX"
}

# e2e_json FILE PYTHON-EXPR: the expression's value, j = FILE's JSON
e2e_json() {
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}

# e2e_share FILE NODE: percentage of FILE's requests NODE answered
e2e_share() {
	e2e_json "$1" "round(100.0 * sum(n['requests'] for n in j['nodes'] if n['name'] == '$2') / max(1, j['total']['requests']), 1)"
}

# e2e_serving SERVICE: the nodes the controller gives SERVICE a share of
# (weight above 0 in /v1/status), sorted, on one line
e2e_serving() {
	lab_api /v1/status | python3 -c "import json,sys
s = [s for s in json.load(sys.stdin)['services'] if s['name'] == '$1'][0]
print(' '.join(sorted(n['name'] for n in s['nodes'] if n['weight'] > 0)))"
}

# e2e_backend NODE PYTHON-EXPR: the expression's value, b = NODE's entry in
# aiblctl backend list (what the data plane's maps hold)
e2e_backend() {
	lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j backend list 2>/dev/null |
		python3 -c "import json,sys
b = [b for b in json.load(sys.stdin)['backends'] if b['name'] == '$1'][0]
print($2)" 2>/dev/null
}

# e2e_within VALUE EXPECTED TOLERANCE: |VALUE - EXPECTED| <= TOLERANCE
e2e_within() {
	python3 -c "import sys; sys.exit(0 if abs($1 - $2) <= $3 else 1)"
}

# e2e_restart_aibld CONFIG: stop the controller, remove its program and
# pins, start it on CONFIG and wait until every node is up
e2e_restart_aibld() {
	lab_stop aibld
	"$AIBL_BUILD/aibld" --teardown --config "$1" >>"$LAB_DIR/aibld.log" 2>&1
	lab_start_aibld "$1" && lab_wait_nodes_up "$LAB_NODES" 15
}

# e2e_fail_log CASE WHY: fail and show the end of the controller's log
e2e_fail_log() {
	t_fail "$1" "$2"
	tail -n 15 "$LAB_DIR/aibld.log" 2>/dev/null | sed 's/^/    aibld: /'
}

# e2e_expect CASE EXIT FILE PYTHON-EXPR EXPECTED: pass when a workload
# exited 0 and EXPR over its --json output (j) prints EXPECTED
e2e_expect() {
	local got
	got=$(e2e_json "$3" "$4" 2>&1)
	if [ "$2" -eq 0 ] && [ "$got" = "$5" ]; then
		t_pass "$1"
	else
		e2e_fail_log "$1" "exit $2, $4 = $got (want $5); first error: $(e2e_json "$3" "j['first_error']" 2>&1)"
	fi
}
