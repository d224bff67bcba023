/* Loop IR -> LLVM IR through the LLVM C API builder. Vectors are explicit <N x T> values, loops are basic blocks
 * with phi counters (do-while: every extent is a positive constant), accumulators are allocas that mem2reg turns
 * into registers, buffers reach the kernel body as noalias pointers. The CPU entry point runs work items
 * [start, end) of global[0]. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

int kn_efail(kn_emit *e, const char *fmt, ...) {
  if (!e->failed && e->err && e->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
  }
  e->failed = true;
  return -1;
}

LLVMTypeRef kn_e_vec(LLVMTypeRef t, int vec) { return vec > 1 ? LLVMVectorType(t, (unsigned)vec) : t; }

LLVMTypeRef kn_e_regtype(kn_emit *e, kn_dtype dt) {
  switch (kn_dtype_get(dt)->itemsize) {
  case 1: return dt == KN_BOOL ? e->i1 : e->i8;
  case 2: return dt == KN_F16 || dt == KN_BF16 ? e->f32 : e->i16;
  case 4: return dt == KN_F32 ? e->f32 : e->i32;
  case 8: return e->i64;
  default: return e->f32; /* block formats read as f32 */
  }
}

LLVMTypeRef kn_e_memtype(kn_emit *e, kn_dtype dt) {
  if (dt == KN_BOOL) return e->i8;
  if (dt == KN_F16) return e->f16;
  if (dt == KN_BF16) return e->i16;
  return kn_e_regtype(e, dt);
}

LLVMValueRef kn_e_fconst(LLVMTypeRef ty, double v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstReal(ty, v);
  unsigned n = LLVMGetVectorSize(ty);
  LLVMValueRef s = LLVMConstReal(LLVMGetElementType(ty), v), a[64];
  for (unsigned i = 0; i < n && i < 64; i++) a[i] = s;
  return LLVMConstVector(a, n);
}

LLVMValueRef kn_e_iconst(LLVMTypeRef ty, long long v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstInt(ty, (unsigned long long)v, 1);
  unsigned n = LLVMGetVectorSize(ty);
  LLVMValueRef s = LLVMConstInt(LLVMGetElementType(ty), (unsigned long long)v, 1), a[64];
  for (unsigned i = 0; i < n && i < 64; i++) a[i] = s;
  return LLVMConstVector(a, n);
}

LLVMValueRef kn_e_splat(kn_emit *e, LLVMValueRef v, int vec) {
  if (vec <= 1) return v;
  if (LLVMIsConstant(v)) {
    LLVMValueRef a[64];
    for (int i = 0; i < vec && i < 64; i++) a[i] = v;
    return LLVMConstVector(a, (unsigned)vec);
  }
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(v), (unsigned)vec);
  LLVMValueRef x = LLVMBuildInsertElement(e->b, LLVMGetPoison(vt), v, LLVMConstInt(e->i32, 0, 0), "");
  return LLVMBuildShuffleVector(e->b, x, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(e->i32, (unsigned)vec)), "");
}

LLVMValueRef kn_e_intrinsic(kn_emit *e, const char *name, LLVMTypeRef overload, LLVMValueRef *args, int nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, &overload, 1);
  LLVMTypeRef ft = LLVMIntrinsicGetType(e->ctx, id, &overload, 1);
  return LLVMBuildCall2(e->b, ft, fn, args, (unsigned)nargs, "");
}

static LLVMValueRef fmf(LLVMValueRef v) {
  if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v)) LLVMSetFastMathFlags(v, LLVMFastMathAllowContract);
  return v;
}
LLVMValueRef kn_e_fadd(kn_emit *e, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFAdd(e->b, a, b, "")); }
LLVMValueRef kn_e_fmul(kn_emit *e, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFMul(e->b, a, b, "")); }
LLVMValueRef kn_e_fsub(kn_emit *e, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFSub(e->b, a, b, "")); }

static LLVMTypeRef like(LLVMTypeRef v, LLVMTypeRef elem) {
  return LLVMGetTypeKind(v) == LLVMVectorTypeKind ? LLVMVectorType(elem, LLVMGetVectorSize(v)) : elem;
}

LLVMValueRef kn_e_bf16_to_f32(kn_emit *e, LLVMValueRef bits) {
  LLVMTypeRef t32 = like(LLVMTypeOf(bits), e->i32);
  LLVMValueRef w = LLVMBuildZExt(e->b, bits, t32, "");
  w = LLVMBuildShl(e->b, w, kn_e_iconst(t32, 16), "");
  return LLVMBuildBitCast(e->b, w, like(t32, e->f32), "");
}

