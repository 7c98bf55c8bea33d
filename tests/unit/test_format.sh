#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The tree stays as .clang-format formats it (kernel style, as
# libbpf-bootstrap and xdp-tools use it): every C source and header of the
# source folders (found with find: a clean root has no .git to ask). A file
# that fails shows the lines to fix; `make format` rewrites them in place.
. "$(dirname "$0")/../lib/lib.sh"

cd "$AIBL_ROOT" || exit 1
if ! command -v clang-format >/dev/null; then
	t_skip clang_format "clang-format missing (scripts/deps.sh installs it)"
	t_done
fi
bad=0
while read -r f; do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "  $f: clang-format would change it:"
		clang-format "$f" | diff -u "$f" - | head -20 | sed 's/^/    /'
		bad=$((bad + 1))
	fi
done < <(find bpf include user lab tests -name '*.[ch]' -not -path 'tests/data/*' | sort)
if [ $bad -eq 0 ]; then t_pass clang_format; else t_fail clang_format "$bad file(s) not formatted (make format)"; fi
t_done
