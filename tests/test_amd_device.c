/* The AMD device over the emulated /dev/kfd (DEVICE=AMD:EMU): device names and errors, the target, VRAM size and
 * accounting, buffer round trips with random data, the AQL queue and its signals (barrier-AND packets held back by
 * a dependency, ring wrap-around, KFD events, a fault on a bad signal address), and kernels built with LLVM-C for
 * gfx1100 launched through the real device code and checked against plain C, with the emulator's counters; a kernel
 * that faults ends its launch and the device serves the next ones (a fresh queue); kn_device_stop ends a running
 * dispatch early.
 * `test_amd_device hw` runs the memory, queue and launch cases on the real GPU (DEVICE=AMD); without /dev/kfd it
 * exits 77 (skipped). */
#include <llvm-c/Core.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "codegen/llvm_target.h"
#include "device/amd/kfd.h"
#include "device/amd/kfd_emu.h"
#include "device/device.h"
#include "device/base/env.h"
#include "check.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* ---- device names, target, memory size ---- */

static void open_errors(void) {
  char err[512] = "";
  if (access("/dev/kfd", F_OK)) {
    kn_device *d = kn_device_open("AMD", err, sizeof err);
    check(!d && strstr(err, "/dev/kfd") && strstr(err, "AMD:EMU"), "DEVICE=AMD without /dev/kfd says why: %s", err);
    kn_device_close(d);
  }
  setenv("AMD_EMU_VRAM", "lots", 1);
  kn_device *d = kn_device_open("AMD:EMU", err, sizeof err);
  check(!d && strstr(err, "AMD_EMU_VRAM=lots"), "a bad AMD_EMU_VRAM is named: %s", err);
  kn_device_close(d);
  unsetenv("AMD_EMU_VRAM");
}

static void target_and_size(void) {
  char err[512] = "";
  kn_device *d = kn_device_open("amd:emu", err, sizeof err);
  if (!check(d != NULL, "open AMD:EMU: %s", err)) return;
  const kn_target *t = kn_device_target(d);
  check(t->kind == KN_TARGET_AMDGPU && !strcmp(t->triple, "amdgcn-amd-amdhsa") && !strcmp(t->cpu, "gfx1100") &&
            t->ncores == 84,
        "target %s %s, %d CUs", t->triple, t->cpu, t->ncores);
  uint64_t total = 0, avail0 = 0, avail = 0;
  kn_device_mem(d, &total, &avail0);
  /* the queue's EOP buffer and context save area (sized for 84 CUs) are in VRAM too */
  check(total == 20ull << 30 && avail0 < total && avail0 > total - (64ull << 20),
        "default VRAM 20 GiB (the 7900 XT): %llu, free %llu", (unsigned long long)total, (unsigned long long)avail0);
  /* 16 GiB costs address space only until touched */
  kn_buf *big = kn_buf_alloc(d, 16ull << 30, err, sizeof err);
  if (check(big != NULL, "16 GiB buffer on a 20 GiB device: %s", err)) {
    uint64_t v = 0x1234567890abcdefull, w = 0;
    check(!kn_buf_copyin(big, (16ull << 30) - 8, &v, 8) && !kn_buf_copyout(big, (16ull << 30) - 8, &w, 8) && v == w,
          "last word of a 16 GiB buffer round-trips");
    kn_device_mem(d, &total, &avail);
    check(avail == avail0 - (16ull << 30), "free VRAM drops by 16 GiB: %llu", (unsigned long long)avail);
    kn_buf *more = kn_buf_alloc(d, 5ull << 30, err, sizeof err);
    check(!more && strstr(err, "out of GPU memory"), "5 GiB more does not fit: %s", err);
    kn_buf_free(more);
    kn_buf_free(big);
  }
  kn_device_mem(d, &total, &avail);
  check(avail == avail0, "freeing returns the VRAM: %llu of %llu", (unsigned long long)avail,
        (unsigned long long)avail0);
  kn_device_close(d);

  setenv("AMD_EMU_VRAM", "0.5", 1);
  setenv("AMD_ARCH", "gfx1030", 1);
  d = kn_device_open("AMD:EMU", err, sizeof err);
  if (check(d != NULL, "open AMD:EMU with 0.5 GiB: %s", err)) {
    kn_device_mem(d, &total, &avail);
    check(total == 512ull << 20, "AMD_EMU_VRAM=0.5 gives 512 MiB: %llu", (unsigned long long)total);
    check(!strcmp(kn_device_target(d)->cpu, "gfx1030"), "AMD_ARCH overrides the codegen target: %s",
          kn_device_target(d)->cpu);
    kn_device_close(d);
  }
  unsetenv("AMD_EMU_VRAM");
  unsetenv("AMD_ARCH");
}

