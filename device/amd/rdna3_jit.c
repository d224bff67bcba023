/* Host code for hot kernels: once a program has run enough waves, each straight run of whole-wave vector ALU
 * instructions (the fast paths' operations, rdna3_fast.c, DPP forms included), scalar ALU instructions (SCC kept in a
 * register) and timing-only no-ops between them is translated into one
 * host function through LLVM (ORC's LLJIT, for the host CPU), so that a wave runs the run as a few vector
 * instructions per RDNA3 instruction instead of one interpreter step each. Registers are loaded once per run and
 * stored back at its end; EXEC is applied as the fast paths apply it (a lane outside EXEC keeps its value; compares
 * and carries are masked with EXEC). The run's first slot then holds jit_run, which calls the function, counts the
 * run's instructions by class (the counters stay exact) and moves the pc past it; a branch into the middle of a run
 * reaches the original slots. kn_rdna3_check_jit compares a compiled run with the per-lane executors on random wave
 * states (tests/test_rdna3.c). KILN_EMU_JIT=0 turns the translation off.
 * A program's runs are one module, compiled to an object for the host and linked by ORC; the object is kept in the
 * disk store a layer above offers (kn_object_store: codegen's kernel cache), keyed by the module's IR, so later
 * processes link it without compiling (KILN_EMU_JIT_CACHE=0: compile every time). */
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/env.h"
#include "../device.h"
#include "rdna3_ops.h"
#include "rdna3_wave.h"

enum { FS_NONE, FS_V, FS_S, FS_C }; /* kn_fop operand kinds, as rdna3_fast.c sets them */
enum { MAX_RUN = 4096 };

typedef struct kn_jit_run {
  void (*fn)(kn_wave *w);
  uint32_t n[KN_RDNA3_NCLASS]; /* instructions of the run by class */
  uint32_t bytes;
} kn_jit_run;

/* ---- the process's JIT: links the runs' objects ---- */

static pthread_mutex_t jit_lock = PTHREAD_MUTEX_INITIALIZER;
static LLVMOrcLLJITRef jit;
static kn_target host;      /* what the runs are compiled for (and the disk cache's key holds) */
static char *host_layout;   /* its data layout, set on every module before its IR is printed */

/* The runs are compiled for x86-64-v3 (AVX2) where the host has it, not for AVX-512: LLVM 19.1 folds a bit-select
 * merged under an AVX-512 mask into a vpternlogd with the wrong immediate (v_bfi_b32 under EXEC, found by
 * test_rdna3's runs on few registers); else for the host's own CPU. */
static LLVMTargetMachineRef host_machine(void) {
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(host.triple, &target, &msg)) {
    LLVMDisposeMessage(msg);
    return NULL;
  }
  return LLVMCreateTargetMachine(target, host.triple, host.cpu, host.features, LLVMCodeGenLevelDefault,
                                 LLVMRelocDefault, LLVMCodeModelJITDefault);
}

static int jit_init(char *err, size_t errlen) {
  if (jit) return 0;
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  char *triple = LLVMGetDefaultTargetTriple();
  host.kind = KN_TARGET_CPU;
  snprintf(host.triple, sizeof host.triple, "%s", triple);
  LLVMDisposeMessage(triple);
  bool v3 = false;
#if defined(__x86_64__)
  v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
       __builtin_cpu_supports("f16c");
#endif
  if (v3) {
    snprintf(host.cpu, sizeof host.cpu, "x86-64-v3");
  } else {
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    snprintf(host.cpu, sizeof host.cpu, "%s", cpu);
    snprintf(host.features, sizeof host.features, "%s", feat);
    LLVMDisposeMessage(cpu), LLVMDisposeMessage(feat);
  }
  LLVMTargetMachineRef tm = host_machine();
  if (!tm) return kn_errf(err, errlen, "rdna3 jit: no LLVM target for %s", host.triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  host_layout = LLVMCopyStringRepOfTargetData(td);
  LLVMDisposeTargetData(td);
  LLVMDisposeTargetMachine(tm);
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&jit, NULL); /* it only links objects: its own compiler is never used */
  if (e) {
    char *m = LLVMGetErrorMessage(e);
    kn_errf(err, errlen, "rdna3 jit: %s", m);
    LLVMDisposeErrorMessage(m);
    jit = NULL;
    return -1;
  }
  return 0;
}

bool kn_jit_enabled(void) {
  static int on = -1;
  if (on < 0) on = kn_getenv_int("KILN_EMU_JIT", 1) != 0;
  return on;
}

/* KILN_EMU_JIT_CACHE=0: compile the runs in every process, as if no disk store were offered */
static bool jit_cache_enabled(void) {
  static int on = -1;
  if (on < 0) on = kn_getenv_int("KILN_EMU_JIT_CACHE", 1) != 0;
  return on;
}

/* ---- IR for one run ---- */

typedef struct {
  LLVMContextRef c;
  LLVMBuilderRef b;
  LLVMTypeRef i1, i8, i16, i32, i64, f32, v32, vf, vm, v64, vh16;
  LLVMValueRef w;               /* the wave */
  LLVMValueRef vreg[KN_NVGPR];  /* current values; NULL: not loaded yet */
  LLVMValueRef sreg[128];
  bool vdirty[KN_NVGPR], sdirty[128];
  LLVMValueRef dpp_a0, wexec; /* a DPP instruction's gathered src0 and the lanes it may write (NULL: none) */
  LLVMValueRef scc; /* SCC as an i32 0/1; NULL: not loaded yet */
  bool scc_dirty;
  LLVMValueRef fma, lanes;
} gen;

static LLVMValueRef c32(gen *g, uint32_t x) { return LLVMConstInt(g->i32, x, 0); }
static LLVMValueRef splat(gen *g, LLVMValueRef x) {
  LLVMValueRef undef = LLVMGetUndef(g->v32);
  LLVMValueRef v = LLVMBuildInsertElement(g->b, undef, x, c32(g, 0), "");
  LLVMValueRef zeros[KN_LANES];
  for (int i = 0; i < KN_LANES; i++) zeros[i] = c32(g, 0);
  return LLVMBuildShuffleVector(g->b, v, undef, LLVMConstVector(zeros, KN_LANES), "");
}
static LLVMValueRef k32(gen *g, uint32_t x) {
  LLVMValueRef e[KN_LANES];
  for (int i = 0; i < KN_LANES; i++) e[i] = c32(g, x);
  return LLVMConstVector(e, KN_LANES);
}

static LLVMValueRef k64(gen *g, uint64_t x) {
  LLVMValueRef e[KN_LANES];
  for (int i = 0; i < KN_LANES; i++) e[i] = LLVMConstInt(g->i64, x, 0);
  return LLVMConstVector(e, KN_LANES);
}

static LLVMValueRef at(gen *g, size_t off) {
  LLVMValueRef idx = LLVMConstInt(g->i64, off, 0);
  return LLVMBuildGEP2(g->b, g->i8, g->w, &idx, 1, "");
}

static LLVMValueRef vget(gen *g, unsigned r) {
  r &= 255;
  if (!g->vreg[r]) {
    LLVMValueRef l = LLVMBuildLoad2(g->b, g->v32, at(g, offsetof(kn_wave, v) + (size_t)r * KN_LANES * 4), "");
    LLVMSetAlignment(l, 4);
    g->vreg[r] = l;
  }
  return g->vreg[r];
}
static LLVMValueRef sget(gen *g, unsigned i) {
  i &= 127;
  if (!g->sreg[i]) {
    LLVMValueRef l = LLVMBuildLoad2(g->b, g->i32, at(g, offsetof(kn_wave, s) + (size_t)i * 4), "");
    LLVMSetAlignment(l, 4);
    g->sreg[i] = l;
  }
  return g->sreg[i];
}
static void sset(gen *g, unsigned i, LLVMValueRef x) {
  if (i == OP_NULL) return;
  g->sreg[i & 127] = x, g->sdirty[i & 127] = true;
}
static LLVMValueRef mask_vec(gen *g, LLVMValueRef m) { return LLVMBuildBitCast(g->b, m, g->vm, ""); }
static LLVMValueRef mask_int(gen *g, LLVMValueRef v) { return LLVMBuildBitCast(g->b, v, g->i32, ""); }
/* the lanes an instruction writes: EXEC, or under DPP the lanes dpp_src left */
static LLVMValueRef wmask(gen *g) { return g->wexec ? g->wexec : sget(g, OP_EXEC_LO); }
/* vwrite: lanes in EXEC take the new value */
static void vset(gen *g, unsigned r, LLVMValueRef x) {
  r &= 255;
  LLVMValueRef exec = mask_vec(g, wmask(g));
  g->vreg[r] = LLVMBuildSelect(g->b, exec, x, vget(g, r), "");
  g->vdirty[r] = true;
}

