/* Device layer and LLVM back end: kernels built by hand with the LLVM C API are optimized, emitted, loaded by the
 * CPU device and launched over 1..many threads on odd sizes, then compared with plain C; buffers, device names,
 * THREADS, load errors, and object emission for the aarch64 and AMDGPU targets. */
#include <llvm-c/Core.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device/elf.h"
#include "codegen/llvm_target.h"
#include "device/device.h"
#include "device/base/bytes.h"
#include "device/base/env.h"
#include "check.h"



static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 4.0f - 2.0f;
}

/* ---- hand-built kernels (the CPU calling convention: entry(bufs, vars, start, end)) ---- */

typedef struct {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMValueRef fn, bufs, vars, start, end, i;
  LLVMBasicBlockRef body, exit;
} kbuild;

static LLVMValueRef buf_ptr(kbuild *k, int idx) {
  LLVMTypeRef ptr = LLVMPointerTypeInContext(k->ctx, 0);
  LLVMValueRef ix = LLVMConstInt(LLVMInt64TypeInContext(k->ctx), (unsigned long long)idx, 0);
  LLVMValueRef slot = LLVMBuildGEP2(k->b, ptr, k->bufs, &ix, 1, "slot");
  return LLVMBuildLoad2(k->b, ptr, slot, "buf");
}

/* Opens a function `name` with a loop i in [start, end); the caller emits the body at k->b, then calls kend. */
static void kbegin(kbuild *k, const char *name) {
  k->ctx = LLVMContextCreate();
  k->mod = LLVMModuleCreateWithNameInContext(name, k->ctx);
  k->b = LLVMCreateBuilderInContext(k->ctx);
  LLVMTypeRef ptr = LLVMPointerTypeInContext(k->ctx, 0), i64 = LLVMInt64TypeInContext(k->ctx);
  LLVMTypeRef params[4] = {ptr, ptr, i64, i64};
  k->fn = LLVMAddFunction(k->mod, name, LLVMFunctionType(LLVMVoidTypeInContext(k->ctx), params, 4, 0));
  k->bufs = LLVMGetParam(k->fn, 0), k->vars = LLVMGetParam(k->fn, 1);
  k->start = LLVMGetParam(k->fn, 2), k->end = LLVMGetParam(k->fn, 3);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "entry");
  k->body = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "body");
  k->exit = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "exit");
  LLVMPositionBuilderAtEnd(k->b, entry);
  LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, k->start, k->end, "any"), k->body, k->exit);
  LLVMPositionBuilderAtEnd(k->b, k->body);
  k->i = LLVMBuildPhi(k->b, i64, "i");
}

static void kend(kbuild *k) {
  LLVMTypeRef i64 = LLVMInt64TypeInContext(k->ctx);
  LLVMValueRef next = LLVMBuildAdd(k->b, k->i, LLVMConstInt(i64, 1, 0), "next");
  LLVMBasicBlockRef from[2] = {LLVMGetEntryBasicBlock(k->fn), LLVMGetInsertBlock(k->b)};
  LLVMValueRef vals[2] = {k->start, next};
  LLVMAddIncoming(k->i, vals, from, 2);
  LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, next, k->end, "more"), k->body, k->exit);
  LLVMPositionBuilderAtEnd(k->b, k->exit);
  LLVMBuildRetVoid(k->b);
}

static void kfree(kbuild *k) {
  LLVMDisposeBuilder(k->b);
  LLVMDisposeModule(k->mod);
  LLVMContextDispose(k->ctx);
}

