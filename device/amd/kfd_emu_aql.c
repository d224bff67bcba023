/* The emulated GPU's AQL packet processor, run when a queue's doorbell is written: from the read to the write
 * dispatch id it takes each published packet (kernel dispatches go to the RDNA3 compute unit, barrier-AND/OR wait
 * on their dependency signals), decrements the completion signal, writes its event mailbox (the interrupt that
 * wakes KFD waiters), marks the slot INVALID again and advances the read index. A fault (an instruction the compute
 * unit does not implement, an unmapped address) stops the queue and raises KFD's memory or hardware event, as a
 * GPU fault would. Per-kernel counters from the compute unit are kept by kernel name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aql.h"
#include "kfd_emu_int.h"

static const char *name_of(kn_kfd_emu *e, uint64_t kd_va, char *buf, size_t cap) {
  for (int i = 0; i < e->nnames; i++)
    if (e->names[i].kd_va == kd_va) return e->names[i].name;
  snprintf(buf, cap, "kernel@0x%llx", (unsigned long long)kd_va);
  return buf;
}

void kn_emu_annotate(kn_amd_transport *t, uint64_t kd_va, const char *name) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  int i = 0;
  while (i < e->nnames && e->names[i].kd_va != kd_va) i++;
  if (i == e->nnames && e->nnames == e->capnames) {
    int cap = e->capnames ? e->capnames * 2 : 32;
    emu_name *nn = realloc(e->names, (size_t)cap * sizeof *nn);
    if (!nn) goto out;
    e->names = nn, e->capnames = cap;
  }
  if (i == e->nnames) e->nnames++;
  e->names[i].kd_va = kd_va;
  snprintf(e->names[i].name, sizeof e->names[i].name, "%s", name);
out:
  pthread_mutex_unlock(&e->lock);
}

static kn_amd_counters *counters_for(kn_kfd_emu *e, const char *name) {
  for (int i = 0; i < e->ncounters; i++)
    if (!strcmp(e->counters[i].name, name)) return &e->counters[i];
  if (e->ncounters == e->capcounters) {
    int cap = e->capcounters ? e->capcounters * 2 : 32;
    kn_amd_counters *nc = realloc(e->counters, (size_t)cap * sizeof *nc);
    if (!nc) return NULL;
    e->counters = nc, e->capcounters = cap;
  }
  kn_amd_counters *c = &e->counters[e->ncounters++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  return c;
}

int kn_emu_counters(kn_amd_transport *t, kn_amd_counters *out, int max) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  int n = e->ncounters < max ? e->ncounters : max;
  if (out && n > 0) memcpy(out, e->counters, (size_t)n * sizeof *out);
  int total = e->ncounters;
  pthread_mutex_unlock(&e->lock);
  return out ? n : total;
}

void kn_emu_counters_reset(kn_amd_transport *t) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  e->ncounters = 0;
  e->track_reads = true; /* someone reads the counters: from now on, with distinct and fetched bytes */
  pthread_mutex_unlock(&e->lock);
}

static void queue_fault(kn_kfd_emu *e, emu_queue *q, bool memory, uint64_t va, const char *msg) {
  q->faulted = true;
  if (memory) e->mem_fault = true, e->fault_va = va;
  else e->hw_fault = true;
  snprintf(e->fault, sizeof e->fault, "%s", msg);
}

static int dispatch(kn_kfd_emu *e, emu_queue *q, const kn_aql_dispatch *p, uint64_t packet_va) {
  char nbuf[48], msg[512];
  const char *name = name_of(e, p->kernel_object, nbuf, sizeof nbuf);
  unsigned dims = p->setup & 3;
  if (!dims) {
    snprintf(msg, sizeof msg, "AQL dispatch of %s with 0 grid dimensions", name);
    return queue_fault(e, q, false, 0, msg), -1;
  }
  kn_rdna3_dispatch d = {.name = name, .kd_va = p->kernel_object, .kernarg_va = p->kernarg_address,
                         .group_segment_bytes = p->group_segment_size, .aql_packet_va = packet_va,
                         .cache = e->programs, .track_reads = e->track_reads, .pool = e->pool, .stop = &e->stop};
  for (unsigned i = 0; i < 3; i++) {
    d.grid[i] = i < dims ? p->grid_size[i] : 1;
    d.wg[i] = i < dims ? p->workgroup_size[i] : 1;
    if (!d.wg[i] || !d.grid[i]) {
      snprintf(msg, sizeof msg, "AQL dispatch of %s: zero size in dimension %u", name, i);
      return queue_fault(e, q, false, 0, msg), -1;
    }
  }
  /* an injected fault (kn_kfd_emu_inject_fault): the kernel's arguments at a page nothing maps (below Linux's
   * mmap_min_addr), so the compute unit faults on the kernel's first s_load */
  const uint64_t bad_kernargs = 0x1000;
  bool inject = e->inject_nth > 0 && strstr(name, e->inject_kernel) && --e->inject_nth == 0;
  if (inject) d.kernarg_va = bad_kernargs;
  kn_rdna3_stats stats = {0};
  kn_rdna3_mem mem = {.translate = kn_emu_translate, .ctx = e, .region = kn_emu_region};
  if (kn_rdna3_run(&d, &mem, &stats, msg, sizeof msg)) {
    if (inject) {
      char m2[512];
      snprintf(m2, sizeof m2, "injected fault (AMD_EMU_FAULT=%.60s): %.400s", e->inject_kernel, msg);
      return queue_fault(e, q, true, bad_kernargs, m2), -1;
    }
    queue_fault(e, q, strstr(msg, "unmapped") != NULL, 0, msg);
    return -1;
  }
  if (inject) { /* a kernel that never reads its arguments: the fault is raised after it all the same */
    snprintf(msg, sizeof msg, "injected fault (AMD_EMU_FAULT=%s) after %s, which read no kernel argument",
             e->inject_kernel, name);
    return queue_fault(e, q, true, bad_kernargs, msg), -1;
  }
  kn_amd_counters *c = counters_for(e, name);
  if (c) {
    c->launches++;
    for (int i = 0; i < KN_RDNA3_NCLASS; i++) c->stats.insts[i] += stats.insts[i];
    c->stats.global_read += stats.global_read, c->stats.global_written += stats.global_written;
    c->stats.read_distinct += stats.read_distinct, c->stats.top_distinct += stats.top_distinct;
    c->stats.top_fetched += stats.top_fetched;
    c->stats.second_distinct += stats.second_distinct, c->stats.second_fetched += stats.second_fetched;
    c->stats.waves += stats.waves, c->stats.workgroups += stats.workgroups;
  }
  return 0;
}

