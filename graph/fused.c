/* Nodes that are kernel boundaries by definition: contiguous (materialize), assign (write into an existing
 * buffer, e.g. the KV cache), gather (embedding rows) and template kernels (attention). */
#include <string.h>

#include "uop.h"

kn_t kn_contiguous(kn_t a) {
  if (!a) return NULL;
  if (a->op == KN_OP_BUFFER || a->op == KN_OP_CONTIGUOUS) return a;
  kn_t s[1] = {a};
  return kn_uop_make(KN_OP_CONTIGUOUS, kn_dtype_scalar(a->dtype), a->ndim, a->shape, 1, s, NULL, 0);
}

kn_t kn_assign(kn_t target, kn_t value) {
  if (!target || !value) return NULL;
  kn_t base = target;
  kn_st st;
  if (target->op == KN_OP_VIEW) base = target->src[0], st = *target->arg.st;
  else kn_st_contiguous(&st, target->ndim, target->shape);
  if (base->op != KN_OP_BUFFER && base->op != KN_OP_ASSIGN)
    return kn_graph_fail("assign: the target must be a buffer or a view of one");
  if (kn_st_has_mask(&st)) return kn_graph_fail("assign: the target view is padded");
  if (target->ndim != value->ndim || memcmp(target->shape, value->shape, value->ndim * sizeof *value->shape)) {
    char a[128], b[128];
    kn_print_shape(target, a, sizeof a);
    kn_print_shape(value, b, sizeof b);
    return kn_graph_fail("assign: value of shape %s into a target of shape %s", b, a);
  }
  if (kn_dtype_is_quant(base->dtype)) return kn_graph_fail("assign: cannot write into a %s buffer", kn_dtype_name(base->dtype));
  kn_t s[2] = {base, kn_cast(value, base->dtype)};
  return kn_uop_make(KN_OP_ASSIGN, base->dtype, base->ndim, base->shape, 2, s, &st, sizeof st);
}

kn_t kn_assign_rows(kn_t target, kn_t rows, kn_t value) {
  if (!target || !rows || !value) return NULL;
  if (target->op != KN_OP_BUFFER && target->op != KN_OP_ASSIGN)
    return kn_graph_fail("assign_rows: the target must be a buffer");
  if (rows->ndim != 1 || kn_dtype_is_float(rows->dtype) || kn_dtype_is_quant(rows->dtype) || target->ndim < 1 ||
      value->ndim != target->ndim || value->shape[0] != rows->shape[0] ||
      memcmp(target->shape + 1, value->shape + 1, (target->ndim - 1) * sizeof *value->shape)) {
    char a[128], b[128], c[128];
    kn_print_shape(target, a, sizeof a), kn_print_shape(value, b, sizeof b), kn_print_shape(rows, c, sizeof c);
    return kn_graph_fail("assign_rows: value %s into rows %s of %s: need value [T, ...] with the target's trailing "
                         "shape and integer rows [T]", b, c, a);
  }
  if (kn_dtype_is_quant(target->dtype))
    return kn_graph_fail("assign_rows: cannot write into a %s buffer", kn_dtype_name(target->dtype));
  /* where element (t, ...) goes, less the row: the target's strides with row stride 0 */
  kn_st st;
  kn_st_contiguous(&st, target->ndim, target->shape);
  st.v[0].shape[0] = value->shape[0], st.v[0].strides[0] = 0;
  kn_t s[3] = {target, kn_cast(value, target->dtype), kn_cast(rows, KN_I32)};
  return kn_uop_make(KN_OP_ASSIGN, target->dtype, target->ndim, target->shape, 3, s, &st, sizeof st);
}

kn_t kn_gather_rows(kn_t table, kn_t ids) {
  if (!table || !ids) return NULL;
  if (table->ndim != 2 || ids->ndim != 1 || kn_dtype_is_float(ids->dtype) || kn_dtype_is_quant(ids->dtype))
    return kn_graph_fail("gather_rows: needs a [V, D] table and integer ids [T]");
  int64_t sh[2] = {ids->shape[0], table->shape[1]};
  kn_t s[2] = {table, kn_cast(ids, KN_I32)};
  kn_dtype dt = kn_dtype_scalar(table->dtype);
  if (dt == KN_F16 || dt == KN_BF16) dt = KN_F32;
  return kn_name(kn_uop_make(KN_OP_GATHER, dt, 2, sh, 2, s, NULL, 0), "%s_rows", kn_uop_label(table));
}

