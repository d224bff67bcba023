/* Private to device/amd/: the memory formats the GPU's command processor shares with the host under HSA's AQL
 * (Architected Queuing Language): 64-byte packets in a ring, the amd_queue_t block holding the read/write dispatch
 * ids, and amd_signal_t completion signals. Layouts follow the HSA runtime spec and ROCr's amd_hsa_queue.h /
 * amd_hsa_signal.h; both the KFD device and the emulated packet processor use them. */
#ifndef KN_AMD_AQL_H
#define KN_AMD_AQL_H

#include <stdint.h>

enum {
  KN_AQL_VENDOR = 0, KN_AQL_INVALID = 1, KN_AQL_KERNEL_DISPATCH = 2, KN_AQL_BARRIER_AND = 3,
  KN_AQL_AGENT_DISPATCH = 4, KN_AQL_BARRIER_OR = 5,
};
/* header bits: type [7:0], barrier [8], acquire fence scope [10:9], release fence scope [12:11] */
#define KN_AQL_HDR_BARRIER (1u << 8)
#define KN_AQL_SCOPE_SYSTEM 2u
#define KN_AQL_HDR_FENCES ((KN_AQL_SCOPE_SYSTEM << 9) | (KN_AQL_SCOPE_SYSTEM << 11))
#define KN_AQL_PACKET_BYTES 64

typedef struct {
  uint16_t header, setup;            /* setup [1:0]: grid dimensions */
  uint16_t workgroup_size[3];
  uint16_t reserved0;
  uint32_t grid_size[3];             /* in work-items */
  uint32_t private_segment_size, group_segment_size;
  uint64_t kernel_object;            /* VA of the kernel descriptor */
  uint64_t kernarg_address;
  uint64_t reserved2;
  uint64_t completion_signal;        /* VA of an amd_signal_t, or 0 */
} kn_aql_dispatch;

typedef struct {
  uint16_t header, reserved0;
  uint32_t reserved1;
  uint64_t dep_signal[5];            /* 0 = no dependency */
  uint64_t reserved2;
  uint64_t completion_signal;
} kn_aql_barrier;

_Static_assert(sizeof(kn_aql_dispatch) == KN_AQL_PACKET_BYTES, "AQL dispatch packet is 64 bytes");
_Static_assert(sizeof(kn_aql_barrier) == KN_AQL_PACKET_BYTES, "AQL barrier packet is 64 bytes");

/* amd_signal_t: the command processor decrements `value` when a packet completes, then, when event_mailbox_ptr is
 * set, writes event_id there and raises an interrupt that wakes KFD's event waiters. */
typedef struct {
  int64_t kind;                      /* 1 = user signal */
  int64_t value;
  uint64_t event_mailbox_ptr;
  uint32_t event_id, reserved1;
  uint64_t start_ts, end_ts;
  uint64_t queue_ptr;
  uint32_t reserved3[2];
} kn_amd_signal;
_Static_assert(sizeof(kn_amd_signal) == 64, "amd_signal_t is 64 bytes");
#define KN_AMD_SIGNAL_KIND_USER 1

/* amd_queue_t (256 bytes): only the fields kiln sets or reads are named. */
enum {
  KN_AMDQ_WRITE_DISPATCH_ID = 56,    /* u64: the queue's write pointer (packets, monotonic) */
  KN_AMDQ_MAX_CU_ID = 72, KN_AMDQ_MAX_WAVE_ID = 76,
  KN_AMDQ_READ_DISPATCH_ID = 128,    /* u64: the read pointer the packet processor advances */
  KN_AMDQ_READ_DISPATCH_ID_FIELD_BASE = 136,
  KN_AMDQ_QUEUE_PROPERTIES = 180,
  KN_AMDQ_BYTES = 256,
};
#define KN_AMDQ_PROP_IS_PTR64 2u

#endif
