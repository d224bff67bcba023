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

#include "check.h"
#include "codegen/llvm_target.h"
#include "device/amd/codeobj.h"
#include "device/amd/rdna3.h"
#include "device/elf.h"
#include "device/env.h"

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
                         .grid = {gx, gy, gz}, .wg = {wx, wy, wz}, .group_segment_bytes = k->group_segment_size};
  kn_rdna3_mem mem = {translate, &g->vs};
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
  double t0 = kn_now();
  int rc = gpu_run(&g, "matvec", args, 5, (R + 1) / 2 * 64, 1, 1, 64, 1, 1);
  double dt = kn_now() - t0;
  uint64_t insts = 0;
  for (int c = 0; c < KN_RDNA3_NCLASS; c++) insts += g.st.insts[c];
  printf("matvec %dx%d: %llu wave instructions in %.2f ms (%.1f M wave-instructions/s)\n", R, K,
         (unsigned long long)insts, dt * 1e3, insts / dt / 1e6);
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
  kn_rdna3_mem mem = {translate, &g.vs};
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

int main(void) {
  test_f32();
  test_lds_reduce();
  test_int();
  test_casts();
  test_crosslane();
  test_grid3d();
  test_quant();
  test_matvec();
  test_packed();
  test_errors();
  test_loader_errors();
  printf("decoder: %d instructions compared with LLVM's disassembler\n", decoded_insts);
  return check_summary();
}
