/* The fused attention template (KN_KERNEL_ATTENTION) for the CPU: one work item per (query, KV head), an online
 * softmax over keys 0 .. start_pos + t read straight from the KV cache (f16 or f32), so no score matrix exists in
 * memory and the cost follows the position, not the cache length. In per-row mode (batched sequences) each query
 * reads its cache row from a table and attends the rows of its own segment up to that row. Emitted with the LLVM C
 * API; head_dim is processed in vectors of the target's width. A work item is a query and a KV head: the query
 * heads that share that KV head (grouped-query attention) go through the keys together. */
#include <llvm-c/Core.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attention.h"
#include "emit.h"
#include "../device/base/env.h"

typedef struct {
  LLVMContextRef c;
  LLVMBuilderRef b;
  LLVMModuleRef m;
  LLVMTypeRef f32, i64, vf, ptr;
  int W;
} emit;

static LLVMValueRef cf(emit *e, double v) { return LLVMConstReal(e->f32, v); }
static LLVMValueRef ci(emit *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }

static LLVMValueRef splat(emit *e, LLVMValueRef s) {
  LLVMValueRef v = LLVMGetUndef(e->vf);
  for (int i = 0; i < e->W; i++) v = LLVMBuildInsertElement(e->b, v, s, LLVMConstInt(LLVMInt32TypeInContext(e->c), i, 0), "");
  return v;
}

static LLVMValueRef intrinsic(emit *e, const char *name, LLVMTypeRef ty, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef tys[1] = {ty};
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->m, id, tys, 1);
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->c, id, tys, 1), fn, args, n, "");
}

/* a constant shaped like ty (a float or a vector of floats) */
static LLVMValueRef cft(LLVMTypeRef ty, double v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstReal(ty, v);
  LLVMValueRef a[64], c = LLVMConstReal(LLVMGetElementType(ty), v);
  unsigned n = LLVMGetVectorSize(ty);
  for (unsigned i = 0; i < n; i++) a[i] = c;
  return LLVMConstVector(a, n);
}

static LLVMValueRef cit(LLVMTypeRef ty, long long v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstInt(ty, (unsigned long long)v, 1);
  LLVMValueRef a[64], c = LLVMConstInt(LLVMGetElementType(ty), (unsigned long long)v, 1);
  unsigned n = LLVMGetVectorSize(ty);
  for (unsigned i = 0; i < n; i++) a[i] = c;
  return LLVMConstVector(a, n);
}

/* exp(x) for x <= 0 (every argument here is a difference from a running max), of a float or a vector of floats:
 * 2^n * p(r), r = x - n ln2, p a degree-6 polynomial; below -87 the result flushes to 0. No libm call, so the object
 * has no imports. */
static LLVMValueRef fast_exp(emit *e, LLVMValueRef x) {
  LLVMBuilderRef b = e->b;
  LLVMTypeRef ty = LLVMTypeOf(x);
  bool vec = LLVMGetTypeKind(ty) == LLVMVectorTypeKind;
  LLVMTypeRef ity = vec ? LLVMVectorType(LLVMInt32TypeInContext(e->c), LLVMGetVectorSize(ty)) : LLVMInt32TypeInContext(e->c);
  LLVMValueRef lo = cft(ty, -87.0);
  LLVMValueRef xc = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, lo, ""), lo, x, "");
  LLVMValueRef t = LLVMBuildFMul(b, xc, cft(ty, 1.4426950408889634), "");
  /* nearest n keeps |r| <= ln2/2, where the degree-6 Taylor polynomial is accurate to ~1e-7 */
  LLVMValueRef n = intrinsic(e, "llvm.floor", ty, (LLVMValueRef[]){LLVMBuildFAdd(b, t, cft(ty, 0.5), "")}, 1);
  LLVMValueRef r = LLVMBuildFSub(b, xc, LLVMBuildFMul(b, n, cft(ty, 0.693145751953125), ""), "");
  r = LLVMBuildFSub(b, r, LLVMBuildFMul(b, n, cft(ty, 1.428606765330187e-06), ""), "");
  static const double c[] = {1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
  LLVMValueRef p = cft(ty, c[0]);
  for (int i = 1; i < 7; i++) p = LLVMBuildFAdd(b, LLVMBuildFMul(b, p, r, ""), cft(ty, c[i]), "");
  LLVMValueRef ni = LLVMBuildFPToSI(b, n, ity, "");
  LLVMValueRef bits = LLVMBuildShl(b, LLVMBuildAdd(b, ni, cit(ity, 127), ""), cit(ity, 23), "");
  LLVMValueRef scale = LLVMBuildBitCast(b, bits, ty, "");
  LLVMValueRef y = LLVMBuildFMul(b, p, scale, "");
  return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, lo, ""), cft(ty, 0.0), y, "");
}

/* W floats of a cache row: f16 rows are widened */
static LLVMValueRef load_vec_n(emit *e, LLVMValueRef base, LLVMValueRef elem, bool half, int n) {
  LLVMTypeRef et = half ? LLVMHalfTypeInContext(e->c) : e->f32;
  LLVMValueRef p = LLVMBuildGEP2(e->b, et, base, &elem, 1, "");
  LLVMValueRef v = LLVMBuildLoad2(e->b, LLVMVectorType(et, (unsigned)n), p, "");
  LLVMSetAlignment(v, half ? 2 : 4);
  return half ? LLVMBuildFPExt(e->b, v, LLVMVectorType(e->f32, (unsigned)n), "") : v;
}
static LLVMValueRef load_vec(emit *e, LLVMValueRef base, LLVMValueRef elem, bool half) { return load_vec_n(e, base, elem, half, e->W); }

/* horizontal sum of a vector by halves (a short dependency chain) */
static LLVMValueRef hsum_tree(emit *e, LLVMValueRef v) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(e->c);
  for (unsigned n = LLVMGetVectorSize(LLVMTypeOf(v)); n > 1; n /= 2) {
    LLVMValueRef lo[32], hi[32];
    for (unsigned i = 0; i < n / 2; i++) lo[i] = LLVMConstInt(i32, i, 0), hi[i] = LLVMConstInt(i32, n / 2 + i, 0);
    LLVMValueRef p = LLVMGetPoison(LLVMTypeOf(v));
    v = LLVMBuildFAdd(e->b, LLVMBuildShuffleVector(e->b, v, p, LLVMConstVector(lo, n / 2), ""),
                      LLVMBuildShuffleVector(e->b, v, p, LLVMConstVector(hi, n / 2), ""), "");
  }
  return LLVMBuildExtractElement(e->b, v, LLVMConstInt(i32, 0, 0), "");
}

/* a * b + c, fused where the target has FMA */
static LLVMValueRef fmuladd(emit *e, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  return intrinsic(e, "llvm.fmuladd", LLVMTypeOf(a), (LLVMValueRef[]){a, b, c}, 3);
}

static LLVMValueRef shuffle(emit *e, LLVMValueRef a, LLVMValueRef b, const int *idx, int n) {
  LLVMValueRef m[64];
  for (int i = 0; i < n; i++) m[i] = LLVMConstInt(LLVMInt32TypeInContext(e->c), (unsigned)idx[i], 0);
  return LLVMBuildShuffleVector(e->b, a, b, LLVMConstVector(m, (unsigned)n), "");
}

/* The sums of n vectors of W lanes each, as one vector of n lanes (lane j: the sum of v[j]), n a power of two:
 * adjacent vectors are added in halves (each sum's lanes folded once per level, two sums per vector after the
 * first), so n sums cost about 3 n shuffles and adds in all instead of a tree of log2(W) levels and an insert
 * each; once a vector holds one lane per sum, vectors are joined. v is overwritten. */
