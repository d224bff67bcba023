/* Private to codegen/ (and apps/cache.c): the kernel disk cache. One file per entry under KILN_CACHE_DIR, written
 * to a temp file and renamed so concurrent processes never see half an entry; every entry carries a checksum so a
 * corrupt or truncated one is detected, reported at DEBUG>=1, removed and recompiled, never executed. */
#ifndef KN_CACHE_H
#define KN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/device.h"

/* key = hash(LLVM IR text, triple, cpu, features, opt level, LLVM version, KN_CODEGEN_VERSION), 32 hex chars */
void kn_cache_key(const char *ir, const kn_target *t, int opt_level, char key[33]);
bool kn_cache_enabled(void); /* CACHELEVEL != 0 */
/* The cache directory: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln (created on demand). */
const char *kn_cache_dir(void);
/* 1 on a hit (obj malloc'd, entry name returned), 0 on a miss or a corrupt entry (removed). */
int kn_cache_load(const char *key, uint8_t **obj, size_t *n);
int kn_cache_store(const char *key, const char *name, const char *entry, const kn_target *t, const char *ir,
                   const uint8_t *obj, size_t n);

/* For `kiln cache`: iterate entries. */
typedef struct {
  char key[33];
  char name[64];
  char entry[96];
  char triple[64], cpu[64];
  size_t size;      /* bytes of the entry file */
  double age_s;     /* since written */
  int64_t hits;
  bool ok;          /* checksum verified */
} kn_cache_entry;
typedef int (*kn_cache_visit)(const kn_cache_entry *e, void *ctx);
int kn_cache_list(kn_cache_visit fn, void *ctx);
/* Load one entry in full (IR text and object) for `kiln cache show`. Strings malloc'd. */
int kn_cache_read_entry(const char *key, kn_cache_entry *e, char **ir, uint8_t **obj, size_t *n);
int kn_cache_remove(const char *key);
int kn_cache_clear(void);
/* This process's loads so far: hits, misses (corrupt entries count as misses too) and corrupt entries found;
 * kn_cache_process_stats (codegen.c) reports these. */
void kn_cache_counts(int64_t *hits, int64_t *misses, int64_t *corrupt);
/* Offers the cache to devices for the host code they compile for themselves (kn_object_store_set, device.h: the
 * emulated GPU's translation of hot kernels); kn_compile calls it. Entries are keyed like kernels' (their IR, target,
 * LLVM version), with an optimization level of -1. */
void kn_cache_offer_object_store(void);
/* Disassembly of an entry's object for its own target (kiln cache show), malloc'd; NULL on failure. */
char *kn_cache_disassemble(const kn_cache_entry *e, const uint8_t *obj, size_t n);

#endif