static int64_t signal_value(kn_kfd_emu *e, uint64_t sig) {
  kn_amd_signal *s = kn_emu_translate(e, sig, sizeof *s);
  return s ? __atomic_load_n(&s->value, __ATOMIC_ACQUIRE) : -1;
}

/* Barrier-AND: every nonzero dependency at 0; barrier-OR: any. 1 ready, 0 not yet, -1 a bad signal address. */
static int barrier_ready(kn_kfd_emu *e, emu_queue *q, const kn_aql_barrier *b, bool all) {
  int deps = 0, done = 0;
  for (int i = 0; i < 5; i++) {
    if (!b->dep_signal[i]) continue;
    int64_t v = signal_value(e, b->dep_signal[i]);
    if (!kn_emu_translate(e, b->dep_signal[i], sizeof(kn_amd_signal))) {
      char msg[128];
      snprintf(msg, sizeof msg, "AQL barrier: dependency signal at unmapped 0x%llx",
               (unsigned long long)b->dep_signal[i]);
      return queue_fault(e, q, true, b->dep_signal[i], msg), -1;
    }
    deps++, done += v == 0;
  }
  return all ? done == deps : (deps == 0 || done > 0);
}

static void complete(kn_kfd_emu *e, emu_queue *q, uint64_t sig) {
  if (!sig) return;
  kn_amd_signal *s = kn_emu_translate(e, sig, sizeof *s);
  if (!s) return queue_fault(e, q, true, sig, "AQL completion signal at an unmapped address");
  __atomic_sub_fetch(&s->value, 1, __ATOMIC_ACQ_REL);
  if (s->event_mailbox_ptr) kn_emu_signal_slot(e, s->event_mailbox_ptr, s->event_id);
}

void kn_emu_process_queue(kn_kfd_emu *e, int qi) {
  emu_queue *q = &e->queues[qi];
  uint64_t *rptr = kn_emu_translate(e, q->rptr_va, 8), *wptr = kn_emu_translate(e, q->wptr_va, 8);
  uint8_t *ring = kn_emu_translate(e, q->ring_va, q->ring_size);
  if (!rptr || !wptr || !ring) return queue_fault(e, q, true, q->ring_va, "AQL queue memory is no longer mapped");
  uint64_t nslots = q->ring_size / KN_AQL_PACKET_BYTES;
  while (!q->faulted && *rptr < __atomic_load_n(wptr, __ATOMIC_ACQUIRE)) {
    uint64_t off = (*rptr % nslots) * KN_AQL_PACKET_BYTES;
    uint8_t *slot = ring + off;
    uint16_t header = __atomic_load_n((uint16_t *)slot, __ATOMIC_ACQUIRE);
    unsigned type = header & 0xff;
    uint64_t sig;
    if (type == KN_AQL_INVALID) return; /* not published yet */
    if (type == KN_AQL_KERNEL_DISPATCH) {
      kn_aql_dispatch p;
      memcpy(&p, slot, sizeof p);
      if (dispatch(e, q, &p, q->ring_va + off)) return;
      sig = p.completion_signal;
    } else if (type == KN_AQL_BARRIER_AND || type == KN_AQL_BARRIER_OR) {
      kn_aql_barrier b;
      memcpy(&b, slot, sizeof b);
      int ready = barrier_ready(e, q, &b, type == KN_AQL_BARRIER_AND);
      if (ready <= 0) return; /* waits for the host to change a dependency and ring again */
      sig = b.completion_signal;
    } else {
      char msg[96];
      snprintf(msg, sizeof msg, "AQL packet type %u is not emulated (kernel dispatch and barriers only)", type);
      return queue_fault(e, q, false, 0, msg);
    }
    complete(e, q, sig);
    __atomic_store_n((uint16_t *)slot, (uint16_t)KN_AQL_INVALID, __ATOMIC_RELEASE);
    __atomic_store_n(rptr, *rptr + 1, __ATOMIC_RELEASE);
  }
}