static LLVMValueRef sums_of(emit *e, LLVMValueRef *v, int n, int W) {
  int g = 1, len = W; /* each vector: g sums of len / g lanes each */
  while (n > 1 || len > g) {
    int s = len / g, idx_lo[64], idx_hi[64], k = 0;
    if (s > 1) { /* fold every sum's lanes in half: pairs of vectors into one of the same width */
      int half = n > 1 ? 2 : 1;
      for (int h = 0; h < half; h++)
        for (int q = 0; q < g; q++)
          for (int i = 0; i < s / 2; i++) idx_lo[k] = h * len + q * s + i, idx_hi[k++] = h * len + q * s + s / 2 + i;
      for (int i = 0; i < (n > 1 ? n / 2 : 1); i++) {
        LLVMValueRef a = v[half * i], b = n > 1 ? v[2 * i + 1] : v[i];
        v[i] = LLVMBuildFAdd(e->b, shuffle(e, a, b, idx_lo, k), shuffle(e, a, b, idx_hi, k), "");
      }
      if (n > 1) n /= 2, g *= 2;
      else len /= 2;
    } else { /* one lane per sum: join pairs */
      for (int i = 0; i < 2 * len; i++) idx_lo[i] = i;
      for (int i = 0; i < n / 2; i++) v[i] = shuffle(e, v[2 * i], v[2 * i + 1], idx_lo, 2 * len);
      n /= 2, len *= 2, g *= 2;
    }
  }
  return v[0];
}

/* max(m, every lane of v) */
static LLVMValueRef hmax_tree(emit *e, LLVMValueRef v, LLVMValueRef m) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(e->c);
  for (unsigned n = LLVMGetVectorSize(LLVMTypeOf(v)); n > 1; n /= 2) {
    LLVMValueRef lo[32], hi[32];
    for (unsigned i = 0; i < n / 2; i++) lo[i] = LLVMConstInt(i32, i, 0), hi[i] = LLVMConstInt(i32, n / 2 + i, 0);
    LLVMValueRef p = LLVMGetPoison(LLVMTypeOf(v));
    LLVMValueRef a = LLVMBuildShuffleVector(e->b, v, p, LLVMConstVector(lo, n / 2), "");
    LLVMValueRef c = LLVMBuildShuffleVector(e->b, v, p, LLVMConstVector(hi, n / 2), "");
    v = LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, a, c, ""), a, c, "");
  }
  LLVMValueRef s = LLVMBuildExtractElement(e->b, v, LLVMConstInt(i32, 0, 0), "");
  return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, s, m, ""), s, m, "");
}

static LLVMValueRef splat_n(emit *e, LLVMValueRef s, int n) {
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)n);
  LLVMValueRef v = LLVMBuildInsertElement(e->b, LLVMGetPoison(vt), s, LLVMConstInt(LLVMInt32TypeInContext(e->c), 0, 0), "");
  return LLVMBuildShuffleVector(e->b, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(e->c), (unsigned)n)), "");
}

/* A counted loop: returns the counter phi; the caller emits the body then calls loop_end. */
typedef struct {
  LLVMBasicBlockRef head, body, exit;
  LLVMValueRef i;
} loop;

static loop loop_begin(emit *e, LLVMValueRef fn, LLVMValueRef from, LLVMValueRef to, const char *name) {
  loop l;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
  l.head = LLVMAppendBasicBlockInContext(e->c, fn, name);
  l.body = LLVMAppendBasicBlockInContext(e->c, fn, "body");
  l.exit = LLVMAppendBasicBlockInContext(e->c, fn, "exit");
  LLVMBuildBr(e->b, l.head);
  LLVMPositionBuilderAtEnd(e->b, l.head);
  l.i = LLVMBuildPhi(e->b, e->i64, "i");
  LLVMAddIncoming(l.i, &from, &pre, 1);
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, l.i, to, ""), l.body, l.exit);
  LLVMPositionBuilderAtEnd(e->b, l.body);
  return l;
}

static void loop_end_step(emit *e, loop *l, int64_t step) {
  LLVMValueRef next = LLVMBuildAdd(e->b, l->i, ci(e, step), "");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
  LLVMAddIncoming(l->i, &next, &cur, 1);
  LLVMBuildBr(e->b, l->head);
  LLVMPositionBuilderAtEnd(e->b, l->exit);
}

static void loop_end(emit *e, loop *l) {
  LLVMValueRef next = LLVMBuildAdd(e->b, l->i, ci(e, 1), "");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
  LLVMAddIncoming(l->i, &next, &cur, 1);
  LLVMBuildBr(e->b, l->head);
  LLVMPositionBuilderAtEnd(e->b, l->exit);
}

/* Cache rows are read a block at a time, one KV head's row every n_kv_head rows: a stride the hardware prefetcher
 * follows too late for a stream of a few hundred KB per work item, so each row's lines are prefetched
 * KILN_ATTN_PREFETCH rows ahead (default 64, four blocks; 0: none), K's and V's. Decode attention at ~3,900 keys, the
 * 0.5B shape, AVX-512 (DEBUG=2, the kernel's time per call), none / 64 / 256 rows ahead: 0.162-0.167 / 0.104-0.106 /
 * 0.104-0.106 ms. Prefetches past the cache's end are hints that fault nothing. */
static void prefetch_row(emit *e, LLVMValueRef *ptrs, LLVMValueRef cache_row, LLVMValueRef kvh, const kn_attn *a, bool half) {
  int ahead = (int)kn_getenv_int("KILN_ATTN_PREFETCH", 64), esz = half ? 2 : 4;
  if (ahead <= 0) return;
  LLVMBuilderRef b = e->b;
  LLVMTypeRef i8 = LLVMInt8TypeInContext(e->c);
  LLVMValueRef elem = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, cache_row, ci(e, ahead), ""), ci(e, a->n_kv_head), ""), kvh, ""),
                                   ci(e, a->head_dim), "");
  LLVMValueRef byte = LLVMBuildMul(b, elem, ci(e, esz), "");
  for (int kv = 0; kv < 2; kv++) kn_prefetch_span(e->m, b, LLVMBuildGEP2(b, i8, ptrs[2 + kv], &byte, 1, ""), (int64_t)a->head_dim * esz);
}

/* ---- prefill: a tile of queries in the lanes ----
 *
 * The per-query body above sums every key's products across its head_dim lanes (a shuffle tree per block of keys)
 * and widens each block of cache rows for one query. With W consecutive queries of one head in the W lanes of a
 * vector instead, a key's score for all W queries is a chain of head_dim multiply-adds of a query column (q[.][d]
 * for the W queries) by the key's element d broadcast, with no reduction across lanes; the running maximum, the
 * exponentials and the rescale are lane-wise, and the weighted values a multiply-add of the key's weights (one per
 * query) by the value's element broadcast into a column accumulator per d. A work item is a tile of W queries and a
 * KV head: each block of Bk cache rows is widened to f32 once and read by the tile's W queries of every one of the G
 * query heads on that KV head. */

/* Lanes of a tile: the target's float vector. */
static int tile_lanes(const kn_target *t) {
  int W = t->vector_bytes / 4;
  return W < 4 ? 4 : W > 16 ? 16 : W;
}

