/* Memory instructions: SMEM (scalar loads through the constant cache), FLAT/GLOBAL (per-lane loads, stores and
 * atomics on the emulated GPU's memory) and DS (LDS, the workgroup's shared memory, and the cross-lane DS ops).
 * Every access goes through the address translation, so an unmapped address is an error naming it. */
#include <stdio.h>

#include "rdna3_ops.h"
#include "rdna3_wave.h"

enum { SADDR_OFF = 124 };

static int32_t sext(uint32_t x, int b) { return (int32_t)(x << (32 - b)) >> (32 - b); }

int kn_exec_smem(kn_cu *cu, kn_wave *w) {
  uint32_t i0 = cu->w[0], i1 = cu->w[1];
  unsigned sdata = bits(i0, 12, 6), sbase = bits(i0, 5, 0) * 2, soff = bits(i1, 31, 25);
  w->pc += cu->len;
  unsigned n;
  switch (cu->op) {
  case S_LOAD_B32: n = 1; break;
  case S_LOAD_B64: n = 2; break;
  case S_LOAD_B128: n = 4; break;
  case S_LOAD_B256: n = 8; break;
  case S_LOAD_B512: n = 16; break;
  case S_GL1_INV: case S_DCACHE_INV: return 0; /* caches are not modelled */
  default: w->pc -= cu->len; return kn_cu_unimplemented(cu, w);
  }
  uint64_t addr = (w->s[sbase] | (uint64_t)(w->s[sbase + 1] & 0xffff) << 32) + (int64_t)sext(bits(i1, 20, 0), 21);
  if (soff != OP_NULL) addr += w->s[soff];
  addr &= ~3ull;
  if (sdata + n > 106) return kn_cu_fail(cu, w, "s_load into s%u..s%u", sdata, sdata + n - 1);
  const uint32_t *p = kn_cu_mem(cu, w, addr, 4 * n, false);
  if (!p) return -1;
  memcpy(&w->s[sdata], p, 4 * n);
  cu->st->global_read += 4 * n;
  return 0;
}

/* ---- FLAT / GLOBAL ---- */

typedef struct {
  int load, bytes, sign, d16; /* d16: 1 low half, 2 high half */
} vmem_shape;

static bool flat_shape(unsigned op, vmem_shape *s) {
  static const struct { unsigned op; vmem_shape s; } t[] = {
    {GLOBAL_LOAD_U8, {1, 1, 0, 0}}, {GLOBAL_LOAD_I8, {1, 1, 1, 0}}, {GLOBAL_LOAD_U16, {1, 2, 0, 0}},
    {GLOBAL_LOAD_I16, {1, 2, 1, 0}}, {GLOBAL_LOAD_B32, {1, 4, 0, 0}}, {GLOBAL_LOAD_B64, {1, 8, 0, 0}},
    {GLOBAL_LOAD_B96, {1, 12, 0, 0}}, {GLOBAL_LOAD_B128, {1, 16, 0, 0}}, {GLOBAL_STORE_B8, {0, 1, 0, 0}},
    {GLOBAL_STORE_B16, {0, 2, 0, 0}}, {GLOBAL_STORE_B32, {0, 4, 0, 0}}, {GLOBAL_STORE_B64, {0, 8, 0, 0}},
    {GLOBAL_STORE_B96, {0, 12, 0, 0}}, {GLOBAL_STORE_B128, {0, 16, 0, 0}},
    {GLOBAL_LOAD_D16_U8, {1, 1, 0, 1}}, {GLOBAL_LOAD_D16_I8, {1, 1, 1, 1}}, {GLOBAL_LOAD_D16_B16, {1, 2, 0, 1}},
    {GLOBAL_LOAD_D16_HI_U8, {1, 1, 0, 2}}, {GLOBAL_LOAD_D16_HI_I8, {1, 1, 1, 2}},
    {GLOBAL_LOAD_D16_HI_B16, {1, 2, 0, 2}}, {GLOBAL_STORE_D16_HI_B8, {0, 1, 0, 2}},
    {GLOBAL_STORE_D16_HI_B16, {0, 2, 0, 2}},
  };
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    if (t[k].op == op) {
      *s = t[k].s;
      return true;
    }
  return false;
}

