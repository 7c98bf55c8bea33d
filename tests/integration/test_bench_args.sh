#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# lab/bench-routing.sh refuses a node mix it cannot run before it starts
# anything or removes the last run's results: a node whose resident models
# do not fit its memory (aibl-simnode would refuse to start, and the runs
# went on without that node), an unknown model, an entry that is not
# KIND:MODELS. A mix that fits passes; --report without results says so.
# No lab is started.
. "$(dirname "$0")/../lib/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
B=$AIBL_ROOT/lab/bench-routing.sh
mkdir -p "$tmp/bench/routing"
echo kept >"$tmp/bench/routing/last-run"

# bench MIX [ARGS...]: run it on $tmp's results; "rc|stderr"
bench() {
	local mix=$1 rc
	shift
	AIBL_BUILD=$tmp "$B" --mix "$mix" "$@" >/dev/null 2>"$tmp/err"
	rc=$?
	echo "$rc|$(head -c 300 "$tmp/err")"
}

r=$(bench "fast:m-a,m-b,m-c cpu:m-c" --scenarios default --rates 3)
t_check mix_over_memory_refused [ "$r" = "2|bench-routing: --mix: node n1 (fast) cannot hold m-a,m-b,m-c: 96000 MB, more than its 80000 MB" ]
t_check mix_refused_keeps_results [ "$(cat "$tmp/bench/routing/last-run")" = kept ]
r=$(bench "fast:m-a cpu:m-a" --report)
t_check mix_cpu_memory [ "$r" = "2|bench-routing: --mix: node n2 (cpu) cannot hold m-a: 40000 MB, more than its 20000 MB" ]
r=$(bench "fast:m-a,m-x" --report)
t_check mix_unknown_model [ "$r" = "2|bench-routing: --mix: node n1: unknown model 'm-x' (m-a, m-b, m-c)" ]
r=$(bench "fast:m-a gpu:m-b" --report)
t_check mix_unknown_kind [ "$r" = "2|bench-routing: --mix: unknown node kind 'gpu' (fast, slow, cpu)" ]
r=$(bench "fast:m-a fast" --report)
t_check mix_not_kind_models [ "$r" = "2|bench-routing: --mix: node n2: 'fast' is not KIND:MODELS" ]
# the default mix and an empty node pass the check: --report then finds no
# result to report, and says so
r=$(bench "fast:m-a,m-b fast:m-a,m-c slow:m-b,m-c cpu:m-c fast:" --report --scenarios nat --rates 5 --policies ai)
t_check mix_that_fits_passes [ "$r" = "1|bench-routing: --report: no result for nat/ai-r5 in $tmp/bench/routing (it reports the last run of the same --scenarios, --rates and --policies)" ]
t_done
