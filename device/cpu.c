/* The CPU backend: host memory (64-byte aligned, zeroed), programs linked in-process by LLVM's ORC JIT (one
 * JITDylib per program, so equal entry names in different programs never clash), and launches that split global[0]
 * across the thread pool. The target (cpu_target.c) is the host as LLVM detects it, or the one KILN_CPU names. */
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <elf.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "base/env.h"
#include "elf.h"
#include "pool.h"

#define BIG_ALLOC (1u << 20) /* from here on, buffers are their own mapping (zero pages, huge pages allowed) */

typedef struct {
  kn_pool *pool;
  pthread_mutex_t jit_lock;
  LLVMOrcLLJITRef jit; /* created on the first program load */
  uint64_t nprograms;
} cpu_dev;

typedef void (*cpu_entry)(void **bufs, const int64_t *vars, int64_t start, int64_t end);

typedef struct {
  LLVMOrcJITDylibRef jd;
  cpu_entry fn;
} cpu_prog;

static int fail_llvm(char *err, size_t errlen, const char *what, LLVMErrorRef e) {
  char *m = LLVMGetErrorMessage(e);
  kn_errf(err, errlen, "%s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return -1;
}

/* ---- target and threads ---- */


/* ---- memory ---- */

static int cpu_mem(const kn_device *d, uint64_t *total, uint64_t *avail) {
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || psz <= 0) return -1;
  *total = (uint64_t)pages * (uint64_t)psz;
  *avail = 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) { /* MemAvailable counts reclaimable page cache, which _SC_AVPHYS_PAGES does not */
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *avail = kb * 1024ull;
    fclose(f);
  }
  if (!*avail) {
    long ap = sysconf(_SC_AVPHYS_PAGES);
    *avail = ap > 0 ? (uint64_t)ap * (uint64_t)psz : 0;
  }
  return 0;
}

static int cpu_buf_alloc(kn_device *d, kn_buf *b, size_t nbytes, char *err, size_t errlen) {
  size_t sz = nbytes ? (nbytes + 63) & ~(size_t)63 : 64;
  if (sz < nbytes) return kn_errf(err, errlen, "buffer of %zu bytes: size overflows", nbytes);
  void *p = NULL;
  if (sz >= BIG_ALLOC) {
    p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return kn_errf(err, errlen, "CPU: cannot allocate %zu bytes: %s", nbytes, strerror(errno));
#ifdef MADV_HUGEPAGE
    madvise(p, sz, MADV_HUGEPAGE);
#endif
    b->priv = (void *)(uintptr_t)1; /* mapped */
  } else {
    int rc = posix_memalign(&p, 64, sz);
    if (rc) return kn_errf(err, errlen, "CPU: cannot allocate %zu bytes: %s", nbytes, strerror(rc));
    memset(p, 0, sz); /* same contents as a fresh mapping: runs are reproducible */
    b->priv = NULL;
  }
  b->ptr = p;
  b->va = (uint64_t)(uintptr_t)p;
  return 0;
}

static int cpu_buf_wrap_host(kn_device *d, kn_buf *b, void *ptr, size_t nbytes) {
  b->ptr = ptr;
  b->va = (uint64_t)(uintptr_t)ptr;
  b->priv = NULL;
  return 0;
}

static void cpu_buf_free(kn_buf *b) {
  if (b->borrowed || !b->ptr) return;
  if (b->priv) {
    size_t sz = (b->nbytes + 63) & ~(size_t)63;
    munmap(b->ptr, sz);
  } else {
    free(b->ptr);
  }
}

static int cpu_copyin(kn_buf *b, size_t off, const void *src, size_t n) {
  memcpy((char *)b->ptr + off, src, n);
  return 0;
}

static int cpu_copyout(const kn_buf *b, size_t off, void *dst, size_t n) {
  memcpy(dst, (const char *)b->ptr + off, n);
  return 0;
}

/* ---- programs ---- */

