/* The pass/fail bookkeeping every test program shares: check() counts a case and prints a line for a failure;
 * check_summary() prints the "N passed, M failed" line the test runner sums and gives the exit code. */
#ifndef KN_TEST_CHECK_H
#define KN_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int passed, failed;

__attribute__((unused)) static void vfail_line(const char *fmt, va_list ap) {
  printf("FAIL: ");
  vprintf(fmt, ap);
  printf("\n");
}

/* One "FAIL: ..." line; for tests that count their cases themselves. */
__attribute__((format(printf, 1, 2), unused)) static void fail_line(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail_line(fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 2, 3), unused)) static bool check(bool ok, const char *fmt, ...) {
  if (ok) {
    passed++;
    return true;
  }
  failed++;
  va_list ap;
  va_start(ap, fmt);
  vfail_line(fmt, ap);
  va_end(ap);
  return false;
}

/* with the file and line of the check */
#define CHECK(cond, ...) check((cond), __FILE__ ":" KN_STR(__LINE__) ": " __VA_ARGS__)
#define KN_STR(x) KN_STR_(x)
#define KN_STR_(x) #x

__attribute__((unused)) static int check_summary(void) {
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#endif
