#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Compares aibl-agent's GPU figures with nvidia-smi's on a machine with an
# NVIDIA GPU, in well under 5 minutes:
#   names, UUIDs, PCI bus ids; memory total within 1 MiB, used (all but
#   the free memory, the driver's reserved part too) within 64 MiB; temperature within
#   3 C; power within 15 %; utilisation under a short load (PyTorch matmuls,
#   when python3 has torch; skipped otherwise); as root and as an
#   unprivileged user (nobody); and with the library absent (a CPU node).
# Figures nvidia-smi shows as [N/A] must be null in the report, not 0.
# Reads only: no GPU setting is changed (no persistence mode, clocks, MIG or
# power limits). Prints PASS/FAIL/SKIP lines like tests/; without nvidia-smi
# it prints one SKIP line and exits 0.
#
# Run on an NVIDIA H200 (driver 580.159.04, Ubuntu 24.04) on 2026-12-04:
# every check passed, the memory-used one after the agent's fix that day.
# Usage: scripts/gpu-check.sh   (after make; BUILD=dir, GPU_CHECK_PORT=port)
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
AGENT=${AGENT:-$BUILD/aibl-agent}
PORT=${GPU_CHECK_PORT:-17971}
FAILED=0
TMP=$(mktemp -d)
AGENT_PID=
LOAD_PID=

