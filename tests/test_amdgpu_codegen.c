/* AMDGPU lowering without a device: kernels of each shape kiln schedules (elementwise with a partial last
 * workgroup, row reductions split over a workgroup, quantized matrix-vector products of every K-format and the
 * legacy formats at Qwen2.5-7B sizes, symbolic variables, the attention template) compiled for gfx1100, gfx1030,
 * gfx90a and gfx942 and held to the kernel ABI: explicit kernargs only, wave32 on RDNA and wave64 on CDNA, LDS only
 * where a group spans several waves, cross-lane reductions through ds_bpermute, the launch geometry the device
 * gets; prefill matmuls of every block format through the tiled shape (codegen/amdgpu_qmm.c: workgroups of 256 work
 * items over tiles of 16 tokens x 16 rows on wave32 (8 on wave64), 16 KiB of LDS for the staged activations, no
 * scratch and at most VGPR_MAX VGPRs). (The op, fusion, codegen and attention suites are also compiled for these archs: KILN_CROSS_AMD in
 * tests/meson.build.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "codegen/llvm_target.h"
#include "codegen/loopir.h"
#include "check.h"
#include "tests/kernel_ref.h"
#include "device/amd/codeobj.h"

static const char *archs[] = {"gfx1100", "gfx1030", "gfx90a", "gfx942"};

static kn_st st_strided(int nd, const int64_t *shape, const int64_t *strides) { return kn_kref_st_strided(nd, shape, strides, 0); }

static void space(kn_kernel *k, int nd, const int64_t *shape, int nreduce) {
  k->ndim = nd, k->nreduce = nreduce;
  int64_t os[KN_MAXDIM], st[KN_MAXDIM], s = 1;
  for (int i = 0; i < nd; i++) k->shape[i] = shape[i], os[i] = i < nd - nreduce ? shape[i] : 1;
  for (int i = nd - 1; i >= 0; i--) st[i] = s, s *= os[i];
  k->out_st = st_strided(nd, os, st);
}

/* out[i] = a[i] * b[i] + v0 over n elements */
static kn_kernel *k_elementwise(int64_t n) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 3;
  for (int i = 0; i < 3; i++) k->bufs[i] = (kn_kbuf){KN_F32, n};
  k->nvars = 1;
  k->vars[0] = (kn_kvar){"v0", 0, 100};
  int64_t sh[1] = {n}, st[1] = {1};
  space(k, 1, sh, 0);
  kn_st s = st_strided(1, sh, st);
  kn_kop *m = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &s), kn_kop_load(k, 2, KN_F32, &s), NULL);
  k->root = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, m, kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, kn_kop_var(k, 0, KN_I64), NULL, NULL), NULL);
  return k;
}

/* out[r] = reduce_k x[r, k] (rmsnorm's sum of squares, softmax's max) */
static kn_kernel *k_rowreduce(int64_t R, int64_t K, kn_kop_type rop, kn_dtype dt) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 2;
  k->bufs[0] = (kn_kbuf){dt, R}, k->bufs[1] = (kn_kbuf){dt, R * K};
  int64_t sh[2] = {R, K}, st[2] = {K, 1};
  space(k, 2, sh, 1);
  kn_st s = st_strided(2, sh, st);
  kn_kop *x = kn_kop_load(k, 1, dt, &s);
  k->root = kn_kop_reduce(k, rop, rop == KN_KOP_ADD ? kn_kop_alu(k, KN_KOP_MUL, dt, 2, x, x, NULL) : x);
  return k;
}

/* out[m, n] = sum_k x[m, k] * W[n, k], W in a block format (the fused dequant-matmul) */
static kn_kernel *k_qmatmul(kn_dtype q, int64_t M, int64_t N, int64_t K) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 3;
  k->bufs[0] = (kn_kbuf){KN_F32, M * N}, k->bufs[1] = (kn_kbuf){KN_F32, M * K}, k->bufs[2] = (kn_kbuf){q, N * K};
  int64_t sh[3] = {M, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
  space(k, 3, sh, 1);
  kn_st a = st_strided(3, sh, sx), b = st_strided(3, sh, sw);
  kn_kop *x = kn_kop_load(k, 1, KN_F32, &a), *w = kn_kop_load(k, 2, KN_F32, &b);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, x, w, NULL));
  return k;
}

