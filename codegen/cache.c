/* The kernel disk cache. An entry is one file, <key>.entry: magic, format version, header fields, the LLVM IR text,
 * the object bytes and a SHA-256 of all of it. Writers build the file under a temporary name in the same directory
 * and rename() it into place, so readers see a whole entry or none. Hits are counted by appending a byte to a
 * <key>.hits sidecar (O_APPEND), so the entry itself is never rewritten after it is stored. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../device/base/bytes.h"
#include "../device/base/env.h"
#include "codegen.h"
#include "llvm_target.h"
#include "sha256.h"

#define MAGIC "KILNKC\r\n" /* the CR LF pair catches text-mode mangling, like PNG's signature */
#define FORMAT_VERSION 1u
#define MAX_ENTRY (1ull << 30)

static _Atomic int64_t n_hits, n_misses, n_corrupt;
static _Atomic int store_off; /* set once the directory proved unwritable */

void kn_cache_counts(int64_t *hits, int64_t *misses, int64_t *corrupt) {
  if (hits) *hits = atomic_load(&n_hits);
  if (misses) *misses = atomic_load(&n_misses);
  if (corrupt) *corrupt = atomic_load(&n_corrupt);
}

bool kn_cache_enabled(void) { return kn_getenv_int("CACHELEVEL", 1) != 0; }

/* ---- key ---- */

static void hash_field(kn_sha256 *s, const void *p, size_t n) {
  uint64_t len = n; /* length-prefixed, so ("ab","c") and ("a","bc") differ */
  kn_sha256_update(s, &len, sizeof len);
  kn_sha256_update(s, p, n);
}
static void hash_str(kn_sha256 *s, const char *str) { hash_field(s, str ? str : "", str ? strlen(str) : 0); }

void kn_cache_key(const char *ir, const kn_target *t, int opt_level, char key[33]) {
  kn_sha256 s;
  kn_sha256_init(&s);
  char num[64];
  hash_str(&s, "kiln kernel cache key");
  snprintf(num, sizeof num, "codegen %d format %u opt %d", KN_CODEGEN_VERSION, FORMAT_VERSION, opt_level);
  hash_str(&s, num);
  hash_str(&s, kn_llvm_version());
  hash_str(&s, t->triple);
  hash_str(&s, t->cpu);
  hash_str(&s, t->features);
  hash_str(&s, ir);
  uint8_t d[32];
  kn_sha256_final(&s, d);
  kn_sha256_hex(d, 16, key);
}

static bool valid_key(const char *key) {
  if (!key || strlen(key) != 32) return false;
  for (int i = 0; i < 32; i++)
    if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return false;
  return true;
}

/* ---- directory ---- */

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static char dir_buf[4096];

const char *kn_cache_dir(void) {
  char d[4096];
  const char *env = getenv("KILN_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (env && *env) snprintf(d, sizeof d, "%s", env);
  else if (xdg && *xdg) snprintf(d, sizeof d, "%s/kiln", xdg);
  else snprintf(d, sizeof d, "%s/.cache/kiln", home && *home ? home : "/tmp");
  pthread_mutex_lock(&dir_lock);
  /* The buffer only changes when the environment did, so earlier results stay valid in practice. */
  if (strcmp(dir_buf, d)) snprintf(dir_buf, sizeof dir_buf, "%s", d);
  pthread_mutex_unlock(&dir_lock);
  return dir_buf;
}

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1;; s++) {
    if (*s == '/' || !*s) {
      char c = *s;
      *s = 0;
      if (mkdir(p, 0755) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
        return -1;
      }
      *s = c;
      if (!c) break;
    }
  }
  return 0;
}

static void entry_path(const char *key, const char *suffix, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s.%s", kn_cache_dir(), key, suffix);
}

/* ---- entry encoding ---- */

