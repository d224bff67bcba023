/* The AMDGPU code-object loader: an ET_REL object from LLVM becomes one image for a GPU load address without a
 * linker. Allocated sections are placed at their alignments, R_AMDGPU_* relocations are applied against the load
 * address, and each kernel is found by its `.kd` symbol and described by the NT_AMDGPU_METADATA msgpack note. */
#include "codeobj.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../elf.h"
#include "../base/env.h"
#include "msgpack.h"

enum { EM_AMDGPU_ = 224, NT_AMDGPU_METADATA_ = 32, KD_SIZE = 64 };
/* R_AMDGPU_* (LLVM's ELFRelocs/AMDGPU.def) */
enum { R_NONE = 0, R_ABS32_LO = 1, R_ABS32_HI = 2, R_ABS64 = 3, R_REL32 = 4, R_REL64 = 5, R_ABS32 = 6,
       R_REL32_LO = 10, R_REL32_HI = 11, R_RELATIVE64 = 13, R_REL16 = 14 };

static uint64_t align_up(uint64_t x, uint64_t a) { return a > 1 ? (x + a - 1) / a * a : x; }

/* Section offsets in the image (UINT64_MAX for sections not loaded); returns the image size. */
static uint64_t place_sections(const kn_elf *e, uint64_t *off) {
  uint64_t at = 0;
  for (int i = 0; i < e->nsec; i++) {
    off[i] = UINT64_MAX;
    if (!(e->sec[i].flags & SHF_ALLOC) || !e->sec[i].size) continue;
    at = align_up(at, e->sec[i].addralign ? e->sec[i].addralign : 1);
    off[i] = at;
    at += e->sec[i].size;
  }
  return align_up(at, 256);
}

static void put(uint8_t *p, uint64_t v, int bytes) { memcpy(p, &v, (size_t)bytes); } /* little-endian host */

static int apply_reloc(const kn_elf *e, const kn_elf_rel *r, const uint64_t *off, kn_codeobj *co, char *err,
                       size_t errlen) {
  if (off[r->section] == UINT64_MAX) return 0; /* patches a section that is not loaded (debug info) */
  if (r->sym < 0) return kn_errf(err, errlen, "code object: relocation at %s+0x%llx names no valid symbol",
                                 e->sec[r->section].name, (unsigned long long)r->offset);
  const kn_elf_symbol *s = &e->sym[r->sym];
  uint64_t S;
  if (s->shndx == SHN_ABS) S = s->value;
  else if (s->section >= 0 && off[s->section] != UINT64_MAX) S = co->load_va + off[s->section] + s->value;
  else return kn_errf(err, errlen, "code object: relocation against undefined symbol '%s' (no linker to resolve it)",
                      s->name);
  uint64_t P = co->load_va + off[r->section] + r->offset;
  uint64_t A = (uint64_t)r->addend;
  int bytes;
  uint64_t v;
  switch (r->type) {
  case R_NONE: return 0;
  case R_ABS32_LO: v = (S + A) & 0xffffffffu, bytes = 4; break;
  case R_ABS32_HI: v = (S + A) >> 32, bytes = 4; break;
  case R_ABS32: v = S + A, bytes = 4; break;
  case R_ABS64: v = S + A, bytes = 8; break;
  case R_REL32: case R_REL32_LO: v = (S + A - P) & 0xffffffffu, bytes = 4; break;
  case R_REL32_HI: v = (S + A - P) >> 32, bytes = 4; break;
  case R_REL64: v = S + A - P, bytes = 8; break;
  case R_REL16: v = ((int64_t)(S + A - P) - 4) / 4, bytes = 2; break;
  case R_RELATIVE64: v = co->load_va + A, bytes = 8; break;
  default:
    return kn_errf(err, errlen, "code object: relocation type %u against '%s' in %s is not supported", r->type,
                   s->name, e->sec[r->section].name);
  }
  if (r->offset > e->sec[r->section].size || e->sec[r->section].size - r->offset < (uint64_t)bytes)
    return kn_errf(err, errlen, "code object: relocation at %s+0x%llx runs past the section",
                   e->sec[r->section].name, (unsigned long long)r->offset);
  put(co->image + off[r->section] + r->offset, v, bytes);
  return 0;
}

