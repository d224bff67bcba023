/* Decoded programs: a kernel's instructions are decoded once, on first execution, into slots that hold the handler
 * to run and its operands (the family's executor, a fast path, or a no-op for the timing-only instructions), so a
 * wave's step is an index by pc and one indirect call. Programs are kept in a cache between dispatches with a copy
 * of their code; a dispatch whose code in memory differs from the copy (a program freed and another loaded at the
 * same address) decodes it again. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "../base/env.h"
#include "rdna3_ops.h"
#include "rdna3_wave.h"

enum { PROG_MAX = 1 << 20 };

static const struct {
  const char *name;
  int (*fn)(kn_cu *, kn_wave *);
  int cls;
} families[KN_NFAM] = {
  [KN_FAM_SOP2] = {"sop2", kn_exec_sop2, KN_RDNA3_SALU}, [KN_FAM_SOPK] = {"sopk", kn_exec_sopk, KN_RDNA3_SALU},
  [KN_FAM_SOP1] = {"sop1", kn_exec_sop1, KN_RDNA3_SALU}, [KN_FAM_SOPC] = {"sopc", kn_exec_sopc, KN_RDNA3_SALU},
  [KN_FAM_SOPP] = {"sopp", kn_exec_sopp, KN_RDNA3_BRANCH}, [KN_FAM_SMEM] = {"smem", kn_exec_smem, KN_RDNA3_SMEM},
  [KN_FAM_VOP1] = {"vop1", kn_exec_vop1, KN_RDNA3_VALU}, [KN_FAM_VOP2] = {"vop2", kn_exec_vop2, KN_RDNA3_VALU},
  [KN_FAM_VOPC] = {"vopc", kn_exec_vopc, KN_RDNA3_VALU}, [KN_FAM_VOP3] = {"vop3", kn_exec_vop3, KN_RDNA3_VALU},
  [KN_FAM_VOP3P] = {"vop3p", kn_exec_vop3p, KN_RDNA3_VALU}, [KN_FAM_VOPD] = {"vopd", kn_exec_vopd, KN_RDNA3_VALU},
  [KN_FAM_DS] = {"ds", kn_exec_ds, KN_RDNA3_LDS}, [KN_FAM_GLOBAL] = {"global", kn_exec_flat, KN_RDNA3_VMEM},
  [KN_FAM_FLAT] = {"flat", kn_exec_flat, KN_RDNA3_VMEM}, [KN_FAM_SCRATCH] = {"scratch", kn_exec_flat, KN_RDNA3_VMEM},
  [KN_FAM_MUBUF] = {"mubuf", kn_exec_mubuf, KN_RDNA3_VMEM},
};

int kn_rdna3_family(const char *name) {
  for (int i = 0; i < KN_NFAM; i++)
    if (families[i].name == name || !strcmp(families[i].name, name)) return i;
  return -1;
}

int kn_inst_generic(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  cu->w = in->w, cu->len = in->len, cu->fam = families[in->fam].name, cu->op = in->op;
  return families[in->fam].fn(cu, w);
}

/* s_waitcnt, s_delay_alu, s_clause, s_nop and the like: timing only, the interpreter runs in order */
int kn_inst_nop(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  w->pc += in->len;
  return 0;
}

static bool timing_only(int fam, unsigned op) {
  if (fam == KN_FAM_MUBUF) return op == BUFFER_GL0_INV || op == BUFFER_GL1_INV;
  if (fam != KN_FAM_SOPP) return false;
  switch (op) {
  case S_NOP: case S_SLEEP: case S_SET_INST_PREFETCH_DISTANCE: case S_CLAUSE: case S_DELAY_ALU: case S_WAITCNT_DEPCTR:
  case S_WAITCNT: case S_WAIT_IDLE: case S_SETPRIO: case S_ICACHE_INV: case S_INCPERFLEVEL: case S_DECPERFLEVEL:
  case S_TTRACEDATA: case S_TTRACEDATA_IMM: case S_WAKEUP:
    return true;
  default: return false;
  }
}

/* Decodes under the program's lock: the threads of a dispatch (rdna3.c) read slots without it, so a slot's fields
 * are written first and its handler last, with a release store (and a chunk's pointer likewise). */
