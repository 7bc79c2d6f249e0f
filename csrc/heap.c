/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading the objects parses the kernel's BTF (megabytes) once per object
 * and frees it; glibc keeps most of what was freed mapped. A sensor lives
 * for the machine's uptime: give those pages back once loading is done.
 */
#include <malloc.h>

#include "consumer.h"

void es_release_heap(void)
{
	malloc_trim(0);
}