/* Round to nearest even on the upper 16 bits; NaNs stay NaN (quiet bit forced). */
LLVMValueRef kn_e_f32_to_bf16(kn_emit *e, LLVMValueRef f) {
  LLVMTypeRef t32 = like(LLVMTypeOf(f), e->i32);
  LLVMValueRef u = LLVMBuildBitCast(e->b, f, t32, "");
  LLVMValueRef lsb = LLVMBuildAnd(e->b, LLVMBuildLShr(e->b, u, kn_e_iconst(t32, 16), ""), kn_e_iconst(t32, 1), "");
  LLVMValueRef r = LLVMBuildAdd(e->b, u, LLVMBuildAdd(e->b, lsb, kn_e_iconst(t32, 0x7fff), ""), "");
  LLVMValueRef nan = LLVMBuildFCmp(e->b, LLVMRealUNO, f, f, "");
  r = LLVMBuildSelect(e->b, nan, LLVMBuildOr(e->b, u, kn_e_iconst(t32, 0x400000), ""), r, "");
  r = LLVMBuildLShr(e->b, r, kn_e_iconst(t32, 16), "");
  return LLVMBuildTrunc(e->b, r, like(t32, e->i16), "");
}

LLVMValueRef kn_e_round_to(kn_emit *e, LLVMValueRef v, kn_dtype dt) {
  if (dt == KN_F16) {
    LLVMValueRef h = LLVMBuildFPTrunc(e->b, v, like(LLVMTypeOf(v), e->f16), "");
    return LLVMBuildFPExt(e->b, h, LLVMTypeOf(v), "");
  }
  if (dt == KN_BF16) return kn_e_bf16_to_f32(e, kn_e_f32_to_bf16(e, v));
  return v;
}

/* ---- values ---- */

static LLVMValueRef get(kn_emit *e, int id, int vec) {
  const kn_lop *o = &e->p->ops[id];
  LLVMValueRef v = e->vals[id];
  if (o->op == KN_L_ACC) v = LLVMBuildLoad2(e->b, kn_e_vec(kn_e_regtype(e, o->dtype), o->vec), v, "");
  if (!v) {
    kn_efail(e, "loop IR op %d (%s) used before it has a value", id, kn_lop_name(o->op));
    return LLVMGetPoison(kn_e_vec(kn_e_regtype(e, o->dtype), vec));
  }
  return o->vec == 1 && vec > 1 ? kn_e_splat(e, v, vec) : v;
}

LLVMValueRef kn_e_get(kn_emit *e, int id, int vec) { return get(e, id, vec); }

static LLVMValueRef zero_of(kn_emit *e, kn_dtype dt, int vec) { return LLVMConstNull(kn_e_vec(kn_e_regtype(e, dt), vec)); }

static LLVMValueRef to_reg(kn_emit *e, LLVMValueRef v, kn_dtype dt, int vec) {
  if (dt == KN_BOOL) return LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
  if (dt == KN_F16) return LLVMBuildFPExt(e->b, v, kn_e_vec(e->f32, vec), "");
  if (dt == KN_BF16) return kn_e_bf16_to_f32(e, v);
  return v;
}

static LLVMValueRef to_mem(kn_emit *e, LLVMValueRef v, kn_dtype dt, int vec) {
  if (dt == KN_BOOL) return LLVMBuildZExt(e->b, v, kn_e_vec(e->i8, vec), "");
  if (dt == KN_F16) return LLVMBuildFPTrunc(e->b, v, kn_e_vec(e->f16, vec), "");
  if (dt == KN_BF16) return kn_e_f32_to_bf16(e, v);
  return v;
}

static LLVMValueRef gated_index(kn_emit *e, const kn_lop *o, int gate_src) {
  LLVMValueRef idx = get(e, o->src[1], 1);
  if (o->nsrc > gate_src) idx = LLVMBuildSelect(e->b, get(e, o->src[gate_src], 1), idx, LLVMConstInt(e->i64, 0, 0), "");
  return idx;
}

/* Gated-off loads read element 0 instead (always inside the buffer) and yield 0: no branch in the loop body. */
static LLVMValueRef emit_load(kn_emit *e, const kn_lop *o) {
  kn_dtype sd = e->p->k->bufs[e->p->ops[o->src[0]].arg].dtype;
  int gs = o->op == KN_L_QLOAD ? 3 : 2; /* index of the gate operand */
  LLVMValueRef idx = gated_index(e, o, gs), v;
  if (o->op == KN_L_QLOAD) {
    LLVMValueRef j0 = get(e, o->src[2], 1);
    if (o->nsrc > gs && !LLVMIsConstant(j0)) j0 = LLVMBuildSelect(e->b, get(e, o->src[gs], 1), j0, LLVMConstInt(e->i64, 0, 0), "");
    v = kn_quant_load(e, sd, get(e, o->src[0], 1), idx, j0, o->vec);
  } else {
    LLVMTypeRef mt = kn_e_memtype(e, sd);
    LLVMValueRef ptr = LLVMBuildGEP2(e->b, mt, get(e, o->src[0], 1), &idx, 1, "");
    v = LLVMBuildLoad2(e->b, kn_e_vec(mt, o->vec), ptr, "");
    LLVMSetAlignment(v, (unsigned)kn_dtype_get(sd)->itemsize);
    v = to_reg(e, v, sd, o->vec);
  }
  if (o->nsrc > gs) v = LLVMBuildSelect(e->b, get(e, o->src[gs], 1), v, zero_of(e, o->dtype, o->vec), "");
  return v;
}