/* A work item's time per key, in multiply-adds of the target's vectors (W lanes), for G heads of one KV head,
 * fitted to bench_attention on a Zen 5 core with AVX-512 (THREADS=1, 4096 keys): the tiled kernel with the heads
 * in its lanes costs a head_dim-long chain of multiply-adds for the scores and one for the values whatever the
 * heads (~28 ns per key at head_dim 64, 8 to 14 heads); the per-query kernel its multiply-adds (2 G head_dim / W)
 * plus the sums across lanes, the maxima and the exponentials, ~6 more per head_dim / W (head_dim 64, 1 / 2 / 4 /
 * 7 / 8 heads: 6.9 / 7.8 / ~10.5 / 16.5 / 18.5 ns). On AVX2 the per-query kernel's share of shuffles is larger
 * (7 heads at head_dim 64: 41-65 ns against the tiled 28-34; 5 at 128: 91 against 66; 4 at 128: 50-56 against
 * 60-66), so which kernel decodes is not chosen by this model (tile_shape) but used to size head_split. */
static double cost_query(const kn_attn *a, int W, int G) { return (double)a->head_dim / W * (2 * G + 6); }
static double cost_tiled(const kn_attn *a, int G, int HL) { return 2.0 * a->head_dim * (G / HL); }

/* The tiled kernel's lanes: QL queries x HL of a KV head's G query heads (lane l: query l / HL of the tile, head
 * l % HL of the head group; the G / HL groups one after the other). Passes of 32 queries or more (prompt chunks)
 * put W queries of one head in the lanes; smaller ones (decode, batched decode: rows of different sequences, which
 * a tile takes one after the other) a query's G heads, W / G queries, where G fills three quarters of a 16-lane
 * vector or half of a narrower one (the figures at cost_query: on AVX-512 the per-query kernel decodes 8 heads
 * at head_dim 128 in 35-40 ns per key, the tiled one in 62; 14 heads at 64: 53 against 28-32). Returns QL, 0
 * for the per-query kernel. KILN_ATTN_TILE=0 keeps the per-query kernel everywhere (to compare). */
static int tile_shape(const kn_attn *a, const kn_target *t, int G, int *QL, int *HL) {
  int W = tile_lanes(t);
  *QL = *HL = 0;
  if (t->kind == KN_TARGET_AMDGPU || kn_getenv_int("KILN_ATTN_TILE", 1) <= 0 || G < 1 || a->n_head % a->n_kv_head) return 0;
  if (a->n_q >= 32) *QL = W, *HL = 1;
  else if (G <= W && (W >= 16 ? 4 * G >= 3 * W : 2 * G >= W)) *HL = G, *QL = W / G;
  /* its stack: the q columns and accumulators of every head (G x head_dim vectors each), the scores' partial sums,
   * the widened block; past 1 MB (on AVX-512: head_dim 256 with 30 or more heads per KV head, 128 with 62) the
   * per-query kernel, whose buffers hold no lane per query */
  if (((int64_t)2 * G * a->head_dim + a->head_dim / 4 * 16) * W * 4 + (int64_t)32 * a->head_dim * 4 > (1 << 20)) *QL = 0;
  return *QL;
}

/* Work items of G heads each (one query or a tile of them, one KV head): the CPU kernels' items before a split */
static int64_t items_of(const kn_attn *a, const kn_target *t, int G) {
  int QL, HL;
  if (tile_shape(a, t, G, &QL, &HL)) return (int64_t)((a->n_q + QL - 1) / QL) * a->n_kv_head;
  return (int64_t)a->n_q * a->n_kv_head;
}

/* an item's time per key (cost_query, cost_tiled) */
static double item_cost(const kn_attn *a, const kn_target *t, int G) {
  int QL, HL;
  if (tile_shape(a, t, G, &QL, &HL)) return cost_tiled(a, G, HL);
  return cost_query(a, tile_lanes(t), G);
}

/* Into how many groups a KV head's G query heads are split, each group its own work item. A pass with fewer items
 * than the device has threads (decode: one query, n_kv_head items) would leave threads idle through the whole
 * kernel, and decode attention is bound by its arithmetic, not the cache's bytes (~25 ns per key and KV head on a
 * core at the 0.5B shape: 10 GB/s, where a core streams 40), so the split with the least time by item_cost over
 * the threads is taken (the groups of a KV head read the same cache rows at about the same time, on different
 * cores). Only splits that keep the kernel (tiled or per-query) are considered: each computes a head the same way
 * whatever the heads per item, so a sequence's decode alone (split) and in a batched pass (not) are the same bits;
 * the tiled and the per-query kernel are not. At 4096 keys on 2 threads, unsplit / two items: 2 heads on 1 KV head,
 * head_dim 128: 0.062-0.078 / 0.053-0.059 ms a layer; Gemma 3 1B's 4 on 1 at 256: 0.17-0.28 / 0.17-0.19 (there the
 * widened rows, 1 KB a key, bound it more than the heads; before the per-query kernel kept them in memory, 0.31 /
 * 0.21). KILN_ATTN_SPLIT=0: no split. */
static int head_split(const kn_attn *a, const kn_target *t) {
  int G = a->n_head / a->n_kv_head, best = 1, QL, HL;
  if (t->kind != KN_TARGET_CPU || t->ncores <= 1 || kn_getenv_int("KILN_ATTN_SPLIT", 1) <= 0) return 1;
  bool tiled = tile_shape(a, t, G, &QL, &HL) > 0;
  double best_cost = 0;
  for (int S = 1; S <= G; S++) {
    if (G % S || (tile_shape(a, t, G / S, &QL, &HL) > 0) != tiled) continue;
    int64_t items = items_of(a, t, G / S) * S, rounds = (items + t->ncores - 1) / t->ncores;
    double cost = (double)rounds * item_cost(a, t, G / S);
    if (S == 1 || cost < best_cost) best = S, best_cost = cost;
  }
  return best;
}

int64_t kn_attention_items(const kn_attn *a, const kn_target *t) {
  if (t->kind == KN_TARGET_AMDGPU) return (int64_t)a->n_q * a->n_head;
  int S = head_split(a, t);
  return items_of(a, t, a->n_head / a->n_kv_head / S) * S;
}

static LLVMValueRef alloca_al(emit *e, LLVMTypeRef ty, const char *name) {
  LLVMValueRef v = LLVMBuildAlloca(e->b, ty, name);
  LLVMSetAlignment(v, 64);
  return v;
}

/* element idx of a float array (or of the floats of an array of vectors) */
static LLVMValueRef fat(emit *e, LLVMValueRef base, LLVMValueRef idx) { return LLVMBuildGEP2(e->b, e->f32, base, &idx, 1, ""); }
/* vector idx of an array of e->vf */
static LLVMValueRef vat(emit *e, LLVMValueRef base, LLVMValueRef idx) { return LLVMBuildGEP2(e->b, e->vf, base, &idx, 1, ""); }

static LLVMValueRef imin(emit *e, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, x, y, ""), x, y, "");
}
static LLVMValueRef imax(emit *e, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSGT, x, y, ""), x, y, "");
}

/* the first element of lane l's row of q (and out), [n_q][n_head][D], in head group g of the item's heads (the
 * first of them: hbase) */
static LLVMValueRef head_row(emit *e, const kn_attn *a, LLVMValueRef t0, LLVMValueRef hbase, LLVMValueRef l, LLVMValueRef g, int HL) {
  LLVMBuilderRef b = e->b;
  LLVMValueRef query = LLVMBuildAdd(b, t0, LLVMBuildSDiv(b, l, ci(e, HL), ""), "");
  LLVMValueRef head = LLVMBuildAdd(b, hbase,
                                   LLVMBuildAdd(b, LLVMBuildMul(b, g, ci(e, HL), ""), LLVMBuildSRem(b, l, ci(e, HL), ""), ""), "");
  return LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, query, ci(e, a->n_head), ""), head, ""), ci(e, a->head_dim), "");
}

