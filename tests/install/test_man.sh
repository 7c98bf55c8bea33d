#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The man pages cannot drift from the code: every configuration key of the
# docs/aibld.md's reference tables (and each section) is an entry of aibld.yaml(5),
# every command of `aiblctl help` and every option of aiblctl, aibld and
# aibl-agent --help is in its page, and each page renders with man -l
# without a troff warning.
. "$(dirname "$0")/../lib/lib.sh"

MAN=$AIBL_BUILD/man
if ! make -C "$AIBL_ROOT" BUILD="$AIBL_BUILD" man >/tmp/aibl-man.$$.log 2>&1; then
	sed 's/^/  make: /' /tmp/aibl-man.$$.log
	rm -f /tmp/aibl-man.$$.log
	t_fail build "make man failed"
	t_done
fi
rm -f /tmp/aibl-man.$$.log
if ! command -v man >/dev/null; then
	t_skip all "needs man (package man-db)"
	t_done
fi

for p in aibld.8 aibl-agent.8 aiblctl.8 aibld.yaml.5; do
	err=$(MANWIDTH=80 man -l "$MAN/$p" 2>&1 >/dev/null)
	if [ $? -eq 0 ] && [ -z "$err" ] &&
		MANWIDTH=80 man -l "$MAN/$p" 2>/dev/null | grep -q '^NAME'; then
		t_pass "render_$p"
	else
		t_fail "render_$p" "$(echo $err)"
	fi
done

# wide, so that no word is hyphenated or wrapped
text() { MANWIDTH=1000 man -l "$MAN/$1" 2>/dev/null; }

# keys: first column of the tables under "### Configuration reference";
# sections: the `name:` lines introducing each table
ref=$(awk '/^### Configuration reference/ {f = 1; next} f && /^### / {f = 0} f' "$AIBL_ROOT/docs/aibld.md")
keys=$(sed -n 's/^| `\([a-z0-9_]*\)` |.*/\1/p' <<<"$ref" | sort -u)
sections=$(sed -n 's/^`\([a-z_]*\):`.*/\1/p' <<<"$ref")
page=$(text aibld.yaml.5)
missing=
for k in $keys; do
	grep -qE "^ +$k( |$)" <<<"$page" || missing+=" $k"
done
for s in $sections; do
	grep -qxE " +$s" <<<"$page" || missing+=" $s:"
done
if [ "$(wc -w <<<"$keys")" -lt 50 ] || [ "$(wc -w <<<"$sections")" -lt 8 ]; then
	t_fail config_keys "found only $(wc -w <<<"$keys") keys, $(wc -w <<<"$sections") sections in docs/aibld.md"
elif [ -n "$missing" ]; then
	t_fail config_keys "not in aibld.yaml(5):$missing"
else
	t_pass config_keys
fi

# defaults: an entry of aibl.yaml(5) that states one states the one of
# docs/aibld.md's table (backticks and blanks aside)
bad=$(python3 - "$AIBL_ROOT/docs/aibld.md" "$AIBL_ROOT/docs/aibld.yaml.5.rst" <<'PY'
import re, sys
ref = open(sys.argv[1], encoding='utf-8').read().split('### Configuration reference', 1)[1]
ref = re.split(r'\n### ', ref, 1)[0]
md = {}
for l in ref.splitlines():
    m = re.match(r'^\| `([a-z0-9_]+)` \| (.*?) \|', l)
    if m:
        md.setdefault(m.group(1), set()).add(re.sub(r'[`\s]', '', m.group(2)))
n = 0
for m in re.finditer(r'^\*\*([a-z0-9_]+)\*\* \(default (.*)\)$', open(sys.argv[2], encoding='utf-8').read(), re.M):
    n += 1
    if re.sub(r'[`\s]', '', m.group(2)) not in md.get(m.group(1), set()):
        print(f'{m.group(1)}: "{m.group(2)}" in the page, {sorted(md.get(m.group(1), []))} in aibld.md')
if n < 40:
    print(f'only {n} defaults found in the page')
PY
)
if [ -n "$bad" ]; then t_fail config_defaults "$(echo $bad)"; else t_pass config_defaults; fi

# commands: the OBJECT VERB lines of `aiblctl help` (the command, then two
# or more spaces, then what it does), up to the first word that is not a
# lower-case name (drain|undrain: both)
help=$("$AIBL_BUILD/aiblctl" help 2>&1)
cmds=$(awk '/^OBJECT VERB:/ {f = 1; next} f && /^$/ {exit}
	f { sub(/^ +/, ""); sub(/  .*/, ""); n = split($0, w, " "); c = ""
	    for (i = 1; i <= n && w[i] ~ /^[a-z|]+$/; i++) c = c (c ? " " : "") w[i]; print c }' <<<"$help")
page=$(text aiblctl.8)
missing= n=0
while read -r obj verbs; do
	[ -n "$obj" ] || continue
	for v in ${verbs//|/ }; do
		n=$((n + 1))
		grep -qF "$obj $v" <<<"$page" || missing+=" '$obj $v'"
	done
	if [ -z "$verbs" ]; then
		n=$((n + 1))
		grep -qE "^ +$obj( |$)" <<<"$page" || missing+=" '$obj'"
	fi
done <<<"$cmds"
if [ $n -lt 10 ]; then
	t_fail aiblctl_commands "found only $n commands in aiblctl help"
elif [ -n "$missing" ]; then
	t_fail aiblctl_commands "not in aiblctl(8):$missing"
else
	t_pass aiblctl_commands
fi

# options: every --long option a program's help names is in its page
for prog in aiblctl aibld aibl-agent; do
	case $prog in
	aiblctl) h=$help ;;
	*) h=$("$AIBL_BUILD/$prog" --help 2>&1) ;;
	esac
	page=$(text "$prog.8")
	missing=
	for o in $(grep -oE -- '--[a-z][a-z-]+' <<<"$h" | sort -u); do
		grep -qF -- "$o" <<<"$page" || missing+=" $o"
	done
	if [ -z "$missing" ]; then t_pass "options_$prog"; else t_fail "options_$prog" "not in $prog(8):$missing"; fi
done
t_done