cleanup() {
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

skip_all() {
	echo "SKIP gpu-check ($1)"
	exit 0
}
fail() {
	echo "FAIL gpu-check/$1${2:+: $2}"
	FAILED=1
}

command -v nvidia-smi >/dev/null 2>&1 || skip_all "no nvidia-smi: not a machine with an NVIDIA GPU"
timeout 30 nvidia-smi -L >/dev/null 2>&1 || skip_all "nvidia-smi -L fails: no usable NVIDIA GPU"
for t in python3 curl setpriv; do
	command -v $t >/dev/null 2>&1 || skip_all "$t not installed"
done
if [ ! -x "$AGENT" ]; then
	fail build "$AGENT missing: run make"
	exit 1
fi
# a copy any user can run, whatever the permissions of the build tree
install -m 0755 "$AGENT" "$TMP/aibl-agent"
chmod 0755 "$TMP"

QUERY=uuid,pci.bus_id,name,memory.total,temperature.gpu,power.draw,utilization.gpu,memory.free

# run_agent NAME [setpriv args --] [agent args]: report in $TMP/NAME.json
run_agent() {
	local name=$1 i
	shift
	local -a pre=()
	if [ "${1:-}" = "--as-nobody" ]; then
		pre=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
		shift
	fi
	"${pre[@]}" "$TMP/aibl-agent" --listen 127.0.0.1:$PORT --name gpu-check \
		--model-server http://127.0.0.1:9 --scrape-interval-ms 500 "$@" \
		>"$TMP/$name.log" 2>&1 &
	AGENT_PID=$!
	for i in $(seq 50); do
		curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.2
	done
	sleep 2 # a few GPU rounds
	curl -sf "http://127.0.0.1:$PORT/v1/report" >"$TMP/$name.json" ||
		fail "$name" "no report (log: $(tail -n 3 "$TMP/$name.log" | tr '\n' ' '))"
	kill "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

smi() {
	timeout 30 nvidia-smi --query-gpu=$QUERY --format=csv,noheader,nounits >"$TMP/$1.csv" ||
		fail "$1" "nvidia-smi --query-gpu failed"
}

# compare NAME MODE: MODE figures (ids, memory, temperature, power) or util
compare() {
	python3 - "$TMP/$1.json" "$TMP/$1.csv" "$1" "$2" <<'EOF'
import csv, json, sys
rep_path, csv_path, name, mode = sys.argv[1:5]
failed = False
def res(ok, what, detail=""):
    global failed
    failed |= not ok
    print(("PASS" if ok else "FAIL") + f" gpu-check/{name}/{what}" + (f": {detail}" if detail and not ok else ""))
def num(s):
    s = s.strip()
    try:
        return float(s)
    except ValueError:
        return None  # [N/A], [Not Supported]
try:
    rep = json.load(open(rep_path))
except Exception as e:
    res(False, "report", f"not JSON: {e}")
    sys.exit(1)
rows = [[c.strip() for c in r] for r in csv.reader(open(csv_path)) if r]
res(rep.get("nvml") is True, "nvml", rep.get("nvml_error", ""))
gpus = [g for g in rep.get("gpus", []) if g.get("mig_index") is None]
byuuid = {g.get("uuid"): g for g in gpus}
if mode == "figures":
    res(len(gpus) == len(rows), "count", f"agent {len(gpus)}, nvidia-smi {len(rows)}")
    res(rep.get("accel") == "gpu", "accel", rep.get("accel"))
for uuid, bus, gname, mem, temp, power, util, free in rows:
    g = byuuid.get(uuid)
    tag = uuid[:12]
    if g is None:
        res(False, f"{tag}/present", "UUID not in the report")
        continue
    def close(what, agent, smi_v, ok):
        if smi_v is None:
            res(agent is None, f"{tag}/{what}", f"nvidia-smi N/A, agent {agent} (want null)")
        elif agent is None:
            res(False, f"{tag}/{what}", f"agent null ({g.get('error')}), nvidia-smi {smi_v}")
        else:
            res(ok(agent, smi_v), f"{tag}/{what}", f"agent {agent}, nvidia-smi {smi_v}")
    # used: all that is not free, the driver's reserved memory too
    # (nvidia-smi shows that apart from its "used")
    mu = g.get("mem_used_bytes")
    smi_used = None if num(mem) is None or num(free) is None else num(mem) - num(free)
    close("mem_used", None if mu is None else mu / 1048576, smi_used,
          lambda a, s: abs(a - s) <= 64)
    if mode == "figures":
        res(g.get("name") == gname, f"{tag}/name", f"{g.get('name')!r} != {gname!r}")
        res(g.get("pci_bus_id", "").lower() == bus.lower(), f"{tag}/pci_bus_id",
            f"{g.get('pci_bus_id')} != {bus}")
        mt = g.get("mem_total_bytes")
        close("mem_total", None if mt is None else mt / 1048576, num(mem),
              lambda a, s: abs(a - s) <= 1)
        close("temp", g.get("temp_c"), num(temp), lambda a, s: abs(a - s) <= 3)
        close("power", g.get("power_w"), num(power),
              lambda a, s: abs(a - s) <= max(0.15 * s, 5))
    elif g.get("mig_enabled"):
        print(f"SKIP gpu-check/{name}/{tag}/util (MIG mode: no utilisation)")
    else:
        # sampled over different windows: under load both must see it
        close("util", g.get("util_pct"), num(util),
              lambda a, s: a >= 10 and s >= 10 and abs(a - s) <= 30)
sys.exit(1 if failed else 0)
EOF
	[ $? -eq 0 ] || FAILED=1
}

# 1. as root (or whoever runs this), idle
run_agent root
smi root
compare root figures

# 2. as an unprivileged user: the same GPUs and figures
if [ "$(id -u)" -eq 0 ]; then
	run_agent nobody --as-nobody
	smi nobody
	compare nobody figures
else
	echo "SKIP gpu-check/nobody (not root: cannot switch user)"
fi

# 3. utilisation under a short load
if timeout 60 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
	>/dev/null 2>&1; then
	timeout 40 python3 - >"$TMP/load.log" 2>&1 <<'EOF' &
import threading, time, torch
def burn(d):
    a = torch.randn(4096, 4096, device=d)
    end = time.time() + 30
    while time.time() < end:
        a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize(d)
ts = [threading.Thread(target=burn, args=(f"cuda:{i}",)) for i in range(torch.cuda.device_count())]
[t.start() for t in ts]
[t.join() for t in ts]
EOF
	LOAD_PID=$!
	sleep 8 # the load ramps up
	run_agent load
	smi load
	compare load util
	kill "$LOAD_PID" 2>/dev/null
	wait "$LOAD_PID" 2>/dev/null
	LOAD_PID=
else
	echo "SKIP gpu-check/load (python3 has no CUDA torch to make a load)"
fi

# 4. the library absent: a CPU node that says why
run_agent nolib --nvml-lib /nonexistent/libnvidia-ml.so.1
python3 - "$TMP/nolib.json" <<'EOF' || FAILED=1
import json, sys
r = json.load(open(sys.argv[1]))
ok = r.get("nvml") is False and not r.get("gpus") and r.get("accel") == "cpu" \
    and "NVML not available" in r.get("nvml_error", "")
print(("PASS" if ok else "FAIL") + " gpu-check/nolib" +
      ("" if ok else f": nvml {r.get('nvml')}, accel {r.get('accel')}, {r.get('nvml_error')!r}"))
sys.exit(0 if ok else 1)
EOF

exit $FAILED
