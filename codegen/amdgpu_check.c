/* What an AMDGPU code object says about one kernel, read from its 64-byte kernel descriptor (the `<entry>.kd`
 * symbol): kernarg size, LDS and scratch sizes, register granules, wave size and which system values the kernel
 * asks the dispatcher for. kn_amdgpu_check holds every kernel kiln emits to the ABI the AMD device packs: explicit
 * arguments only (buffers, then variables), no hidden arguments, no dispatch or queue pointers, no scratch. */
#include <stdio.h>
#include <string.h>

#include "../device/base/env.h"
#include "codegen.h"
#include "../device/elf.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

void kn_target_amdgpu(kn_target *t, const char *arch) {
  memset(t, 0, sizeof *t);
  t->kind = KN_TARGET_AMDGPU;
  snprintf(t->triple, sizeof t->triple, "amdgcn-amd-amdhsa");
  snprintf(t->cpu, sizeof t->cpu, "%s", arch && arch[0] ? arch : "gfx1100");
  t->vector_bytes = 16; /* dwordx4: the widest global load */
  t->ncores = 1;
}

/* Descriptor layout (AMDGPU code object v3+): +0 group_segment_fixed_size, +4 private_segment_fixed_size,
 * +8 kernarg_size, +16 kernel_code_entry_byte_offset, +48 rsrc1, +52 rsrc2, +56 kernel_code_properties. */
int kn_amdgpu_kd_read(const uint8_t *obj, size_t n, const char *entry, kn_amdgpu_kd *kd, char *err, size_t errlen) {
  kn_elf e;
  memset(kd, 0, sizeof *kd);
  if (kn_elf_parse(obj, n, &e, err, errlen)) return -1;
  char want[128];
  snprintf(want, sizeof want, "%s.kd", entry);
  int rc = -1;
  if (e.machine != 224) {
    kn_errf(err, errlen, "%s: ELF machine %u is not AMDGPU (224)", entry, e.machine);
    goto done;
  }
  for (int i = 0; i < e.nsym; i++) {
    const kn_elf_symbol *s = &e.sym[i];
    if (strcmp(s->name, want)) continue;
    if (s->section < 0 || s->section >= e.nsec || !e.sec[s->section].data || s->value + 64 > e.sec[s->section].size) {
      kn_errf(err, errlen, "%s: kernel descriptor outside its section", want);
      goto done;
    }
    const uint8_t *d = e.sec[s->section].data + s->value;
    kd->lds_bytes = rd32(d), kd->scratch_bytes = rd32(d + 4), kd->kernarg_size = rd32(d + 8);
    kd->rsrc1 = rd32(d + 48), kd->rsrc2 = rd32(d + 52), kd->props = (uint16_t)(d[56] | d[57] << 8);
    kd->wave = (kd->props & 0x400) ? 32 : 64;
    rc = 0;
    break;
  }
  if (rc) kn_errf(err, errlen, "object has no kernel descriptor %s", want);
done:
  kn_elf_free(&e);
  return rc;
}

int kn_amdgpu_check(const uint8_t *obj, size_t n, const char *entry, int nbufs, int nvars, char *err, size_t errlen) {
  kn_amdgpu_kd kd;
  if (kn_amdgpu_kd_read(obj, n, entry, &kd, err, errlen)) return -1;
  uint32_t want = 8u * (uint32_t)(nbufs + nvars);
  if (kd.kernarg_size != want)
    return kn_errf(err, errlen, "%s: kernarg size %u, expected %u (%d buffers, %d variables): hidden arguments?", entry,
                   kd.kernarg_size, want, nbufs, nvars);
  /* user SGPRs: bit 3 (kernarg segment pointer) is the ABI's; bit 0 (private segment buffer) is requested by gfx9/10
   * code regardless of scratch use (the dispatcher passes a null resource, scratch being 0 as checked below); the
   * dispatch and queue pointers, dispatch id, flat scratch init and private segment size must stay off */
  if (kd.props & 0x76)
    return kn_errf(err, errlen, "%s: kernel asks for system values beyond the kernarg pointer (properties 0x%x)", entry,
                   kd.props);
  if (kd.scratch_bytes)
    return kn_errf(err, errlen, "%s: kernel uses %u bytes of scratch per work item", entry, kd.scratch_bytes);
  return 0;
}