kn_t kn_custom_attention(kn_t q, kn_t kcache, kn_t vcache, kn_var *pos, int n_q, float scale) {
  return kn_custom_attention_window(q, kcache, vcache, pos, n_q, scale, 0);
}

kn_t kn_custom_attention_window(kn_t q, kn_t kcache, kn_t vcache, kn_var *pos, int n_q, float scale, int window) {
  if (!q || !kcache || !vcache) return NULL;
  if (window < 0) return kn_graph_fail("attention: negative window %d", window);
  if (!pos) return kn_graph_fail("attention: no position variable");
  if (q->ndim != 3 || kcache->ndim != 3 || vcache->ndim != 3 || q->shape[0] != n_q || q->shape[2] != kcache->shape[2] ||
      memcmp(kcache->shape, vcache->shape, 3 * sizeof *kcache->shape) || q->shape[1] % kcache->shape[1])
    return kn_graph_fail("attention: q must be [n_q, n_head, head_dim] and the caches [ctx, n_kv_head, head_dim] "
                         "with n_head a multiple of n_kv_head");
  if (pos->max + n_q > kcache->shape[0])
    return kn_graph_fail("attention: positions up to %lld + %d exceed the cache length %lld", (long long)pos->max, n_q,
                         (long long)kcache->shape[0]);
  kn_attn a = {.n_q = n_q, .n_head = (int)q->shape[1], .n_kv_head = (int)kcache->shape[1],
               .head_dim = (int)q->shape[2], .max_ctx = kcache->shape[0], .scale = scale, .pos_var = pos->id,
               .window = window};
  kn_t s[3] = {kn_cast(q, KN_F32), kcache, vcache};
  return kn_name(kn_uop_make(KN_OP_ATTENTION, KN_F32, 3, q->shape, 3, s, &a, sizeof a), "attention");
}

kn_t kn_custom_attention_rows(kn_t q, kn_t kcache, kn_t vcache, kn_t rows, int64_t seg, float scale, int window) {
  if (!q || !kcache || !vcache || !rows) return NULL;
  if (window < 0) return kn_graph_fail("attention: negative window %d", window);
  if (q->ndim != 3 || kcache->ndim != 3 || vcache->ndim != 3 || q->shape[2] != kcache->shape[2] ||
      memcmp(kcache->shape, vcache->shape, 3 * sizeof *kcache->shape) || q->shape[1] % kcache->shape[1])
    return kn_graph_fail("attention: q must be [n_q, n_head, head_dim] and the caches [rows, n_kv_head, head_dim] "
                         "with n_head a multiple of n_kv_head");
  if (rows->ndim != 1 || rows->shape[0] != q->shape[0] || kn_dtype_is_float(rows->dtype) || kn_dtype_is_quant(rows->dtype))
    return kn_graph_fail("attention: the row table must be integers [n_q] (n_q = %lld)", (long long)q->shape[0]);
  if (seg < 1 || seg > kcache->shape[0])
    return kn_graph_fail("attention: segments of %lld rows in a cache of %lld rows", (long long)seg,
                         (long long)kcache->shape[0]);
  kn_attn a = {.n_q = (int)q->shape[0], .n_head = (int)q->shape[1], .n_kv_head = (int)kcache->shape[1],
               .head_dim = (int)q->shape[2], .max_ctx = kcache->shape[0], .scale = scale, .pos_var = -1,
               .window = window, .seg = seg};
  kn_t s[4] = {kn_cast(q, KN_F32), kcache, vcache, kn_cast(rows, KN_I32)};
  return kn_uop_make(KN_OP_ATTENTION, KN_F32, 3, q->shape, 4, s, &a, sizeof a);
}