/* ---- buffers ---- */

static void round_trips(kn_device *d) {
  char err[512] = "";
  enum { NB = 12 };
  kn_buf *b[NB] = {0};
  uint8_t *want[NB] = {0};
  for (int i = 0; i < NB; i++) {
    size_t n = 1 + next() % (i < 4 ? 64 : 3u << 20);
    b[i] = kn_buf_alloc(d, n, err, sizeof err);
    want[i] = malloc(n);
    if (!check(b[i] && want[i], "alloc %zu bytes: %s", n, err)) return;
    check(b[i]->va && !(b[i]->va & 4095), "buffer %d has a page-aligned GPU address 0x%llx", i,
          (unsigned long long)b[i]->va);
    for (size_t j = 0; j < n; j++) want[i][j] = (uint8_t)next();
    check(!kn_buf_copyin(b[i], 0, want[i], n), "copyin %zu bytes", n);
  }
  for (int r = 0; r < 200; r++) { /* random patches at random offsets, then everything read back */
    int i = (int)(next() % NB);
    size_t n = b[i]->nbytes, off = next() % n, len = 1 + next() % (n - off);
    uint8_t *patch = malloc(len);
    for (size_t j = 0; j < len; j++) patch[j] = (uint8_t)next();
    kn_buf_copyin(b[i], off, patch, len);
    memcpy(want[i] + off, patch, len);
    free(patch);
  }
  for (int i = 0; i < NB; i++) {
    uint8_t *got = malloc(b[i]->nbytes);
    check(!kn_buf_copyout(b[i], 0, got, b[i]->nbytes) && !memcmp(got, want[i], b[i]->nbytes),
          "buffer %d (%zu bytes) reads back what was written", i, b[i]->nbytes);
    size_t off = next() % b[i]->nbytes;
    check(!kn_buf_copyout(b[i], off, got, b[i]->nbytes - off) && !memcmp(got, want[i] + off, b[i]->nbytes - off),
          "buffer %d from offset %zu", i, off);
    check(kn_buf_copyout(b[i], 1, got, b[i]->nbytes) != 0, "copyout past the end is refused");
    free(got);
    free(want[i]);
    kn_buf_free(b[i]);
  }
}

/* ---- queue and signals, straight on the KFD layer ---- */

