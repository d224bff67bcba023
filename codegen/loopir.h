/* Private to codegen/: the loop IR, a linear list of ops in the spirit of tinygrad's linearized uops. Every value
 * has a scalar dtype and a vector width; loops are RANGE/ENDRANGE pairs, reductions are accumulators. GPU concepts
 * (workgroup/local ids, local memory, barriers, wave reductions) have ops so one IR serves every target; the CPU
 * emitter runs GLOBAL id 0 as a loop over the [start, end) work items the device hands each thread. */
#ifndef KN_LOOPIR_H
#define KN_LOOPIR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernel.h"
#include "../device/device.h"

typedef enum {
  KN_L_PARAM,     /* pointer to buffer `arg` (dtype = storage dtype) */
  KN_L_VAR,       /* value of symbolic variable `arg`, i64 */
  KN_L_CONST,     /* val, splat to vec lanes */
  KN_L_SPECIAL,   /* hardware index: arg = KN_SP_*; size = extent */
  KN_L_RANGE,     /* serial loop counter over [0, size), i64; opens a loop */
  KN_L_ENDRANGE,  /* src[0] = the RANGE it closes */
  KN_L_ACC,       /* accumulator register, initialised to src[0] (a CONST); reading it gives its current value */
  KN_L_ACCSET,    /* src[0] = ACC, src[1] = new value */
  KN_L_LOAD,      /* src: PARAM, element index (i64), [gate bool]; vec contiguous elements; gated-off -> 0 */
  KN_L_QLOAD,     /* block-format load: src PARAM, block index, element in block (a multiple of vec), [gate];
                     vec contiguous elements decoded to f32; arg = storage dtype */
  KN_L_QDOT,      /* integer-dot of one block: src PARAM, block index, then the block's activations as vec-lane f32
                     values in element order; vec f32 partial sums; arg = storage dtype (quant_dot.c) */
  KN_L_SCRATCH,   /* CPU: a 64-byte aligned stack array of `size` bytes, one per call of the kernel (its pointer) */
  KN_L_QX,        /* the activations of one QDOT quantized into a record: src SCRATCH, record index, then the
                     activations as QDOT takes them; arg = storage dtype of the weights */
  KN_L_QDOTR,     /* QDOT with activations a QX stored: src PARAM, block index, SCRATCH, record index, CONST elements */
  KN_L_STORE,     /* src: PARAM, element index, value, [gate] */
  KN_L_ALU,       /* alu = kernel op (ADD, MUL, WHERE, CMPLT, ...) */
  KN_L_CAST,      /* to dtype */
  KN_L_BITCAST,
  KN_L_VECTORIZE, /* nsrc scalars -> one vector */
  KN_L_GEP,       /* lane `arg` of src[0] */
  KN_L_HREDUCE,   /* horizontal reduction of a vector with alu (ADD/MAX/MUL) */
  KN_L_IF,        /* src[0] bool: ops up to the matching ENDIF run only when true */
  KN_L_ENDIF,
  KN_L_BARRIER,   /* workgroup barrier (GPU) */
  KN_L_LOCAL,     /* workgroup-local array of size elements (GPU) */
  KN_L_PREFETCH,  /* CPU: the `size` bytes from block src[1] of PARAM src[0] on are brought into the cache ahead of
                   * their use (a hint: no value, never a fault); other targets ignore it */
  KN_L_GROUPREDUCE, /* src[0] reduced with alu over the `size` work items of a workgroup (GPU: the GROUP piece);
                     every work item gets the result */
  KN_L_COUNT
} kn_lop_type;

/* SPECIAL: work item ids; FIRST0, on the CPU, the first global id 0 of the call (a call runs a range of them) */
enum { KN_SP_GLOBAL0, KN_SP_GLOBAL1, KN_SP_GLOBAL2, KN_SP_LOCAL0, KN_SP_LOCAL1, KN_SP_LOCAL2, KN_SP_FIRST0 };

typedef struct {
  kn_lop_type op;
  kn_dtype dtype; /* element dtype of the value (bool for comparisons) */
  int vec;        /* lanes; 1 = scalar */
  int nsrc;
  int *src;       /* indices of earlier ops */
  kn_kop_type alu;
  int64_t arg;
  int64_t size;   /* RANGE / SPECIAL extent, LOCAL elements */
  union {
    double f;
    int64_t i;
  } val;          /* CONST */
  int64_t lo, hi; /* known value bounds of integer scalars (lo > hi: unknown) */
  uint64_t hash;
} kn_lop;

typedef struct kn_lprog kn_lprog;
struct kn_lprog {
  kn_lop *ops;
  int n, cap;
  int *table; /* open-addressing CSE table of op indices */
  int tcap;
  const kn_kernel *k;
  char name[64];
  int64_t global[3], local[3];
  bool failed;
};