/* little-endian fields appended to a kn_bytes */
static void put(kn_bytes *w, const void *src, size_t n) { kn_bytes_put(w, src, n); }
static void put_u32(kn_bytes *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(kn_bytes *w, uint64_t v) { put(w, &v, 8); }
static void put_str(kn_bytes *w, const char *s) {
  size_t n = s ? strlen(s) : 0;
  put_u32(w, (uint32_t)n);
  put(w, s ? s : "", n);
}

typedef struct {
  const uint8_t *p;
  size_t n, off;
  const char *bad; /* first problem found */
} rbuf;

static const uint8_t *take(rbuf *r, uint64_t n) {
  if (r->bad) return NULL;
  if (n > r->n - r->off) {
    r->bad = "truncated";
    return NULL;
  }
  const uint8_t *q = r->p + r->off;
  r->off += n;
  return q;
}
static uint64_t get_u(rbuf *r, int bytes) {
  const uint8_t *q = take(r, (uint64_t)bytes);
  uint64_t v = 0;
  if (q) memcpy(&v, q, (size_t)bytes);
  return v;
}
static void get_str(rbuf *r, char *dst, size_t cap) {
  uint64_t n = get_u(r, 4);
  const uint8_t *q = take(r, n);
  dst[0] = 0;
  if (!q) return;
  size_t k = n < cap ? (size_t)n : cap - 1;
  memcpy(dst, q, k);
  dst[k] = 0;
}

typedef struct {
  kn_cache_entry e;
  char features[1024];
  uint64_t created;
  const char *ir; /* into the file buffer (not NUL-terminated) */
  uint64_t nir;
  const uint8_t *obj;
  uint64_t nobj;
} parsed;

/* Decode and verify a whole entry file. NULL on success, else the reason it is bad. */
static const char *parse_entry(const uint8_t *p, size_t n, parsed *out) {
  memset(out, 0, sizeof *out);
  if (n < 8 + 32 || memcmp(p, MAGIC, 8)) return n < 8 ? "truncated" : "bad magic";
  kn_sha256 s;
  uint8_t d[32];
  kn_sha256_init(&s);
  kn_sha256_update(&s, p, n - 32);
  kn_sha256_final(&s, d);
  rbuf r = {p, n - 32, 8, NULL};
  uint32_t ver = (uint32_t)get_u(&r, 4);
  out->created = get_u(&r, 8);
  get_str(&r, out->e.key, sizeof out->e.key);
  get_str(&r, out->e.name, sizeof out->e.name);
  get_str(&r, out->e.entry, sizeof out->e.entry);
  get_str(&r, out->e.triple, sizeof out->e.triple);
  get_str(&r, out->e.cpu, sizeof out->e.cpu);
  get_str(&r, out->features, sizeof out->features);
  out->nir = get_u(&r, 8);
  out->ir = (const char *)take(&r, out->nir);
  out->nobj = get_u(&r, 8);
  out->obj = take(&r, out->nobj);
  if (memcmp(d, p + n - 32, 32)) return r.bad ? r.bad : "checksum mismatch";
  if (ver != FORMAT_VERSION) return "unsupported format version"; /* intact, but written by another kiln */
  if (r.bad) return r.bad;
  if (r.off != r.n) return "trailing bytes";
  out->e.size = n;
  out->e.ok = true;
  return NULL;
}

/* Whole file into memory. -1 (errno set) when it cannot be read; size capped so a bogus file cannot exhaust memory. */
static int read_file(const char *path, uint8_t **data, size_t *n, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (fstat(fd, st) || (uint64_t)st->st_size > MAX_ENTRY) {
    close(fd);
    errno = EFBIG;
    return -1;
  }
  size_t sz = (size_t)st->st_size, got = 0;
  uint8_t *buf = malloc(sz ? sz : 1);
  if (!buf) {
    close(fd);
    return -1;
  }
  while (got < sz) {
    ssize_t k = read(fd, buf + got, sz - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  *data = buf;
  *n = got;
  return 0;
}

static int64_t read_hits(const char *key) {
  char path[4200];
  entry_path(key, "hits", path, sizeof path);
  struct stat st;
  return stat(path, &st) ? 0 : (int64_t)st.st_size;
}

static void count_hit(const char *key) {
  char path[4200];
  entry_path(key, "hits", path, sizeof path);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return; /* a read-only cache still serves hits; it just cannot count them */
  if (write(fd, "+", 1) < 0) { /* nothing to do: the count is advisory */
  }
  close(fd);
}

static void fill_entry(parsed *ps, const char *key, const struct stat *st) {
  if (!ps->e.key[0]) snprintf(ps->e.key, sizeof ps->e.key, "%s", key);
  ps->e.size = (size_t)st->st_size;
  double created = ps->created ? (double)ps->created : (double)st->st_mtime;
  ps->e.age_s = difftime(time(NULL), (time_t)created);
  if (ps->e.age_s < 0) ps->e.age_s = 0;
  ps->e.hits = read_hits(key);
}

/* ---- load / store ---- */

int kn_cache_load(const char *key, uint8_t **obj, size_t *n) {
  *obj = NULL;
  *n = 0;
  if (!kn_cache_enabled() || !valid_key(key)) return 0;
  char path[4200];
  entry_path(key, "entry", path, sizeof path);
  uint8_t *data = NULL;
  size_t sz = 0;
  struct stat st;
  if (read_file(path, &data, &sz, &st)) {
    atomic_fetch_add(&n_misses, 1);
    return 0;
  }
  parsed ps;
  const char *bad = parse_entry(data, sz, &ps);
  if (!bad && strcmp(ps.e.key, key)) bad = "holds a different key";
  if (bad) {
    if (kn_debug() >= 1) fprintf(stderr, "kiln cache: corrupt entry %s (%s): removed, recompiling\n", path, bad);
    kn_cache_remove(key);
    free(data);
    atomic_fetch_add(&n_corrupt, 1);
    atomic_fetch_add(&n_misses, 1);
    return 0;
  }
  uint8_t *o = malloc(ps.nobj ? ps.nobj : 1);
  if (!o) {
    free(data);
    atomic_fetch_add(&n_misses, 1);
    return 0;
  }
  memcpy(o, ps.obj, ps.nobj);
  free(data);
  *obj = o;
  *n = ps.nobj;
  count_hit(key);
  atomic_fetch_add(&n_hits, 1);
  return 1;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

static void disable_store(const char *dir, const char *why) {
  if (!atomic_exchange(&store_off, 1))
    fprintf(stderr, "kiln: kernel cache off for this process: %s (directory %s; set KILN_CACHE_DIR to a writable "
            "directory, or CACHELEVEL=0)\n", why, dir);
}

int kn_cache_store(const char *key, const char *name, const char *entry, const kn_target *t, const char *ir,
                   const uint8_t *obj, size_t n) {
  if (!kn_cache_enabled() || atomic_load(&store_off) || !valid_key(key) || !t || (!obj && n)) return -1;
  const char *dir = kn_cache_dir();
  char err[4600];
  if (make_dirs(dir, err, sizeof err)) {
    disable_store(dir, err);
    return -1;
  }
  kn_bytes w = {0};
  put(&w, MAGIC, 8);
  put_u32(&w, FORMAT_VERSION);
  put_u64(&w, (uint64_t)time(NULL));
  put_str(&w, key);
  put_str(&w, name);
  put_str(&w, entry);
  put_str(&w, t->triple);
  put_str(&w, t->cpu);
  put_str(&w, t->features);
  size_t nir = ir ? strlen(ir) : 0;
  put_u64(&w, nir);
  put(&w, ir ? ir : "", nir);
  put_u64(&w, n);
  put(&w, obj ? obj : (const uint8_t *)"", n);
  if (w.oom) {
    free(w.s);
    return -1;
  }
  kn_sha256 s;
  uint8_t d[32];
  kn_sha256_init(&s);
  kn_sha256_update(&s, w.s, w.len);
  kn_sha256_final(&s, d);
  put(&w, d, 32);

  static _Atomic unsigned seq;
  char tmp[4300], path[4200];
  snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%ld-%u", dir, key, (long)getpid(), atomic_fetch_add(&seq, 1));
  entry_path(key, "entry", path, sizeof path);
  int fd = w.oom ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, sizeof err, "cannot create %s: %s", tmp, strerror(errno));
    if (!w.oom) disable_store(dir, err);
    free(w.s);
    return -1;
  }
  /* No fsync: a torn file after a power loss fails its checksum and is recompiled, which is cheaper than a sync
   * per kernel on the first run of a model. */
  int rc = write_all(fd, (const uint8_t *)w.s, w.len);
  if (close(fd)) rc = -1;
  if (!rc && rename(tmp, path)) rc = -1;
  if (rc) {
    if (kn_debug() >= 1) fprintf(stderr, "kiln cache: writing %s failed: %s\n", path, strerror(errno));
    unlink(tmp);
  }
  free(w.s);
  return rc;
}

/* ---- inspection ---- */

int kn_cache_read_entry(const char *key, kn_cache_entry *e, char **ir, uint8_t **obj, size_t *n) {
  memset(e, 0, sizeof *e);
  if (ir) *ir = NULL;
  if (obj) *obj = NULL;
  if (n) *n = 0;
  if (!valid_key(key)) return -1;
  char path[4200];
  entry_path(key, "entry", path, sizeof path);
  uint8_t *data = NULL;
  size_t sz = 0;
  struct stat st;
  if (read_file(path, &data, &sz, &st)) return -1;
  parsed ps;
  const char *bad = parse_entry(data, sz, &ps);
  if (!bad && strcmp(ps.e.key, key)) bad = "holds a different key";
  if (bad) ps.e.ok = false;
  fill_entry(&ps, key, &st);
  *e = ps.e;
  int rc = bad ? -1 : 0;
  if (!bad && ir && (*ir = malloc(ps.nir + 1))) memcpy(*ir, ps.ir, ps.nir), (*ir)[ps.nir] = 0;
  if (!bad && obj && (*obj = malloc(ps.nobj ? ps.nobj : 1))) memcpy(*obj, ps.obj, ps.nobj), *n = ps.nobj;
  if (!bad && ((ir && !*ir) || (obj && !*obj))) rc = -1;
  free(data);
  return rc;
}

/* Keys of the entries in the directory, malloc'd array of 33-byte strings. */
static int list_keys(char (**keys)[33], int *nkeys) {
  *keys = NULL;
  *nkeys = 0;
  DIR *dir = opendir(kn_cache_dir());
  if (!dir) return errno == ENOENT ? 0 : -1;
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(dir))) {
    size_t len = strlen(de->d_name);
    if (len != 32 + 6 || strcmp(de->d_name + 32, ".entry")) continue;
    char k[33];
    memcpy(k, de->d_name, 32);
    k[32] = 0;
    if (!valid_key(k)) continue;
    if (*nkeys == cap) {
      cap = cap ? cap * 2 : 64;
      char(*nk)[33] = realloc(*keys, (size_t)cap * sizeof *nk);
      if (!nk) break;
      *keys = nk;
    }
    memcpy((*keys)[(*nkeys)++], k, 33);
  }
  closedir(dir);
  return 0;
}