static void queue_and_signals(kn_amd_transport *t, bool emu) {
  char err[640] = "";
  kn_kfd k;
  kn_kfd_queue q;
  if (!check(!kn_kfd_open(&k, t, err, sizeof err), "kfd open: %s", err)) return;
  check(!emu || (!strcmp(k.topo.arch, "gfx1100") && k.topo.cu_count == 84 && k.topo.wave_count == 84 * 32),
        "topology: %s, %u CUs, %u waves", k.topo.arch, k.topo.cu_count, k.topo.wave_count);
  check(kn_kfd_queue_create(&k, &q, 1024, err, sizeof err) && strstr(err, "power of two"), "a 1 KiB ring is refused: %s",
        err);
  /* a 64-slot ring, so 200 packets wrap around it several times */
  if (!check(!kn_kfd_queue_create(&k, &q, 4096, err, sizeof err), "AQL queue: %s", err)) {
    kn_kfd_close(&k);
    return;
  }
  int ok = 1;
  for (int i = 0; i < 200 && ok; i++) ok = !kn_kfd_submit_barrier(&q, NULL, NULL, err, sizeof err);
  check(ok && !kn_kfd_queue_idle(&q, err, sizeof err) && *q.rptr == 200 && q.done->value == 0,
        "200 barrier packets through a 64-slot ring: read index %llu, %s", (unsigned long long)*q.rptr, err);

  /* barrier-AND holds the queue until its dependency reaches 0 */
  kn_amd_signal *dep = kn_kfd_signal_new(&q, 1), *dep2 = kn_kfd_signal_new(&q, 0);
  kn_amd_signal *fin = kn_kfd_signal_new(&q, 1);
  uint64_t deps[5] = {kn_kfd_signal_va(&q, dep), 0, kn_kfd_signal_va(&q, dep2)};
  check(!kn_kfd_submit_barrier(&q, deps, fin, err, sizeof err), "barrier-AND submitted: %s", err);
  check(!kn_kfd_submit_barrier(&q, NULL, NULL, err, sizeof err), "a barrier behind it: %s", err);
  check(fin->value == 1 && (!emu || *q.rptr == 200), "the barrier waits on its dependency (completion %lld, read %llu)",
        (long long)fin->value, (unsigned long long)*q.rptr);
  __atomic_store_n(&dep->value, 0, __ATOMIC_RELEASE);
  kn_kfd_queue_kick(&q);
  check(!kn_kfd_signal_wait(&q, fin, 0, err, sizeof err) && fin->value == 0, "dependency met: the barrier completes");
  uint64_t slot = ((uint64_t *)k.event_page.cpu)[(k.signal_mailbox - k.event_page.va) / 8];
  check(slot == k.signal_trigger, "completion wrote the event mailbox (%llu, want %u)", (unsigned long long)slot,
        k.signal_trigger);
  check(!kn_kfd_queue_idle(&q, err, sizeof err) && *q.rptr == q.put && q.put >= 202,
        "queue idle at read index %llu of %llu: %s", (unsigned long long)*q.rptr, (unsigned long long)q.put, err);

  /* a dependency at an address nothing maps is a GPU memory fault, reported by the wait */
  if (!emu) goto out;
  uint64_t bad[5] = {0x10000};
  kn_amd_signal *never = kn_kfd_signal_new(&q, 1);
  kn_kfd_submit_barrier(&q, bad, never, err, sizeof err);
  int rc = kn_kfd_signal_wait(&q, never, 0, err, sizeof err);
  check(rc && strstr(err, "memory fault") && strstr(err, "0x10000"), "fault reported: %s", err);
out:
  kn_kfd_queue_destroy(&q);
  kn_kfd_close(&k);
}

static void kfd_checks(void) {
  char err[256] = "";
  kn_amd_transport *t = kn_kfd_emu_create(KN_KFD_EMU_DEFAULT_VRAM, 1, err, sizeof err);
  if (!check(t != NULL, "emulator: %s", err)) return;
  queue_and_signals(t, true);
  /* what the emulated KFD refuses, as the kernel does */
  kn_kfd k;
  if (!kn_kfd_open(&k, t, err, sizeof err)) {
    kn_kfd_mem m;
    check(kn_kfd_alloc(&k, 21ull << 30, KN_KFD_VRAM, &m, err, sizeof err) && strstr(err, "out of GPU memory"),
          "21 GiB of VRAM refused: %s", err);
    void *p = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(t->mmap(t, p, 8192, PROT_READ, MAP_SHARED | MAP_FIXED, 0x7f4b1, 12345) == MAP_FAILED,
          "mmap of an unknown render-node offset fails");
    munmap(p, 8192);
    kn_kfd_queue q;
    k.topo.cu_count = 96, k.topo.wave_count = 96 * 32; /* a save area sized for another GPU */
    check(kn_kfd_queue_create(&k, &q, 4096, err, sizeof err) && strstr(err, "control stack"),
          "a save area sized for 96 CUs is refused on an 84-CU GPU: %s", err);
    kn_kfd_close(&k);
  }
  t->destroy(t);
}

