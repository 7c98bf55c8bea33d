// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: config__parse(), the function config__load() (aibld
 * start-up, --check and SIGHUP reload) hands the file's text to. A bad
 * config must be refused with "NAME:LINE: problem" and nothing to free; a
 * good one must only reference nodes that exist.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CFG_ERR_LEN];
	struct config cfg;
	char *text;
	int ret;

	/* config__load() hands over a NUL-terminated buffer; do the same */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(err, 'x', sizeof(err));
	ret = config__parse(&cfg, "fuzz.yaml", text, size, err, sizeof(err));
	if (ret) {
		if (ret == -ENOMEM)
			goto out;
		if (!memchr(err, '\0', sizeof(err)) || strncmp(err, "fuzz.yaml:", 10) != 0)
			abort(); /* a refusal names the file and line */
		if (cfg.nodes || cfg.services)
			abort(); /* "on failure cfg holds nothing to free" */
		goto out;
	}
	for (int s = 0; s < cfg.nservices; s++) {
		const struct cfg_service *svc = &cfg.services[s];

		if (svc->nnodes < 0 || svc->nnodes > cfg.nnodes)
			abort();
		for (int i = 0; i < svc->nnodes; i++)
			if (svc->nodes[i] < 0 || svc->nodes[i] >= cfg.nnodes)
				abort();
	}
	for (int n = 0; n < cfg.nnodes; n++)
		if (config__node_index(&cfg, cfg.nodes[n].name) != n)
			abort();
	config__free(&cfg);
out:
	free(text);
	return 0;
}