static const kn_inst *decode_locked(kn_cu *cu, kn_rdna3_prog *p, const kn_wave *w) {
  uint64_t off = w->pc - p->entry;
  if (w->pc < p->entry || off >= p->size || (off & 3)) {
    cu->fam = "fetch", cu->op = 0;
    return kn_errf(cu->err, cu->errlen, "rdna3: kernel %s: pc 0x%llx is not mapped (wave ran past its code?)",
                   cu->d->name ? cu->d->name : "?", (unsigned long long)w->pc), NULL;
  }
  kn_inst **ch = &p->chunks[off / 4 / KN_CHUNK];
  if (!*ch) {
    kn_inst *c = calloc(KN_CHUNK, sizeof *c);
    if (!c)
      return kn_errf(cu->err, cu->errlen, "rdna3: out of memory decoding kernel %s", cu->d->name ? cu->d->name : "?"),
             NULL;
    __atomic_store_n(ch, c, __ATOMIC_RELEASE);
  }
  kn_inst *in = &(*ch)[off / 4 % KN_CHUNK];
  if (in->fn) return in;
  const uint32_t *words = p->words + off / 4;
  size_t avail = (p->size - off) / 4;
  const char *fam;
  unsigned op;
  unsigned len = kn_rdna3_decode(words, avail < 4 ? avail : 4, &fam, &op, NULL);
  if (!len) {
    cu->fam = "fetch", cu->op = 0;
    return kn_errf(cu->err, cu->errlen, "rdna3: kernel %s: pc entry%+lld: word 0x%08x is not a gfx11 encoding the "
                   "emulator decodes", cu->d->name ? cu->d->name : "?", (long long)(w->pc - cu->entry), words[0]),
           NULL;
  }
  int f = kn_rdna3_family(fam);
  if (f < 0) { /* a family the decoder knows and no executor takes */
    cu->w = words, cu->len = len, cu->fam = fam, cu->op = op;
    return kn_cu_unimplemented(cu, w), NULL;
  }
  kn_inst t = {.w = words, .len = (uint8_t)len, .op = (uint16_t)op, .fam = (uint8_t)f};
  int cls = families[f].cls;
  if (cls == KN_RDNA3_BRANCH && !(op >= S_BRANCH && op <= S_CBRANCH_EXECNZ)) cls = KN_RDNA3_OTHER;
  t.cls = (uint8_t)cls;
  if (p->generic || !kn_fast_decode(&t)) t.fn = timing_only(f, op) && !p->generic ? kn_inst_nop : kn_inst_generic;
  in->w = t.w, in->len = t.len, in->op = t.op, in->fam = t.fam, in->cls = t.cls, in->x = t.x, in->y = t.y, in->m = t.m;
  __atomic_store_n(&in->fn, t.fn, __ATOMIC_RELEASE);
  return in;
}

const kn_inst *kn_prog_decode(kn_cu *cu, kn_rdna3_prog *p, const kn_wave *w) {
  pthread_mutex_lock(&p->lock);
  const kn_inst *in = decode_locked(cu, p, w);
  pthread_mutex_unlock(&p->lock);
  return in;
}

/* ---- the cache ---- */

struct kn_rdna3_cache {
  kn_rdna3_prog **progs;
  int n, cap;
};

kn_rdna3_cache *kn_rdna3_cache_new(void) { return calloc(1, sizeof(kn_rdna3_cache)); }

static void prog_free(kn_rdna3_prog *p) {
  if (!p) return;
  kn_jit_release(p);
  pthread_mutex_destroy(&p->lock);
  free(p->words);
  for (uint64_t i = 0; p->chunks && i < (p->size / 4 + KN_CHUNK - 1) / KN_CHUNK; i++) free(p->chunks[i]);
  free(p->chunks);
  free(p);
}

void kn_rdna3_cache_free(kn_rdna3_cache *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) prog_free(c->progs[i]);
  free(c->progs);
  free(c);
}

/* bytes mapped from va on (up to max), by bisecting the translation */
static uint64_t mapped_bytes(const kn_rdna3_mem *mem, uint64_t va, uint64_t max) {
  uint64_t lo = 0, hi = max;
  while (lo < hi) {
    uint64_t mid = (lo + hi + 1) / 2;
    if (mem->translate(mem->ctx, va, mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo & ~3ull;
}

kn_rdna3_prog *kn_prog_get(kn_rdna3_cache *c, const kn_rdna3_mem *mem, uint64_t entry, bool generic,
                           const char *name, char *err, size_t errlen) {
  for (int i = 0; i < c->n; i++) {
    kn_rdna3_prog *p = c->progs[i];
    if (p->entry != entry || p->generic != generic) continue;
    const void *code = mem->translate(mem->ctx, entry, p->size);
    if (code && !memcmp(code, p->words, p->size)) return p;
    prog_free(p); /* changed: decode it again */
    c->progs[i] = c->progs[--c->n];
    break;
  }
  if (c->n >= 256) /* programs freed since: drop those whose code is no longer in memory as it was */
    for (int i = c->n - 1; i >= 0; i--) {
      const void *code = mem->translate(mem->ctx, c->progs[i]->entry, c->progs[i]->size);
      if (!code || memcmp(code, c->progs[i]->words, c->progs[i]->size))
        prog_free(c->progs[i]), c->progs[i] = c->progs[--c->n];
    }
  uint64_t size = mapped_bytes(mem, entry, PROG_MAX);
  if (!size)
    return kn_errf(err, errlen, "rdna3: kernel %s: pc 0x%llx is not mapped (no code at the entry)", name ? name : "?",
                   (unsigned long long)entry), NULL;
  kn_rdna3_prog *p = calloc(1, sizeof *p);
  if (p) {
    pthread_mutex_init(&p->lock, NULL);
    p->words = calloc(size / 4 + 4, 4);
    p->chunks = calloc((size / 4 + KN_CHUNK - 1) / KN_CHUNK, sizeof *p->chunks);
  }
  if (c->n == c->cap) {
    int cap = c->cap ? c->cap * 2 : 64;
    kn_rdna3_prog **np = realloc(c->progs, (size_t)cap * sizeof *np);
    if (np) c->progs = np, c->cap = cap;
  }
  if (!p || !p->words || !p->chunks || c->n == c->cap)
    return prog_free(p), kn_errf(err, errlen, "rdna3: out of memory decoding kernel %s", name ? name : "?"), NULL;
  p->entry = entry, p->size = size, p->generic = generic;
  memcpy(p->words, mem->translate(mem->ctx, entry, size), size);
  c->progs[c->n++] = p;
  return p;
}
