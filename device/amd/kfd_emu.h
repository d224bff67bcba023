/* Private to device/amd/: the emulated /dev/kfd. It is a kn_amd_transport: the KFD device code opens, ioctls and
 * mmaps it exactly as it does the kernel's, and a doorbell write runs the emulated GPU's AQL packet processor
 * in-process (kernel dispatches on the RDNA3 interpreter, barrier packets, completion signals and KFD events).
 * The emulated GPU is a gfx1100 with vram_bytes of VRAM (reserved lazily: untouched VRAM costs nothing). */
#ifndef KN_AMD_KFD_EMU_H
#define KN_AMD_KFD_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define KN_KFD_EMU_DEFAULT_VRAM (20ull << 30) /* the RX 7900 XT */

/* A fresh emulator (each has its own memory, queues and counters); destroy it with t->destroy(t). Its compute unit
 * runs a dispatch's workgroups on `threads` host threads (the doorbell's thread included; 1: that thread alone). */
kn_amd_transport *kn_kfd_emu_create(uint64_t vram_bytes, int threads, char *err, size_t errlen);

/* Fault injection, for tests of the fault path (AMD_EMU_FAULT=NAME[:N] on DEVICE=AMD:EMU): the nth dispatch (from
 * now, 1 = the next) of a kernel whose name contains `kernel` runs with its kernel-argument pointer at an unmapped
 * page, so its first s_load faults in the compute unit as a kernel handed a bad pointer would: the queue stops and
 * KFD's memory-fault event fires. Once. */
void kn_kfd_emu_inject_fault(kn_amd_transport *t, const char *kernel, int nth);

#endif
