/* The CPU thread pool. A launch is published with a sequence counter (odd while the caller writes the job, even once
 * it is readable), so a worker that wakes late can never run half of an old job and half of a new one. Chunks are
 * claimed through a word that carries the job's sequence number, so a thread that is not scheduled in time simply
 * has its chunk taken by the others (the caller included) instead of stalling the launch. Workers and the waiting
 * caller spin for a short time, then sleep on a futex: back-to-back launches never pay a syscall, an idle process
 * burns no CPU. */
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHUNKS_PER_THREAD 4
#define SPIN_NS 50000 /* how long an idle thread keeps polling before it sleeps */

typedef struct {
  kn_pool *pool;
  int idx;
} worker_arg;

struct kn_pool {
  int nthreads;
  pthread_t *th;
  worker_arg *args;
  int started;
  pthread_mutex_t lock; /* one launch at a time */
  _Atomic uint32_t gen;
  _Atomic int sleepers, caller_waiting, stop;
  _Atomic uint64_t claim; /* (gen << 32) | next unclaimed chunk */
  _Atomic uint32_t done;  /* chunks finished */
  /* the job; written only while gen is odd */
  _Atomic(kn_pool_fn) fn;
  _Atomic(void *) ctx;
  _Atomic int64_t n, chunk;
  _Atomic int nparts;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void futex_wake(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spinning before sleeping: true once spin iteration i is past the SPIN_NS budget (the clock is read every 64). */
static bool spin_over(int i, int64_t *t0) {
  if ((i & 63) != 63) return false;
  int64_t t = now_ns();
  if (!*t0) *t0 = t;
  return t - *t0 > SPIN_NS;
}

/* Wait until gen holds a published value other than seen; returns it. */
static uint32_t wait_job(kn_pool *p, uint32_t seen) {
  int64_t t0 = 0;
  for (int i = 0;; i++) {
    uint32_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen && !(g & 1)) return g;
    if (spin_over(i, &t0)) break;
    cpu_relax();
  }
  for (;;) {
    atomic_fetch_add(&p->sleepers, 1);
    uint32_t g = atomic_load(&p->gen);
    if (g == seen || (g & 1)) futex_wait(&p->gen, g);
    atomic_fetch_sub(&p->sleepers, 1);
    g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen && !(g & 1)) return g;
  }
}

/* Claim and run chunks of job g until none is left; returns how many this thread ran. */
static int run_chunks(kn_pool *p, uint32_t g, kn_pool_fn fn, void *ctx, int64_t n, int64_t chunk, int nparts) {
  int ran = 0;
  for (;;) {
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_relaxed);
    if ((uint32_t)(c >> 32) != g || (int64_t)(uint32_t)c >= nparts) return ran;
    if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1)) continue;
    int64_t s = (int64_t)(uint32_t)c * chunk, e = s + chunk < n ? s + chunk : n;
    if (s < e) fn(ctx, s, e);
    ran++;
    if (atomic_fetch_add(&p->done, 1) + 1 == (uint32_t)nparts && atomic_load(&p->caller_waiting))
      futex_wake(&p->done, 1);
  }
}

static void *worker(void *arg) {
  worker_arg *a = arg;
  kn_pool *p = a->pool;
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = wait_job(p, seen);
    kn_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
    int64_t n = atomic_load_explicit(&p->n, memory_order_relaxed);
    int64_t chunk = atomic_load_explicit(&p->chunk, memory_order_relaxed);
    int nparts = atomic_load_explicit(&p->nparts, memory_order_relaxed);
    int stop = atomic_load_explicit(&p->stop, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&p->gen, memory_order_relaxed) != g) continue; /* rewritten while we read: retry */
    seen = g;
    if (stop) return NULL;
    if (a->idx < nparts) run_chunks(p, g, fn, ctx, n, chunk, nparts);
  }
}