/* ---- building (loopir.c) ---- */
kn_lprog *kn_lprog_new(const kn_kernel *k);
void kn_lprog_free(kn_lprog *p);
/* Append an op, returning an existing equal op for pure ops (CSE) and folding constants. -1 on failure. */
int kn_l_add(kn_lprog *p, kn_lop_type op, kn_dtype dt, int vec, int nsrc, const int *src, kn_kop_type alu, int64_t arg);
int kn_l_const_i(kn_lprog *p, kn_dtype dt, int64_t v);
int kn_l_const_f(kn_lprog *p, kn_dtype dt, double v);
int kn_l_alu(kn_lprog *p, kn_kop_type alu, kn_dtype dt, int a, int b);
int kn_l_alu3(kn_lprog *p, kn_kop_type alu, kn_dtype dt, int a, int b, int c);
int kn_l_cast(kn_lprog *p, int a, kn_dtype to);
int kn_l_range(kn_lprog *p, int64_t size);
/* A loop over [0, value of op `bound`) where bound <= size (a symbolic extent; at least one iteration). */
int kn_l_range_to(kn_lprog *p, int64_t size, int bound);
/* GROUPREDUCE of a (possibly vector) value over `group` work items. */
int kn_l_group_reduce(kn_lprog *p, int a, kn_kop_type rop, int64_t group);
void kn_lprog_print(const kn_lprog *p, FILE *f);
const char *kn_lop_name(kn_lop_type op);

/* ---- the schedule of axes (opt.c) ----
 * Each kernel axis is split into pieces; axis index = sum(piece index * mult). GLOBAL pieces are unravelled from
 * the work-item id (first piece slowest), LOOP/REDUCE pieces are serial loops, UPCAST/UNROLL are unrolled into
 * registers, VEC/RVEC are vector lanes (at most one piece in all). */
/* GROUP (GPU only) splits a reduce axis over the work items of one workgroup: each keeps a partial accumulator and
 * a KN_L_GROUPREDUCE combines them after the reduce loops. */
typedef enum { KN_AX_GLOBAL, KN_AX_LOOP, KN_AX_UPCAST, KN_AX_VEC, KN_AX_REDUCE, KN_AX_UNROLL, KN_AX_RVEC, KN_AX_GROUP } kn_axkind;

#define KN_MAXPIECES (3 * KN_MAXDIM)

typedef struct {
  int axis;
  int64_t size, mult;
  kn_axkind kind;
} kn_piece;

typedef struct {
  int n;
  kn_piece p[KN_MAXPIECES];
  int vec;    /* index of the VEC/RVEC piece, -1 none */
  bool qdot;  /* the block-format reduce lowers to integer-dot QDOT ops (opt.c decides, lower.c follows) */
  bool qdot_hoist; /* ... whose activations are the same for every output: quantized once per call (QX) */
  int qdot_blocks; /* consecutive blocks per QDOT (0 or 1: one) */
  bool qdot_prefetch; /* ... each QDOTR prefetches its weight blocks one work item ahead (KILN_PREFETCH) */
  uint32_t stream_bufs; /* float buffers a GEMV reads once (bit per buffer): their loads prefetch one item ahead */
  int red_split; /* > 1: each of the reduce's unrolled steps adds into its own accumulator, summed after the loop */
} kn_sched;

/* Choose the schedule for a kernel on a target (NOOPT=1: everything global or serial, no vectors). */
int kn_opt_schedule(const kn_kernel *k, const kn_target *t, kn_sched *s, char *err, size_t errlen);
/* The largest block of the block-format loads inside the reduce that walk `axis` contiguously (0: none). */
int64_t kn_opt_quant_block(const kn_kernel *k, int axis);
/* GPU schedule (gpu_opt.c): the CPU's choices, then a large reduce split over a workgroup (GROUP piece). */
int kn_gpu_schedule(const kn_kernel *k, const kn_target *t, kn_sched *s, char *err, size_t errlen);
/* Size of the schedule's GROUP piece, 0 without one. */
int64_t kn_sched_group(const kn_sched *s);
/* Name tinygrad-style from the schedule: E_/r_ then piece sizes. */
void kn_sched_name(const kn_kernel *k, const kn_sched *s, char *name, size_t n);

/* ---- integer-dot mode (quant_dot.c) ----
 * The fused dequant-matmul's default: activations quantized to int8 per block, integer multiply-adds. KILN_EXACT=1
 * keeps the exact f32 decode. */
bool kn_qdot_mode(void);
bool kn_quant_dot_supported(kn_dtype fmt);
/* Blocks of fmt one QDOT covers on target t (1, or 2 for the 32-element formats on 64-byte vectors; with the
 * activations quantized once per call, 16-byte lanes' worth of the nibble formats: up to 4). */
int kn_quant_dot_blocks(const kn_target *t, kn_dtype fmt, bool hoisted);
/* Rows of fmt's GEMV register block on target t (8, 16 or 32: the activations' quantization is shared by them;
 * hoisted: the activations are quantized once per call instead, QX). */
int kn_quant_dot_rows(const kn_target *t, kn_dtype fmt, bool hoisted);
/* Bytes of the record of one QDOT's activations quantized once per call (qk elements over nblk blocks; QX). */
int kn_quant_x_record_bytes(int qk, int nblk);

/* ---- lowering (lower.c) ---- */
kn_lprog *kn_lower(const kn_kernel *k, const kn_sched *s, char *err, size_t errlen);

#endif
