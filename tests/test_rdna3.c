/* The emulated RDNA3 compute unit and the code-object loader, end to end: kernels written in LLVM IR are compiled for
 * gfx1100 through the LLVM C API, laid out by kn_codeobj_load at a GPU address of a small emulated address space,
 * run by kn_rdna3_run on random inputs and compared with plain C. The decoder is checked against LLVM's disassembler
 * over every instruction of every kernel compiled here. */
#include <llvm-c/Core.h>
#include <llvm-c/Disassembler.h>
#include <llvm-c/IRReader.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "check.h"
#include "codegen/cache.h"
#include "codegen/llvm_target.h"
#include "device/amd/codeobj.h"
#include "device/amd/rdna3.h"
#include "device/amd/rdna3_ops.h"
#include "device/elf.h"
#include "device/base/env.h"

/* ---- an emulated GPU address space: regions of host memory at GPU addresses ---- */

typedef struct {
  uint64_t va;
  size_t n;
  void *p;
} region;

typedef struct {
  region r[16];
  int n;
  uint64_t next;
} vspace;

static void *translate(void *ctx, uint64_t va, size_t n) {
  vspace *s = ctx;
  for (int i = 0; i < s->n; i++)
    if (va >= s->r[i].va && n <= s->r[i].n && va - s->r[i].va <= s->r[i].n - n)
      return (uint8_t *)s->r[i].p + (va - s->r[i].va);
  return NULL;
}

/* the mapping that holds va, so that the interpreter's memory fast path keeps it (kn_rdna3_mem.region) */
static void *vregion(void *ctx, uint64_t va, uint64_t *lo, uint64_t *n) {
  vspace *s = ctx;
  for (int i = 0; i < s->n; i++)
    if (va - s->r[i].va < s->r[i].n) return *lo = s->r[i].va, *n = s->r[i].n, s->r[i].p;
  return NULL;
}

static uint64_t vmap(vspace *s, void *p, size_t n) {
  uint64_t va = s->next;
  s->r[s->n++] = (region){va, n, p};
  s->next += (n + 0xffff) & ~(uint64_t)0xffff;
  return va;
}

/* ---- compiling IR for gfx1100 ---- */

static kn_target gfx1100(void) {
  kn_target t = {.kind = KN_TARGET_AMDGPU, .vector_bytes = 16, .ncores = 1};
  snprintf(t.triple, sizeof t.triple, "amdgcn-amd-amdhsa");
  snprintf(t.cpu, sizeof t.cpu, "gfx1100");
  return t;
}

static uint8_t *compile_ir(const char *ir, size_t *n) {
  kn_llvm_init();
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, strlen(ir), "k");
  LLVMModuleRef m = NULL;
  char *msg = NULL;
  uint8_t *obj = NULL;
  if (LLVMParseIRInContext(ctx, mb, &m, &msg)) {
    check(0, "IR does not parse: %s", msg);
    LLVMDisposeMessage(msg);
    LLVMContextDispose(ctx);
    return NULL;
  }
  kn_target t = gfx1100();
  char err[512] = "";
  if (kn_llvm_optimize(m, &t, 3, err, sizeof err) || kn_llvm_emit_object(m, &t, &obj, n, err, sizeof err)) {
    check(0, "compile for gfx1100: %s", err);
    obj = NULL;
  }
  LLVMDisposeModule(m);
  LLVMContextDispose(ctx);
  return obj;
}

/* ---- the decoder against LLVM's disassembler ---- */

static int decoded_insts, decoded_names;

/* base mnemonic of LLVM's text: the first word, without the _e32/_e64/_dpp suffixes */
static void llvm_mnemonic(const char *text, char *out, size_t cap) {
  while (*text == ' ' || *text == '\t') text++;
  size_t k = 0;
  while (text[k] && text[k] != ' ' && text[k] != '\t' && k + 1 < cap) out[k] = text[k], k++;
  out[k] = 0;
  for (;;) {
    size_t len = strlen(out);
    if (len > 4 && (!strcmp(out + len - 4, "_e32") || !strcmp(out + len - 4, "_e64") || !strcmp(out + len - 4, "_dpp")))
      out[len - 4] = 0;
    else break;
  }
}

static void check_decoder(const uint8_t *obj, size_t n, const char *what) {
  kn_elf e;
  char err[256];
  if (!check(!kn_elf_parse(obj, n, &e, err, sizeof err), "%s: ELF: %s", what, err)) return;
  LLVMDisasmContextRef dc = LLVMCreateDisasmCPU("amdgcn-amd-amdhsa", "gfx1100", NULL, 0, NULL, NULL);
  int bad = 0;
  for (int s = 0; s < e.nsec && dc; s++) {
    if (!e.sec[s].exec || !e.sec[s].data) continue;
    const uint8_t *code = e.sec[s].data;
    uint64_t off = 0;
    while (off + 4 <= e.sec[s].size) {
      char text[256];
      size_t len = LLVMDisasmInstruction(dc, (uint8_t *)code + off, e.sec[s].size - off, off, text, sizeof text);
      uint32_t words[4] = {0};
      size_t nw = (e.sec[s].size - off) / 4 > 4 ? 4 : (e.sec[s].size - off) / 4;
      memcpy(words, code + off, nw * 4);
      if (!len) { /* padding after s_code_end is s_code_end words; anything else is undecodable */
        off += 4;
        continue;
      }
      const char *fam, *name;
      unsigned op;
      unsigned mine = kn_rdna3_decode(words, nw, &fam, &op, &name);
      char want[64];
      llvm_mnemonic(text, want, sizeof want);
      decoded_insts++;
      if (getenv("RDNA3_DUMP")) printf("%s +%llu:%s\n", what, (unsigned long long)off, text); /* debugging aid */
      if (mine != len && bad++ < 5)
        check(0, "%s: +%llu '%s': decoded length %u, LLVM %zu", what, (unsigned long long)off, text, mine, len);
      else if (mine && strcmp(fam, "vopd") && (!name || strcmp(name, want)) && bad++ < 5)
        check(0, "%s: +%llu '%s': decoded as %s op %u '%s'", what, (unsigned long long)off, text, fam, op,
              name ? name : "?");
      else decoded_names++;
      off += len;
    }
  }
  check(dc && !bad, "%s: decoder agrees with LLVM on every instruction", what);
  if (dc) LLVMDisasmDispose(dc);
  kn_elf_free(&e);
}

/* ---- running a kernel ---- */

typedef struct {
  vspace vs;
  kn_codeobj co;
  uint8_t kernarg[256];
  uint64_t kernarg_va;
  kn_rdna3_stats st;
  bool generic; /* run every instruction through the per-lane executors */
} gpu;

static const uint64_t CODE_VA = 0x100000000ull;

static int gpu_load(gpu *g, const char *ir, const char *what) {
  memset(g, 0, sizeof *g);
  g->vs.next = 0x200000000ull;
  size_t n = 0;
  uint8_t *obj = compile_ir(ir, &n);
  if (!obj) return -1;
  check_decoder(obj, n, what);
  char err[512] = "";
  int rc = kn_codeobj_load(obj, n, CODE_VA, &g->co, err, sizeof err);
  free(obj);
  if (!check(!rc, "%s: load: %s", what, err)) return -1;
  g->vs.r[g->vs.n++] = (region){CODE_VA, g->co.image_size, g->co.image};
  g->kernarg_va = vmap(&g->vs, g->kernarg, sizeof g->kernarg);
  return 0;
}

/* args: each is a GPU address (8 bytes) or a 4-byte value, laid out by the kernel's metadata */
static int gpu_run(gpu *g, const char *kname, const uint64_t *args, int nargs, uint32_t gx, uint32_t gy, uint32_t gz,
                   uint32_t wx, uint32_t wy, uint32_t wz) {
  const kn_codeobj_kernel *k = kn_codeobj_find(&g->co, kname);
  if (!check(k != NULL, "kernel %s in the code object", kname)) return -1;
  if (!check(k->nargs == nargs, "%s: metadata lists %d args (want %d)", kname, k->nargs, nargs)) return -1;
  for (int i = 0; i < nargs; i++) memcpy(g->kernarg + k->args[i].offset, &args[i], k->args[i].size);
  kn_rdna3_dispatch d = {.name = kname, .kd_va = CODE_VA + k->kd_offset, .kernarg_va = g->kernarg_va,
                         .grid = {gx, gy, gz}, .wg = {wx, wy, wz}, .group_segment_bytes = k->group_segment_size,
                         .generic = g->generic};
  kn_rdna3_mem mem = {translate, &g->vs, vregion};
  char err[512] = "";
  int rc = kn_rdna3_run(&d, &mem, &g->st, err, sizeof err);
  check(!rc, "%s: run: %s", kname, err);
  return rc;
}

static void gpu_free(gpu *g) { kn_codeobj_free(&g->co); }

static uint32_t rng = 12345;
static uint32_t rnd(void) { return rng = rng * 1664525u + 1013904223u; }
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f; }

static bool close_f(float got, float want, float rel, float abs_tol) {
  if (isnan(want)) return isnan(got);
  return fabsf(got - want) <= abs_tol + rel * fabsf(want);
}

#define KATTR "attributes #0 = { \"amdgpu-flat-work-group-size\"=\"1,256\" }\n"
#define GID(wg)                                                                                                      \
  "  %tid = call i32 @llvm.amdgcn.workitem.id.x()\n  %wgid = call i32 @llvm.amdgcn.workgroup.id.x()\n"               \
  "  %base = mul i32 %wgid, " #wg "\n  %i = add i32 %base, %tid\n"
#define DECLS                                                                                                        \
  "declare i32 @llvm.amdgcn.workitem.id.x()\ndeclare i32 @llvm.amdgcn.workitem.id.y()\n"                             \
  "declare i32 @llvm.amdgcn.workitem.id.z()\ndeclare i32 @llvm.amdgcn.workgroup.id.x()\n"                            \
  "declare i32 @llvm.amdgcn.workgroup.id.y()\ndeclare i32 @llvm.amdgcn.workgroup.id.z()\n"                           \
  "declare void @llvm.amdgcn.s.barrier()\n"

/* ---- kernels ---- */

/* f32 elementwise with transcendentals: o0 = a*b+c, o1 = exp2(a), o2 = log2(|b|), o3 = sqrt(|c|), o4 = 1/b,
 * o5 = sin(a), o6 = max(a,b) - min(a,c), o7 = a/b; partial last workgroup (n not a multiple of 64) */
static void test_f32(void) {
  const char *ir = DECLS
    "declare float @llvm.exp2.f32(float)\ndeclare float @llvm.log2.f32(float)\ndeclare float @llvm.sqrt.f32(float)\n"
    "declare float @llvm.sin.f32(float)\ndeclare float @llvm.fabs.f32(float)\ndeclare float @llvm.fma.f32(float, float, float)\n"
    "declare float @llvm.maxnum.f32(float, float)\ndeclare float @llvm.minnum.f32(float, float)\n"
    "define amdgpu_kernel void @f32ops(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %b, ptr addrspace(1) noalias %c,\n"
    "    ptr addrspace(1) noalias %o, i32 %n) #0 {\n" GID(64)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %pa = getelementptr float, ptr addrspace(1) %a, i32 %i\n  %av = load float, ptr addrspace(1) %pa\n"
    "  %pb = getelementptr float, ptr addrspace(1) %b, i32 %i\n  %bv = load float, ptr addrspace(1) %pb\n"
    "  %pc = getelementptr float, ptr addrspace(1) %c, i32 %i\n  %cv = load float, ptr addrspace(1) %pc\n"
    "  %r0 = call float @llvm.fma.f32(float %av, float %bv, float %cv)\n"
    "  %r1 = call float @llvm.exp2.f32(float %av)\n"
    "  %bb = call float @llvm.fabs.f32(float %bv)\n  %r2 = call float @llvm.log2.f32(float %bb)\n"
    "  %cc = call float @llvm.fabs.f32(float %cv)\n  %r3 = call float @llvm.sqrt.f32(float %cc)\n"
    "  %r4 = fdiv arcp afn float 1.0, %bv\n  %r5 = call float @llvm.sin.f32(float %av)\n"
    "  %mx = call float @llvm.maxnum.f32(float %av, float %bv)\n  %mn = call float @llvm.minnum.f32(float %av, float %cv)\n"
    "  %r6 = fsub float %mx, %mn\n  %r7 = fdiv float %av, %bv\n"
    "  %i8 = mul i32 %i, 8\n"
    "  %q0 = getelementptr float, ptr addrspace(1) %o, i32 %i8\n  store float %r0, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr float, ptr addrspace(1) %q0, i32 1\n  store float %r1, ptr addrspace(1) %q1\n"
    "  %q2 = getelementptr float, ptr addrspace(1) %q0, i32 2\n  store float %r2, ptr addrspace(1) %q2\n"
    "  %q3 = getelementptr float, ptr addrspace(1) %q0, i32 3\n  store float %r3, ptr addrspace(1) %q3\n"
    "  %q4 = getelementptr float, ptr addrspace(1) %q0, i32 4\n  store float %r4, ptr addrspace(1) %q4\n"
    "  %q5 = getelementptr float, ptr addrspace(1) %q0, i32 5\n  store float %r5, ptr addrspace(1) %q5\n"
    "  %q6 = getelementptr float, ptr addrspace(1) %q0, i32 6\n  store float %r6, ptr addrspace(1) %q6\n"
    "  %q7 = getelementptr float, ptr addrspace(1) %q0, i32 7\n  store float %r7, ptr addrspace(1) %q7\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "f32ops")) return;
  enum { N = 1000 };
  float *a = malloc(N * 4), *b = malloc(N * 4), *c = malloc(N * 4), *o = malloc(N * 8 * 4 + 64 * 4);
  for (int i = 0; i < N; i++) a[i] = frand(-4, 4), b[i] = frand(0.25f, 8) * (rnd() & 1 ? 1 : -1), c[i] = frand(-100, 100);
  for (int i = 0; i < N * 8 + 64; i++) o[i] = -12345.0f; /* poison: unwritten outputs show */
  uint64_t args[] = {vmap(&g.vs, a, N * 4), vmap(&g.vs, b, N * 4), vmap(&g.vs, c, N * 4),
                     vmap(&g.vs, o, N * 8 * 4 + 64 * 4), N};
  if (!gpu_run(&g, "f32ops", args, 5, N, 1, 1, 64, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      float want[8] = {fmaf(a[i], b[i], c[i]), exp2f(a[i]), log2f(fabsf(b[i])), sqrtf(fabsf(c[i])), 1.0f / b[i],
                       sinf(a[i]), fmaxf(a[i], b[i]) - fminf(a[i], c[i]), a[i] / b[i]};
      for (int k = 0; k < 8; k++)
        if (!close_f(o[i * 8 + k], want[k], 2e-6f, k == 5 ? 2e-6f : 0)) {
          fail_line("f32ops[%d].%d = %.9g, want %.9g (a %g b %g c %g)", i, k, o[i * 8 + k], want[k], a[i], b[i], c[i]);
          bad++;
        }
    }
    check(!bad, "f32ops: %d elements x 8 ops", N);
    check(o[N * 8] == -12345.0f, "f32ops: nothing written past n");
    /* 15 full workgroups of 2 waves, then 40 work-items: 2 waves, the second with 8 lanes; SMEM reads 36 bytes of
     * kernel arguments per wave */
    check(g.st.waves == 32 && g.st.workgroups == 16 && g.st.global_read == N * 12 + 32 * 36 &&
              g.st.global_written == N * 32,
          "f32ops counters: %llu waves, %llu bytes read, %llu written", (unsigned long long)g.st.waves,
          (unsigned long long)g.st.global_read, (unsigned long long)g.st.global_written);
  }
  free(a), free(b), free(c), free(o);
  gpu_free(&g);
}