static LLVMValueRef src(gen *g, const kn_fop *f, int i) {
  if (f->kind[i] == FS_V) return vget(g, f->idx[i]);
  if (f->kind[i] == FS_S) return splat(g, sget(g, f->idx[i]));
  return k32(g, f->val[i]);
}
/* the high word of a 64-bit operand (v_mad_u64_u32's addend) */
static LLVMValueRef src_hi(gen *g, const kn_fop *f, int i) {
  if (f->kind[i] == FS_V) return vget(g, f->idx[i] + 1u);
  if (f->kind[i] == FS_S) return splat(g, sget(g, f->idx[i] + 1u));
  return k32(g, (f->neg64 >> i & 1) ? ~0u : 0);
}

static LLVMValueRef fv(gen *g, LLVMValueRef x) { return LLVMBuildBitCast(g->b, x, g->vf, ""); }
static LLVMValueRef iv(gen *g, LLVMValueRef x) { return LLVMBuildBitCast(g->b, x, g->v32, ""); }
#define B g->b

/* f16 bits (low half) to f32 bits, as rdna3_fast.c's h2f */
static LLVMValueRef h2f(gen *g, LLVMValueRef h) {
  LLVMValueRef a = LLVMBuildAnd(B, h, k32(g, 0x7fff), "");
  LLVMValueRef r = iv(g, LLVMBuildFMul(B, fv(g, LLVMBuildShl(B, a, k32(g, 13), "")), fv(g, k32(g, 0x77800000u)), ""));
  LLVMValueRef nan = LLVMBuildOr(B, k32(g, 0x7fc00000u), LLVMBuildShl(B, LLVMBuildAnd(B, a, k32(g, 0x1ff), ""),
                                                                     k32(g, 13), ""), "");
  LLVMValueRef special = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, a, k32(g, 0x7c00), ""), k32(g, 0x7f800000u),
                                         nan, "");
  r = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntUGE, a, k32(g, 0x7c00), ""), special, r, "");
  return LLVMBuildOr(B, r, LLVMBuildShl(B, LLVMBuildAnd(B, h, k32(g, 0x8000), ""), k32(g, 16), ""), "");
}

static LLVMValueRef bfe(gen *g, LLVMValueRef x, LLVMValueRef off, LLVMValueRef wd, bool sign) {
  off = LLVMBuildAnd(B, off, k32(g, 31), "");
  wd = LLVMBuildAnd(B, wd, k32(g, 31), "");
  LLVMValueRef sh = LLVMBuildLShr(B, x, off, "");
  LLVMValueRef mask = LLVMBuildSub(B, LLVMBuildShl(B, k32(g, 1), wd, ""), k32(g, 1), "");
  LLVMValueRef v = LLVMBuildAnd(B, sh, mask, "");
  LLVMValueRef over = LLVMBuildICmp(B, LLVMIntUGT, LLVMBuildAdd(B, off, wd, ""), k32(g, 32), "");
  v = LLVMBuildSelect(B, over, sh, v, "");
  if (sign) {
    LLVMValueRef top = LLVMBuildAnd(B, LLVMBuildSub(B, wd, k32(g, 1), ""), k32(g, 31), "");
    LLVMValueRef sb = LLVMBuildAnd(B, LLVMBuildLShr(B, v, top, ""), k32(g, 1), "");
    LLVMValueRef ext = LLVMBuildOr(B, v, LLVMBuildShl(B, k32(g, ~0u), wd, ""), "");
    v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntNE, sb, k32(g, 0), ""), ext, v, "");
  }
  return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, wd, k32(g, 0), ""), k32(g, 0), v, "");
}

/* lane l's bit of a mask operand (v_cndmask, carry-in): a scalar mask as a lane vector */
static LLVMValueRef lane_bits(gen *g, const kn_fop *f, int i) {
  if (f->kind[i] != FS_V) {
    LLVMValueRef m = f->kind[i] == FS_S ? sget(g, f->idx[i]) : c32(g, f->val[i]);
    return mask_vec(g, m);
  }
  LLVMValueRef bit = LLVMBuildAnd(B, LLVMBuildLShr(B, vget(g, f->idx[i]), g->lanes, ""), k32(g, 1), "");
  return LLVMBuildICmp(B, LLVMIntNE, bit, k32(g, 0), "");
}

static bool is_cmp(unsigned op) { return op < 256; }

static LLVMValueRef compare(gen *g, unsigned op, LLVMValueRef a, LLVMValueRef b) {
  if (op >= V_CMPX_F_F16) op -= V_CMPX_F_F16 - V_CMP_F_F16;
  if (op <= V_CMP_T_F32) {
    static const LLVMRealPredicate p[16] = {LLVMRealPredicateFalse, LLVMRealOLT, LLVMRealOEQ, LLVMRealOLE,
                                            LLVMRealOGT, LLVMRealONE, LLVMRealOGE, LLVMRealORD, LLVMRealUNO,
                                            LLVMRealULT, LLVMRealUEQ, LLVMRealULE, LLVMRealUGT, LLVMRealUNE,
                                            LLVMRealUGE, LLVMRealPredicateTrue};
    return mask_int(g, LLVMBuildFCmp(B, p[op - V_CMP_F_F32], fv(g, a), fv(g, b), ""));
  }
  bool sign = op <= V_CMP_T_I32;
  int c = (int)(op - (sign ? V_CMP_F_I32 : V_CMP_F_U32));
  static const LLVMIntPredicate su[7] = {LLVMIntEQ, LLVMIntULT, LLVMIntEQ, LLVMIntULE, LLVMIntUGT, LLVMIntNE,
                                         LLVMIntUGE};
  static const LLVMIntPredicate ss[7] = {LLVMIntEQ, LLVMIntSLT, LLVMIntEQ, LLVMIntSLE, LLVMIntSGT, LLVMIntNE,
                                         LLVMIntSGE};
  if (c == 0) return c32(g, 0);
  if (c >= 7) return c32(g, ~0u);
  return mask_int(g, LLVMBuildICmp(B, sign ? ss[c] : su[c], a, b, ""));
}

enum { R_V32, R_V64, R_MASK, R_V32_MASK, R_V64_MASK, R_SCALAR };

/* The operation's results (as rdna3_fast.c's eval): o (and hi), a mask m; returns which it writes; -1 for an
 * opcode this file does not translate. */
