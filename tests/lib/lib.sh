# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Shared helpers for shell test suites: source it, then call
#   t_pass NAME | t_fail NAME [WHY] | t_skip NAME WHY
# and finish with t_done (exit code 1 when a case failed).
AIBL_ROOT=${AIBL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AIBL_BUILD=${AIBL_BUILD:-$AIBL_ROOT/build}
T_SUITE=${T_SUITE:-$(basename "$0" .sh)}
T_FAILED=0

t_pass() { echo "PASS $T_SUITE/$1"; }
t_fail() { echo "FAIL $T_SUITE/$1${2:+: $2}"; T_FAILED=1; }
t_skip() { echo "SKIP $T_SUITE/$1 ($2)"; }
t_check() { # t_check NAME CMD... : pass when CMD succeeds
	local name=$1; shift
	if "$@"; then t_pass "$name"; else t_fail "$name" "command failed: $*"; fi
}
t_done() { exit $T_FAILED; }