/* sum of each workgroup's 256 elements: a strided tree in LDS with barriers */
static void test_lds_reduce(void) {
  const char *ir = DECLS
    "@lds = internal addrspace(3) global [256 x float] undef, align 4\n"
    "define amdgpu_kernel void @wgsum(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %o) #0 {\n" GID(256)
    "  %pa = getelementptr float, ptr addrspace(1) %a, i32 %i\n  %v = load float, ptr addrspace(1) %pa\n"
    "  %pl = getelementptr [256 x float], ptr addrspace(3) @lds, i32 0, i32 %tid\n  store float %v, ptr addrspace(3) %pl\n"
    "  br label %loop\nloop:\n  %s = phi i32 [128, %0], [%s2, %next]\n"
    "  fence syncscope(\"workgroup\") release\n  call void @llvm.amdgcn.s.barrier()\n  fence syncscope(\"workgroup\") acquire\n"
    "  %act = icmp ult i32 %tid, %s\n  br i1 %act, label %add, label %next\nadd:\n"
    "  %j = add i32 %tid, %s\n  %pj = getelementptr [256 x float], ptr addrspace(3) @lds, i32 0, i32 %j\n"
    "  %x = load float, ptr addrspace(3) %pj\n  %y = load float, ptr addrspace(3) %pl\n  %z = fadd float %x, %y\n"
    "  store float %z, ptr addrspace(3) %pl\n  br label %next\nnext:\n  %s2 = lshr i32 %s, 1\n"
    "  %more = icmp ne i32 %s2, 0\n  br i1 %more, label %loop, label %done\ndone:\n"
    "  fence syncscope(\"workgroup\") release\n  call void @llvm.amdgcn.s.barrier()\n  fence syncscope(\"workgroup\") acquire\n"
    "  %first = icmp eq i32 %tid, 0\n  br i1 %first, label %st, label %end\nst:\n"
    "  %r = load float, ptr addrspace(3) getelementptr ([256 x float], ptr addrspace(3) @lds, i32 0, i32 0)\n"
    "  %po = getelementptr float, ptr addrspace(1) %o, i32 %wgid\n  store float %r, ptr addrspace(1) %po\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "wgsum")) return;
  enum { G = 5, N = 256 * G };
  float *a = malloc(N * 4), o[G];
  for (int i = 0; i < N; i++) a[i] = frand(-1, 1);
  for (int i = 0; i < G; i++) o[i] = -12345.0f;
  uint64_t args[] = {vmap(&g.vs, a, N * 4), vmap(&g.vs, o, sizeof o)};
  const kn_codeobj_kernel *k = kn_codeobj_find(&g.co, "wgsum");
  check(k && k->group_segment_size == 1024, "wgsum: metadata LDS size %u", k ? k->group_segment_size : 0);
  if (!gpu_run(&g, "wgsum", args, 2, N, 1, 1, 256, 1, 1)) {
    int bad = 0;
    for (int w = 0; w < G; w++) {
      double s = 0;
      for (int i = 0; i < 256; i++) s += a[w * 256 + i];
      if (!close_f(o[w], (float)s, 1e-5f, 1e-5f)) bad++, fail_line("wgsum[%d] = %g, want %g", w, o[w], s);
    }
    check(!bad, "wgsum: %d workgroups of 256 through LDS and barriers", G);
  }
  free(a);
  gpu_free(&g);
}


/* i32 index math and bit ops: sdiv, urem, min/max, shifts, select, popcount, clz, 64-bit multiply high */
static void test_int(void) {
  const char *ir = DECLS
    "declare i32 @llvm.ctpop.i32(i32)\ndeclare i32 @llvm.ctlz.i32(i32, i1)\ndeclare i32 @llvm.smax.i32(i32, i32)\n"
    "declare i32 @llvm.umin.i32(i32, i32)\n"
    "define amdgpu_kernel void @intops(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %b, ptr addrspace(1) noalias %o,\n"
    "    i32 %n) #0 {\n" GID(128)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i\n  %av = load i32, ptr addrspace(1) %pa\n"
    "  %pb = getelementptr i32, ptr addrspace(1) %b, i32 %i\n  %bv = load i32, ptr addrspace(1) %pb\n"
    "  %r0 = sdiv i32 %av, %bv\n  %r1 = urem i32 %av, %bv\n  %r2 = call i32 @llvm.smax.i32(i32 %av, i32 %bv)\n"
    "  %r3 = call i32 @llvm.umin.i32(i32 %av, i32 %bv)\n  %sh = and i32 %bv, 31\n  %s1 = ashr i32 %av, %sh\n"
    "  %s2 = shl i32 %av, %sh\n  %r4 = xor i32 %s1, %s2\n  %c = icmp sgt i32 %av, %bv\n  %d = sub i32 %av, %bv\n"
    "  %r5 = select i1 %c, i32 %d, i32 %sh\n  %r6 = call i32 @llvm.ctpop.i32(i32 %av)\n"
    "  %r7 = call i32 @llvm.ctlz.i32(i32 %bv, i1 false)\n  %ae = sext i32 %av to i64\n  %be = sext i32 %bv to i64\n"
    "  %m = mul i64 %ae, %be\n  %mh = lshr i64 %m, 32\n  %r8 = trunc i64 %mh to i32\n  %r9 = udiv i32 %av, 7\n"
    "  %i10 = mul i32 %i, 10\n"
    "  %q0 = getelementptr i32, ptr addrspace(1) %o, i32 %i10\n  store i32 %r0, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr i32, ptr addrspace(1) %q0, i32 1\n  store i32 %r1, ptr addrspace(1) %q1\n"
    "  %q2 = getelementptr i32, ptr addrspace(1) %q0, i32 2\n  store i32 %r2, ptr addrspace(1) %q2\n"
    "  %q3 = getelementptr i32, ptr addrspace(1) %q0, i32 3\n  store i32 %r3, ptr addrspace(1) %q3\n"
    "  %q4 = getelementptr i32, ptr addrspace(1) %q0, i32 4\n  store i32 %r4, ptr addrspace(1) %q4\n"
    "  %q5 = getelementptr i32, ptr addrspace(1) %q0, i32 5\n  store i32 %r5, ptr addrspace(1) %q5\n"
    "  %q6 = getelementptr i32, ptr addrspace(1) %q0, i32 6\n  store i32 %r6, ptr addrspace(1) %q6\n"
    "  %q7 = getelementptr i32, ptr addrspace(1) %q0, i32 7\n  store i32 %r7, ptr addrspace(1) %q7\n"
    "  %q8 = getelementptr i32, ptr addrspace(1) %q0, i32 8\n  store i32 %r8, ptr addrspace(1) %q8\n"
    "  %q9 = getelementptr i32, ptr addrspace(1) %q0, i32 9\n  store i32 %r9, ptr addrspace(1) %q9\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "intops")) return;
  enum { N = 777 };
  int32_t *a = malloc(N * 4), *b = malloc(N * 4), *o = malloc(N * 40);
  for (int i = 0; i < N; i++) {
    a[i] = (int32_t)rnd();
    b[i] = (int32_t)(rnd() >> (rnd() % 31));
    if (!b[i] || (a[i] == INT32_MIN && b[i] == -1)) b[i] = 3;
  }
  uint64_t args[] = {vmap(&g.vs, a, N * 4), vmap(&g.vs, b, N * 4), vmap(&g.vs, o, N * 40), N};
  if (!gpu_run(&g, "intops", args, 4, N, 1, 1, 128, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      int32_t x = a[i], y = b[i], sh = y & 31;
      uint32_t ux = (uint32_t)x, uy = (uint32_t)y;
      int32_t want[10] = {x / y, (int32_t)(ux % uy), x > y ? x : y, (int32_t)(ux < uy ? ux : uy),
                          (x >> sh) ^ (int32_t)(ux << sh), x > y ? (int32_t)(ux - uy) : sh, __builtin_popcount(ux),
                          uy ? __builtin_clz(uy) : 32, (int32_t)(((int64_t)x * y) >> 32), (int32_t)(ux / 7)};
      for (int k = 0; k < 10; k++)
        if (o[i * 10 + k] != want[k]) bad++, fail_line("intops[%d].%d = %d, want %d (a %d b %d)", i, k, o[i * 10 + k], want[k], x, y);
    }
    check(!bad, "intops: %d elements x 10 ops", N);
  }
  free(a), free(b), free(o);
  gpu_free(&g);
}

/* casts and f16: half in, half out, f32<->i32, u8 and i16 loads, f32->f16->f32 */
static void test_casts(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @casts(ptr addrspace(1) noalias %h, ptr addrspace(1) noalias %f, ptr addrspace(1) noalias %u8,\n"
    "    ptr addrspace(1) noalias %s16, ptr addrspace(1) noalias %oh, ptr addrspace(1) noalias %o, i32 %n) #0 {\n" GID(64)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %ph = getelementptr half, ptr addrspace(1) %h, i32 %i\n  %hv = load half, ptr addrspace(1) %ph\n"
    "  %pf = getelementptr float, ptr addrspace(1) %f, i32 %i\n  %fv = load float, ptr addrspace(1) %pf\n"
    "  %pu = getelementptr i8, ptr addrspace(1) %u8, i32 %i\n  %uv = load i8, ptr addrspace(1) %pu\n"
    "  %ps = getelementptr i16, ptr addrspace(1) %s16, i32 %i\n  %sv = load i16, ptr addrspace(1) %ps\n"
    "  %h2 = fmul half %hv, %hv\n  %h3 = fadd half %h2, 0xH3C00\n  %fh = fptrunc float %fv to half\n"
    "  %h4 = fsub half %h3, %fh\n  %poh = getelementptr half, ptr addrspace(1) %oh, i32 %i\n  store half %h4, ptr addrspace(1) %poh\n"
    "  %c0 = fptosi float %fv to i32\n  %c1 = sitofp i32 %c0 to float\n  %c2 = uitofp i8 %uv to float\n"
    "  %c3 = sitofp i16 %sv to float\n  %c4 = fpext half %hv to float\n  %c5 = fpext half %fh to float\n"
    "  %s1 = fadd float %c1, %c2\n  %s2 = fmul float %c3, %c4\n  %s3 = fadd float %s2, %c5\n"
    "  %i4 = mul i32 %i, 4\n  %q0 = getelementptr float, ptr addrspace(1) %o, i32 %i4\n  store float %s1, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr float, ptr addrspace(1) %q0, i32 1\n  store float %s3, ptr addrspace(1) %q1\n"
    "  %q2 = getelementptr i32, ptr addrspace(1) %q0, i32 2\n  store i32 %c0, ptr addrspace(1) %q2\n"
    "  %c6 = fptoui float %fv to i8\n  %c7 = zext i8 %c6 to i32\n"
    "  %q3 = getelementptr i32, ptr addrspace(1) %q0, i32 3\n  store i32 %c7, ptr addrspace(1) %q3\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "casts")) return;
  enum { N = 300 };
  uint16_t *h = malloc(N * 2), *oh = malloc(N * 2);
  float *f = malloc(N * 4), *o = malloc(N * 16);
  uint8_t *u8 = malloc(N);
  int16_t *s16 = malloc(N * 2);
  for (int i = 0; i < N; i++) {
    _Float16 hv = (_Float16)frand(-8, 8);
    memcpy(&h[i], &hv, 2);
    f[i] = frand(0, 250);
    u8[i] = (uint8_t)rnd();
    s16[i] = (int16_t)rnd();
  }
  uint64_t args[] = {vmap(&g.vs, h, N * 2), vmap(&g.vs, f, N * 4), vmap(&g.vs, u8, N), vmap(&g.vs, s16, N * 2),
                     vmap(&g.vs, oh, N * 2), vmap(&g.vs, o, N * 16), N};
  if (!gpu_run(&g, "casts", args, 7, N, 1, 1, 64, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      _Float16 hv, fh = (_Float16)f[i], got;
      memcpy(&hv, &h[i], 2);
      memcpy(&got, &oh[i], 2);
      _Float16 want_h = (_Float16)((_Float16)(hv * hv) + (_Float16)1.0f) - fh;
      int32_t c0 = (int32_t)f[i];
      float w0 = (float)c0 + (float)u8[i], w1 = (float)s16[i] * (float)hv + (float)fh;
      int32_t g2, g3;
      memcpy(&g2, &o[i * 4 + 2], 4);
      memcpy(&g3, &o[i * 4 + 3], 4);
      if (got != want_h || o[i * 4] != w0 || !close_f(o[i * 4 + 1], w1, 1e-6f, 0) || g2 != c0 ||
          g3 != (int32_t)(uint8_t)f[i])
        bad++, fail_line("casts[%d]: half %g (want %g), %g (%g), %g (%g), %d (%d), %d", i, (float)got, (float)want_h,
                         o[i * 4], w0, o[i * 4 + 1], w1, g2, c0, g3);
    }
    check(!bad, "casts: %d elements (f16 math, f32<->i32, u8, i16, f16<->f32)", N);
  }
  free(h), free(oh), free(f), free(o), free(u8), free(s16);
  gpu_free(&g);
}

/* cross-lane: a butterfly over the wave through ds_swizzle, DPP row_xmask and permlanex16 (every lane ends with the
 * wave's sum), a DPP row_shr neighbour add with bound_ctrl, and readlane */
static void test_crosslane(void) {
  const char *ir = DECLS
    "declare i32 @llvm.amdgcn.ds.swizzle(i32, i32)\ndeclare i32 @llvm.amdgcn.update.dpp.i32(i32, i32, i32, i32, i32, i1)\n"
    "declare i32 @llvm.amdgcn.permlanex16(i32, i32, i32, i32, i1, i1)\ndeclare i32 @llvm.amdgcn.readlane(i32, i32)\n"
    "declare i32 @llvm.amdgcn.mov.dpp8.i32(i32, i32)\n"
    "define amdgpu_kernel void @xlane(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %o) #0 {\n" GID(64)
    "  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i\n  %v = load i32, ptr addrspace(1) %pa\n"
    "  %w1 = call i32 @llvm.amdgcn.ds.swizzle(i32 %v, i32 1055)\n  %s1 = add i32 %v, %w1\n"
    "  %w2 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %s1, i32 354, i32 15, i32 15, i1 false)\n  %s2 = add i32 %s1, %w2\n"
    "  %w3 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %s2, i32 356, i32 15, i32 15, i1 false)\n  %s3 = add i32 %s2, %w3\n"
    "  %w4 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %s3, i32 360, i32 15, i32 15, i1 false)\n  %s4 = add i32 %s3, %w4\n"
    "  %w5 = call i32 @llvm.amdgcn.permlanex16(i32 %s4, i32 %s4, i32 1985229328, i32 -19088744, i1 false, i1 false)\n"
    "  %s5 = add i32 %s4, %w5\n"
    "  %n1 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %v, i32 273, i32 15, i32 15, i1 true)\n  %t1 = add i32 %v, %n1\n"
    "  %rl = call i32 @llvm.amdgcn.readlane(i32 %v, i32 5)\n  %t2 = add i32 %t1, %rl\n"
    "  %d8 = call i32 @llvm.amdgcn.mov.dpp8.i32(i32 %v, i32 1)\n"
    "  %i3 = mul i32 %i, 3\n  %q0 = getelementptr i32, ptr addrspace(1) %o, i32 %i3\n  store i32 %s5, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr i32, ptr addrspace(1) %q0, i32 1\n  store i32 %t2, ptr addrspace(1) %q1\n"
    "  %q2 = getelementptr i32, ptr addrspace(1) %q0, i32 2\n  store i32 %d8, ptr addrspace(1) %q2\n"
    "  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "xlane")) return;
  enum { N = 128 };
  int32_t a[N], o[N * 3];
  for (int i = 0; i < N; i++) a[i] = (int32_t)(rnd() % 1000);
  uint64_t args[] = {vmap(&g.vs, a, sizeof a), vmap(&g.vs, o, sizeof o)};
  if (!gpu_run(&g, "xlane", args, 2, N, 1, 1, 64, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      int wave = i / 32 * 32, lane = i % 32, sum = 0;
      for (int k = 0; k < 32; k++) sum += a[wave + k];
      int t2 = a[i] + ((lane & 15) ? a[i - 1] : 0) + a[wave + 5];
      int d8 = a[(i & ~7) + 1]; /* dpp8 selector 1 for lane 0, 0 for the rest: lane 0 of each group of 8 reads lane 1 */
      d8 = (lane & 7) == 0 ? a[i + 1] : a[i & ~7];
      if (o[i * 3] != sum || o[i * 3 + 1] != t2 || o[i * 3 + 2] != d8)
        bad++, fail_line("xlane[%d]: sum %d (want %d), shr %d (want %d), dpp8 %d (want %d)", i, o[i * 3], sum,
                         o[i * 3 + 1], t2, o[i * 3 + 2], d8);
    }
    check(!bad, "xlane: wave sums through swizzle/DPP/permlanex16, row_shr, readlane, dpp8");
  }
  gpu_free(&g);
}

/* 3D grid with partial workgroups in every dimension: each work-item writes its global coordinates */
static void test_grid3d(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @grid3d(ptr addrspace(1) noalias %o, i32 %nx, i32 %ny, i32 %nz) #1 {\n"
    "  %tx = call i32 @llvm.amdgcn.workitem.id.x()\n  %ty = call i32 @llvm.amdgcn.workitem.id.y()\n"
    "  %tz = call i32 @llvm.amdgcn.workitem.id.z()\n  %gx = call i32 @llvm.amdgcn.workgroup.id.x()\n"
    "  %gy = call i32 @llvm.amdgcn.workgroup.id.y()\n  %gz = call i32 @llvm.amdgcn.workgroup.id.z()\n"
    "  %bx = mul i32 %gx, 4\n  %x = add i32 %bx, %tx\n  %by = mul i32 %gy, 4\n  %y = add i32 %by, %ty\n"
    "  %bz = mul i32 %gz, 2\n  %z = add i32 %bz, %tz\n"
    "  %okx = icmp ult i32 %x, %nx\n  %oky = icmp ult i32 %y, %ny\n  %okz = icmp ult i32 %z, %nz\n"
    "  %ok1 = and i1 %okx, %oky\n  %ok = and i1 %ok1, %okz\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %zy = mul i32 %z, %ny\n  %zy2 = add i32 %zy, %y\n  %idx0 = mul i32 %zy2, %nx\n  %idx = add i32 %idx0, %x\n"
    "  %vy = mul i32 %y, 1000\n  %vz = mul i32 %z, 1000000\n  %v1 = add i32 %x, %vy\n  %v = add i32 %v1, %vz\n"
    "  %p = getelementptr i32, ptr addrspace(1) %o, i32 %idx\n  store i32 %v, ptr addrspace(1) %p\n"
    "  br label %end\nend:\n  ret void\n}\n"
    "attributes #1 = { \"amdgpu-flat-work-group-size\"=\"32,32\" }\n";
  gpu g;
  if (gpu_load(&g, ir, "grid3d")) return;
  enum { NX = 10, NY = 7, NZ = 3 };
  int32_t o[NX * NY * NZ];
  for (int i = 0; i < NX * NY * NZ; i++) o[i] = -1;
  uint64_t args[] = {vmap(&g.vs, o, sizeof o), NX, NY, NZ};
  if (!gpu_run(&g, "grid3d", args, 4, NX, NY, NZ, 4, 4, 2)) {
    int bad = 0;
    for (int z = 0; z < NZ; z++)
      for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++)
          if (o[(z * NY + y) * NX + x] != x + 1000 * y + 1000000 * z && bad++ < 5)
            fail_line("grid3d (%d,%d,%d) = %d", x, y, z, o[(z * NY + y) * NX + x]);
    check(!bad, "grid3d: 10x7x3 over 4x4x2 workgroups (partial in x, y and z)");
    check(g.st.workgroups == 3 * 2 * 2, "grid3d: %llu workgroups", (unsigned long long)g.st.workgroups);
  }
  gpu_free(&g);
}