static void emit_tiled(emit *e, LLVMValueRef fn, const kn_kernel *k, LLVMValueRef *ptrs, LLVMValueRef start_pos, bool half,
                       int QL, int HL, int nsplit) {
  const kn_attn *a = &k->attn;
  LLVMBuilderRef b = e->b;
  LLVMTypeRef i32 = LLVMInt32TypeInContext(e->c), vi = LLVMVectorType(i32, (unsigned)e->W);
  /* G: the item's heads, one of the nsplit groups of its KV head's */
  int W = e->W, D = a->head_dim, G = a->n_head / a->n_kv_head / nsplit, KV = a->n_kv_head, NG = G / HL;
  /* keys per block: their scores (one vector each) and weights stay in registers (16 of 32 on AVX-512, 8 of 16) */
  enum { BMAX = 16 };
  int Bk = W >= 16 ? 16 : 8, Wd = W;
  while (Wd > 4 && D % Wd) Wd /= 2; /* cache rows are widened Wd elements at a time (D % 4 == 0 was checked) */
  LLVMValueRef qt = alloca_al(e, LLVMArrayType(e->vf, (unsigned)(G * D)), "qt");
  LLVMValueRef acc = alloca_al(e, LLVMArrayType(e->vf, (unsigned)(G * D)), "acc");
  LLVMValueRef mx = alloca_al(e, LLVMArrayType(e->vf, (unsigned)G), "m"), den = alloca_al(e, LLVMArrayType(e->vf, (unsigned)G), "l");
  LLVMValueRef kb = alloca_al(e, LLVMArrayType(e->f32, (unsigned)(Bk * D)), "kb");
  LLVMValueRef vb = alloca_al(e, LLVMArrayType(e->f32, (unsigned)(Bk * D)), "vb");
  LLVMValueRef segs = alloca_al(e, LLVMArrayType(e->vf, (unsigned)(D / 4 * Bk)), "segs"); /* the scores' partial sums */
  LLVMValueRef zero = LLVMConstNull(e->vf);

  LLVMValueRef lo_a = alloca_al(e, LLVMArrayType(i32, (unsigned)W), "lo"), hi_a = alloca_al(e, LLVMArrayType(i32, (unsigned)W), "hi");
  LLVMValueRef seg_a = alloca_al(e, LLVMArrayType(e->i64, (unsigned)W), "seg0");
  LLVMValueRef alo_a = alloca_al(e, LLVMArrayType(i32, (unsigned)W), "alo"), ahi_a = alloca_al(e, LLVMArrayType(i32, (unsigned)W), "ahi");
  LLVMValueRef done_a = alloca_al(e, LLVMArrayType(LLVMInt8TypeInContext(e->c), (unsigned)W), "done");
  LLVMValueRef kmin_a = LLVMBuildAlloca(b, e->i64, "kmin"), kmax_a = LLVMBuildAlloca(b, e->i64, "kmax");
#define IAT(base, ty, i) LLVMBuildGEP2(b, ty, base, (LLVMValueRef[]){i}, 1, "")

  loop item = loop_begin(e, fn, LLVMGetParam(fn, 2), LLVMGetParam(fn, 3), "tile");
  LLVMValueRef hgrp = LLVMBuildSRem(b, item.i, ci(e, nsplit), "hgroup"), rest = LLVMBuildSDiv(b, item.i, ci(e, nsplit), "");
  LLVMValueRef kvh = LLVMBuildSRem(b, rest, ci(e, KV), "kvh");
  LLVMValueRef t0 = LLVMBuildMul(b, LLVMBuildSDiv(b, rest, ci(e, KV), ""), ci(e, QL), "t0");
  LLVMValueRef hbase = LLVMBuildAdd(b, LLVMBuildMul(b, kvh, ci(e, G * nsplit), ""), LLVMBuildMul(b, hgrp, ci(e, G), ""), "hbase");
  LLVMValueRef nq = imin(e, ci(e, QL), LLVMBuildSub(b, ci(e, a->n_q), t0, ""));
  LLVMValueRef nl = LLVMBuildMul(b, nq, ci(e, HL), "lanes"); /* lanes in use: 0 .. nl - 1 */
  /* lane l (query t0 + l / HL, cache row r): keys lo_l .. hi_l - 1 of its segment seg0_l (cache rows); one
   * sequence's rows r = start_pos + t0 + l / HL of segment 0, or in per-row mode r = rows[t0 + l / HL] of segment
   * r - r % seg. Lanes past the last query are done before they start. */
  loop li = loop_begin(e, fn, ci(e, 0), ci(e, W), "lane");
  LLVMValueRef tq = LLVMBuildAdd(b, t0, LLVMBuildSDiv(b, li.i, ci(e, HL), ""), ""), r, p, seg0;
  if (a->seg > 0) {
    LLVMValueRef tc = imin(e, tq, ci(e, a->n_q - 1)); /* lanes past the last query read the last row (unused) */
    r = LLVMBuildSExt(b, LLVMBuildLoad2(b, i32, LLVMBuildGEP2(b, i32, ptrs[4], &tc, 1, ""), ""), e->i64, "row");
    p = LLVMBuildSRem(b, r, ci(e, a->seg), "pos");
    seg0 = LLVMBuildSub(b, r, p, "");
  } else
    r = p = LLVMBuildAdd(b, start_pos, tq, ""), seg0 = ci(e, 0);
  LLVMValueRef first = ci(e, 0);
  if (a->window > 0) first = imax(e, LLVMBuildSub(b, LLVMBuildAdd(b, p, ci(e, 1), ""), ci(e, a->window), ""), first);
  LLVMBuildStore(b, LLVMBuildTrunc(b, LLVMBuildAdd(b, seg0, first, ""), i32, ""), IAT(lo_a, i32, li.i));
  LLVMBuildStore(b, LLVMBuildTrunc(b, LLVMBuildAdd(b, r, ci(e, 1), ""), i32, ""), IAT(hi_a, i32, li.i));
  LLVMBuildStore(b, seg0, IAT(seg_a, e->i64, li.i));
  LLVMBuildStore(b, LLVMBuildZExt(b, LLVMBuildICmp(b, LLVMIntSGE, li.i, nl, ""), LLVMInt8TypeInContext(e->c), ""),
                 IAT(done_a, LLVMInt8TypeInContext(e->c), li.i));
  loop_end(e, &li);
  /* the tile's q columns, pre-scaled (zero in lanes past the last query); accumulators, maxima, denominators */
  loop z = loop_begin(e, fn, ci(e, 0), ci(e, G * D), "clear");
  LLVMBuildStore(b, zero, vat(e, qt, z.i));
  LLVMBuildStore(b, zero, vat(e, acc, z.i));
  loop_end(e, &z);
  loop gi = loop_begin(e, fn, ci(e, 0), ci(e, NG), "head");
  LLVMBuildStore(b, cft(e->vf, -1e30), vat(e, mx, gi.i));
  LLVMBuildStore(b, zero, vat(e, den, gi.i));
  loop_end(e, &gi);
  loop qi = loop_begin(e, fn, ci(e, 0), nl, "lane");
  loop qg = loop_begin(e, fn, ci(e, 0), ci(e, NG), "head");
  LLVMValueRef qrow = head_row(e, a, t0, hbase, qi.i, qg.i, HL);
  loop qd = loop_begin(e, fn, ci(e, 0), ci(e, D), "dim");
  LLVMValueRef qv = LLVMBuildLoad2(b, e->f32, fat(e, ptrs[1], LLVMBuildAdd(b, qrow, qd.i, "")), "");
  LLVMValueRef col = LLVMBuildAdd(b, LLVMBuildMul(b, qg.i, ci(e, D), ""), qd.i, "");
  LLVMBuildStore(b, LLVMBuildFMul(b, qv, cf(e, a->scale), ""), fat(e, qt, LLVMBuildAdd(b, LLVMBuildMul(b, col, ci(e, W), ""), qi.i, "")));
  loop_end(e, &qd);
  loop_end(e, &qg);
  loop_end(e, &qi);

  /* the lanes in groups of one segment (one group for a sequence's prompt; a tile straddling sequences of a batched
   * pass takes one per sequence), each group over the keys any of its lanes sees, the others masked off */
  loop lead = loop_begin(e, fn, ci(e, 0), nl, "group");
  LLVMBasicBlockRef grp = LLVMAppendBasicBlockInContext(e->c, fn, "grp"), next = LLVMAppendBasicBlockInContext(e->c, fn, "next");
  LLVMTypeRef i8 = LLVMInt8TypeInContext(e->c);
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntNE, LLVMBuildLoad2(b, i8, IAT(done_a, i8, lead.i), ""), LLVMConstInt(i8, 0, 0), ""), next, grp);
  LLVMPositionBuilderAtEnd(b, grp);
  LLVMValueRef gseg = LLVMBuildLoad2(b, e->i64, IAT(seg_a, e->i64, lead.i), "");
  LLVMBuildStore(b, ci(e, INT64_MAX), kmin_a);
  LLVMBuildStore(b, ci(e, 0), kmax_a);
  loop gl = loop_begin(e, fn, ci(e, 0), ci(e, W), "lane");
  LLVMValueRef in = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildLoad2(b, i8, IAT(done_a, i8, gl.i), ""), LLVMConstInt(i8, 0, 0), ""),
                                 LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildLoad2(b, e->i64, IAT(seg_a, e->i64, gl.i), ""), gseg, ""), "in");
  LLVMValueRef llo = LLVMBuildLoad2(b, i32, IAT(lo_a, i32, gl.i), ""), lhi = LLVMBuildLoad2(b, i32, IAT(hi_a, i32, gl.i), "");
  LLVMValueRef z32 = LLVMConstInt(i32, 0, 0);
  LLVMBuildStore(b, LLVMBuildSelect(b, in, llo, z32, ""), IAT(alo_a, i32, gl.i));
  LLVMBuildStore(b, LLVMBuildSelect(b, in, lhi, z32, ""), IAT(ahi_a, i32, gl.i));
  LLVMValueRef kmin = LLVMBuildLoad2(b, e->i64, kmin_a, ""), kmax = LLVMBuildLoad2(b, e->i64, kmax_a, "");
  LLVMBuildStore(b, LLVMBuildSelect(b, in, imin(e, kmin, LLVMBuildSExt(b, llo, e->i64, "")), kmin, ""), kmin_a);
  LLVMBuildStore(b, LLVMBuildSelect(b, in, imax(e, kmax, LLVMBuildSExt(b, lhi, e->i64, "")), kmax, ""), kmax_a);
  LLVMBuildStore(b, LLVMBuildSelect(b, in, LLVMConstInt(i8, 1, 0), LLVMBuildLoad2(b, i8, IAT(done_a, i8, gl.i), ""), ""), IAT(done_a, i8, gl.i));
  loop_end(e, &gl);
  LLVMValueRef lov = LLVMBuildLoad2(b, vi, alo_a, ""), hiv = LLVMBuildLoad2(b, vi, ahi_a, "");
  LLVMValueRef klast = LLVMBuildLoad2(b, e->i64, kmax_a, "klast");

  loop key = loop_begin(e, fn, LLVMBuildLoad2(b, e->i64, kmin_a, ""), klast, "key");
  for (int j = 0; j < Bk; j++) { /* the block's rows widened (keys past the last read the block's first row) */
    LLVMValueRef kj = LLVMBuildAdd(b, key.i, ci(e, j), "");
    LLVMValueRef kc = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, kj, klast, ""), kj, key.i, "");
    LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, kc, ci(e, KV), ""), kvh, ""), ci(e, D), "");
    prefetch_row(e, ptrs, kj, kvh, a, half);
    for (int v = 0; v < D / Wd; v++) {
      LLVMValueRef off = LLVMBuildAdd(b, row, ci(e, v * Wd), ""), dst = ci(e, j * D + v * Wd);
      for (int kv = 0; kv < 2; kv++)
        LLVMSetAlignment(LLVMBuildStore(b, load_vec_n(e, ptrs[2 + kv], off, half, Wd), fat(e, kv ? vb : kb, dst)), 4);
    }
  }
  LLVMValueRef valid[BMAX];
  for (int j = 0; j < Bk; j++) {
    LLVMValueRef kj = splat_n(e, LLVMBuildTrunc(b, LLVMBuildAdd(b, key.i, ci(e, j), ""), i32, ""), W);
    valid[j] = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSLT, kj, hiv, ""), LLVMBuildICmp(b, LLVMIntSGE, kj, lov, ""), "");
  }
  loop h = loop_begin(e, fn, ci(e, 0), ci(e, NG), "head");
  LLVMValueRef hD = LLVMBuildMul(b, h.i, ci(e, D), "");
  /* DU dims per iteration, their products summed in a chain per key, the chains' sums stored and added as a tree
   * after the loop: rounding grows with DU + log2(D / DU), as the per-query kernel's lanes and tree (one chain across
   * head_dim 128 failed a 1e-4 relative bound; a chain of the DU-sums was still twice the per-query kernel's error) */
  int DU = D % 8 ? 4 : 8, NS = D / DU;
  loop sd = loop_begin(e, fn, ci(e, 0), ci(e, NS), "qk");
  LLVMValueRef d0 = LLVMBuildMul(b, sd.i, ci(e, DU), ""), part[BMAX];
  for (int u = 0; u < DU; u++) {
    LLVMValueRef d = LLVMBuildAdd(b, d0, ci(e, u), "");
    LLVMValueRef qc = LLVMBuildLoad2(b, e->vf, vat(e, qt, LLVMBuildAdd(b, hD, d, "")), "");
    for (int j = 0; j < Bk; j++) {
      LLVMValueRef kx = splat(e, LLVMBuildLoad2(b, e->f32, fat(e, kb, LLVMBuildAdd(b, d, ci(e, j * D), "")), ""));
      part[j] = u ? fmuladd(e, qc, kx, part[j]) : LLVMBuildFMul(b, qc, kx, "");
    }
  }
  for (int j = 0; j < Bk; j++)
    LLVMBuildStore(b, part[j], vat(e, segs, LLVMBuildAdd(b, LLVMBuildMul(b, sd.i, ci(e, Bk), ""), ci(e, j), "")));
  loop_end(e, &sd);
  LLVMValueRef S[BMAX], P[BMAX];
  LLVMValueRef m_old = LLVMBuildLoad2(b, e->vf, vat(e, mx, h.i), ""), m_new = m_old;
  for (int j = 0; j < Bk; j++) {
    LLVMValueRef t[256]; /* NS <= 256 */
    for (int u = 0; u < NS; u++) t[u] = LLVMBuildLoad2(b, e->vf, vat(e, segs, ci(e, u * Bk + j)), "");
    for (int n = NS; n > 1; n = (n + 1) / 2) {
      for (int u = 0; u < n / 2; u++) t[u] = LLVMBuildFAdd(b, t[2 * u], t[2 * u + 1], "");
      if (n % 2) t[n / 2] = t[n - 1];
    }
    S[j] = LLVMBuildSelect(b, valid[j], t[0], cft(e->vf, -INFINITY), "");
    m_new = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, S[j], m_new, ""), S[j], m_new, "");
  }
  LLVMValueRef corr = fast_exp(e, LLVMBuildFSub(b, m_old, m_new, "")), psum[BMAX];
  for (int j = 0; j < Bk; j++) psum[j] = P[j] = fast_exp(e, LLVMBuildFSub(b, S[j], m_new, ""));
  for (int n = Bk; n > 1; n /= 2)
    for (int j = 0; j < n / 2; j++) psum[j] = LLVMBuildFAdd(b, psum[j], psum[j + n / 2], "");
  LLVMBuildStore(b, fmuladd(e, LLVMBuildLoad2(b, e->vf, vat(e, den, h.i), ""), corr, psum[0]), vat(e, den, h.i));
  LLVMBuildStore(b, m_new, vat(e, mx, h.i));
  loop pd = loop_begin(e, fn, ci(e, 0), ci(e, D), "pv");
  for (int u = 0; u < 4; u++) {
    LLVMValueRef d = LLVMBuildAdd(b, pd.i, ci(e, u), ""), slot = vat(e, acc, LLVMBuildAdd(b, hD, d, ""));
    LLVMValueRef part[2] = {zero, zero};
    for (int j = 0; j < Bk; j++) {
      LLVMValueRef vx = LLVMBuildLoad2(b, e->f32, fat(e, vb, LLVMBuildAdd(b, d, ci(e, j * D), "")), "");
      part[j % 2] = fmuladd(e, P[j], splat(e, vx), part[j % 2]);
    }
    LLVMBuildStore(b, fmuladd(e, LLVMBuildLoad2(b, e->vf, slot, ""), corr, LLVMBuildFAdd(b, part[0], part[1], "")), slot);
  }
  loop_end_step(e, &pd, 4);
  loop_end(e, &h);
  loop_end_step(e, &key, Bk);
  LLVMBuildBr(b, next);
  LLVMPositionBuilderAtEnd(b, next);
  loop_end(e, &lead);
