/* One AQL compute queue and its signals. The ring, the amd_queue_t block (read/write dispatch ids) and the signals
 * live in GTT memory both sides see; the EOP buffer and the context save/restore area (sized from the topology, as
 * KFD validates them) in VRAM. A packet is written body first and header last as one 32-bit release store, the write
 * dispatch id bumped, then the doorbell rung with the packet's index. Completion: the command processor decrements
 * the packet's amd_signal_t and, through the signal's mailbox, wakes the KFD event kiln sleeps on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/env.h"
#include "kfd.h"
#include "kfd_uapi.h"

#define SIGNAL_PAGE 4096
#define HANG_SECONDS 120.0 /* no packet retired for this long: report the queue as stuck */

int kn_kfd_queue_create(kn_kfd *k, kn_kfd_queue *q, uint32_t ring_bytes, char *err, size_t errlen) {
  memset(q, 0, sizeof *q);
  if (ring_bytes < 4096 || ring_bytes & (ring_bytes - 1))
    return kn_errf(err, errlen, "AQL ring of %u bytes: KFD needs a power of two of at least a page", ring_bytes);
  q->k = k;
  uint32_t ctx_save, ctl_stack;
  kn_kfd_cwsr_size(&k->topo, &ctx_save, &ctl_stack);
  uint64_t debug_area = ((uint64_t)k->topo.wave_count * 32 + 63) & ~63ull;
  if (kn_kfd_alloc(k, ring_bytes, KN_KFD_GTT, &q->ring, err, errlen) ||
      kn_kfd_alloc(k, KN_AMDQ_BYTES, KN_KFD_GTT, &q->desc, err, errlen) ||
      kn_kfd_alloc(k, SIGNAL_PAGE, KN_KFD_GTT, &q->signals, err, errlen) ||
      kn_kfd_alloc(k, 0x1000, KN_KFD_VRAM_GPU, &q->eop, err, errlen) ||
      kn_kfd_alloc(k, (ctx_save + debug_area) * k->topo.num_xcc, KN_KFD_VRAM_GPU, &q->cwsr, err, errlen))
    goto fail;
  q->nslots = ring_bytes / KN_AQL_PACKET_BYTES;
  /* Every slot starts INVALID: the packet processor stops at a slot whose header has not been published. */
  for (uint32_t i = 0; i < q->nslots; i++)
    ((kn_aql_dispatch *)q->ring.cpu)[i].header = KN_AQL_INVALID;
  uint8_t *d = q->desc.cpu;
  memset(d, 0, KN_AMDQ_BYTES);
  *(uint32_t *)(d + KN_AMDQ_QUEUE_PROPERTIES) = KN_AMDQ_PROP_IS_PTR64;
  *(uint32_t *)(d + KN_AMDQ_READ_DISPATCH_ID_FIELD_BASE) = KN_AMDQ_READ_DISPATCH_ID;
  *(uint32_t *)(d + KN_AMDQ_MAX_CU_ID) = k->topo.cu_count ? k->topo.cu_count - 1 : 0;
  *(uint32_t *)(d + KN_AMDQ_MAX_WAVE_ID) = k->topo.max_waves_per_simd * k->topo.simd_per_cu - 1;
  q->wptr = (volatile uint64_t *)(d + KN_AMDQ_WRITE_DISPATCH_ID);
  q->rptr = (volatile uint64_t *)(d + KN_AMDQ_READ_DISPATCH_ID);
  struct kfd_ioctl_create_queue_args a = {
      .ring_base_address = q->ring.va, .ring_size = ring_bytes, .gpu_id = k->topo.gpu_id,
      .queue_type = KFD_IOC_QUEUE_TYPE_COMPUTE_AQL, .queue_percentage = KFD_MAX_QUEUE_PERCENTAGE,
      .queue_priority = 7, .write_pointer_address = q->desc.va + KN_AMDQ_WRITE_DISPATCH_ID,
      .read_pointer_address = q->desc.va + KN_AMDQ_READ_DISPATCH_ID, .eop_buffer_address = q->eop.va,
      .eop_buffer_size = q->eop.size, .ctx_save_restore_address = q->cwsr.va, .ctx_save_restore_size = ctx_save,
      .ctl_stack_size = ctl_stack};
  if (k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_CREATE_QUEUE, &a)) {
    char detail[512] = "";
    int e = errno;
    if (k->t->fault_text) k->t->fault_text(k->t, detail, sizeof detail);
    kn_errf(err, errlen, "KFD CREATE_QUEUE (AQL, %u-byte ring, %u-byte save area, %u-byte control stack) failed: "
            "%s%s%s", ring_bytes, ctx_save, ctl_stack, strerror(e), *detail ? "; " : "", detail);
    goto fail;
  }
  q->queue_id = a.queue_id;
  /* The doorbells are two pages of the kfd file; this queue's is a 64-bit slot inside them. */
  q->doorbell_base = a.doorbell_offset & ~(uint64_t)0x1fff;
  q->doorbell_map = k->t->mmap(k->t, NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, k->kfd_fd,
                               (off_t)q->doorbell_base);
  if (q->doorbell_map == MAP_FAILED) {
    q->doorbell_map = NULL;
    kn_errf(err, errlen, "cannot map the queue's doorbell: %s", strerror(errno));
    goto fail;
  }
  q->doorbell = (volatile uint64_t *)((uint8_t *)q->doorbell_map + (a.doorbell_offset - q->doorbell_base));
  q->done = kn_kfd_signal_new(q, 0);
  return 0;