static uint16_t host_machine(void) {
#if defined(__x86_64__)
  return EM_X86_64;
#elif defined(__aarch64__)
  return EM_AARCH64;
#else
  return 0;
#endif
}

/* Reject objects for another machine before the JIT sees them: its message would not name the program. */
static int check_object(const kn_program *p, const void *obj, size_t n, char *err, size_t errlen) {
  Elf64_Ehdr h;
  if (!obj || n < sizeof h) return kn_errf(err, errlen, "program %s: object too small (%zu bytes)", p->entry, n);
  memcpy(&h, obj, sizeof h);
  if (memcmp(h.e_ident, ELFMAG, SELFMAG) || h.e_ident[EI_CLASS] != ELFCLASS64)
    return kn_errf(err, errlen, "program %s: not a 64-bit ELF object", p->entry);
  if (h.e_type != ET_REL) return kn_errf(err, errlen, "program %s: ELF type %u, expected a relocatable object", p->entry, h.e_type);
  if (host_machine() && h.e_machine != host_machine())
    return kn_errf(err, errlen, "program %s: object is for ELF machine %u, the CPU device runs machine %u", p->entry,
                h.e_machine, host_machine());
  return 0;
}

static int ensure_jit(cpu_dev *c, char *err, size_t errlen) {
  if (c->jit) return 0;
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&c->jit, NULL);
  if (e) {
    c->jit = NULL;
    return fail_llvm(err, errlen, "CPU: starting the JIT linker", e);
  }
  return 0;
}

/* Math functions kernels may call after LLVM scalarizes vector intrinsics. Bound explicitly so that a link with
 * --as-needed that dropped libm cannot leave a kernel with an unresolved symbol. */
static const struct {
  const char *name;
  void *addr;
} runtime_syms[] = {
  {"expf", (void *)expf},   {"exp2f", (void *)exp2f}, {"logf", (void *)logf},   {"log2f", (void *)log2f},
  {"sinf", (void *)sinf},   {"cosf", (void *)cosf},   {"powf", (void *)powf},   {"sqrtf", (void *)sqrtf},
  {"tanhf", (void *)tanhf}, {"fmaf", (void *)fmaf},   {"exp", (void *)exp},     {"exp2", (void *)exp2},
  {"log", (void *)log},     {"log2", (void *)log2},   {"sin", (void *)sin},     {"cos", (void *)cos},
  {"pow", (void *)pow},     {"sqrt", (void *)sqrt},   {"fma", (void *)fma},     {"memcpy", (void *)memcpy},
  {"memset", (void *)memset}, {"memmove", (void *)memmove},
};

static int add_runtime(cpu_dev *c, LLVMOrcJITDylibRef jd, char *err, size_t errlen) {
  size_t n = sizeof runtime_syms / sizeof *runtime_syms;
  LLVMOrcCSymbolMapPair pairs[sizeof runtime_syms / sizeof *runtime_syms];
  for (size_t i = 0; i < n; i++) {
    pairs[i].Name = LLVMOrcLLJITMangleAndIntern(c->jit, runtime_syms[i].name);
    pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)runtime_syms[i].addr;
    pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    pairs[i].Sym.Flags.TargetFlags = 0;
  }
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, n);
  LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu);
  if (e) {
    LLVMOrcDisposeMaterializationUnit(mu);
    return fail_llvm(err, errlen, "CPU: defining runtime symbols", e);
  }
  LLVMOrcDefinitionGeneratorRef gen;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(c->jit), NULL, NULL);
  if (e) return fail_llvm(err, errlen, "CPU: process symbol search", e);
  LLVMOrcJITDylibAddGenerator(jd, gen);
  return 0;
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  uint64_t addr;
  char msg[512];
} lookup_result;

