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

int main(void) {
  test_f32();
  test_lds_reduce();
  printf("decoder: %d instructions compared with LLVM's disassembler\n", decoded_insts);
  return check_summary();
}
