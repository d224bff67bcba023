/* Private to the RDNA3 interpreter (rdna3*.c): a wave's state, the compute unit a dispatch runs on, operand access
 * in the gfx11 operand space, and the per-encoding executors. One instruction = one call of an executor, which
 * advances (or branches) the wave's pc and returns 0, or -1 with the dispatch's error set. */
#ifndef KN_AMD_RDNA3_WAVE_H
#define KN_AMD_RDNA3_WAVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rdna3.h"

enum { KN_LANES = 32, KN_NVGPR = 256, KN_FETCH_SLOTS = 1 << 16, KN_CHUNK = 256 };
/* gfx11 scalar operand numbers */
enum { OP_VCC_LO = 106, OP_VCC_HI = 107, OP_NULL = 124, OP_M0 = 125, OP_EXEC_LO = 126, OP_EXEC_HI = 127,
       OP_DPP8 = 233, OP_DPP8FI = 234, OP_SHARED_BASE = 235, OP_SHARED_LIMIT = 236, OP_PRIVATE_BASE = 237,
       OP_PRIVATE_LIMIT = 238, OP_POPS_EXITING = 239, OP_DPP16 = 250, OP_VCCZ = 251, OP_EXECZ = 252, OP_SCC = 253,
       OP_LITERAL = 255, OP_VGPR0 = 256 };
enum { WAVE_RUN, WAVE_BARRIER, WAVE_DONE };

typedef struct {
  uint32_t s[128]; /* indexed by operand number: s0..s105, vcc, m0, exec (124 null reads 0) */
  uint32_t v[KN_NVGPR][KN_LANES];
  uint64_t pc;
  int scc, state;
  uint32_t id; /* wave index in its workgroup */
} kn_wave;

typedef struct {
  const kn_rdna3_dispatch *d;
  const kn_rdna3_mem *mem;
  kn_rdna3_stats *st;
  uint8_t *lds;
  uint32_t lds_size;
  uint32_t wg_id[3];
  uint64_t map_lo, map_n; /* the mapping the last access hit (kn_rdna3_mem.region), at map_host */
  uint8_t *map_host;
  struct kn_map { uint64_t lo, n; uint8_t *host; } alt[4]; /* mappings hit before it (the fast path's, untracked) */
  unsigned alt_next;
  /* read tracking (d->track_reads): per mapping read, a bitmap of the bytes read and the counts */
  struct kn_rdbuf { uint64_t lo, n, distinct, fetched; uint8_t *seen; } rd[16];
  int nrd, map_rd;        /* map_rd: the tracker of the cached mapping, -1 for none */
  uint64_t seq;           /* workgroups run: which reads belong to one workgroup */
  uint64_t pc;            /* the instruction reading */
  struct kn_fetch { uint64_t va, pc, seq; uint32_t n, wave; } *fetch; /* this workgroup's reads by wave, hashed */
  uint64_t entry; /* the kernel's first instruction: messages give pcs relative to it */
  char *err;
  size_t errlen;
  /* the instruction being executed */
  const uint32_t *w; /* its words (at least 4 readable: literal/DPP included) */
  unsigned len;      /* bytes */
  const char *fam;   /* encoding family name, as rdna3_ops.c knows it */
  unsigned op;
} kn_cu;

static inline uint32_t exec_mask(const kn_wave *w) { return w->s[OP_EXEC_LO]; }
static inline uint32_t vcc_mask(const kn_wave *w) { return w->s[OP_VCC_LO]; }
static inline uint32_t bits(uint32_t x, int hi, int lo) { return (x >> lo) & ((hi - lo == 31) ? ~0u : ((1u << (hi - lo + 1)) - 1)); }
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint64_t d2u(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }
static inline double u2d(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }
float kn_h2f(uint16_t h);
uint16_t kn_f2h(float f);

/* DPP (the per-lane executors and the fast paths share these): the lane src0 reads for lane l under DPP16 or DPP8
 * (dpp 16 or 8, dppw its dword, fi: fetch inactive lanes, DPP8FI's or DPP16's bit 18), -1 when that lane is out of
 * its row or disabled, -2 for a reserved DPP16 control. */
