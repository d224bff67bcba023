/* Loop IR -> an AMDGPU kernel (amdgcn-amd-amdhsa). The body is the same op-by-op emission as the CPU's
 * (llvm_emit.c); this file supplies what differs on a GPU: the amdgpu_kernel signature (buffers as global pointers,
 * then symbolic variables as i64 by value: the kernarg layout the device packs), the work-item index from the
 * workgroup and work-item ids with a guard for the partial last workgroup, and GROUPREDUCE: a butterfly across the
 * lanes of a wave in registers (DPP inside a row of 16 lanes, permlanex16 or ds_swizzle across the two rows, and
 * ds_bpermute only across the halves of a wave64) and, when a group spans several waves, one LDS slot per wave
 * behind a barrier. A group smaller than a wave shares the wave with the next row blocks (several outputs per
 * wave, each reduced inside its own aligned lanes). */
#include <llvm-c/IRReader.h>
#include <llvm-c/Linker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "llvm_target.h"

#define WG_ELEMENTWISE 64 /* work items per workgroup when each work item owns its outputs */

typedef struct {
  LLVMValueRef wg, tid; /* i32 workgroup id x, work-item id x */
  int64_t wgsize, items; /* work items per workgroup; flat work items of the GLOBAL pieces */
  int64_t group;         /* GROUP piece size: `rows` flat indices per workgroup, `group` work items each; 0: none */
  int64_t rows;          /* row blocks per workgroup (a group smaller than a wave: wave / group of them) */
  int wave;              /* 32 (gfx10/11) or 64 (gfx9) */
  LLVMValueRef barrier;  /* kn.wgbarrier helper */
  int nlds;
} gpu_state;

LLVMValueRef kn_amdgpu_intr(kn_emit *e, const char *name, LLVMValueRef *args, int nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  if (!id) {
    kn_efail(e, "LLVM has no intrinsic %s", name);
    return LLVMGetPoison(e->i32);
  }
  /* an overloaded intrinsic (update.dpp, permlanex16) is taken at i32, the word cross-lane moves carry */
  LLVMTypeRef ov = e->i32;
  size_t n = LLVMIntrinsicIsOverloaded(id) ? 1 : 0;
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, &ov, n);
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, &ov, n), fn, args, (unsigned)nargs, "");
}

static int wave_size(const kn_target *t) { return strncmp(t->cpu, "gfx9", 4) ? 32 : 64; }

/* A workgroup barrier that also orders LDS: fence syncscope("workgroup") release, s_barrier, fence acquire. The
 * C API cannot name a sync scope, so the helper is parsed from IR text and linked in (always inlined). */
LLVMValueRef kn_amdgpu_barrier_fn(kn_emit *e) {
  char *dl = (char *)LLVMGetDataLayoutStr(e->mod), ir[2048];
  snprintf(ir, sizeof ir,
           "target datalayout = \"%s\"\ntarget triple = \"%s\"\n"
           "define void @kn.wgbarrier() #0 {\n  fence syncscope(\"workgroup\") release\n"
           "  call void @llvm.amdgcn.s.barrier()\n  fence syncscope(\"workgroup\") acquire\n  ret void\n}\n"
           "declare void @llvm.amdgcn.s.barrier()\nattributes #0 = { alwaysinline nounwind }\n",
           dl, LLVMGetTarget(e->mod));
  LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, strlen(ir), "kn.wgbarrier");
  LLVMModuleRef m = NULL;
  char *msg = NULL;
  if (LLVMParseIRInContext(e->ctx, mb, &m, &msg)) { /* takes mb */
    kn_efail(e, "barrier helper: %s", msg ? msg : "parse error");
    LLVMDisposeMessage(msg);
    return NULL;
  }
  if (LLVMLinkModules2(e->mod, m)) { /* takes m */
    kn_efail(e, "barrier helper: cannot link");
    return NULL;
  }
  LLVMValueRef fn = LLVMGetNamedFunction(e->mod, "kn.wgbarrier");
  if (fn) LLVMSetLinkage(fn, LLVMInternalLinkage);
  return fn;
}

/* ---- cross-lane reduction ---- */

static LLVMValueRef ci32(kn_emit *e, uint32_t v) { return LLVMConstInt(e->i32, v, 0); }