/* out[i] = a[i] * b[i] + (float)vars[0] */
static void build_fma(kbuild *k, const char *name) {
  kbegin(k, name);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(k->ctx), i64 = LLVMInt64TypeInContext(k->ctx);
  LLVMValueRef out = buf_ptr(k, 0), a = buf_ptr(k, 1), bb = buf_ptr(k, 2);
  LLVMValueRef v0 = LLVMBuildSIToFP(k->b, LLVMBuildLoad2(k->b, i64, k->vars, "v0"), f32, "v0f");
  LLVMValueRef av = LLVMBuildLoad2(k->b, f32, LLVMBuildGEP2(k->b, f32, a, &k->i, 1, "pa"), "av");
  LLVMValueRef bv = LLVMBuildLoad2(k->b, f32, LLVMBuildGEP2(k->b, f32, bb, &k->i, 1, "pb"), "bv");
  LLVMValueRef r = LLVMBuildFAdd(k->b, LLVMBuildFMul(k->b, av, bv, "m"), v0, "r");
  LLVMBuildStore(k->b, r, LLVMBuildGEP2(k->b, f32, out, &k->i, 1, "po"));
  kend(k);
}

/* cnt[i] += 1 (i32): every work item must run exactly once per launch */
static void build_count(kbuild *k, const char *name) {
  kbegin(k, name);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(k->ctx);
  LLVMValueRef p = LLVMBuildGEP2(k->b, i32, buf_ptr(k, 0), &k->i, 1, "p");
  LLVMValueRef v = LLVMBuildAdd(k->b, LLVMBuildLoad2(k->b, i32, p, "v"), LLVMConstInt(i32, 1, 0), "v1");
  LLVMBuildStore(k->b, v, p);
  kend(k);
}

/* out[i] = expf(a[i]) through the llvm.exp intrinsic: exercises external (libm) symbol resolution in the JIT */
static void build_exp(kbuild *k, const char *name) {
  kbegin(k, name);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(k->ctx);
  unsigned id = LLVMLookupIntrinsicID("llvm.exp", 8);
  LLVMValueRef fexp = LLVMGetIntrinsicDeclaration(k->mod, id, &f32, 1);
  LLVMValueRef out = buf_ptr(k, 0), a = buf_ptr(k, 1);
  LLVMValueRef av = LLVMBuildLoad2(k->b, f32, LLVMBuildGEP2(k->b, f32, a, &k->i, 1, "pa"), "av");
  LLVMValueRef r = LLVMBuildCall2(k->b, LLVMGlobalGetValueType(fexp), fexp, &av, 1, "e");
  LLVMBuildStore(k->b, r, LLVMBuildGEP2(k->b, f32, out, &k->i, 1, "po"));
  kend(k);
}

typedef void (*builder)(kbuild *k, const char *name);

/* Build, optimize and emit a kernel for t; returns the object (malloc'd) or NULL. */
static uint8_t *compile(builder bld, const char *name, const kn_target *t, size_t *n) {
  kbuild k;
  bld(&k, name);
  char err[512];
  uint8_t *obj = NULL;
  if (kn_llvm_optimize(k.mod, t, 2, err, sizeof err) || kn_llvm_emit_object(k.mod, t, &obj, n, err, sizeof err)) {
    check(0, "compile %s for %s: %s", name, t->triple, err);
    obj = NULL;
  }
  kfree(&k);
  return obj;
}

/* ---- tests ---- */

static kn_device *open_with_threads(const char *threads, char *err, size_t errlen) {
  if (threads) setenv("THREADS", threads, 1);
  else unsetenv("THREADS");
  kn_device *d = kn_device_open("CPU", err, errlen);
  unsetenv("THREADS");
  return d;
}

/* kn_grow (device/base/bytes.h): an array grown element by element keeps what it holds, doubles from its first
 * capacity, and a request it cannot meet fails with the array as it was. */