static void on_lookup(LLVMErrorRef e, LLVMOrcCSymbolMapPairs res, size_t npairs, void *ctx) {
  lookup_result *r = ctx;
  pthread_mutex_lock(&r->mu);
  if (e) {
    char *m = LLVMGetErrorMessage(e);
    snprintf(r->msg, sizeof r->msg, "%s", m);
    LLVMDisposeErrorMessage(m);
  } else if (npairs >= 1) {
    r->addr = res[0].Sym.Address;
  }
  r->done = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* Look entry up in jd only; linking (relocation, external symbols) happens here, so its errors surface here. */
static int lookup_entry(cpu_dev *c, LLVMOrcJITDylibRef jd, const char *entry, uint64_t *addr, char *err,
                        size_t errlen) {
  lookup_result r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  LLVMOrcCJITDylibSearchOrderElement order = {jd, LLVMOrcJITDylibLookupFlagsMatchExportedSymbolsOnly};
  LLVMOrcCLookupSetElement sym = {LLVMOrcLLJITMangleAndIntern(c->jit, entry), LLVMOrcSymbolLookupFlagsRequiredSymbol};
  LLVMOrcExecutionSessionLookup(LLVMOrcLLJITGetExecutionSession(c->jit), LLVMOrcLookupKindStatic, &order, 1, &sym, 1,
                                on_lookup, &r);
  pthread_mutex_lock(&r.mu);
  while (!r.done) pthread_cond_wait(&r.cv, &r.mu);
  pthread_mutex_unlock(&r.mu);
  if (r.msg[0] || !r.addr) return kn_errf(err, errlen, "program %s: %s", entry, r.msg[0] ? r.msg : "entry not found");
  *addr = r.addr;
  return 0;
}

/* KILN_PERF_MAP=1: each loaded program's entry (address, size from the object's symbol table, name) is appended to
 * /tmp/perf-PID.map, the file perf reads to name JIT code, so `perf report` shows kernels by entry name. */
static void perf_map(const kn_program *p, const void *obj, size_t n, uint64_t addr) {
  if (kn_getenv_int("KILN_PERF_MAP", 0) <= 0) return;
  kn_elf e;
  char err[128];
  uint64_t size = 0;
  if (!kn_elf_parse(obj, n, &e, err, sizeof err)) {
    for (int i = 0; i < e.nsym; i++)
      if (!strcmp(e.sym[i].name, p->entry)) size = e.sym[i].size;
    kn_elf_free(&e);
  }
  char path[64];
  snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
  FILE *f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "%llx %llx %s\n", (unsigned long long)addr, (unsigned long long)(size ? size : 1), p->entry);
  fclose(f);
}

static int cpu_program_load(kn_device *d, kn_program *p, const void *obj, size_t n, char *err, size_t errlen) {
  cpu_dev *c = d->priv;
  if (check_object(p, obj, n, err, errlen)) return -1;
  cpu_prog *cp = calloc(1, sizeof *cp);
  if (!cp) return kn_errf(err, errlen, "out of memory");
  pthread_mutex_lock(&c->jit_lock);
  int rc = ensure_jit(c, err, errlen);
  char jdname[128];
  snprintf(jdname, sizeof jdname, "kn%llu.%s", (unsigned long long)++c->nprograms, p->entry);
  if (!rc) {
    cp->jd = LLVMOrcExecutionSessionCreateBareJITDylib(LLVMOrcLLJITGetExecutionSession(c->jit), jdname);
    rc = cp->jd ? add_runtime(c, cp->jd, err, errlen) : kn_errf(err, errlen, "CPU: cannot create a JIT library");
  }
  if (!rc) {
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, n, jdname);
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(c->jit, cp->jd, mb);
    if (e) rc = fail_llvm(err, errlen, "CPU: adding the object", e);
  }
  uint64_t addr = 0;
  if (!rc) rc = lookup_entry(c, cp->jd, p->entry, &addr, err, errlen);
  if (rc && cp->jd) {
    LLVMErrorRef e = LLVMOrcJITDylibClear(cp->jd);
    if (e) LLVMConsumeError(e);
  }
  pthread_mutex_unlock(&c->jit_lock);
  if (rc) {
    free(cp);
    return -1;
  }
  cp->fn = (cpu_entry)(uintptr_t)addr;
  p->priv = cp;
  perf_map(p, obj, n, addr);
  return 0;
}