static int eval(gen *g, const kn_fop *f, LLVMValueRef *o, LLVMValueRef *hi, LLVMValueRef *m) {
  if (f->op == V_READFIRSTLANE_B32) {
    LLVMValueRef exec = sget(g, OP_EXEC_LO);
    LLVMTypeRef ft = LLVMFunctionType(g->i32, (LLVMTypeRef[]){g->i32, g->i1}, 2, 0);
    LLVMValueRef cttz = LLVMGetNamedFunction(LLVMGetGlobalParent(LLVMGetBasicBlockParent(LLVMGetInsertBlock(B))),
                                             "llvm.cttz.i32");
    if (!cttz) cttz = LLVMAddFunction(LLVMGetGlobalParent(LLVMGetBasicBlockParent(LLVMGetInsertBlock(B))),
                                      "llvm.cttz.i32", ft);
    LLVMValueRef lane = LLVMBuildCall2(B, ft, cttz, (LLVMValueRef[]){exec, LLVMConstInt(g->i1, 0, 0)}, 2, "");
    lane = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, exec, c32(g, 0), ""), c32(g, 0), lane, "");
    *o = LLVMBuildExtractElement(B, src(g, f, 0), lane, "");
    return R_SCALAR;
  }
  LLVMValueRef a = g->dpp_a0 ? g->dpp_a0 : src(g, f, 0), b = f->kind[1] ? src(g, f, 1) : a,
               c = f->kind[2] ? src(g, f, 2) : a;
  LLVMValueRef r = NULL;
  switch (f->op) {
  case V_MOV_B32: r = a; break;
  case V_NOT_B32: r = LLVMBuildNot(B, a, ""); break;
  case V_CVT_F32_I32: r = iv(g, LLVMBuildSIToFP(B, a, g->vf, "")); break;
  case V_CVT_F32_U32: r = iv(g, LLVMBuildUIToFP(B, a, g->vf, "")); break;
  case V_CVT_F32_UBYTE0: case V_CVT_F32_UBYTE1: case V_CVT_F32_UBYTE2: case V_CVT_F32_UBYTE3: {
    unsigned sh = 8 * (f->op - V_CVT_F32_UBYTE0);
    r = iv(g, LLVMBuildUIToFP(B, LLVMBuildAnd(B, LLVMBuildLShr(B, a, k32(g, sh), ""), k32(g, 0xff), ""), g->vf, ""));
    break;
  }
  case V_CVT_F32_F16: r = h2f(g, a); break;
  case V_AND_B32: r = LLVMBuildAnd(B, a, b, ""); break;
  case V_OR_B32: r = LLVMBuildOr(B, a, b, ""); break;
  case V_XOR_B32: r = LLVMBuildXor(B, a, b, ""); break;
  case V_LSHLREV_B32: r = LLVMBuildShl(B, b, LLVMBuildAnd(B, a, k32(g, 31), ""), ""); break;
  case V_LSHRREV_B32: r = LLVMBuildLShr(B, b, LLVMBuildAnd(B, a, k32(g, 31), ""), ""); break;
  case V_ASHRREV_I32: r = LLVMBuildAShr(B, b, LLVMBuildAnd(B, a, k32(g, 31), ""), ""); break;
  case V_ADD_NC_U32: r = LLVMBuildAdd(B, a, b, ""); break;
  case V_SUB_NC_U32: r = LLVMBuildSub(B, a, b, ""); break;
  case V_MUL_LO_U32: r = LLVMBuildMul(B, a, b, ""); break;
  case V_MUL_U32_U24: case V_MAD_U32_U24:
    r = LLVMBuildMul(B, LLVMBuildAnd(B, a, k32(g, 0xffffff), ""), LLVMBuildAnd(B, b, k32(g, 0xffffff), ""), "");
    if (f->op == V_MAD_U32_U24) r = LLVMBuildAdd(B, r, c, "");
    break;
  case V_MIN_U32: r = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntULT, a, b, ""), a, b, ""); break;
  case V_MAX_U32: r = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntUGT, a, b, ""), a, b, ""); break;
  case V_MIN_I32: r = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, ""); break;
  case V_MAX_I32: r = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, ""); break;
  case V_LSHRREV_B16:
    r = LLVMBuildLShr(B, LLVMBuildAnd(B, b, k32(g, 0xffff), ""), LLVMBuildAnd(B, a, k32(g, 15), ""), "");
    break;
  case V_ASHRREV_I16: {
    LLVMValueRef x = LLVMBuildTrunc(B, b, g->vh16, ""), s = LLVMBuildTrunc(B, LLVMBuildAnd(B, a, k32(g, 15), ""),
                                                                           g->vh16, "");
    r = LLVMBuildZExt(B, LLVMBuildAShr(B, x, s, ""), g->v32, "");
    break;
  }
  case V_ADD_F32: r = iv(g, LLVMBuildFAdd(B, fv(g, a), fv(g, b), "")); break;
  case V_SUB_F32: r = iv(g, LLVMBuildFSub(B, fv(g, a), fv(g, b), "")); break;
  case V_SUBREV_F32: r = iv(g, LLVMBuildFSub(B, fv(g, b), fv(g, a), "")); break;
  case V_MUL_F32: r = iv(g, LLVMBuildFMul(B, fv(g, a), fv(g, b), "")); break;
  case V_FMA_F32: case V_FMAC_F32: {
    LLVMTypeRef ft = LLVMFunctionType(g->vf, (LLVMTypeRef[]){g->vf, g->vf, g->vf}, 3, 0);
    r = iv(g, LLVMBuildCall2(B, ft, g->fma, (LLVMValueRef[]){fv(g, a), fv(g, b), fv(g, c)}, 3, ""));
    break;
  }
  case V_BFE_U32: case V_BFE_I32: r = bfe(g, a, b, c, f->op == V_BFE_I32); break;
  case V_BFI_B32: r = LLVMBuildOr(B, LLVMBuildAnd(B, a, b, ""), LLVMBuildAnd(B, LLVMBuildNot(B, a, ""), c, ""), ""); break;
  case V_AND_OR_B32: r = LLVMBuildOr(B, LLVMBuildAnd(B, a, b, ""), c, ""); break;
  case V_OR3_B32: r = LLVMBuildOr(B, LLVMBuildOr(B, a, b, ""), c, ""); break;
  case V_XOR3_B32: r = LLVMBuildXor(B, LLVMBuildXor(B, a, b, ""), c, ""); break;
  case V_LSHL_OR_B32: r = LLVMBuildOr(B, LLVMBuildShl(B, a, LLVMBuildAnd(B, b, k32(g, 31), ""), ""), c, ""); break;
  case V_LSHL_ADD_U32: r = LLVMBuildAdd(B, LLVMBuildShl(B, a, LLVMBuildAnd(B, b, k32(g, 31), ""), ""), c, ""); break;
  case V_ADD3_U32: r = LLVMBuildAdd(B, LLVMBuildAdd(B, a, b, ""), c, ""); break;
  case V_ALIGNBIT_B32: {
    LLVMValueRef x = LLVMBuildOr(B, LLVMBuildShl(B, LLVMBuildZExt(B, a, g->v64, ""), k64(g, 32), ""),
                                 LLVMBuildZExt(B, b, g->v64, ""), "");
    x = LLVMBuildLShr(B, x, LLVMBuildZExt(B, LLVMBuildAnd(B, c, k32(g, 31), ""), g->v64, ""), "");
    r = LLVMBuildTrunc(B, x, g->v32, "");
    break;
  }
  case V_CNDMASK_B32: r = LLVMBuildSelect(B, lane_bits(g, f, 2), b, a, ""); break;
  case V_ADD_CO_U32: case V_ADD_CO_CI_U32: {
    LLVMValueRef s = LLVMBuildAdd(B, LLVMBuildZExt(B, a, g->v64, ""), LLVMBuildZExt(B, b, g->v64, ""), "");
    if (f->op == V_ADD_CO_CI_U32) s = LLVMBuildAdd(B, s, LLVMBuildZExt(B, lane_bits(g, f, 2), g->v64, ""), "");
    *o = LLVMBuildTrunc(B, s, g->v32, "");
    LLVMValueRef carry = LLVMBuildTrunc(B, LLVMBuildLShr(B, s, k64(g, 32), ""), g->vm, "");
    *m = mask_int(g, carry);
    return R_V32_MASK;
  }
  case V_MAD_U64_U32: {
    LLVMValueRef p = LLVMBuildMul(B, LLVMBuildZExt(B, a, g->v64, ""), LLVMBuildZExt(B, b, g->v64, ""), "");
    LLVMValueRef k = LLVMBuildOr(B, LLVMBuildShl(B, LLVMBuildZExt(B, src_hi(g, f, 2), g->v64, ""),
                                                 k64(g, 32), ""),
                                 LLVMBuildZExt(B, c, g->v64, ""), "");
    LLVMValueRef s = LLVMBuildAdd(B, p, k, "");
    *o = LLVMBuildTrunc(B, s, g->v32, "");
    *hi = LLVMBuildTrunc(B, LLVMBuildLShr(B, s, k64(g, 32), ""), g->v32, "");
    *m = mask_int(g, LLVMBuildICmp(B, LLVMIntULT, s, p, ""));
    return R_V64_MASK;
  }
  default:
    if (!is_cmp(f->op)) return -1;
    *m = compare(g, f->op, a, b);
    return R_MASK;
  }
  *o = r;
  return R_V32;
}

/* Results written as rdna3_fast.c's run_fop writes them. */
static void write(gen *g, const kn_fop *f, int r, LLVMValueRef o, LLVMValueRef hi, LLVMValueRef m) {
  if (r == R_SCALAR) return sset(g, f->vdst, o);
  LLVMValueRef exec = wmask(g);
  if (r == R_MASK) {
    LLVMValueRef v = LLVMBuildAnd(B, m, exec, "");
    if (f->cmpx) sset(g, OP_EXEC_LO, v);
    else sset(g, f->sdst, v);
    return;
  }
  vset(g, f->vdst, o);
  if (r == R_V64_MASK) vset(g, f->vdst + 1u, hi);
  if (r == R_V32_MASK || r == R_V64_MASK) sset(g, f->sdst, LLVMBuildAnd(B, m, exec, ""));
}

/* DPP16/DPP8 on src0, as rdna3_fast.c's dpp_src0 (and the per-lane executor) have it: g->dpp_a0 holds src0's lanes as
 * the control selects them (0 where the source lane is out of its row, or inactive without fetch-inactive), g->wexec
 * the lanes that may write (EXEC, the row and bank masks, and a valid source or bound_ctrl). The control is known
 * when the run is compiled; EXEC is read when it runs. */
static void dpp_src(gen *g, const kn_fop *f) {
  LLVMBuilderRef b = g->b;
  LLVMValueRef v = vget(g, f->idx[0]), exec = sget(g, OP_EXEC_LO);
  bool bound_zero = f->dpp == 16 ? bits(f->dppw, 19, 19) : 1;
  LLVMValueRef shuf[KN_LANES], srcl[KN_LANES], has[KN_LANES], wr[KN_LANES];
  for (int l = 0; l < KN_LANES; l++) {
    int s = kn_dpp_lane(f->dpp, f->dppw, f->dppfi, ~0u, l); /* under a full EXEC: the control's own choice */
    shuf[l] = c32(g, s >= 0 ? (uint32_t)s : KN_LANES), srcl[l] = c32(g, s >= 0 ? (uint32_t)s : 0);
    has[l] = LLVMConstInt(g->i1, s >= 0, 0), wr[l] = LLVMConstInt(g->i1, kn_dpp_writes(f->dpp, f->dppw, l), 0);
  }
  LLVMValueRef gathered = LLVMBuildShuffleVector(b, v, LLVMConstNull(g->v32), LLVMConstVector(shuf, KN_LANES), "");
  LLVMValueRef valid = LLVMConstVector(has, KN_LANES);
  if (!f->dppfi) {
    LLVMValueRef bit = LLVMBuildAnd(b, LLVMBuildLShr(b, splat(g, exec), LLVMConstVector(srcl, KN_LANES), ""), k32(g, 1), "");
    valid = LLVMBuildAnd(b, valid, LLVMBuildICmp(b, LLVMIntNE, bit, k32(g, 0), ""), "");
  }
  g->dpp_a0 = LLVMBuildSelect(b, valid, gathered, k32(g, 0), "");
  LLVMValueRef w = LLVMBuildAnd(b, mask_vec(g, exec), LLVMConstVector(wr, KN_LANES), "");
  if (!bound_zero) w = LLVMBuildAnd(b, w, valid, "");
  g->wexec = mask_int(g, w);
}

