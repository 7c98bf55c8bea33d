#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# A bad configuration on SIGHUP is refused with a reason, the controller
# keeps running on the old one and traffic is unaffected; a good one is
# then applied.
. "$(dirname "$0")/e2e.sh"
CASES=(syntax_error_refused bad_value_refused still_running old_config_kept traffic_unaffected
	good_reload_applied)
e2e_need "${CASES[@]}"
e2e_lab rl --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
for i in 1 2 3; do lab_start_node "$i" --models m1:1000; done
cfg=$E2E_TMP/aibld.yaml
write_cfg() { # POLICY WEIGHTS...
	local pol=$1
	shift
	{
		lab_yaml_head
		echo "services:"
		echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: $pol}"
		lab_yaml_nodes "$@"
	} >"$cfg.tmp" && mv "$cfg.tmp" "$cfg"
}
write_cfg wrr 100 100 100
e2e_restart_aibld "$cfg" || { e2e_fail_log still_running "aibld not up"; t_done; }
W=http://$LAB_VIP4:$LAB_SIM_PORT
weights() {
	lab_api /v1/status | python3 -c "import json,sys; print(' '.join(str(n['weight']) for n in json.load(sys.stdin)['services'][0]['nodes']))"
}
refused() { lab_api /metrics | awk '/^aibl_controller_reloads_total\{result="refused"\}/ {print $2}'; }
before=$(weights)

lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --rate 200 --conns 32 --duration 5 \
	--json --no-progress >"$E2E_TMP/new.json" 2>/dev/null &
pid_new=$!
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 12 --rate 120 \
	--duration 5 --json --no-progress >"$E2E_TMP/ka.json" 2>/dev/null &
pid_ka=$!
sleep 1
good=$(cat "$cfg")
printf '%s\n  - {name: [broken\n' "$good" >"$cfg"
kill -HUP "$(lab_pid aibld)"
# aibld logs the refusal, then counts it
refused_yaml() { grep -q "reload refused.*YAML" "$LAB_DIR/aibld.log" && [ "$(refused)" = 1 ]; }
if lab_wait 5 refused_yaml; then
	t_pass syntax_error_refused
else
	e2e_fail_log syntax_error_refused "no refusal logged/counted ($(refused))"
fi
write_cfg fastest 1 2 3
kill -HUP "$(lab_pid aibld)"
if lab_wait 5 grep -q "reload refused.*fastest" "$LAB_DIR/aibld.log"; then
	t_pass bad_value_refused
else
	e2e_fail_log bad_value_refused "unknown policy not refused"
fi
sleep 0.5
t_check still_running [ -n "$(lab_pid aibld)" ]
t_check old_config_kept [ "$(weights)" = "$before" ]
wait $pid_new; rc_new=$?
wait $pid_ka; rc_ka=$?
r="$rc_new $rc_ka $(e2e_json "$E2E_TMP/new.json" "j['total']['failed']") $(e2e_json "$E2E_TMP/ka.json" "(j['total']['failed'], j['total']['reconnects'])")"
t_check traffic_unaffected [ "$r" = "0 0 0 (0, 0)" ]
write_cfg wrr 100 200 300
kill -HUP "$(lab_pid aibld)"
weights_are() { [ "$(weights)" = "$1" ]; }
if lab_wait 5 weights_are "100 200 300"; then t_pass good_reload_applied; else
	e2e_fail_log good_reload_applied "weights $(weights)"
fi
t_done