/* ---- kernels ---- */

/* out[i] = a[i] + b[i] * k for i < n, i = workgroup.x * 64 + workitem.x; n an int32, k an int64 variable */
static LLVMModuleRef build_axpy(LLVMContextRef ctx) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("axpy", ctx);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMTypeRef gp = LLVMPointerTypeInContext(ctx, 1), f32 = LLVMFloatTypeInContext(ctx);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), i64 = LLVMInt64TypeInContext(ctx);
  LLVMTypeRef params[5] = {gp, gp, gp, i32, i64};
  LLVMValueRef fn = LLVMAddFunction(m, "axpy", LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 5, 0));
  LLVMSetFunctionCallConv(fn, LLVMAMDGPUKERNELCallConv);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(ctx, "amdgpu-flat-work-group-size", 27, "1,256", 5));
  LLVMTypeRef id_t = LLVMFunctionType(i32, NULL, 0, 0);
  LLVMValueRef tid_fn = LLVMAddFunction(m, "llvm.amdgcn.workitem.id.x", id_t);
  LLVMValueRef wg_fn = LLVMAddFunction(m, "llvm.amdgcn.workgroup.id.x", id_t);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(ctx, fn, "body");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(ctx, fn, "done");
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef tid = LLVMBuildCall2(b, id_t, tid_fn, NULL, 0, "tid");
  LLVMValueRef wg = LLVMBuildCall2(b, id_t, wg_fn, NULL, 0, "wg");
  LLVMValueRef i = LLVMBuildAdd(b, LLVMBuildMul(b, wg, LLVMConstInt(i32, 64, 0), "base"), tid, "i");
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, i, LLVMGetParam(fn, 3), "in"), body, done);
  LLVMPositionBuilderAtEnd(b, body);
  LLVMValueRef ix = LLVMBuildSExt(b, i, i64, "ix");
  LLVMValueRef av = LLVMBuildLoad2(b, f32, LLVMBuildGEP2(b, f32, LLVMGetParam(fn, 1), &ix, 1, "pa"), "a");
  LLVMValueRef bv = LLVMBuildLoad2(b, f32, LLVMBuildGEP2(b, f32, LLVMGetParam(fn, 2), &ix, 1, "pb"), "b");
  LLVMValueRef k32 = LLVMBuildTrunc(b, LLVMGetParam(fn, 4), i32, "k32"); /* an int64 argument, used as int32 */
  LLVMValueRef kf = LLVMBuildSIToFP(b, k32, f32, "k");
  LLVMValueRef r = LLVMBuildFAdd(b, av, LLVMBuildFMul(b, bv, kf, "bk"), "r");
  LLVMBuildStore(b, r, LLVMBuildGEP2(b, f32, LLVMGetParam(fn, 0), &ix, 1, "po"));
  LLVMBuildBr(b, done);
  LLVMPositionBuilderAtEnd(b, done);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  return m;
}

static kn_program *load_axpy(kn_device *d) {
  char err[512] = "";
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef m = build_axpy(ctx);
  uint8_t *obj = NULL;
  size_t n = 0;
  int rc = kn_llvm_optimize(m, kn_device_target(d), 2, err, sizeof err);
  if (!rc) rc = kn_llvm_emit_object(m, kn_device_target(d), &obj, &n, err, sizeof err);
  LLVMDisposeModule(m);
  LLVMContextDispose(ctx);
  if (!check(!rc, "axpy for %s: %s", kn_device_target(d)->cpu, err)) return NULL;
  kn_program *p = kn_program_load(d, "axpy", obj, n, err, sizeof err);
  check(p != NULL, "load axpy: %s", err);
  kn_program *missing = kn_program_load(d, "nope", obj, n, err, sizeof err);
  check(!missing && strstr(err, "nope"), "a missing kernel is named: %s", err);
  free(obj);
  return p;
}

