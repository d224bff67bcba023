/* The machine's memory read bandwidth, measured the way decode reads weights: several threads each streaming
 * through their share of a buffer far larger than the caches. It runs in a forked child so that its buffer never
 * counts in the caller's peak resident memory. */
#include "membw.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_BYTES ((size_t)512 << 20)
#define PROBE_REPS 5

typedef struct {
  const uint64_t *p;
  size_t n;
  pthread_barrier_t *start, *done;
  uint64_t sink;
} slice;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sum of the words in four independent 16-byte accumulators held in registers (a sum kept in an array lived on the
 * stack: a load, an add and a store per 16 bytes, a store-to-load chain that capped one thread near 50 GB/s, under
 * what a GEMV streams), so the loop is a stream of loads that DRAM, not the core, limits. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));
static uint64_t stream(const uint64_t *p, size_t n) {
  const u64x2 *v = (const u64x2 *)p; /* 64-byte aligned: the buffer is mapped, the slices multiples of 8 words */
  u64x2 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 4 <= n / 2; i += 4) a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];
  u64x2 a = a0 ^ a1 ^ a2 ^ a3;
  return a[0] ^ a[1];
}

static void *worker(void *arg) {
  slice *s = arg;
  for (int r = 0; r < PROBE_REPS; r++) {
    pthread_barrier_wait(s->start);
    s->sink += stream(s->p, s->n);
    pthread_barrier_wait(s->done);
  }
  return NULL;
}

/* In the child: writes the best of PROBE_REPS passes over the buffer, in bytes per second (0 on failure), to fd and
 * exits (without joining: the helper threads are parked in a barrier). */
static void probe(int threads, int fd) {
  double best = 0;
  uint64_t *buf = mmap(NULL, PROBE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  slice sl[256];
  pthread_t th[256];
  pthread_barrier_t start, done;
  int started = 1;
  size_t per = PROBE_BYTES / 8 / (size_t)threads / 8 * 8;
  if (buf != MAP_FAILED) {
    memset(buf, 1, PROBE_BYTES); /* fault every page in: untouched pages all map the one zero page */
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    pthread_barrier_init(&done, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) sl[t] = (slice){buf + (size_t)t * per, per, &start, &done, 0};
    for (int t = 1; t < threads; t++)
      if (pthread_create(&th[t], NULL, worker, &sl[t]) == 0) started++;
  }
  if (buf != MAP_FAILED && started == threads)
    for (int r = 0; r < PROBE_REPS; r++) {
      pthread_barrier_wait(&start);
      double t0 = now();
      sl[0].sink += stream(sl[0].p, sl[0].n);
      pthread_barrier_wait(&done);
      double bw = (double)per * 8 * threads / (now() - t0);
      if (bw > best) best = bw;
    }
  volatile uint64_t sink = 0; /* the sums are used, so the loads are not optimized away */
  for (int t = 0; buf != MAP_FAILED && t < threads; t++) sink ^= sl[t].sink;
  _exit(write(fd, &best, sizeof best) == (ssize_t)sizeof best ? 0 : 1);
}

double kn_read_bandwidth(int threads) {
  int fd[2];
  if (pipe(fd)) return 0;
  pid_t pid = fork();
  if (pid < 0) return close(fd[0]), close(fd[1]), 0;
  if (pid == 0) close(fd[0]), probe(threads, fd[1]);
  close(fd[1]);
  double bw = 0;
  if (read(fd[0], &bw, sizeof bw) != (ssize_t)sizeof bw) bw = 0;
  close(fd[0]);
  waitpid(pid, NULL, 0);
  return bw;
}
