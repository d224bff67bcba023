/* The real OS transport: libc open/ioctl/mmap, sysfs files read whole, and doorbells stored as a 64-bit write into
 * the doorbell page KFD mapped (the GPU's doorbell BAR). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "transport.h"

static int os_open(kn_amd_transport *t, const char *path, int flags) { return open(path, flags); }
static int os_close(kn_amd_transport *t, int fd) { return close(fd); }

static int os_ioctl(kn_amd_transport *t, int fd, unsigned long req, void *arg) {
  int rc;
  do rc = ioctl(fd, req, arg);
  while (rc == -1 && (errno == EINTR || errno == EAGAIN));
  return rc ? -1 : 0;
}

static void *os_mmap(kn_amd_transport *t, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

static int os_munmap(kn_amd_transport *t, void *addr, size_t len) { return munmap(addr, len); }

static long os_read_file(kn_amd_transport *t, const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  return (long)n;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int os_list_nodes(kn_amd_transport *t, const char *path, int *nodes, int max) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) && n < max;) {
    char *end;
    long v = strtol(e->d_name, &end, 10);
    if (end != e->d_name && !*end && v >= 0) nodes[n++] = (int)v;
  }
  closedir(d);
  qsort(nodes, (size_t)n, sizeof *nodes, cmp_int);
  return n;
}

static void os_doorbell(kn_amd_transport *t, volatile uint64_t *db, uint64_t value) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* packets and the write index reach memory before the GPU looks */
  *db = value;
}

static kn_amd_transport os_transport = {
    .name = "kfd", .open = os_open, .close = os_close, .ioctl = os_ioctl, .mmap = os_mmap, .munmap = os_munmap,
    .read_file = os_read_file, .list_nodes = os_list_nodes, .doorbell = os_doorbell,
};

kn_amd_transport *kn_amd_transport_os(void) { return &os_transport; }