/* ---- metadata ---- */

static void copy_str(char *dst, size_t cap, const char *s, uint32_t n) {
  if (n >= cap) n = (uint32_t)cap - 1;
  memcpy(dst, s, n);
  dst[n] = 0;
}

static int read_u32(kn_mp *r, uint32_t *dst, const char *what) {
  uint64_t v;
  if (kn_mp_uint(r, &v, what)) return -1;
  if (v > UINT32_MAX) return kn_errf(r->err, r->errlen, "metadata %s: value %llu out of range", what,
                                     (unsigned long long)v);
  *dst = (uint32_t)v;
  return 0;
}

static int read_arg(kn_mp *r, kn_codeobj_arg *a) {
  uint32_t n;
  if (kn_mp_map(r, &n, ".args[]")) return -1;
  char kind[40] = "";
  int have_off = 0, have_size = 0;
  for (uint32_t i = 0; i < n; i++) {
    const char *k;
    uint32_t kl;
    if (kn_mp_str(r, &k, &kl, ".args[] key")) return -1;
    if (kn_mp_str_is(k, kl, ".offset")) {
      if (read_u32(r, &a->offset, ".args[].offset")) return -1;
      have_off = 1;
    } else if (kn_mp_str_is(k, kl, ".size")) {
      if (read_u32(r, &a->size, ".args[].size")) return -1;
      have_size = 1;
    } else if (kn_mp_str_is(k, kl, ".value_kind")) {
      const char *s;
      uint32_t sl;
      if (kn_mp_str(r, &s, &sl, ".args[].value_kind")) return -1;
      copy_str(kind, sizeof kind, s, sl);
    } else if (kn_mp_skip(r, ".args[] value")) {
      return -1;
    }
  }
  if (!have_off || !have_size || !kind[0])
    return kn_errf(r->err, r->errlen, "metadata .args[]: an argument lacks .offset, .size or .value_kind");
  if (!strcmp(kind, "global_buffer")) a->kind = KN_ARG_GLOBAL_BUFFER;
  else if (!strcmp(kind, "by_value")) a->kind = KN_ARG_BY_VALUE;
  else if (!strncmp(kind, "hidden_", 7)) {
    a->kind = KN_ARG_HIDDEN;
    snprintf(a->hidden, sizeof a->hidden, "%s", kind);
  } else {
    return kn_errf(r->err, r->errlen, "metadata .args[].value_kind '%s' is not supported", kind);
  }
  return 0;
}

typedef struct {
  const char *key;
  size_t off; /* of a uint32_t in kn_codeobj_kernel */
} u32_field;

static const u32_field kernel_fields[] = {
  {".kernarg_segment_size", offsetof(kn_codeobj_kernel, kernarg_size)},
  {".kernarg_segment_align", offsetof(kn_codeobj_kernel, kernarg_align)},
  {".group_segment_fixed_size", offsetof(kn_codeobj_kernel, group_segment_size)},
  {".private_segment_fixed_size", offsetof(kn_codeobj_kernel, private_segment_size)},
  {".vgpr_count", offsetof(kn_codeobj_kernel, vgpr_count)},
  {".sgpr_count", offsetof(kn_codeobj_kernel, sgpr_count)},
  {".wavefront_size", offsetof(kn_codeobj_kernel, wavefront_size)},
  {".max_flat_workgroup_size", offsetof(kn_codeobj_kernel, max_flat_workgroup_size)},
};