static kn_kernel *k_attention(int n_q, int n_head, int n_kv, int D, kn_dtype cache) {
  kn_kernel *k = kn_kernel_new();
  k->kind = KN_KERNEL_ATTENTION;
  k->nbufs = 4;
  int64_t ctx = 4096;
  k->bufs[0] = k->bufs[1] = (kn_kbuf){KN_F32, (int64_t)n_q * n_head * D};
  k->bufs[2] = k->bufs[3] = (kn_kbuf){cache, ctx * n_kv * D};
  k->nvars = 1;
  k->vars[0] = (kn_kvar){"start_pos", 0, ctx - n_q};
  k->attn = (kn_attn){n_q, n_head, n_kv, D, ctx, 0.0883883f, 0};
  return k;
}

typedef struct {
  const char *name;
  kn_kernel *k;
  int64_t group; /* expected work items per workgroup of a split reduction; 0: not a split reduction; TILED: prefill */
} kcase;

#define TILED (-2)
#define VGPR_MAX 160 /* the tiled shape's registers: 32 accumulators per work item (Q2_K took 153 on gfx1100 in LLVM 19) */

static bool has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* The split reduction's group on this arch (the wave size decides how wide each work item's share is) and its flat
 * row blocks (*items), and for a block-format weight: the work items of one wave cover whole blocks, so no block is
 * read by two waves. */
static int64_t matvec_group(const kcase *c, const kn_target *t, int64_t *items) {
  kn_sched s;
  char err[256];
  if (!check(kn_gpu_schedule(c->k, t, &s, err, sizeof err) == 0, "%s %s: schedule: %s", c->name, t->cpu, err)) return 0;
  int64_t g = kn_sched_group(&s), span = 1, wave = strncmp(t->cpu, "gfx9", 4) ? 32 : 64;
  *items = 1;
  for (int i = 0; i < s.n; i++)
    if (s.p[i].kind == KN_AX_GLOBAL) *items *= s.p[i].size;
  if (c->group > 0) return g;
  check(g >= 16, "%s %s: the GPU schedule does not split the reduction over a workgroup", c->name, t->cpu);
  for (int i = 0; i < s.n; i++)
    if (s.p[i].axis == c->k->ndim - 1 && (s.p[i].kind == KN_AX_RVEC || s.p[i].kind == KN_AX_UNROLL)) span *= s.p[i].size;
  int64_t B = kn_dtype_get(c->k->bufs[2].dtype)->block_elems;
  if (kn_dtype_is_quant(c->k->bufs[2].dtype))
    check(span % B == 0 || (g < wave ? g : wave) * span % B == 0,
          "%s %s: a wave's %lld work items of %lld elements each do not cover whole %lld-element blocks", c->name,
          t->cpu, (long long)(g < wave ? g : wave), (long long)span, (long long)B);
  return g;
}

/* The tiled prefill shape: its geometry, the activations staged in LDS behind barriers, 16-byte loads, registers */
static void check_tiled(const kcase *c, const char *arch) {
  kn_target t;
  kn_target_amdgpu(&t, arch);
  kn_compiled out;
  char err[512];
  if (!check(kn_compile(c->k, &t, &out, err, sizeof err) == 0, "%s %s: compile: %s", c->name, arch, err)) return;
  check(kn_amdgpu_check(out.obj, out.obj_size, out.entry, c->k->nbufs, c->k->nvars, err, sizeof err) == 0,
        "%s %s: ABI: %s", c->name, arch, err);
  int64_t T = c->k->shape[0], N = c->k->shape[1], wave = strncmp(arch, "gfx9", 4) ? 32 : 64, tn = 256 / wave * 2;
  check(!strncmp(out.name, "qmm_", 4), "%s %s: compiled as %s, not by the tiled template", c->name, arch, out.name);
  check(out.local[0] == 256 && out.global[0] == (T + 15) / 16 * ((N + tn - 1) / tn),
        "%s %s: %lld workgroups of %lld work items, expected %lld of 256 (16 tokens x %lld rows each)", c->name, arch,
        (long long)out.global[0], (long long)out.local[0], (long long)((T + 15) / 16 * ((N + tn - 1) / tn)), (long long)tn);
  kn_codeobj co;
  if (check(kn_codeobj_load(out.obj, out.obj_size, 0, &co, err, sizeof err) == 0, "%s %s: %s", c->name, arch, err)) {
    const kn_codeobj_kernel *k = kn_codeobj_find(&co, out.entry);
    if (check(k != NULL, "%s %s: no kernel %s", c->name, arch, out.entry)) {
      check(k->group_segment_size == 16 * 256 * 4, "%s %s: %u bytes of LDS, expected 16 tokens x 256 floats", c->name,
            arch, k->group_segment_size);
      check(k->vgpr_count <= VGPR_MAX && k->private_segment_size == 0, "%s %s: %u VGPRs (at most %d), %u bytes of scratch",
            c->name, arch, k->vgpr_count, VGPR_MAX, k->private_segment_size);
      printf("  %-36s %-8s %3u VGPRs %3u SGPRs, %u bytes of LDS\n", c->name, arch, k->vgpr_count, k->sgpr_count,
             k->group_segment_size);
    }
    kn_codeobj_free(&co);
  }
  char *dis = kn_llvm_disassemble(out.obj, out.obj_size, &t);
  check(has(dis, "s_barrier"), "%s %s: no barrier around the staged activations", c->name, arch);
  check(has(dis, "ds_load_b128") || has(dis, "ds_read_b128") || has(dis, "ds_read2_b64"), "%s %s: activations not read from LDS 16 bytes at a time", c->name, arch);
  check(has(dis, "global_load_b128") || has(dis, "global_load_dwordx4"), "%s %s: no 16-byte global loads", c->name, arch);
  free(dis);
  kn_compiled_free(&out);
}

