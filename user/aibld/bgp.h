/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VIP announcement through BIRD 2: aibld writes the routes it announces
 * into an include file (one `protocol static` per family, blackhole routes
 * that the BGP protocols of bird.conf export) and asks BIRD to re-read its
 * configuration (birdc configure): BIRD reconfigures a static protocol in
 * place, so the BGP sessions (and their BFD) stay up while routes come and
 * go. Withdrawing everything is the same with no routes.
 */
#ifndef AIBLD_BGP_H
#define AIBLD_BGP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"

/* the include file's text for these VIPs (addresses as text); malloc'd */
char *bgp__render(const char *const *vips, int n);
/* write text to cfg->include (atomically) and run birdc configure. 0 or -errno */
int bgp__apply(const struct cfg_bgp *cfg, const char *text);
/* the same in two steps, for a caller that must not wait: write the file and
 * start birdc (*pid); then, at started_ms (clock_mono_ms) and later, reap it:
 * 1 still running (only without wait), 0 it succeeded, -errno it failed or
 * was killed at its timeout (-ETIMEDOUT) */
int bgp__start(const struct cfg_bgp *cfg, const char *text, pid_t *pid);
int bgp__reap(const struct cfg_bgp *cfg, pid_t pid, uint64_t started_ms, bool wait);
/* no VIP announced: the include emptied and birdc told. 0 or -errno */
int bgp__withdraw(const struct cfg_bgp *cfg);

#endif