static void cpu_program_free(kn_program *p) {
  cpu_prog *cp = p->priv;
  if (!cp) return;
  cpu_dev *c = p->dev->priv;
  pthread_mutex_lock(&c->jit_lock);
  /* The (now empty) JITDylib stays in the session: the C API cannot remove one. Its code and data are freed. */
  LLVMErrorRef e = LLVMOrcJITDylibClear(cp->jd);
  if (e) LLVMConsumeError(e);
  pthread_mutex_unlock(&c->jit_lock);
  free(cp);
}

/* ---- launches ---- */

typedef struct {
  cpu_entry fn;
  void **bufs;
  const int64_t *vars;
} launch_ctx;

static void run_range(void *ctx, int64_t start, int64_t end) {
  launch_ctx *l = ctx;
  l->fn(l->bufs, l->vars, start, end);
}

static int cpu_launch(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars,
                      const int64_t global[3], const int64_t local[3], char *err, size_t errlen) {
  cpu_prog *cp = p->priv;
  if (global[1] > 1 || global[2] > 1)
    return kn_errf(err, errlen, "program %s: CPU launches split global[0] only (got global [%lld,%lld,%lld])", p->entry,
                (long long)global[0], (long long)global[1], (long long)global[2]);
  void *ptrs[64];
  void **arr = nbufs <= 64 ? ptrs : malloc((size_t)nbufs * sizeof *arr);
  if (!arr) return kn_errf(err, errlen, "out of memory");
  for (int i = 0; i < nbufs; i++) arr[i] = bufs[i]->ptr;
  static const int64_t novars[1] = {0};
  launch_ctx l = {cp->fn, arr, nvars > 0 ? vars : novars};
  kn_pool_run(((cpu_dev *)p->dev->priv)->pool, run_range, &l, global[0]);
  if (arr != ptrs) free(arr);
  return 0;
}

static int cpu_sync(kn_device *d) { return 0; } /* launches return when their work is done */

static void cpu_close(kn_device *d) {
  cpu_dev *c = d->priv;
  if (!c) return;
  kn_pool_free(c->pool);
  if (c->jit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(c->jit);
    if (e) LLVMConsumeError(e);
  }
  pthread_mutex_destroy(&c->jit_lock);
  free(c);
}

static const kn_device_ops cpu_ops = {
  .close = cpu_close,
  .mem = cpu_mem,
  .buf_alloc = cpu_buf_alloc,
  .buf_wrap_host = cpu_buf_wrap_host,
  .buf_free = cpu_buf_free,
  .copyin = cpu_copyin,
  .copyout = cpu_copyout,
  .program_load = cpu_program_load,
  .program_free = cpu_program_free,
  .launch = cpu_launch,
  .sync = cpu_sync,
};

int kn_cpu_open(kn_device *d, char *err, size_t errlen) {
  int threads = 1;
  if (kn_threads_from_env(&threads, err, errlen) || kn_cpu_target(&d->target, threads, err, errlen)) return -1;
  cpu_dev *c = calloc(1, sizeof *c);
  if (!c) return kn_errf(err, errlen, "out of memory");
  pthread_mutex_init(&c->jit_lock, NULL);
  if (!(c->pool = kn_pool_new(threads, err, errlen))) {
    pthread_mutex_destroy(&c->jit_lock);
    free(c);
    return -1;
  }
  d->ops = &cpu_ops;
  d->priv = c;
  if (kn_debug() >= 1) {
    uint64_t total = 0, avail = 0;
    cpu_mem(d, &total, &avail);
    fprintf(stderr, "device CPU: %s %s (%s), %d threads, %d-byte vectors, %.1f GiB memory (%.1f GiB available)\n",
            d->target.triple, d->target.cpu, getenv("KILN_CPU") && strcmp(getenv("KILN_CPU"), "native") ? "KILN_CPU" : "host", threads, d->target.vector_bytes, total / 1073741824.0,
            avail / 1073741824.0);
  }
  return 0;
}
