/* The CPU device's code generation target: the host as LLVM detects it, or a narrower one named by KILN_CPU
 * (x86-64-v3 on an AVX-512 host emits and runs the AVX2 code), so every vector width a user may have is testable on
 * the machine at hand. A named target must be one the host can run; the kernel cache keys on cpu and features. */
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "base/env.h"

/* x86-64 micro-architecture levels (the psABI's), and CPUs LLVM knows named by their level plus extras. */
#define X86_V1 "+cmov,+cx8,+fxsr,+mmx,+sse,+sse2"
#define X86_V2 X86_V1 ",+cx16,+sahf,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3"
#define X86_V3 X86_V2 ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
#define X86_V4 X86_V3 ",+evex512,+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl"

static const struct {
  const char *name, *features;
} named[] = {
  {"x86-64", X86_V1},
  {"x86-64-v2", X86_V2},
  {"x86-64-v3", X86_V3},
  {"x86-64-v4", X86_V4},
  {"haswell", X86_V3},
  {"skylake", X86_V3},
  {"alderlake", X86_V3 ",+avxvnni,+gfni"},
  {"znver2", X86_V3},
  {"znver3", X86_V3},
  {"skylake-avx512", X86_V4},
  {"cascadelake", X86_V4 ",+avx512vnni"},
  {"icelake-server", X86_V4 ",+avx512vnni,+avx512vbmi,+gfni"},
  {"sapphirerapids", X86_V4 ",+avx512vnni,+avx512vbmi,+avx512bf16,+avxvnni,+gfni"},
  {"znver4", X86_V4 ",+avx512vnni,+avx512vbmi,+avx512bf16,+gfni"},
  {"znver5", X86_V4 ",+avx512vnni,+avx512vbmi,+avx512bf16,+avxvnni,+gfni"},
};

bool kn_cpu_has_feature(const char *features, const char *name) {
  size_t n = strlen(name);
  for (const char *p = features; (p = strstr(p, name)); p += n)
    if (p > features && p[-1] == '+' && (p[n] == ',' || p[n] == 0) && (p - 1 == features || p[-2] == ','))
      return true;
  return false;
}

/* The host feature string, or its enabled half when the full one would not fit (the CPU name implies the rest). */
static void host_features(char *dst, size_t cap) {
  char *f = LLVMGetHostCPUFeatures();
  dst[0] = 0;
  if (f && strlen(f) < cap) {
    memcpy(dst, f, strlen(f) + 1);
  } else if (f) {
    size_t len = 0;
    for (char *tok = strtok(f, ","); tok; tok = strtok(NULL, ",")) {
      size_t tl = strlen(tok);
      if (tok[0] != '+' || len + tl + 2 > cap) continue;
      if (len) dst[len++] = ',';
      memcpy(dst + len, tok, tl + 1);
      len += tl;
    }
  }
  LLVMDisposeMessage(f);
}

/* Every feature the named target enables must be one the host has, or its code would fault. The error names every
 * missing one (LLVM lists evex512 before the avx512* features it goes with). */
static int check_subset(const char *want, const char *host, const char *name, char *err, size_t errlen) {
  char buf[1024], missing[512] = "";
  size_t len = 0;
  snprintf(buf, sizeof buf, "%s", want);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    if (tok[0] == '+' && !kn_cpu_has_feature(host, tok + 1) && len + strlen(tok) + 2 < sizeof missing)
      len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%s", len ? ", " : "", tok + 1);
  if (len) return kn_errf(err, errlen, "KILN_CPU=%s needs %s, which this host does not have", name, missing);
  return 0;
}

/* The named features, then every feature the host reports absent ("-amx-tile"): LLVM enables all that a CPU name
 * implies, and the table lists only what the kernels look for, so KILN_CPU=sapphirerapids on a Zen 5 host emitted
 * AVX512-FP16 and AMX-era instructions the host faults on. The host's list has its absent features only when it was
 * read whole; without them the target stays the named one (as on hosts whose LLVM reports no absent features). */
static int without_absent(char *dst, size_t cap, const char *want, const char *host, const char *name, char *err,
                          size_t errlen) {
  size_t len = (size_t)snprintf(dst, cap, "%s", want);
  for (const char *p = host; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
    size_t n = strcspn(p, ",");
    if (p[0] != '-' || n < 2) continue;
    if (len + n + 2 > cap) return kn_errf(err, errlen, "KILN_CPU=%s: the target's feature list is too long", name);
    dst[len++] = ',';
    memcpy(dst + len, p, n);
    dst[len += n] = 0;
  }
  return 0;
}

static int named_target(kn_target *t, const char *name, const char *host, char *err, size_t errlen) {
  if (strncmp(t->triple, "x86_64", 6))
    return kn_errf(err, errlen, "KILN_CPU=%s: only 'native' is known on %s", name, t->triple);
  for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
    if (strcmp(named[i].name, name)) continue;
    if (check_subset(named[i].features, host, name, err, errlen)) return -1;
    snprintf(t->cpu, sizeof t->cpu, "%s", name);
    return without_absent(t->features, sizeof t->features, named[i].features, host, name, err, errlen);
  }
  char known[512];
  size_t o = 0;
  for (size_t i = 0; i < sizeof named / sizeof *named && o < sizeof known; i++)
    o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", named[i].name);
  return kn_errf(err, errlen, "KILN_CPU=%s is not a known CPU (native, %s)", name, known);
}

int kn_cpu_target(kn_target *t, int threads, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  t->kind = KN_TARGET_CPU;
  char *triple = LLVMGetDefaultTargetTriple();
  char *norm = LLVMNormalizeTargetTriple(triple);
  snprintf(t->triple, sizeof t->triple, "%s", norm);
  LLVMDisposeMessage(norm);
  LLVMDisposeMessage(triple);
  char *cpu = LLVMGetHostCPUName();
  snprintf(t->cpu, sizeof t->cpu, "%s", cpu);
  LLVMDisposeMessage(cpu);
  host_features(t->features, sizeof t->features);
  const char *want = getenv("KILN_CPU");
  if (want && *want && strcmp(want, "native")) {
    char host[sizeof t->features];
    memcpy(host, t->features, sizeof host);
    if (named_target(t, want, host, err, errlen)) return -1;
  }
  t->vector_bytes = kn_cpu_has_feature(t->features, "avx512f") ? 64 : kn_cpu_has_feature(t->features, "avx2") ? 32 : 16;
  t->ncores = threads;
  return 0;
}