static LLVMValueRef emit_qdot(kn_emit *e, const kn_lop *o) {
  LLVMValueRef xs[256];
  int nx = o->nsrc - 2;
  if (nx < 1 || nx > 256) return kn_efail(e, "QDOT with %d activation vectors", nx), LLVMGetPoison(kn_e_vec(e->f32, o->vec));
  for (int i = 0; i < nx; i++) xs[i] = get(e, o->src[2 + i], o->vec);
  return kn_quant_dot(e, (kn_dtype)o->arg, get(e, o->src[0], 1), get(e, o->src[1], 1), xs, nx, o->vec);
}

LLVMValueRef kn_e_entry_alloca(kn_emit *e, LLVMTypeRef t, unsigned align, const char *name) {
  LLVMBuilderRef ab = LLVMCreateBuilderInContext(e->ctx);
  LLVMValueRef first = LLVMGetFirstInstruction(e->entry);
  if (first) LLVMPositionBuilderBefore(ab, first);
  else LLVMPositionBuilderAtEnd(ab, e->entry);
  LLVMValueRef a = LLVMBuildAlloca(ab, t, name);
  if (align) LLVMSetAlignment(a, align);
  LLVMDisposeBuilder(ab);
  return a;
}

/* SCRATCH: a stack array in the entry block */
static LLVMValueRef emit_scratch(kn_emit *e, const kn_lop *o) {
  return kn_e_entry_alloca(e, LLVMArrayType2(e->i8, (uint64_t)o->size), 64, "scratch");
}

/* the record `src[1]` of SCRATCH src[0] holding qk elements of the dtype's QDOT */
static LLVMValueRef qx_record(kn_emit *e, const kn_lop *o, int si, int qk) {
  kn_dtype fmt = (kn_dtype)o->arg;
  int nblk = qk / (int)kn_dtype_get(fmt)->block_elems;
  LLVMValueRef off = LLVMBuildMul(e->b, get(e, o->src[si + 1], 1),
                                  LLVMConstInt(e->i64, (unsigned long long)kn_quant_x_record_bytes(qk, nblk), 0), "");
  return LLVMBuildGEP2(e->b, e->i8, get(e, o->src[si], 1), &off, 1, "");
}

static void emit_qx(kn_emit *e, const kn_lop *o) {
  LLVMValueRef xs[256];
  int nx = o->nsrc - 2;
  if (nx < 1 || nx > 256) {
    kn_efail(e, "QX with %d activation vectors", nx);
    return;
  }
  for (int i = 0; i < nx; i++) xs[i] = get(e, o->src[2 + i], o->vec);
  kn_quant_x_store(e, (kn_dtype)o->arg, xs, nx, o->vec, qx_record(e, o, 0, nx * o->vec));
}

static LLVMValueRef emit_qdotr(kn_emit *e, const kn_lop *o) {
  int qk = (int)e->p->ops[o->src[4]].val.i;
  return kn_quant_dot_rec(e, (kn_dtype)o->arg, get(e, o->src[0], 1), get(e, o->src[1], 1), qx_record(e, o, 2, qk), qk, o->vec);
}

void kn_prefetch_span(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef p, int64_t bytes) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef i8 = LLVMInt8TypeInContext(c), i32 = LLVMInt32TypeInContext(c), i64 = LLVMInt64TypeInContext(c), pt = LLVMTypeOf(p);
  unsigned id = LLVMLookupIntrinsicID("llvm.prefetch", 13);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m, id, &pt, 1);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c, id, &pt, 1);
  for (int64_t o = 0; o < bytes; o += 64) {
    LLVMValueRef ix = LLVMConstInt(i64, (unsigned long long)o, 0);
    LLVMValueRef args[4] = {LLVMBuildGEP2(b, i8, p, &ix, 1, ""), LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, 3, 0), LLVMConstInt(i32, 1, 0)};
    LLVMBuildCall2(b, ft, fn, args, 4, "");
  }
}

static void emit_prefetch(kn_emit *e, const kn_lop *o) {
  const kn_dtype_info *di = kn_dtype_get((kn_dtype)o->arg);
  LLVMValueRef off = LLVMBuildMul(e->b, get(e, o->src[1], 1), LLVMConstInt(e->i64, (unsigned long long)di->block_bytes, 0), "");
  kn_prefetch_span(e->mod, e->b, LLVMBuildGEP2(e->b, e->i8, get(e, o->src[0], 1), &off, 1, ""), o->size);
}

