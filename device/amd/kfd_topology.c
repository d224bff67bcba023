/* The KFD topology in sysfs: which nodes are GPUs (nonzero gpu_id), their `properties` (gfx_target_version gives the
 * arch name, SIMD and wave counts size the queue's save area) and their memory banks (VRAM size). Also the size of
 * the context save/restore area KFD expects per compute queue, as kfd_queue.c in the kernel computes it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/env.h"
#include "kfd.h"

#define MAX_NODES 64

/* Value of `key` in a "key value" per line sysfs text; def when absent. */
static uint64_t prop(const char *text, const char *key, uint64_t def) {
  size_t n = strlen(key);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, key, n) && p[n] == ' ') return strtoull(p + n + 1, NULL, 10);
  return def;
}

static int read_text(kn_amd_transport *t, const char *path, char *buf, size_t cap, char *err, size_t errlen) {
  if (t->read_file(t, path, buf, cap) < 0)
    return kn_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
  return 0;
}

/* The frame-buffer banks (heap_type 1 = public, 2 = private) of a node add up to its VRAM. */
static uint64_t vram_of(kn_amd_transport *t, int node, uint32_t nbanks) {
  uint64_t total = 0;
  char path[160], text[1024];
  for (uint32_t b = 0; b < nbanks && b < 16; b++) {
    snprintf(path, sizeof path, KN_KFD_TOPOLOGY "/%d/mem_banks/%u/properties", node, b);
    if (t->read_file(t, path, text, sizeof text) < 0) continue;
    uint64_t heap = prop(text, "heap_type", 0);
    if (heap == 1 || heap == 2) total += prop(text, "size_in_bytes", 0);
  }
  return total;
}

static int fill(kn_amd_transport *t, kn_kfd_topology *o, const char *text, char *err, size_t errlen) {
  o->gfx_target_version = (uint32_t)prop(text, "gfx_target_version", 0);
  uint32_t v = o->gfx_target_version;
  if (!v) return kn_errf(err, errlen, "KFD node %d has no gfx_target_version", o->node);
  /* 110000 -> gfx1100, 90010 -> gfx90a: minor and stepping are printed in hex */
  snprintf(o->arch, sizeof o->arch, "gfx%u%x%x", v / 10000, (v / 100) % 100, v % 100);
  o->drm_render_minor = (uint32_t)prop(text, "drm_render_minor", 0);
  o->simd_count = (uint32_t)prop(text, "simd_count", 0);
  o->simd_per_cu = (uint32_t)prop(text, "simd_per_cu", 2);
  o->max_waves_per_simd = (uint32_t)prop(text, "max_waves_per_simd", 16);
  o->lds_size_in_kb = (uint32_t)prop(text, "lds_size_in_kb", 64);
  o->array_count = (uint32_t)prop(text, "array_count", 1);
  o->simd_arrays_per_engine = (uint32_t)prop(text, "simd_arrays_per_engine", 1);
  o->num_xcc = (uint32_t)prop(text, "num_xcc", 1);
  if (!o->num_xcc) o->num_xcc = 1;
  if (!o->simd_count || !o->simd_per_cu)
    return kn_errf(err, errlen, "KFD node %d reports no SIMDs (simd_count %u)", o->node, o->simd_count);
  o->cu_count = o->simd_count / o->simd_per_cu / o->num_xcc;
  /* the wave slots KFD sizes the save area for */
  if (v < 100100) {
    uint32_t se_waves = o->simd_arrays_per_engine ? o->array_count / o->simd_arrays_per_engine * 512 : 0;
    o->wave_count = o->cu_count * 40 < se_waves ? o->cu_count * 40 : se_waves;
  } else
    o->wave_count = o->cu_count * 32;
  o->vram_size = vram_of(t, o->node, (uint32_t)prop(text, "mem_banks_count", 1));
  return 0;
}

int kn_kfd_topology_read(kn_amd_transport *t, int index, kn_kfd_topology *topo, char *err, size_t errlen) {
  int nodes[MAX_NODES];
  int n = t->list_nodes(t, KN_KFD_TOPOLOGY, nodes, MAX_NODES);
  if (n < 0) return kn_errf(err, errlen, "no KFD topology: %s: %s", KN_KFD_TOPOLOGY, strerror(errno));
  char path[160], text[4096];
  int seen = 0;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, KN_KFD_TOPOLOGY "/%d/gpu_id", nodes[i]);
    if (t->read_file(t, path, text, sizeof text) < 0) continue;
    uint32_t gpu_id = (uint32_t)strtoul(text, NULL, 10);
    if (!gpu_id || seen++ != index) continue; /* a CPU node, or another GPU */
    memset(topo, 0, sizeof *topo);
    topo->node = nodes[i];
    topo->gpu_id = gpu_id;
    snprintf(path, sizeof path, KN_KFD_TOPOLOGY "/%d/properties", nodes[i]);
    if (read_text(t, path, text, sizeof text, err, errlen)) return -1;
    return fill(t, topo, text, err, errlen);
  }
  return kn_errf(err, errlen, "no AMD GPU in the KFD topology (%d node%s, %d GPU%s)", n, n == 1 ? "" : "s", seen,
                 seen == 1 ? "" : "s");
}

static uint32_t round_page(uint64_t n) { return (uint32_t)((n + 4095) & ~(uint64_t)4095); }

/* The sizes KFD computes for the node (kfd_queue.c) and checks CREATE_QUEUE against: the control stack must equal
 * its size, the save area be at least its size. */
void kn_kfd_cwsr_size(const kn_kfd_topology *topo, uint32_t *ctx_save_bytes, uint32_t *ctl_stack_bytes) {
  uint32_t v = topo->gfx_target_version, cu = topo->cu_count;
  uint32_t vgpr = 0x40000; /* per CU; the 1.5x register files of gfx11/12 and the gfx9 compute parts are larger */
  if (v == 90402 || v == 90010 || v == 90008 || v == 90500) vgpr = 0x80000;
  else if (v == 110000 || v == 110001 || v == 120000 || v == 120001) vgpr = 0x60000;
  uint32_t lds = v == 90500 ? topo->lds_size_in_kb << 10 : 0x10000;
  uint64_t wg_data = round_page((uint64_t)(vgpr + 0x4000 + lds + 0x1000) * cu);
  uint32_t ctl = round_page(40 + (uint64_t)topo->wave_count * (v >= 100100 ? 12 : 8) + 8);
  if (v / 10000 * 10000 == 100000 && ctl > 0x7000) ctl = 0x7000; /* gfx10's hardware limit */
  *ctl_stack_bytes = ctl;
  *ctx_save_bytes = (uint32_t)(wg_data + ctl);
}