static inline int kn_dpp_lane(int dpp, uint32_t dppw, bool fi, uint32_t exec, int l) {
  int src;
  if (dpp == 8) {
    src = (l & ~7) | (int)((dppw >> (8 + 3 * (l & 7))) & 7);
  } else {
    uint32_t ctl = bits(dppw, 16, 8);
    int row = l & ~15, i = l & 15;
    if (ctl <= 0xff) src = (l & ~3) | (int)((ctl >> (2 * (l & 3))) & 3);
    else if (ctl >= 0x101 && ctl <= 0x10f) src = i + (int)(ctl & 15) < 16 ? l + (int)(ctl & 15) : -1;
    else if (ctl >= 0x111 && ctl <= 0x11f) src = i - (int)(ctl & 15) >= 0 ? l - (int)(ctl & 15) : -1;
    else if (ctl >= 0x121 && ctl <= 0x12f) src = row + ((i - (int)(ctl & 15)) & 15);
    else if (ctl == 0x140) src = row + 15 - i;
    else if (ctl == 0x141) src = row + (i & 8) + 7 - (i & 7);
    else if (ctl >= 0x150 && ctl <= 0x15f) src = row + (int)(ctl & 15);
    else if (ctl >= 0x160 && ctl <= 0x16f) src = row + (i ^ (int)(ctl & 15));
    else return -2; /* reserved control */
  }
  if (src >= 0 && !(exec >> src & 1) && !fi) src = -1;
  return src;
}

/* DPP16 row/bank masks: may lane l write at all? (DPP8 has none) */
static inline bool kn_dpp_writes(int dpp, uint32_t dppw, int l) {
  if (dpp != 16) return true;
  return (bits(dppw, 31, 28) >> (l >> 4) & 1) && (bits(dppw, 27, 24) >> ((l & 15) >> 2) & 1);
}

/* Operand types for inline constants: the float constants (0.5, 1.0, ...) are encoded per operand width. */
enum { T_B32, T_F16, T_F32, T_F64, T_B64 };

/* The literal of the current instruction (the dword after the encoding's fixed words). */
uint32_t kn_literal(const kn_cu *cu);
/* A scalar operand (SGPR, special register, inline constant, literal) of type t. */
uint32_t kn_sread(const kn_cu *cu, const kn_wave *w, unsigned src, int t);
uint64_t kn_sread64(const kn_cu *cu, const kn_wave *w, unsigned src, int t);
/* Writes a scalar destination (null, exec, vcc, m0 or an SGPR), -1 with an error for read-only operands. */
int kn_swrite(kn_cu *cu, kn_wave *w, unsigned dst, uint32_t v);
int kn_swrite64(kn_cu *cu, kn_wave *w, unsigned dst, uint64_t v);