static void load_lane(kn_wave *w, unsigned vdst, int l, const uint8_t *p, const vmem_shape *s) {
  if (s->bytes >= 4) {
    for (int k = 0; k < s->bytes / 4; k++) memcpy(&w->v[(vdst + k) & 255][l], p + 4 * k, 4);
    return;
  }
  uint32_t x = s->bytes == 1 ? p[0] : (uint32_t)(p[0] | p[1] << 8);
  if (s->sign) x = (uint32_t)sext(x, 8 * s->bytes);
  uint32_t *d = &w->v[vdst][l];
  if (s->d16 == 1) *d = (*d & 0xffff0000u) | (x & 0xffff);
  else if (s->d16 == 2) *d = (*d & 0xffff) | x << 16;
  else *d = x;
}

static void store_lane(const kn_wave *w, unsigned vdata, int l, uint8_t *p, const vmem_shape *s) {
  if (s->bytes >= 4) {
    for (int k = 0; k < s->bytes / 4; k++) memcpy(p + 4 * k, &w->v[(vdata + k) & 255][l], 4);
    return;
  }
  uint32_t x = w->v[vdata][l] >> (s->d16 == 2 ? 16 : 0);
  p[0] = (uint8_t)x;
  if (s->bytes == 2) p[1] = (uint8_t)(x >> 8);
}

/* 32-bit atomics: the new value from the old one and the data; NULL op means not an atomic this file knows */
static bool atomic32(unsigned op, uint32_t old, uint32_t d, uint32_t cmp, uint32_t *out) {
  switch (op) {
  case GLOBAL_ATOMIC_SWAP_B32: *out = d; return true;
  case GLOBAL_ATOMIC_CMPSWAP_B32: *out = old == cmp ? d : old; return true;
  case GLOBAL_ATOMIC_ADD_U32: *out = old + d; return true;
  case GLOBAL_ATOMIC_SUB_U32: *out = old - d; return true;
  case GLOBAL_ATOMIC_MIN_I32: *out = (int32_t)old < (int32_t)d ? old : d; return true;
  case GLOBAL_ATOMIC_MAX_I32: *out = (int32_t)old > (int32_t)d ? old : d; return true;
  case GLOBAL_ATOMIC_MIN_U32: *out = old < d ? old : d; return true;
  case GLOBAL_ATOMIC_MAX_U32: *out = old > d ? old : d; return true;
  case GLOBAL_ATOMIC_AND_B32: *out = old & d; return true;
  case GLOBAL_ATOMIC_OR_B32: *out = old | d; return true;
  case GLOBAL_ATOMIC_XOR_B32: *out = old ^ d; return true;
  case GLOBAL_ATOMIC_INC_U32: *out = old >= d ? 0 : old + 1; return true;
  case GLOBAL_ATOMIC_DEC_U32: *out = (old == 0 || old > d) ? d : old - 1; return true;
  case GLOBAL_ATOMIC_ADD_F32: *out = f2u(u2f(old) + u2f(d)); return true;
  case GLOBAL_ATOMIC_MIN_F32: *out = f2u(u2f(old) < u2f(d) ? u2f(old) : u2f(d)); return true;
  case GLOBAL_ATOMIC_MAX_F32: *out = f2u(u2f(old) > u2f(d) ? u2f(old) : u2f(d)); return true;
  default: return false;
  }
}

static pthread_mutex_t atomic_lock = PTHREAD_MUTEX_INITIALIZER;

