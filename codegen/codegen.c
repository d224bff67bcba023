/* kn_compile: kernel AST -> (schedule, loop IR) -> LLVM module -> object code, through the disk cache and an
 * in-process memo (a kernel compiled once in a process is free the second time). DEBUG=4 prints the LLVM IR,
 * 5 the kernel AST, 6 the loop IR, 7 the target assembly. */
#include <llvm-c/Core.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "../device/base/env.h"
#include "attention.h"
#include "cache.h"
#include "codegen.h"
#include "emit.h"
#include "llvm_target.h"
#include "quant_mm.h"

#define OPT_LEVEL 3
#define KN_CODEGEN_SYMBOLIC_EXTENTS 1 /* lowering of kernels whose axes run to a variable */

typedef struct {
  uint64_t key;
  kn_compiled c;
  UT_hash_handle hh;
} memo_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static memo_entry *memo;
static int64_t memo_hits, uncached_compiles; /* the disk cache counts its own loads */

/* hits: in-process memo and disk cache; misses: disk misses (corrupt entries included) and compiles with the cache
 * disabled */
kn_cache_stats kn_cache_process_stats(void) {
  kn_cache_stats s = {0, 0, 0};
  kn_cache_counts(&s.hits, &s.misses, &s.corrupt);
  pthread_mutex_lock(&lock);
  s.hits += memo_hits, s.misses += uncached_compiles;
  pthread_mutex_unlock(&lock);
  return s;
}

void kn_compiled_free(kn_compiled *c) {
  if (!c) return;
  free(c->obj);
  c->obj = NULL;
  c->obj_size = 0;
}

static uint64_t mix_str(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (h ^ 0xff) * 1099511628211ull;
}

static uint64_t memo_key(const kn_kernel *k, const kn_target *t) {
  uint64_t h = kn_kernel_hash(k);
  h = mix_str(h, t->triple), h = mix_str(h, t->cpu), h = mix_str(h, t->features);
  h = (h ^ (uint64_t)t->vector_bytes) * 1099511628211ull;
  h = (h ^ (uint64_t)t->kind) * 1099511628211ull;
  h = (h ^ (uint64_t)kn_qdot_mode()) * 1099511628211ull;
  h = (h ^ (uint64_t)kn_qmm_enabled()) * 1099511628211ull;
  h = (h ^ (uint64_t)(kn_getenv_int("KILN_QMM", 1) > 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)(kn_getenv_int("KILN_QX", 1) > 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)(kn_getenv_int("KILN_PREFETCH", 1) > 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)kn_getenv_int("KILN_QROWS", 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)kn_getenv_int("KILN_PREFETCH_BYTES", 8192)) * 1099511628211ull;
  h = (h ^ (uint64_t)(kn_getenv_int("KILN_ATTN_TILE", 1) > 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)kn_getenv_int("KILN_ATTN_PREFETCH", 64)) * 1099511628211ull;
  h = (h ^ (uint64_t)(kn_getenv_int("KILN_ATTN_SPLIT", 1) > 0)) * 1099511628211ull;
  h = (h ^ (uint64_t)t->ncores) * 1099511628211ull; /* the attention split and opt.c's thread split follow it */
  return (h ^ (uint64_t)(kn_getenv_int("NOOPT", 0) > 0)) * 1099511628211ull;
}

static int copy_compiled(kn_compiled *dst, const kn_compiled *src) {
  *dst = *src;
  dst->obj = malloc(src->obj_size ? src->obj_size : 1);
  if (!dst->obj) return -1;
  memcpy(dst->obj, src->obj, src->obj_size);
  return 0;
}

static bool memo_get(uint64_t key, kn_compiled *out) {
  pthread_mutex_lock(&lock);
  memo_entry *m;
  HASH_FIND(hh, memo, &key, sizeof key, m);
  bool ok = m && !copy_compiled(out, &m->c);
  pthread_mutex_unlock(&lock);
  return ok;
}