/* Error helpers: the message names the kernel, the pc, the encoding family and the mnemonic. */
int kn_cu_fail(kn_cu *cu, const kn_wave *w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kn_cu_unimplemented(kn_cu *cu, const kn_wave *w);

/* Memory: a host pointer for n bytes at va, or NULL with the dispatch's error set (fault naming the address). */
void *kn_cu_mem(kn_cu *cu, const kn_wave *w, uint64_t va, size_t n, bool write);

/* Encoding families, in the order of rdna3_prog.c's table. */
enum { KN_FAM_SOP2, KN_FAM_SOPK, KN_FAM_SOP1, KN_FAM_SOPC, KN_FAM_SOPP, KN_FAM_SMEM, KN_FAM_VOP1, KN_FAM_VOP2,
       KN_FAM_VOPC, KN_FAM_VOP3, KN_FAM_VOP3P, KN_FAM_VOPD, KN_FAM_DS, KN_FAM_GLOBAL, KN_FAM_FLAT, KN_FAM_SCRATCH,
       KN_FAM_MUBUF, KN_NFAM };
/* the family index of a decoder family name, -1 when none */
int kn_rdna3_family(const char *name);

/* One vector ALU operation in the fast path's form (rdna3_fast.c): operands resolved at decode time. */
typedef struct {
  uint16_t op;         /* VOP3 opcode (v_fmaak/v_fmamk become v_fma with the constant in place) */
  uint8_t vdst, sdst;  /* sdst: the scalar destination of a compare mask or a carry-out */
  uint8_t kind[3];     /* none, VGPR, SGPR, constant */
  uint8_t idx[3];      /* register number */
  uint32_t val[3];     /* constant value */
  uint8_t cmpx, neg64; /* compare writes EXEC; which 64-bit constant operands are negative (sign-extended) */
  uint8_t fneg, fabs;  /* the float input modifiers, a bit per source (only where the opcode applies them) */
  uint8_t dpp, dppfi;  /* 0, or DPP16 / DPP8 on src0 (a VGPR: idx[0]) with its dword; dppfi: fetch inactive lanes */
  uint32_t dppw;
  uint32_t dppwm;          /* DPP under a full EXEC: the lanes that write, and the lane each reads (KN_LANES: 0) */
  uint8_t dppsrc[KN_LANES];
} kn_fop;

/* One instruction of a code object, decoded once (rdna3_prog.c) and then run by its handler: the fast paths
 * (rdna3_fast.c), a no-op, or kn_inst_generic, which hands the words to the family's executor below. A handler
 * advances (or branches) the wave's pc and returns 0, or -1 with the dispatch's error set. */
/* A global/flat load or store in the fast path's form (rdna3_mem.c): fields decoded once. */
typedef struct {
  uint8_t vaddr, vdata, vdst, saddr; /* saddr: the SGPR pair of the base, when use_saddr */
  uint8_t bytes, load, sign, d16, use_saddr;
  int32_t off;
} kn_fmem;

typedef struct kn_inst kn_inst;
typedef int (*kn_inst_fn)(kn_cu *cu, kn_wave *w, const kn_inst *in);
struct kn_inst {
  kn_inst_fn fn;       /* NULL: not decoded yet */
  const uint32_t *w;   /* its words, in the program's copy of the code (at least 4 readable) */
  uint16_t op;
  uint8_t len, fam, cls; /* bytes, KN_FAM_*, KN_RDNA3_* counter class */
  kn_fop x, y;         /* the fast path's operation (y: VOPD's second half) */
  kn_fmem m;           /* a global load or store's fast path */
  const struct kn_jit_run *jit; /* the compiled run this slot starts (rdna3_jit.c), when its handler is jit_run */
};
int kn_inst_generic(kn_cu *cu, kn_wave *w, const kn_inst *in);

/* A kernel's code as decoded so far: a copy of its bytes from the entry to the end of their mapping (up to 1 MiB),
 * and one slot per dword, filled when a wave first reaches it. */
typedef struct {
  uint64_t entry, size; /* bytes of code copied */
  uint32_t *words;      /* size/4 dwords and 4 of padding */
  kn_inst **chunks;     /* slots in chunks of KN_CHUNK dwords, allocated when a wave first runs into one (a code
                         * object's mapping is mostly not code) */
  bool generic;
  pthread_mutex_t lock; /* held while a slot is decoded (a dispatch's threads share the program) */
  uint64_t waves_run;   /* waves run so far: a program that has run many is compiled (rdna3_jit.c) */
  bool jitted;          /* its runs were compiled (or tried) */
  struct kn_jit_run *jit_runs;
  struct kn_jit_code *jit_code; /* the compiled code (shared by programs with the same runs), released with it */
} kn_rdna3_prog;
/* The program at entry, from the cache when the code in memory is unchanged; NULL with a message. */
kn_rdna3_prog *kn_prog_get(kn_rdna3_cache *c, const kn_rdna3_mem *mem, uint64_t entry, bool generic,
                           const char *name, char *err, size_t errlen);
/* Decodes the instruction at the wave's pc into its slot; NULL with the dispatch's error set (a pc outside the
 * code, a word that is no gfx11 encoding the interpreter decodes). */
const kn_inst *kn_prog_decode(kn_cu *cu, kn_rdna3_prog *p, const kn_wave *w);
/* Gives in a fast handler when its opcode and operand forms have one. */
bool kn_fast_decode(kn_inst *in);
/* The same for global/flat loads and stores (rdna3_mem.c). */
bool kn_fast_mem_decode(kn_inst *in);
/* What handles a decoded slot: 1 a whole-wave vector operation (in->x), 2 a VOPD pair (in->x, in->y), 3 a
 * timing-only no-op, 0 anything else. */
int kn_fast_kind(const kn_inst *in);
int kn_inst_nop(kn_cu *cu, kn_wave *w, const kn_inst *in);

/* rdna3_jit.c: compile the runs of vector instructions a program's waves have reached into host code and point the
 * runs' first slots at it (call before the dispatch's threads start); 0, or -1 with a message. KILN_EMU_JIT=0 turns
 * it off (kn_jit_enabled). kn_jit_release frees a program's compiled code. */
enum { KN_JIT_WAVES = 2048 }; /* waves a program runs before it is compiled */
bool kn_jit_enabled(void);
int kn_jit_program(kn_rdna3_prog *p, const char *name, char *err, size_t errlen);
void kn_jit_release(kn_rdna3_prog *p);

/* Executors, one per encoding family (rdna3_salu.c, rdna3_valu.c, rdna3_vop3p.c, rdna3_mem.c). */
int kn_exec_sop2(kn_cu *cu, kn_wave *w);
int kn_exec_sopk(kn_cu *cu, kn_wave *w);
int kn_exec_sop1(kn_cu *cu, kn_wave *w);
int kn_exec_sopc(kn_cu *cu, kn_wave *w);
int kn_exec_sopp(kn_cu *cu, kn_wave *w);
int kn_exec_smem(kn_cu *cu, kn_wave *w);
int kn_exec_vop1(kn_cu *cu, kn_wave *w);
int kn_exec_vop2(kn_cu *cu, kn_wave *w);
int kn_exec_vopc(kn_cu *cu, kn_wave *w);
int kn_exec_vop3(kn_cu *cu, kn_wave *w);
int kn_exec_vop3p(kn_cu *cu, kn_wave *w);
int kn_exec_vopd(kn_cu *cu, kn_wave *w);
int kn_exec_ds(kn_cu *cu, kn_wave *w);
int kn_exec_flat(kn_cu *cu, kn_wave *w);
int kn_exec_mubuf(kn_cu *cu, kn_wave *w);

/* The semantics the per-lane executors and the whole-wave fast paths share. */

/* A VOPC float compare by its position in a family: f, lt, eq, le, gt, lg, ge, o, u, nge, nlg, ngt, nle, neq, nlt, t
 * (f16 and f32 operands are exact as doubles, so one function serves every width). */
static inline int kn_fcmp(int c, double a, double b) {
  bool un = a != a || b != b;
  switch (c) {
  case 0: return 0;
  case 1: return a < b;
  case 2: return a == b;
  case 3: return a <= b;
  case 4: return a > b;
  case 5: return !un && a != b;
  case 6: return a >= b;
  case 7: return !un;
  case 8: return un;
  case 9: return !(a >= b);
  case 10: return un || a == b;
  case 11: return !(a > b);
  case 12: return !(a <= b);
  case 13: return !(a == b);
  case 14: return !(a < b);
  default: return 1;
  }
}

/* v_bfe_u32 / v_bfe_i32: w bits of x from bit off (both mod 32), sign-extended when sign */
static inline uint32_t kn_bfe32(uint32_t x, uint32_t off, uint32_t w, bool sign) {
  off &= 31, w &= 31;
  if (!w) return 0;
  uint32_t v = (x >> off) & ((1u << w) - 1);
  if (off + w > 32) v = x >> off;
  if (sign && (v >> (w - 1) & 1)) v |= ~0u << w;
  return v;
}

#endif