#undef IAT

  /* out[query][head] = acc / l, lane by lane */
  loop oi = loop_begin(e, fn, ci(e, 0), nl, "lane");
  loop og = loop_begin(e, fn, ci(e, 0), ci(e, NG), "head");
  LLVMValueRef inv = LLVMBuildFDiv(b, cf(e, 1.0), LLVMBuildLoad2(b, e->f32, fat(e, den, LLVMBuildAdd(b, LLVMBuildMul(b, og.i, ci(e, W), ""), oi.i, "")), ""), "");
  LLVMValueRef orow = head_row(e, a, t0, hbase, oi.i, og.i, HL);
  loop od = loop_begin(e, fn, ci(e, 0), ci(e, D), "dim");
  LLVMValueRef ocol = LLVMBuildAdd(b, LLVMBuildMul(b, og.i, ci(e, D), ""), od.i, "");
  LLVMValueRef x = LLVMBuildLoad2(b, e->f32, fat(e, acc, LLVMBuildAdd(b, LLVMBuildMul(b, ocol, ci(e, W), ""), oi.i, "")), "");
  LLVMBuildStore(b, LLVMBuildFMul(b, x, inv, ""), fat(e, ptrs[0], LLVMBuildAdd(b, orow, od.i, "")));
  loop_end(e, &od);
  loop_end(e, &og);
  loop_end(e, &oi);
  loop_end(e, &item);
}

