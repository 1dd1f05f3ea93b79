/*
 * le.h - fixed-width integers in on-disk and on-wire formats: stored little-endian (the byte
 * order of every platform kprobe runs on), read and written through memcpy so alignment never
 * matters. One definition for the frame, spool, WAL and recording formats.
 */
#ifndef KP_LE_H
#define KP_LE_H

#include <stdint.h>
#include <string.h>

static inline void le_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}
static inline void le_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static inline uint16_t le_get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static inline uint32_t le_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint64_t le_get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

#endif