static void emit_store(kn_emit *e, const kn_lop *o) {
  kn_dtype dt = e->p->k->bufs[e->p->ops[o->src[0]].arg].dtype;
  LLVMBasicBlockRef done = NULL;
  LLVMValueRef gate = o->nsrc > 3 ? get(e, o->src[3], 1) : NULL;
  if (e->store_gate) gate = gate ? LLVMBuildAnd(e->b, gate, e->store_gate, "") : e->store_gate;
  if (gate) {
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "st");
    done = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "st.done");
    LLVMBuildCondBr(e->b, gate, yes, done);
    LLVMPositionBuilderAtEnd(e->b, yes);
  }
  LLVMTypeRef mt = kn_e_memtype(e, dt);
  LLVMValueRef idx = get(e, o->src[1], 1);
  LLVMValueRef ptr = LLVMBuildGEP2(e->b, mt, get(e, o->src[0], 1), &idx, 1, "");
  LLVMValueRef st = LLVMBuildStore(e->b, to_mem(e, get(e, o->src[2], o->vec), dt, o->vec), ptr);
  LLVMSetAlignment(st, (unsigned)kn_dtype_get(dt)->itemsize);
  if (done) {
    LLVMBuildBr(e->b, done);
    LLVMPositionBuilderAtEnd(e->b, done);
  }
}

/* ---- ALU ---- */

static LLVMValueRef emit_cast(kn_emit *e, LLVMValueRef v, kn_dtype from, kn_dtype to, int vec) {
  LLVMTypeRef rt = kn_e_vec(kn_e_regtype(e, to), vec);
  bool ff = kn_dtype_is_float(from), tf = kn_dtype_is_float(to);
  bool fs = kn_dtype_get(from)->is_signed && from != KN_BOOL;
  if (to == KN_BOOL)
    return ff ? LLVMBuildFCmp(e->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
              : LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
  if (ff && tf) return kn_e_round_to(e, v, to);
  if (ff) return kn_dtype_get(to)->is_signed ? LLVMBuildFPToSI(e->b, v, rt, "") : LLVMBuildFPToUI(e->b, v, rt, "");
  if (tf) return kn_e_round_to(e, fs ? LLVMBuildSIToFP(e->b, v, rt, "") : LLVMBuildUIToFP(e->b, v, rt, ""), to);
  return LLVMBuildIntCast2(e->b, v, rt, fs, "");
}

static LLVMValueRef emit_bitcast(kn_emit *e, LLVMValueRef v, kn_dtype from, kn_dtype to, int vec) {
  if (from == KN_F16) v = LLVMBuildBitCast(e->b, LLVMBuildFPTrunc(e->b, v, kn_e_vec(e->f16, vec), ""), kn_e_vec(e->i16, vec), "");
  else if (from == KN_BF16) v = kn_e_f32_to_bf16(e, v);
  if (to == KN_F16) return LLVMBuildFPExt(e->b, LLVMBuildBitCast(e->b, v, kn_e_vec(e->f16, vec), ""), kn_e_vec(e->f32, vec), "");
  if (to == KN_BF16) return kn_e_bf16_to_f32(e, v);
  return LLVMBuildBitCast(e->b, v, kn_e_vec(kn_e_regtype(e, to), vec), "");
}

static LLVMValueRef emit_unary(kn_emit *e, kn_kop_type op, kn_dtype dt, LLVMValueRef a) {
  bool f = kn_dtype_is_float(dt);
  switch (op) {
  case KN_KOP_NEG: return f ? LLVMBuildFNeg(e->b, a, "") : LLVMBuildNeg(e->b, a, "");
  case KN_KOP_RECIP: return LLVMBuildFDiv(e->b, kn_e_fconst(LLVMTypeOf(a), 1.0), a, "");
  case KN_KOP_SQRT: return kn_e_intrinsic(e, "llvm.sqrt", LLVMTypeOf(a), &a, 1);
  case KN_KOP_EXP2: return kn_e_exp2(e, a);
  case KN_KOP_LOG2: return kn_e_log2(e, a);
  case KN_KOP_SIN: return kn_e_sin(e, a);
  case KN_KOP_TRUNC: return f ? kn_e_intrinsic(e, "llvm.trunc", LLVMTypeOf(a), &a, 1) : a;
  case KN_KOP_NOT: return LLVMBuildNot(e->b, a, "");
  default: kn_efail(e, "%s is not a unary op", kn_kop_name(op)); return a;
  }
}

LLVMValueRef kn_e_binary(kn_emit *e, kn_kop_type op, kn_dtype sdt, LLVMValueRef a, LLVMValueRef b) {
  bool f = kn_dtype_is_float(sdt), bl = sdt == KN_BOOL, s = kn_dtype_get(sdt)->is_signed && !bl;
  LLVMBuilderRef B = e->b;
  if (f) switch (op) {
    case KN_KOP_ADD: return kn_e_fadd(e, a, b);
    case KN_KOP_SUB: return kn_e_fsub(e, a, b);
    case KN_KOP_MUL: return kn_e_fmul(e, a, b);
    case KN_KOP_DIV: return LLVMBuildFDiv(B, a, b, "");
    case KN_KOP_MAX: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""), a, b, "");
    case KN_KOP_MIN: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""), a, b, "");
    case KN_KOP_CMPLT: return LLVMBuildFCmp(B, LLVMRealOLT, a, b, "");
    case KN_KOP_CMPEQ: return LLVMBuildFCmp(B, LLVMRealOEQ, a, b, "");
    case KN_KOP_CMPNE: return LLVMBuildFCmp(B, LLVMRealUNE, a, b, "");
    case KN_KOP_POW: return kn_e_exp2(e, kn_e_fmul(e, b, kn_e_log2(e, a)));
    default: kn_efail(e, "%s is not defined on floats", kn_kop_name(op)); return a;
    }
  if (bl && (op == KN_KOP_ADD || op == KN_KOP_MAX)) op = KN_KOP_OR;
  if (bl && (op == KN_KOP_MUL || op == KN_KOP_MIN)) op = KN_KOP_AND;
  switch (op) {
  case KN_KOP_ADD: return LLVMBuildAdd(B, a, b, "");
  case KN_KOP_SUB: return LLVMBuildSub(B, a, b, "");
  case KN_KOP_MUL: return LLVMBuildMul(B, a, b, "");
  case KN_KOP_DIV: return s ? LLVMBuildSDiv(B, a, b, "") : LLVMBuildUDiv(B, a, b, "");
  case KN_KOP_MOD: return s ? LLVMBuildSRem(B, a, b, "") : LLVMBuildURem(B, a, b, "");
  case KN_KOP_MAX: return LLVMBuildSelect(B, LLVMBuildICmp(B, s ? LLVMIntSGT : LLVMIntUGT, a, b, ""), a, b, "");
  case KN_KOP_MIN: return LLVMBuildSelect(B, LLVMBuildICmp(B, s ? LLVMIntSLT : LLVMIntULT, a, b, ""), a, b, "");
  case KN_KOP_CMPLT: return LLVMBuildICmp(B, s ? LLVMIntSLT : LLVMIntULT, a, b, "");
  case KN_KOP_CMPEQ: return LLVMBuildICmp(B, LLVMIntEQ, a, b, "");
  case KN_KOP_CMPNE: return LLVMBuildICmp(B, LLVMIntNE, a, b, "");
  case KN_KOP_AND: return LLVMBuildAnd(B, a, b, "");
  case KN_KOP_OR: return LLVMBuildOr(B, a, b, "");
  case KN_KOP_XOR: return LLVMBuildXor(B, a, b, "");
  case KN_KOP_SHL: return LLVMBuildShl(B, a, b, "");
  case KN_KOP_SHR: return s ? LLVMBuildAShr(B, a, b, "") : LLVMBuildLShr(B, a, b, "");
  default: kn_efail(e, "%s is not defined on %s", kn_kop_name(op), kn_dtype_name(sdt)); return a;
  }
}

