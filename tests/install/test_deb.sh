#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The Debian packages of debian/ (issue #21), built and installed as Debian
# does it: dpkg-buildpackage -us -uc -b on a copy of the checkout (the
# working tree stays clean), lintian without an error, the lab tools in
# neither package; then apt installs both packages into a fresh bookworm
# minbase root (mmdebstrap, as piuparts does), where the shipped
# configuration passes aibld --check, aiblctl help runs, man finds the pages,
# the units are in place and not enabled, the postinst created the user
# aibl; dpkg -r removes all but the configuration, dpkg -P that too.
#
# Needs root (mmdebstrap's root mode, chroot) and Debian's mirror (the
# packages the fresh root installs). The .debs it downloads are kept in
# $AIBL_DEB_TEST_CACHE (default /var/cache/aibl/deb-test): a repeat run
# downloads only what changed on the mirror.
. "$(dirname "$0")/../lib/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	t_skip all "needs root (mmdebstrap --mode=root, chroot)"
	t_done
fi
for c in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian mmdebstrap:mmdebstrap; do
	if ! command -v "${c%%:*}" >/dev/null; then
		t_skip all "needs ${c%%:*} (package ${c##*:}; scripts/deps.sh installs it)"
		t_done
	fi
done

CACHE=${AIBL_DEB_TEST_CACHE:-/var/cache/aibl/deb-test}
T=$(mktemp -d /var/tmp/aibl-deb.XXXXXX)
# mmdebstrap unmounts what it mounted in the root (/proc, /sys, /dev, the
# .debs) also when it fails; should it be killed, unmount them here, and
# never delete through a mount (/dev is the host's)
cleanup() {
	local m
	for m in $(awk -v t="$T" 'index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
R=$T/root
ver=$(dpkg-parsechangelog -l "$AIBL_ROOT/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
deb_host=$T/aibl_${ver}_$arch.deb
deb_agent=$T/aibl-agent_${ver}_$arch.deb

# ---- build, in a copy: what git sees (as a fresh clone), else all but build* ----
mkdir "$T/aibl"
if git -C "$AIBL_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$AIBL_ROOT" ls-files -z -co --exclude-standard |
		(cd "$AIBL_ROOT" && while IFS= read -r -d '' f; do
			[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
		done) | tar -C "$AIBL_ROOT" --null -T - -cf - | tar -C "$T/aibl" -xf -
else
	tar -C "$AIBL_ROOT" --exclude='./build*' -cf - . | tar -C "$T/aibl" -xf -
fi
start=$(date +%s)
if ! (cd "$T/aibl" && dpkg-buildpackage -us -uc -b -j2) >"$T/build.log" 2>&1; then
	tail -n 40 "$T/build.log" | sed 's/^/  build: /'
	t_fail build "dpkg-buildpackage -us -uc -b failed"
	t_done
fi
t_pass build
echo "  build: $(($(date +%s) - start)) s"

# ---- what each package holds ----
has() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|' | grep -qxF "$2"; }
bad=
for f in /usr/sbin/aibld /usr/sbin/aiblctl /lib/systemd/system/aibld.service \
	/usr/lib/sysusers.d/aibl.conf /etc/aibl/aibld.yaml /usr/share/man/man8/aibld.8.gz \
	/usr/share/man/man8/aiblctl.8.gz /usr/share/man/man5/aibld.yaml.5.gz; do
	has "$deb_host" "$f" || bad+=" aibl:$f"
done
for f in /usr/sbin/aibl-agent /lib/systemd/system/aibl-agent.service \
	/usr/lib/sysusers.d/aibl-agent.conf /etc/aibl/aibl-agent.env \
	/usr/share/man/man8/aibl-agent.8.gz; do
	has "$deb_agent" "$f" || bad+=" aibl-agent:$f"
done
# the lab tools are not shipped, and no program is in both packages
has "$deb_host" /usr/sbin/aibl-agent && bad+=" aibl:/usr/sbin/aibl-agent(not its own)"
has "$deb_agent" /usr/sbin/aibld && bad+=" aibl-agent:/usr/sbin/aibld(not its own)"
for d in "$T"/*.deb; do
	dpkg-deb -c "$d" | grep -Eq 'aibl-(simnode|loadgen)' && bad+=" $(basename "$d"):lab-tool"
done
if [ -z "$bad" ]; then t_pass contents; else t_fail contents "missing or misplaced:$bad"; fi

# ---- lintian: errors fail, warnings are listed ----
if out=$(lintian --fail-on error --tag-display-limit 0 "$T"/aibl_*.changes 2>&1); then
	t_pass lintian
	grep '^[WE]: ' <<<"$out" | sed 's/^/  lintian: /'
else
	grep -v 'root privileges' <<<"$out" | sed 's/^/  lintian: /'
	t_fail lintian "lintian reports errors"
fi

# ---- install into a fresh root: apt resolves the dependencies from the mirror ----
mkdir -p "$CACHE"
start=$(date +%s)
if ! mmdebstrap --mode=root --variant=minbase --skip=essential/unlink \
	--include=man-db --include="$deb_host" --include="$deb_agent" \
	--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in $CACHE /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives $CACHE" \
	bookworm "$R" >"$T/root.log" 2>&1; then
	tail -n 40 "$T/root.log" | sed 's/^/  mmdebstrap: /'
	t_fail install "mmdebstrap with the two packages failed"
	t_done
fi
t_pass install
echo "  install: $(($(date +%s) - start)) s"
# mmdebstrap copies partial/ and lock back too; apt recreates them
rm -rf "$CACHE/partial" "$CACHE/lock"

in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

if out=$(in_root aibld --check --config /etc/aibl/aibld.yaml 2>&1); then
	t_pass check_config
else
	t_fail check_config "$out"
fi
if out=$(in_root aiblctl help 2>&1) && grep -q '^  service list' <<<"$out"; then
	t_pass aiblctl_help
else
	t_fail aiblctl_help "$(head -n 5 <<<"$out")"
fi
out=$(in_root man -w aibld aibld.yaml aiblctl aibl-agent 2>&1)
if [ "$out" = "/usr/share/man/man8/aibld.8.gz
/usr/share/man/man5/aibld.yaml.5.gz
/usr/share/man/man8/aiblctl.8.gz
/usr/share/man/man8/aibl-agent.8.gz" ]; then
	t_pass man
else
	t_fail man "man -w: $(echo $out)"
fi

# units installed, owned, not enabled; the postinst made the user
bad=
for u in aibld.service:aibl aibl-agent.service:aibl-agent; do
	[ -f "$R/lib/systemd/system/${u%%:*}" ] || bad+=" ${u%%:*}(missing)"
	[ "$(in_root dpkg-query -S "/lib/systemd/system/${u%%:*}" 2>/dev/null)" = \
		"${u##*:}: /lib/systemd/system/${u%%:*}" ] || bad+=" ${u%%:*}(not owned by ${u##*:})"
	[ -e "$R/etc/systemd/system/multi-user.target.wants/${u%%:*}" ] && bad+=" ${u%%:*}(enabled)"
done
if [ -z "$bad" ]; then t_pass units; else t_fail units "$bad"; fi
if in_root getent passwd aibl >/dev/null; then
	t_pass user
else
	t_fail user "no user aibl after the postinst (systemd-sysusers)"
fi

# the maintainer scripts: an upgrade neither stops nor restarts aibld (a
# release with another map ABI needs --teardown between), removal tears
# its data plane down after the stop
if grep -q -- '--teardown' "$R/var/lib/dpkg/info/aibl.prerm" 2>/dev/null &&
	! grep -q 'restart' "$R/var/lib/dpkg/info/aibl.postinst" 2>/dev/null; then
	t_pass maintainer_scripts
else
	t_fail maintainer_scripts "prerm: $(grep -c -- --teardown "$R/var/lib/dpkg/info/aibl.prerm" 2>&1) teardown line(s); postinst restarts: $(grep -c restart "$R/var/lib/dpkg/info/aibl.postinst" 2>&1)"
fi

# remove: program files go, the conffiles stay until purge
if ! out=$(in_root dpkg -r aibl aibl-agent 2>&1); then
	t_fail remove "dpkg -r: $(echo $out)"
else
	left=
	for f in /usr/sbin/aibld /usr/sbin/aiblctl /usr/sbin/aibl-agent \
		/lib/systemd/system/aibld.service /lib/systemd/system/aibl-agent.service \
		/usr/share/man/man8/aibld.8.gz; do
		[ -e "$R$f" ] && left+=" $f"
	done
	if [ -z "$left" ] && [ -f "$R/etc/aibl/aibld.yaml" ] && [ -f "$R/etc/aibl/aibl-agent.env" ]; then
		t_pass remove
	else
		t_fail remove "left:${left:- none}; /etc/aibl: $(ls "$R/etc/aibl" 2>&1 | tr '\n' ' ')"
	fi
	if out=$(in_root dpkg -P aibl aibl-agent 2>&1) && [ ! -e "$R/etc/aibl" ]; then
		t_pass purge
	else
		t_fail purge "$(echo $out); /etc/aibl: $(ls "$R/etc/aibl" 2>&1 | tr '\n' ' ')"
	fi
fi
t_done