/* p, passed through an empty inline asm with side effects: LLVM no longer knows what it points to, nor that memory
 * is unchanged across it. The per-query kernel widens a block's cache rows into a buffer that every head reads;
 * without this LLVM keeps each widened vector in a register from the first head's read to the last (the loads
 * are the same), which needs far more registers than there are: 600 spills and reloads per block of 16 keys at
 * 7 heads, head_dim 64 on AVX-512, and ~27 ns per key where the same kernel reading the buffer per head takes ~18. */
static LLVMValueRef opaque_ptr(emit *e, LLVMValueRef p) {
  LLVMTypeRef fty = LLVMFunctionType(e->ptr, (LLVMTypeRef[]){e->ptr}, 1, 0);
  LLVMValueRef asmv = LLVMGetInlineAsm(fty, "", 0, "=r,0", 4, 1, 0, LLVMInlineAsmDialectATT, 0);
  return LLVMBuildCall2(e->b, fty, asmv, (LLVMValueRef[]){p}, 1, "");
}

/* ---- decode: a query's heads one block of keys at a time ----
 * The per-query kernel's buffers (allocas of vectors or floats) and shape, for its per-head steps. */
typedef struct {
  emit *e;
  LLVMValueRef qs, kb, vbuf, acc, mx, den; /* q, the block's K and V rows (nv vectors each), accumulators, m, l */
  int G, nv, W, B;
} pq;

static LLVMValueRef pq_slot(pq *p, LLVMValueRef base, int n, LLVMValueRef i) {
  return LLVMBuildGEP2(p->e->b, LLVMArrayType(p->e->vf, (unsigned)n), base, (LLVMValueRef[]){ci(p->e, 0), i}, 2, "");
}
static LLVMValueRef pq_fslot(pq *p, LLVMValueRef base, LLVMValueRef i) {
  return LLVMBuildGEP2(p->e->b, LLVMArrayType(p->e->f32, (unsigned)p->G), base, (LLVMValueRef[]){ci(p->e, 0), i}, 2, "");
}
/* the block's K or V rows for one head's reads: with more than one head, through opaque_ptr */
static LLVMValueRef pq_rows(pq *p, LLVMValueRef buf) { return p->G > 1 ? opaque_ptr(p->e, buf) : buf; }

/* head h's scores of the block's B keys (one lane each, -inf past the last key) */
static LLVMValueRef pq_scores(pq *p, LLVMValueRef h, LLVMValueRef valid) {
  emit *e = p->e;
  LLVMBuilderRef b = e->b;
  LLVMValueRef h0 = LLVMBuildMul(b, h, ci(e, p->nv), ""), qv[256], dots[64], kb = pq_rows(p, p->kb);
  for (int v = 0; v < p->nv; v++) qv[v] = LLVMBuildLoad2(b, e->vf, pq_slot(p, p->qs, p->G * p->nv, LLVMBuildAdd(b, h0, ci(e, v), "")), "");
  for (int j = 0; j < p->B; j++) {
    LLVMValueRef dot = LLVMConstNull(e->vf);
    for (int v = 0; v < p->nv; v++)
      dot = fmuladd(e, qv[v], LLVMBuildLoad2(b, e->vf, pq_slot(p, kb, p->B * p->nv, ci(e, j * p->nv + v)), ""), dot);
    dots[j] = dot;
  }
  return LLVMBuildSelect(b, valid, sums_of(e, dots, p->B, p->W), cft(LLVMVectorType(e->f32, (unsigned)p->B), -INFINITY), "");
}

/* head h's running maximum (now m_new) and denominator l * corr + sum(P) */
static void pq_denominator(pq *p, LLVMValueRef h, LLVMValueRef m_new, LLVMValueRef corr, LLVMValueRef P) {
  LLVMBuilderRef b = p->e->b;
  LLVMValueRef lslot = pq_fslot(p, p->den, h);
  LLVMBuildStore(b, fmuladd(p->e, LLVMBuildLoad2(b, p->e->f32, lslot, ""), corr, hsum_tree(p->e, P)), lslot);
  LLVMBuildStore(b, m_new, pq_fslot(p, p->mx, h));
}

