/* Compiled as strict C89 with -pedantic -Werror: kv/kv.h stays usable from any C compiler. */
#include "kv/kv.h"

int kv_h_c89_check(void);

int kv_h_c89_check(void) {
  kv_client* client = NULL;
  kv_stat stat;
  kv_change* change = NULL;
  int rc = kv_client_open(NULL, 0, &client);
  (void)stat;
  kv_change_free(change);
  kv_client_close(client);
  return rc == KV_OK ? 0 : 1;
}