/* Q4_0-shaped block decode: 18-byte blocks (f16 scale, 16 bytes of nibbles) read with byte and short loads, and a
 * 16-entry constant table (a .rodata section reached through pc-relative relocations) mapping nibbles to values */
static void test_quant(void) {
  const char *ir = DECLS
    "@lut = internal addrspace(4) constant [16 x float] [float -8.0, float -6.5, float -5.0, float -4.0, float -3.0,\n"
    "  float -2.25, float -1.5, float -0.5, float 0.5, float 1.5, float 2.25, float 3.0, float 4.0, float 5.0,\n"
    "  float 6.5, float 8.0], align 4\n"
    "define amdgpu_kernel void @q4(ptr addrspace(1) noalias %q, ptr addrspace(1) noalias %o, ptr addrspace(1) noalias %o2,\n"
    "    i32 %n) #0 {\n" GID(64)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %blk = udiv i32 %i, 32\n  %j = urem i32 %i, 32\n  %boff = mul i32 %blk, 18\n"
    "  %pd = getelementptr i8, ptr addrspace(1) %q, i32 %boff\n  %d16 = load i16, ptr addrspace(1) %pd, align 2\n"
    "  %dh = bitcast i16 %d16 to half\n  %d = fpext half %dh to float\n  %jj = urem i32 %j, 16\n"
    "  %qo = add i32 %boff, 2\n  %qo2 = add i32 %qo, %jj\n  %pq = getelementptr i8, ptr addrspace(1) %q, i32 %qo2\n"
    "  %byte = load i8, ptr addrspace(1) %pq, align 1\n  %b32 = zext i8 %byte to i32\n  %hi = icmp uge i32 %j, 16\n"
    "  %sh = select i1 %hi, i32 4, i32 0\n  %nib0 = lshr i32 %b32, %sh\n  %nib = and i32 %nib0, 15\n"
    "  %c = sub i32 %nib, 8\n  %cf = sitofp i32 %c to float\n  %v = fmul float %d, %cf\n"
    "  %po = getelementptr float, ptr addrspace(1) %o, i32 %i\n  store float %v, ptr addrspace(1) %po\n"
    "  %pl = getelementptr [16 x float], ptr addrspace(4) @lut, i32 0, i32 %nib\n  %lv = load float, ptr addrspace(4) %pl\n"
    "  %v2 = fmul float %d, %lv\n  %po2 = getelementptr float, ptr addrspace(1) %o2, i32 %i\n"
    "  store float %v2, ptr addrspace(1) %po2\n  br label %end\nend:\n  ret void\n}\n" KATTR;
  static const float lut[16] = {-8, -6.5f, -5, -4, -3, -2.25f, -1.5f, -0.5f, 0.5f, 1.5f, 2.25f, 3, 4, 5, 6.5f, 8};
  gpu g;
  if (gpu_load(&g, ir, "q4")) return;
  enum { NB = 21, N = NB * 32 };
  uint8_t *q = malloc(NB * 18);
  float *o = malloc(N * 4), *o2 = malloc(N * 4);
  for (int b = 0; b < NB; b++) {
    _Float16 d = (_Float16)frand(0.01f, 2);
    memcpy(q + b * 18, &d, 2);
    for (int k = 0; k < 16; k++) q[b * 18 + 2 + k] = (uint8_t)rnd();
  }
  uint64_t args[] = {vmap(&g.vs, q, NB * 18), vmap(&g.vs, o, N * 4), vmap(&g.vs, o2, N * 4), N};
  if (!gpu_run(&g, "q4", args, 4, N, 1, 1, 64, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      int b = i / 32, j = i % 32;
      _Float16 d;
      memcpy(&d, q + b * 18, 2);
      int nib = (q[b * 18 + 2 + j % 16] >> (j >= 16 ? 4 : 0)) & 15;
      float want = (float)d * (float)(nib - 8), want2 = (float)d * lut[nib];
      if (o[i] != want || o2[i] != want2) bad++, fail_line("q4[%d] = %g / %g, want %g / %g", i, o[i], o2[i], want, want2);
    }
    check(!bad, "q4: %d blocks decoded (byte/short loads, f16 scale, constant table)", NB);
  }
  free(q), free(o), free(o2);
  gpu_free(&g);
}

/* byte and half loads (sign- and zero-extended) and stores moving between three buffers instruction by instruction,
 * and one load whose lanes reach into two buffers (odd lanes one, even lanes the other): through the per-lane
 * executors and through the fast path (whose cached mapping changes at each instruction, and which hands the
 * two-buffer load to the executor), both against plain C */
static void test_small_loads(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @loads(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %b, ptr addrspace(1) %o,\n"
    "    ptr addrspace(1) noalias %o8) #0 {\n" GID(64)
    "  %i3 = mul i32 %i, 3\n  %pa0 = getelementptr i8, ptr addrspace(1) %a, i32 %i3\n"
    "  %x0 = load volatile i8, ptr addrspace(1) %pa0\n  %pb0 = getelementptr i16, ptr addrspace(1) %b, i32 %i\n"
    "  %y0 = load volatile i16, ptr addrspace(1) %pb0\n  %pa1 = getelementptr i8, ptr addrspace(1) %pa0, i32 1\n"
    "  %x1 = load volatile i8, ptr addrspace(1) %pa1\n  %pb1 = getelementptr i16, ptr addrspace(1) %pb0, i32 7\n"
    "  %y1 = load volatile i16, ptr addrspace(1) %pb1\n  %odd = and i32 %i, 1\n  %isodd = icmp ne i32 %odd, 0\n"
    "  %pa2 = getelementptr i8, ptr addrspace(1) %pa0, i32 2\n  %pb2 = bitcast ptr addrspace(1) %pb0 to ptr addrspace(1)\n"
    "  %pm = select i1 %isodd, ptr addrspace(1) %pa2, ptr addrspace(1) %pb2\n  %z = load volatile i8, ptr addrspace(1) %pm\n"
    "  %x0s = sext i8 %x0 to i32\n  %y0z = zext i16 %y0 to i32\n  %x1z = zext i8 %x1 to i32\n"
    "  %y1s = sext i16 %y1 to i32\n  %zz = zext i8 %z to i32\n"
    "  %r0 = mul i32 %x0s, 3\n  %r1 = add i32 %r0, %y0z\n  %r2 = xor i32 %r1, %x1z\n  %r3 = mul i32 %y1s, 5\n"
    "  %r4 = add i32 %r2, %r3\n  %r5 = shl i32 %zz, 24\n  %r = xor i32 %r4, %r5\n"
    "  %po = getelementptr i32, ptr addrspace(1) %o, i32 %i\n  store i32 %r, ptr addrspace(1) %po\n"
    "  %s8 = add i32 %x1z, %y0z\n  %t8 = trunc i32 %s8 to i8\n  %po8 = getelementptr i8, ptr addrspace(1) %o8, i32 %i\n"
    "  store i8 %t8, ptr addrspace(1) %po8\n  %t16 = trunc i32 %r4 to i16\n"
    "  %po16 = getelementptr i16, ptr addrspace(1) %o8, i32 %i\n  %po16b = getelementptr i8, ptr addrspace(1) %po16, i32 4096\n"
    "  store i16 %t16, ptr addrspace(1) %po16b\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "loads")) return;
  enum { N = 1000 };
  uint8_t *a = malloc(3 * N + 16), *o8 = malloc(4096 + 2 * N);
  uint16_t *b = malloc(2 * N + 64);
  uint32_t *o = malloc(4 * N);
  for (int i = 0; i < 3 * N + 16; i++) a[i] = (uint8_t)rnd();
  for (int i = 0; i < N + 32; i++) b[i] = (uint16_t)rnd();
  uint64_t args[] = {vmap(&g.vs, a, 3 * N + 16), vmap(&g.vs, b, 2 * N + 64), vmap(&g.vs, o, 4 * N),
                     vmap(&g.vs, o8, 4096 + 2 * N)};
  for (int mode = 0; mode < 2; mode++) {
    g.generic = mode == 0;
    memset(o, 0, 4 * N), memset(o8, 0, 4096 + 2 * N);
    if (gpu_run(&g, "loads", args, 4, N, 1, 1, 64, 1, 1)) break;
    int bad = 0;
    for (int i = 0; i < N; i++) {
      int32_t x0 = (int8_t)a[3 * i], y1 = (int16_t)b[i + 7];
      uint32_t y0 = b[i], x1 = a[3 * i + 1], z = i & 1 ? a[3 * i + 2] : (uint8_t)b[i];
      uint32_t r4 = (((uint32_t)x0 * 3 + y0) ^ x1) + (uint32_t)y1 * 5, r = r4 ^ z << 24;
      uint16_t h;
      memcpy(&h, o8 + 4096 + 2 * i, 2);
      if ((o[i] != r || o8[i] != (uint8_t)(x1 + y0) || h != (uint16_t)r4) && bad++ < 3)
        fail_line("loads[%d] (%s) = 0x%08x 0x%02x 0x%04x, want 0x%08x 0x%02x 0x%04x", i, mode ? "fast" : "executors",
                  o[i], o8[i], h, r, (uint8_t)(x1 + y0), (uint16_t)r4);
    }
    check(!bad, "byte/half loads and stores over three buffers and a load across two (%s): %d items",
          mode ? "fast paths" : "per-lane executors", N);
  }
  free(a), free(b), free(o), free(o8);
  gpu_free(&g);
}

/* matrix-vector: one wave per row, each lane a strided partial sum, then a butterfly over the wave (ds_swizzle
 * xor, then DPP row_xmask and permlanex16 on the float bits); rows do not fill the last workgroup */
static void test_matvec(void) {
  const char *ir = DECLS
    "declare i32 @llvm.amdgcn.ds.swizzle(i32, i32)\ndeclare i32 @llvm.amdgcn.update.dpp.i32(i32, i32, i32, i32, i32, i1)\n"
    "declare i32 @llvm.amdgcn.permlanex16(i32, i32, i32, i32, i1, i1)\n"
    "define amdgpu_kernel void @matvec(ptr addrspace(1) noalias %w, ptr addrspace(1) noalias %x, ptr addrspace(1) noalias %y,\n"
    "    i32 %rows, i32 %k) #0 {\n"
    "  %tid = call i32 @llvm.amdgcn.workitem.id.x()\n  %wg = call i32 @llvm.amdgcn.workgroup.id.x()\n"
    "  %wave = lshr i32 %tid, 5\n  %lane = and i32 %tid, 31\n  %r0 = mul i32 %wg, 2\n  %row = add i32 %r0, %wave\n"
    "  %okr = icmp ult i32 %row, %rows\n  br i1 %okr, label %loop, label %end\n"
    "loop:\n  %kk = phi i32 [%lane, %0], [%kn, %loop]\n  %acc = phi float [0.0, %0], [%acc2, %loop]\n"
    "  %ro = mul i32 %row, %k\n  %wi = add i32 %ro, %kk\n  %pw = getelementptr float, ptr addrspace(1) %w, i32 %wi\n"
    "  %wv = load float, ptr addrspace(1) %pw\n  %px = getelementptr float, ptr addrspace(1) %x, i32 %kk\n"
    "  %xv = load float, ptr addrspace(1) %px\n  %acc2 = call float @llvm.fma.f32(float %wv, float %xv, float %acc)\n"
    "  %kn = add i32 %kk, 32\n  %more = icmp ult i32 %kn, %k\n  br i1 %more, label %loop, label %red\n"
    "red:\n  %a0 = bitcast float %acc2 to i32\n"
    "  %b1 = call i32 @llvm.amdgcn.ds.swizzle(i32 %a0, i32 1055)\n  %f1 = bitcast i32 %b1 to float\n  %s1 = fadd float %acc2, %f1\n"
    "  %a1 = bitcast float %s1 to i32\n"
    "  %b2 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %a1, i32 354, i32 15, i32 15, i1 false)\n"
    "  %f2 = bitcast i32 %b2 to float\n  %s2 = fadd float %s1, %f2\n  %a2 = bitcast float %s2 to i32\n"
    "  %b3 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %a2, i32 356, i32 15, i32 15, i1 false)\n"
    "  %f3 = bitcast i32 %b3 to float\n  %s3 = fadd float %s2, %f3\n  %a3 = bitcast float %s3 to i32\n"
    "  %b4 = call i32 @llvm.amdgcn.update.dpp.i32(i32 0, i32 %a3, i32 360, i32 15, i32 15, i1 false)\n"
    "  %f4 = bitcast i32 %b4 to float\n  %s4 = fadd float %s3, %f4\n  %a4 = bitcast float %s4 to i32\n"
    "  %b5 = call i32 @llvm.amdgcn.permlanex16(i32 %a4, i32 %a4, i32 1985229328, i32 -19088744, i1 false, i1 false)\n"
    "  %f5 = bitcast i32 %b5 to float\n  %s5 = fadd float %s4, %f5\n"
    /* every lane stores the (equal) sum: behind a lane-0 branch LLVM sinks permlanex16 into it, where lane 16 is
     * inactive and permlanex16 (fi=0) returns the old value instead */
    "  br label %st\n"
    "st:\n  %py = getelementptr float, ptr addrspace(1) %y, i32 %row\n  store float %s5, ptr addrspace(1) %py\n"
    "  br label %end\nend:\n  ret void\n}\ndeclare float @llvm.fma.f32(float, float, float)\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "matvec")) return;
  enum { R = 37, K = 256 };
  float *w = malloc(R * K * 4), x[K], y[R + 1];
  for (int i = 0; i < R * K; i++) w[i] = frand(-1, 1);
  for (int i = 0; i < K; i++) x[i] = frand(-1, 1);
  for (int i = 0; i <= R; i++) y[i] = -12345.0f;
  uint64_t args[] = {vmap(&g.vs, w, R * K * 4), vmap(&g.vs, x, sizeof x), vmap(&g.vs, y, sizeof y), R, K};
  /* speed: the same dispatch through the per-lane executors only, then with the fast paths (best of 5 each) */
  double best[2] = {1e9, 1e9};
  uint64_t insts = 0;
  int rc = 0;
  for (int mode = 0; mode < 2 && !rc; mode++)
    for (int rep = 0; rep < 5 && !rc; rep++) {
      g.generic = mode == 0;
      memset(&g.st, 0, sizeof g.st);
      double t0 = kn_now();
      rc = gpu_run(&g, "matvec", args, 5, (R + 1) / 2 * 64, 1, 1, 64, 1, 1);
      double dt = kn_now() - t0;
      if (dt < best[mode]) best[mode] = dt;
    }
  for (int c = 0; c < KN_RDNA3_NCLASS; c++) insts += g.st.insts[c];
  printf("matvec %dx%d: %llu wave instructions: %.1f M wave-instructions/s per-lane executors, %.1f M/s with the "
         "fast paths\n", R, K, (unsigned long long)insts, insts / best[0] / 1e6, insts / best[1] / 1e6);
  if (!rc) {
    int bad = 0;
    for (int r = 0; r < R; r++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)w[r * K + k] * x[k];
      if (!close_f(y[r], (float)s, 1e-5f, 1e-5f) && bad++ < 5) fail_line("matvec y[%d] = %g, want %g", r, y[r], s);
    }
    check(!bad && y[R] == -12345.0f, "matvec: %dx%d, one wave per row", R, K);
    /* each weight byte once: the matrix, plus x once per row, plus kernel arguments */
    uint64_t min = (uint64_t)R * K * 4;
    check(g.st.global_read >= min && g.st.global_read < min + (uint64_t)R * K * 4 + 64 * g.st.waves,
          "matvec: %llu bytes read (matrix %llu)", (unsigned long long)g.st.global_read, (unsigned long long)min);
  }
  free(w);
  gpu_free(&g);
}

