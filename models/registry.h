/* Short model names (qwen2.5:7b, llama3.2:3b, ...) resolved to GGUF download URLs, downloaded once into the
 * cache directory with a progress bar. */
#ifndef KN_REGISTRY_H
#define KN_REGISTRY_H

#include <stddef.h>
#include <stdio.h>

/* A path to a local GGUF for name: name itself when it is a file; for a known short name the cached download,
 * fetching it first if needed. 0, or -1 with a message (unknown name, no network, disk full, ...). */
int kn_registry_resolve(const char *name, char *path, size_t pathlen, char *err, size_t errlen);
void kn_registry_print(FILE *f);

#endif
