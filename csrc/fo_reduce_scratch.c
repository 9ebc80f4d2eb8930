/* fo_reduce_scratch.c — the per-thread scratch of the reduce-then-update driver (fo_reduce.h): FO_REDUCE_FUSE_BYTES
 * bytes per thread, allocated on that thread's first use and freed when the thread exits, so that a kernel may keep
 * a small tensor's pass-1 values (LAMB's update direction u) for its pass 2 while both run back to back on one
 * thread. NULL if it cannot be had (no threads API, out of memory): the kernel then recomputes them, the same bits. */
#include "fastopt.h"

#include <stdlib.h>

#include "fo_reduce.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_ok = 0;

static void scratch_init(void) { scratch_ok = pthread_key_create(&scratch_key, free) == 0; }

void *fo_reduce_scratch(void)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_ok)
        return NULL;
    void *p = pthread_getspecific(scratch_key);
    if (p == NULL) {
        p = malloc(FO_REDUCE_FUSE_BYTES);
        if (p != NULL && pthread_setspecific(scratch_key, p) != 0) {
            free(p);
            p = NULL;
        }
    }
    return p;
}
#else
void *fo_reduce_scratch(void) { return NULL; }
#endif
