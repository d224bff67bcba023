/* models/text/chat_tokens.c: a rendered chat prompt to token ids, the way the chat references were made: special-token
 * text of the template parsed ("<|eot_id|>" is one token), text that came from the conversation not parsed (a user
 * typing "<|im_end|>" gets plain text), the text between special tokens encoded in one piece, and a BOS in front
 * when the template does not write one. */
#include <stdlib.h>
#include <string.h>

#include "models/text/chat.h"
#include "models/text/tokenizer.h"
#include "device/base/env.h"

int kn_chat_prompt_tokenize(const kn_tokenizer *t, kn_chat_family f, const kn_chat_prompt *p, int32_t **ids,
                            size_t *n, char *err, size_t errlen)
{
    *ids = NULL, *n = 0;
    kn_text_span *plain = malloc((p->n_data ? p->n_data : 1) * sizeof *plain);
    if (!plain)
        return kn_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < p->n_data; i++)
        plain[i] = (kn_text_span){p->data[i].off, p->data[i].len};
    bool bos = kn_tokenizer_add_bos(t) && !kn_chat_family_has_bos(f);
    int rc = kn_tokenize_plain(t, p->text, p->len, bos, plain, p->n_data, ids, n, err, errlen);
    free(plain);
    return rc;
}
