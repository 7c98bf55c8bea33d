// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: promtext__parse(), the parser every model server's
 * /metrics page goes through in the agent. Besides ASan/UBSan findings it
 * checks the parser's promises: a failure always says why, and a page it
 * accepts is internally consistent (every string, label and family index
 * points into the page), so the accessors the agent uses cannot wander.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../user/aibl-agent/promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prom_page page;
	char err[256];
	double sum;
	int ret;

	memset(err, 'x', sizeof(err));
	ret = promtext__parse(&page, (const char *)data, size, err, sizeof(err));
	if (ret) {
		if (ret != -EINVAL && ret != -E2BIG && ret != -ENOMEM)
			abort(); /* undocumented error code */
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* a refusal must say why */
		promtext__free(&page);
		return 0;
	}
	if (page.nsamples > PROM_MAX_SAMPLES)
		abort();
	for (size_t i = 0; i < page.nfamilies; i++) {
		const struct prom_family *f = &page.families[i];

		if (!f->name || promtext__family(&page, f->name) != f)
			abort();
	}
	for (size_t i = 0; i < page.nsamples; i++) {
		const struct prom_sample *s = &page.samples[i];

		if (s->family < -1 || s->family >= (int)page.nfamilies)
			abort();
		if (s->nlabels > PROM_MAX_LABELS || s->label_off + s->nlabels > page.nlabels)
			abort();
		for (unsigned int l = 0; l < s->nlabels; l++) {
			const struct prom_label *lb = &page.labels[s->label_off + l];

			if (prom_sample__label(&page, s, lb->name) == NULL)
				abort();
			(void)strlen(lb->value);
		}
		ret = promtext__sum(&page, s->name, &sum); /* NaN samples are skipped */
		if (ret < 0 || (size_t)ret > page.nsamples)
			abort();
		if (s->nlabels)
			promtext__sum_where(&page, s->name, page.labels[s->label_off].name,
					    page.labels[s->label_off].value, &sum);
	}
	promtext__free(&page);
	return 0;
}