/* One i32 word from the partner lane of step m of a butterfly (m a power of two below the group). The steps run
 * in order 1, 2, 4, ..., so before step m the 2m-lane block around each lane holds two uniform halves of m lanes,
 * and any pairing across those halves reduces as lane ^ m would: DPP quad_perm [1,0,3,2] and [2,3,0,1] for 1 and 2,
 * row_half_mirror (lane 7 - i of its 8) and row_mirror (15 - i of its 16) for 4 and 8 (every arch: no row_xmask on
 * gfx9), then lane i of the other row of 16 (v_permlanex16 on gfx10+, ds_swizzle xor 16 on gfx9), and only for 32
 * (wave64) a ds_bpermute. DPP operands fold into the VALU op that consumes them (v_add_f32_dpp). */
static LLVMValueRef xchg_word(kn_emit *e, gpu_state *g, LLVMValueRef w, int m) {
  if (m <= 8) {
    static const uint32_t ctl[9] = {[1] = 0xB1, [2] = 0x4E, [4] = 0x141, [8] = 0x140};
    LLVMValueRef a[6] = {LLVMGetPoison(e->i32), w, ci32(e, ctl[m]), ci32(e, 0xF), ci32(e, 0xF), LLVMConstInt(e->i1, 1, 0)};
    return kn_amdgpu_intr(e, "llvm.amdgcn.update.dpp", a, 6);
  }
  if (m == 16 && g->wave == 32) {
    LLVMValueRef a[6] = {LLVMGetPoison(e->i32), w, ci32(e, 0x76543210), ci32(e, 0xFEDCBA98), LLVMConstInt(e->i1, 0, 0),
                         LLVMConstInt(e->i1, 0, 0)};
    return kn_amdgpu_intr(e, "llvm.amdgcn.permlanex16", a, 6);
  }
  if (m == 16) /* bit mode: and 0x1f, or 0, xor 0x10 inside each 32 lanes */
    return kn_amdgpu_intr(e, "llvm.amdgcn.ds.swizzle", (LLVMValueRef[]){w, ci32(e, 0x10u << 10 | 0x1F)}, 2);
  LLVMValueRef lane = LLVMBuildAnd(e->b, g->tid, ci32(e, (unsigned)g->wave - 1), "");
  LLVMValueRef addr = LLVMBuildShl(e->b, LLVMBuildXor(e->b, lane, ci32(e, (unsigned)m), ""), ci32(e, 2), "");
  return kn_amdgpu_intr(e, "llvm.amdgcn.ds.bpermute", (LLVMValueRef[]){addr, w}, 2);
}

/* x from the partner lane of butterfly step m. Values travel as i32 words: floats bitcast, narrow ints widened, i64
 * in two halves. */
static LLVMValueRef shfl_xor(kn_emit *e, gpu_state *g, LLVMValueRef x, int m) {
  LLVMTypeRef t = LLVMTypeOf(x);
  if (t == e->f32) return LLVMBuildBitCast(e->b, xchg_word(e, g, LLVMBuildBitCast(e->b, x, e->i32, ""), m), e->f32, "");
  if (t == e->i64) {
    LLVMValueRef lo = LLVMBuildTrunc(e->b, x, e->i32, "");
    LLVMValueRef hi = LLVMBuildTrunc(e->b, LLVMBuildLShr(e->b, x, LLVMConstInt(e->i64, 32, 0), ""), e->i32, "");
    lo = xchg_word(e, g, lo, m), hi = xchg_word(e, g, hi, m);
    LLVMValueRef r = LLVMBuildShl(e->b, LLVMBuildZExt(e->b, hi, e->i64, ""), LLVMConstInt(e->i64, 32, 0), "");
    return LLVMBuildOr(e->b, r, LLVMBuildZExt(e->b, lo, e->i64, ""), "");
  }
  if (t == e->i32) return xchg_word(e, g, x, m);
  return LLVMBuildTrunc(e->b, xchg_word(e, g, LLVMBuildZExt(e->b, x, e->i32, ""), m), t, "");
}

/* x, held in a VGPR at this point of the entry path: an empty asm with side effects that uses and redefines it.
 * The butterfly's cross-lane moves read other lanes' registers, so they must run with every lane of the group
 * active; LLVM 19 sinks v_permlanex16 (and the adds feeding it) into the leader's store branch, where its
 * partner lanes are inactive and it reads stale registers. Nothing that x depends on can move below the asm. */
static LLVMValueRef pin(kn_emit *e, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x), w = t == e->f32 || t == e->i64 || t == e->i32 ? t : e->i32;
  LLVMValueRef v = w == t ? x : LLVMBuildZExt(e->b, x, e->i32, "");
  LLVMTypeRef ft = LLVMFunctionType(w, &w, 1, 0);
  LLVMValueRef asmv = LLVMGetInlineAsm(ft, "; kn.groupreduce", 16, "=v,0", 4, 1, 0, LLVMInlineAsmDialectATT, 0);
  v = LLVMBuildCall2(e->b, ft, asmv, &v, 1, "");
  return w == t ? v : LLVMBuildTrunc(e->b, v, t, "");
}

