/* models/text/tokenizer_impl.h: private to the tokenizer files (tokenizer.c, bpe.c, spm.c, detok.c).
 * The loaded vocabulary: token table, text -> id and merge-pair hash maps (uthash), pre-tokenizer regexes. */
#ifndef KN_TOKENIZER_IMPL_H
#define KN_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <uthash.h>

#include "tokenizer.h"

#define KN_TOK_MAX_REGEX 4

struct kn_tok_info {
  uint32_t off, len;             /* vocabulary text in text_pool */
  uint32_t piece_off, piece_len; /* decoded bytes in piece_pool */
  float score;
  unsigned attr;
};

struct kn_tok_entry { /* text -> id; the key points into text_pool */
  int32_t id;
  UT_hash_handle hh;
};

struct kn_merge { /* (left id, right id) -> rank and merged id */
  uint64_t key;
  int32_t rank, result;
  UT_hash_handle hh;
};

struct kn_tokenizer {
  int kind;
  char pre[32];
  int32_t n_tokens;
  struct kn_tok_info *tok;
  char *text_pool, *piece_pool;
  struct kn_tok_entry *entries, *by_text;
  struct kn_merge *merge_arr, *merges;
  int32_t byte_tok[256];  /* BPE: token of each byte's GPT-2 character; SPM: <0xNN> */
  uint16_t byte_cpt[256]; /* BPE: byte -> GPT-2 character */
  int16_t cpt_byte[512];  /* and back; -1 where no byte maps */
  int32_t bos, eos, eot, eom, unk, sep, pad;
  bool add_bos, add_eos, add_space_prefix, ignore_merges;
  int32_t *special; /* control/user-defined/unknown tokens, longest text first */
  size_t n_special;
  pcre2_code *re[KN_TOK_MAX_REGEX];
  int n_re;
};

/* A growable id list. */
struct kn_ids {
  int32_t *v;
  size_t n, cap;
};
int kn_ids_push(struct kn_ids *a, int32_t id);

static inline uint64_t kn_pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r; }

int32_t kn_tok_find(const kn_tokenizer *t, const char *s, size_t n);
size_t kn_utf8_len(unsigned char lead); /* 1..4 from the lead byte (continuation bytes count as 1) */

/* bpe.c */
int kn_bpe_setup(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen);
int kn_bpe_encode(const kn_tokenizer *t, const char *text, size_t len, struct kn_ids *out, char *err, size_t errlen);
size_t kn_bpe_decode_text(const kn_tokenizer *t, const char *s, size_t n,
                          char *out); /* GPT-2 characters -> bytes; out holds n bytes */

/* spm.c */
int kn_spm_setup(kn_tokenizer *t, char *err, size_t errlen);
int kn_spm_encode(const kn_tokenizer *t, const char *text, size_t len, bool prefix_space, struct kn_ids *out, char *err,
                  size_t errlen);

#endif