static void test_grow(void) {
  int64_t *a = NULL;
  int cap = 0, ok = 1, doublings = 0;
  for (int n = 0; n < 1000 && ok; n++) {
    int before = cap;
    ok = !kn_grow(&a, &cap, n + 1, sizeof *a, 4) && cap >= n + 1;
    if (ok && cap != before) doublings++, ok = before == 0 ? cap == 4 : cap == 2 * before;
    if (ok) a[n] = (int64_t)n * 7919 + 13;
  }
  for (int n = 0; n < 1000 && ok; n++) ok = a[n] == (int64_t)n * 7919 + 13;
  check(ok && doublings == 9, "kn_grow: 1000 elements kept in capacities 4..1024 (%d doublings, want 9)", doublings);
  int64_t *keep = a;
  int cap_before = cap;
  check(kn_grow(&a, &cap, cap + 1, (size_t)1 << 62, 4) == -1 && a == keep && cap == cap_before && a[999] == 999 * 7919 + 13,
        "kn_grow: a size that overflows fails and leaves the array as it was");
  check(kn_grow(&a, &cap, 10, sizeof *a, 4) == 0 && a == keep && cap == cap_before, "kn_grow: room already there");
  free(a);
}

static void test_names(void) {
  char err[512] = "";
  kn_device *d = kn_device_open("NOPE", err, sizeof err);
  check(!d && strstr(err, "NOPE") && strstr(err, "known: CPU, AMD"), "unknown device message: '%s'", err);
  setenv("DEVICE", "bogus", 1);
  d = kn_device_open(NULL, err, sizeof err);
  check(!d && !strncmp(err, "DEVICE=bogus: unknown device", 28), "DEVICE=bogus message: '%s'", err);
  setenv("DEVICE", "cpu", 1);
  d = kn_device_open(NULL, err, sizeof err);
  check(d && !strcmp(kn_device_name(d), "CPU"), "DEVICE=cpu opens CPU: %s", d ? "" : err);
  kn_device_close(d);
  unsetenv("DEVICE");
  d = kn_device_open("AMD", err, sizeof err);
  if (access("/dev/kfd", F_OK))
    check(!d && strstr(err, "/dev/kfd is missing") != NULL, "AMD without /dev/kfd names it: '%s'", err);
  kn_device_close(d);
}

static void test_threads(void) {
  char err[512] = "";
  kn_device *d = open_with_threads("3", err, sizeof err);
  check(d && kn_device_target(d)->ncores == 3, "THREADS=3 gives 3 cores: %s", d ? "" : err);
  kn_device_close(d);
  const char *bad[] = {"0", "-2", "abc", "4x", "100000"};
  for (int i = 0; i < 5; i++) {
    err[0] = 0;
    d = open_with_threads(bad[i], err, sizeof err);
    check(!d && strstr(err, "THREADS=") && strstr(err, bad[i]), "THREADS=%s must be refused: '%s'", bad[i], err);
    kn_device_close(d);
  }
  d = open_with_threads(NULL, err, sizeof err);
  check(d && kn_device_target(d)->ncores >= 1, "default THREADS");
  if (d) {
    const kn_target *t = kn_device_target(d);
    check(t->kind == KN_TARGET_CPU && t->triple[0] && t->cpu[0] && t->features[0], "host target filled");
    int vb = strstr(t->features, "+avx512f") ? 64 : strstr(t->features, "+avx2") ? 32 : 16;
    check(t->vector_bytes == vb, "vector_bytes %d, features imply %d", t->vector_bytes, vb);
    uint64_t total = 0, avail = 0;
    check(!kn_device_mem(d, &total, &avail) && total > 0 && avail > 0 && avail <= total, "device memory figures");
  }
  kn_device_close(d);
}