static bool nan_const(const kn_fop *f) {
  for (int i = 0; i < 3; i++)
    if (f->kind[i] == FS_C && (f->val[i] & 0x7fffffffu) > 0x7f800000u) return true;
  return false;
}

/* ---- scalar ALU (rdna3_salu.c's semantics): the 32-bit operations, moves, compares and SCC ---- */

static LLVMValueRef scc_get(gen *g) {
  if (!g->scc) {
    LLVMValueRef l = LLVMBuildLoad2(g->b, g->i32, at(g, offsetof(kn_wave, scc)), "");
    LLVMSetAlignment(l, 4);
    g->scc = l;
  }
  return g->scc;
}
static void scc_set(gen *g, LLVMValueRef x) { g->scc = x, g->scc_dirty = true; }
static LLVMValueRef scc_of(gen *g, LLVMValueRef cond) { return LLVMBuildZExt(g->b, cond, g->i32, ""); }

/* a scalar source operand as kn_sread reads it for a 32-bit operation, or NULL for one not translated (VCCZ, EXECZ,
 * SCC and the apertures as sources) */
static uint32_t inline_f32(unsigned src) {
  static const uint32_t f[] = {0x3f000000u, 0xbf000000u, 0x3f800000u, 0xbf800000u, 0x40000000u, 0xc0000000u,
                               0x40800000u, 0xc0800000u, 0x3e22f983u};
  return f[src - 240];
}
static bool ssrc_ok(unsigned src) { return src < 128 || src <= 208 || (src >= 240 && src <= 248) || src == OP_LITERAL; }
static LLVMValueRef ssrc(gen *g, const kn_inst *in, unsigned src) {
  if (src == OP_NULL) return c32(g, 0);
  if (src < 128) return sget(g, src);
  if (src <= 192) return c32(g, src - 128);
  if (src <= 208) return c32(g, (uint32_t)(192 - (int)src));
  if (src >= 240 && src <= 248) return c32(g, inline_f32(src));
  return c32(g, in->w[in->len / 4 - 1]); /* the literal */
}
/* a 64-bit source (kn_sread64 for a b64 operand): an SGPR pair, an integer constant sign-extended, a literal or
 * inline float zero-extended */
static LLVMValueRef ssrc64(gen *g, const kn_inst *in, unsigned src) {
  if (src < 128 && src != OP_NULL) {
    LLVMValueRef lo = LLVMBuildZExt(g->b, sget(g, src), g->i64, ""), hi = LLVMBuildZExt(g->b, sget(g, src + 1), g->i64, "");
    return LLVMBuildOr(g->b, lo, LLVMBuildShl(g->b, hi, LLVMConstInt(g->i64, 32, 0), ""), "");
  }
  if (src > 192 && src <= 208) return LLVMConstInt(g->i64, (uint64_t)(int64_t)(192 - (int)src), 0);
  return LLVMBuildZExt(g->b, ssrc(g, in, src), g->i64, "");
}
/* a destination kn_swrite accepts: an SGPR, VCC, null, M0 or EXEC */
static bool sdst_ok(unsigned d) { return d < 128 && (d <= OP_VCC_HI || d >= OP_NULL); }

/* Whether the scalar instruction is one this file translates (the opcodes kiln's kernels run in their loops and
 * between vector instructions; branches, s_getpc and the like end a run). */
static bool salu_ok(const kn_inst *in) {
  uint32_t i = in->w[0];
  unsigned dst = bits(i, 22, 16), s0 = bits(i, 7, 0), s1 = bits(i, 15, 8);
  switch (in->fam) {
  case KN_FAM_SOP2:
    if (!sdst_ok(dst) || !ssrc_ok(s0) || !ssrc_ok(s1)) return false;
    switch (in->op) {
    case S_ADD_U32: case S_SUB_U32: case S_ADD_I32: case S_SUB_I32: case S_ADDC_U32: case S_SUBB_U32:
    case S_LSHL_B32: case S_LSHR_B32: case S_ASHR_I32: case S_LSHL1_ADD_U32: case S_LSHL2_ADD_U32:
    case S_LSHL3_ADD_U32: case S_LSHL4_ADD_U32: case S_MIN_I32: case S_MIN_U32: case S_MAX_I32: case S_MAX_U32:
    case S_AND_B32: case S_OR_B32: case S_XOR_B32: case S_NAND_B32: case S_NOR_B32: case S_XNOR_B32:
    case S_AND_NOT1_B32: case S_OR_NOT1_B32: case S_BFE_U32: case S_BFE_I32: case S_BFM_B32: case S_MUL_I32:
    case S_MUL_HI_U32: case S_MUL_HI_I32: case S_CSELECT_B32: case S_PACK_LL_B32_B16: case S_PACK_LH_B32_B16:
    case S_PACK_HH_B32_B16: case S_PACK_HL_B32_B16:
      return true;
    default: return false;
    }
  case KN_FAM_SOP1:
    if (!sdst_ok(dst) || !ssrc_ok(s0)) return false;
    switch (in->op) {
    case S_MOV_B32: case S_CMOV_B32: case S_NOT_B32: case S_SEXT_I32_I8: case S_SEXT_I32_I16: return true;
    case S_MOV_B64: return dst != OP_NULL && sdst_ok(dst + 1) && (s0 >= 128 || s0 + 1 < 128);
    default: return false;
    }
  case KN_FAM_SOPK:
    if (!sdst_ok(dst)) return false;
    switch (in->op) {
    case S_MOVK_I32: case S_CMOVK_I32: case S_CMPK_EQ_I32: case S_CMPK_LG_I32: case S_CMPK_GT_I32: case S_CMPK_GE_I32:
    case S_CMPK_LT_I32: case S_CMPK_LE_I32: case S_CMPK_EQ_U32: case S_CMPK_LG_U32: case S_CMPK_GT_U32:
    case S_CMPK_GE_U32: case S_CMPK_LT_U32: case S_CMPK_LE_U32: case S_ADDK_I32: case S_MULK_I32:
      return true;
    default: return false;
    }
  case KN_FAM_SOPC:
    if (!ssrc_ok(s0) || !ssrc_ok(s1)) return false;
    if (in->op == S_CMP_EQ_U64 || in->op == S_CMP_LG_U64) return (s0 >= 128 || s0 + 1 < 128) && (s1 >= 128 || s1 + 1 < 128);
    return in->op <= S_BITCMP1_B32;
  default: return false;
  }
}

static LLVMValueRef sext_from(gen *g, LLVMValueRef x, LLVMTypeRef t) {
  return LLVMBuildSExt(g->b, LLVMBuildTrunc(g->b, x, t, ""), g->i32, "");
}

/* s_bfe_u32 / s_bfe_i32: src1 = offset [4:0] | width [22:16]; a width past bit 31 is cut there; width 0 gives 0 */
static LLVMValueRef sbfe(gen *g, LLVMValueRef a, LLVMValueRef ctl, bool sign) {
  LLVMBuilderRef b = g->b;
  LLVMValueRef k63 = LLVMConstInt(g->i64, 63, 0), one = LLVMConstInt(g->i64, 1, 0);
  LLVMValueRef off = LLVMBuildZExt(b, LLVMBuildAnd(b, ctl, c32(g, 31), ""), g->i64, "");
  LLVMValueRef wid = LLVMBuildZExt(b, LLVMBuildAnd(b, LLVMBuildLShr(b, ctl, c32(g, 16), ""), c32(g, 127), ""), g->i64, "");
  LLVMValueRef room = LLVMBuildSub(b, LLVMConstInt(g->i64, 32, 0), off, "");
  wid = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntUGT, wid, room, ""), room, wid, "");
  LLVMValueRef x = LLVMBuildZExt(b, a, g->i64, "");
  LLVMValueRef mask = LLVMBuildSub(b, LLVMBuildShl(b, one, wid, ""), one, "");
  LLVMValueRef v = LLVMBuildAnd(b, LLVMBuildLShr(b, x, off, ""), mask, "");
  if (sign) {
    LLVMValueRef top = LLVMBuildAnd(b, LLVMBuildLShr(b, v, LLVMBuildAnd(b, LLVMBuildSub(b, wid, one, ""), k63, ""), ""), one, "");
    LLVMValueRef ext = LLVMBuildOr(b, v, LLVMBuildShl(b, LLVMConstInt(g->i64, ~0ull, 0), wid, ""), "");
    v = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntNE, top, LLVMConstInt(g->i64, 0, 0), ""), ext, v, "");
  }
  v = LLVMBuildTrunc(b, v, g->i32, "");
  return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, wid, LLVMConstInt(g->i64, 0, 0), ""), c32(g, 0), v, "");
}