/* ---- the fast paths against the per-lane executors ---- */

static uint32_t rsrc(bool vgpr_only) {
  static const uint32_t special[] = {106, 124, 125, 126, 128, 129, 140, 192, 193, 200, 208, 240, 242, 243, 248, 255};
  uint32_t r = rnd() % 8;
  if (vgpr_only || r < 3) return 256 + rnd() % 256;
  if (r < 5) return rnd() % 106;
  return special[rnd() % (sizeof special / sizeof special[0])];
}

/* scalar destinations: SGPRs, VCC, null, EXEC, and one the hardware refuses (ttmp) */
static uint32_t rsdst(void) {
  static const uint32_t d[] = {0, 5, 63, 105, 106, 124, 126, 110};
  return d[rnd() % 8];
}

/* A VOP3 (or VOP3SD) word pair for op with random operands, then the literal. */
static int enc_vop3(uint32_t *w, unsigned op, bool sd, bool mods) {
  uint32_t s0 = rsrc(false), s1 = rsrc(false), s2 = rsrc(false);
  uint32_t mid = sd ? rsdst() : mods ? rnd() % 128 : 0;
  bool cmp = op < 256;
  uint32_t vdst = cmp ? rsdst() : rnd() % 256;
  w[0] = 0x35u << 26 | op << 16 | (mods && rnd() % 4 == 0) << 15 | mid << 8 | vdst;
  w[1] = s0 | s1 << 9 | s2 << 18 | (mods ? (rnd() % 32) << 27 : 0);
  w[2] = rnd();
  return s0 == 255 || s1 == 255 || s2 == 255 ? 3 : 2;
}

/* the encodings that took a fast path, for checking the compiled runs (rdna3_jit.c) on them */
static struct { uint32_t w[3]; int n; } fast_seen[4096];
static int nfast_seen;
static void keep_fast(const uint32_t *w, int n) {
  if (nfast_seen == 4096) return;
  memcpy(fast_seen[nfast_seen].w, w, 3 * sizeof *w);
  fast_seen[nfast_seen++].n = n;
}

static void test_fast_paths(void) {
  /* every opcode with a fast path, by its VOP3 number; the short encodings are found through LLVM's tables */
  static const char *const names[] = {
    "v_mov_b32", "v_not_b32", "v_cvt_f32_i32", "v_cvt_f32_u32", "v_cvt_f32_ubyte0", "v_cvt_f32_ubyte1",
    "v_cvt_f32_ubyte2", "v_cvt_f32_ubyte3", "v_cvt_f32_f16", "v_and_b32", "v_or_b32", "v_xor_b32", "v_lshlrev_b32",
    "v_lshrrev_b32", "v_ashrrev_i32", "v_add_nc_u32", "v_sub_nc_u32", "v_mul_lo_u32", "v_mul_u32_u24", "v_min_u32",
    "v_max_u32", "v_min_i32", "v_max_i32", "v_lshrrev_b16", "v_ashrrev_i16", "v_add_f32", "v_sub_f32",
    "v_subrev_f32", "v_mul_f32", "v_add_co_u32", "v_fma_f32", "v_fmac_f32", "v_bfe_u32",
    "v_bfe_i32", "v_bfi_b32", "v_and_or_b32", "v_or3_b32", "v_xor3_b32", "v_lshl_or_b32", "v_lshl_add_u32",
    "v_add3_u32", "v_mad_u32_u24", "v_alignbit_b32", "v_cndmask_b32", "v_add_co_ci_u32", "v_mad_u64_u32",
    "v_cmp_lt_f32", "v_cmp_eq_f32", "v_cmp_nge_f32", "v_cmp_o_f32", "v_cmp_eq_u32", "v_cmp_ne_u32",
    "v_cmp_gt_u32", "v_cmp_lt_i32", "v_cmp_ge_i32", "v_cmp_le_u32", "v_cmpx_eq_u32", "v_cmpx_gt_i32",
    "v_cmpx_lt_f32", "v_readfirstlane_b32", "v_fmaak_f32", "v_fmamk_f32",
  };
  int taken = 0, cases = 0;
  char err[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int op_taken = 0;
    for (int fam = 0; fam < 4; fam++) { /* vop3, vop1, vop2, vopc */
      static const char *const fams[] = {"vop3", "vop1", "vop2", "vopc"};
      int nops = fam == 2 ? 64 : fam == 0 ? 1024 : 256;
      for (int o = 0; o < nops; o++) {
        const char *nm = kn_rdna3_opname(fams[fam], (unsigned)o);
        if (!nm || strcmp(nm, names[i])) continue;
        for (int t = 0; t < 24; t++) {
          uint32_t w[4] = {0};
          int n;
          uint32_t s0 = rsrc(false), v1 = rnd() % 256, vd = rnd() % 256;
          if (fam == 0) {
            bool sd = !strcmp(nm, "v_add_co_u32") || !strcmp(nm, "v_add_co_ci_u32") || !strcmp(nm, "v_mad_u64_u32");
            n = enc_vop3(w, (unsigned)o, sd, t % 3 == 2);
          } else {
            if (fam == 1 && !strcmp(nm, "v_readfirstlane_b32")) vd = rsdst();
            if (fam == 1) w[0] = 0x3fu << 25 | vd << 17 | (unsigned)o << 9 | s0;
            else if (fam == 2) w[0] = (unsigned)o << 25 | vd << 17 | v1 << 9 | s0;
            else w[0] = 0x3eu << 25 | (unsigned)o << 17 | v1 << 9 | s0;
            bool lit = s0 == 255 || (fam == 2 && strstr(nm, "fmaak")) || (fam == 2 && strstr(nm, "fmamk"));
            w[1] = rnd();
            n = lit ? 2 : 1;
          }
          int rc = kn_rdna3_check_fast(w, (size_t)n, (uint64_t)(i * 1000 + t), err, sizeof err);
          cases++;
          if (rc < 0) check(0, "fast path of %s (%s, words 0x%08x 0x%08x 0x%08x): %s", nm, fams[fam], w[0], w[1], w[2], err);
          op_taken += rc == 1;
          if (rc == 1) keep_fast(w, n);
        }
      }
    }
    check(op_taken > 0, "%s: the fast path was taken and agreed with the per-lane executor", names[i]);
    taken += op_taken;
  }
  /* DPP16 and DPP8 on src0 (VOP1, VOP2, VOPC and VOP3 forms: every control kind, row and bank masks, bound_ctrl,
   * fetch-inactive, DPP16's modifiers), and VOP3's abs/neg without DPP */
  static const uint32_t ctls[] = {0x00, 0x1b, 0xe4, 0xb1, 0x4e, 0x101, 0x10f, 0x111, 0x118, 0x121, 0x12f, 0x140,
                                  0x141, 0x150, 0x15f, 0x160, 0x16f};
  int dpp_taken = 0, mods_taken = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    for (int fam = 0; fam < 4; fam++) {
      static const char *const fams[] = {"vop3", "vop1", "vop2", "vopc"};
      int nops = fam == 2 ? 64 : fam == 0 ? 1024 : 256;
      for (int o = 0; o < nops; o++) {
        const char *nm = kn_rdna3_opname(fams[fam], (unsigned)o);
        if (!nm || strcmp(nm, names[i]) || strstr(nm, "fmaak") || strstr(nm, "fmamk")) continue; /* no DPP form */
        for (int t = 0; t < 16; t++) {
          uint32_t w[4] = {0}, v1 = rnd() % 256, vd = rnd() % 256;
          bool d8 = t % 4 == 3, plain = fam == 0 && t % 4 == 2; /* plain: VOP3 modifiers without DPP */
          uint32_t s0 = d8 ? (rnd() % 2 ? 233 : 234) : 250;
          uint32_t dppw = d8 ? (rnd() % 256) | (rnd() & 0xffffff) << 8
                             : (rnd() % 256) | ctls[rnd() % (sizeof ctls / sizeof ctls[0])] << 8 | (rnd() % 64) << 18 |
                                   (rnd() % 2 ? 0xffu << 24 : (rnd() % 256) << 24);
          int n = 2;
          if (fam == 0) {
            bool cmp = o < 256;
            uint32_t dst = cmp ? rsdst() : vd, src0 = plain ? rsrc(false) : s0;
            w[0] = 0x35u << 26 | (unsigned)o << 16 | (rnd() % 8) << 8 | dst;
            w[1] = src0 | rsrc(false) << 9 | rsrc(false) << 18 | (rnd() % 8) << 29;
            w[2] = plain ? rnd() : dppw;
            if (plain && ((w[1] & 0x1ff) == 255 || (w[1] >> 9 & 0x1ff) == 255 || (w[1] >> 18 & 0x1ff) == 255)) n = 3;
            if (!plain) {
              w[1] &= ~((0x1ffu << 9) | (0x1ffu << 18)); /* no literal beside a DPP dword */
              w[1] |= (256 + rnd() % 256) << 9 | (256 + rnd() % 256) << 18;
              n = 3;
            }
          } else {
            if (fam == 1) w[0] = 0x3fu << 25 | vd << 17 | (unsigned)o << 9 | s0;
            else if (fam == 2) w[0] = (unsigned)o << 25 | vd << 17 | v1 << 9 | s0;
            else w[0] = 0x3eu << 25 | (unsigned)o << 17 | v1 << 9 | s0;
            w[1] = dppw;
          }
          /* seed % 4 picks the EXEC kind (full, random, half, one lane): every kind for every form */
          int rc = kn_rdna3_check_fast(w, (size_t)n, (uint64_t)(i * 4000 + 2000 + t * 4 + t / 4 % 4), err, sizeof err);
          cases++;
          if (rc < 0) check(0, "fast path of %s with %s (%s, words 0x%08x 0x%08x 0x%08x): %s", nm,
                            plain ? "modifiers" : "DPP", fams[fam], w[0], w[1], w[2], err);
          if (plain) mods_taken += rc == 1;
          else dpp_taken += rc == 1;
          if (rc == 1 && !plain) keep_fast(w, n); /* the compiled runs take DPP too */
        }
      }
    }
  check(dpp_taken > 300, "DPP: the fast path was taken %d times and agreed with the per-lane executor", dpp_taken);
  check(mods_taken > 20, "abs/neg: the fast path was taken %d times and agreed with the per-lane executor", mods_taken);
  printf("fast paths with DPP: %d, with abs/neg: %d\n", dpp_taken, mods_taken);
  taken += dpp_taken + mods_taken;
  /* VOPD pairs: both halves read before either writes */
  int vopd_taken = 0;
  for (int t = 0; t < 400; t++) {
    static const unsigned ox[] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11}, oy[] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 16, 17, 18};
    unsigned x = ox[rnd() % 11], y = oy[rnd() % 14];
    uint32_t w[4] = {0};
    uint32_t sx = rsrc(false), sy = rsrc(false);
    w[0] = 0x32u << 26 | x << 22 | y << 17 | (rnd() % 256) << 9 | sx;
    w[1] = (rnd() % 256) << 24 | (rnd() % 128) << 17 | (rnd() % 256) << 9 | sy;
    w[2] = rnd();
    bool lit = sx == 255 || sy == 255 || x == 1 || x == 2 || y == 1 || y == 2;
    int rc = kn_rdna3_check_fast(w, lit ? 3 : 2, (uint64_t)t, err, sizeof err);
    cases++;
    if (rc < 0) check(0, "fast path of VOPD (words 0x%08x 0x%08x 0x%08x): %s", w[0], w[1], w[2], err);
    vopd_taken += rc == 1;
    if (rc == 1) keep_fast(w, lit ? 3 : 2);
  }
  check(vopd_taken > 100, "VOPD: the fast path was taken %d times and agreed with the per-lane executor", vopd_taken);
  printf("fast paths: %d of %d random instructions took them, all equal to the per-lane executors\n",
         taken + vopd_taken, cases);
}

