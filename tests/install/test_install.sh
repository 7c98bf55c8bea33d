#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make install / make uninstall into a DESTDIR (no root needed): every file
# where it belongs with its mode, an edited /etc/aibl/aibld.yaml kept by a
# second install, the installed aibld accepting the shipped configuration,
# and uninstall removing everything install put there but the configuration.
. "$(dirname "$0")/../lib/lib.sh"

T=$(mktemp -d /tmp/aibl-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
D=$T/root
mk() { make -C "$AIBL_ROOT" BUILD="$AIBL_BUILD" DESTDIR="$D" PREFIX=/usr "$@" >"$T/make.log" 2>&1 ||
	{ sed 's/^/  make: /' "$T/make.log"; return 1; }; }

# path mode, as install leaves them
EXPECTED='
usr/sbin/aibld 755
usr/sbin/aibl-agent 755
usr/sbin/aiblctl 755
usr/share/man/man8/aibld.8 644
usr/share/man/man8/aibl-agent.8 644
usr/share/man/man8/aiblctl.8 644
usr/share/man/man5/aibld.yaml.5 644
usr/lib/systemd/system/aibld.service 644
usr/lib/systemd/system/aibl-agent.service 644
usr/lib/sysusers.d/aibl.conf 644
usr/share/doc/aibl/examples/aibl.example.yaml 644
usr/share/doc/aibl/examples/aibl-agent.env 644
etc/aibl/aibld.yaml 644
etc/aibl/aibl-agent.env 644
'

if ! mk install; then
	t_fail install "make install failed"
	t_done
fi
bad=
while read -r p mode; do
	[ -n "$p" ] || continue
	if [ ! -f "$D/$p" ]; then
		bad+=" $p(missing)"
	elif [ "$(stat -c %a "$D/$p")" != "$mode" ]; then
		bad+=" $p(mode $(stat -c %a "$D/$p"), not $mode)"
	fi
done <<<"$EXPECTED"
# and nothing else: a file install adds must be listed above (and removed
# by uninstall)
extra=$(cd "$D" && find . -type f | sed 's|^\./||' | sort |
	comm -23 - <(awk 'NF {print $1}' <<<"$EXPECTED" | sort))
[ -z "$extra" ] || bad+=" unexpected:$(echo $extra)"
if [ -z "$bad" ]; then t_pass install_files; else t_fail install_files "$bad"; fi

if cmp -s "$D/etc/aibl/aibld.yaml" "$AIBL_ROOT/etc/aibl.example.yaml" &&
	cmp -s "$D/usr/sbin/aibld" "$AIBL_BUILD/aibld"; then
	t_pass install_content
else
	t_fail install_content "aibld.yaml is not etc/aibl.example.yaml or aibld not build/aibld"
fi

# the units name the installed paths, not the @PLACEHOLDERS@
u=$D/usr/lib/systemd/system/aibld.service
if grep -qx 'ExecStart=/usr/sbin/aibld --config /etc/aibl/aibld.yaml' "$u" &&
	grep -qx 'ExecStart=/usr/sbin/aibl-agent $AIBL_AGENT_OPTS' "${u%/*}/aibl-agent.service" &&
	grep -qx 'EnvironmentFile=/etc/aibl/aibl-agent.env' "${u%/*}/aibl-agent.service" &&
	! grep -q @ "$u" "${u%/*}/aibl-agent.service"; then
	t_pass unit_paths
else
	t_fail unit_paths "ExecStart/EnvironmentFile do not name /usr/sbin and /etc/aibl"
fi

# the installed aibld accepts the configuration installed with it
if out=$("$D/usr/sbin/aibld" --check --config "$D/etc/aibl/aibld.yaml" 2>&1); then
	t_pass check_config
else
	t_fail check_config "$out"
fi

# an edited configuration survives a second install; the doc copy is fresh
echo '# edited by the operator' >>"$D/etc/aibl/aibld.yaml"
echo 'AIBL_AGENT_OPTS=--listen 127.0.0.1:1 # edited' >>"$D/etc/aibl/aibl-agent.env"
if ! mk install; then
	t_fail reinstall "second make install failed"
elif grep -q 'edited by the operator' "$D/etc/aibl/aibld.yaml" &&
	grep -q '# edited' "$D/etc/aibl/aibl-agent.env" &&
	cmp -s "$D/usr/share/doc/aibl/examples/aibl.example.yaml" "$AIBL_ROOT/etc/aibl.example.yaml"; then
	t_pass reinstall_keeps_config
else
	t_fail reinstall_keeps_config "an edited file in /etc/aibl was overwritten"
fi

# uninstall: only the configuration is left
if ! mk uninstall; then
	t_fail uninstall "make uninstall failed"
else
	left=$(cd "$D" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
	if [ "$left" = "etc/aibl/aibl-agent.env etc/aibl/aibld.yaml " ] &&
		grep -q 'edited by the operator' "$D/etc/aibl/aibld.yaml"; then
		t_pass uninstall
	else
		t_fail uninstall "left: $left"
	fi
fi
t_done