static void salu_gen(gen *g, const kn_inst *in) {
  LLVMBuilderRef b = g->b;
  uint32_t i = in->w[0];
  unsigned dst = bits(i, 22, 16), s0 = bits(i, 7, 0), s1 = bits(i, 15, 8);
  LLVMValueRef zero = c32(g, 0), r = NULL, sc = NULL;
#define NZ(x) scc_of(g, LLVMBuildICmp(b, LLVMIntNE, (x), zero, ""))
  if (in->fam == KN_FAM_SOPC) {
    if (in->op == S_CMP_EQ_U64 || in->op == S_CMP_LG_U64) {
      LLVMValueRef x = ssrc64(g, in, s0), y = ssrc64(g, in, s1);
      return scc_set(g, scc_of(g, LLVMBuildICmp(b, in->op == S_CMP_EQ_U64 ? LLVMIntEQ : LLVMIntNE, x, y, "")));
    }
    LLVMValueRef x = ssrc(g, in, s0), y = ssrc(g, in, s1);
    static const LLVMIntPredicate p[12] = {LLVMIntEQ, LLVMIntNE, LLVMIntSGT, LLVMIntSGE, LLVMIntSLT, LLVMIntSLE,
                                           LLVMIntEQ, LLVMIntNE, LLVMIntUGT, LLVMIntUGE, LLVMIntULT, LLVMIntULE};
    if (in->op < 12) return scc_set(g, scc_of(g, LLVMBuildICmp(b, p[in->op], x, y, "")));
    LLVMValueRef bit = LLVMBuildAnd(b, LLVMBuildLShr(b, x, LLVMBuildAnd(b, y, c32(g, 31), ""), ""), c32(g, 1), "");
    return scc_set(g, in->op == S_BITCMP1_B32 ? bit : LLVMBuildXor(b, bit, c32(g, 1), ""));
  }
  if (in->fam == KN_FAM_SOPK) {
    uint32_t imm = i & 0xffff, simm = (uint32_t)(int32_t)(int16_t)imm;
    LLVMValueRef d = dst == OP_NULL ? zero : sget(g, dst), k = c32(g, simm), ku = c32(g, imm);
    switch (in->op) {
    case S_MOVK_I32: return sset(g, dst, k);
    case S_CMOVK_I32:
      if (dst != OP_NULL) sset(g, dst, LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntNE, scc_get(g), zero, ""), k, d, ""));
      return;
    case S_ADDK_I32: {
      LLVMValueRef s = LLVMBuildAdd(b, d, k, "");
      LLVMValueRef ov = LLVMBuildAnd(b, LLVMBuildNot(b, LLVMBuildXor(b, d, k, ""), ""), LLVMBuildXor(b, d, s, ""), "");
      scc_set(g, LLVMBuildLShr(b, ov, c32(g, 31), ""));
      return sset(g, dst, s);
    }
    case S_MULK_I32: return sset(g, dst, LLVMBuildMul(b, d, k, ""));
    default: {
      static const LLVMIntPredicate p[12] = {LLVMIntEQ, LLVMIntNE, LLVMIntSGT, LLVMIntSGE, LLVMIntSLT, LLVMIntSLE,
                                             LLVMIntEQ, LLVMIntNE, LLVMIntUGT, LLVMIntUGE, LLVMIntULT, LLVMIntULE};
      unsigned c = in->op - S_CMPK_EQ_I32;
      return scc_set(g, scc_of(g, LLVMBuildICmp(b, p[c], d, c < 6 ? k : ku, "")));
    }
    }
  }
  if (in->fam == KN_FAM_SOP1) {
    if (in->op == S_MOV_B64) {
      LLVMValueRef x = ssrc64(g, in, s0);
      sset(g, dst, LLVMBuildTrunc(b, x, g->i32, ""));
      return sset(g, dst + 1, LLVMBuildTrunc(b, LLVMBuildLShr(b, x, LLVMConstInt(g->i64, 32, 0), ""), g->i32, ""));
    }
    LLVMValueRef a = ssrc(g, in, s0);
    switch (in->op) {
    case S_MOV_B32: return sset(g, dst, a);
    case S_CMOV_B32:
      if (dst != OP_NULL)
        sset(g, dst, LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntNE, scc_get(g), zero, ""), a, sget(g, dst), ""));
      return;
    case S_NOT_B32: r = LLVMBuildNot(b, a, ""), scc_set(g, NZ(r)); return sset(g, dst, r);
    case S_SEXT_I32_I8: return sset(g, dst, sext_from(g, a, g->i8));
    default: return sset(g, dst, sext_from(g, a, g->i16)); /* S_SEXT_I32_I16 */
    }
  }
  /* SOP2 */
  LLVMValueRef a = ssrc(g, in, s0), c = ssrc(g, in, s1);
  LLVMValueRef A = LLVMBuildZExt(b, a, g->i64, ""), C = LLVMBuildZExt(b, c, g->i64, ""), k32_ = LLVMConstInt(g->i64, 32, 0);
  LLVMValueRef sh = LLVMBuildAnd(b, c, c32(g, 31), "");
  switch (in->op) {
  case S_ADD_U32: case S_ADDC_U32: {
    LLVMValueRef s = LLVMBuildAdd(b, A, C, "");
    if (in->op == S_ADDC_U32) s = LLVMBuildAdd(b, s, LLVMBuildZExt(b, scc_get(g), g->i64, ""), "");
    r = LLVMBuildTrunc(b, s, g->i32, ""), sc = LLVMBuildTrunc(b, LLVMBuildLShr(b, s, k32_, ""), g->i32, "");
    break;
  }
  case S_SUB_U32: r = LLVMBuildSub(b, a, c, ""), sc = scc_of(g, LLVMBuildICmp(b, LLVMIntUGT, c, a, "")); break;
  case S_SUBB_U32: {
    LLVMValueRef cin = scc_get(g);
    r = LLVMBuildSub(b, LLVMBuildSub(b, a, c, ""), cin, "");
    sc = scc_of(g, LLVMBuildICmp(b, LLVMIntUGT, LLVMBuildAdd(b, C, LLVMBuildZExt(b, cin, g->i64, ""), ""), A, ""));
    break;
  }
  case S_ADD_I32: case S_SUB_I32: {
    bool add = in->op == S_ADD_I32;
    r = add ? LLVMBuildAdd(b, a, c, "") : LLVMBuildSub(b, a, c, "");
    LLVMValueRef x = LLVMBuildXor(b, a, c, "");
    if (add) x = LLVMBuildNot(b, x, "");
    sc = LLVMBuildLShr(b, LLVMBuildAnd(b, x, LLVMBuildXor(b, a, r, ""), ""), c32(g, 31), "");
    break;
  }
  case S_LSHL_B32: r = LLVMBuildShl(b, a, sh, ""), sc = NZ(r); break;
  case S_LSHR_B32: r = LLVMBuildLShr(b, a, sh, ""), sc = NZ(r); break;
  case S_ASHR_I32: r = LLVMBuildAShr(b, a, sh, ""), sc = NZ(r); break;
  case S_LSHL1_ADD_U32: case S_LSHL2_ADD_U32: case S_LSHL3_ADD_U32: case S_LSHL4_ADD_U32: {
    LLVMValueRef s = LLVMBuildAdd(b, LLVMBuildShl(b, A, LLVMConstInt(g->i64, in->op - S_LSHL1_ADD_U32 + 1, 0), ""), C, "");
    r = LLVMBuildTrunc(b, s, g->i32, "");
    sc = scc_of(g, LLVMBuildICmp(b, LLVMIntNE, LLVMBuildLShr(b, s, k32_, ""), LLVMConstInt(g->i64, 0, 0), ""));
    break;
  }
  case S_MIN_I32: case S_MIN_U32: case S_MAX_I32: case S_MAX_U32: {
    LLVMIntPredicate p = in->op == S_MIN_I32 ? LLVMIntSLT : in->op == S_MIN_U32 ? LLVMIntULT
                       : in->op == S_MAX_I32 ? LLVMIntSGT : LLVMIntUGT;
    LLVMValueRef t = LLVMBuildICmp(b, p, a, c, "");
    r = LLVMBuildSelect(b, t, a, c, ""), sc = scc_of(g, t);
    break;
  }
  case S_AND_B32: r = LLVMBuildAnd(b, a, c, ""), sc = NZ(r); break;
  case S_OR_B32: r = LLVMBuildOr(b, a, c, ""), sc = NZ(r); break;
  case S_XOR_B32: r = LLVMBuildXor(b, a, c, ""), sc = NZ(r); break;
  case S_NAND_B32: r = LLVMBuildNot(b, LLVMBuildAnd(b, a, c, ""), ""), sc = NZ(r); break;
  case S_NOR_B32: r = LLVMBuildNot(b, LLVMBuildOr(b, a, c, ""), ""), sc = NZ(r); break;
  case S_XNOR_B32: r = LLVMBuildNot(b, LLVMBuildXor(b, a, c, ""), ""), sc = NZ(r); break;
  case S_AND_NOT1_B32: r = LLVMBuildAnd(b, a, LLVMBuildNot(b, c, ""), ""), sc = NZ(r); break;
  case S_OR_NOT1_B32: r = LLVMBuildOr(b, a, LLVMBuildNot(b, c, ""), ""), sc = NZ(r); break;
  case S_BFE_U32: case S_BFE_I32: r = sbfe(g, a, c, in->op == S_BFE_I32), sc = NZ(r); break;
  case S_BFM_B32:
    r = LLVMBuildShl(b, LLVMBuildSub(b, LLVMBuildShl(b, c32(g, 1), LLVMBuildAnd(b, a, c32(g, 31), ""), ""), c32(g, 1), ""),
                     sh, "");
    break;
  case S_MUL_I32: r = LLVMBuildMul(b, a, c, ""); break;
  case S_MUL_HI_U32: case S_MUL_HI_I32: {
    bool sg = in->op == S_MUL_HI_I32;
    LLVMValueRef x = sg ? LLVMBuildSExt(b, a, g->i64, "") : A, y = sg ? LLVMBuildSExt(b, c, g->i64, "") : C;
    r = LLVMBuildTrunc(b, LLVMBuildLShr(b, LLVMBuildMul(b, x, y, ""), k32_, ""), g->i32, "");
    break;
  }
  case S_CSELECT_B32: r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntNE, scc_get(g), zero, ""), a, c, ""); break;
  case S_PACK_LL_B32_B16:
    r = LLVMBuildOr(b, LLVMBuildAnd(b, a, c32(g, 0xffff), ""), LLVMBuildShl(b, c, c32(g, 16), ""), "");
    break;
  case S_PACK_LH_B32_B16:
    r = LLVMBuildOr(b, LLVMBuildAnd(b, a, c32(g, 0xffff), ""), LLVMBuildAnd(b, c, c32(g, 0xffff0000u), ""), "");
    break;
  case S_PACK_HH_B32_B16:
    r = LLVMBuildOr(b, LLVMBuildLShr(b, a, c32(g, 16), ""), LLVMBuildAnd(b, c, c32(g, 0xffff0000u), ""), "");
    break;
  default: /* S_PACK_HL_B32_B16 */
    r = LLVMBuildOr(b, LLVMBuildLShr(b, a, c32(g, 16), ""), LLVMBuildShl(b, c, c32(g, 16), ""), "");
    break;
  }