static void test_buffers(kn_device *d) {
  char err[512];
  size_t sizes[] = {0, 1, 63, 1000, 4097, (3u << 20) + 5};
  for (int s = 0; s < 6; s++) {
    size_t n = sizes[s];
    kn_buf *b = kn_buf_alloc(d, n, err, sizeof err);
    if (!b) {
      check(0, "alloc %zu: %s", n, err);
      continue;
    }
    check(((uintptr_t)b->ptr & 63) == 0, "alloc %zu: 64-byte aligned", n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= ((uint8_t *)b->ptr)[i] == 0;
    check(zero, "alloc %zu: zero-filled", n);
    uint8_t *src = malloc(n + 1), *dst = malloc(n + 1);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)(frand() * 100);
    check(!kn_buf_copyin(b, 0, src, n) && !kn_buf_copyout(b, 0, dst, n) && !memcmp(src, dst, n), "copy round trip %zu", n);
    if (n > 10) {
      check(!kn_buf_copyout(b, 3, dst, n - 3) && !memcmp(src + 3, dst, n - 3), "copy at offset %zu", n);
      check(kn_buf_copyin(b, n - 2, src, 3) != 0, "copyin past the end refused (%zu)", n);
      check(kn_buf_copyout(b, (size_t)-1, dst, 2) != 0, "copyout offset overflow refused (%zu)", n);
    }
    free(src);
    free(dst);
    kn_buf_free(b);
  }
  float host[37];
  for (int i = 0; i < 37; i++) host[i] = frand();
  kn_buf *w = kn_buf_wrap_host(d, host, sizeof host);
  check(w && w->ptr == (void *)host && w->borrowed, "wrap_host is zero-copy");
  if (w) {
    float v = 42.5f;
    kn_buf_copyin(w, 5 * sizeof(float), &v, sizeof v);
    check(host[5] == 42.5f, "write through a wrapped buffer lands in host memory");
    kn_buf_free(w);
  }
  check(kn_buf_alloc(d, (size_t)-1, err, sizeof err) == NULL, "absurd allocation refused");
}

static void run_fma(kn_device *d, kn_program *p, int64_t n, int64_t v0, const char *tag) {
  char err[512];
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *out = malloc(n * sizeof *out);
  for (int64_t i = 0; i < n; i++) a[i] = frand(), b[i] = frand();
  kn_buf *bo = kn_buf_alloc(d, n * sizeof(float), err, sizeof err), *ba = kn_buf_wrap_host(d, a, n * sizeof(float));
  kn_buf *bb = kn_buf_alloc(d, n * sizeof(float), err, sizeof err);
  kn_buf_copyin(bb, 0, b, n * sizeof(float));
  kn_buf *bufs[3] = {bo, ba, bb};
  int64_t g[3] = {n, 1, 1}, l[3] = {1, 1, 1};
  int rc = kn_program_launch(p, bufs, 3, &v0, 1, g, l, err, sizeof err);
  kn_device_sync(d);
  kn_buf_copyout(bo, 0, out, n * sizeof(float));
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 3; i++) {
    volatile float m = a[i] * b[i];
    float ref = m + (float)v0;
    if (fabsf(out[i] - ref) > 1e-6f * (1 + fabsf(ref))) {
      check(0, "%s n=%lld: out[%lld] = %g, expected %g", tag, (long long)n, (long long)i, out[i], ref);
      bad++;
    }
  }
  check(!rc && !bad, "%s n=%lld launch%s%s", tag, (long long)n, rc ? ": " : "", rc ? err : "");
  kn_buf_free(bo), kn_buf_free(ba), kn_buf_free(bb);
  free(a), free(b), free(out);
}