static void memo_put(uint64_t key, const kn_compiled *c) {
  memo_entry *m = calloc(1, sizeof *m);
  if (!m) return;
  if (copy_compiled(&m->c, c)) return free(m);
  m->key = key;
  pthread_mutex_lock(&lock);
  memo_entry *old;
  HASH_FIND(hh, memo, &key, sizeof key, old);
  if (old) {
    free(m->c.obj), free(m);
  } else
    HASH_ADD(hh, memo, key, sizeof m->key, m);
  pthread_mutex_unlock(&lock);
}

/* Build the LLVM module for a kernel and fill out's name, entry and launch geometry. */
static void print_ast(const kn_kernel *k, const kn_compiled *out) {
  if (!kn_debug_kernel(5, out->entry)) return;
  fprintf(stderr, "; kernel AST of %s\n", out->entry);
  kn_kernel_print(k, stderr);
}

/* The entry point: the tensor's name (when it has one), the kernel's schedule name (tinygrad style, or the
 * template's: attn_, qmm_), a hash of the kernel; the same at every DEBUG level, in VIZ and in the cache. */
static void entry_name(const kn_kernel *k, kn_compiled *out, uint64_t key) {
  if (k->label[0])
    snprintf(out->entry, sizeof out->entry, "kn_%.23s_%.59s_%08x", k->label, out->name, (unsigned)(key & 0xffffffffu));
  else
    snprintf(out->entry, sizeof out->entry, "kn_%.70s_%08x", out->name, (unsigned)(key & 0xffffffffu));
}

static LLVMModuleRef build_module(LLVMContextRef ctx, const kn_kernel *k, const kn_target *t, uint64_t key,
                                  kn_compiled *out, char *err, size_t errlen) {
  if (k->kind == KN_KERNEL_ATTENTION) {
    const kn_attn *a = &k->attn;
    snprintf(out->name, sizeof out->name, "attn_%d_%d_%d", a->n_q, a->n_head, a->head_dim);
    entry_name(k, out, key);
    out->global[0] = kn_attention_items(a, t);
    out->global[1] = out->global[2] = 1;
    out->local[0] = out->local[1] = out->local[2] = 1;
    print_ast(k, out);
    if (t->kind == KN_TARGET_AMDGPU)
      return kn_amdgpu_attention_module(ctx, k, t, out->entry, out->global, out->local, err, errlen);
    return kn_attention_module(ctx, k, t, out->entry, err, errlen);
  }
  kn_qmm m;
  if (kn_qmm_match(k, t, &m)) { /* prefill over block-format weights: the tiled template (integer-dot on CPUs) */
    snprintf(out->name, sizeof out->name, "qmm_%lld_%lld_%lld", (long long)m.T, (long long)m.N, (long long)m.K);
    entry_name(k, out, key);
    if (t->kind == KN_TARGET_AMDGPU) {
      print_ast(k, out);
      return kn_amdgpu_qmm_module(ctx, k, &m, t, out->entry, out->global, out->local, err, errlen);
    }
    kn_qmm_plan_t pl;
    kn_qmm_plan(&m, t, &pl);
    out->global[0] = pl.ntiles * (m.N / pl.rows), out->global[1] = out->global[2] = 1;
    out->local[0] = out->local[1] = out->local[2] = 1;
    print_ast(k, out);
    return kn_qmm_module(ctx, k, &m, t, out->entry, err, errlen);
  }
  for (int i = 0; i < k->ndim; i++)
    if (k->shape_sym[i] && !KN_CODEGEN_SYMBOLIC_EXTENTS)
      return snprintf(err, errlen, "axis %d has a symbolic extent, which this codegen does not lower yet", i), NULL;
  kn_sched s;
  bool gpu = t->kind == KN_TARGET_AMDGPU;
  if ((gpu ? kn_gpu_schedule : kn_opt_schedule)(k, t, &s, err, errlen)) return NULL;
  kn_lprog *lp = kn_lower(k, &s, err, errlen);
  if (!lp) return NULL;
  snprintf(out->name, sizeof out->name, "%s", lp->name);
  entry_name(k, out, key);
  print_ast(k, out);
  if (kn_debug_kernel(6, out->entry)) fprintf(stderr, "; loop IR of %s\n", out->entry), kn_lprog_print(lp, stderr);
  memcpy(out->global, lp->global, sizeof out->global);
  memcpy(out->local, lp->local, sizeof out->local);
  LLVMModuleRef mod = gpu ? kn_amdgpu_module(ctx, lp, t, out->entry, out->global, out->local, err, errlen)
                          : kn_emit_module(ctx, lp, t, out->entry, err, errlen);
  kn_lprog_free(lp);
  return mod;
}