int kn_exec_flat(kn_cu *cu, kn_wave *w) {
  uint32_t i0 = cu->w[0], i1 = cu->w[1];
  unsigned seg = bits(i0, 17, 16), glc = bits(i0, 14, 14);
  unsigned vaddr = bits(i1, 7, 0), vdata = bits(i1, 15, 8), saddr = bits(i1, 22, 16), vdst = bits(i1, 31, 24);
  int64_t off = seg == 0 ? (int64_t)bits(i0, 11, 0) : sext(bits(i0, 12, 0), 13);
  if (seg == 1) return kn_cu_fail(cu, w, "scratch access: the emulator provides no private segment");
  vmem_shape s = {0};
  bool is_atomic = false;
  uint32_t dummy;
  if (!flat_shape(cu->op, &s)) {
    if (!atomic32(cu->op, 0, 0, 0, &dummy)) return kn_cu_unimplemented(cu, w);
    is_atomic = true;
  }
  bool use_saddr = seg == 2 && saddr != SADDR_OFF && saddr != 127;
  uint64_t sbase = use_saddr ? (w->s[saddr] | (uint64_t)w->s[saddr + 1] << 32) : 0;
  uint32_t exec = exec_mask(w);
  for (int l = 0; l < KN_LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint64_t a = use_saddr ? sbase + w->v[vaddr][l] : (w->v[vaddr][l] | (uint64_t)w->v[(vaddr + 1) & 255][l] << 32);
    a += (uint64_t)off;
    if (is_atomic) { /* one at a time across the threads running a dispatch's workgroups */
      uint32_t *p = kn_cu_mem(cu, w, a, 4, true);
      if (!p) return -1;
      pthread_mutex_lock(&atomic_lock);
      uint32_t old = *p, nv;
      bool cmpswap = cu->op == GLOBAL_ATOMIC_CMPSWAP_B32;
      atomic32(cu->op, old, w->v[vdata][l], cmpswap ? w->v[(vdata + 1) & 255][l] : 0, &nv);
      if (cmpswap) nv = old == w->v[(vdata + 1) & 255][l] ? w->v[vdata][l] : old;
      *p = nv;
      pthread_mutex_unlock(&atomic_lock);
      if (glc) w->v[vdst][l] = old;
      cu->st->global_read += 4, cu->st->global_written += 4;
      continue;
    }
    uint8_t *p = kn_cu_mem(cu, w, a, (size_t)s.bytes, !s.load);
    if (!p) return -1;
    if (s.load) {
      load_lane(w, vdst, l, p, &s);
      cu->st->global_read += (uint64_t)s.bytes;
    } else {
      store_lane(w, vdata, l, p, &s);
      cu->st->global_written += (uint64_t)s.bytes;
    }
  }
  w->pc += cu->len;
  return 0;
}

/* Makes the mapping that holds [va, va+bytes) the cached one: one of the few hit before it (a kernel moves between
 * its weights, activations and outputs), or the memory's region; false when none holds it. Untracked accesses only:
 * the tracker of a mapping (map_rd) is kn_cu_mem's to set. */
static bool remap(kn_cu *cu, uint64_t va, uint64_t bytes) {
  enum { NALT = sizeof cu->alt / sizeof cu->alt[0] };
  struct kn_map cur = {cu->map_lo, cu->map_n, cu->map_host}, found = {0};
  int i = 0;
  while (i < NALT && !(cu->alt[i].n >= bytes && va - cu->alt[i].lo <= cu->alt[i].n - bytes)) i++;
  if (i < NALT) {
    found = cu->alt[i], cu->alt[i] = cur;
  } else {
    if (!cu->mem->region) return false;
    found.host = cu->mem->region(cu->mem->ctx, va, &found.lo, &found.n);
    if (!found.host || found.n < bytes || va - found.lo > found.n - bytes) return false;
    if (cur.n) cu->alt[cu->alt_next++ % NALT] = cur;
  }
  cu->map_lo = found.lo, cu->map_n = found.n, cu->map_host = found.host, cu->map_rd = -1;
  return true;
}