static void check_case(const kcase *c0, const char *arch) {
  kn_target t;
  kn_target_amdgpu(&t, arch);
  kcase cc = *c0, *c = &cc;
  int64_t items = 0, wave = strncmp(arch, "gfx9", 4) ? 32 : 64, rows = 1;
  if (c->group == TILED) {
    check_tiled(c, arch);
    return;
  }
  if (c->group) { /* matvecs (-1): a split reduction whose group the schedule picks; else the group expected */
    int64_t g = matvec_group(c, &t, &items);
    check(c->group < 0 || g == c->group, "%s %s: a group of %lld work items, expected %lld", c->name, arch, (long long)g,
          (long long)c->group);
    c->group = g;
    /* a group smaller than a wave shares it with the next row blocks: as many as fit and divide the row blocks */
    while (c->group * rows * 2 <= wave && items % (rows * 2) == 0) rows *= 2;
  }
  kn_compiled out;
  char err[512];
  if (!check(kn_compile(c->k, &t, &out, err, sizeof err) == 0, "%s %s: compile: %s", c->name, arch, err)) return;
  check(kn_amdgpu_check(out.obj, out.obj_size, out.entry, c->k->nbufs, c->k->nvars, err, sizeof err) == 0,
        "%s %s: ABI: %s", c->name, arch, err);
  kn_amdgpu_kd kd;
  if (kn_amdgpu_kd_read(out.obj, out.obj_size, out.entry, &kd, err, sizeof err) == 0) {
    check(kd.wave == wave, "%s %s: wave%d, expected wave%lld", c->name, arch, kd.wave, (long long)wave);
    int64_t wg = out.local[0];
    if (c->group) {
      check(wg == c->group * rows && out.global[0] * rows == items,
            "%s %s: %lld workgroups of %lld work items, expected %lld of %lld (%lld row blocks of a %lld-item group each)",
            c->name, arch, (long long)out.global[0], (long long)wg, (long long)(items / rows), (long long)(c->group * rows),
            (long long)rows, (long long)c->group);
      /* a group within one wave needs no LDS; a larger one one slot per wave and reduce */
      bool lds = c->group > wave;
      check(lds ? kd.lds_bytes > 0 : kd.lds_bytes == 0, "%s %s: %u bytes of LDS for a group of %lld", c->name, arch,
            kd.lds_bytes, (long long)c->group);
    } else if (c->k->kind == KN_KERNEL_EXPR) {
      check(kd.lds_bytes == 0, "%s %s: elementwise kernel uses %u bytes of LDS", c->name, arch, kd.lds_bytes);
    }
    check(out.local[1] == 1 && out.local[2] == 1 && out.global[1] == 1 && out.global[2] == 1 && wg >= 1 && wg <= 1024,
          "%s %s: launch geometry %lldx%lldx%lld / %lldx%lldx%lld", c->name, arch, (long long)out.global[0],
          (long long)out.global[1], (long long)out.global[2], (long long)out.local[0], (long long)out.local[1],
          (long long)out.local[2]);
  }
  char *dis = kn_llvm_disassemble(out.obj, out.obj_size, &t);
  check(has(dis, "s_endpgm"), "%s %s: disassembly has no s_endpgm", c->name, arch);
  if (c->k->kind == KN_KERNEL_ATTENTION)
    check(has(dis, "ds_bpermute_b32"), "%s %s: cross-lane reduction without ds_bpermute", c->name, arch);
  if (c->group) { /* the butterfly in registers: DPP inside rows of 16, permlanex16 / ds_swizzle across them */
    static const struct { int64_t above; const char *inst; } steps[] = {
        {1, "quad_perm:[1,0,3,2]"}, {2, "quad_perm:[2,3,0,1]"}, {4, "row_half_mirror"}, {8, "row_mirror"}};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
      if (c->group > steps[i].above)
        check(has(dis, steps[i].inst), "%s %s: a group of %lld without the DPP step %s", c->name, arch, (long long)c->group,
              steps[i].inst);
    if (c->group > 16)
      check(has(dis, wave == 32 ? "v_permlanex16_b32" : "ds_swizzle_b32"), "%s %s: a group of %lld without %s", c->name,
            arch, (long long)c->group, wave == 32 ? "v_permlanex16_b32" : "ds_swizzle_b32");
    bool bperm = c->group > 32 && wave == 64;
    check(has(dis, "ds_bpermute_b32") == bperm, "%s %s: ds_bpermute %s (a group of %lld on wave%lld)", c->name, arch,
          bperm ? "missing" : "used", (long long)c->group, (long long)wave);
  }
  if (c->k->kind == KN_KERNEL_EXPR && c->k->bufs[2].dtype == KN_Q4_K)
    check(has(dis, "global_load_b128") || has(dis, "global_load_dwordx4") || has(dis, "dwordx4"),
          "%s %s: Q4_K blocks are not read with 16-byte loads", c->name, arch);
  free(dis);
  kn_compiled_free(&out);
}