static void count(int64_t *counter) {
  pthread_mutex_lock(&lock);
  (*counter)++;
  pthread_mutex_unlock(&lock);
}

/* Optimize and emit (cache miss), or take the cached object. */
static int object_for(LLVMModuleRef mod, const kn_target *t, kn_compiled *out, char *err, size_t errlen) {
  char *ir = LLVMPrintModuleToString(mod);
  if (!ir) return snprintf(err, errlen, "cannot print LLVM IR of %s", out->name), -1;
  char key[33];
  kn_cache_key(ir, t, OPT_LEVEL, key);
  snprintf(out->key, sizeof out->key, "%s", key);
  if (kn_debug_kernel(4, out->entry)) fprintf(stderr, "; LLVM IR of %s (cache key %s)\n%s\n", out->entry, key, ir);
  int rc = 0;
  bool cached = kn_cache_enabled() && kn_cache_load(key, &out->obj, &out->obj_size) == 1;
  if (cached) {
    out->cache_hit = true;
  } else {
    /* emitting code rewrites a GPU module in place (structurizer), so DEBUG=7 assembles an optimized copy */
    LLVMModuleRef asm_mod = NULL;
    if (kn_llvm_optimize(mod, t, OPT_LEVEL, err, errlen) || (kn_debug_kernel(7, out->entry) && !(asm_mod = LLVMCloneModule(mod))) ||
        kn_llvm_emit_object(mod, t, &out->obj, &out->obj_size, err, errlen))
      rc = -1;
    else if (kn_cache_enabled())
      kn_cache_store(key, out->name, out->entry, t, ir, out->obj, out->obj_size);
    if (asm_mod) mod = asm_mod, cached = true; /* below: assemble the copy, not re-optimize it */
  }
  if (rc == 0 && !kn_cache_enabled()) count(&uncached_compiles);
  if (rc == 0 && kn_debug_kernel(7, out->entry)) {
    if (out->cache_hit) kn_llvm_optimize(mod, t, OPT_LEVEL, err, errlen);
    char *as = kn_llvm_emit_asm(mod, t);
    fprintf(stderr, "; assembly of %s (cache key %s)\n%s\n", out->entry, key, as ? as : "(unavailable)");
    free(as);
  }
  if (cached && !out->cache_hit) LLVMDisposeModule(mod); /* the DEBUG=7 copy */
  LLVMDisposeMessage(ir);
  return rc;
}

/* KILN_CROSS_AMD=gfx1100,gfx90a,...: every kernel compiled for the CPU is also compiled for these AMD archs and held
 * to the kernel ABI (kn_amdgpu_check); a failure fails the CPU compile. The test suite runs the op and fusion tests
 * this way, so every kernel they generate is known to compile for each arch. */