static float frand(void) { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 4.0f - 2.0f; }

static void launches(kn_device *d, bool counts) {
  kn_program *p = load_axpy(d);
  if (!p) return;
  char err[640] = "";
  kn_device_counters_reset(d);
  static const int sizes[] = {1, 63, 64, 65, 1000, 4099};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    int n = sizes[s];
    size_t bytes = (size_t)n * 4;
    float *a = malloc(bytes), *bb = malloc(bytes), *out = malloc(bytes + 4);
    for (int i = 0; i < n; i++) a[i] = frand(), bb[i] = frand();
    kn_buf *ba = kn_buf_alloc(d, bytes, err, sizeof err), *bbf = kn_buf_alloc(d, bytes, err, sizeof err);
    kn_buf *bo = kn_buf_alloc(d, bytes + 4, err, sizeof err);
    float poison = -12345.0f;
    for (int i = 0; i <= n; i++) out[i] = poison;
    kn_buf_copyin(ba, 0, a, bytes), kn_buf_copyin(bbf, 0, bb, bytes), kn_buf_copyin(bo, 0, out, bytes + 4);
    kn_buf *bufs[3] = {bo, ba, bbf};
    int64_t vars[2] = {n, -3};
    int64_t global[3] = {(n + 63) / 64, 1, 1}, local[3] = {64, 1, 1};
    int rc = kn_program_launch(p, bufs, 3, vars, 2, global, local, err, sizeof err);
    if (check(!rc, "launch axpy n=%d: %s", n, err)) {
      kn_buf_copyout(bo, 0, out, bytes + 4);
      int bad = 0;
      for (int i = 0; i < n; i++) bad += out[i] != a[i] + bb[i] * -3.0f;
      check(!bad && out[n] == poison, "axpy n=%d: %d wrong, element past the end %s", n, bad,
            out[n] == poison ? "untouched" : "written");
    }
    kn_buf_free(ba), kn_buf_free(bbf), kn_buf_free(bo);
    free(a), free(bb), free(out);
  }
  /* the argument list must match the kernel's */
  kn_buf *x = kn_buf_alloc(d, 64, err, sizeof err);
  kn_buf *two[2] = {x, x};
  int64_t vars[2] = {1, 1}, g[3] = {1, 1, 1}, l[3] = {64, 1, 1};
  check(kn_program_launch(p, two, 2, vars, 2, g, l, err, sizeof err) && strstr(err, "buffers"),
        "too few buffers named: %s", err);
  int64_t wide[3] = {2048, 1, 1};
  kn_buf *three[3] = {x, x, x};
  check(kn_program_launch(p, three, 3, vars, 2, g, wide, err, sizeof err) && strstr(err, "workgroup"),
        "oversized workgroup refused: %s", err);
  kn_buf_free(x);
  check(kn_device_sync(d) == 0, "sync");
  if (counts) {
    kn_kernel_counters c[4];
    int nc = kn_device_counters(d, c, 4);
    uint64_t elems = 1 + 63 + 64 + 65 + 1000 + 4099, wgs = 1 + 1 + 1 + 2 + 16 + 65, waves = wgs * 2; /* wave32 */
    check(nc == 1 && !strcmp(c[0].name, "axpy") && c[0].launches == 6, "counters for axpy: %d kernels, %s x%llu",
          nc, nc ? c[0].name : "-", nc ? (unsigned long long)c[0].launches : 0ull);
    if (nc == 1) {
      check(c[0].waves == waves && c[0].workgroups == wgs, "waves counted: %llu (want %llu), workgroups %llu (want "
            "%llu)", (unsigned long long)c[0].waves, (unsigned long long)waves, (unsigned long long)c[0].workgroups,
            (unsigned long long)wgs);
      check(c[0].global_written == elems * 4 && c[0].global_read >= elems * 8,
            "global bytes: %llu read (>= %llu), %llu written (want %llu)", (unsigned long long)c[0].global_read,
            (unsigned long long)elems * 8, (unsigned long long)c[0].global_written, (unsigned long long)elems * 4);
      check(c[0].insts[1] > 0 && c[0].insts[3] > 0, "instructions: %llu %s, %llu %s", (unsigned long long)c[0].insts[1],
            kn_counter_class_name(1), (unsigned long long)c[0].insts[3], kn_counter_class_name(3));
    }
  }
  kn_program_free(p);
}