/* A float add or subtract with a product operand is one explicit multiply-add (llvm.fmuladd, a fused multiply-add
 * where the target has one), the first operand's product when both are: the same expression gives the same bits in
 * every kernel it lands in. Left to contraction, the backend fuses a product only while it has one use and picks
 * between two products by their uses, so the rounding depended on what else a kernel computed: a product shared by
 * two accumulators (a swizzled reduce, where RoPE's pair partner sums the same row twice) was rounded before its add,
 * and the rotation x C + swap(x) S fused the other product where its inputs were a reduce's results (AMDGPU). A row's
 * result must not depend on how its kernel was fused (a sequence decoded alone or in a batch). NULL: not that shape. */
static LLVMValueRef emit_muladd(kn_emit *e, const kn_lop *o) {
  if ((o->alu != KN_KOP_ADD && o->alu != KN_KOP_SUB) || o->nsrc != 2 || !kn_dtype_is_float(o->dtype)) return NULL;
  for (int side = 0; side < 2; side++) {
    const kn_lop *m = &e->p->ops[o->src[side]];
    if (m->op != KN_L_ALU || m->alu != KN_KOP_MUL || m->nsrc != 2 || m->dtype != o->dtype) continue;
    LLVMValueRef x = get(e, m->src[0], o->vec), y = get(e, m->src[1], o->vec), c = get(e, o->src[1 - side], o->vec);
    if (o->alu == KN_KOP_SUB && side == 0) c = LLVMBuildFNeg(e->b, c, ""); /* x y - c */
    if (o->alu == KN_KOP_SUB && side == 1) x = LLVMBuildFNeg(e->b, x, ""); /* c - x y = (-x) y + c */
    LLVMValueRef args[3] = {x, y, c};
    return kn_e_intrinsic(e, "llvm.fmuladd", LLVMTypeOf(c), args, 3);
  }
  return NULL;
}