/* The fast path of a global/flat load or store: fields decoded once; every active lane's address is checked
 * against one mapping (the last one hit, or the one that holds the first active lane's address) before any lane
 * moves data, and an instruction whose lanes reach outside it (another buffer, an unmapped address), or any access
 * while reads are tracked, runs through kn_exec_flat. */
static int fast_flat(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  const kn_fmem *m = &in->m;
  uint32_t exec = exec_mask(w);
  if (cu->fetch || !exec) return kn_inst_generic(cu, w, in);
  uint64_t sbase = m->use_saddr ? (w->s[m->saddr] | (uint64_t)w->s[m->saddr + 1] << 32) : 0;
  const uint32_t *va = w->v[m->vaddr], *vhi = w->v[(m->vaddr + 1) & 255];
  uint64_t addr[KN_LANES];
  for (int l = 0; l < KN_LANES; l++)
    addr[l] = (m->use_saddr ? sbase + va[l] : (va[l] | (uint64_t)vhi[l] << 32)) + (uint64_t)(int64_t)m->off;
  uint8_t *host[KN_LANES];
  for (int tries = 0;; tries++) {
    uint64_t lo = cu->map_lo, n = cu->map_n;
    int l = 0;
    if (n >= m->bytes)
      for (; l < KN_LANES; l++) {
        if (!(exec >> l & 1)) continue;
        if (addr[l] - lo > n - m->bytes) break;
        host[l] = cu->map_host + (addr[l] - lo);
      }
    if (l == KN_LANES) break;
    if (tries || !remap(cu, addr[l], m->bytes)) return kn_inst_generic(cu, w, in);
  }
  if (m->load && m->bytes >= 4 && m->vdst + m->bytes / 4 <= KN_NVGPR) { /* whole dwords into consecutive VGPRs */
    for (int k = 0; k < m->bytes / 4; k++) {
      uint32_t *d = w->v[m->vdst + k];
      for (int l = 0; l < KN_LANES; l++)
        if (exec >> l & 1) memcpy(&d[l], host[l] + 4 * k, 4);
    }
  } else if (m->load && m->bytes < 4 && !m->d16) { /* a byte or a half, extended into one VGPR */
    uint32_t *d = w->v[m->vdst];
    for (int l = 0; l < KN_LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint16_t h;
      if (m->bytes == 1) d[l] = m->sign ? (uint32_t)(int32_t)(int8_t)host[l][0] : host[l][0];
      else memcpy(&h, host[l], 2), d[l] = m->sign ? (uint32_t)(int32_t)(int16_t)h : h;
    }
  } else {
    vmem_shape s = {m->load, m->bytes, m->sign, m->d16};
    for (int l = 0; l < KN_LANES; l++) {
      if (!(exec >> l & 1)) continue;
      if (m->load) load_lane(w, m->vdst, l, host[l], &s);
      else store_lane(w, m->vdata, l, host[l], &s);
    }
  }
  uint64_t bytes = (uint64_t)m->bytes * (uint64_t)__builtin_popcount(exec);
  if (m->load) cu->st->global_read += bytes;
  else cu->st->global_written += bytes;
  w->pc += in->len;
  return 0;
}

bool kn_fast_mem_decode(kn_inst *in) {
  uint32_t i0 = in->w[0], i1 = in->w[1];
  unsigned seg = bits(i0, 17, 16), saddr = bits(i1, 22, 16);
  vmem_shape s;
  if (seg == 1 || seg == 3 || !flat_shape(in->op, &s)) return false; /* scratch, atomics: the executor */
  kn_fmem *m = &in->m;
  memset(m, 0, sizeof *m);
  m->vaddr = (uint8_t)bits(i1, 7, 0), m->vdata = (uint8_t)bits(i1, 15, 8), m->vdst = (uint8_t)bits(i1, 31, 24);
  m->use_saddr = seg == 2 && saddr != SADDR_OFF && saddr != 127;
  m->saddr = (uint8_t)saddr;
  m->off = seg == 0 ? (int32_t)bits(i0, 11, 0) : sext(bits(i0, 12, 0), 13);
  m->bytes = (uint8_t)s.bytes, m->load = (uint8_t)s.load, m->sign = (uint8_t)s.sign, m->d16 = (uint8_t)s.d16;
  if (m->use_saddr && saddr >= 127) return false;
  in->fn = fast_flat;
  return true;
}