LLVMValueRef kn_amdgpu_lane_sum(kn_emit *e, LLVMValueRef x, LLVMValueRef tid, int width, int wave) {
  gpu_state g = {.tid = tid, .group = width, .wave = wave};
  for (int m = 1; m < width; m *= 2) x = kn_e_fadd(e, x, shfl_xor(e, &g, x, m));
  return width > 1 ? pin(e, x) : x;
}

static LLVMValueRef lds_array(kn_emit *e, gpu_state *g, LLVMTypeRef t, int n) {
  char name[32];
  snprintf(name, sizeof name, "kn.lds%d", g->nlds++);
  LLVMValueRef gv = LLVMAddGlobalInAddressSpace(e->mod, LLVMArrayType(t, (unsigned)n), name, 3);
  LLVMSetInitializer(gv, LLVMGetPoison(LLVMArrayType(t, (unsigned)n))); /* LDS cannot be initialised */
  LLVMSetLinkage(gv, LLVMInternalLinkage);
  LLVMSetAlignment(gv, 8);
  return gv;
}

/* One scalar reduced over the group; every work item gets the result. All work items of the group are active
 * here (group kernels have no partial workgroups and no divergent code around reductions). */
static LLVMValueRef group_reduce_scalar(kn_emit *e, gpu_state *g, LLVMValueRef x, kn_kop_type rop, kn_dtype dt) {
  int64_t inwave = g->group < g->wave ? g->group : g->wave;
  for (int m = 1; m < inwave; m *= 2) x = kn_e_binary(e, rop, dt, x, shfl_xor(e, g, x, m));
  if (inwave > 1) x = pin(e, x);
  if (g->group <= g->wave) return x;
  int nw = (int)(g->group / g->wave);
  LLVMTypeRef t = LLVMTypeOf(x), mt = t == e->i1 ? e->i8 : t;
  LLVMValueRef lds = lds_array(e, g, mt, nw);
  LLVMTypeRef at = LLVMArrayType(mt, (unsigned)nw);
  LLVMValueRef wave = LLVMBuildUDiv(e->b, g->tid, LLVMConstInt(e->i32, (unsigned)g->wave, 0), "");
  LLVMValueRef first = LLVMBuildICmp(e->b, LLVMIntEQ, LLVMBuildURem(e->b, g->tid, LLVMConstInt(e->i32, (unsigned)g->wave, 0), ""),
                                     LLVMConstInt(e->i32, 0, 0), "");
  LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "lds.st");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "lds.join");
  LLVMBuildCondBr(e->b, first, st, join);
  LLVMPositionBuilderAtEnd(e->b, st);
  LLVMValueRef slot = LLVMBuildGEP2(e->b, at, lds, (LLVMValueRef[]){LLVMConstInt(e->i32, 0, 0), wave}, 2, "");
  LLVMBuildStore(e->b, t == e->i1 ? LLVMBuildZExt(e->b, x, e->i8, "") : x, slot);
  LLVMBuildBr(e->b, join);
  LLVMPositionBuilderAtEnd(e->b, join);
  LLVMBuildCall2(e->b, LLVMGlobalGetValueType(g->barrier), g->barrier, NULL, 0, "");
  LLVMValueRef r = NULL;
  for (int w = 0; w < nw; w++) {
    LLVMValueRef p = LLVMBuildGEP2(e->b, at, lds, (LLVMValueRef[]){LLVMConstInt(e->i32, 0, 0), LLVMConstInt(e->i32, (unsigned)w, 0)}, 2, "");
    LLVMValueRef v = LLVMBuildLoad2(e->b, mt, p, "");
    if (t == e->i1) v = LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstInt(e->i8, 0, 0), "");
    r = r ? kn_e_binary(e, rop, dt, r, v) : v;
  }
  return r;
}

static LLVMValueRef group_reduce(kn_emit *e, gpu_state *g, const kn_lop *o) {
  if (g->group < 2 || (g->group & (g->group - 1)))
    return kn_efail(e, "GROUPREDUCE over %lld work items (a power of two >= 2 is required)", (long long)g->group), NULL;
  LLVMValueRef v = kn_e_get(e, o->src[0], o->vec);
  if (o->vec == 1) return group_reduce_scalar(e, g, v, o->alu, o->dtype);
  LLVMValueRef r = LLVMGetPoison(LLVMTypeOf(v));
  for (int l = 0; l < o->vec; l++) {
    LLVMValueRef ix = LLVMConstInt(e->i32, (unsigned)l, 0);
    LLVMValueRef s = group_reduce_scalar(e, g, LLVMBuildExtractElement(e->b, v, ix, ""), o->alu, o->dtype);
    r = LLVMBuildInsertElement(e->b, r, s, ix, "");
  }
  return r;
}

