/* The axis schedule for GPU targets. It starts from the CPU's choices (vector lanes on the contiguous axis, register
 * blocking of rows that share loads, unrolling over a quantized block), then splits a long reduction over the work
 * items of one workgroup (a GROUP piece): each work item accumulates a strided share, so neighbouring work items
 * read neighbouring memory, and a GROUPREDUCE combines the partials across lanes and waves. This is the
 * matrix-vector shape of decode (one output row block per workgroup); elementwise kernels and short reductions keep
 * one work item per output. */
#include <stdio.h>
#include <string.h>

#include "../device/base/env.h"
#include "loopir.h"

#define GROUP_MAX 256 /* work items per workgroup for a split reduction */
#define GROUP_MIN 16  /* below this the reduction stays serial per work item */
#define SERIAL_MIN 32 /* a reduce piece shorter than this is not worth a cross-lane reduction */

int64_t kn_sched_group(const kn_sched *s) {
  for (int i = 0; i < s->n; i++)
    if (s->p[i].kind == KN_AX_GROUP) return s->p[i].size;
  return 0;
}

/* The largest power of two <= cap dividing n. */
static int64_t pow2_divisor(int64_t n, int64_t cap) {
  int64_t g = 1;
  while (g * 2 <= cap && n % (g * 2) == 0) g *= 2;
  return g;
}

int kn_gpu_schedule(const kn_kernel *k, const kn_target *t, kn_sched *s, char *err, size_t errlen) {
  if (kn_opt_schedule(k, t, s, err, errlen)) return -1;
  if (k->kind != KN_KERNEL_EXPR || k->nreduce == 0 || kn_getenv_int("NOOPT", 0) > 0) return 0;
  for (int i = 0; i < k->ndim; i++) /* a symbolic reduce runs to a variable: one serial loop per work item */
    if (k->shape_sym[i]) return 0;
  int best = -1;
  for (int i = 0; i < s->n; i++)
    if (s->p[i].kind == KN_AX_REDUCE && s->p[i].size >= SERIAL_MIN && (best < 0 || s->p[i].size > s->p[best].size))
      best = i;
  if (best < 0 || s->n == KN_MAXPIECES) return 0;
  int64_t g = pow2_divisor(s->p[best].size, GROUP_MAX);
  if (g < GROUP_MIN) return 0;
  /* REDUCE(n, m) -> REDUCE(n/g, m*g) then GROUP(g, m): work item l takes elements l, l+g, ... of the piece */
  kn_piece r = s->p[best];
  memmove(&s->p[best + 2], &s->p[best + 1], (size_t)(s->n - best - 1) * sizeof s->p[0]);
  s->n++;
  if (s->vec > best) s->vec++;
  s->p[best] = (kn_piece){r.axis, r.size / g, r.mult * g, KN_AX_REDUCE};
  s->p[best + 1] = (kn_piece){r.axis, g, r.mult, KN_AX_GROUP};
  if (s->p[best].size == 1) { /* the whole piece is spread over the group: drop the empty serial loop */
    memmove(&s->p[best], &s->p[best + 1], (size_t)(s->n - best - 1) * sizeof s->p[0]);
    s->n--;
    if (s->vec > best) s->vec--;
  }
  return 0;
}