int kn_exec_mubuf(kn_cu *cu, kn_wave *w) {
  if (cu->op == BUFFER_GL0_INV || cu->op == BUFFER_GL1_INV) { /* cache invalidates: caches are not modelled */
    w->pc += cu->len;
    return 0;
  }
  return kn_cu_unimplemented(cu, w);
}

/* ---- DS ---- */

static uint8_t *lds_at(kn_cu *cu, const kn_wave *w, uint32_t addr, uint32_t n) {
  if (addr > cu->lds_size || n > cu->lds_size - addr) {
    kn_cu_fail(cu, w, "LDS access of %u bytes at 0x%x outside the workgroup's %u bytes", n, addr, cu->lds_size);
    return NULL;
  }
  return cu->lds + addr;
}

/* ds_swizzle_b32 source lane for lane l */
static int swizzle_src(uint32_t pat, int l) {
  if (pat & 0x8000) return (l & ~3) | (int)((pat >> (2 * (l & 3))) & 3); /* quad permute */
  uint32_t and_m = pat & 31, or_m = (pat >> 5) & 31, xor_m = (pat >> 10) & 31;
  return (int)((((uint32_t)l & and_m) | or_m) ^ xor_m);
}

static int ds_cross_lane(kn_cu *cu, kn_wave *w, unsigned addr, unsigned d0, unsigned vdst, uint32_t offset) {
  uint32_t exec = exec_mask(w), out[KN_LANES] = {0};
  for (int l = 0; l < KN_LANES; l++) {
    if (cu->op == DS_SWIZZLE_B32) { /* its data operand is the ADDR field */
      int s = swizzle_src(offset, l);
      out[l] = exec >> s & 1 ? w->v[addr][s] : 0;
    } else if (cu->op == DS_BPERMUTE_B32) {
      int s = (int)(((w->v[addr][l] + offset) >> 2) & 31);
      out[l] = exec >> s & 1 ? w->v[d0][s] : 0;
    }
  }
  if (cu->op == DS_PERMUTE_B32) /* push: lane l's data goes to lane addr/4; the highest writer wins */
    for (int l = 0; l < KN_LANES; l++)
      if (exec >> l & 1) out[((w->v[addr][l] + offset) >> 2) & 31] = w->v[d0][l];
  for (int l = 0; l < KN_LANES; l++)
    if (exec >> l & 1) w->v[vdst][l] = out[l];
  w->pc += cu->len;
  return 0;
}

