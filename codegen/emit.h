/* Private to codegen/: state and helpers shared by the LLVM IR emitter (llvm_emit.c), its math library
 * (emit_math.c) and the block-format load templates (quant.c). Values of f16/bf16 dtypes live in float registers
 * and are computed in f32: loads widen them, stores and explicit casts round them. bool lives in i1 registers and
 * i8 memory. */
#ifndef KN_EMIT_H
#define KN_EMIT_H

#include <llvm-c/Core.h>
#include <stdbool.h>
#include <stddef.h>

#include "loopir.h"

typedef struct {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMValueRef fn;
  LLVMBasicBlockRef entry;
  LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, ptr, vd;
  const kn_lprog *p;
  const kn_target *t;
  LLVMValueRef *vals;
  /* GPU kernels (amdgpu_emit.c): variables arrive as arguments, work items past the grid branch to exit_bb, and
   * store_gate (when set) keeps all but one work item of a group reduction from storing */
  LLVMValueRef *varvals;
  LLVMBasicBlockRef exit_bb;
  LLVMValueRef store_gate;
  void *gpu;
  char *err;
  size_t errlen;
  bool failed;
} kn_emit;

int kn_efail(kn_emit *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* vec == 1: the scalar type itself */
LLVMTypeRef kn_e_vec(LLVMTypeRef t, int vec);
/* Register type of a dtype (float for f16/bf16, i1 for bool) and its in-memory type. */
LLVMTypeRef kn_e_regtype(kn_emit *e, kn_dtype dt);
LLVMTypeRef kn_e_memtype(kn_emit *e, kn_dtype dt);
/* Constants shaped like type ty (scalar or vector). */
LLVMValueRef kn_e_fconst(LLVMTypeRef ty, double v);
LLVMValueRef kn_e_iconst(LLVMTypeRef ty, long long v);
LLVMValueRef kn_e_splat(kn_emit *e, LLVMValueRef v, int vec);
LLVMValueRef kn_e_intrinsic(kn_emit *e, const char *name, LLVMTypeRef overload, LLVMValueRef *args, int nargs);
/* A prefetch (for reading, into every cache level) every 64 bytes of the `bytes` from byte pointer p: consecutive
 * spans of a row then leave no cache line between two prefetched addresses, whatever the alignment. Takes the bare
 * builder, for the emitters without a kn_emit (attention.c). */
void kn_prefetch_span(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef p, int64_t bytes);
/* a stack slot of type t in the entry block (static: one per call, not per loop iteration); align 0: t's own */
LLVMValueRef kn_e_entry_alloca(kn_emit *e, LLVMTypeRef t, unsigned align, const char *name);
/* Float ops with the fast-math flags kiln allows (contraction only: results stay IEEE otherwise). */
LLVMValueRef kn_e_fadd(kn_emit *e, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef kn_e_fmul(kn_emit *e, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef kn_e_fsub(kn_emit *e, LLVMValueRef a, LLVMValueRef b);
/* Value of loop IR op id (an accumulator's current value), splat to vec lanes when it is a scalar. */
LLVMValueRef kn_e_get(kn_emit *e, int id, int vec);
/* A binary kernel op on registers of source dtype sdt (scalars or vectors), as every target computes it. */
LLVMValueRef kn_e_binary(kn_emit *e, kn_kop_type op, kn_dtype sdt, LLVMValueRef a, LLVMValueRef b);
/* Round a float register to f16 or bf16 precision (explicit casts). */
LLVMValueRef kn_e_round_to(kn_emit *e, LLVMValueRef v, kn_dtype dt);
/* bf16 bits (i16 or vector) <-> float register */
LLVMValueRef kn_e_bf16_to_f32(kn_emit *e, LLVMValueRef bits);
LLVMValueRef kn_e_f32_to_bf16(kn_emit *e, LLVMValueRef f);

/* emit_math.c: inline polynomial transcendentals (no libm calls in the object) */
LLVMValueRef kn_e_exp2(kn_emit *e, LLVMValueRef x);
LLVMValueRef kn_e_log2(kn_emit *e, LLVMValueRef x);
LLVMValueRef kn_e_sin(kn_emit *e, LLVMValueRef x);

/* quant.c: `vec` contiguous elements of block format fmt, starting at element j0 (i64, a multiple of vec) of block
 * blk (i64), decoded to float (a <vec x float> or a float). A constant j0 folds the template to straight code. */
LLVMValueRef kn_quant_load(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef j0, int vec);
bool kn_quant_load_supported(kn_dtype fmt);

/* quant_dot.c: the integer-dot template. The dot of one block (blk, i64) of format fmt with the activations xs (nx
 * vectors of vec floats, the block's elements in order), activations quantized to int8 with one scale per block;
 * a <vec x float> of partial sums. */
LLVMValueRef kn_quant_dot(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, const LLVMValueRef *xs, int nx,
                          int vec);
/* quant_dot.c, the activations quantized once per call (loop IR QX / QDOTR, kn_quant_x_record_bytes): the activations xs (nx vectors of vec floats) of
 * fmt's QDOT quantized into the record at rec (64-byte aligned); the dot of blocks blk.. with the record's
 * activations, a <vec x float> of partial sums as kn_quant_dot's. */
void kn_quant_x_store(kn_emit *e, kn_dtype fmt, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef rec);
LLVMValueRef kn_quant_dot_rec(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef rec, int qk, int vec);
/* quant_dot.c, for the tiled prefill template (quant_mm.c): the activations' sub-block size S of fmt; one block of
 * activations (nx vectors of vec floats) quantized as kn_quant_dot does, to *xq <qk x i8>, *dx (f32) and the sums of
 * its sub-blocks *sums <qk/S x i16>; how many blocks of a row of nb blocks one record holds (nblk; *split: the
 * nibble formats' records, below); the lanes of a token's accumulator; the dots of nblk weight blocks blk, blk + 1,
 * ... (decoded once) with the record of ntok tokens' quantized blocks (xq: ntok x nblk * qk int8, token-major; dx:
 * [nblk][ntok] floats; sp: for one-sub-block formats [nblk][ntok] floats of dx * sum(xq), for the others the sums as
 * [ntok][qk/S] i16), added to acc[u] (<lanes x float>) and *accv (<ntok x float>, Q8_0's offset term elsewhere); a
 * token's result from both. Split records (Q4_0/Q4_1/Q5_0/Q5_1) hold a token's int8 values in the weights' nibble
 * order, elements 0-15 of each of the nblk blocks then 16-31 of each, and dx as [ntok][4 nblk] floats (each block's
 * over its four lanes). */
int kn_quant_dot_sub(kn_dtype fmt);
void kn_quant_x_block(kn_emit *e, kn_dtype fmt, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef *xq, LLVMValueRef *dx,
                      LLVMValueRef *sums);
/* a 256-element block's quantized activations in the K record's order (the GEMV's and the tile's): element order,
 * except Q2_K/Q3_K on 64-byte vectors, whose lane l of 64-byte chunk c holds element 128 (l / 32) + 32 c + l % 32,
 * and Q3_K on 32-byte vectors, each 32 bytes with the dwords of its two 16-byte halves interleaved (quant_dot.c k_elem) */
LLVMValueRef kn_quant_x_order(kn_emit *e, kn_dtype fmt, LLVMValueRef xq);
int kn_quant_dot_tile_blocks(const kn_target *t, kn_dtype fmt, int64_t nb, bool *split);
int kn_quant_dot_lanes(kn_emit *e, kn_dtype fmt, int nblk);
/* the dot of tokens u0..u1-1 of a record of ntok with one row's nblk blocks from blk on, into acc[u0..u1) (and the
 * offset term of all ntok tokens into *accv when u0 is 0): a pass over tokens in chunks decodes the blocks each time,
 * identical code that LLVM merges, so several rows' chunks can interleave (one token's loads shared by the rows) */
void kn_quant_dot_tile(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int ntok, int u0, int u1,
                       LLVMValueRef xq, LLVMValueRef dx, LLVMValueRef sp, LLVMValueRef xi, LLVMValueRef *acc, LLVMValueRef *accv);
/* Biased records (Q8_0 where vpdpbusd exists): the tile adds 128 to the signed quants and starts each token's integer
 * sum at -128 times its activations' sums of four (xi: [ntok][lanes] i32, kn_quant_x_sums4 of its blocks side by
 * side), and takes dx as [ntok][lanes] floats (each block's over its lanes), sp unused; xi NULL: plain records. */
bool kn_quant_dot_tile_biased(const kn_target *t, kn_dtype fmt, int nblk);
LLVMValueRef kn_quant_x_sums4(kn_emit *e, LLVMValueRef xq);
/* Split records hold beside dx each token's sums of four of xL + xH (lanes 4k..4k+3: block k) times the offset (i32:
 * Q4_0, Q5_0) or times dx (f32: Q4_1, Q5_1), passed as xi: one block's four lanes from its <32 x i8> values. With
 * them, and the K formats' sub-block sums as [ntok][qk/S] i16, every token's dot is the GEMV's (split_dot, k_dot,
 * qdot_core on biased Q8_0) operation for operation, so a row's result does not depend on how many rows its pass
 * holds: a sequence decoded inside a batch gives the logits it gives alone. */
LLVMValueRef kn_quant_split_sums(kn_emit *e, kn_dtype fmt, LLVMValueRef xq, LLVMValueRef dx);
/* <U x float>: lane u is token u's accumulator acc[u] summed over its lanes in the GEMV's horizontal-sum tree (fit),
 * plus lane u of accv */
LLVMValueRef kn_quant_dot_hsums(kn_emit *e, const LLVMValueRef *acc, int U, LLVMValueRef accv);
/* llvm_emit.c: types and state for emitting p for t into a new module named entry (kn_emit_done releases them). */
void kn_emit_init(kn_emit *e, LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry, char *err,
                  size_t errlen);
void kn_emit_done(kn_emit *e);
/* Every loop IR op of e->p in order into e->fn, from the builder's position; ends with `ret void`. params are the
 * buffer pointers; vars/start/end are the CPU entry's (NULL on GPUs, whose special ops amdgpu_emit.c supplies). */
int kn_emit_ops(kn_emit *e, LLVMValueRef *params, LLVMValueRef vars, LLVMValueRef start, LLVMValueRef end);
/* amdgpu_emit.c: value of a GPU-only op (SPECIAL, VAR, GROUPREDUCE, BARRIER, LOCAL) of e->p. */
LLVMValueRef kn_amdgpu_op(kn_emit *e, int i);

/* llvm_emit.c: a module with one function `entry` in the CPU calling convention. NULL with err on failure. */
LLVMModuleRef kn_emit_module(LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry, char *err,
                             size_t errlen);

/* amdgpu_emit.c: a module with one amdgpu_kernel `entry` (buffers as global pointers, then variables as i64) and
 * the launch geometry it expects (global = workgroups, local = work items per workgroup). */
/* The amdgpu_kernel function with kiln's kernel ABI for e->p->k's buffers and variables, at most wgsize work items
 * per workgroup; and an always-inlined workgroup barrier that orders LDS (fences of workgroup scope). */
LLVMValueRef kn_amdgpu_kernel_fn(kn_emit *e, const char *entry, int64_t wgsize);
LLVMValueRef kn_amdgpu_barrier_fn(kn_emit *e);
/* A call of a non-overloaded intrinsic (llvm.amdgcn.*); an unknown name fails e. */
LLVMValueRef kn_amdgpu_intr(kn_emit *e, const char *name, LLVMValueRef *args, int nargs);
/* An f32 summed over each aligned group of `width` lanes (a power of two within the wave), every lane getting its
 * group's sum: GROUPREDUCE's butterfly (DPP, permlanex16 / ds_swizzle, ds_bpermute across wave64 halves). All lanes
 * of the group must be active. tid: the work-item id. */
LLVMValueRef kn_amdgpu_lane_sum(kn_emit *e, LLVMValueRef x, LLVMValueRef tid, int width, int wave);
/* amdgpu_attention.c: the attention template for AMDGPU, with its launch geometry. */
LLVMModuleRef kn_amdgpu_attention_module(LLVMContextRef c, const kn_kernel *k, const kn_target *t, const char *entry,
                                         int64_t global[3], int64_t local[3], char *err, size_t errlen);
LLVMModuleRef kn_amdgpu_module(LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry,
                               int64_t global[3], int64_t local[3], char *err, size_t errlen);

#endif
