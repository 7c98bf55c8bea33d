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

#include <stddef.h>
#include "config.h"

/* the include file's text for these VIPs (addresses as text); malloc'd */
char *bgp__render(const char *const *vips, int n);
/* write text to cfg->include (atomically) and run birdc configure. 0 or -errno */
int bgp__apply(const struct cfg_bgp *cfg, const char *text);
/* no VIP announced: the include emptied and birdc told. 0 or -errno */
int bgp__withdraw(const struct cfg_bgp *cfg);

#endif