#undef NZ
  sset(g, dst, r);
  if (sc) scc_set(g, sc);
}

/* Whether rdna3_fast.c's operation f is one this file translates (its opcode), without building anything. f32
 * arithmetic on a NaN constant is left to the interpreter: LLVM folds it to a NaN of its choosing, where the host's
 * arithmetic (the fast paths') keeps the operand's payload. */
static bool translatable(const kn_fop *f) {
  if (f->fneg || f->fabs) return false; /* input modifiers stay with the fast paths */
  switch (f->op) {
  case V_ADD_F32: case V_SUB_F32: case V_SUBREV_F32: case V_MUL_F32: case V_FMA_F32: case V_FMAC_F32:
    return !nan_const(f);
  case V_MOV_B32: case V_NOT_B32: case V_CVT_F32_I32: case V_CVT_F32_U32: case V_CVT_F32_UBYTE0:
  case V_CVT_F32_UBYTE1: case V_CVT_F32_UBYTE2: case V_CVT_F32_UBYTE3: case V_CVT_F32_F16: case V_READFIRSTLANE_B32:
  case V_AND_B32: case V_OR_B32: case V_XOR_B32: case V_LSHLREV_B32: case V_LSHRREV_B32: case V_ASHRREV_I32:
  case V_ADD_NC_U32: case V_SUB_NC_U32: case V_MUL_LO_U32: case V_MUL_U32_U24: case V_MIN_U32: case V_MAX_U32:
  case V_MIN_I32: case V_MAX_I32: case V_LSHRREV_B16: case V_ASHRREV_I16: case V_ADD_CO_U32: case V_BFE_U32:
  case V_BFE_I32: case V_BFI_B32: case V_AND_OR_B32: case V_OR3_B32: case V_XOR3_B32: case V_LSHL_OR_B32:
  case V_LSHL_ADD_U32: case V_ADD3_U32: case V_MAD_U32_U24: case V_ALIGNBIT_B32: case V_CNDMASK_B32:
  case V_ADD_CO_CI_U32: case V_MAD_U64_U32:
    return true;
  default: return is_cmp(f->op);
  }
}

/* What a slot contributes to a run: 1 a vector operation, 2 a VOPD pair, 3 a timing-only no-op, 4 a scalar
 * operation; 0 it ends the run. */
static int slot_kind(const kn_inst *in) {
  int k = kn_fast_kind(in);
  if (k == 1) return translatable(&in->x) ? 1 : 0;
  if (k == 2) return translatable(&in->x) && translatable(&in->y) ? 2 : 0;
  if (k == 0 && in->fn == kn_inst_generic && salu_ok(in)) return 4;
  return k;
}