/* One axpy of n random elements; true when it launched and every output is right. */
static bool axpy_ok(kn_device *d, kn_program *p, int n, char *err, size_t errlen) {
  size_t bytes = (size_t)n * 4;
  float *a = malloc(bytes), *bb = malloc(bytes), *out = malloc(bytes);
  for (int i = 0; i < n; i++) a[i] = frand(), bb[i] = frand(), out[i] = -12345.0f;
  kn_buf *ba = kn_buf_alloc(d, bytes, err, errlen), *bbf = kn_buf_alloc(d, bytes, err, errlen);
  kn_buf *bo = kn_buf_alloc(d, bytes, err, errlen);
  bool ok = ba && bbf && bo && !kn_buf_copyin(ba, 0, a, bytes) && !kn_buf_copyin(bbf, 0, bb, bytes) &&
            !kn_buf_copyin(bo, 0, out, bytes);
  kn_buf *bufs[3] = {bo, ba, bbf};
  int64_t vars[2] = {n, 5}, g[3] = {(n + 63) / 64, 1, 1}, l[3] = {64, 1, 1};
  ok = ok && !kn_program_launch(p, bufs, 3, vars, 2, g, l, err, errlen) && !kn_buf_copyout(bo, 0, out, bytes);
  for (int i = 0; ok && i < n; i++) ok = out[i] == a[i] + bb[i] * 5.0f;
  kn_buf_free(ba), kn_buf_free(bbf), kn_buf_free(bo);
  free(a), free(bb), free(out);
  return ok;
}

/* A fault ends the launch that made it, not the device: a kernel handed a pointer to nothing faults (the launch
 * names the address), the device replaces its queue, and the launches after it run and compute the right values.
 * Then the same through AMD_EMU_FAULT, the emulator's fault injection (the second axpy dispatch faults). */
static void fault_recovery(void) {
  char err[700] = "";
  kn_device *d = kn_device_open("AMD:EMU", err, sizeof err);
  if (!check(d != NULL, "open AMD:EMU: %s", err)) return;
  kn_program *p = load_axpy(d);
  if (p) {
    check(axpy_ok(d, p, 1000, err, sizeof err), "axpy before the fault: %s", err);
    kn_buf *good = kn_buf_alloc(d, 4096, err, sizeof err);
    kn_buf nothing = {.dev = d, .va = 0x20000, .nbytes = 4096}; /* an address no buffer has */
    kn_buf *bufs[3] = {&nothing, good, good};
    int64_t vars[2] = {1000, 1}, g[3] = {16, 1, 1}, l[3] = {64, 1, 1};
    int rc = kn_program_launch(p, bufs, 3, vars, 2, g, l, err, sizeof err);
    check(rc && strstr(err, "memory fault") && strstr(err, "0x20000"), "a store to 0x20000 faults: %s", err);
    kn_buf_free(good);
    for (int i = 0; i < 3; i++)
      check(axpy_ok(d, p, 100 + 700 * i, err, sizeof err), "axpy %d after the fault: %s", i, err);
    check(kn_device_sync(d) == 0, "sync after the fault");
    kn_program_free(p);
  }
  kn_device_close(d);

  setenv("AMD_EMU_FAULT", "axp:x", 1);
  check(!kn_device_open("AMD:EMU", err, sizeof err) && strstr(err, "AMD_EMU_FAULT=axp:x"), "bad AMD_EMU_FAULT: %s",
        err);
  setenv("AMD_EMU_FAULT", "axp:2", 1);
  d = kn_device_open("AMD:EMU", err, sizeof err);
  unsetenv("AMD_EMU_FAULT");
  if (!check(d != NULL, "open AMD:EMU with AMD_EMU_FAULT: %s", err)) return;
  if ((p = load_axpy(d))) {
    check(axpy_ok(d, p, 300, err, sizeof err), "first axpy: %s", err);
    bool second = axpy_ok(d, p, 300, err, sizeof err);
    check(!second && strstr(err, "injected fault (AMD_EMU_FAULT=axp)") && strstr(err, "memory fault at 0x1000"),
          "the second axpy faults: %s", err);
    check(axpy_ok(d, p, 300, err, sizeof err) && axpy_ok(d, p, 70, err, sizeof err), "the third and fourth run: %s",
          err);
    kn_program_free(p);
  }
  kn_device_close(d);
}

