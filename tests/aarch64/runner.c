/* The aarch64 half of the aarch64 kernel test: a freestanding static program (no libc: raw syscalls), linked with
 * the kernels gen.c compiled for aarch64 and the cases it wrote (matmuls and attention). Calls each kernel through kiln's CPU entry
 * convention (buffers, variables, work items [start, end)) over all its work items, compares every output with the
 * reference, prints one line per case and exits with the number of failures. */
#include "case.h"

static long sys3(long n, long a, long b, long c) {
  register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
}

static void put(const char *s) {
  long n = 0;
  while (s[n]) n++;
  sys3(64, 1, (long)s, n); /* write(1, s, n) */
}

static void put_int(long long v) {
  char b[24];
  int i = 23;
  b[i] = 0;
  int neg = v < 0;
  unsigned long long u = neg ? -(unsigned long long)v : (unsigned long long)v;
  do b[--i] = (char)('0' + u % 10), u /= 10;
  while (u);
  if (neg) b[--i] = '-';
  put(b + i);
}

/* the kernels may call these (LLVM lowers large copies and zeroing to them) */
void *memset(void *d, int c, unsigned long n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

/* each token of a matmul alone through its GEMV: the same bits (1 if not) */
static int check_alone(const kcase *k) {
  static float one[64] __attribute__((aligned(64)));
  long long vars[1] = {0}, bad = 0;
  union { float f; unsigned u; } a, b;
  for (long long t = 0; t < k->n / k->N; t++) {
    void *bufs[3] = {one, (float *)k->bufs[1] + t * k->K, k->bufs[2]};
    k->alone(bufs, vars, 0, k->alone_global);
    for (long long i = 0; i < k->N; i++) a.f = one[i], b.f = k->out[t * k->N + i], bad += a.u != b.u;
  }
  put(bad ? "FAIL " : "ok   "), put(k->name), put(" = each token alone");
  if (bad) put(": "), put_int(bad), put(" of "), put_int(k->n), put(" outputs differ");
  put("\n");
  return bad != 0;
}

int cmain(void) {
  int failed = 0, checks = nkcases;
  for (int c = 0; c < nkcases; c++) {
    const kcase *k = &kcases[c];
    for (long long i = 0; i < k->n; i++) k->out[i] = -12345.0f;
    long long vars[1] = {k->pos};
    k->fn((void **)k->bufs, vars, 0, k->global);
    long long bad = 0, first = -1;
    for (long long i = 0; i < k->n; i++) {
      float d = k->out[i] - k->want[i];
      if (!(d <= k->tol[i] && -d <= k->tol[i])) bad++, first = first < 0 ? i : first;
    }
    put(bad ? "FAIL " : "ok   "), put(k->name);
    if (bad) {
      put(": "), put_int(bad), put(" of "), put_int(k->n), put(" outputs wrong, first at "), put_int(first);
      put(" (got x1e6 "), put_int((long long)(k->out[first] * 1e6f)), put(", want x1e6 "), put_int((long long)(k->want[first] * 1e6f)), put(")");
    }
    put("\n");
    failed += bad != 0;
    if (k->alone) failed += check_alone(k), checks++;
  }
  put_int(checks - failed), put(" passed, "), put_int(failed), put(" failed\n");
  return failed;
}

__attribute__((naked, noreturn)) void _start(void) {
  __asm__ volatile("mov x29, #0\n"
                   "mov x30, #0\n"
                   "bl cmain\n"
                   "mov x8, #93\n" /* exit(cmain()) */
                   "svc #0\n");
}
