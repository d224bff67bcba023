/* Private to device/: a persistent pthread pool for CPU launches. A launch splits n work items into contiguous
 * chunks, one per participating thread; the calling thread takes the first chunk. Workers spin briefly between
 * launches (a decode step issues hundreds of small kernels back to back) and then sleep on a futex. */
#ifndef KN_POOL_H
#define KN_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct kn_pool kn_pool;
typedef void (*kn_pool_fn)(void *ctx, int64_t start, int64_t end);

/* nthreads counts the caller: nthreads - 1 workers are started. NULL on failure (err says why). */
kn_pool *kn_pool_new(int nthreads, char *err, size_t errlen);
void kn_pool_free(kn_pool *p);
int kn_pool_threads(const kn_pool *p);
/* Run fn over [0, n) split into contiguous chunks; returns when every chunk is done. Callers are serialised. */
void kn_pool_run(kn_pool *p, kn_pool_fn fn, void *ctx, int64_t n);

#endif