fail:
  kn_kfd_queue_destroy(q);
  return -1;
}

void kn_kfd_queue_destroy(kn_kfd_queue *q) {
  kn_kfd *k = q->k;
  if (!k) return;
  if (q->doorbell_map) {
    struct kfd_ioctl_destroy_queue_args a = {.queue_id = q->queue_id};
    k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_DESTROY_QUEUE, &a);
    k->t->munmap(k->t, q->doorbell_map, 0x2000);
  }
  kn_kfd_free(k, &q->cwsr);
  kn_kfd_free(k, &q->eop);
  kn_kfd_free(k, &q->signals);
  kn_kfd_free(k, &q->desc);
  kn_kfd_free(k, &q->ring);
  memset(q, 0, sizeof *q);
}

kn_amd_signal *kn_kfd_signal_new(kn_kfd_queue *q, int64_t value) {
  if ((q->nsignals + 1) * sizeof(kn_amd_signal) > SIGNAL_PAGE) return NULL;
  kn_amd_signal *s = (kn_amd_signal *)q->signals.cpu + q->nsignals++;
  memset(s, 0, sizeof *s);
  s->kind = KN_AMD_SIGNAL_KIND_USER;
  s->value = value;
  s->event_mailbox_ptr = q->k->signal_mailbox;
  s->event_id = q->k->signal_trigger;
  return s;
}

uint64_t kn_kfd_signal_va(kn_kfd_queue *q, const kn_amd_signal *s) {
  return q->signals.va + (uint64_t)((const uint8_t *)s - (const uint8_t *)q->signals.cpu);
}

static int64_t load_value(const kn_amd_signal *s) { return __atomic_load_n(&s->value, __ATOMIC_ACQUIRE); }

int kn_kfd_signal_wait(kn_kfd_queue *q, const kn_amd_signal *s, int64_t want, char *err, size_t errlen) {
  if (q->faulted) return kn_errf(err, errlen, "%s", q->fault);
  double last = kn_now();
  uint64_t seen = *q->rptr;
  for (int spins = 0; load_value(s) > want; spins++) {
    if (spins < 64) continue;
    /* Sleep on the KFD event between checks; a fault reported there ends the wait. */
    if (kn_kfd_wait_event(q->k, 10, q->fault, sizeof q->fault)) {
      q->faulted = true;
      return kn_errf(err, errlen, "%s", q->fault);
    }
    if (*q->rptr != seen) seen = *q->rptr, last = kn_now();
    else if (kn_now() - last > HANG_SECONDS) {
      snprintf(q->fault, sizeof q->fault, "AMD queue stuck: no packet retired for %.0f s (read index %llu, written "
               "%llu)", HANG_SECONDS, (unsigned long long)seen, (unsigned long long)q->put);
      q->faulted = true;
      return kn_errf(err, errlen, "%s", q->fault);
    }
  }
  return 0;
}

