#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# aibl-agent --read-metrics: recorded pages in, the figures the agent
# would report out (one JSON object), windows over consecutive scrapes,
# exit 1 with a one-line reason for a page it cannot use.
. "$(dirname "$0")/../lib/lib.sh"
B=$AIBL_BUILD
D=$(dirname "$0")/../data/metrics
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$B/aibl-agent" --read-metrics "$D/vllm-lora-history.txt")
t_check vllm_lora_page [ "$out" = '{"kind":"vllm","queue_depth":30.0,"running":10.0,"kv_cache_usage":0.4,"prefix_cache_hit_rate":null,"ttft_avg_ms":null,"slots":null,"models":[{"name":"my_model","resident":true},{"name":"lora4","resident":true},{"name":"lora3","resident":true}]}' ]

out=$("$B/aibl-agent" --read-metrics "$D/ollama-ps.json")
t_check ollama_ps [ "$out" = '{"kind":"ollama","queue_depth":null,"running":null,"kv_cache_usage":null,"prefix_cache_hit_rate":null,"ttft_avg_ms":null,"slots":null,"models":[{"name":"qwen2.5-coder:7b","resident":true},{"name":"mistral:7b-instruct","resident":true}]}' ]

# two scrapes: the hit rate is the second window's (900/1000), not lifetime
printf 'vllm:prefix_cache_queries_total 1000\nvllm:prefix_cache_hits_total 100\n' >"$tmp/1"
printf 'vllm:prefix_cache_queries_total 2000\nvllm:prefix_cache_hits_total 1000\n' >"$tmp/2"
out=$("$B/aibl-agent" --read-metrics "$tmp/1" "$tmp/2")
t_check window_over_scrapes [ "$(echo "$out" | grep -o '"prefix_cache_hit_rate":[0-9.]*')" = '"prefix_cache_hit_rate":0.9' ]

# an engine's info page after its metrics page: the requests it runs at once
out=$("$B/aibl-agent" --read-metrics "$D/llamacpp-pr11512.txt" "$D/llamacpp-props-4slots.json")
t_check llamacpp_props [ "$(echo "$out" | grep -o '"slots":[0-9a-z]*')" = '"slots":4' ]
out=$("$B/aibl-agent" --read-metrics "$D/sglang.txt" "$D/sglang-server-info.json")
t_check sglang_server_info [ "$(echo "$out" | grep -o '"slots":[0-9a-z]*')" = '"slots":128' ]
echo '{"total_slots": 0}' >"$tmp/props.json"
err=$("$B/aibl-agent" --read-metrics "$D/llamacpp-pr11512.txt" "$tmp/props.json" 2>&1 >/dev/null)
rc=$?
case "$rc:$err" in 1:*"total_slots is not a count of 1 to 100000"*) ok=1 ;; *) ok=0 ;; esac
t_check props_bad_count_refused [ "$ok" = 1 ]
# vLLM has no such page: a JSON object after its page is not one
err=$("$B/aibl-agent" --read-metrics "$D/vllm.txt" "$D/llamacpp-props.json" 2>&1 >/dev/null)
t_check vllm_no_info_page [ "$?:$(echo "$err" | grep -c 'JSON, not a Prometheus page')" = 1:1 ]

echo '[]' >"$tmp/trt.json"
err=$("$B/aibl-agent" --read-metrics "$tmp/trt.json" 2>&1 >/dev/null)
rc=$?
t_check trtllm_json_refused [ "$rc/$(echo "$err" | wc -l)" = 1/1 ]
err=$("$B/aibl-agent" --read-metrics "$D/malformed-truncated.txt" 2>&1 >/dev/null)
rc=$?
case "$rc:$err" in 1:*"line 10: unterminated value of label model_name"*) ok=1 ;; *) ok=0 ;; esac
t_check malformed_refused [ "$ok" = 1 ]
t_done
