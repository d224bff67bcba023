/* The axis schedule for GPU targets. It starts from the CPU's choices (vector lanes on the contiguous axis, register
 * blocking of rows that share loads, unrolling over a quantized block), then splits a long reduction over the work
 * items of one workgroup (a GROUP piece): each work item accumulates a strided share, so neighbouring work items
 * read neighbouring memory, and a GROUPREDUCE combines the partials across lanes and waves. This is the
 * matrix-vector shape of decode (one output row block per workgroup); elementwise kernels and short reductions keep
 * one work item per output. A block-format weight's blocks each belong to one wave: the reduce's vector lanes widen
 * until a wave's lanes cover whole blocks (Q4_K/Q6_K on wave32: 8 elements per lane, 256 per wave), so no block
 * header is fetched by two waves. */
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

static int wave_size(const kn_target *t) { return strncmp(t->cpu, "gfx9", 4) ? 32 : 64; }

static void drop_piece(kn_sched *s, int i) {
  memmove(&s->p[i], &s->p[i + 1], (size_t)(s->n - i - 1) * sizeof s->p[0]);
  s->n--;
  if (s->vec > i) s->vec--;
}

static int64_t nreduce_nodes(const kn_kernel *k) {
  int64_t n = 0;
  for (int i = 0; i < k->nnodes; i++) n += k->nodes[i]->op == KN_KOP_REDUCE;
  return n ? n : 1;
}

static int find_piece(const kn_sched *s, int axis, kn_axkind kind) {
  for (int i = 0; i < s->n; i++)
    if (s->p[i].axis == axis && s->p[i].kind == kind) return i;
  return -1;
}

/* Widen the reduce's vector lanes (taking the factor from its unroll, else from its serial loop) until the work
 * items of one wave cover whole blocks of the block-format loads along it: the split below gives work item l the
 * elements [l*E, l*E + E) of every group*E-long stretch (E: lanes times unroll), so a wave of W work items spans
 * min(group, W)*E elements. With 4 lanes a Q4_K/Q6_K block (256 elements) spans 64 work items, two waves of
 * wave32, and both read its d, dmin and scales (1.11x / 1.09x of the weight fetched); 8 lanes make it one wave. */
static void whole_blocks_per_wave(const kn_kernel *k, const kn_target *t, kn_sched *s) {
  int r = k->ndim - 1;
  int64_t B = kn_opt_quant_block(k, r);
  if (B <= 0 || s->vec < 0 || s->p[s->vec].kind != KN_AX_RVEC || s->p[s->vec].axis != r) return;
  for (;;) {
    int red = find_piece(s, r, KN_AX_REDUCE), un = find_piece(s, r, KN_AX_UNROLL);
    int64_t v = s->p[s->vec].size, u = un >= 0 ? s->p[un].size : 1, n = red >= 0 ? s->p[red].size : 1;
    int64_t g = n >= SERIAL_MIN ? pow2_divisor(n, GROUP_MAX) : 1, span = v * u;
    if (g < GROUP_MIN || span % B == 0) return; /* no split (one work item per row), or whole blocks per work item */
    if ((g < wave_size(t) ? g : wave_size(t)) * span % B == 0) return;
    if (v * 2 > 16 || (u % 2 && n % 2)) return;
    /* the accumulators (register block x lanes x reduces) stay within what the narrower lanes held, 64 VGPRs: a
     * register block that would outgrow them gives up half of its largest piece (the later one on a tie: the
     * weight's rows in a prefill, so the tokens still share each decoded block) */
    int64_t block = 1, acc_max = 64;
    int big = -1;
    for (int i = 0; i < s->n; i++)
      if (s->p[i].kind == KN_AX_UPCAST) {
        block *= s->p[i].size;
        if (big < 0 || s->p[i].size >= s->p[big].size) big = i;
      }
    if (block * v * 2 * nreduce_nodes(k) > acc_max) {
      if (big < 0 || s->p[big].size % 2 || s->n == KN_MAXPIECES) return;
      int64_t m = s->p[big].mult, half = s->p[big].size / 2;
      int gl = -1; /* the halved block's other half: one more GLOBAL index along its axis */
      for (int i = 0; i < s->n; i++)
        if (s->p[i].axis == s->p[big].axis && s->p[i].kind == KN_AX_GLOBAL && s->p[i].mult == m * half * 2) gl = i;
      if (gl < 0) { /* the block was the whole axis: a new (slowest) GLOBAL piece of 2 */
        memmove(&s->p[1], &s->p[0], (size_t)s->n * sizeof s->p[0]);
        s->n++, s->vec++, big++;
        s->p[0] = (kn_piece){s->p[big].axis, 1, m * half * 2, KN_AX_GLOBAL};
        gl = 0;
      }
      s->p[gl].size *= 2, s->p[gl].mult = m * half;
      s->p[big].size = half;
      if (half == 1) drop_piece(s, big);
      red = find_piece(s, r, KN_AX_REDUCE), un = find_piece(s, r, KN_AX_UNROLL); /* pieces moved */
    }
    s->p[s->vec].size = v * 2;
    if (u % 2 == 0) { /* the unroll gives the factor: its instances are twice as wide */
      s->p[un].size /= 2, s->p[un].mult *= 2;
      if (s->p[un].size == 1) drop_piece(s, un);
    } else {
      s->p[red].size /= 2, s->p[red].mult *= 2;
      if (un >= 0) s->p[un].mult *= 2;
      if (s->p[red].size == 1) drop_piece(s, red);
    }
  }
}

int kn_gpu_schedule(const kn_kernel *k, const kn_target *t, kn_sched *s, char *err, size_t errlen) {
  if (kn_opt_schedule(k, t, s, err, errlen)) return -1;
  if (k->kind != KN_KERNEL_EXPR || k->nreduce == 0 || kn_getenv_int("NOOPT", 0) > 0) return 0;
  for (int i = 0; i < k->ndim; i++) /* a symbolic reduce runs to a variable: one serial loop per work item */
    if (k->shape_sym[i]) return 0;
  whole_blocks_per_wave(k, t, s);
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
