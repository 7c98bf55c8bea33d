#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Runs a command in a fresh Debian 12 (bookworm) root, as sbuild and
# pbuilder build packages in a clean chroot: a minbase root with only make
# added, this checkout copied to /root/aibl (git's tracked and untracked,
# not ignored files: no build/), and /proc, /sys, /dev, a bpffs and /run
# mounted in. A package installed by hand on this machine can then never
# hide a missing install step.
#
#   scripts/clean-root.sh make test
#   scripts/clean-root.sh sh -c 'make demo && make test'    (what .ci/run runs)
#   scripts/clean-root.sh bash                              (look around)
#
# The base root is made once with mmdebstrap (installed when missing), from
# the Debian mirror this machine's apt uses and with its keyring, and kept
# as a tar in $AIBL_CLEAN_ROOT_CACHE (default /var/cache/aibl/clean-root),
# named for a hash of what goes into it; AIBL_CLEAN_ROOT_REFRESH=1 makes it
# anew. The .debs apt downloads in the root are kept there too (apt-archives/,
# bind-mounted on the root's /var/cache/apt/archives): a repeat run
# downloads nothing but installs everything again.
#
# Each run unpacks the base into a new directory, bind-mounted on itself
# (ip netns needs the root to be a mount point), and runs CMD there in its
# own mount and PID namespaces: its mounts, its network namespaces (under
# its own /run/netns) and every process it started go when it ends. The
# network is the host's (apt needs it): interfaces a test leaves in the
# host's namespace stay, as they would after make test on the host. An
# EXIT trap removes the directory, also on failure or Ctrl-C. CI is passed
# through; the rest of the environment is not. Needs root. Runs one at a
# time (they share the .deb cache); a second waits for the first.
set -euo pipefail

SUITE=bookworm
CACHE=${AIBL_CLEAN_ROOT_CACHE:-/var/cache/aibl/clean-root}
SELF=$(readlink -f "$0")

die() { echo "clean-root: $*" >&2; exit 1; }
say() { echo "clean-root: $*" >&2; }

# ---- inside: PID 1 of the new PID namespace, in the new mount namespace ----
if [ "${1:-}" = --inside ]; then
	root=$2 archives=$3
	shift 3
	mount --bind "$root" "$root"
	mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
	mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
	# mode 0700, as systemd mounts it on a Debian machine
	mount -t bpf -o mode=700 bpf "$root/sys/fs/bpf"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
	mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$root/run"
	mkdir -p "$root/run/lock"
	mount --bind "$archives" "$root/var/cache/apt/archives"
	set +e
	chroot "$root" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root USER=root LOGNAME=root SHELL=/bin/sh LANG=C.UTF-8 \
		TERM="${TERM:-dumb}" ${CI+CI="$CI"} \
		/bin/sh -c 'cd /root/aibl && exec "$@"' clean-root "$@"
	rc=$?
	# whatever CMD left running: leaving PID 1 would kill it too, but
	# only after the mounts above are gone
	kill -KILL -1 2>/dev/null
	exit $rc
fi

[ $# -gt 0 ] || die "usage: $0 CMD [ARG...]   e.g. $0 make test"
[ "$(id -u)" -eq 0 ] || die "needs root (mounts, chroot): sudo $0 $*"
SRC=$(cd "$(dirname "$SELF")/.." && pwd)

# ---- the host's Debian mirror: the bookworm entries of its apt sources ----
# One "deb URI SUITE main" line per entry, from one-line .list files and
# deb822 .sources files alike; deb.debian.org when there is none.
mirror_lines() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		case "$f" in
		*.sources)
			awk -v want="$SUITE" '
				function flush() {
					if (types ~ /(^| )deb( |$)/ && enabled != "no")
						for (i = 1; i <= ns; i++)
							if (s[i] ~ "^" want "(-updates|-security)?$")
								for (j = 1; j <= nu; j++)
									print "deb " u[j] " " s[i] " main"
					types = ""; enabled = ""; nu = 0; ns = 0
				}
				/^[ \t]*$/ { flush(); next }
				/^#/ { next }
				tolower($1) == "types:" { types = $0; sub(/^[^:]*:/, "", types) }
				tolower($1) == "enabled:" { enabled = tolower($2) }
				tolower($1) == "uris:" { for (i = 2; i <= NF; i++) u[++nu] = $i }
				tolower($1) == "suites:" { for (i = 2; i <= NF; i++) s[++ns] = $i }
				END { flush() }' "$f"
			;;
		*)
			awk -v want="$SUITE" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) while ($i !~ /\]$/) i++
					if ($i ~ /^\[/ || $i ~ /\]$/) i++
					if ($(i + 1) ~ "^" want "(-updates|-security)?$")
						print "deb " $i " " $(i + 1) " main"
				}' "$f"
			;;
		esac
	done | awk '!seen[$0]++'
}

MIRRORS=$(mirror_lines)
if [ -z "$MIRRORS" ]; then
	MIRRORS="deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main"
