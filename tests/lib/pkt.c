// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include "pkt.h"

int pkt__pcap_write(const char *path, const void *const *frames, const size_t *lens, int n)
{
	struct {
		uint32_t magic;
		uint16_t major, minor;
		int32_t zone;
		uint32_t sigfigs, snaplen, linktype;
	} gh = {0xa1b2c3d4, 2, 4, 0, 0, 65535, 1};
	struct stat st;
	struct timeval tv;
	FILE *f;
	int err = 0;

	f = fopen(path, "ab");
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) == 0 && st.st_size == 0)
		fwrite(&gh, sizeof(gh), 1, f);
	gettimeofday(&tv, NULL);
	for (int i = 0; i < n; i++) {
		uint32_t rh[4] = {(uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec + i, (uint32_t)lens[i],
				  (uint32_t)lens[i]};

		fwrite(rh, sizeof(rh), 1, f);
		fwrite(frames[i], 1, lens[i], f);
	}
	if (fclose(f))
		err = -errno;
	return err;
}

void pkt__diff(const char *what, const uint8_t *exp, size_t exp_len, const uint8_t *got,
	       size_t got_len)
{
	size_t i, n = exp_len < got_len ? exp_len : got_len;

	for (i = 0; i < n && exp[i] == got[i]; i++)
		;
	printf("  %s: expected %zu bytes, got %zu; first difference at byte %zu", what, exp_len,
	       got_len, i);
	if (i < n)
		printf(" (expected %02x, got %02x)", exp[i], got[i]);
	printf("\n");
}
