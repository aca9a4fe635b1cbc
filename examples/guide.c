/* guide.c: the Elixir guide's bucket session through kv's C ABI (kv/kv.h).
 *
 *   CREATE shopping, PUT milk 1, GET milk, DELETE milk, GET milk
 *
 * Usage: kv_guide_c [namespace]   (default: $KV_NAMESPACE, else "kv"; kvd must be running)
 * Prints one line per step; exits 1 with the error on stderr if a step fails unexpectedly. */
#include <stdio.h>

#include "kv/kv.h"

static int check(int rc, const char* step) {
  if (rc != KV_OK) fprintf(stderr, "%s failed: %s\n", step, kv_last_error());
  return rc;
}

int main(int argc, char** argv) {
  kv_client* client = NULL;
  kv_bucket* bucket = NULL;
  void* value = NULL;
  size_t len = 0;
  int rc;
  int status = 1;

  if (check(kv_client_open(argc > 1 ? argv[1] : NULL, 0, &client), "open") != KV_OK) return 1;
  if (check(kv_bucket_create(client, "shopping"), "CREATE") != KV_OK) goto done;
  printf("CREATE shopping -> OK\n");
  if (check(kv_bucket_open(client, "shopping", &bucket), "open bucket") != KV_OK) goto done;

  if (check(kv_put(bucket, "milk", 4, "1", 1), "PUT") != KV_OK) goto done;
  printf("PUT shopping milk 1 -> OK\n");

  if (check(kv_get(bucket, "milk", 4, &value, &len), "GET") != KV_OK) goto done;
  printf("GET shopping milk -> %.*s\n", (int)len, (const char*)value);
  kv_free(value);

  if (check(kv_del(bucket, "milk", 4, &value, &len), "DELETE") != KV_OK) goto done;
  printf("DELETE shopping milk -> OK (was %.*s)\n", (int)len, (const char*)value);
  kv_free(value);

  rc = kv_get(bucket, "milk", 4, &value, &len);
  if (rc != KV_NOTFOUND) {
    if (rc == KV_OK) kv_free(value);
    fprintf(stderr, "GET after DELETE: expected NOT_FOUND, got %s\n", kv_strerror(rc));
    goto done;
  }
  printf("GET shopping milk -> NOT_FOUND\n");
  status = 0;

done:
  kv_bucket_close(bucket);
  kv_client_close(client);
  return status;
}