static LLVMValueRef emit_alu(kn_emit *e, const kn_lop *o) {
  LLVMValueRef fma = emit_muladd(e, o);
  if (fma) return fma;
  LLVMValueRef a = get(e, o->src[0], o->vec);
  kn_dtype sdt = e->p->ops[o->src[0]].dtype;
  LLVMValueRef r;
  if (o->alu == KN_KOP_WHERE) {
    sdt = o->dtype;
    r = LLVMBuildSelect(e->b, a, get(e, o->src[1], o->vec), get(e, o->src[2], o->vec), "");
  } else if (o->nsrc == 1) r = emit_unary(e, o->alu, sdt, a);
  else r = kn_e_binary(e, o->alu, sdt, a, get(e, o->src[1], o->vec));
  return r; /* f16/bf16 math stays in f32 registers; values are rounded only by stores and explicit casts */
}

/* Horizontal reduction by halving: log2(lanes) shuffles, same op semantics as the scalar path. */
static LLVMValueRef emit_hreduce(kn_emit *e, const kn_lop *o) {
  const kn_lop *s = &e->p->ops[o->src[0]];
  LLVMValueRef v = get(e, o->src[0], s->vec);
  int n = s->vec;
  while (n > 1 && n % 2 == 0) {
    LLVMValueRef lo[32], hi[32];
    for (int i = 0; i < n / 2; i++) lo[i] = LLVMConstInt(e->i32, (unsigned)i, 0), hi[i] = LLVMConstInt(e->i32, (unsigned)(i + n / 2), 0);
    LLVMValueRef a = LLVMBuildShuffleVector(e->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(lo, (unsigned)n / 2), "");
    LLVMValueRef b = LLVMBuildShuffleVector(e->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(hi, (unsigned)n / 2), "");
    v = kn_e_binary(e, o->alu, o->dtype, a, b);
    n /= 2;
  }
  if (n == 1) return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind ? LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, 0, 0), "") : v;
  LLVMValueRef r = LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, 0, 0), "");
  for (int i = 1; i < n; i++) r = kn_e_binary(e, o->alu, o->dtype, r, LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, (unsigned)i, 0), ""));
  return r;
}

static LLVMValueRef emit_const(kn_emit *e, const kn_lop *o) {
  LLVMTypeRef t = kn_e_regtype(e, o->dtype);
  if (kn_dtype_is_float(o->dtype)) return LLVMConstReal(t, o->val.f);
  return LLVMConstInt(t, (unsigned long long)o->val.i, 1);
}

/* ---- control flow ---- */

typedef struct {
  LLVMBasicBlockRef header, exit; /* exit: where a work-item loop goes when start >= end */
  LLVMValueRef phi, end; /* end: NULL for RANGE (constant extent) */
  int64_t size;
} loop;

static void open_loop(kn_emit *e, loop *l, LLVMValueRef start, LLVMValueRef end, int64_t size) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
  l->header = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "loop");
  l->end = end, l->size = size;
  l->exit = NULL;
  if (end) {
    l->exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "exit");
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, start, end, ""), l->header, l->exit);
  } else
    LLVMBuildBr(e->b, l->header);
  LLVMPositionBuilderAtEnd(e->b, l->header);
  l->phi = LLVMBuildPhi(e->b, e->i64, "i");
  LLVMAddIncoming(l->phi, &start, &pre, 1);
}

static void close_loop(kn_emit *e, loop *l) {
  LLVMValueRef next = LLVMBuildAdd(e->b, l->phi, LLVMConstInt(e->i64, 1, 0), "");
  LLVMSetNUW(next, 1), LLVMSetNSW(next, 1);
  LLVMValueRef end = l->end ? l->end : LLVMConstInt(e->i64, (unsigned long long)l->size, 0);
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "done");
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, next, end, ""), l->header, exit);
  LLVMAddIncoming(l->phi, &next, &cur, 1);
  LLVMPositionBuilderAtEnd(e->b, exit);
}

static LLVMValueRef new_acc(kn_emit *e, const kn_lop *o) {
  LLVMValueRef a = kn_e_entry_alloca(e, kn_e_vec(kn_e_regtype(e, o->dtype), o->vec), 0, "acc");
  LLVMBuildStore(e->b, get(e, o->src[0], o->vec), a);
  return a;
}

