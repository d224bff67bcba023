/* The emulated GPU's KFD topology, as the files under /sys/devices/virtual/kfd/kfd/topology read on Linux: node 0
 * is the host CPU, node 1 a gfx1100 (RX 7900 XT: 84 CUs, 2 SIMDs each, 16 waves per SIMD, 64 KiB LDS) whose one
 * public frame-buffer bank is the emulator's VRAM size. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kfd_emu_int.h"

#define TOPO "/sys/devices/virtual/kfd/kfd/topology/nodes"

static const char cpu_props[] =
    "cpu_cores_count 16\nsimd_count 0\nmem_banks_count 1\ncaches_count 0\nio_links_count 1\ncpu_core_id_base 0\n"
    "simd_id_base 0\nmax_waves_per_simd 0\nlds_size_in_kb 0\ngds_size_in_kb 0\nnum_gws 0\nwave_front_size 0\n"
    "array_count 0\nsimd_arrays_per_engine 0\ncu_per_simd_array 0\nsimd_per_cu 0\nmax_slots_scratch_cu 0\n"
    "gfx_target_version 0\nvendor_id 0\ndevice_id 0\nlocation_id 0\ndomain 0\ndrm_render_minor 0\nnum_xcc 0\n";

static int gpu_props(char *buf, size_t cap) {
  return snprintf(buf, cap,
                  "cpu_cores_count 0\nsimd_count 168\nmem_banks_count 1\ncaches_count 0\nio_links_count 1\n"
                  "cpu_core_id_base 0\nsimd_id_base 2147487744\nmax_waves_per_simd 16\nlds_size_in_kb 64\n"
                  "gds_size_in_kb 0\nnum_gws 64\nwave_front_size 32\narray_count 12\nsimd_arrays_per_engine 2\n"
                  "cu_per_simd_array 8\nsimd_per_cu 2\nmax_slots_scratch_cu 32\ngfx_target_version 110000\n"
                  "vendor_id 4098\ndevice_id 29772\nlocation_id 768\ndomain 0\ndrm_render_minor %d\n"
                  "hive_id 0\nnum_sdma_engines 2\nnum_sdma_xgmi_engines 0\nnum_sdma_queues_per_engine 6\n"
                  "num_cp_queues 8\nmax_engine_clk_fcompute 2400\nlocal_mem_size 0\nfw_version 2030\n"
                  "capability 671588992\ndebug_prop 1495\nsdma_fw_version 20\nunique_id 0\nnum_xcc 1\n"
                  "max_engine_clk_ccompute 3000\n",
                  EMU_RENDER_MINOR);
}

long kn_emu_read_file(kn_amd_transport *t, const char *path, char *buf, size_t cap) {
  kn_kfd_emu *e = t->ctx;
  if (!cap) return errno = EINVAL, -1;
  int node = -1, bank = -1, n = -1;
  char rest[64] = "";
  if (strncmp(path, TOPO "/", sizeof TOPO) || sscanf(path + sizeof TOPO, "%d/%63s", &node, rest) != 2)
    return errno = ENOENT, -1;
  if (node == 0 && !strcmp(rest, "gpu_id")) n = snprintf(buf, cap, "0\n");
  else if (node == 0 && !strcmp(rest, "properties")) n = snprintf(buf, cap, "%s", cpu_props);
  else if (node == 1 && !strcmp(rest, "gpu_id")) n = snprintf(buf, cap, "%d\n", EMU_GPU_ID);
  else if (node == 1 && !strcmp(rest, "properties")) n = gpu_props(buf, cap);
  else if (node == 1 && sscanf(rest, "mem_banks/%d/properties", &bank) == 1 && bank == 0)
    n = snprintf(buf, cap, "heap_type 1\nsize_in_bytes %llu\nflags 0\nwidth 320\nmem_clk_max 2500\n",
                 (unsigned long long)e->vram_total);
  else if (node == 0 && sscanf(rest, "mem_banks/%d/properties", &bank) == 1 && bank == 0)
    n = snprintf(buf, cap, "heap_type 0\nsize_in_bytes 68719476736\nflags 0\nwidth 64\nmem_clk_max 4800\n");
  if (n < 0) return errno = ENOENT, -1;
  return (size_t)n < cap ? n : (long)cap - 1;
}

int kn_emu_list_nodes(kn_amd_transport *t, const char *path, int *nodes, int max) {
  if (strcmp(path, TOPO)) return errno = ENOENT, -1;
  int n = 0;
  for (int i = 0; i < 2 && n < max; i++) nodes[n++] = i;
  return n;
}