/* ---- special values ---- */

static LLVMValueRef global_index(kn_emit *e, gpu_state *g) {
  LLVMValueRef wg = LLVMBuildZExt(e->b, g->wg, e->i64, ""), tid = LLVMBuildZExt(e->b, g->tid, e->i64, "");
  if (g->group && g->rows > 1) { /* the workgroup's row block tid / group */
    LLVMValueRef r = LLVMBuildLShr(e->b, tid, LLVMConstInt(e->i64, (unsigned)__builtin_ctzll((unsigned long long)g->group), 0), "");
    LLVMValueRef gid = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, wg, LLVMConstInt(e->i64, (unsigned long long)g->rows, 0), ""), r, "gid");
    LLVMSetNUW(gid, 1), LLVMSetNSW(gid, 1);
    return gid;
  }
  if (g->group) return wg;
  LLVMValueRef gid = LLVMBuildAdd(e->b, LLVMBuildMul(e->b, wg, LLVMConstInt(e->i64, (unsigned long long)g->wgsize, 0), ""), tid, "gid");
  LLVMSetNUW(gid, 1), LLVMSetNSW(gid, 1);
  if (g->items % g->wgsize == 0) return gid;
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "body");
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntULT, gid, LLVMConstInt(e->i64, (unsigned long long)g->items, 0), ""), body, e->exit_bb);
  LLVMPositionBuilderAtEnd(e->b, body);
  return gid;
}

/* The work item's index in its group (its lanes within the wave when a wave holds several groups). */
static LLVMValueRef local_id(kn_emit *e, gpu_state *g) {
  return g->rows > 1 ? LLVMBuildAnd(e->b, g->tid, ci32(e, (unsigned)g->group - 1), "") : g->tid;
}

LLVMValueRef kn_amdgpu_op(kn_emit *e, int i) {
  gpu_state *g = e->gpu;
  const kn_lop *o = &e->p->ops[i];
  switch (o->op) {
  case KN_L_VAR:
    if (o->arg < 0 || o->arg >= e->p->k->nvars) return kn_efail(e, "VAR %lld out of range", (long long)o->arg), NULL;
    return e->varvals[o->arg];
  case KN_L_SPECIAL:
    if (o->arg == KN_SP_GLOBAL0) return global_index(e, g);
    if (o->arg == KN_SP_LOCAL0) return LLVMBuildZExt(e->b, local_id(e, g), e->i64, "lid");
    return kn_efail(e, "special index %lld is not lowered for AMDGPU", (long long)o->arg), NULL;
  case KN_L_GROUPREDUCE: return group_reduce(e, g, o);
  default: return kn_efail(e, "loop IR op %s has no AMDGPU lowering", kn_lop_name(o->op)), NULL;
  }
}

/* ---- the kernel function ---- */