int kn_emit_ops(kn_emit *e, LLVMValueRef *params, LLVMValueRef vars, LLVMValueRef start, LLVMValueRef end) {
  bool gpu = e->t->kind != KN_TARGET_CPU;
  const kn_lprog *p = e->p;
  loop loops[KN_MAXPIECES + 2];
  int nl = 0, gl = -1;
  LLVMBasicBlockRef gexit = NULL;
  for (int i = 0; i < p->n && !e->failed; i++) {
    const kn_lop *o = &p->ops[i];
    LLVMValueRef v = NULL;
    switch (o->op) {
    case KN_L_PARAM: v = params[o->arg]; break;
    case KN_L_CONST: v = emit_const(e, o); break;
    case KN_L_VAR: case KN_L_SPECIAL: case KN_L_GROUPREDUCE: case KN_L_BARRIER: case KN_L_LOCAL:
      if (gpu) {
        v = kn_amdgpu_op(e, i);
        break;
      }
      if (o->op == KN_L_VAR) {
        LLVMValueRef ix = LLVMConstInt(e->i64, (unsigned long long)o->arg, 0);
        v = LLVMBuildLoad2(e->b, e->i64, LLVMBuildGEP2(e->b, e->i64, vars, &ix, 1, ""), "var");
        break;
      }
      if (o->op == KN_L_SPECIAL && o->arg == KN_SP_FIRST0 && gl < 0) { /* the call's first item */
        v = start;
        break;
      }
      if (o->op != KN_L_SPECIAL || o->arg != KN_SP_GLOBAL0 || gl >= 0)
        return kn_efail(e, "the CPU runs only global id 0 (op %d, %s)", i, kn_lop_name(o->op));
      gl = nl;
      open_loop(e, &loops[nl++], start, end, 0);
      gexit = loops[gl].exit;
      v = loops[gl].phi;
      break;
    case KN_L_RANGE:
      if (nl == KN_MAXPIECES + 2) return kn_efail(e, "loops nested too deep");
      open_loop(e, &loops[nl++], LLVMConstInt(e->i64, 0, 0), NULL, o->size);
      if (o->nsrc == 1) loops[nl - 1].end = get(e, o->src[0], 1); /* symbolic extent (>= 1: a do-while is fine) */
      v = loops[nl - 1].phi;
      break;
    case KN_L_ENDRANGE:
      if (nl == 0 || nl - 1 == gl) return kn_efail(e, "ENDRANGE without RANGE (op %d)", i);
      close_loop(e, &loops[--nl]);
      break;
    case KN_L_ACC: v = new_acc(e, o); break;
    case KN_L_ACCSET: LLVMBuildStore(e->b, get(e, o->src[1], p->ops[o->src[0]].vec), e->vals[o->src[0]]); break;
    case KN_L_LOAD: case KN_L_QLOAD: v = emit_load(e, o); break;
    case KN_L_QDOT: v = emit_qdot(e, o); break;
    case KN_L_SCRATCH: v = emit_scratch(e, o); break;
    case KN_L_QX: emit_qx(e, o); break;
    case KN_L_QDOTR: v = emit_qdotr(e, o); break;
    case KN_L_STORE: emit_store(e, o); break;
    case KN_L_PREFETCH: if (!gpu) emit_prefetch(e, o); break;
    case KN_L_ALU: v = emit_alu(e, o); break;
    case KN_L_CAST: v = emit_cast(e, get(e, o->src[0], o->vec), p->ops[o->src[0]].dtype, o->dtype, o->vec); break;
    case KN_L_BITCAST: v = emit_bitcast(e, get(e, o->src[0], o->vec), p->ops[o->src[0]].dtype, o->dtype, o->vec); break;
    case KN_L_VECTORIZE:
      v = LLVMGetPoison(kn_e_vec(kn_e_regtype(e, o->dtype), o->vec));
      for (int l = 0; l < o->nsrc; l++) v = LLVMBuildInsertElement(e->b, v, get(e, o->src[l], 1), LLVMConstInt(e->i32, (unsigned)l, 0), "");
      break;
    case KN_L_GEP: v = LLVMBuildExtractElement(e->b, get(e, o->src[0], p->ops[o->src[0]].vec), LLVMConstInt(e->i32, (unsigned long long)o->arg, 0), ""); break;
    case KN_L_HREDUCE: v = emit_hreduce(e, o); break;
    default: return kn_efail(e, "loop IR op %s has no CPU lowering", kn_lop_name(o->op));
    }
    e->vals[i] = v;
  }
  if (e->failed) return -1;
  if (nl != (gl >= 0 ? gl + 1 : 0)) return kn_efail(e, "%d loops left open", nl);
  if (gpu && e->exit_bb) {
    LLVMBuildBr(e->b, e->exit_bb);
    LLVMMoveBasicBlockAfter(e->exit_bb, LLVMGetLastBasicBlock(e->fn));
    LLVMPositionBuilderAtEnd(e->b, e->exit_bb);
  }
  if (gl >= 0) {
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
    loop *l = &loops[gl];
    LLVMValueRef next = LLVMBuildAdd(e->b, l->phi, LLVMConstInt(e->i64, 1, 0), "");
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, next, end, ""), l->header, gexit);
    LLVMAddIncoming(l->phi, &next, &cur, 1);
    LLVMMoveBasicBlockAfter(gexit, LLVMGetLastBasicBlock(e->fn));
    LLVMPositionBuilderAtEnd(e->b, gexit);
  }
  LLVMBuildRetVoid(e->b);
  return 0;
}

