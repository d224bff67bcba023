/* libFuzzer target: a request body as `kiln serve` reads it: the JSON reader, the OpenAI field checks of a chat and of
 * a completion, the conversation, and the tojson printer over the whole tree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apps/serve.h"
#include "models/text/chat_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kn_sample_params d = kn_sample_defaults();
  for (int kind = 0; kind < 2; kind++) {
    oai_req q;
    oai_error e;
    if (oai_parse((const char *)data, size, kind ? REQ_COMPLETION : REQ_CHAT, &d, 0, &q, &e) == 0 && kind == 0) {
      char err[512];
      kn_chat *c = kn_chat_from_cjson(q.root, err, sizeof err);
      kn_chat_free(c);
    } else if (q.root == NULL && e.message[0] == 0) {
      abort(); /* a refusal always says why */
    }
    if (q.root) {
      kn_bytes b = {0};
      knj_dump(&b, q.root, kind ? 2 : -1);
      kn_bytes_free(&b);
    }
    oai_req_free(&q);
  }
  return 0;
}