/* read-modify-write LDS op on 32 bits; false when op is not one */
static bool ds_rmw32(unsigned op, uint32_t old, uint32_t d0, uint32_t d1, uint32_t *nv, bool *rtn) {
  *rtn = op >= DS_ADD_RTN_U32 && op <= DS_MAX_RTN_F32;
  unsigned base = *rtn ? op - (DS_ADD_RTN_U32 - DS_ADD_U32) : op;
  if (op == DS_STOREXCHG_RTN_B32) {
    *nv = d0;
    return true;
  }
  if (op == DS_ADD_RTN_F32) base = DS_ADD_F32, *rtn = true;
  switch (base) {
  case DS_ADD_U32: *nv = old + d0; return true;
  case DS_SUB_U32: *nv = old - d0; return true;
  case DS_RSUB_U32: *nv = d0 - old; return true;
  case DS_INC_U32: *nv = old >= d0 ? 0 : old + 1; return true;
  case DS_DEC_U32: *nv = (old == 0 || old > d0) ? d0 : old - 1; return true;
  case DS_MIN_I32: *nv = (int32_t)old < (int32_t)d0 ? old : d0; return true;
  case DS_MAX_I32: *nv = (int32_t)old > (int32_t)d0 ? old : d0; return true;
  case DS_MIN_U32: *nv = old < d0 ? old : d0; return true;
  case DS_MAX_U32: *nv = old > d0 ? old : d0; return true;
  case DS_AND_B32: *nv = old & d0; return true;
  case DS_OR_B32: *nv = old | d0; return true;
  case DS_XOR_B32: *nv = old ^ d0; return true;
  case DS_MSKOR_B32: *nv = (old & ~d0) | d1; return true;
  case DS_CMPSTORE_B32: *nv = old == d0 ? d1 : old; return true;
  case DS_MIN_F32: *nv = u2f(old) < u2f(d0) ? old : d0; return true;
  case DS_MAX_F32: *nv = u2f(old) > u2f(d0) ? old : d0; return true;
  case DS_ADD_F32: *nv = f2u(u2f(old) + u2f(d0)); return true;
  default: return false;
  }
}