int kn_cache_list(kn_cache_visit fn, void *ctx) {
  char(*keys)[33];
  int nk;
  if (list_keys(&keys, &nk)) return -1;
  int rc = 0;
  for (int i = 0; i < nk && !rc; i++) {
    kn_cache_entry e;
    if (kn_cache_read_entry(keys[i], &e, NULL, NULL, NULL) && !e.key[0]) continue; /* vanished meanwhile */
    rc = fn(&e, ctx);
  }
  free(keys);
  return rc;
}

int kn_cache_remove(const char *key) {
  if (!valid_key(key)) return -1;
  char path[4200];
  entry_path(key, "hits", path, sizeof path);
  unlink(path);
  entry_path(key, "entry", path, sizeof path);
  return unlink(path) ? -1 : 0;
}

int kn_cache_clear(void) {
  const char *d = kn_cache_dir();
  DIR *dir = opendir(d);
  if (!dir) return errno == ENOENT ? 0 : -1;
  int removed = 0;
  struct dirent *de;
  char path[4400];
  while ((de = readdir(dir))) {
    const char *nm = de->d_name;
    size_t len = strlen(nm);
    bool entry = len == 38 && !strcmp(nm + 32, ".entry"), hits = len == 37 && !strcmp(nm + 32, ".hits");
    bool tmp = !strncmp(nm, ".tmp-", 5);
    if (!entry && !hits && !tmp) continue; /* only kiln's own files: the directory may be shared */
    snprintf(path, sizeof path, "%s/%s", d, nm);
    if (!unlink(path) && entry) removed++;
  }
  closedir(dir);
  return removed;
}

