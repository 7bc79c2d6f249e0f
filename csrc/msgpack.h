/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The msgpack writers the transcoder needs: big-endian integers, the smallest
 * encoding of an integer, and length headers. Each writes at p, which the
 * caller has made room for, and returns the end of what it wrote. Static
 * inline so that the per-record loop has no calls.
 */
#ifndef EBPFSENSOR_MSGPACK_H
#define EBPFSENSOR_MSGPACK_H

#include <stdint.h>
#include <string.h>

static inline uint8_t *es_put_u8(uint8_t *p, uint8_t v)
{
	*p++ = v;
	return p;
}

static inline uint8_t *es_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
	return p + 2;
}

static inline uint8_t *es_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
	return p + 4;
}

static inline uint8_t *es_put_be64(uint8_t *p, uint64_t v)
{
	p = es_put_be32(p, (uint32_t)(v >> 32));
	return es_put_be32(p, (uint32_t)v);
}

static inline uint8_t *es_put_uint(uint8_t *p, uint64_t v)
{
	if (v < 128)
		return es_put_u8(p, (uint8_t)v);
	if (v <= 0xff)
		return es_put_u8(es_put_u8(p, 0xcc), (uint8_t)v);
	if (v <= 0xffff)
		return es_put_be16(es_put_u8(p, 0xcd), (uint16_t)v);
	if (v <= 0xffffffffu)
		return es_put_be32(es_put_u8(p, 0xce), (uint32_t)v);
	return es_put_be64(es_put_u8(p, 0xcf), v);
}

static inline uint8_t *es_put_int(uint8_t *p, int64_t v)
{
	if (v >= 0)
		return es_put_uint(p, (uint64_t)v);
	if (v >= -32)
		return es_put_u8(p, (uint8_t)v);
	if (v >= -128)
		return es_put_u8(es_put_u8(p, 0xd0), (uint8_t)v);
	if (v >= -32768)
		return es_put_be16(es_put_u8(p, 0xd1), (uint16_t)v);
	if (v >= -2147483648LL)
		return es_put_be32(es_put_u8(p, 0xd2), (uint32_t)v);
	return es_put_be64(es_put_u8(p, 0xd3), (uint64_t)v);
}

/* a msgpack length header: fix is the fix-size marker (fixstr holds up to
 * 31, fixarray and fixmap up to 15), c8/c16/c32 the sized markers */
static inline uint8_t *es_put_strhdr(uint8_t *p, uint32_t n, uint8_t fix, uint8_t c8, uint8_t c16, uint8_t c32)
{
	if (fix && n < (fix == 0xa0 ? 32u : 16u))
		return es_put_u8(p, fix | n);
	if (c8 && n <= 0xff)
		return es_put_u8(es_put_u8(p, c8), (uint8_t)n);
	if (n <= 0xffff)
		return es_put_be16(es_put_u8(p, c16), (uint16_t)n);
	return es_put_be32(es_put_u8(p, c32), n);
}

static inline uint8_t *es_put_str(uint8_t *p, const char *s, uint32_t n)
{
	p = es_put_strhdr(p, n, 0xa0, 0xd9, 0xda, 0xdb);
	memcpy(p, s, n);
	return p + n;
}

#endif /* EBPFSENSOR_MSGPACK_H */