/* Adds the function for the run of slots ins[0..n) to module m. */
static void build_run(LLVMContextRef c, LLVMModuleRef m, const char *name, kn_inst *const *ins, int n) {
  gen *g = calloc(1, sizeof *g);
  g->c = c;
  g->b = LLVMCreateBuilderInContext(c);
  g->i1 = LLVMInt1TypeInContext(c), g->i8 = LLVMInt8TypeInContext(c), g->i16 = LLVMInt16TypeInContext(c);
  g->i32 = LLVMInt32TypeInContext(c), g->i64 = LLVMInt64TypeInContext(c), g->f32 = LLVMFloatTypeInContext(c);
  g->v32 = LLVMVectorType(g->i32, KN_LANES), g->vf = LLVMVectorType(g->f32, KN_LANES);
  g->vm = LLVMVectorType(g->i1, KN_LANES), g->v64 = LLVMVectorType(g->i64, KN_LANES);
  g->vh16 = LLVMVectorType(g->i16, KN_LANES);
  LLVMTypeRef ptr = LLVMPointerTypeInContext(c, 0);
  LLVMTypeRef fnt = LLVMFunctionType(LLVMVoidTypeInContext(c), &ptr, 1, 0);
  LLVMValueRef fn = LLVMAddFunction(m, name, fnt);
  g->fma = LLVMGetNamedFunction(m, "llvm.fma.v32f32");
  if (!g->fma)
    g->fma = LLVMAddFunction(m, "llvm.fma.v32f32", LLVMFunctionType(g->vf, (LLVMTypeRef[]){g->vf, g->vf, g->vf}, 3, 0));
  LLVMValueRef lanes[KN_LANES];
  for (int i = 0; i < KN_LANES; i++) lanes[i] = c32(g, (uint32_t)i);
  g->lanes = LLVMConstVector(lanes, KN_LANES);
  g->w = LLVMGetParam(fn, 0);
  LLVMAddAttributeAtIndex(fn, 1, LLVMCreateEnumAttribute(c, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  for (int i = 0; i < n; i++) {
    const kn_inst *in = ins[i];
    int k = slot_kind(in);
    LLVMValueRef o = NULL, hi = NULL, mk = NULL, oy = NULL, hy = NULL, my = NULL;
    if (k == 1) {
      if (in->x.dpp) dpp_src(g, &in->x);
      int r = eval(g, &in->x, &o, &hi, &mk);
      write(g, &in->x, r, o, hi, mk);
      g->dpp_a0 = g->wexec = NULL;
    } else if (k == 2) { /* VOPD: both halves read before either writes */
      int rx = eval(g, &in->x, &o, &hi, &mk), ry = eval(g, &in->y, &oy, &hy, &my);
      write(g, &in->x, rx, o, hi, mk);
      write(g, &in->y, ry, oy, hy, my);
    } else if (k == 4) {
      salu_gen(g, in);
    }
  }
  for (int r = 0; r < KN_NVGPR; r++)
    if (g->vdirty[r]) LLVMSetAlignment(LLVMBuildStore(g->b, g->vreg[r], at(g, offsetof(kn_wave, v) + (size_t)r * KN_LANES * 4)), 4);
  for (int i = 0; i < 128; i++)
    if (g->sdirty[i]) LLVMSetAlignment(LLVMBuildStore(g->b, g->sreg[i], at(g, offsetof(kn_wave, s) + (size_t)i * 4)), 4);
  if (g->scc_dirty) LLVMSetAlignment(LLVMBuildStore(g->b, g->scc, at(g, offsetof(kn_wave, scc))), 4);
  LLVMBuildRetVoid(g->b);
  LLVMDisposeBuilder(g->b);
  free(g);
}

#undef B

/* ---- compiling a program's runs ---- */

static int jit_run(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  const kn_jit_run *r = in->jit;
  r->fn(w);
  uint64_t *insts = cu->st->insts;
  for (int c = 0; c < KN_RDNA3_NCLASS; c++) insts[c] += r->n[c];
  insts[in->cls]--; /* the interpreter loop counted the first slot */
  w->pc += r->bytes;
  return 0;
}

static int err_of(LLVMErrorRef e, char *err, size_t errlen) {
  char *m = LLVMGetErrorMessage(e);
  kn_errf(err, errlen, "rdna3 jit: %s", m);
  LLVMDisposeErrorMessage(m);
  return -1;
}

/* A module's runs, linked into the process: shared by the programs whose runs print as the same IR (the same kernel
 * loaded twice), since its functions are named after the IR's hash and a name can be defined once. */
typedef struct kn_jit_code {
  struct kn_jit_code *next;
  uint64_t hash;
  char *ir;
  int refs, nruns;
  LLVMOrcResourceTrackerRef rt;
  void (**fn)(kn_wave *);
} kn_jit_code;
static kn_jit_code *linked; /* under jit_lock */

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

static void code_put(kn_jit_code *c) {
  if (!c) return;
  pthread_mutex_lock(&jit_lock);
  if (--c->refs == 0) {
    for (kn_jit_code **pp = &linked; *pp; pp = &(*pp)->next)
      if (*pp == c) {
        *pp = c->next;
        break;
      }
    if (c->rt) {
      LLVMErrorRef e = LLVMOrcResourceTrackerRemove(c->rt);
      if (e) LLVMConsumeError(e);
      LLVMOrcReleaseResourceTracker(c->rt);
    }
    free(c->ir), free(c->fn), free(c);
  }
  pthread_mutex_unlock(&jit_lock);
}

/* the linked code of this IR, with a reference taken; NULL when none. *clash: another IR with the same hash */
static kn_jit_code *code_find(uint64_t h, const char *ir, bool *clash) {
  for (kn_jit_code *c = linked; c; c = c->next)
    if (c->hash == h) {
      if (strcmp(c->ir, ir)) return *clash = true, NULL;
      c->refs++;
      return c;
    }
  return NULL;
}

static int emit_object(LLVMModuleRef m, uint8_t **obj, size_t *n, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = host_machine();
  if (!tm) return kn_errf(err, errlen, "rdna3 jit: no LLVM target for %s", host.triple);
  char *msg = NULL;
  LLVMMemoryBufferRef buf = NULL;
  int rc = 0;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &msg, &buf)) {
    rc = kn_errf(err, errlen, "rdna3 jit: compiling the runs: %s", msg ? msg : "?");
  } else {
    *n = LLVMGetBufferSize(buf);
    *obj = malloc(*n ? *n : 1);
    if (*obj) memcpy(*obj, LLVMGetBufferStart(buf), *n);
    else rc = kn_errf(err, errlen, "rdna3 jit: out of memory");
    LLVMDisposeMemoryBuffer(buf);
  }
  LLVMDisposeMessage(msg);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

/* Compiles the runs starts[i] .. (lens[i] slots each) into one module, or takes its object from the disk store
 * (kn_object_store) when one was compiled from the same IR before, and links it: *out holds their functions (NULL,
 * with 0, in the one case the runs stay with the interpreter: another module of this process has the same hash).
 * name: the kernel's, for the store's entry. */
static int compile(kn_inst *const *slots, const int *starts, const int *lens, int nruns, const char *name,
                   kn_jit_code **out, char *err, size_t errlen) {
  *out = NULL;
  pthread_mutex_lock(&jit_lock);
  int rc = jit_init(err, errlen);
  pthread_mutex_unlock(&jit_lock);
  if (rc) return -1;
  LLVMContextRef c = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("rdna3_jit", c);
  LLVMSetTarget(m, host.triple);
  LLVMSetDataLayout(m, host_layout);
  char fname[64];
  for (int i = 0; i < nruns; i++) {
    snprintf(fname, sizeof fname, "run_%d", i);
    build_run(c, m, fname, slots + starts[i], lens[i]);
  }
  char *ir = LLVMPrintModuleToString(m);
  uint64_t h = fnv1a(ir);
  bool clash = false;
  pthread_mutex_lock(&jit_lock);
  kn_jit_code *code = code_find(h, ir, &clash);
  pthread_mutex_unlock(&jit_lock);
  uint8_t *obj = NULL;
  size_t nobj = 0;
  if (!code && !clash) {
    /* the functions are named after the IR (as the object in the store has them) */
    LLVMValueRef fn = LLVMGetFirstFunction(m);
    for (int i = 0; fn; fn = LLVMGetNextFunction(fn)) {
      if (LLVMIsDeclaration(fn)) continue;
      snprintf(fname, sizeof fname, "kn_rdna3_%016llx_%d", (unsigned long long)h, i++);
      LLVMSetValueName2(fn, fname, strlen(fname));
    }
    const kn_object_store_ops *store = jit_cache_enabled() ? kn_object_store() : NULL;
    if (!store || store->load(ir, &host, &obj, &nobj) != 1) {
      obj = NULL;
      rc = emit_object(m, &obj, &nobj, err, errlen);
      if (!rc && store) {
        char entry[96];
        snprintf(entry, sizeof entry, "rdna3 jit %s", name ? name : "?");
        store->store(ir, &host, entry, obj, nobj);
      }
    }
  }
  LLVMDisposeModule(m);
  LLVMContextDispose(c);
  if (rc || code || clash) {
    LLVMDisposeMessage(ir);
    free(obj);
    *out = code;
    return rc;
  }
  /* link it, unless another thread did meanwhile */
  pthread_mutex_lock(&jit_lock);
  code = code_find(h, ir, &clash);
  if (!code && !clash) {
    code = calloc(1, sizeof *code);
    char *irc = strdup(ir);
    void (**fns)(kn_wave *) = calloc((size_t)nruns, sizeof *fns);
    LLVMOrcResourceTrackerRef rt = NULL;
    if (!code || !irc || !fns) rc = kn_errf(err, errlen, "rdna3 jit: out of memory");
    if (!rc) {
      rt = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(jit));
      LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)obj, nobj, "rdna3_jit");
      LLVMErrorRef e = LLVMOrcLLJITAddObjectFileWithRT(jit, rt, buf);
      if (e) rc = err_of(e, err, errlen);
    }
    for (int i = 0; !rc && i < nruns; i++) {
      LLVMOrcExecutorAddress addr = 0;
      snprintf(fname, sizeof fname, "kn_rdna3_%016llx_%d", (unsigned long long)h, i);
      LLVMErrorRef e = LLVMOrcLLJITLookup(jit, &addr, fname);
      if (e) rc = err_of(e, err, errlen);
      else fns[i] = (void (*)(kn_wave *))(uintptr_t)addr;
    }
    if (rc) {
      if (rt) {
        LLVMErrorRef e2 = LLVMOrcResourceTrackerRemove(rt);
        if (e2) LLVMConsumeError(e2);
        LLVMOrcReleaseResourceTracker(rt);
      }
      free(code), free(irc), free(fns);
      code = NULL;
    } else {
      *code = (kn_jit_code){.next = linked, .hash = h, .ir = irc, .refs = 1, .nruns = nruns, .rt = rt, .fn = fns};
      linked = code;
    }
  }
  pthread_mutex_unlock(&jit_lock);
  LLVMDisposeMessage(ir);
  free(obj);
  *out = code;
  return rc;
}

/* The run that starts at slots[i]: its length in slots (only runs of 2+ instructions that compute are worth a call);
 * a run ends before a branch target, so that a loop's head starts a run (a branch into the middle of one runs the
 * interpreter's slots up to its end). */
static int run_length(kn_inst *const *slots, const bool *target, int nslots, int i) {
  int n = 0, valu = 0;
  while (i + n < nslots && slots[i + n] && slots[i + n]->fn && n < MAX_RUN && !(n && target[i + n])) {
    int k = slot_kind(slots[i + n]);
    if (!k) break;
    valu += k != 3;
    n++;
  }
  while (n > 0 && slot_kind(slots[i + n - 1]) == 3) n--; /* a run ends with its last vector instruction */
  return valu >= 2 ? n : 0;
}