static uint32_t publish(kn_pool *p, kn_pool_fn fn, void *ctx, int64_t n, int64_t chunk, int nparts, int stop) {
  uint32_t g = atomic_load_explicit(&p->gen, memory_order_relaxed);
  atomic_store_explicit(&p->gen, g + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
  atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&p->n, n, memory_order_relaxed);
  atomic_store_explicit(&p->chunk, chunk, memory_order_relaxed);
  atomic_store_explicit(&p->nparts, nparts, memory_order_relaxed);
  atomic_store_explicit(&p->stop, stop, memory_order_relaxed);
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  atomic_store_explicit(&p->claim, (uint64_t)(g + 2) << 32, memory_order_relaxed);
  atomic_store(&p->gen, g + 2); /* seq_cst: ordered before the sleepers check below */
  if (atomic_load(&p->sleepers) > 0) futex_wake(&p->gen, INT_MAX);
  return g + 2;
}

static void wait_done(kn_pool *p, uint32_t nparts) {
  int64_t t0 = 0;
  for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) != nparts; i++) {
    if (spin_over(i, &t0)) break;
    cpu_relax();
  }
  for (;;) {
    atomic_store(&p->caller_waiting, 1);
    uint32_t v = atomic_load(&p->done);
    if (v == nparts) break;
    futex_wait(&p->done, v);
  }
  atomic_store(&p->caller_waiting, 0);
  atomic_thread_fence(memory_order_acquire); /* the workers' results are visible to the caller */
}

void kn_pool_run(kn_pool *p, kn_pool_fn fn, void *ctx, int64_t n) {
  if (n <= 0) return;
  if (!p || p->nthreads <= 1 || n == 1) {
    fn(ctx, 0, n);
    return;
  }
  /* several chunks per thread: a thread the OS runs late, or a core slowed by other work, leaves its unclaimed
   * chunks to the others instead of holding up the launch (one chunk per thread waited for the slowest) */
  int64_t parts = n < (int64_t)p->nthreads * CHUNKS_PER_THREAD ? n : (int64_t)p->nthreads * CHUNKS_PER_THREAD;
  int64_t chunk = (n + parts - 1) / parts;
  parts = (n + chunk - 1) / chunk; /* no empty trailing chunk */
  pthread_mutex_lock(&p->lock);
  uint32_t g = publish(p, fn, ctx, n, chunk, (int)parts, 0);
  run_chunks(p, g, fn, ctx, n, chunk, (int)parts);
  wait_done(p, (uint32_t)parts);
  pthread_mutex_unlock(&p->lock);
}

int kn_pool_threads(const kn_pool *p) { return p ? p->nthreads : 1; }

kn_pool *kn_pool_new(int nthreads, char *err, size_t errlen) {
  if (nthreads < 1) nthreads = 1;
  kn_pool *p = calloc(1, sizeof *p);
  if (!p) {
    snprintf(err, errlen, "out of memory creating a %d-thread pool", nthreads);
    return NULL;
  }
  p->nthreads = nthreads;
  pthread_mutex_init(&p->lock, NULL);
  if (nthreads == 1) return p;
  p->th = calloc((size_t)nthreads, sizeof *p->th);
  p->args = calloc((size_t)nthreads, sizeof *p->args);
  if (!p->th || !p->args) {
    snprintf(err, errlen, "out of memory creating a %d-thread pool", nthreads);
    kn_pool_free(p);
    return NULL;
  }
  for (int i = 1; i < nthreads; i++) {
    p->args[i] = (worker_arg){p, i};
    int rc = pthread_create(&p->th[i], NULL, worker, &p->args[i]);
    if (rc) {
      snprintf(err, errlen, "starting pool thread %d of %d: %s", i, nthreads, strerror(rc));
      kn_pool_free(p);
      return NULL;
    }
    p->started = i;
  }
  return p;
}

void kn_pool_free(kn_pool *p) {
  if (!p) return;
  if (p->started) {
    pthread_mutex_lock(&p->lock);
    publish(p, NULL, NULL, 0, 0, 0, 1);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i <= p->started; i++) pthread_join(p->th[i], NULL);
  }
  pthread_mutex_destroy(&p->lock);
  free(p->th);
  free(p->args);
  free(p);
}