static int cross_amd(const kn_kernel *k, char *err, size_t errlen) {
  const char *archs = getenv("KILN_CROSS_AMD");
  if (!archs || !archs[0]) return 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", archs);
  for (char *save = NULL, *a = strtok_r(buf, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    kn_target t;
    kn_target_amdgpu(&t, a);
    kn_compiled c;
    char e2[512];
    int rc = kn_compile(k, &t, &c, e2, sizeof e2);
    if (!rc) {
      rc = kn_amdgpu_check(c.obj, c.obj_size, c.entry, k->nbufs, k->nvars, e2, sizeof e2);
      kn_compiled_free(&c);
    }
    if (rc) return snprintf(err, errlen, "KILN_CROSS_AMD %s: %s", a, e2), -1;
  }
  return 0;
}

int kn_compile(const kn_kernel *k, const kn_target *t, kn_compiled *out, char *err, size_t errlen) {
  double t0 = kn_now();
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  if (!k || !t) return snprintf(err, errlen, "kn_compile: no kernel or no target"), -1;
  if (k->nbufs < 1 || k->nbufs > KN_MAXBUFS || k->nvars < 0 || k->nvars > KN_MAXVARS)
    return snprintf(err, errlen, "kernel has %d buffers and %d variables", k->nbufs, k->nvars), -1;
  kn_cache_offer_object_store();
  uint64_t key = memo_key(k, t);
  if (memo_get(key, out)) {
    print_ast(k, out);
    count(&memo_hits);
    out->cache_hit = false, out->memo_hit = true;
    out->compile_s = kn_now() - t0;
    return 0;
  }
  kn_llvm_init();
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = build_module(ctx, k, t, key, out, err, errlen);
  int rc = -1;
  if (mod) {
    rc = object_for(mod, t, out, err, errlen);
    LLVMDisposeModule(mod);
  } else if (!err[0])
    snprintf(err, errlen, "building the LLVM module failed");
  LLVMContextDispose(ctx);
  if (rc) {
    kn_compiled_free(out);
    return -1;
  }
  if (t->kind == KN_TARGET_CPU && cross_amd(k, err, errlen)) {
    kn_compiled_free(out);
    return -1;
  }
  out->compile_s = kn_now() - t0;
  memo_put(key, out);
  return 0;
}

static char *stream_text(void (*fn)(const void *, FILE *), const void *arg) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  fn(arg, f);
  fclose(f);
  return buf;
}

static void print_kernel(const void *k, FILE *f) { kn_kernel_print(k, f); }
static void print_lprog(const void *p, FILE *f) { kn_lprog_print(p, f); }

static char *dup_llvm(char *s) {
  char *r = s ? strdup(s) : NULL;
  if (s) LLVMDisposeMessage(s);
  return r;
}

int kn_kernel_texts_get(const kn_kernel *k, const kn_target *t, kn_kernel_texts *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!k || !t) return snprintf(err, errlen, "no kernel or target"), -1;
  out->ast = stream_text(print_kernel, k);
  if (k->kind == KN_KERNEL_EXPR) {
    kn_sched s;
    bool gpu = t->kind == KN_TARGET_AMDGPU;
    if (!(gpu ? kn_gpu_schedule : kn_opt_schedule)(k, t, &s, err, errlen)) {
      kn_lprog *lp = kn_lower(k, &s, err, errlen);
      if (lp) out->loopir = stream_text(print_lprog, lp), kn_lprog_free(lp);
    }
  }
  kn_llvm_init();
  LLVMContextRef ctx = LLVMContextCreate();
  kn_compiled c;
  memset(&c, 0, sizeof c);
  LLVMModuleRef mod = build_module(ctx, k, t, memo_key(k, t), &c, err, errlen);
  if (mod) {
    out->llvm_ir = dup_llvm(LLVMPrintModuleToString(mod));
    if (!kn_llvm_optimize(mod, t, OPT_LEVEL, err, errlen)) out->asm_text = kn_llvm_emit_asm(mod, t);
    LLVMDisposeModule(mod);
  }
  LLVMContextDispose(ctx);
  return mod ? 0 : -1;
}

void kn_kernel_texts_free(kn_kernel_texts *x) {
  free(x->ast), free(x->loopir), free(x->llvm_ir), free(x->asm_text);
  memset(x, 0, sizeof *x);
}