/* Host code for runs of vector instructions (rdna3_jit.c) against the per-lane executors: every fast-path encoding
 * above alone (random wave states with NaNs, EXEC masks of every kind), then random runs of 2 to 24 of them, so that
 * registers kept in host registers across a run, EXEC changed by v_cmpx and masks written and read within a run
 * are checked too (NaN-free states there: which NaN a two-NaN add returns is the host compiler's choice). */
/* the same instruction on registers v0..v7 (so that destinations and sources of a run often coincide); VOPD kept */
static int narrow_vgprs(uint32_t *w, int n) {
  uint32_t enc = w[0] >> 25;
  if ((w[0] >> 26) == 0x32) return n; /* VOPD */
  if ((w[0] >> 26) == 0x35) {         /* VOP3: vdst [7:0], sources [8:0] [17:9] [26:18] of the second word */
    bool sdst = (w[0] >> 16 & 0x3ff) < 256; /* a compare: its destination is scalar */
    if (!sdst) w[0] = (w[0] & ~0xffu) | (w[0] & 7);
    for (int k = 0; k < 3; k++) {
      uint32_t src = w[1] >> (9 * k) & 0x1ff;
      if (src >= 256) w[1] = (w[1] & ~(0x1ffu << (9 * k))) | (256 + (src & 7)) << (9 * k);
    }
    return n;
  }
  uint32_t s0 = w[0] & 0x1ff;
  if (s0 >= 256) w[0] = (w[0] & ~0x1ffu) | (256 + (s0 & 7));
  if (enc != 0x3f) w[0] = (w[0] & ~(0xffu << 9)) | (w[0] >> 9 & 7) << 9; /* vsrc1 (VOP2, VOPC) */
  bool rfl = enc == 0x3f && (w[0] >> 9 & 0xff) == 2;                   /* v_readfirstlane: scalar destination */
  if (enc != 0x3e && !rfl) w[0] = (w[0] & ~(0xffu << 17)) | (w[0] >> 17 & 7) << 17; /* vdst (VOP1, VOP2) */
  return n;
}

/* A random scalar ALU instruction of the kinds rdna3_jit.c translates (rdna3_salu.c's opcodes, random SGPR, VCC,
 * M0, EXEC, null, inline and literal operands): its words in w, their count returned. */
/* a random number below n from the generator's high bits (its low bits repeat with a short period) */
static uint32_t rn(uint32_t n) { return (rnd() >> 8) % n; }
static uint32_t salu_src(void) {
  static const uint32_t special[] = {106, 107, 124, 125, 126, 128, 129, 140, 192, 193, 200, 208, 240, 243, 248, 255};
  return rn(3) ? rn(106) : special[rn(16)];
}
static uint32_t salu_dst(void) {
  static const uint32_t special[] = {106, 107, 124, 125, 126};
  return rn(6) ? rn(106) : special[rn(5)];
}
static int random_salu(uint32_t *w) {
  static const unsigned sop2[] = {S_ADD_U32, S_SUB_U32, S_ADD_I32, S_SUB_I32, S_ADDC_U32, S_SUBB_U32, S_LSHL_B32,
                                  S_LSHR_B32, S_ASHR_I32, S_LSHL1_ADD_U32, S_LSHL2_ADD_U32, S_LSHL3_ADD_U32,
                                  S_LSHL4_ADD_U32, S_MIN_I32, S_MIN_U32, S_MAX_I32, S_MAX_U32, S_AND_B32, S_OR_B32,
                                  S_XOR_B32, S_NAND_B32, S_NOR_B32, S_XNOR_B32, S_AND_NOT1_B32, S_OR_NOT1_B32,
                                  S_BFE_U32, S_BFE_I32, S_BFM_B32, S_MUL_I32, S_MUL_HI_U32, S_MUL_HI_I32,
                                  S_CSELECT_B32, S_PACK_LL_B32_B16, S_PACK_LH_B32_B16, S_PACK_HH_B32_B16,
                                  S_PACK_HL_B32_B16};
  static const unsigned sop1[] = {S_MOV_B32, S_CMOV_B32, S_NOT_B32, S_SEXT_I32_I8, S_SEXT_I32_I16, S_MOV_B64};
  static const unsigned sopk[] = {S_MOVK_I32, S_CMOVK_I32, S_CMPK_EQ_I32, S_CMPK_LG_I32, S_CMPK_GT_I32, S_CMPK_GE_I32,
                                  S_CMPK_LT_I32, S_CMPK_LE_I32, S_CMPK_EQ_U32, S_CMPK_LG_U32, S_CMPK_GT_U32,
                                  S_CMPK_GE_U32, S_CMPK_LT_U32, S_CMPK_LE_U32, S_ADDK_I32, S_MULK_I32};
  uint32_t s0 = salu_src(), s1 = salu_src(), d = salu_dst(), lit = rn(2) ? rnd() : rn(64) | 0x10000u * (rn(32));
  switch (rn(4)) {
  case 0: {
    unsigned op = sop2[rn(sizeof sop2 / sizeof *sop2)];
    if (s0 == 255 && s1 == 255) s1 = rn(106);
    w[0] = 0x80000000u | op << 23 | d << 16 | s1 << 8 | s0;
    break;
  }
  case 1: {
    unsigned op = sop1[rn(sizeof sop1 / sizeof *sop1)];
    if (op == S_MOV_B64) d = rn(104), s0 = s0 < 128 ? rn(104) : s0;
    w[0] = 0xbe800000u | d << 16 | op << 8 | s0;
    s1 = 0;
    break;
  }
  case 2:
    w[0] = 0xb0000000u | sopk[rn(sizeof sopk / sizeof *sopk)] << 23 | d << 16 | (rnd() & 0xffff);
    return 1;
  default: {
    unsigned op = rn(16);
    op = op < 14 ? op : op == 14 ? S_CMP_EQ_U64 : S_CMP_LG_U64;
    if (s0 == 255 && s1 == 255) s1 = rn(106);
    if (op >= S_CMP_EQ_U64) s0 = s0 < 128 ? rn(104) : s0, s1 = s1 < 128 ? rn(104) : s1;
    w[0] = 0xbf000000u | op << 16 | s1 << 8 | s0;
    break;
  }
  }
  if (s0 != 255 && s1 != 255) return 1;
  w[1] = lit;
  return 2;
}

static void test_jit_runs(void) {
  char err[512];
  int single = 0, runs = 0, nrun_ok = 0;
  for (int i = 0; i < nfast_seen; i += 3) {
    int rc = kn_rdna3_check_jit(fast_seen[i].w, (size_t)fast_seen[i].n, (uint64_t)i, 6, false, err, sizeof err);
    if (rc < 0) check(0, "compiled run of one instruction (words 0x%08x 0x%08x 0x%08x): %s", fast_seen[i].w[0],
                      fast_seen[i].w[1], fast_seen[i].w[2], err);
    single += rc == 1;
  }
  for (int i = 0; i < nfast_seen; i++) {
    if (i % 3 == 0) continue;
    int rc = kn_rdna3_check_jit(fast_seen[i].w, (size_t)narrow_vgprs(fast_seen[i].w, fast_seen[i].n), (uint64_t)i,
                                6, false, err, sizeof err);
    if (rc < 0) check(0, "compiled run of one instruction on v0..v7 (words 0x%08x 0x%08x 0x%08x): %s",
                      fast_seen[i].w[0], fast_seen[i].w[1], fast_seen[i].w[2], err);
    single += rc == 1;
    if (rc == 1) fast_seen[nrun_ok++] = fast_seen[i]; /* the runs below are made of these */
  }
  nfast_seen = nrun_ok;
  /* v_bfi_b32 vD, -16, vA, vD and its kin from a Q6_K matvec: a bit-select merged under EXEC, which LLVM 19.1 compiles
   * to a wrong vpternlogd for AVX-512 (so rdna3_jit.c compiles for AVX2) */
  for (unsigned k = 0; k < 4; k++) {
    uint32_t d = 26, a = 27, src2 = k & 1 ? d : 28, src0 = k & 2 ? 0xd0 /* -16 */ : 0xff /* literal */;
    uint32_t w[3] = {0xd6120000u | d, src0 | (256 + a) << 9 | (256 + src2) << 18, 0x00ff00f0u};
    int rc = kn_rdna3_check_jit(w, src0 == 0xff ? 3 : 2, k, 8, false, err, sizeof err);
    check(rc == 1, "v_bfi_b32 v%u, %s, v%u, v%u compiled to host code: %s", d, src0 == 0xff ? "0xff00f0" : "-16", a,
          src2, rc < 0 ? err : rc ? "agrees" : "not translated");
  }
  check(single > 200, "%d single instructions compiled to host code agree with the per-lane executors", single);
  /* DPP in compiled runs: every DPP16 control kind with and without bound_ctrl and fetch-inactive, under full and
   * partial row/bank masks, and DPP8 with and without fetch-inactive, on v_mov_b32 and v_add_f32, alone and followed
   * by an instruction that reads the result */
  static const uint32_t dctl[] = {0x00, 0x1b, 0xe4, 0x101, 0x10f, 0x111, 0x118, 0x121, 0x12f, 0x140, 0x141, 0x150,
                                  0x15f, 0x160, 0x16f};
  int dpp_ok = 0, dpp_n = 0;
  for (int k = 0; k < (int)(sizeof dctl / sizeof *dctl) + 1; k++)
    for (int v = 0; v < 16; v++) {
      bool d8 = k == (int)(sizeof dctl / sizeof *dctl), bc = v & 1, fi = v & 2, add = v & 4, masks = v & 8;
      uint32_t s0 = d8 ? (fi ? 234 : 233) : 250, code[3];
      uint32_t dw = d8 ? 3 | rn(1u << 24) << 8
                       : 3 | dctl[k] << 8 | (uint32_t)fi << 18 | (uint32_t)bc << 19 | (masks ? 0x5au << 24 : 0xffu << 24);
      code[0] = add ? 3u << 25 | 1u << 17 | 5u << 9 | s0 : 0x3fu << 25 | 1u << 17 | 1u << 9 | s0; /* v1 = dpp(v3) */
      code[1] = dw;
      code[2] = 37u << 25 | 2u << 17 | 1u << 9 | 257; /* v_add_nc_u32 v2, v1, v1 */
      for (int n = 2; n <= 3; n++) {
        int rc = kn_rdna3_check_jit(code, (size_t)n, (uint64_t)(k * 16 + v), 8, true, err, sizeof err);
        dpp_n++, dpp_ok += rc == 1;
        if (rc != 1) check(0, "compiled DPP%s %s control 0x%x%s%s (words 0x%08x 0x%08x): %s", d8 ? "8" : "16",
                           add ? "v_add_f32" : "v_mov_b32", d8 ? 0 : dctl[k], bc ? " bound_ctrl" : "", fi ? " fi" : "",
                           code[0], code[1], rc < 0 ? err : "not translated");
      }
    }
  check(dpp_ok == dpp_n, "%d of %d DPP forms compiled to host code agree with the executors", dpp_ok, dpp_n);
  /* scalar instructions alone, then runs that mix them with vector ones */
  int salu = 0, salu_runs = 0;
  for (int t = 0; t < 600; t++) {
    uint32_t w[2];
    int n = random_salu(w);
    const char *fam;
    unsigned op;
    if (!check(kn_rdna3_decode(w, (size_t)n, &fam, &op, NULL) == (unsigned)n * 4 && fam[0] == 's',
               "random scalar instruction 0x%08x decodes as %d words", w[0], n)) break;
    int rc = kn_rdna3_check_jit(w, (size_t)n, (uint64_t)t, 6, false, err, sizeof err);
    if (rc < 0) {
      check(0, "compiled scalar instruction %s op %u (words 0x%08x 0x%08x): %s", fam, op, w[0], n > 1 ? w[1] : 0, err);
      break;
    }
    salu += rc == 1;
  }
  check(salu == 600, "%d random scalar instructions compiled to host code agree with the executors", salu);
  for (int t = 0; t < 150 && nfast_seen; t++) {
    uint32_t code[24 * 3];
    size_t n = 0;
    int len = 2 + (int)(rnd() % 23);
    for (int k = 0; k < len; k++) {
      if (rn(3) == 0) {
        n += (size_t)random_salu(code + n);
        continue;
      }
      int j = (int)(rnd() % (unsigned)nfast_seen);
      memcpy(code + n, fast_seen[j].w, (size_t)fast_seen[j].n * 4);
      n += (size_t)fast_seen[j].n;
    }
    int rc = kn_rdna3_check_jit(code, n, (uint64_t)t + 1000, 4, true, err, sizeof err);
    if (rc < 0) {
      check(0, "compiled run of %d scalar and vector instructions (seed %d): %s", len, t, err);
      break;
    }
    salu_runs += rc == 1;
  }
  check(salu_runs > 100, "%d random runs mixing scalar and vector instructions agree with the executors", salu_runs);
  for (int t = 0; t < 150 && nfast_seen; t++) {
    uint32_t code[24 * 3];
    size_t n = 0;
    int len = 2 + (int)(rnd() % 23);
    for (int k = 0; k < len; k++) {
      int j = (int)(rnd() % (unsigned)nfast_seen);
      memcpy(code + n, fast_seen[j].w, (size_t)fast_seen[j].n * 4);
      n += (size_t)fast_seen[j].n;
    }
    int rc = kn_rdna3_check_jit(code, n, (uint64_t)t, 4, true, err, sizeof err);
    if (rc < 0) {
      check(0, "compiled run of %d instructions (seed %d): %s", len, t, err);
      break;
    }
    runs += rc == 1;
  }
  check(runs > 100, "%d random runs of 2-24 instructions compiled to host code agree with the per-lane executors", runs);
  printf("compiled runs: %d single instructions, %d runs of up to 24, %d scalar instructions and %d mixed runs equal "
         "to the executors\n", single, runs, salu, salu_runs);
}