int kn_jit_program(kn_rdna3_prog *p, const char *name, char *err, size_t errlen) {
  p->jitted = true;
  /* the decoded slots in pc order, following instruction lengths from the entry */
  uint64_t nd = p->size / 4;
  kn_inst **slots = calloc(nd ? nd : 1, sizeof *slots);
  if (!slots) return kn_errf(err, errlen, "rdna3 jit: out of memory");
  int ns = 0;
  for (uint64_t d = 0; d < nd;) {
    kn_inst *ch = p->chunks[d / KN_CHUNK];
    kn_inst *in = ch ? &ch[d % KN_CHUNK] : NULL;
    if (!in || !in->fn) { /* not reached by any wave: a gap in the runs */
      slots[ns++] = NULL;
      d++;
      continue;
    }
    slots[ns++] = in;
    d += in->len / 4;
  }
  /* the slots branches reach */
  bool *target = calloc((size_t)ns + 1, sizeof *target);
  int *slot_at = malloc((nd ? nd : 1) * sizeof *slot_at);
  if (target && slot_at) {
    for (uint64_t d = 0; d < nd; d++) slot_at[d] = -1;
    for (int i = 0, d = 0; i < ns; d += slots[i] ? slots[i]->len / 4 : 1, i++) slot_at[d] = i;
    for (int i = 0, d = 0; i < ns; d += slots[i] ? slots[i]->len / 4 : 1, i++) {
      const kn_inst *in = slots[i];
      if (!in || in->fam != KN_FAM_SOPP || in->op < S_BRANCH || in->op > S_CBRANCH_EXECNZ) continue;
      int64_t t = d + 1 + (int16_t)(in->w[0] & 0xffff);
      if (t >= 0 && (uint64_t)t < nd && slot_at[t] >= 0) target[slot_at[t]] = true;
    }
  }
  int *starts = calloc((size_t)ns + 1, sizeof *starts), *lens = calloc((size_t)ns + 1, sizeof *lens), nr = 0;
  for (int i = 0; starts && lens && target && slot_at && i < ns;) {
    int n = slots[i] && slot_kind(slots[i]) && slot_kind(slots[i]) != 3 ? run_length(slots, target, ns, i) : 0;
    if (n) starts[nr] = i, lens[nr] = n, nr++, i += n;
    else i++;
  }
  int rc = 0;
  if (nr) {
    kn_jit_run *runs = calloc((size_t)nr, sizeof *runs);
    kn_jit_code *code = NULL;
    if (!runs) rc = kn_errf(err, errlen, "rdna3 jit: out of memory");
    else rc = compile(slots, starts, lens, nr, name, &code, err, errlen);
    if (!rc && code) {
      for (int i = 0; i < nr; i++) {
        kn_jit_run *r = &runs[i];
        r->fn = code->fn[i];
        for (int j = 0; j < lens[i]; j++) r->n[slots[starts[i] + j]->cls]++, r->bytes += slots[starts[i] + j]->len;
        kn_inst *head = slots[starts[i]];
        head->jit = r;
        __atomic_store_n(&head->fn, jit_run, __ATOMIC_RELEASE);
      }
      p->jit_runs = runs, p->jit_code = code;
    } else free(runs);
  }
  free(starts), free(lens), free(slots), free(target), free(slot_at);
  return rc;
}

void kn_jit_release(kn_rdna3_prog *p) {
  code_put(p->jit_code);
  free(p->jit_runs);
  p->jit_code = NULL, p->jit_runs = NULL;
}

/* ---- checking a compiled run against the per-lane executors ---- */

static uint32_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

static bool is_nan(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

int kn_rdna3_check_jit(const uint32_t *code, size_t nwords, uint64_t seed, int nstates, bool nan_free, char *err,
                       size_t errlen) {
  /* the instructions, decoded as a program would be */
  kn_inst *ins = calloc(nwords + 1, sizeof *ins);
  kn_inst **slots = calloc(nwords + 1, sizeof *slots);
  uint32_t *words = calloc(nwords + 4, 4);
  kn_wave *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  int result = 1, n = 0;
  if (!ins || !slots || !words || !a || !b) {
    result = kn_errf(err, errlen, "out of memory");
    goto out;
  }
  memcpy(words, code, nwords * 4);
  for (size_t off = 0; off < nwords;) {
    const char *famname;
    unsigned op;
    size_t avail = nwords - off;
    unsigned len = kn_rdna3_decode(words + off, avail < 4 ? avail : 4, &famname, &op, NULL);
    if (!len) {
      result = kn_errf(err, errlen, "word 0x%08x does not decode", words[off]);
      goto out;
    }
    kn_inst *in = &ins[n];
    in->w = words + off, in->len = (uint8_t)len, in->op = (uint16_t)op, in->fam = (uint8_t)kn_rdna3_family(famname);
    in->cls = in->fam <= KN_FAM_SOPC ? KN_RDNA3_SALU : KN_RDNA3_VALU;
    if (!kn_fast_decode(in)) in->fn = kn_inst_generic; /* scalar instructions have no fast path */
    if (slot_kind(in) == 0 || slot_kind(in) == 3) {
      result = 0; /* not an instruction the translation takes */
      goto out;
    }
    slots[n++] = in;
    off += len / 4;
  }
  kn_jit_run run = {0};
  kn_jit_code *linked_code = NULL;
  int start = 0;
  for (int i = 0; i < n; i++) run.bytes += slots[i]->len;
  if (compile(slots, &start, &n, 1, "jitcheck", &linked_code, err, errlen)) {
    result = -1;
    goto out;
  }
  if (!linked_code) {
    result = kn_errf(err, errlen, "the run's IR hashes as another module linked in this process");
    goto out;
  }
  run.fn = linked_code->fn[0];
  uint64_t s = seed * 2654435761u + 1;
  for (int t = 0; t < nstates && result == 1; t++) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 106; i++) a->s[i] = rng_next(&s) % 3 ? rng_next(&s) : rng_next(&s) % 64;
    a->s[OP_VCC_LO] = rng_next(&s), a->s[OP_VCC_HI] = rng_next(&s), a->s[OP_M0] = rng_next(&s);
    uint32_t execs[] = {~0u, rng_next(&s), 0x0000ffffu, 1u << (rng_next(&s) & 31)};
    a->s[OP_EXEC_LO] = execs[(seed + (uint64_t)t) % 4];
    for (int r = 0; r < KN_NVGPR; r++)
      for (int l = 0; l < KN_LANES; l++) {
        uint32_t x = rng_next(&s);
        switch (x % 5) {
        case 0: x = rng_next(&s) % 64; break;
        case 1: x = f2u((float)((int32_t)rng_next(&s) % 20000) / 64.0f); break;
        case 2: x = (uint32_t)kn_f2h((float)((int32_t)rng_next(&s) % 2000) / 16.0f) | rng_next(&s) << 16; break;
        default: x = rng_next(&s); break;
        }
        if (nan_free && is_nan(x)) x &= 0xbfffffffu; /* a finite float */
        a->v[r][l] = x;
      }
    if (nan_free)
      for (int i = 0; i < 106; i++)
        if (is_nan(a->s[i])) a->s[i] &= 0xbfffffffu;
    a->scc = (int)(rng_next(&s) & 1), a->pc = 0x1000, a->state = WAVE_RUN;
    memcpy(b, a, sizeof *a);
    kn_rdna3_dispatch d = {.name = "jitcheck"};
    kn_rdna3_stats st = {0};
    char e1[256] = "";
    kn_cu cu = {.d = &d, .st = &st, .err = e1, .errlen = sizeof e1, .entry = 0x1000};
    for (int i = 0; i < n && result == 1; i++)
      if (kn_inst_generic(&cu, a, slots[i]))
        result = kn_errf(err, errlen, "the per-lane executor fails on instruction %d: %s", i, e1);
    if (result != 1) break;
    run.fn(b);
    b->pc += run.bytes;
    if (a->scc != b->scc) {
      result = kn_errf(err, errlen, "compiled run differs in SCC (%d, want %d)", b->scc, a->scc);
      break;
    }
    if (memcmp(a->s, b->s, sizeof a->s) || a->pc != b->pc) {
      int i = 0;
      while (i < 128 && a->s[i] == b->s[i]) i++;
      result = kn_errf(err, errlen, "compiled run differs in scalar state (s%d: 0x%08x, want 0x%08x; pc %+lld)", i,
                       i < 128 ? b->s[i] : 0, i < 128 ? a->s[i] : 0, (long long)(b->pc - a->pc));
      break;
    }
    for (int r = 0; r < KN_NVGPR && result == 1; r++)
      for (int l = 0; l < KN_LANES; l++)
        if (a->v[r][l] != b->v[r][l] && !(is_nan(a->v[r][l]) && is_nan(b->v[r][l]))) {
          result = kn_errf(err, errlen, "compiled run differs in v%d lane %d: 0x%08x, want 0x%08x (exec 0x%08x)", r, l,
                           b->v[r][l], a->v[r][l], a->s[OP_EXEC_LO]);
          break;
        }
  }
  code_put(linked_code);
out:
  free(ins), free(slots), free(words), free(a), free(b);
  return result < 0 ? -1 : result;
}