static void str_attr(kn_emit *e, LLVMValueRef fn, const char *k, const char *v) {
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(e->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

/* Everything the kernel does not use, stated so the code object asks for no hidden arguments and no dispatch
 * packet pointer (the optimizer infers the same; saying it keeps the ABI independent of the pipeline). */
static const char *const no_attrs[] = {
    "amdgpu-no-dispatch-ptr", "amdgpu-no-queue-ptr", "amdgpu-no-dispatch-id", "amdgpu-no-implicitarg-ptr",
    "amdgpu-no-hostcall-ptr", "amdgpu-no-heap-ptr", "amdgpu-no-multigrid-sync-arg", "amdgpu-no-default-queue",
    "amdgpu-no-completion-action", "amdgpu-no-lds-kernel-id", "amdgpu-no-workgroup-id-y", "amdgpu-no-workgroup-id-z",
    "amdgpu-no-workitem-id-y", "amdgpu-no-workitem-id-z",
};

LLVMValueRef kn_amdgpu_kernel_fn(kn_emit *e, const char *entry, int64_t wgsize) {
  const kn_kernel *k = e->p->k;
  LLVMTypeRef gptr = LLVMPointerTypeInContext(e->ctx, 1), args[KN_MAXBUFS + KN_MAXVARS];
  for (int i = 0; i < k->nbufs; i++) args[i] = gptr;
  for (int i = 0; i < k->nvars; i++) args[k->nbufs + i] = e->i64;
  LLVMValueRef fn = LLVMAddFunction(e->mod, entry, LLVMFunctionType(e->vd, args, (unsigned)(k->nbufs + k->nvars), 0));
  LLVMSetFunctionCallConv(fn, LLVMAMDGPUKERNELCallConv);
  unsigned na = LLVMGetEnumAttributeKindForName("noalias", 7), nu = LLVMGetEnumAttributeKindForName("nounwind", 8);
  for (int i = 0; i < k->nbufs; i++) LLVMAddAttributeAtIndex(fn, (unsigned)i + 1, LLVMCreateEnumAttribute(e->ctx, na, 0));
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(e->ctx, nu, 0));
  char ws[32];
  snprintf(ws, sizeof ws, "1,%lld", (long long)wgsize);
  str_attr(e, fn, "amdgpu-flat-work-group-size", ws);
  str_attr(e, fn, "uniform-work-group-size", "true");
  for (size_t i = 0; i < sizeof no_attrs / sizeof *no_attrs; i++) str_attr(e, fn, no_attrs[i], "");
  return fn;
}

/* Launch geometry: for group reductions one workgroup per flat index, or, when the group is smaller than a wave,
 * wave / group of them (the most that divide the flat indices: no partial workgroup); else WG_ELEMENTWISE work
 * items each. */
static void geometry(const kn_lprog *p, gpu_state *g, int64_t global[3], int64_t local[3]) {
  g->items = p->global[0];
  g->group = 0;
  g->rows = 1;
  for (int i = 0; i < p->n; i++)
    if (p->ops[i].op == KN_L_SPECIAL && p->ops[i].arg == KN_SP_LOCAL0) g->group = p->ops[i].size;
  if (g->group && (g->group & (g->group - 1)) == 0)
    while (g->group * g->rows * 2 <= g->wave && g->items % (g->rows * 2) == 0) g->rows *= 2;
  if (g->group) g->wgsize = g->group * g->rows;
  else g->wgsize = g->items < WG_ELEMENTWISE ? g->items : WG_ELEMENTWISE;
  global[0] = g->group ? g->items / g->rows : (g->items + g->wgsize - 1) / g->wgsize;
  local[0] = g->wgsize;
  global[1] = global[2] = local[1] = local[2] = 1;
}

LLVMModuleRef kn_amdgpu_module(LLVMContextRef ctx, const kn_lprog *p, const kn_target *t, const char *entry,
                               int64_t global[3], int64_t local[3], char *err, size_t errlen) {
  kn_emit e;
  kn_emit_init(&e, ctx, p, t, entry, err, errlen);
  gpu_state g = {.wave = wave_size(t)};
  e.gpu = &g;
  geometry(p, &g, global, local);
  LLVMValueRef varvals[KN_MAXVARS];
  e.varvals = varvals;
  if (!e.failed && kn_llvm_set_target(e.mod, t, err, errlen)) e.failed = true;
  if (!e.failed) {
    e.fn = kn_amdgpu_kernel_fn(&e, entry, g.wgsize);
    e.entry = LLVMAppendBasicBlockInContext(ctx, e.fn, "entry");
    e.exit_bb = LLVMAppendBasicBlockInContext(ctx, e.fn, "exit");
    LLVMPositionBuilderAtEnd(e.b, e.entry);
    g.wg = kn_amdgpu_intr(&e, "llvm.amdgcn.workgroup.id.x", NULL, 0);
    g.tid = kn_amdgpu_intr(&e, "llvm.amdgcn.workitem.id.x", NULL, 0);
    if (g.group > g.wave) g.barrier = kn_amdgpu_barrier_fn(&e);
    if (g.group) e.store_gate = LLVMBuildICmp(e.b, LLVMIntEQ, local_id(&e, &g), LLVMConstInt(e.i32, 0, 0), "leader");
    LLVMValueRef params[KN_MAXBUFS];
    for (int i = 0; i < p->k->nbufs; i++) params[i] = LLVMGetParam(e.fn, (unsigned)i);
    for (int i = 0; i < p->k->nvars; i++) varvals[i] = LLVMGetParam(e.fn, (unsigned)(p->k->nbufs + i));
    if (!e.failed) kn_emit_ops(&e, params, NULL, NULL, NULL);
  }
  kn_emit_done(&e);
  if (e.failed) {
    LLVMDisposeModule(e.mod);
    return NULL;
  }
  return e.mod;
}