/* KILN_CPU narrows the host target (x86-64-v3 on an AVX-512 host: AVX2 code); names it cannot run are refused. */
static void test_kiln_cpu(void) {
  char err[512] = "";
  setenv("KILN_CPU", "no-such-cpu", 1);
  kn_device *d = kn_device_open("CPU", err, sizeof err);
  check(!d && strstr(err, "KILN_CPU=no-such-cpu") && strstr(err, "x86-64-v3"), "unknown KILN_CPU refused: '%s'", err);
  kn_device_close(d);
  setenv("KILN_CPU", "native", 1);
  d = kn_device_open("CPU", err, sizeof err);
  kn_target host = {0};
  if (check(d != NULL, "KILN_CPU=native opens: %s", err)) host = *kn_device_target(d);
  kn_device_close(d);
  bool avx512 = strstr(host.features, "+avx512f") != NULL;
  setenv("KILN_CPU", "x86-64-v3", 1);
  err[0] = 0;
  d = kn_device_open("CPU", err, sizeof err);
  if (strncmp(host.triple, "x86_64", 6) || !strstr(host.features, "+avx2")) {
    check(!d && strstr(err, "KILN_CPU=x86-64-v3"), "KILN_CPU=x86-64-v3 refused on this host: '%s'", err);
  } else if (check(d != NULL, "KILN_CPU=x86-64-v3 opens: %s", err)) {
    const kn_target *t = kn_device_target(d);
    check(!strcmp(t->cpu, "x86-64-v3") && t->vector_bytes == 32 && strstr(t->features, "+avx2") &&
              !strstr(t->features, "+avx512"), "x86-64-v3 target: %s %d bytes %s", t->cpu, t->vector_bytes, t->features);
    /* what the host lacks stays off in a named target (LLVM would enable all the CPU name implies) */
    int absent = 0, kept = 0;
    for (const char *f = strstr(host.features, ",-"); f; f = strstr(f + 1, ",-")) {
      char want[64];
      snprintf(want, sizeof want, "%.*s,", (int)strcspn(f + 1, ","), f + 1);
      char have[sizeof t->features + 1];
      snprintf(have, sizeof have, "%s,", t->features);
      absent++, kept += strstr(have, want) != NULL;
    }
    check(kept == absent, "%d of the host's %d absent features off in the x86-64-v3 target: %s", kept, absent, t->features);
    size_t n = 0;
    uint8_t *obj = compile(build_fma, "kn_fma", t, &n);
    kn_program *p = obj ? kn_program_load(d, "kn_fma", obj, n, err, sizeof err) : NULL;
    check(p != NULL, "AVX2 program loads: %s", err);
    if (p) run_fma(d, p, 1000, 0, "x86-64-v3");
    kn_program_free(p);
    free(obj);
  }
  kn_device_close(d);
  setenv("KILN_CPU", "x86-64-v4", 1);
  err[0] = 0;
  d = kn_device_open("CPU", err, sizeof err);
  if (avx512) check(d && kn_device_target(d)->vector_bytes == 64, "KILN_CPU=x86-64-v4 on an AVX-512 host: %s", err);
  else check(!d && strstr(err, "avx512"), "KILN_CPU=x86-64-v4 without AVX-512 names the feature: '%s'", err);
  kn_device_close(d);
  unsetenv("KILN_CPU");
}

static void test_kernels(void) {
  kn_llvm_init();
  const char *threads[] = {"1", "2", "3", "5", "8"};
  int64_t sizes[] = {1, 2, 7, 1000, 4097, 100003};
  for (int t = 0; t < 5; t++) {
    char err[512], tag[64];
    kn_device *d = open_with_threads(threads[t], err, sizeof err);
    if (!d) {
      check(0, "open CPU with THREADS=%s: %s", threads[t], err);
      continue;
    }
    size_t n = 0;
    uint8_t *obj = compile(build_fma, "k_fma", kn_device_target(d), &n);
    kn_program *p = obj ? kn_program_load(d, "k_fma", obj, n, err, sizeof err) : NULL;
    check(p != NULL, "load k_fma: %s", p ? "" : err);
    snprintf(tag, sizeof tag, "fma THREADS=%s", threads[t]);
    for (int s = 0; p && s < 6; s++) run_fma(d, p, sizes[s], (int64_t)(frand() * 10), tag);
    kn_program_free(p);
    free(obj);

    /* every item exactly once over repeated launches of many sizes */
    obj = compile(build_count, "k_count", kn_device_target(d), &n);
    p = obj ? kn_program_load(d, "k_count", obj, n, err, sizeof err) : NULL;
    check(p != NULL, "load k_count: %s", p ? "" : err);
    for (int64_t sz = 1; p && sz < 300; sz += 37) {
      kn_buf *c = kn_buf_alloc(d, sz * 4, err, sizeof err);
      int64_t g[3] = {sz, 1, 1};
      for (int r = 0; r < 50; r++) kn_program_launch(p, &c, 1, NULL, 0, g, NULL, err, sizeof err);
      int ok = 1;
      for (int64_t i = 0; i < sz; i++) ok &= ((int32_t *)c->ptr)[i] == 50;
      check(ok, "count THREADS=%s n=%lld: every item ran exactly 50 times", threads[t], (long long)sz);
      kn_buf_free(c);
    }
    kn_program_free(p);
    free(obj);
    kn_device_close(d);
  }
}

