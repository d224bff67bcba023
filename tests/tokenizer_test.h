/* tests/tokenizer_test.h: what the two files of the test_tokenizer program share. */
#ifndef KN_TOKENIZER_TEST_H
#define KN_TOKENIZER_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/gguf.h"
#include "models/text/tokenizer.h"

extern char testdata[1024];

void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
kn_gguf *open_gguf(const char *rel);
void ids_str(const int32_t *ids, size_t n, char *out, size_t cap);
bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb);
void show_text(const char *s, size_t n, char *out, size_t cap);
void check_roundtrip(const kn_tokenizer *t, const char *what, const char *text, size_t len, bool parse_special);

/* tokenizer_random.c */
uint32_t rnd(uint32_t n);
size_t random_text(char *out, size_t cap);
size_t gpt2_char(unsigned char b, char *o);
void test_streaming(const kn_tokenizer *t, const char *name);
void test_random_stream(const kn_tokenizer *t, const char *name);
void test_random_roundtrip(const kn_tokenizer *t, const char *name);
void test_naive_bpe(const kn_tokenizer *t, const char *gguf_rel);
void test_naive_spm(const kn_tokenizer *t);

#endif