/* head h's accumulators: acc * corr + the block's values weighted by P, in four chains */
static void pq_values(pq *p, LLVMValueRef h, LLVMValueRef P, LLVMValueRef corr) {
  emit *e = p->e;
  LLVMBuilderRef b = e->b;
  LLVMValueRef h0 = LLVMBuildMul(b, h, ci(e, p->nv), ""), vcorr = splat(e, corr), vp[64], vbuf = pq_rows(p, p->vbuf);
  for (int j = 0; j < p->B; j++) { /* lane j of P in every lane */
    int idx[64];
    for (int i = 0; i < p->W; i++) idx[i] = j;
    vp[j] = shuffle(e, P, LLVMGetPoison(LLVMTypeOf(P)), idx, p->W);
  }
  for (int v = 0; v < p->nv; v++) {
    LLVMValueRef slot = pq_slot(p, p->acc, p->G * p->nv, LLVMBuildAdd(b, h0, ci(e, v), "")), part[4];
    for (int c4 = 0; c4 < 4; c4++) {
      part[c4] = LLVMConstNull(e->vf);
      for (int j = c4; j < p->B; j += 4)
        part[c4] = fmuladd(e, LLVMBuildLoad2(b, e->vf, pq_slot(p, vbuf, p->B * p->nv, ci(e, j * p->nv + v)), ""), vp[j], part[c4]);
    }
    LLVMValueRef sum = LLVMBuildFAdd(b, LLVMBuildFAdd(b, part[0], part[1], ""), LLVMBuildFAdd(b, part[2], part[3], ""), "");
    LLVMBuildStore(b, fmuladd(e, LLVMBuildLoad2(b, e->vf, slot, ""), vcorr, sum), slot);
  }
}