int kn_exec_ds(kn_cu *cu, kn_wave *w) {
  uint32_t i0 = cu->w[0], i1 = cu->w[1];
  uint32_t off0 = bits(i0, 7, 0), off1 = bits(i0, 15, 8), offset = off1 << 8 | off0;
  unsigned addr = bits(i1, 7, 0), d0 = bits(i1, 15, 8), d1 = bits(i1, 23, 16), vdst = bits(i1, 31, 24);
  if (bits(i0, 17, 17)) return kn_cu_fail(cu, w, "GDS access is not emulated");
  unsigned op = cu->op;
  if (op == DS_SWIZZLE_B32 || op == DS_PERMUTE_B32 || op == DS_BPERMUTE_B32)
    return ds_cross_lane(cu, w, addr, d0, vdst, offset);
  uint32_t exec = exec_mask(w);
  for (int l = 0; l < KN_LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint32_t a = w->v[addr][l] + offset;
    uint8_t *p;
    int n = 0, two = 0, stride = 1;
    bool load = false, store = false;
    switch (op) {
    case DS_LOAD_B32: n = 4, load = true; break;
    case DS_LOAD_B64: n = 8, load = true; break;
    case DS_LOAD_B96: n = 12, load = true; break;
    case DS_LOAD_B128: n = 16, load = true; break;
    case DS_STORE_B32: n = 4, store = true; break;
    case DS_STORE_B64: n = 8, store = true; break;
    case DS_STORE_B96: n = 12, store = true; break;
    case DS_STORE_B128: n = 16, store = true; break;
    case DS_LOAD_2ADDR_B32: n = 4, load = true, two = 1; break;
    case DS_LOAD_2ADDR_STRIDE64_B32: n = 4, load = true, two = 1, stride = 64; break;
    case DS_LOAD_2ADDR_B64: n = 8, load = true, two = 1; break;
    case DS_LOAD_2ADDR_STRIDE64_B64: n = 8, load = true, two = 1, stride = 64; break;
    case DS_STORE_2ADDR_B32: n = 4, store = true, two = 1; break;
    case DS_STORE_2ADDR_STRIDE64_B32: n = 4, store = true, two = 1, stride = 64; break;
    case DS_STORE_2ADDR_B64: n = 8, store = true, two = 1; break;
    case DS_STORE_2ADDR_STRIDE64_B64: n = 8, store = true, two = 1, stride = 64; break;
    default: break;
    }
    if (two) {
      uint32_t a0 = w->v[addr][l] + off0 * (uint32_t)(n * stride), a1 = w->v[addr][l] + off1 * (uint32_t)(n * stride);
      uint8_t *p0 = lds_at(cu, w, a0, (uint32_t)n), *p1 = p0 ? lds_at(cu, w, a1, (uint32_t)n) : NULL;
      if (!p1) return -1;
      int k = n / 4;
      for (int j = 0; j < k; j++) {
        if (load) {
          memcpy(&w->v[(vdst + j) & 255][l], p0 + 4 * j, 4);
          memcpy(&w->v[(vdst + k + j) & 255][l], p1 + 4 * j, 4);
        } else {
          memcpy(p0 + 4 * j, &w->v[(d0 + j) & 255][l], 4);
          memcpy(p1 + 4 * j, &w->v[(d1 + j) & 255][l], 4);
        }
      }
      continue;
    }
    if (load || store) {
      if (!(p = lds_at(cu, w, a, (uint32_t)n))) return -1;
      for (int j = 0; j < n / 4; j++) {
        if (load) memcpy(&w->v[(vdst + j) & 255][l], p + 4 * j, 4);
        else memcpy(p + 4 * j, &w->v[(d0 + j) & 255][l], 4);
      }
      continue;
    }
    uint32_t *dv = &w->v[vdst][l];
    switch (op) {
    case DS_LOAD_U8: case DS_LOAD_I8: case DS_LOAD_U8_D16: case DS_LOAD_U8_D16_HI: case DS_LOAD_I8_D16:
    case DS_LOAD_I8_D16_HI: {
      if (!(p = lds_at(cu, w, a, 1))) return -1;
      bool sg = op == DS_LOAD_I8 || op == DS_LOAD_I8_D16 || op == DS_LOAD_I8_D16_HI;
      uint32_t x = sg ? (uint32_t)(int32_t)(int8_t)p[0] : p[0];
      if (op == DS_LOAD_U8_D16 || op == DS_LOAD_I8_D16) *dv = (*dv & 0xffff0000u) | (x & 0xffff);
      else if (op == DS_LOAD_U8_D16_HI || op == DS_LOAD_I8_D16_HI) *dv = (*dv & 0xffff) | x << 16;
      else *dv = x;
      continue;
    }
    case DS_LOAD_U16: case DS_LOAD_I16: case DS_LOAD_U16_D16: case DS_LOAD_U16_D16_HI: {
      if (!(p = lds_at(cu, w, a, 2))) return -1;
      uint32_t x = (uint32_t)(p[0] | p[1] << 8);
      if (op == DS_LOAD_I16) x = (uint32_t)(int32_t)(int16_t)x;
      if (op == DS_LOAD_U16_D16) *dv = (*dv & 0xffff0000u) | x;
      else if (op == DS_LOAD_U16_D16_HI) *dv = (*dv & 0xffff) | x << 16;
      else *dv = x;
      continue;
    }
    case DS_STORE_B8: case DS_STORE_B8_D16_HI:
      if (!(p = lds_at(cu, w, a, 1))) return -1;
      p[0] = (uint8_t)(w->v[d0][l] >> (op == DS_STORE_B8_D16_HI ? 16 : 0));
      continue;
    case DS_STORE_B16: case DS_STORE_B16_D16_HI: {
      if (!(p = lds_at(cu, w, a, 2))) return -1;
      uint32_t x = w->v[d0][l] >> (op == DS_STORE_B16_D16_HI ? 16 : 0);
      p[0] = (uint8_t)x, p[1] = (uint8_t)(x >> 8);
      continue;
    }
    default: break;
    }
    uint32_t nv, old;
    bool rtn;
    if (!ds_rmw32(op, 0, 0, 0, &nv, &rtn)) return kn_cu_unimplemented(cu, w);
    if (!(p = lds_at(cu, w, a, 4))) return -1;
    memcpy(&old, p, 4);
    ds_rmw32(op, old, w->v[d0][l], w->v[d1][l], &nv, &rtn);
    memcpy(p, &nv, 4);
    if (rtn) *dv = old;
  }
  w->pc += cu->len;
  return 0;
}
