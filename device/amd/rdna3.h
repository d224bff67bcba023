/* Private to device/amd/: the emulated RDNA3 (gfx1100) compute unit. kfd_emu.c hands it one AQL dispatch; it runs
 * every workgroup's waves (wave32) with their SGPRs, VGPRs, LDS and EXEC masks, reading and writing the emulated
 * GPU's memory through `mem`. An instruction it does not implement is an error naming the opcode and the kernel. */
#ifndef KN_AMD_RDNA3_H
#define KN_AMD_RDNA3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The emulated GPU's address space: host memory behind a GPU virtual address, or NULL when [va, va+n) is not
 * mapped (the interpreter then fails the dispatch with a message naming the address). */
typedef struct {
  void *(*translate)(void *ctx, uint64_t va, size_t n);
  void *ctx;
  /* optional: the whole mapping holding va ([*lo, *lo + *n) at the returned host address), so that the interpreter
   * can keep it and translate the next accesses inside it without a call; NULL when va is not mapped */
  void *(*region)(void *ctx, uint64_t va, uint64_t *lo, uint64_t *n);
} kn_rdna3_mem;

/* Decoded code objects, kept between dispatches: each kernel's instructions are decoded once into handlers with
 * their operands (rdna3_prog.c), and checked against the code in memory at every dispatch, so a program loaded
 * again at the same address is decoded again. */
typedef struct kn_rdna3_cache kn_rdna3_cache;
kn_rdna3_cache *kn_rdna3_cache_new(void);
void kn_rdna3_cache_free(kn_rdna3_cache *c);

/* One kernel dispatch, as an AQL kernel-dispatch packet and the loaded code object describe it. */
typedef struct {
  const char *name;          /* kernel symbol, for messages and counters */
  uint64_t kd_va;            /* GPU address of the 64-byte kernel descriptor (entry = kd_va + its code offset) */
  uint64_t kernarg_va;       /* GPU address of the kernel arguments */
  uint32_t grid[3];          /* work-items in each dimension (AQL grid_size), multiples of wg[] need not hold */
  uint32_t wg[3];            /* work-items per workgroup (AQL workgroup_size) */
  uint32_t group_segment_bytes; /* LDS per workgroup: the descriptor's plus the packet's dynamic amount */
  uint64_t aql_packet_va;    /* GPU address of the 64-byte AQL packet, for kernels that ask for a dispatch ptr; 0 when
                              * there is none (such a kernel is then refused) */
  kn_rdna3_cache *cache;     /* decoded programs to reuse; NULL decodes for this dispatch only */
  bool generic;              /* every instruction through the per-lane executors (no fast paths): for comparing */
  bool track_reads;          /* count distinct and fetched bytes per buffer (kn_rdna3_stats), at some cost */
  /* threads to run the workgroups on (device/pool.h; NULL: the calling thread alone). Workgroups are independent, so
   * each thread takes the next one not yet run; counters are summed, and a failing dispatch reports the first
   * workgroup (in launch order) that failed, as one thread would. Read tracking runs on the calling thread alone. */
  struct kn_pool *pool;
  const int *stop;           /* optional: once *stop is nonzero (read atomically) no further workgroup starts and the
                              * dispatch fails ("stopped by the host") */
} kn_rdna3_dispatch;

/* What a dispatch did, accumulated over its waves. */
enum { KN_RDNA3_SALU, KN_RDNA3_VALU, KN_RDNA3_SMEM, KN_RDNA3_VMEM, KN_RDNA3_LDS, KN_RDNA3_BRANCH, KN_RDNA3_OTHER,
       KN_RDNA3_NCLASS };
typedef struct {
  uint64_t insts[KN_RDNA3_NCLASS]; /* instructions issued, by class (per wave, not per lane) */
  uint64_t global_read, global_written; /* bytes moved by global/flat/buffer and SMEM instructions (active lanes) */
  /* With read tracking on (kn_rdna3_dispatch.track_reads, and a memory with regions): the distinct bytes the
   * dispatch read, the least it could read; and of the buffer it read most distinct bytes of (for a matrix-vector
   * product, the weight), the distinct bytes and the bytes fetched, where lanes of one instruction in one wave
   * that read the same bytes share one fetch (coalesced; a second wave reading them fetches them again); the same of the buffer it read second most of (the second weight of a
   * kernel that fuses two matmuls, e.g. gate and up). */
  uint64_t read_distinct, top_distinct, top_fetched, second_distinct, second_fetched;
  uint64_t waves, workgroups;
} kn_rdna3_stats;

/* Run a dispatch to completion. 0, or -1 with a message (unimplemented opcode with its encoding and the kernel
 * name, a fault at an unmapped address, a wave that runs past its code). stats may be NULL; it is added to. */
int kn_rdna3_run(const kn_rdna3_dispatch *d, const kn_rdna3_mem *mem, kn_rdna3_stats *stats, char *err,
                 size_t errlen);

/* The decoder, exposed for checking it against LLVM's disassembler: the length in bytes of the instruction at
 * words[0..n) (literals and DPP words included), its encoding family ("sop2", "vop3", "ds", ...), opcode and
 * mnemonic (NULL when LLVM knows none); 0 when the words are not a gfx11 encoding the interpreter decodes. */
unsigned kn_rdna3_decode(const uint32_t *words, size_t n, const char **family, unsigned *op, const char **mnemonic);

/* One instruction at words[0..n) (pc: its offset from the kernel's entry, for messages) run once by the
 * interpreter's executor on a scratch wave: its length in bytes, or 0 with the message a dispatch would fail with
 * (an instruction the emulator does not implement names its mnemonic). For walking the code objects a suite
 * compiled (tests/test_amd_kcache.c). */
unsigned kn_rdna3_probe(const uint32_t *words, size_t n, const char *kernel, uint64_t pc, char *err, size_t errlen);

/* Runs the vector ALU instruction at words[0..n) on a random wave state (seeded) through its fast path and through
 * the per-lane executor, and compares every register: 1 when both agree, 0 when the instruction has no fast path,
 * -1 with a message naming the first difference. */
int kn_rdna3_check_fast(const uint32_t *words, size_t n, uint64_t seed, char *err, size_t errlen);

/* Compiles the instructions at code[0..nwords) as one run of host code (rdna3_jit.c) and runs it on nstates random
 * wave states (seeded; with nan_free, no register holds a NaN) against the per-lane executors run one instruction
 * after another, comparing every register (a NaN equals any NaN): 1 when all agree, 0 when an instruction is not
 * one the translation takes, -1 with a message naming the first difference. */
int kn_rdna3_check_jit(const uint32_t *code, size_t nwords, uint64_t seed, int nstates, bool nan_free, char *err,
                       size_t errlen);

#endif