static uint32_t f2u_(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* A program's runs compiled to host code (rdna3_jit.c) once it has run KN_JIT_WAVES waves, with the disk store of
 * codegen's kernel cache offered (in a directory of its own): the first program compiles its runs and stores the
 * object (a miss), a second program of the same code, after the first was freed, loads it (a hit). Every dispatch's
 * results equal plain C and its instruction counts the interpreter's. */
static void test_jit_program(void) {
  const char *ir = DECLS
    "declare i32 @llvm.umin.i32(i32, i32)\n"
    "define amdgpu_kernel void @hot(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %o) #0 {\n" GID(64)
    "  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i\n  %x = load i32, ptr addrspace(1) %pa\n"
    "  %y = mul i32 %x, -1640531535\n  %s = lshr i32 %y, 13\n  %z = xor i32 %y, %s\n  %lo = and i32 %z, 65535\n"
    "  %f = uitofp i32 %lo to float\n  %g = fmul float %f, 0.5\n  %h = fadd float %g, 3.0\n"
    "  %c = icmp ugt i32 %z, %x\n  %m = select i1 %c, i32 %z, i32 %x\n  %w = add i32 %m, %i\n"
    "  %u = call i32 @llvm.umin.i32(i32 %w, i32 123456789)\n  %hi = bitcast float %h to i32\n"
    "  %v = xor i32 %u, %hi\n  %i2 = mul i32 %i, 2\n"
    "  %q0 = getelementptr i32, ptr addrspace(1) %o, i32 %i2\n  store i32 %u, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr i32, ptr addrspace(1) %q0, i32 1\n  store i32 %v, ptr addrspace(1) %q1\n"
    "  ret void\n}\n" KATTR;
  if (!kn_getenv_int("KILN_EMU_JIT", 1) || !kn_getenv_int("KILN_EMU_JIT_CACHE", 1)) {
    printf("SKIP: compiled programs and their store (KILN_EMU_JIT=0 or KILN_EMU_JIT_CACHE=0)\n");
    return;
  }
  gpu g;
  if (gpu_load(&g, ir, "hot")) return;
  enum { WG = 64, N = 2048 * 32 + 5 * WG }; /* the first dispatch runs more waves than KN_JIT_WAVES (2048) */
  uint32_t *a = malloc(N * 4), *o = malloc(N * 8), *want = malloc(N * 8);
  for (int i = 0; i < N; i++) {
    a[i] = rnd();
    uint32_t x = a[i], y = x * 2654435761u, z = y ^ (y >> 13), m = z > x ? z : x, w = m + (uint32_t)i;
    uint32_t u = w < 123456789u ? w : 123456789u;
    want[2 * i] = u, want[2 * i + 1] = u ^ f2u_((float)(z & 65535) * 0.5f + 3.0f);
  }
  uint64_t args[] = {vmap(&g.vs, a, N * 4), vmap(&g.vs, o, N * 8)};
  const kn_codeobj_kernel *k = kn_codeobj_find(&g.co, "hot");
  if (!check(k != NULL, "kernel hot in the code object")) goto out;
  for (int i = 0; i < 2; i++) memcpy(g.kernarg + k->args[i].offset, &args[i], 8);
  char dir[] = "/tmp/kiln-jit-store-XXXXXX", *old = getenv("KILN_CACHE_DIR");
  old = old ? strdup(old) : NULL;
  if (!check(mkdtemp(dir) != NULL, "a directory for the store")) goto out;
  setenv("KILN_CACHE_DIR", dir, 1);
  kn_cache_offer_object_store();
  int64_t h0, m0, h1, m1;
  kn_cache_counts(&h0, &m0, NULL);
  uint64_t ref[KN_RDNA3_NCLASS] = {0};
  for (int prog = 0; prog < 2; prog++) {
    kn_rdna3_cache *cache = kn_rdna3_cache_new();
    for (int run = 0; run < 2; run++) { /* the second dispatch runs the compiled runs */
      memset(o, 0xff, N * 8);
      kn_rdna3_stats st = {0};
      kn_rdna3_dispatch d = {.name = "hot", .kd_va = CODE_VA + k->kd_offset, .kernarg_va = g.kernarg_va,
                             .grid = {N, 1, 1}, .wg = {WG, 1, 1}, .cache = cache};
      kn_rdna3_mem mem = {translate, &g.vs, vregion};
      char err[512] = "";
      if (!check(!kn_rdna3_run(&d, &mem, &st, err, sizeof err), "hot: run: %s", err)) break;
      int bad = 0;
      for (int i = 0; i < 2 * N; i++)
        if (o[i] != want[i] && bad++ < 3) fail_line("program %d dispatch %d: o[%d] = 0x%08x, want 0x%08x", prog, run, i,
                                                     o[i], want[i]);
      if (prog == 0 && run == 0) memcpy(ref, st.insts, sizeof ref);
      check(!bad && !memcmp(ref, st.insts, sizeof ref), "program %d, dispatch %d (%s): results equal plain C, "
            "instruction counts the interpreter's", prog, run, run ? "compiled runs" : "interpreted");
    }
    kn_rdna3_cache_free(cache); /* releases the compiled code */
    kn_cache_counts(&h1, &m1, NULL);
    if (prog == 0) check(h1 - h0 == 0 && m1 - m0 == 1, "the first program's runs are compiled and stored "
                         "(store: %lld hits, %lld misses)", (long long)(h1 - h0), (long long)(m1 - m0));
    else check(h1 - h0 == 1 && m1 - m0 == 1, "the second program's runs come from the store (%lld hits, %lld misses)",
               (long long)(h1 - h0), (long long)(m1 - m0));
  }
  int entries = 0;
  DIR *dd = opendir(dir);
  for (struct dirent *de; dd && (de = readdir(dd));) {
    if (de->d_name[0] == '.') continue;
    entries += strstr(de->d_name, ".entry") != NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    unlink(path);
  }
  if (dd) closedir(dd);
  rmdir(dir);
  check(entries == 1, "one entry in the store (%d)", entries);
  if (old) setenv("KILN_CACHE_DIR", old, 1), free(old);
  else unsetenv("KILN_CACHE_DIR");
out:
  free(a), free(o), free(want);
  gpu_free(&g);
}

/* packed half math (v_pk_*), mixed f16/f32 FMA and the integer dot product of four bytes */
static void test_packed(void) {
  const char *ir = DECLS
    "declare <2 x half> @llvm.fma.v2f16(<2 x half>, <2 x half>, <2 x half>)\n"
    "declare i32 @llvm.amdgcn.sudot4(i1, i32, i1, i32, i32, i1)\n"
    "define amdgpu_kernel void @packed(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %b, ptr addrspace(1) noalias %oh,\n"
    "    ptr addrspace(1) noalias %of, ptr addrspace(1) noalias %oi) #0 {\n" GID(64)
    "  %pa = getelementptr <2 x half>, ptr addrspace(1) %a, i32 %i\n  %av = load <2 x half>, ptr addrspace(1) %pa\n"
    "  %pb = getelementptr <2 x half>, ptr addrspace(1) %b, i32 %i\n  %bv = load <2 x half>, ptr addrspace(1) %pb\n"
    "  %m = fmul <2 x half> %av, %bv\n  %f = call <2 x half> @llvm.fma.v2f16(<2 x half> %m, <2 x half> %av, <2 x half> <half 0xH3C00, half 0xH4000>)\n"
    "  %poh = getelementptr <2 x half>, ptr addrspace(1) %oh, i32 %i\n  store <2 x half> %f, ptr addrspace(1) %poh\n"
    "  %a0 = extractelement <2 x half> %av, i32 0\n  %b1 = extractelement <2 x half> %bv, i32 1\n"
    "  %a0f = fpext half %a0 to float\n  %b1f = fpext half %b1 to float\n  %ai = bitcast <2 x half> %av to i32\n"
    "  %bi = bitcast <2 x half> %bv to i32\n  %cf = uitofp i32 %i to float\n"
    "  %mix = call float @llvm.fma.f32(float %a0f, float %b1f, float %cf)\n"
    "  %pof = getelementptr float, ptr addrspace(1) %of, i32 %i\n  store float %mix, ptr addrspace(1) %pof\n"
    "  %d = call i32 @llvm.amdgcn.sudot4(i1 true, i32 %ai, i1 false, i32 %bi, i32 %i, i1 false)\n"
    "  %poi = getelementptr i32, ptr addrspace(1) %oi, i32 %i\n  store i32 %d, ptr addrspace(1) %poi\n"
    "  ret void\n}\ndeclare float @llvm.fma.f32(float, float, float)\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "packed")) return;
  enum { N = 64 };
  _Float16 a[2 * N], b[2 * N], oh[2 * N];
  float of[N];
  int32_t oi[N];
  for (int i = 0; i < 2 * N; i++) a[i] = (_Float16)frand(-2, 2), b[i] = (_Float16)frand(-2, 2);
  uint64_t args[] = {vmap(&g.vs, a, sizeof a), vmap(&g.vs, b, sizeof b), vmap(&g.vs, oh, sizeof oh),
                     vmap(&g.vs, of, sizeof of), vmap(&g.vs, oi, sizeof oi)};
  if (!gpu_run(&g, "packed", args, 5, N, 1, 1, 64, 1, 1)) {
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
      for (int h = 0; h < 2; h++) {
        _Float16 m = a[2 * i + h] * b[2 * i + h];
        float want = (float)(_Float16)fmaf((float)m, (float)a[2 * i + h], h ? 2.0f : 1.0f);
        if ((float)oh[2 * i + h] != want && bad++ < 5)
          fail_line("packed[%d].%d = %g, want %g", i, h, (float)oh[2 * i + h], want);
      }
      float mix = fmaf((float)a[2 * i], (float)b[2 * i + 1], (float)i);
      uint32_t ai, bi;
      memcpy(&ai, &a[2 * i], 4), memcpy(&bi, &b[2 * i], 4);
      int32_t dot = i;
      for (int k = 0; k < 4; k++) dot += (int8_t)(ai >> (8 * k)) * (int32_t)((bi >> (8 * k)) & 0xff);
      if ((of[i] != mix || oi[i] != dot) && bad++ < 5)
        fail_line("packed[%d]: mix %g (want %g), dot %d (want %d)", i, of[i], mix, oi[i], dot);
    }
    check(!bad, "packed: v2f16 fma/mul, f16-in-f32 fma, signed x unsigned dot4");
  }
  gpu_free(&g);
}

/* errors: an instruction the emulator does not implement names itself and the kernel; scratch is refused */
static void test_errors(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @cube(ptr addrspace(1) noalias %o) #0 {\n"
    "  %v = call float asm sideeffect \"v_cubeid_f32 $0, 1.0, 2.0, 4.0\", \"=v\"()\n"
    "  store float %v, ptr addrspace(1) %o\n  ret void\n}\n"
    "define amdgpu_kernel void @scratch(ptr addrspace(1) noalias %o, i32 %k) #0 {\n"
    "  %arr = alloca [64 x i32], align 4, addrspace(5)\n  %p = getelementptr [64 x i32], ptr addrspace(5) %arr, i32 0, i32 %k\n"
    "  store volatile i32 7, ptr addrspace(5) %p\n  %v = load volatile i32, ptr addrspace(5) %arr\n"
    "  store i32 %v, ptr addrspace(1) %o\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "errors")) return;
  float o = 0;
  uint64_t args[] = {vmap(&g.vs, &o, sizeof o), 3};
  const kn_codeobj_kernel *k = kn_codeobj_find(&g.co, "cube");
  memcpy(g.kernarg + (k ? k->args[0].offset : 0), &args[0], 8);
  char err[512] = "";
  kn_rdna3_mem mem = {translate, &g.vs, vregion};
  kn_rdna3_dispatch d = {.name = "cube", .kd_va = CODE_VA + (k ? k->kd_offset : 0), .kernarg_va = g.kernarg_va,
                         .grid = {32, 1, 1}, .wg = {32, 1, 1}};
  int rc = kn_rdna3_run(&d, &mem, NULL, err, sizeof err);
  check(rc && strstr(err, "v_cubeid_f32") && strstr(err, "kernel cube") && strstr(err, "not implemented"),
        "unimplemented opcode named: %s", err);
  if (getenv("RDNA3_DUMP")) printf("%s\n", err);
  const kn_codeobj_kernel *ks = kn_codeobj_find(&g.co, "scratch");
  check(ks && ks->private_segment_size >= 256, "scratch kernel: metadata private segment %u",
        ks ? ks->private_segment_size : 0);
  d.name = "scratch", d.kd_va = CODE_VA + (ks ? ks->kd_offset : 0);
  err[0] = 0;
  rc = kn_rdna3_run(&d, &mem, NULL, err, sizeof err);
  check(rc && strstr(err, "scratch"), "scratch refused: %s", err);
  d.kd_va = 0x7000000000ull;
  rc = kn_rdna3_run(&d, &mem, NULL, err, sizeof err);
  check(rc && strstr(err, "not mapped"), "unmapped descriptor: %s", err);
  gpu_free(&g);
}

/* the loader refuses broken objects with messages naming what is wrong */
static void test_loader_errors(void) {
  const char *ir = DECLS "define amdgpu_kernel void @k(ptr addrspace(1) %o) #0 {\n  store i32 1, ptr addrspace(1) %o\n"
                         "  ret void\n}\n" KATTR;
  size_t n = 0;
  uint8_t *obj = compile_ir(ir, &n);
  if (!obj) return;
  kn_codeobj co;
  char err[512] = "";
  check(!kn_codeobj_load(obj, n, CODE_VA, &co, err, sizeof err) && co.nkernels == 1 && !strcmp(co.arch, "gfx1100") &&
            co.kernels[0].kernarg_size == 8 && co.kernels[0].nargs == 1 && co.kernels[0].wavefront_size == 32 &&
            co.kernels[0].args[0].kind == KN_ARG_GLOBAL_BUFFER,
        "loads: %s (arch %s, kernarg %u)", err, co.arch, co.nkernels ? co.kernels[0].kernarg_size : 0);
  kn_codeobj_free(&co);
  check(kn_codeobj_load(obj, 40, CODE_VA, &co, err, sizeof err) && strstr(err, "ELF"), "truncated: %s", err);
  check(kn_codeobj_load(obj, n, CODE_VA + 4, &co, err, sizeof err) && strstr(err, "aligned"), "misaligned: %s", err);
  /* corrupt the metadata: find the msgpack key and break the map header before it */
  uint8_t *bad = malloc(n);
  memcpy(bad, obj, n);
  uint8_t *key = memmem(bad, n, "amdhsa.kernels", 14);
  if (key) key[-1] = 0xc1; /* the key's string header becomes the reserved tag */
  check(key && kn_codeobj_load(bad, n, CODE_VA, &co, err, sizeof err) && strstr(err, "metadata"),
        "corrupt metadata: %s", err);
  free(bad);
  free(obj);
}

/* ---- the division macro, relative moves and s_cls: instruction by instruction against plain C, then whole ---- */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static float h2f(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }

/* f32 values over the whole range: random signs, mantissas and exponents from denormal to the top; the first NS*NS
 * (numerator, denominator) pairs are every pair of special values: zeros, infinities, NaN, the edges of the normal
 * range, and magnitudes whose quotients overflow or underflow */
static const uint32_t special32[] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x00800000,
                                     0x00000001, 0x007fffff, 0x7f7fffff, 0x3f800000, 0x40400000, 0xbf800000,
                                     0x0da24260, 0x7149f2ca, 0x1f800000, 0x5f800000, 0x2f800000, 0x00400000};
enum { NS32 = sizeof special32 / sizeof special32[0] };
static float wide_f32(void) {
  uint32_t e = rnd() % 256 == 0 ? 0 : 1 + rnd() % 254;
  return u2f((rnd() & 0x80000000u) | e << 23 | (rnd() & 0x7fffff));
}
static float num_f32(int i) { return i < NS32 * NS32 ? u2f(special32[i / NS32]) : wide_f32(); }
static float den_f32(int i) { return i < NS32 * NS32 ? u2f(special32[i % NS32]) : wide_f32(); }

static bool same_f32(float got, float want) { return isnan(want) ? isnan(got) : f2u(got) == f2u(want); }

/* The manual's V_DIV_SCALE_F32, written out here as plain C (S0 scaled, S1 denominator, S2 numerator); the
 * interpreter's reading of it is explained in device/amd/rdna3_div.c */
static float ref_div_scale(float s0, float d, float n, int *vcc) {
  int ed = (int)(f2u(d) >> 23 & 255), en = (int)(f2u(n) >> 23 & 255);
  bool d_denorm = ed == 0 && (f2u(d) & 0x7fffff);
  double q = fabs((double)n / (double)d);
  bool q_denorm = isfinite(n) && isfinite(d) && q < 0x1p-126;
  *vcc = 0;
  if (n == 0 || d == 0) return NAN;
  if (en - ed >= 96) return *vcc = 1, s0 == d ? s0 * 0x1p64f : s0;
  if (d_denorm) return s0 * 0x1p64f;
  if (isfinite(d) && fabsf(d) > 0x1p126f && q_denorm) return *vcc = 1, s0 == d ? s0 * 0x1p-64f : s0;
  if (isfinite(d) && fabsf(d) > 0x1p126f) return s0 * 0x1p-64f;
  if (q_denorm) return *vcc = 1, s0 == n ? s0 * 0x1p64f : s0;
  if (en <= 23) return s0 * 0x1p64f;
  return s0;
}