fi
INCLUDE=make
# apt reaches an https mirror only with the CA certificates: machine setup,
# like the mirror itself, not something the build may rely on
grep -q 'https://' <<<"$MIRRORS" && INCLUDE+=,ca-certificates

MMDEBSTRAP_ARGS=(--variant=minbase --include="$INCLUDE" --components=main "$SUITE")
KEY=$(printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "$MIRRORS" | sha256sum | cut -c1-12)
BASE=$CACHE/$SUITE-minbase-$KEY.tar
ARCHIVES=$CACHE/apt-archives

mkdir -p "$CACHE" "$ARCHIVES/partial"
exec 9>"$CACHE/lock"
if ! flock -n 9; then
	say "another clean-root run holds $CACHE/lock; waiting"
	flock 9
fi

# ---- the base root, made once ----
if [ ! -s "$BASE" ] || [ "${AIBL_CLEAN_ROOT_REFRESH:-0}" = 1 ]; then
	if ! command -v mmdebstrap >/dev/null; then
		say "installing mmdebstrap"
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq update
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
			--no-install-recommends mmdebstrap >/dev/null
	fi
	say "making the base root $BASE from:"
	sed 's/^/  /' <<<"$MIRRORS" >&2
	rm -f "$BASE.tmp"
	mmdebstrap --quiet --mode=root --format=tar "${MMDEBSTRAP_ARGS[@]}" "$BASE.tmp" - \
		<<<"$MIRRORS"
	mv "$BASE.tmp" "$BASE"
	# bases made from another package list or mirror
	find "$CACHE" -maxdepth 1 -name "$SUITE-minbase-*.tar" ! -path "$BASE" -delete
fi

# mounts under a directory, as this mount namespace sees them
mounts_under() {
	awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo
}

# ---- the roots of runs that were killed (SIGKILL runs no trap) ----
for w in /var/tmp/aibl-clean-root.*; do
	[ -d "$w" ] && [ -r "$w/pid" ] || continue
	kill -0 "$(cat "$w/pid")" 2>/dev/null && continue
	[ -z "$(mounts_under "$w")" ] && rm -rf --one-file-system "$w"
done

# ---- this run's root ----
WORK=$(mktemp -d /var/tmp/aibl-clean-root.XXXXXX)
ROOT=$WORK/root
echo $$ >"$WORK/pid"
UPID=

cleanup() {
	local rc=$? pid m
	trap - EXIT INT TERM HUP
	[ -n "$UPID" ] && kill -KILL "$UPID" 2>/dev/null && wait "$UPID" 2>/dev/null
	# processes still in the root (none once its PID namespace ended)
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		case "$(readlink "/proc/$pid/root" 2>/dev/null)" in
		"$ROOT" | "$ROOT"/*) kill -KILL "$pid" 2>/dev/null ;;
		esac
	done
	# mounts live only in the run's mount namespace; should one show here,
	# unmount it, and never delete through one (it could be the host's /dev)
	for m in $(mounts_under "$ROOT" | sort -r); do umount -l "$m" 2>/dev/null || true; done
	if [ -n "$(mounts_under "$ROOT")" ]; then
		say "mounts left under $ROOT; not removing $WORK"
		rc=1
	else
		rm -rf --one-file-system "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mkdir "$ROOT"
tar -C "$ROOT" --numeric-owner -xpf "$BASE"
[ "$(stat -c %a "$ROOT/root")" = 700 ] || die "the base root's /root is not mode 0700"
mkdir -p "$ROOT/sys/fs/bpf" "$ROOT/root/aibl"
# machine configuration, as sbuild's and pbuilder's chroots get it
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
[ -r /etc/hosts ] && cp -L /etc/hosts "$ROOT/etc/hosts"
# no service starts in the root (haproxy's postinst would start one)
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

# the checkout, as a fresh clone would have it (plus uncommitted work)
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$SRC" ls-files -z -co --exclude-standard |
		(cd "$SRC" && while IFS= read -r -d '' f; do
			[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
		done) |
		tar -C "$SRC" --null -T - --owner=0 --group=0 --numeric-owner -cf - |
		tar -C "$ROOT/root/aibl" -xpf -
else
	tar -C "$SRC" --exclude='./build*' --owner=0 --group=0 --numeric-owner -cf - . |
		tar -C "$ROOT/root/aibl" -xpf -
fi

say "running in a fresh $SUITE root ($ROOT): $*"
# In the background, so that the traps above run while it does; a
# background job would read /dev/null and ignore SIGINT, so it gets this
# script's stdin and the default signal actions back. Should this script
# die, even by SIGKILL, unshare gets SIGKILL (--pdeathsig), and with it the
# root's PID 1 (--kill-child), and with that everything in the root.
exec 8<&0
env --default-signal setpriv --pdeathsig KILL \
	unshare --mount --propagation private --pid --fork --kill-child \
	"$BASH" "$SELF" --inside "$ROOT" "$ARCHIVES" "$@" <&8 8<&- 9>&- &
UPID=$!
set +e
wait "$UPID"
rc=$?
set -e
UPID=
exit $rc
