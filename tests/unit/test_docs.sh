#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The documentation's links hold: every relative link in README.md and
# docs/*.md names a file of the tree and, with #anchor, a heading there
# (GitHub's anchor rules), so moving a section cannot leave a dead link.
. "$(dirname "$0")/../lib/lib.sh"

cd "$AIBL_ROOT" || exit 1
out=$(python3 - README.md docs/*.md <<'PY'
import os, re, sys

def anchors(path):
    out, fence = set(), False
    for l in open(path, encoding='utf-8'):
        if l.startswith('```'):
            fence = not fence
        m = None if fence else re.match(r'#{1,6} (.*)', l)
        if m:
            h = re.sub(r'[^\w\- ]', '', m.group(1).strip().lower())
            out.add(h.replace(' ', '-'))
    return out

bad = 0
for md in sys.argv[1:]:
    text = open(md, encoding='utf-8').read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue  # http:, https:, mailto:
        path, _, frag = target.partition('#')
        dest = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
        if not os.path.exists(dest):
            print(f'{md}: link to missing {target}')
            bad += 1
        elif frag and dest.endswith('.md') and frag not in anchors(dest):
            print(f'{md}: no heading for {target}')
            bad += 1
sys.exit(1 if bad else 0)
PY
)
rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/  /'
if [ $rc -eq 0 ]; then t_pass links; else t_fail links "dead links (above)"; fi
t_done