/* One kernel's map; its `.symbol` is returned for the caller to resolve. */
static int read_kernel(kn_mp *r, kn_codeobj_kernel *k, char *sym, size_t symcap) {
  uint32_t n;
  if (kn_mp_map(r, &n, "amdhsa.kernels[]")) return -1;
  sym[0] = 0;
  for (uint32_t i = 0; i < n; i++) {
    const char *key;
    uint32_t kl;
    if (kn_mp_str(r, &key, &kl, "amdhsa.kernels[] key")) return -1;
    const u32_field *f = NULL;
    for (size_t j = 0; j < sizeof kernel_fields / sizeof kernel_fields[0]; j++)
      if (kn_mp_str_is(key, kl, kernel_fields[j].key)) f = &kernel_fields[j];
    if (f) {
      if (read_u32(r, (uint32_t *)((char *)k + f->off), f->key)) return -1;
    } else if (kn_mp_str_is(key, kl, ".name") || kn_mp_str_is(key, kl, ".symbol")) {
      const char *s;
      uint32_t sl;
      if (kn_mp_str(r, &s, &sl, key[1] == 'n' ? ".name" : ".symbol")) return -1;
      if (key[1] == 'n') copy_str(k->name, sizeof k->name, s, sl);
      else copy_str(sym, symcap, s, sl);
    } else if (kn_mp_str_is(key, kl, ".args")) {
      uint32_t na;
      if (kn_mp_array(r, &na, ".args")) return -1;
      if (na > sizeof k->args / sizeof k->args[0])
        return kn_errf(r->err, r->errlen, "metadata .args: %u arguments (at most %zu supported)", na,
                       sizeof k->args / sizeof k->args[0]);
      for (uint32_t a = 0; a < na; a++)
        if (read_arg(r, &k->args[a])) return -1;
      k->nargs = (int)na;
    } else if (kn_mp_skip(r, "amdhsa.kernels[] value")) {
      return -1;
    }
  }
  if (!k->name[0] || !sym[0])
    return kn_errf(r->err, r->errlen, "metadata amdhsa.kernels[]: a kernel lacks .name or .symbol");
  return 0;
}

static const kn_elf_symbol *find_symbol(const kn_elf *e, const char *name) {
  for (int i = 0; i < e->nsym; i++)
    if (!strcmp(e->sym[i].name, name) && e->sym[i].section >= 0) return &e->sym[i];
  return NULL;
}

static int read_metadata(const uint8_t *desc, size_t n, const kn_elf *e, const uint64_t *off, kn_codeobj *co,
                         char *err, size_t errlen) {
  kn_mp r;
  kn_mp_init(&r, desc, n, err, errlen);
  uint32_t top;
  if (kn_mp_map(&r, &top, "note")) return -1;
  for (uint32_t i = 0; i < top; i++) {
    const char *key;
    uint32_t kl;
    if (kn_mp_str(&r, &key, &kl, "note key")) return -1;
    if (kn_mp_str_is(key, kl, "amdhsa.target")) {
      const char *s;
      uint32_t sl;
      if (kn_mp_str(&r, &s, &sl, "amdhsa.target")) return -1;
      const char *gfx = memmem(s, sl, "--", 2); /* amdgcn-amd-amdhsa--gfx1100[:features] */
      if (gfx) {
        uint32_t gl = (uint32_t)(sl - (gfx + 2 - s));
        const char *colon = memchr(gfx + 2, ':', gl);
        copy_str(co->arch, sizeof co->arch, gfx + 2, colon ? (uint32_t)(colon - gfx - 2) : gl);
      }
    } else if (kn_mp_str_is(key, kl, "amdhsa.kernels")) {
      uint32_t nk;
      if (kn_mp_array(&r, &nk, "amdhsa.kernels")) return -1;
      co->kernels = calloc(nk ? nk : 1, sizeof *co->kernels);
      if (!co->kernels) return kn_errf(err, errlen, "out of memory");
      for (uint32_t k = 0; k < nk; k++) {
        kn_codeobj_kernel *kk = &co->kernels[k];
        char sym[128];
        if (read_kernel(&r, kk, sym, sizeof sym)) return -1;
        const kn_elf_symbol *s = find_symbol(e, sym);
        if (!s || off[s->section] == UINT64_MAX)
          return kn_errf(err, errlen, "code object: kernel %s: descriptor symbol '%s' not found", kk->name, sym);
        kk->kd_offset = off[s->section] + s->value;
        if (kk->kd_offset + KD_SIZE > co->image_size)
          return kn_errf(err, errlen, "code object: kernel %s: descriptor runs past the image", kk->name);
        co->nkernels = (int)k + 1;
      }
    } else if (kn_mp_skip(&r, "note value")) {
      return -1;
    }
  }
  return 0;
}

