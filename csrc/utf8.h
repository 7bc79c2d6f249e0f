/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The UTF-8 check the transcoder runs on every string before writing it as a
 * msgpack str, which msgspec would otherwise reject when decoding the batch.
 */
#ifndef EBPFSENSOR_UTF8_H
#define EBPFSENSOR_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* strict UTF-8 (no overlongs, no surrogates), as Python's decoder wants */
static inline int es_utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		uint64_t w;

		/* paths and argv are mostly ASCII: eight bytes at a time */
		if (i + 8 <= n) {
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80)
				return 0;
			i += 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			if (i + 2 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80)
				return 0;
			if (c == 0xe0 && s[i + 1] < 0xa0)
				return 0;
			if (c == 0xed && s[i + 1] >= 0xa0)
				return 0;
			i += 3;
		} else if (c >= 0xf0 && c <= 0xf4) {
			if (i + 3 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 ||
			    (s[i + 3] & 0xc0) != 0x80)
				return 0;
			if (c == 0xf0 && s[i + 1] < 0x90)
				return 0;
			if (c == 0xf4 && s[i + 1] >= 0x90)
				return 0;
			i += 4;
		} else {
			return 0;
		}
	}
	return 1;
}

#endif /* EBPFSENSOR_UTF8_H */