char *kn_cache_disassemble(const kn_cache_entry *e, const uint8_t *obj, size_t n) {
  kn_target t = {.kind = strncmp(e->triple, "amdgcn", 6) ? KN_TARGET_CPU : KN_TARGET_AMDGPU};
  snprintf(t.triple, sizeof t.triple, "%s", e->triple);
  snprintf(t.cpu, sizeof t.cpu, "%s", e->cpu);
  return kn_llvm_disassemble(obj, n, &t);
}

/* ---- host code that devices compile for themselves (kn_object_store_ops, device/device.h) ---- */

/* The optimization level of those entries' key: theirs is the device's own pipeline, never codegen's OPT_LEVEL, so a
 * kernel and a device's module with the same IR text (never expected) still get different keys. */
enum { DEVICE_OBJECT_LEVEL = -1 };

static int store_load(const char *ir, const kn_target *t, uint8_t **obj, size_t *n) {
  char key[33];
  kn_cache_key(ir, t, DEVICE_OBJECT_LEVEL, key);
  return kn_cache_load(key, obj, n);
}

static void store_store(const char *ir, const kn_target *t, const char *name, const uint8_t *obj, size_t n) {
  char key[33];
  kn_cache_key(ir, t, DEVICE_OBJECT_LEVEL, key);
  kn_cache_store(key, name, name, t, ir, obj, n);
}

static const kn_object_store_ops object_store = {store_load, store_store};
static void offer(void) { kn_object_store_set(&object_store); }

void kn_cache_offer_object_store(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, offer);
}