static void test_exp_and_timing(kn_device *d) {
  char err[512];
  size_t n = 0;
  uint8_t *obj = compile(build_exp, "k_exp", kn_device_target(d), &n);
  kn_program *p = obj ? kn_program_load(d, "k_exp", obj, n, err, sizeof err) : NULL;
  check(p != NULL, "load k_exp (libm calls): %s", p ? "" : err);
  if (p) {
    enum { N = 999 };
    float a[N], out[N];
    for (int i = 0; i < N; i++) a[i] = frand() * 5;
    kn_buf *bo = kn_buf_wrap_host(d, out, sizeof out), *ba = kn_buf_wrap_host(d, a, sizeof a);
    kn_buf *bufs[2] = {bo, ba};
    int64_t g[3] = {N, 1, 1};
    check(!kn_program_launch(p, bufs, 2, NULL, 0, g, NULL, err, sizeof err), "launch k_exp: %s", err);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += fabsf(out[i] - expf(a[i])) > 1e-5f * expf(a[i]);
    check(!bad, "k_exp matches expf (%d mismatches)", bad);
    /* launch latency of a small kernel: what a decode step pays per kernel */
    int64_t g2[3] = {256, 1, 1};
    int reps = 2000;
    double t0 = kn_now();
    for (int r = 0; r < reps; r++) kn_program_launch(p, bufs, 2, NULL, 0, g2, NULL, err, sizeof err);
    double dt = kn_now() - t0;
    printf("small-kernel launch: %.2f us per launch (%d threads, 256 items)\n", dt / reps * 1e6,
           kn_device_target(d)->ncores);
    kn_buf_free(bo), kn_buf_free(ba);
  }
  kn_program_free(p);
  /* two programs with the same entry name coexist */
  kn_program *p1 = obj ? kn_program_load(d, "k_exp", obj, n, err, sizeof err) : NULL;
  kn_program *p2 = obj ? kn_program_load(d, "k_exp", obj, n, err, sizeof err) : NULL;
  check(p1 && p2, "same entry loaded twice: %s", p1 && p2 ? "" : err);
  kn_program_free(p1), kn_program_free(p2);
  /* load errors */
  err[0] = 0;
  check(!kn_program_load(d, "k_exp", "garbage!", 8, err, sizeof err) && err[0], "garbage object refused: %s", err);
  err[0] = 0;
  check(obj && !kn_program_load(d, "no_such_fn", obj, n, err, sizeof err) && strstr(err, "no_such_fn"),
        "missing entry refused with its name: %s", err);
  free(obj);
}

typedef struct {
  kn_program *p;
  kn_buf *c;
  int64_t n;
  int reps, rc;
} launcher;

static void *launch_many(void *arg) {
  launcher *l = arg;
  char err[256];
  int64_t g[3] = {l->n, 1, 1};
  for (int r = 0; r < l->reps; r++) l->rc |= kn_program_launch(l->p, &l->c, 1, NULL, 0, g, NULL, err, sizeof err);
  return NULL;
}

