#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The systemd units and the sysusers file as make install writes them:
# systemd-analyze verify finds no problem (an unknown or misspelt directive
# is only a warning there, with exit 0: any output fails), the directives
# issue #21 asks for are there, the pin paths match the shipped "bpffs",
# and systemd-sysusers accepts the user. Installed with PREFIX and
# SYSCONFDIR inside a temporary directory, not DESTDIR, so that verify
# finds the binaries the units start and their man pages on this host.
. "$(dirname "$0")/../lib/lib.sh"

if ! command -v systemd-analyze >/dev/null; then
	t_skip all "needs systemd-analyze (package systemd)"
	t_done
fi
T=$(mktemp -d /tmp/aibl-units.XXXXXX)
trap 'rm -rf "$T"' EXIT
if ! make -C "$AIBL_ROOT" BUILD="$AIBL_BUILD" PREFIX="$T/usr" SYSCONFDIR="$T/etc" install \
	>"$T/make.log" 2>&1; then
	sed 's/^/  make: /' "$T/make.log"
	t_fail install "make install failed"
	t_done
fi
U=$T/usr/lib/systemd/system

for u in aibld.service aibl-agent.service; do
	out=$(cd "$T" && MANPATH=$T/usr/share/man systemd-analyze verify "$U/$u" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then
		t_pass "verify_$u"
	else
		t_fail "verify_$u" "exit $rc: $(echo $out)"
	fi
done

# what the issue asks of aibld.service, and what aibld needs
bad=
for d in 'User=aibl' 'AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN' \
	'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN' \
	'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'ProtectSystem=strict' \
	'ProtectHome=yes' 'NoNewPrivileges=yes' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK'; do
	grep -qxF "$d" "$U/aibld.service" || bad+=" '$d'"
done
if [ -z "$bad" ]; then t_pass aibld_directives; else t_fail aibld_directives "missing:$bad"; fi

# the unit prepares and binds the pin directory of the shipped configuration
pins=$(sed -n 's/^bpffs: *\([^ #]*\).*/\1/p' "$AIBL_ROOT/etc/aibl.example.yaml")
if [ -n "$pins" ] && grep -qxF "BindPaths=$pins" "$U/aibld.service" &&
	grep -qxF "ExecStartPre=+/usr/bin/install -d -m 0700 -o aibl -g aibl $pins" "$U/aibld.service" &&
	grep -qxF "TemporaryFileSystem=${pins%/*}:mode=0755" "$U/aibld.service"; then
	t_pass pin_dir_matches_config
else
	t_fail pin_dir_matches_config "aibld.service does not prepare bpffs '$pins' of etc/aibl.example.yaml"
fi

if ! command -v systemd-sysusers >/dev/null; then
	t_skip sysusers "no systemd-sysusers"
elif out=$(systemd-sysusers --dry-run --root="$T/sysroot" "$T/usr/lib/sysusers.d/aibl.conf" 2>&1) &&
	grep -q "Creating user 'aibl'" <<<"$out"; then
	t_pass sysusers
else
	t_fail sysusers "$(echo $out)"
fi
t_done