static float ref_div_fmas(float a, float b, float c, int vcc) {
  if (!vcc) return fmaf(a, b, c);
  __float128 t = (__float128)a * b + c; /* exact for the operands used here */
  int k = (int)(f2u(c) >> 23 & 255) > 127 ? 64 : -64;
  return (float)(k > 0 ? t * 0x1p64Q : t * 0x1p-64Q);
}

static float ref_div_fixup(float q, float d, float n) {
  uint32_t sign = (f2u(d) ^ f2u(n)) & 0x80000000u;
  int ed = (int)(f2u(d) >> 23 & 255), en = (int)(f2u(n) >> 23 & 255);
  if (isnan(n) || isnan(d)) return NAN;
  if ((d == 0 && n == 0) || (isinf(d) && isinf(n))) return NAN;
  if (d == 0 || isinf(n)) return u2f(sign | 0x7f800000u);
  if (isinf(d) || n == 0) return u2f(sign);
  if (en - ed < -150) return u2f(sign);
  if (isnan(q)) return u2f(sign | 0x7f800000u);
  return u2f(sign | (f2u(q) & 0x7fffffffu));
}

/* f32 division: each of v_div_scale_f32 (both uses, with its VCC), v_div_fmas_f32 (random VCC) and v_div_fixup_f32
 * through inline assembly against the C above, then LLVM's whole f32 division macro against C's correctly rounded
 * a / b on the same operands (every pair of special values, then random ones over the whole exponent range) */