/* Finds the NT_AMDGPU_METADATA note among the SHT_NOTE sections. */
static int find_note(const kn_elf *e, const uint8_t **desc, size_t *dn, char *err, size_t errlen) {
  for (int i = 0; i < e->nsec; i++) {
    if (e->sec[i].type != SHT_NOTE || !e->sec[i].data) continue;
    const uint8_t *p = e->sec[i].data;
    uint64_t left = e->sec[i].size;
    while (left >= 12) {
      uint32_t h[3];
      memcpy(h, p, 12);
      uint64_t nsz = align_up(h[0], 4), dsz = align_up(h[1], 4);
      if (nsz > left - 12 || dsz > left - 12 - nsz)
        return kn_errf(err, errlen, "code object: note in %s runs past the section", e->sec[i].name);
      if (h[2] == NT_AMDGPU_METADATA_ && h[0] == 7 && !memcmp(p + 12, "AMDGPU", 7)) {
        *desc = p + 12 + nsz;
        *dn = h[1];
        return 0;
      }
      p += 12 + nsz + dsz;
      left -= 12 + nsz + dsz;
    }
  }
  return kn_errf(err, errlen, "code object has no NT_AMDGPU_METADATA note (not an amdhsa code object v3+)");
}

int kn_codeobj_load(const void *obj, size_t n, uint64_t load_va, kn_codeobj *co, char *err, size_t errlen) {
  memset(co, 0, sizeof *co);
  co->load_va = load_va;
  kn_elf e;
  if (kn_elf_parse(obj, n, &e, err, errlen)) return -1;
  int rc = -1;
  uint64_t *off = calloc(e.nsec ? (size_t)e.nsec : 1, sizeof *off);
  if (!off) {
    kn_errf(err, errlen, "out of memory");
    goto out;
  }
  if (e.machine != EM_AMDGPU_ || e.type != ET_REL) {
    kn_errf(err, errlen, "code object: ELF machine %u type %u (want an AMDGPU relocatable object, 224/1)", e.machine,
            e.type);
    goto out;
  }
  if (load_va & 255) {
    kn_errf(err, errlen, "code object: load address 0x%llx is not 256-byte aligned", (unsigned long long)load_va);
    goto out;
  }
  co->image_size = place_sections(&e, off);
  co->image = calloc(co->image_size ? co->image_size : 1, 1);
  if (!co->image) {
    kn_errf(err, errlen, "out of memory (%zu-byte code image)", co->image_size);
    goto out;
  }
  for (int i = 0; i < e.nsec; i++)
    if (off[i] != UINT64_MAX && e.sec[i].data) memcpy(co->image + off[i], e.sec[i].data, e.sec[i].size);
  for (int i = 0; i < e.nrel; i++)
    if (apply_reloc(&e, &e.rel[i], off, co, err, errlen)) goto out;
  const uint8_t *desc = NULL;
  size_t dn = 0;
  if (find_note(&e, &desc, &dn, err, errlen) || read_metadata(desc, dn, &e, off, co, err, errlen)) goto out;
  if (!co->nkernels) {
    kn_errf(err, errlen, "code object: metadata lists no kernels");
    goto out;
  }
  rc = 0;
out:
  free(off);
  kn_elf_free(&e);
  if (rc) kn_codeobj_free(co);
  return rc;
}

const kn_codeobj_kernel *kn_codeobj_find(const kn_codeobj *co, const char *name) {
  for (int i = 0; i < co->nkernels; i++)
    if (!strcmp(co->kernels[i].name, name)) return &co->kernels[i];
  return NULL;
}

void kn_codeobj_free(kn_codeobj *co) {
  free(co->image);
  free(co->kernels);
  memset(co, 0, sizeof *co);
}