LLVMModuleRef kn_attention_module(LLVMContextRef c, const kn_kernel *k, const kn_target *t, const char *entry, char *err,
                                  size_t errlen) {
  const kn_attn *a = &k->attn;
  bool half = k->bufs[2].dtype == KN_F16;
  if ((k->bufs[2].dtype != KN_F16 && k->bufs[2].dtype != KN_F32) || k->bufs[3].dtype != k->bufs[2].dtype ||
      a->head_dim <= 0 || a->head_dim > 1024 || a->n_kv_head <= 0 || a->n_head % a->n_kv_head || a->head_dim % 4 ||
      k->nbufs != (a->seg > 0 ? 5 : 4) || (a->seg > 0 && k->bufs[4].dtype != KN_I32)) {
    snprintf(err, errlen, "attention kernel: unsupported cache dtype or head layout");
    return NULL;
  }
  emit e = {.c = c};
  e.m = LLVMModuleCreateWithNameInContext(entry, c);
  e.b = LLVMCreateBuilderInContext(c);
  e.f32 = LLVMFloatTypeInContext(c), e.i64 = LLVMInt64TypeInContext(c), e.ptr = LLVMPointerTypeInContext(c, 0);
  int W = t->vector_bytes / 4 > 4 ? t->vector_bytes / 4 : 4;
  while (W > 4 && a->head_dim % W) W /= 2; /* head_dim % 4 == 0 was checked: at most 256 vectors below */
  e.W = W;
  e.vf = LLVMVectorType(e.f32, W);
  LLVMTypeRef params[4] = {e.ptr, e.ptr, e.i64, e.i64};
  LLVMValueRef fn = LLVMAddFunction(e.m, entry, LLVMFunctionType(LLVMVoidTypeInContext(c), params, 4, 0));
  LLVMBuilderRef b = e.b;
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  LLVMValueRef bufs = LLVMGetParam(fn, 0), vars = LLVMGetParam(fn, 1);
  LLVMValueRef ptrs[5];
  for (int i = 0; i < k->nbufs; i++) {
    LLVMValueRef idx = ci(&e, i);
    ptrs[i] = LLVMBuildLoad2(b, e.ptr, LLVMBuildGEP2(b, e.ptr, bufs, &idx, 1, ""), "");
  }
  LLVMValueRef start_pos = ci(&e, 0);
  if (a->seg <= 0) {
    LLVMValueRef pv = ci(&e, a->pos_var);
    start_pos = LLVMBuildLoad2(b, e.i64, LLVMBuildGEP2(b, e.i64, vars, &pv, 1, ""), "start_pos");
  }
  int QL, HL, S = head_split(a, t);
  if (tile_shape(a, t, a->n_head / a->n_kv_head / S, &QL, &HL)) {
    e.W = tile_lanes(t), e.vf = LLVMVectorType(e.f32, (unsigned)e.W);
    emit_tiled(&e, fn, k, ptrs, start_pos, half, QL, HL, S);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    return e.m;
  }
  int D = a->head_dim, nv = D / W, G = a->n_head / a->n_kv_head / S; /* the item's heads: one of S groups */
  /* keys in blocks of B: each block's key and value rows are widened to f32 once into kb / vb, then every query
   * head of the work item's KV head (G of them: grouped-query attention) scores them (each key's products summed
   * by sums_of), takes one vector exp and rescales its accumulator once per block; keys past the last read the
   * block's first row and score -inf (weight 0). One work item per (query, KV head), not per query head: the G
   * heads read the cache once between them (a 0.5B model's 7 heads per KV head each read the same rows from L3:
   * 0.24 ms a layer at 4000 keys, now 0.19), the rest from L1. The weighted values are summed in four chains, so the key loop carries only
   * the rescale's multiply-add. */
  enum { B = 16 };
  LLVMTypeRef arr = LLVMArrayType(e.vf, (unsigned)(G * nv));
  LLVMValueRef qs = LLVMBuildAlloca(b, arr, "q"), acc = LLVMBuildAlloca(b, arr, "acc");
  LLVMValueRef kb = LLVMBuildAlloca(b, LLVMArrayType(e.vf, (unsigned)(B * nv)), "kb");
  LLVMValueRef vbuf = LLVMBuildAlloca(b, LLVMArrayType(e.vf, (unsigned)(B * nv)), "vb");
  LLVMValueRef mx = LLVMBuildAlloca(b, LLVMArrayType(e.f32, (unsigned)G), "m");
  LLVMValueRef den = LLVMBuildAlloca(b, LLVMArrayType(e.f32, (unsigned)G), "l");
  pq p = {&e, qs, kb, vbuf, acc, mx, den, G, nv, W, B};

  loop item = loop_begin(&e, fn, LLVMGetParam(fn, 2), LLVMGetParam(fn, 3), "item");
  LLVMValueRef grp = LLVMBuildSRem(b, item.i, ci(&e, S), "hgroup"), rest = LLVMBuildSDiv(b, item.i, ci(&e, S), "");
  LLVMValueRef tq = LLVMBuildSDiv(b, rest, ci(&e, a->n_kv_head), ""), kvh = LLVMBuildSRem(b, rest, ci(&e, a->n_kv_head), "");
  /* q and out are [n_q][n_head][D]: the item's heads are group grp's G of kvh's G * S, from (kvh * S + grp) * G */
  LLVMValueRef hbase = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, kvh, ci(&e, S), ""), grp, ""), ci(&e, G), "");
  LLVMValueRef qoff = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, tq, ci(&e, a->n_head), ""), hbase, ""), ci(&e, D), "");
  LLVMValueRef last, seg0 = ci(&e, 0); /* keys first .. last - 1 of the segment starting at cache row seg0 */
  if (a->seg > 0) { /* per-row mode: the query's own cache row r; position r % seg in its segment */
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c);
    LLVMValueRef r = LLVMBuildSExt(b, LLVMBuildLoad2(b, i32, LLVMBuildGEP2(b, i32, ptrs[4], &tq, 1, ""), ""), e.i64, "row");
    LLVMValueRef p = LLVMBuildSRem(b, r, ci(&e, a->seg), "pos");
    seg0 = LLVMBuildSub(b, r, p, "seg0");
    last = LLVMBuildAdd(b, p, ci(&e, 1), "nkeys");
  } else
    last = LLVMBuildAdd(b, LLVMBuildAdd(b, start_pos, tq, ""), ci(&e, 1), "nkeys");
  /* the heads' q, pre-scaled; accumulators, maxima and denominators cleared */
  loop hg = loop_begin(&e, fn, ci(&e, 0), ci(&e, G), "head");
  for (int v = 0; v < nv; v++) {
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, hg.i, ci(&e, nv), ""), ci(&e, v), "");
    LLVMValueRef qv = load_vec(&e, ptrs[1], LLVMBuildAdd(b, qoff, LLVMBuildAdd(b, LLVMBuildMul(b, hg.i, ci(&e, D), ""), ci(&e, v * W), ""), ""), false);
    LLVMBuildStore(b, LLVMBuildFMul(b, qv, splat(&e, cf(&e, a->scale)), ""), pq_slot(&p, qs, G * nv, at));
    LLVMBuildStore(b, LLVMConstNull(e.vf), pq_slot(&p, acc, G * nv, at));
  }
  LLVMBuildStore(b, cf(&e, -1e30), pq_fslot(&p, mx, hg.i));
  LLVMBuildStore(b, cf(&e, 0.0), pq_fslot(&p, den, hg.i));
  loop_end(&e, &hg);

  LLVMValueRef first = ci(&e, 0);
  if (a->window > 0) { /* sliding window: the last `window` keys only */
    LLVMValueRef lo = LLVMBuildSub(b, last, ci(&e, a->window), "");
    first = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, lo, first, ""), lo, first, "first");
  }
  loop key = loop_begin(&e, fn, first, last, "key");
  LLVMValueRef lane[B];
  for (int j = 0; j < B; j++) {
    LLVMValueRef kj = LLVMBuildAdd(b, key.i, ci(&e, j), "");
    LLVMValueRef kc = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, kj, last, ""), kj, key.i, "");
    LLVMValueRef kabs = LLVMBuildAdd(b, seg0, kc, ""); /* the key's cache row */
    LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, kabs, ci(&e, a->n_kv_head), ""), kvh, ""), ci(&e, D), "");
    for (int v = 0; v < nv; v++) {
      LLVMValueRef off = LLVMBuildAdd(b, row, ci(&e, v * W), "");
      LLVMBuildStore(b, load_vec(&e, ptrs[2], off, half), pq_slot(&p, kb, B * nv, ci(&e, j * nv + v)));
      LLVMBuildStore(b, load_vec(&e, ptrs[3], off, half), pq_slot(&p, vbuf, B * nv, ci(&e, j * nv + v)));
    }
    lane[j] = LLVMConstInt(e.i64, (unsigned long long)j, 0);
    prefetch_row(&e, ptrs, LLVMBuildAdd(b, seg0, kj, ""), kvh, a, half);
  }
  LLVMValueRef kidx = LLVMBuildAdd(b, splat_n(&e, key.i, B), LLVMConstVector(lane, B), "");
  LLVMValueRef valid = LLVMBuildICmp(b, LLVMIntSLT, kidx, splat_n(&e, last, B), "");
  /* The heads: where there are few, unrolled in phases that each go over every head (the scores; the maxima;
   * the exponentials, the rescale factors of all heads as one vector; the denominators; the weighted values), so
   * the long dependency chains of different heads (sums across lanes, a maximum, an exponential) sit next to each
   * other and overlap; else a loop, a head at a time. Either way a head's operations are the same. */
  if (G <= 8) {
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c), v8 = LLVMVectorType(e.f32, 8);
    LLVMValueRef sc[8], m_old[8], m_new[8], P[8], diff = LLVMGetPoison(v8);
    for (int hc = 0; hc < G; hc++) sc[hc] = pq_scores(&p, ci(&e, hc), valid);
    for (int hc = 0; hc < G; hc++) {
      m_old[hc] = LLVMBuildLoad2(b, e.f32, pq_fslot(&p, mx, ci(&e, hc)), "");
      m_new[hc] = hmax_tree(&e, sc[hc], m_old[hc]);
      diff = LLVMBuildInsertElement(b, diff, LLVMBuildFSub(b, m_old[hc], m_new[hc], ""), LLVMConstInt(i32, (unsigned)hc, 0), "");
    }
    LLVMValueRef corr = fast_exp(&e, diff);
    for (int hc = 0; hc < G; hc++) P[hc] = fast_exp(&e, LLVMBuildFSub(b, sc[hc], splat_n(&e, m_new[hc], B), ""));
    for (int hc = 0; hc < G; hc++)
      pq_denominator(&p, ci(&e, hc), m_new[hc], LLVMBuildExtractElement(b, corr, LLVMConstInt(i32, (unsigned)hc, 0), ""), P[hc]);
    for (int hc = 0; hc < G; hc++) pq_values(&p, ci(&e, hc), P[hc], LLVMBuildExtractElement(b, corr, LLVMConstInt(i32, (unsigned)hc, 0), ""));
  } else {
    loop h = loop_begin(&e, fn, ci(&e, 0), ci(&e, G), "head");
    LLVMValueRef sc = pq_scores(&p, h.i, valid);
    LLVMValueRef m_old = LLVMBuildLoad2(b, e.f32, pq_fslot(&p, mx, h.i), "");
    LLVMValueRef m_new = hmax_tree(&e, sc, m_old);
    LLVMValueRef corr = fast_exp(&e, LLVMBuildFSub(b, m_old, m_new, ""));
    LLVMValueRef P = fast_exp(&e, LLVMBuildFSub(b, sc, splat_n(&e, m_new, B), ""));
    pq_denominator(&p, h.i, m_new, corr, P);
    pq_values(&p, h.i, P, corr);
    loop_end(&e, &h);
  }
  loop_end_step(&e, &key, B);

  loop ho = loop_begin(&e, fn, ci(&e, 0), ci(&e, G), "head");
  LLVMValueRef inv = splat(&e, LLVMBuildFDiv(b, cf(&e, 1.0), LLVMBuildLoad2(b, e.f32, pq_fslot(&p, den, ho.i), ""), ""));
  for (int v = 0; v < nv; v++) {
    LLVMValueRef o = LLVMBuildFMul(b, LLVMBuildLoad2(b, e.vf, pq_slot(&p, acc, G * nv, LLVMBuildAdd(b, LLVMBuildMul(b, ho.i, ci(&e, nv), ""), ci(&e, v), "")), ""), inv, "");
    LLVMValueRef off = LLVMBuildAdd(b, qoff, LLVMBuildAdd(b, LLVMBuildMul(b, ho.i, ci(&e, D), ""), ci(&e, v * W), ""), "");
    LLVMValueRef st = LLVMBuildStore(b, o, LLVMBuildGEP2(b, e.f32, ptrs[0], &off, 1, ""));
    LLVMSetAlignment(st, 4);
  }
  loop_end(&e, &ho);
  loop_end(&e, &item);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  return e.m;
}