/* Two application threads launching on one device at once: launches are serialized, none is lost or doubled. */
static void test_concurrent_launch(void) {
  char err[512];
  kn_device *d = open_with_threads("3", err, sizeof err);
  size_t n = 0;
  uint8_t *obj = d ? compile(build_count, "k_cc", kn_device_target(d), &n) : NULL;
  kn_program *p = obj ? kn_program_load(d, "k_cc", obj, n, err, sizeof err) : NULL;
  check(p != NULL, "concurrent: load: %s", p ? "" : err);
  if (p) {
    launcher l[2] = {{p, kn_buf_alloc(d, 1001 * 4, err, sizeof err), 1001, 300, 0},
                     {p, kn_buf_alloc(d, 77 * 4, err, sizeof err), 77, 500, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, launch_many, &l[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
      int ok = !l[i].rc;
      for (int64_t k = 0; k < l[i].n; k++) ok &= ((int32_t *)l[i].c->ptr)[k] == l[i].reps;
      check(ok, "concurrent launcher %d: every item ran %d times", i, l[i].reps);
      kn_buf_free(l[i].c);
    }
  }
  kn_program_free(p);
  free(obj);
  kn_device_close(d);
}

/* Launch cost of a tiny kernel per thread count: the per-kernel overhead of a decode step. Printed, not judged. */
static void report_latency(void) {
  const char *threads[] = {"1", "2", "4"};
  for (int t = 0; t < 3; t++) {
    char err[512];
    kn_device *d = open_with_threads(threads[t], err, sizeof err);
    size_t n = 0;
    uint8_t *obj = d ? compile(build_count, "k_lat", kn_device_target(d), &n) : NULL;
    kn_program *p = obj ? kn_program_load(d, "k_lat", obj, n, err, sizeof err) : NULL;
    if (p) {
      kn_buf *c = kn_buf_alloc(d, 4096 * 4, err, sizeof err);
      int64_t g[3] = {4096, 1, 1};
      int reps = 3000;
      double t0 = kn_now();
      for (int r = 0; r < reps; r++) kn_program_launch(p, &c, 1, NULL, 0, g, NULL, err, sizeof err);
      double dt = kn_now() - t0;
      printf("launch of a 4096-item kernel: %.2f us (THREADS=%s)\n", dt / reps * 1e6, threads[t]);
      kn_buf_free(c);
    }
    kn_program_free(p);
    free(obj);
    kn_device_close(d);
  }
}

static void test_host_text(kn_device *d) {
  size_t n = 0;
  const kn_target *t = kn_device_target(d);
  uint8_t *obj = compile(build_fma, "k_text", t, &n);
  char *dis = obj ? kn_llvm_disassemble(obj, n, t) : NULL;
  check(dis && strstr(dis, "k_text:") && strstr(dis, "ret"), "host disassembly names the function and has a ret");
  kbuild k;
  build_fma(&k, "k_asm");
  char *as = kn_llvm_emit_asm(k.mod, t);
  check(as && strstr(as, "k_asm:"), "host assembly text");
  kfree(&k);
  free(as), free(dis), free(obj);
  const char *v = kn_llvm_version();
  unsigned maj = 0, min = 0, pat = 0;
  check(sscanf(v, "%u.%u.%u", &maj, &min, &pat) == 3 && maj >= 19, "kn_llvm_version '%s'", v);
  kbuild bad;
  kbegin(&bad, "k_bad"); /* no terminator in the loop body: the verifier must refuse it */
  char err[512] = "";
  check(kn_llvm_optimize(bad.mod, t, 2, err, sizeof err) != 0 && strstr(err, "invalid LLVM IR"), "invalid IR refused: %s", err);
  kfree(&bad);
}

/* out[id] = a[id] * 2 + 1 as an AMDGPU kernel (addrspace 1 pointers, workitem.id.x) */
static LLVMModuleRef build_amdgpu(LLVMContextRef ctx) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("amd", ctx);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMTypeRef gp = LLVMPointerTypeInContext(ctx, 1), f32 = LLVMFloatTypeInContext(ctx), i32 = LLVMInt32TypeInContext(ctx);
  LLVMTypeRef params[2] = {gp, gp};
  LLVMValueRef fn = LLVMAddFunction(m, "k_amd", LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 2, 0));
  LLVMSetFunctionCallConv(fn, LLVMAMDGPUKERNELCallConv);
  LLVMTypeRef tid_t = LLVMFunctionType(i32, NULL, 0, 0);
  LLVMValueRef tid_fn = LLVMAddFunction(m, "llvm.amdgcn.workitem.id.x", tid_t);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
  LLVMValueRef id = LLVMBuildCall2(b, tid_t, tid_fn, NULL, 0, "id");
  LLVMValueRef av = LLVMBuildLoad2(b, f32, LLVMBuildGEP2(b, f32, LLVMGetParam(fn, 1), &id, 1, "pa"), "a");
  LLVMValueRef r = LLVMBuildFAdd(b, LLVMBuildFMul(b, av, LLVMConstReal(f32, 2), "m"), LLVMConstReal(f32, 1), "r");
  LLVMBuildStore(b, r, LLVMBuildGEP2(b, f32, LLVMGetParam(fn, 0), &id, 1, "po"));
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  return m;
}