static void test_div_f32(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @divf32(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %b, ptr addrspace(1) noalias %c,\n"
    "    ptr addrspace(1) noalias %o, i32 %mask, i32 %n) #0 {\n" GID(64)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %pa = getelementptr float, ptr addrspace(1) %a, i32 %i\n  %n0 = load float, ptr addrspace(1) %pa\n"
    "  %pb = getelementptr float, ptr addrspace(1) %b, i32 %i\n  %d0 = load float, ptr addrspace(1) %pb\n"
    "  %pc = getelementptr float, ptr addrspace(1) %c, i32 %i\n  %c0 = load float, ptr addrspace(1) %pc\n"
    "  %s1 = call { float, i32 } asm \"v_div_scale_f32 $0, $1, $2, $3, $4\", \"=v,=s,v,v,v\"(float %d0, float %d0, float %n0)\n"
    "  %s2 = call { float, i32 } asm \"v_div_scale_f32 $0, $1, $2, $3, $4\", \"=v,=s,v,v,v\"(float %n0, float %d0, float %n0)\n"
    "  %r0 = extractvalue { float, i32 } %s1, 0\n  %m0 = extractvalue { float, i32 } %s1, 1\n"
    "  %r1 = extractvalue { float, i32 } %s2, 0\n  %m1 = extractvalue { float, i32 } %s2, 1\n"
    "  %r2 = call float asm sideeffect \"s_mov_b32 vcc_lo, $4\\0Av_div_fmas_f32 $0, $1, $2, $3\", \"=v,v,v,v,s,~{vcc}\"(float %n0, float %d0, float %c0, i32 %mask)\n"
    "  %r3 = call float asm \"v_div_fixup_f32 $0, $1, $2, $3\", \"=v,v,v,v\"(float %c0, float %d0, float %n0)\n"
    "  %r4 = fdiv float %n0, %d0\n"
    "  %i8 = mul i32 %i, 8\n"
    "  %q0 = getelementptr float, ptr addrspace(1) %o, i32 %i8\n  store float %r0, ptr addrspace(1) %q0\n"
    "  %q1 = getelementptr float, ptr addrspace(1) %q0, i32 1\n  store float %r1, ptr addrspace(1) %q1\n"
    "  %q2 = getelementptr float, ptr addrspace(1) %q0, i32 2\n  store float %r2, ptr addrspace(1) %q2\n"
    "  %q3 = getelementptr float, ptr addrspace(1) %q0, i32 3\n  store float %r3, ptr addrspace(1) %q3\n"
    "  %q4 = getelementptr float, ptr addrspace(1) %q0, i32 4\n  store float %r4, ptr addrspace(1) %q4\n"
    "  %q5 = getelementptr i32, ptr addrspace(1) %q0, i32 5\n  store i32 %m0, ptr addrspace(1) %q5\n"
    "  %q6 = getelementptr i32, ptr addrspace(1) %q0, i32 6\n  store i32 %m1, ptr addrspace(1) %q6\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "divf32")) return;
  enum { N = 6000 };
  float *a = malloc(N * 4), *b = malloc(N * 4), *c = malloc(N * 4), *o = malloc(N * 32);
  for (int i = 0; i < N; i++) {
    a[i] = num_f32(i), b[i] = den_f32(i);
    /* the fmas/fixup third operand: a quotient-sized value, or the quotient itself */
    c[i] = i % 3 ? u2f((rnd() & 0x80000000u) | (uint32_t)(60 + rnd() % 136) << 23 | (rnd() & 0x7fffff)) : a[i] / b[i];
    if (i % 3 == 1 && i >= NS32 * NS32) { /* v_div_fmas_f32 operands: a*b + c exact in binary128 for the reference,
                                           * the scaled sum often below the normal range (rounded once) */
      a[i] = u2f((rnd() & 0x80000000u) | (uint32_t)(82 + rnd() % 50) << 23 | (rnd() & 0x7fffff));
      b[i] = u2f((rnd() & 0x80000000u) | (uint32_t)(82 + rnd() % 50) << 23 | (rnd() & 0x7fffff));
      c[i] = a[i] * b[i] * frand(-4, 4);
    }
  }
  memset(o, 0xff, N * 32);
  uint32_t mask = rnd();
  uint64_t args[] = {vmap(&g.vs, a, N * 4), vmap(&g.vs, b, N * 4), vmap(&g.vs, c, N * 4), vmap(&g.vs, o, N * 32), mask, N};
  if (!gpu_run(&g, "divf32", args, 6, N, 1, 1, 64, 1, 1)) {
    int bad[5] = {0}, vccset = 0, scaled = 0, nfmas = 0, fmas_denorm = 0;
    for (int i = 0; i < N; i++) {
      float n = a[i], d = b[i];
      int lane = i % 32, v0, v1, vf = mask >> lane & 1;
      float w0 = ref_div_scale(d, d, n, &v0), w1 = ref_div_scale(n, d, n, &v1);
      uint32_t m0, m1;
      memcpy(&m0, &o[i * 8 + 5], 4), memcpy(&m1, &o[i * 8 + 6], 4);
      vccset += v1, scaled += !same_f32(w1, n);
      /* fmas with operands whose a*b+c is exact in binary128 and whose scaled result is finite */
      float fa = n, fb = d, fc = c[i];
      bool fmas_ok = i % 3 == 1 && i >= NS32 * NS32;
      nfmas += fmas_ok, fmas_denorm += fmas_ok && vf && fabsf(o[i * 8 + 2]) < 0x1p-126f;
      if (!same_f32(o[i * 8], w0) || (int)(m0 >> lane & 1) != v0 || !same_f32(o[i * 8 + 1], w1) ||
          (int)(m1 >> lane & 1) != v1)
        if (bad[0]++ < 3)
          fail_line("v_div_scale_f32 n %a d %a: d' %a vcc %d, n' %a vcc %d; want %a %d, %a %d", n, d, o[i * 8],
                    m0 >> lane & 1, o[i * 8 + 1], m1 >> lane & 1, w0, v0, w1, v1);
      if (fmas_ok && !same_f32(o[i * 8 + 2], ref_div_fmas(fa, fb, fc, vf)) && bad[1]++ < 3)
        fail_line("v_div_fmas_f32(%a, %a, %a) vcc %d = %a, want %a", fa, fb, fc, vf, o[i * 8 + 2],
                  ref_div_fmas(fa, fb, fc, vf));
      if (!same_f32(o[i * 8 + 3], ref_div_fixup(c[i], d, n)) && bad[2]++ < 3)
        fail_line("v_div_fixup_f32(%a, %a, %a) = %a, want %a", c[i], d, n, o[i * 8 + 3], ref_div_fixup(c[i], d, n));
      if (!same_f32(o[i * 8 + 4], n / d) && bad[3]++ < 5)
        fail_line("fdiv %a / %a = %a, want %a", n, d, o[i * 8 + 4], n / d);
    }
    check(!bad[0] && vccset > 50 && scaled > 50, "v_div_scale_f32: %d operand pairs (%d set VCC, %d scaled)", N,
          vccset, scaled);
    check(!bad[1] && fmas_denorm > 50, "v_div_fmas_f32: %d lanes, VCC 0x%08x, %d scaled into denormals (rounded once)",
          nfmas, mask, fmas_denorm);
    check(!bad[2], "v_div_fixup_f32: %d operand triples", N);
    check(!bad[3], "f32 division (LLVM's macro) equals C's a / b bit for bit on %d pairs", N);
  }
  free(a), free(b), free(c), free(o);
  gpu_free(&g);
}

static const uint16_t special16[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0400, 0x0001, 0x03ff, 0x7bff,
                                     0x3c00, 0x4200, 0xbc00, 0x1000, 0x6000};
enum { NS16 = sizeof special16 / sizeof special16[0] };
static uint16_t num_f16(int i) { return i < NS16 * NS16 ? special16[i / NS16] : (uint16_t)rnd(); }
static uint16_t den_f16(int i) { return i < NS16 * NS16 ? special16[i % NS16] : (uint16_t)rnd(); }

static uint16_t ref_div_fixup16(uint16_t q, uint16_t d, uint16_t n) {
  uint16_t sign = (uint16_t)((d ^ n) & 0x8000);
  float fd = h2f(d), fn = h2f(n);
  if (isnan(fn)) return n | 0x200;
  if (isnan(fd)) return d | 0x200;
  if ((fd == 0 && fn == 0) || (isinf(fd) && isinf(fn))) return 0xfe00;
  if (fd == 0 || isinf(fn)) return sign | 0x7c00;
  if (isinf(fd) || fn == 0) return sign;
  return sign | (q & 0x7fff);
}

/* f16 division: v_div_fixup_f16 on the low halves and, with op_sel, on the high halves into the high half of the
 * destination (its low half kept), then LLVM's f16 division against C */
static void test_div_f16(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @divf16(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %o, i32 %n) #0 {\n" GID(64)
    "  %ok = icmp slt i32 %i, %n\n  br i1 %ok, label %body, label %end\nbody:\n"
    "  %i3 = mul i32 %i, 3\n  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i3\n  %x0 = load i32, ptr addrspace(1) %pa\n"
    "  %pb = getelementptr i32, ptr addrspace(1) %pa, i32 1\n  %x1 = load i32, ptr addrspace(1) %pb\n"
    "  %pc = getelementptr i32, ptr addrspace(1) %pa, i32 2\n  %x2 = load i32, ptr addrspace(1) %pc\n"
    "  %lo = call i32 asm \"v_div_fixup_f16 $0, $1, $2, $3\", \"=v,v,v,v\"(i32 %x0, i32 %x1, i32 %x2)\n"
    "  %hi = call i32 asm \"v_div_fixup_f16 $0, $1, $2, $3 op_sel:[1,1,1,1]\", \"=v,v,v,v,0\"(i32 %x0, i32 %x1, i32 %x2, i32 %x0)\n"
    "  %t1 = trunc i32 %x1 to i16\n  %t2 = trunc i32 %x2 to i16\n  %h1 = bitcast i16 %t1 to half\n  %h2 = bitcast i16 %t2 to half\n"
    "  %dv = fdiv half %h2, %h1\n  %dvi = bitcast half %dv to i16\n  %dvz = zext i16 %dvi to i32\n"
    "  %po = getelementptr i32, ptr addrspace(1) %o, i32 %i3\n  store i32 %lo, ptr addrspace(1) %po\n"
    "  %po1 = getelementptr i32, ptr addrspace(1) %po, i32 1\n  store i32 %hi, ptr addrspace(1) %po1\n"
    "  %po2 = getelementptr i32, ptr addrspace(1) %po, i32 2\n  store i32 %dvz, ptr addrspace(1) %po2\n"
    "  br label %end\nend:\n  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "divf16")) return;
  enum { N = 4000 };
  uint32_t *a = malloc(N * 12), *o = malloc(N * 12);
  for (int i = 0; i < N; i++) /* q, d, n in the low halves; other q, d, n in the high halves */
    a[i * 3] = (uint32_t)(uint16_t)rnd() | (uint32_t)(uint16_t)rnd() << 16,
    a[i * 3 + 1] = den_f16(i) | (uint32_t)den_f16((i + 37) % N) << 16,
    a[i * 3 + 2] = num_f16(i) | (uint32_t)num_f16((i + 37) % N) << 16;
  memset(o, 0xff, N * 12);
  uint64_t args[] = {vmap(&g.vs, a, N * 12), vmap(&g.vs, o, N * 12), N};
  if (!gpu_run(&g, "divf16", args, 3, N, 1, 1, 64, 1, 1)) {
    int bad[3] = {0}, off1 = 0;
    for (int i = 0; i < N; i++) {
      uint32_t q = a[i * 3], d = a[i * 3 + 1], n = a[i * 3 + 2];
      uint16_t wl = ref_div_fixup16((uint16_t)q, (uint16_t)d, (uint16_t)n);
      uint16_t wh = ref_div_fixup16((uint16_t)(q >> 16), (uint16_t)(d >> 16), (uint16_t)(n >> 16));
      uint32_t lo = o[i * 3], hi = o[i * 3 + 1];
      if ((uint16_t)lo != wl && bad[0]++ < 3) fail_line("v_div_fixup_f16(%04x, %04x, %04x) = %04x, want %04x", q & 0xffff, d & 0xffff, n & 0xffff, lo & 0xffff, wl);
      if ((hi >> 16 != wh || (hi & 0xffff) != (q & 0xffff)) && bad[1]++ < 3)
        fail_line("v_div_fixup_f16 op_sel (%04x, %04x, %04x) = %08x, want %04x in the high half, %04x kept", q >> 16,
                  d >> 16, n >> 16, hi, wh, q & 0xffff);
      _Float16 hn, hd;
      uint16_t un = (uint16_t)n, ud = (uint16_t)d;
      memcpy(&hn, &un, 2), memcpy(&hd, &ud, 2);
      _Float16 want = (_Float16)((float)hn / (float)hd); /* correctly rounded: f32 holds f16 quotients to 2p+2 bits */
      uint16_t wu, gu = (uint16_t)o[i * 3 + 2];
      memcpy(&wu, &want, 2);
      bool nan_ok = isnan((float)want) && (gu & 0x7fff) > 0x7c00;
      /* LLVM divides f16 as n * rcp(d) in f32, then rounds to f16: within one f16 ulp of the rounded quotient */
      int diff = (int)(int16_t)gu - (int)(int16_t)wu;
      if (!nan_ok && gu != wu) {
        if ((diff == 1 || diff == -1) && ((gu ^ wu) & 0x8000) == 0) off1++;
        else if (bad[2]++ < 3) fail_line("fdiv half %04x / %04x = %04x, want %04x", un, ud, gu, wu);
      }
    }
    check(!bad[0], "v_div_fixup_f16: %d operand triples", N);
    check(!bad[1], "v_div_fixup_f16 op_sel: high halves in, high half out, low half kept");
    check(!bad[2], "f16 division (LLVM's macro) within one ulp of C's on %d pairs (%d one ulp off)", N, off1);
  }
  free(a), free(o);
  gpu_free(&g);
}

/* v_movrels/v_movreld/v_movrelsd_2 on registers pinned by inline assembly (an index in M0 per workgroup), then what
 * LLVM makes of a divergent index into a 16-element vector (a waterfall loop of v_readfirstlane + relative moves) */
static void test_movrel(void) {
  const char *ir = DECLS
    "define amdgpu_kernel void @movrel(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %ix, ptr addrspace(1) noalias %o) #0 {\n"
    GID(64)
    "  %i8 = mul i32 %i, 8\n  %sel = and i32 %wgid, 7\n  %sel2 = lshr i32 %wgid, 3\n  %sd = and i32 %sel2, 7\n"
    "  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i8\n"
    "  %x0 = load i32, ptr addrspace(1) %pa\n"
    "  %p1 = getelementptr i32, ptr addrspace(1) %pa, i32 1\n  %x1 = load i32, ptr addrspace(1) %p1\n"
    "  %p2 = getelementptr i32, ptr addrspace(1) %pa, i32 2\n  %x2 = load i32, ptr addrspace(1) %p2\n"
    "  %p3 = getelementptr i32, ptr addrspace(1) %pa, i32 3\n  %x3 = load i32, ptr addrspace(1) %p3\n"
    "  %p4 = getelementptr i32, ptr addrspace(1) %pa, i32 4\n  %x4 = load i32, ptr addrspace(1) %p4\n"
    "  %p5 = getelementptr i32, ptr addrspace(1) %pa, i32 5\n  %x5 = load i32, ptr addrspace(1) %p5\n"
    "  %p6 = getelementptr i32, ptr addrspace(1) %pa, i32 6\n  %x6 = load i32, ptr addrspace(1) %p6\n"
    "  %p7 = getelementptr i32, ptr addrspace(1) %pa, i32 7\n  %x7 = load i32, ptr addrspace(1) %p7\n"
    "  %rs = call i32 asm sideeffect \"s_mov_b32 m0, $9\\0Av_movrels_b32 $0, v40\", \"=v,{v40},{v41},{v42},{v43},{v44},{v45},{v46},{v47},s\"(i32 %x0, i32 %x1, i32 %x2, i32 %x3, i32 %x4, i32 %x5, i32 %x6, i32 %x7, i32 %sel)\n"
    "  %rd = call { i32, i32, i32, i32, i32, i32, i32, i32 } asm sideeffect \"s_mov_b32 m0, $9\\0Av_movreld_b32 v40, $8\", \"={v40},={v41},={v42},={v43},={v44},={v45},={v46},={v47},v,s,0,1,2,3,4,5,6,7\"(i32 %i, i32 %sel, i32 %x0, i32 %x1, i32 %x2, i32 %x3, i32 %x4, i32 %x5, i32 %x6, i32 %x7)\n"
    "  %m2 = shl i32 %sd, 16\n  %m2b = or i32 %m2, %sel\n"
    "  %r2 = call { i32, i32, i32, i32, i32, i32, i32, i32 } asm sideeffect \"s_mov_b32 m0, $16\\0Av_movrelsd_2_b32 v40, v48\", \"={v40},={v41},={v42},={v43},={v44},={v45},={v46},={v47},{v48},{v49},{v50},{v51},{v52},{v53},{v54},{v55},s,0,1,2,3,4,5,6,7\"(i32 %x7, i32 %x6, i32 %x5, i32 %x4, i32 %x3, i32 %x2, i32 %x1, i32 %x0, i32 %m2b, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0)\n"
    "  %pix = getelementptr i32, ptr addrspace(1) %ix, i32 %i\n  %dyn = load i32, ptr addrspace(1) %pix\n"
      "  %vq = getelementptr <16 x i32>, ptr addrspace(1) %a, i32 %i\n  %vec = load <16 x i32>, ptr addrspace(1) %vq\n"
    "  %ex = extractelement <16 x i32> %vec, i32 %dyn\n  %dyn2 = xor i32 %dyn, 5\n"
    "  %ins = insertelement <16 x i32> %vec, i32 %i, i32 %dyn2\n  %s3 = extractelement <16 x i32> %ins, i32 3\n"
    "  %ssum = add i32 %s3, %ex\n"
    "  %po = getelementptr i32, ptr addrspace(1) %o, i32 %i8\n  store i32 %rs, ptr addrspace(1) %po\n"
    "  %rd0 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %rd, 0\n"
    "  %rd1 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %rd, 1\n"
    "  %rd7 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %rd, 7\n"
    "  %rdx = add i32 %rd0, %rd1\n  %rdy = add i32 %rdx, %rd7\n"
    "  %po1 = getelementptr i32, ptr addrspace(1) %po, i32 1\n  store i32 %rdy, ptr addrspace(1) %po1\n"
    "  %r20 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %r2, 0\n"
    "  %r23 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %r2, 3\n"
    "  %r27 = extractvalue { i32, i32, i32, i32, i32, i32, i32, i32 } %r2, 7\n"
    "  %po2 = getelementptr i32, ptr addrspace(1) %po, i32 2\n  store i32 %r20, ptr addrspace(1) %po2\n"
    "  %po3 = getelementptr i32, ptr addrspace(1) %po, i32 3\n  store i32 %r23, ptr addrspace(1) %po3\n"
    "  %po4 = getelementptr i32, ptr addrspace(1) %po, i32 4\n  store i32 %r27, ptr addrspace(1) %po4\n"
    "  %po5 = getelementptr i32, ptr addrspace(1) %po, i32 5\n  store i32 %ex, ptr addrspace(1) %po5\n"
    "  %po6 = getelementptr i32, ptr addrspace(1) %po, i32 6\n  store i32 %ssum, ptr addrspace(1) %po6\n"
    "  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "movrel")) return;
  enum { WG = 64, N = 64 * WG };
  uint32_t *a = malloc(N * 64), *ix = malloc(N * 4), *o = malloc(N * 32);
  for (int i = 0; i < N * 16; i++) a[i] = rnd();
  for (int i = 0; i < N; i++) ix[i] = rnd() % 16;
  memset(o, 0xff, N * 32);
  uint64_t args[] = {vmap(&g.vs, a, N * 64), vmap(&g.vs, ix, N * 4), vmap(&g.vs, o, N * 32)};
  if (!gpu_run(&g, "movrel", args, 3, N, 1, 1, 64, 1, 1)) {
    int bad[4] = {0};
    for (int i = 0; i < N; i++) {
      int wg = i / 64, sel = wg & 7, sd = (wg >> 3) & 7;
      const uint32_t *x = a + i * 8, *v = a + i * 16, *r = o + i * 8;
      uint32_t d[8], rs[8];
      memcpy(d, x, 32), d[sel] = (uint32_t)i;
      /* movrelsd_2: v48..v55 hold x7..x0, v40..v47 zeros; v[40 + sd] = v[48 + sel] */
      for (int k = 0; k < 8; k++) rs[k] = 0;
      rs[sd] = x[7 - sel];
      if (r[0] != x[sel] && bad[0]++ < 3) fail_line("v_movrels_b32 lane %d, m0 %d: %u, want %u", i, sel, r[0], x[sel]);
      if (r[1] != d[0] + d[1] + d[7] && bad[1]++ < 3) fail_line("v_movreld_b32 lane %d, m0 %d", i, sel);
      if ((r[2] != rs[0] || r[3] != rs[3] || r[4] != rs[7]) && bad[2]++ < 3)
        fail_line("v_movrelsd_2_b32 lane %d, m0 %d|%d<<16: %u %u %u, want %u %u %u", i, sel, sd, r[2], r[3], r[4],
                  rs[0], rs[3], rs[7]);
      uint32_t ins3 = (ix[i] ^ 5) == 3 ? (uint32_t)i : v[3];
      if ((r[5] != v[ix[i]] || r[6] != ins3 + v[ix[i]]) && bad[3]++ < 3)
        fail_line("dynamic extract/insert lane %d, index %u: %u %u, want %u %u", i, ix[i], r[5], r[6], v[ix[i]],
                  ins3 + v[ix[i]]);
    }
    check(!bad[0], "v_movrels_b32: v[40 + m0], m0 per workgroup");
    check(!bad[1], "v_movreld_b32: v[40 + m0] written, the others kept");
    check(!bad[2], "v_movrelsd_2_b32: source offset m0[9:0], destination offset m0[25:16]");
    check(!bad[3], "divergent index into <16 x i32>: extract and insert, %d lanes", N);
  }
  free(a), free(ix), free(o);
  gpu_free(&g);
}

static uint32_t ref_cls32(uint32_t a) {
  for (int i = 1; i < 32; i++)
    if ((a >> (31 - i) & 1) != (a >> 31)) return (uint32_t)i;
  return ~0u;
}
static uint32_t ref_cls64(uint64_t a) {
  for (int i = 1; i < 64; i++)
    if ((a >> (63 - i) & 1) != (a >> 63)) return (uint32_t)i;
  return ~0u;
}
static uint32_t ref_clz64(uint64_t a) {
  for (int i = 0; i < 64; i++)
    if (a >> (63 - i) & 1) return (uint32_t)i;
  return ~0u;
}

/* scalar: s_cls_i32, s_cls_i32_i64, s_clz_i32_u64 on one value per wave (all-equal bits, single bits, random
 * values with long runs) and s_movrels_b32 / s_movreld_b32 on SGPRs pinned by inline assembly */
static void test_scalar_bits(void) {
  const char *ir = DECLS
    "declare i32 @llvm.amdgcn.readfirstlane(i32)\n"
    "define amdgpu_kernel void @sbits(ptr addrspace(1) noalias %a, ptr addrspace(1) noalias %o) #0 {\n"
    "  %wg = call i32 @llvm.amdgcn.workgroup.id.x()\n  %w2 = mul i32 %wg, 2\n"
    "  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %w2\n  %lv = load i32, ptr addrspace(1) %pa\n"
    "  %pa1 = getelementptr i32, ptr addrspace(1) %pa, i32 1\n  %hv = load i32, ptr addrspace(1) %pa1\n"
    "  %lo = call i32 @llvm.amdgcn.readfirstlane(i32 %lv)\n  %hi = call i32 @llvm.amdgcn.readfirstlane(i32 %hv)\n"
    "  %lo64 = zext i32 %lo to i64\n  %hi64 = zext i32 %hi to i64\n  %hs = shl i64 %hi64, 32\n  %v64 = or i64 %hs, %lo64\n"
    "  %c32 = call i32 asm \"s_cls_i32 $0, $1\", \"=s,s\"(i32 %lo)\n"
    "  %c64 = call i32 asm \"s_cls_i32_i64 $0, $1\", \"=s,s\"(i64 %v64)\n"
    "  %z64 = call i32 asm \"s_clz_i32_u64 $0, $1\", \"=s,s\"(i64 %v64)\n"
    "  %sel = and i32 %wg, 3\n"
    "  %mr = call i32 asm sideeffect \"s_mov_b32 m0, $5\\0As_movrels_b32 $0, s40\", \"=s,{s40},{s41},{s42},{s43},s\"(i32 %lo, i32 %hi, i32 %c32, i32 %c64, i32 %sel)\n"
    "  %md = call { i32, i32, i32, i32 } asm sideeffect \"s_mov_b32 m0, $5\\0As_movreld_b32 s40, $4\", \"={s40},={s41},={s42},={s43},s,s,0,1,2,3\"(i32 %wg, i32 %sel, i32 %lo, i32 %hi, i32 %c32, i32 %c64)\n"
    "  %md0 = extractvalue { i32, i32, i32, i32 } %md, 0\n  %md1 = extractvalue { i32, i32, i32, i32 } %md, 1\n"
    "  %md2 = extractvalue { i32, i32, i32, i32 } %md, 2\n  %md3 = extractvalue { i32, i32, i32, i32 } %md, 3\n"
    "  %w8 = mul i32 %wg, 8\n  %po = getelementptr i32, ptr addrspace(1) %o, i32 %w8\n"
    "  store i32 %c32, ptr addrspace(1) %po\n"
    "  %po1 = getelementptr i32, ptr addrspace(1) %po, i32 1\n  store i32 %c64, ptr addrspace(1) %po1\n"
    "  %po2 = getelementptr i32, ptr addrspace(1) %po, i32 2\n  store i32 %z64, ptr addrspace(1) %po2\n"
    "  %po3 = getelementptr i32, ptr addrspace(1) %po, i32 3\n  store i32 %mr, ptr addrspace(1) %po3\n"
    "  %po4 = getelementptr i32, ptr addrspace(1) %po, i32 4\n  store i32 %md0, ptr addrspace(1) %po4\n"
    "  %po5 = getelementptr i32, ptr addrspace(1) %po, i32 5\n  store i32 %md1, ptr addrspace(1) %po5\n"
    "  %po6 = getelementptr i32, ptr addrspace(1) %po, i32 6\n  store i32 %md2, ptr addrspace(1) %po6\n"
    "  %po7 = getelementptr i32, ptr addrspace(1) %po, i32 7\n  store i32 %md3, ptr addrspace(1) %po7\n"
    "  ret void\n}\n" KATTR;
  gpu g;
  if (gpu_load(&g, ir, "sbits")) return;
  enum { W = 300 };
  uint64_t *a = malloc(W * 8);
  uint32_t *o = malloc(W * 32);
  static const uint64_t special[] = {0, ~0ull, 1, 0x8000000000000000ull, 0x40000000ull, 0xffffffff00000000ull,
                                     0x00000000ffffffffull, 0x0000010080000000ull, 0xfffffffe7fffffffull,
                                     0x7fffffffffffffffull, 0x80000000ull, 0xffffffff80000000ull};
  for (int i = 0; i < W; i++) {
    uint64_t v = rnd() | (uint64_t)rnd() << 32;
    a[i] = i < 12 ? special[i] : (i & 1) ? v >> (rnd() % 64) : (uint64_t)((int64_t)v >> (rnd() % 64));
  }
  memset(o, 0xff, W * 32);
  uint64_t args[] = {vmap(&g.vs, a, W * 8), vmap(&g.vs, o, W * 32)};
  if (!gpu_run(&g, "sbits", args, 2, W * 32, 1, 1, 32, 1, 1)) {
    int bad[3] = {0};
    for (int i = 0; i < W; i++) {
      uint32_t lo = (uint32_t)a[i], hi = (uint32_t)(a[i] >> 32), *r = o + i * 8;
      uint32_t c32 = ref_cls32(lo), c64 = ref_cls64(a[i]), regs[4] = {lo, hi, c32, c64};
      int sel = i & 3;
      if ((r[0] != c32 || r[1] != c64 || r[2] != ref_clz64(a[i])) && bad[0]++ < 3)
        fail_line("%016llx: s_cls_i32 %d s_cls_i32_i64 %d s_clz_i32_u64 %d, want %d %d %d", (unsigned long long)a[i],
                  (int)r[0], (int)r[1], (int)r[2], (int)c32, (int)c64, (int)ref_clz64(a[i]));
      if (r[3] != regs[sel] && bad[1]++ < 3) fail_line("s_movrels_b32 m0 %d: %u, want %u", sel, r[3], regs[sel]);
      regs[sel] = (uint32_t)i;
      if (memcmp(r + 4, regs, 16) && bad[2]++ < 3) fail_line("s_movreld_b32 m0 %d: s40..s43 wrong", sel);
    }
    check(!bad[0], "s_cls_i32, s_cls_i32_i64, s_clz_i32_u64: %d values", W);
    check(!bad[1] && !bad[2], "s_movrels_b32 / s_movreld_b32: s[40 + m0]");
  }
  free(a), free(o);
  gpu_free(&g);
}

int main(void) {
  test_f32();
  test_lds_reduce();
  test_int();
  test_casts();
  test_crosslane();
  test_grid3d();
  test_quant();
  test_small_loads();
  test_matvec();
  test_fast_paths();
  test_jit_runs();
  test_packed();
  test_div_f32();
  test_div_f16();
  test_movrel();
  test_scalar_bits();
  test_errors();
  test_loader_errors();
  test_jit_program(); /* last: it offers the disk store, which check_jit then uses too */
  printf("decoder: %d instructions compared with LLVM's disassembler\n", decoded_insts);
  return check_summary();
}