static void add_attr(kn_emit *e, LLVMValueRef fn, unsigned idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(e->ctx, kind, 0));
}

/* The body takes each buffer as its own noalias pointer; the entry point unpacks the bufs array and calls it. */
static LLVMValueRef build_body(kn_emit *e, const char *entry) {
  int nb = e->p->k->nbufs;
  LLVMTypeRef args[KN_MAXBUFS + 3];
  for (int i = 0; i < nb; i++) args[i] = e->ptr;
  args[nb] = e->ptr, args[nb + 1] = e->i64, args[nb + 2] = e->i64;
  char name[128];
  snprintf(name, sizeof name, "%s.body", entry);
  LLVMValueRef fn = LLVMAddFunction(e->mod, name, LLVMFunctionType(e->vd, args, (unsigned)nb + 3, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  for (int i = 0; i < nb; i++) add_attr(e, fn, (unsigned)i + 1, "noalias");
  add_attr(e, fn, LLVMAttributeFunctionIndex, "nounwind");
  e->fn = fn;
  e->entry = LLVMAppendBasicBlockInContext(e->ctx, fn, "entry");
  LLVMPositionBuilderAtEnd(e->b, e->entry);
  LLVMValueRef params[KN_MAXBUFS];
  for (int i = 0; i < nb; i++) params[i] = LLVMGetParam(fn, (unsigned)i);
  if (kn_emit_ops(e, params, LLVMGetParam(fn, (unsigned)nb), LLVMGetParam(fn, (unsigned)nb + 1), LLVMGetParam(fn, (unsigned)nb + 2)))
    return NULL;
  return fn;
}

static void build_entry(kn_emit *e, LLVMValueRef body, const char *entry) {
  int nb = e->p->k->nbufs;
  LLVMTypeRef args[4] = {e->ptr, e->ptr, e->i64, e->i64};
  LLVMValueRef fn = LLVMAddFunction(e->mod, entry, LLVMFunctionType(e->vd, args, 4, 0));
  add_attr(e, fn, LLVMAttributeFunctionIndex, "nounwind");
  LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->ctx, fn, "entry"));
  LLVMValueRef cargs[KN_MAXBUFS + 3];
  for (int i = 0; i < nb; i++) {
    LLVMValueRef ix = LLVMConstInt(e->i64, (unsigned long long)i, 0);
    cargs[i] = LLVMBuildLoad2(e->b, e->ptr, LLVMBuildGEP2(e->b, e->ptr, LLVMGetParam(fn, 0), &ix, 1, ""), "");
  }
  cargs[nb] = LLVMGetParam(fn, 1), cargs[nb + 1] = LLVMGetParam(fn, 2), cargs[nb + 2] = LLVMGetParam(fn, 3);
  LLVMBuildCall2(e->b, LLVMGlobalGetValueType(body), body, cargs, (unsigned)nb + 3, "");
  LLVMBuildRetVoid(e->b);
}

void kn_emit_init(kn_emit *e, LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry, char *err,
                  size_t errlen) {
  memset(e, 0, sizeof *e);
  e->ctx = ctx, e->p = p, e->t = t, e->err = err, e->errlen = errlen;
  e->mod = LLVMModuleCreateWithNameInContext(entry, ctx);
  e->b = LLVMCreateBuilderInContext(ctx);
  e->i1 = LLVMInt1TypeInContext(ctx), e->i8 = LLVMInt8TypeInContext(ctx), e->i16 = LLVMInt16TypeInContext(ctx);
  e->i32 = LLVMInt32TypeInContext(ctx), e->i64 = LLVMInt64TypeInContext(ctx);
  e->f16 = LLVMHalfTypeInContext(ctx), e->f32 = LLVMFloatTypeInContext(ctx);
  e->ptr = LLVMPointerTypeInContext(ctx, 0), e->vd = LLVMVoidTypeInContext(ctx);
  e->vals = calloc((size_t)(p->n ? p->n : 1), sizeof *e->vals);
  if (!e->vals) kn_efail(e, "out of memory");
}

void kn_emit_done(kn_emit *e) {
  free(e->vals);
  e->vals = NULL;
  LLVMDisposeBuilder(e->b);
}

LLVMModuleRef kn_emit_module(LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry, char *err,
                             size_t errlen) {
  kn_emit e;
  kn_emit_init(&e, ctx, p, t, entry, err, errlen);
  LLVMValueRef body = NULL;
  if (e.failed) {
  } else if (t->kind != KN_TARGET_CPU) kn_efail(&e, "kn_emit_module emits CPU kernels (GPUs: kn_amdgpu_module)");
  else if ((body = build_body(&e, entry))) build_entry(&e, body, entry);
  kn_emit_done(&e);
  if (e.failed || !body) {
    if (!e.failed) kn_efail(&e, "emission failed");
    LLVMDisposeModule(e.mod);
    return NULL;
  }
  return e.mod;
}
