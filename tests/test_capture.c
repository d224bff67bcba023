/* Captured steps (graph/capture.c): a graph built once per key is replayed with new input bytes and variable values
 * and matches plain C every time; builds happen once per key; captures not marked keep are evicted least recently
 * used first; a failing build, an oversized input and an out-of-range value are errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "graph/graph.h"

enum { N = 4 * 7 };
static int builds;
static float table[N];

/* key k: y[i] = x[i] * (offset + k) + table[offset + i], x float32 [k], offset a variable */
static int build(void *user, int64_t key, kn_capture_io *io) {
  kn_t *tab = user;
  builds++;
  if (key == 99) return kn_fail("no graph for key 99"), -1;
  int k = (int)key;
  kn_var *off = kn_var_new("offset", 0, N - k);
  kn_t x = kn_empty(KN_F32, 1, (int64_t[]){k});
  kn_t y = kn_add(kn_mul(x, kn_adds(kn_cast(kn_var_tensor(off, KN_I32), KN_F32), (double)k)), kn_shrink_var(*tab, 0, off, k));
  io->inputs[0] = x, io->n_inputs = 1;
  io->outputs[0] = y, io->n_outputs = 1;
  io->vars[0] = off, io->n_vars = 1;
  io->keep = k == 1;
  return 0;
}

static bool replay(kn_capture *c, int k, int off) {
  float x[N], y[N];
  for (int i = 0; i < k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
  size_t in = (size_t)k * 4, out = (size_t)k * 4;
  int64_t v = off;
  char err[256];
  if (kn_capture_run(c, k, (const void *const[]){x}, &in, &v, (void *const[]){y}, &out, err, sizeof err))
    return printf("  %s\n", err), false;
  for (int i = 0; i < k; i++)
    if (fabsf(y[i] - (x[i] * (float)(off + k) + table[off + i])) > 1e-5f) return false;
  return true;
}

int main(void) {
  char err[256];
  kn_device *d = kn_device_open("CPU", err, sizeof err);
  if (!d) return printf("no CPU device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(3);
  for (int i = 0; i < N; i++) table[i] = (float)rand() / RAND_MAX;
  kn_t tab = kn_from_host(KN_F32, 1, (int64_t[]){N}, table);
  kn_capture *cap = kn_capture_new(d, build, &tab, 2);
  bool ok = true;
  for (int r = 0; r < 5; r++) ok &= replay(cap, 3, rand() % (N - 3 + 1)) && replay(cap, 1, rand() % N);
  check(ok && builds == 2, "replays at new offsets match plain C; two keys built once each (%d builds)", builds);
  ok = replay(cap, 5, 2) && replay(cap, 7, 0); /* keys 3, 5, 7 not kept: 3 (least recent) is evicted */
  check(ok && kn_capture_count(cap) == 3, "two captures besides the kept one stay (%d)", kn_capture_count(cap));
  int b0 = builds;
  ok = replay(cap, 1, 9) && replay(cap, 7, 1) && builds == b0;
  check(ok, "the kept decode-like key and a recent key replay without a build");
  ok = replay(cap, 3, 4) && builds == b0 + 1;
  check(ok, "the evicted key is built again when used");
  float x[N], y[N];
  size_t in = 3 * 4, out = 3 * 4, big = 64 * 4;
  int64_t v = N; /* past offset's range for key 3 */
  check(kn_capture_run(cap, 3, (const void *const[]){x}, &in, &v, (void *const[]){y}, &out, err, sizeof err) == -1 &&
            strstr(err, "offset"),
        "an out-of-range value is an error naming the variable (%s)", err);
  v = 0;
  check(kn_capture_run(cap, 3, (const void *const[]){x}, &big, &v, (void *const[]){y}, &out, err, sizeof err) == -1,
        "an input larger than its buffer is refused");
  check(kn_capture_prepare(cap, 99, err, sizeof err) == -1 && strstr(err, "key 99"),
        "a failing build is an error with its message (%s)", err);
  kn_capture_free(cap);
  kn_ctx_free(c);
  kn_device_close(d);
  return check_summary();
}