static void cross_target(const char *triple, const char *cpu, int machine, const char *mnemonic, int amd) {
  kn_target t = {.kind = amd ? KN_TARGET_AMDGPU : KN_TARGET_CPU, .vector_bytes = 16, .ncores = 1};
  snprintf(t.triple, sizeof t.triple, "%s", triple);
  snprintf(t.cpu, sizeof t.cpu, "%s", cpu);
  LLVMContextRef ctx = NULL;
  LLVMModuleRef m;
  kbuild k;
  if (amd) {
    ctx = LLVMContextCreate();
    m = build_amdgpu(ctx);
  } else {
    build_fma(&k, "k_cross");
    m = k.mod;
  }
  char err[512] = "";
  uint8_t *obj = NULL;
  size_t n = 0;
  int rc = kn_llvm_optimize(m, &t, 2, err, sizeof err);
  if (!rc) rc = kn_llvm_emit_object(m, &t, &obj, &n, err, sizeof err);
  if (rc && strstr(err, "No available targets")) {
    printf("skip: LLVM has no %s target (%s)\n", triple, err);
  } else {
    check(!rc, "emit for %s %s: %s", triple, cpu, err);
    kn_elf e;
    if (!rc && !kn_elf_parse(obj, n, &e, err, sizeof err)) {
      int text = 0;
      for (int i = 0; i < e.nsec; i++) text |= e.sec[i].exec && e.sec[i].size > 0;
      check(e.machine == machine && text, "%s object: ELF machine %u (want %d), code present %d", triple, e.machine,
            machine, text);
      kn_elf_free(&e);
      char *dis = kn_llvm_disassemble(obj, n, &t);
      check(dis && strstr(dis, mnemonic), "%s disassembly contains '%s'", triple, mnemonic);
      free(dis);
    } else if (!rc) {
      check(0, "%s object does not parse: %s", triple, err);
    }
  }
  free(obj);
  if (amd) {
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
  } else {
    kfree(&k);
  }
}

int main(void) {
  char err[512];
  test_grow();
  test_names();
  test_threads();
  test_kiln_cpu();
  kn_device *d = kn_device_open("CPU", err, sizeof err);
  if (!d) {
    printf("FAIL: open CPU: %s\n0 passed, 1 failed\n", err);
    return 1;
  }
  test_buffers(d);
  test_kernels();
  test_exp_and_timing(d);
  test_host_text(d);
  test_concurrent_launch();
  report_latency();
  kn_device_close(d);
  cross_target("aarch64-unknown-linux-gnu", "generic", 183, "ret", 0);
  cross_target("amdgcn-amd-amdhsa", "gfx1100", 224, "s_endpgm", 1);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