int main(void) {
  kcase cases[48];
  int n = 0;
  cases[n++] = (kcase){"elementwise 1000 (partial workgroup)", k_elementwise(1000), 0};
  cases[n++] = (kcase){"elementwise 7", k_elementwise(7), 0};
  cases[n++] = (kcase){"rmsnorm sum of squares 4x3584", k_rowreduce(4, 3584, KN_KOP_ADD, KN_F32), 128};
  cases[n++] = (kcase){"max 2x128 (within one wave)", k_rowreduce(2, 128, KN_KOP_MAX, KN_F32), 32};
  cases[n++] = (kcase){"sum 8x192 (two or four rows per wave)", k_rowreduce(8, 192, KN_KOP_ADD, KN_F32), 16};
  cases[n++] = (kcase){"i32 sum 3x4096", k_rowreduce(3, 4096, KN_KOP_ADD, KN_I32), 256};
  cases[n++] = (kcase){"short reduce 5x12 (serial)", k_rowreduce(5, 12, KN_KOP_ADD, KN_F32), 0};
  kn_dtype fmts[] = {KN_Q4_0, KN_Q8_0, KN_Q4_K, KN_Q6_K, KN_F16};
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    static char names[8][64];
    snprintf(names[f], sizeof names[f], "decode matvec %s 3584x3584", kn_dtype_name(fmts[f]));
    cases[n++] = (kcase){names[f], k_qmatmul(fmts[f], 1, 3584, 3584), -1};
  }
  cases[n++] = (kcase){"decode matvec Q4_K ffn_down 3584x18944", k_qmatmul(KN_Q4_K, 1, 3584, 18944), -1};
  kn_dtype pf[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
  for (size_t f = 0; f < sizeof pf / sizeof *pf; f++) {
    static char names[16][64];
    snprintf(names[f], sizeof names[f], "prefill matmul %s 512x512x3584", kn_dtype_name(pf[f]));
    cases[n++] = (kcase){names[f], k_qmatmul(pf[f], 512, 512, 3584), TILED};
  }
  cases[n++] = (kcase){"prefill matmul Q6_K 100x300x1280 (edges)", k_qmatmul(KN_Q6_K, 100, 300, 1280), TILED};
  cases[n++] = (kcase){"prefill matmul Q4_0 100x300x1056 (K tail)", k_qmatmul(KN_Q4_0, 100, 300, 1056), TILED};
  cases[n++] = (kcase){"attention Qwen2.5-7B f16 cache, decode", k_attention(1, 28, 4, 128, KN_F16), 0};
  cases[n++] = (kcase){"attention prefill 16 queries f32 cache", k_attention(16, 8, 2, 64, KN_F32), 0};
  cases[n++] = (kcase){"attention head_dim 256", k_attention(1, 8, 8, 256, KN_F16), 0};
  for (int i = 0; i < n; i++) {
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) check_case(&cases[i], archs[a]);
    kn_kernel_free(cases[i].k);
  }
  return check_summary();
}