/* kn_device_stop from another thread ends a long dispatch before its next workgroup (a server's shutdown while its
 * scheduler is in a step); while stopping, launches fail at once; afterwards the device computes again. */
typedef struct {
  kn_device *d;
  int64_t ms;
} stopper;
static void *stop_later(void *arg) {
  stopper *s = arg;
  nanosleep(&(struct timespec){s->ms / 1000, (s->ms % 1000) * 1000000}, NULL);
  kn_device_stop(s->d, true);
  return NULL;
}

static void stop_in_flight(void) {
  char err[700] = "";
  kn_device *d = kn_device_open("AMD:EMU", err, sizeof err);
  if (!check(d != NULL, "open AMD:EMU: %s", err)) return;
  kn_program *p = load_axpy(d);
  if (p) {
    kn_buf *x = kn_buf_alloc(d, 256, err, sizeof err);
    kn_buf *bufs[3] = {x, x, x};
    /* 4M workgroups of which only the first writes (n = 64): minutes of interpretation if it ran to its end */
    int64_t vars[2] = {64, 1}, g[3] = {1 << 22, 1, 1}, l[3] = {64, 1, 1};
    stopper st = {d, 100};
    pthread_t th;
    pthread_create(&th, NULL, stop_later, &st);
    double t0 = kn_now();
    int rc = kn_program_launch(p, bufs, 3, vars, 2, g, l, err, sizeof err);
    double dt = kn_now() - t0;
    pthread_join(th, NULL);
    check(rc && strstr(err, "stopped by the host before workgroup"),
          "a dispatch of 4M workgroups stopped after %.2f s: %s", dt, err);
    check(kn_program_launch(p, bufs, 3, vars, 2, (int64_t[3]){1, 1, 1}, l, err, sizeof err) &&
          strstr(err, "stopping"), "a launch while the device stops fails at once: %s", err);
    kn_device_stop(d, false);
    kn_buf_free(x);
    check(axpy_ok(d, p, 500, err, sizeof err) && kn_device_sync(d) == 0, "axpy after the stop: %s", err);
    kn_program_free(p);
  }
  kn_device_close(d);
}

static int hardware(void) {
  if (access("/dev/kfd", F_OK)) {
    printf("skip: no /dev/kfd (no AMD GPU here)\n");
    return 77;
  }
  char err[512] = "";
  kn_device *d = kn_device_open("AMD", err, sizeof err);
  if (!check(d != NULL, "open AMD: %s", err)) return check_summary();
  printf("AMD: %s, %d CUs\n", kn_device_target(d)->cpu, kn_device_target(d)->ncores);
  round_trips(d);
  launches(d, false);
  kn_device_close(d);
  kn_amd_transport *t = kn_amd_transport_os();
  queue_and_signals(t, false);
  return check_summary();
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "hw")) return hardware();
  open_errors();
  target_and_size();
  kfd_checks();
  char err[512] = "";
  kn_device *d = kn_device_open("AMD:EMU", err, sizeof err);
  if (check(d != NULL, "open AMD:EMU: %s", err)) {
    round_trips(d);
    launches(d, true);
    kn_device_close(d);
  }
  fault_recovery();
  stop_in_flight();
  return check_summary();
}
