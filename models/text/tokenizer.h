/* models/text/tokenizer.h: text <-> token ids for GGUF language models.
 * Byte-level BPE ("gpt2": Qwen, Llama 3) and SentencePiece ("llama"), loaded from the tokenizer.ggml.* keys of a
 * GGUF file, with the same results as the reference implementation (llama.cpp) and the Hugging Face tokenizers. */
#ifndef KN_TOKENIZER_H
#define KN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kn_gguf;
typedef struct kn_tokenizer kn_tokenizer;

enum kn_tok_kind { KN_TOK_SPM = 1, KN_TOK_BPE = 2 };

/* Token attribute bits (kn_token_attr). The first six follow tokenizer.ggml.token_type (1..6). */
enum {
  KN_TOKEN_NORMAL = 1u << 0,
  KN_TOKEN_UNKNOWN = 1u << 1,
  KN_TOKEN_CONTROL = 1u << 2,
  KN_TOKEN_USER_DEFINED = 1u << 3,
  KN_TOKEN_UNUSED = 1u << 4,
  KN_TOKEN_BYTE = 1u << 5,
  KN_TOKEN_EOG = 1u << 6, /* ends generation: eos, eot, <|im_end|>, <|endoftext|>, <|eot_id|>, ... */
};

/* A vocabulary as plain arrays: what the tokenizer.ggml.* keys of a GGUF file hold. Optional arrays may be NULL;
 * ids < 0 and flags < 0 mean "key absent" (the model type's default applies). */
typedef struct kn_vocab_desc {
  const char *model; /* tokenizer.ggml.model: "gpt2" or "llama" */
  const char *pre;   /* tokenizer.ggml.pre; NULL = "default" */
  size_t n_tokens;
  const char *const *tokens;  /* tokenizer.ggml.tokens */
  const size_t *token_lens;   /* NULL: NUL-terminated */
  const float *scores;        /* tokenizer.ggml.scores (SentencePiece merge priority) */
  const int32_t *token_types; /* tokenizer.ggml.token_type */
  size_t n_merges;
  const char *const *merges; /* tokenizer.ggml.merges, "left right" */
  const size_t *merge_lens;
  int64_t bos, eos, eot, eom, unk, sep, pad;
  int add_bos, add_eos, add_space_prefix;
} kn_vocab_desc;

/* Fill every id and flag of *d with "absent" and every pointer with NULL. */
void kn_vocab_desc_init(kn_vocab_desc *d);

kn_tokenizer *kn_tokenizer_create(const kn_vocab_desc *d, char *err, size_t errlen);
/* Reads the tokenizer.ggml.* keys; an error names the key that is missing or malformed. */
kn_tokenizer *kn_tokenizer_load(const struct kn_gguf *g, char *err, size_t errlen);
void kn_tokenizer_free(kn_tokenizer *t);

int kn_tokenizer_kind(const kn_tokenizer *t);
const char *kn_tokenizer_pre(const kn_tokenizer *t);
int32_t kn_tokenizer_n_tokens(const kn_tokenizer *t);
int32_t kn_token_bos(const kn_tokenizer *t); /* -1 when the vocabulary has none */
int32_t kn_token_eos(const kn_tokenizer *t);
int32_t kn_token_eot(const kn_tokenizer *t);
int32_t kn_token_pad(const kn_tokenizer *t);
int32_t kn_token_unk(const kn_tokenizer *t);
bool kn_tokenizer_add_bos(const kn_tokenizer *t);
bool kn_tokenizer_add_eos(const kn_tokenizer *t);

unsigned kn_token_attr(const kn_tokenizer *t, int32_t id); /* 0 for an id out of range */
float kn_token_score(const kn_tokenizer *t, int32_t id);   /* tokenizer.ggml.scores; 0 when absent */
bool kn_token_is_eog(const kn_tokenizer *t, int32_t id);
/* The vocabulary entry as stored (e.g. "Ġthe", "▁the", "<|im_end|>"); NULL for an id out of range. */
const char *kn_token_text(const kn_tokenizer *t, int32_t id, size_t *len);
/* The bytes a token stands for (may be a partial UTF-8 sequence). Control/unknown tokens give their text only with
 * special=true, else an empty piece. NULL for an id out of range. */
const char *kn_token_piece(const kn_tokenizer *t, int32_t id, bool special, size_t *len);
/* The bytes of the strict UTF-8 sequence (no overlongs, surrogates or code points past U+10FFFF) that s begins
 * with, 0 if it begins with none. */
size_t kn_utf8_valid_prefix(const unsigned char *s, size_t n);
/* Exact-text lookup: any token, or (special) only control/user-defined/unknown tokens. -1 if absent. */
int32_t kn_token_lookup(const kn_tokenizer *t, const char *text, size_t len);
int32_t kn_token_special(const kn_tokenizer *t, const char *text);

/* Encode text. add_special: BOS/EOS as the vocabulary asks (tokenizer.ggml.add_bos_token ...). parse_special:
 * control-token text such as "<|im_start|>" becomes that token (user-defined tokens always do). On success
 * *ids is a malloc'd array the caller frees (NULL when *n_ids == 0). */
int kn_tokenize(const kn_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* kn_tokenize with special-token text parsed except inside the given byte ranges (sorted, not overlapping): text a
 * user typed stays text, while fragments between special tokens are encoded whole across range boundaries, as one
 * pass over the rendered prompt would encode them (what the reference does). */
typedef struct kn_text_span {
  size_t off, len;
} kn_text_span;
int kn_tokenize_plain(const kn_tokenizer *t, const char *text, size_t len, bool add_special, const kn_text_span *plain,
                      size_t n_plain, int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* Decode flags. */
enum {
  KN_DECODE_SPECIAL = 1u << 0,     /* render control tokens' text */
  KN_DECODE_STRIP_SPACE = 1u << 1, /* drop the space SentencePiece prepends to the first word */
  KN_DECODE_SKIP_BOS = 1u << 2,    /* drop a leading BOS */
};
/* Decode a sequence to bytes (NUL-terminated, malloc'd; *len excludes the NUL). NULL on a bad id. */
char *kn_detokenize(const kn_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, size_t *len, char *err,
                    size_t errlen);

/* Streaming detokenizer: emits only complete UTF-8, holding a partial sequence until the token that completes it
 * arrives; invalid bytes come out as U+FFFD. */
typedef struct kn_detok kn_detok;
kn_detok *kn_detok_new(const kn_tokenizer *t, unsigned flags);
/* *out points into the detokenizer (valid until the next call); returns -1 on an id out of range. */
int kn_detok_push(kn_detok *d, int32_t id, const char **out, size_t *len);
/* Emits what is held (an incomplete sequence as U+FFFD) and resets. */
void kn_detok_flush(kn_detok *d, const char **out, size_t *len);
void kn_detok_free(kn_detok *d);

#endif