/* Wait for a free slot: the ring holds nslots packets not yet read. */
static int reserve(kn_kfd_queue *q, char *err, size_t errlen) {
  if (q->faulted) return kn_errf(err, errlen, "%s", q->fault);
  double start = kn_now();
  while (q->put - *q->rptr >= q->nslots) {
    if (kn_kfd_check_faults(q->k, q->fault, sizeof q->fault)) {
      q->faulted = true;
      return kn_errf(err, errlen, "%s", q->fault);
    }
    if (kn_now() - start > HANG_SECONDS) return kn_errf(err, errlen, "AMD queue full and not draining");
  }
  return 0;
}

/* Body, then header+setup as one release store, then the write index and the doorbell. */
static void publish(kn_kfd_queue *q, const void *pkt) {
  uint8_t *slot = (uint8_t *)q->ring.cpu + (q->put % q->nslots) * KN_AQL_PACKET_BYTES;
  memcpy(slot + 4, (const uint8_t *)pkt + 4, KN_AQL_PACKET_BYTES - 4);
  uint32_t head;
  memcpy(&head, pkt, 4);
  __atomic_store_n((uint32_t *)slot, head, __ATOMIC_RELEASE);
  q->put++;
  __atomic_store_n(q->wptr, q->put, __ATOMIC_RELEASE);
  q->k->t->doorbell(q->k->t, q->doorbell, q->put - 1);
}

int kn_kfd_submit_dispatch(kn_kfd_queue *q, kn_aql_dispatch *pkt, char *err, size_t errlen) {
  if (reserve(q, err, errlen)) return -1;
  pkt->header = (uint16_t)(KN_AQL_KERNEL_DISPATCH | KN_AQL_HDR_BARRIER | KN_AQL_HDR_FENCES);
  if (pkt->completion_signal) q->foreign = true;
  else {
    __atomic_add_fetch(&q->done->value, 1, __ATOMIC_ACQ_REL);
    pkt->completion_signal = kn_kfd_signal_va(q, q->done);
  }
  publish(q, pkt);
  return 0;
}

int kn_kfd_submit_barrier(kn_kfd_queue *q, const uint64_t deps[5], kn_amd_signal *completion, char *err,
                          size_t errlen) {
  if (reserve(q, err, errlen)) return -1;
  kn_aql_barrier b = {.header = (uint16_t)(KN_AQL_BARRIER_AND | KN_AQL_HDR_BARRIER | KN_AQL_HDR_FENCES)};
  for (int i = 0; deps && i < 5; i++) b.dep_signal[i] = deps[i];
  if (completion) {
    b.completion_signal = kn_kfd_signal_va(q, completion);
    q->foreign = true;
  } else {
    __atomic_add_fetch(&q->done->value, 1, __ATOMIC_ACQ_REL);
    b.completion_signal = kn_kfd_signal_va(q, q->done);
  }
  publish(q, &b);
  return 0;
}

void kn_kfd_queue_kick(kn_kfd_queue *q) {
  if (q->put) q->k->t->doorbell(q->k->t, q->doorbell, q->put - 1);
}

int kn_kfd_queue_idle(kn_kfd_queue *q, char *err, size_t errlen) {
  if (!q->put) return 0;
  /* Packets carry the barrier bit, so once a last barrier on `done` retires, everything before it has too. */
  if (q->foreign && kn_kfd_submit_barrier(q, NULL, NULL, err, errlen)) return -1;
  q->foreign = false;
  return kn_kfd_signal_wait(q, q->done, 0, err, errlen);
}
