/* epoll_watch.c: watching several buckets from one event loop (epoll) through kv's C ABI.
 *
 * Each bucket named on the command line gets a subscription; its kv_subscription_fd() goes into
 * one epoll set. When an fd is readable, kv_subscription_try_next() is called until KV_TIMEOUT
 * (that makes the fd not readable again), printing each change. The same pattern fits poll(),
 * select(), libuv, or Python's asyncio (loop.add_reader).
 *
 * Usage: kv_epoll_watch [-n namespace] [-c count] bucket...
 *   Prints "<bucket> <key> SET|DELETED|EXPIRED|..." per change; exits after `count` changes
 *   (default: never). kvd must be running and the buckets must exist. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "kv/kv.h"

#define MAX_BUCKETS 64

static const char* kind_name(int kind) {
  switch (kind) {
    case KV_CHANGE_PUT:
      return "SET";
    case KV_CHANGE_DELETE:
      return "DELETED";
    case KV_CHANGE_CLEAR:
      return "CLEARED";
    case KV_CHANGE_MISSED:
      return "MISSED";
    case KV_CHANGE_RESYNC:
      return "RESYNC";
    case KV_CHANGE_EXPIRED:
      return "EXPIRED";
    default:
      return "UNKNOWN";
  }
}

int main(int argc, char** argv) {
  const char* ns = NULL;
  long count = -1;
  int opt;
  kv_client* client = NULL;
  kv_subscription* subs[MAX_BUCKETS];
  const char* names[MAX_BUCKETS];
  int n = 0;
  int ep;
  int i;
  int status = 1;

  while ((opt = getopt(argc, argv, "n:c:")) != -1) {
    if (opt == 'n')
      ns = optarg;
    else if (opt == 'c')
      count = strtol(optarg, NULL, 10);
    else
      return 2;
  }
  if (optind >= argc || argc - optind > MAX_BUCKETS) {
    fprintf(stderr, "usage: %s [-n namespace] [-c count] bucket...\n", argv[0]);
    return 2;
  }
  if (kv_client_open(ns, 0, &client) != KV_OK) {
    fprintf(stderr, "open: %s\n", kv_last_error());
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("epoll_create1");
    goto done;
  }
  for (i = optind; i < argc; ++i, ++n) {
    kv_bucket* bucket = NULL;
    struct epoll_event ev;
    int fd;
    names[n] = argv[i];
    subs[n] = NULL;
    if (kv_bucket_open(client, argv[i], &bucket) != KV_OK ||
        kv_subscribe(bucket, 0, &subs[n]) != KV_OK) {
      fprintf(stderr, "%s: %s\n", argv[i], kv_last_error());
      kv_bucket_close(bucket);
      goto done;
    }
    kv_bucket_close(bucket); /* the subscription outlives its bucket handle */
    fd = kv_subscription_fd(subs[n]);
    if (fd < 0) {
      fprintf(stderr, "%s: %s\n", argv[i], kv_last_error());
      ++n;
      goto done;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u32 = (unsigned)n;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      perror("epoll_ctl");
      ++n;
      goto done;
    }
  }
  printf("watching %d buckets\n", n);
  fflush(stdout);
  while (count != 0) {
    struct epoll_event events[MAX_BUCKETS];
    int ready = epoll_wait(ep, events, MAX_BUCKETS, -1);
    int e;
    if (ready < 0) {
      perror("epoll_wait");
      goto done;
    }
    for (e = 0; e < ready && count != 0; ++e) {
      unsigned b = events[e].data.u32;
      kv_change* change = NULL;
      int rc = KV_TIMEOUT;
      /* Take every waiting change: the fd stays readable until try_next says KV_TIMEOUT. */
      while (count != 0 && (rc = kv_subscription_try_next(subs[b], &change)) == KV_OK) {
        printf("%s %.*s %s\n", names[b], (int)change->key_len, (const char*)change->key,
               kind_name(change->kind));
        kv_change_free(change);
        if (count > 0) --count;
      }
      fflush(stdout);
      if (count != 0 && rc != KV_TIMEOUT) {
        fprintf(stderr, "%s: %s\n", names[b], kv_last_error());
        goto done;
      }
    }
  }
  status = 0;
done:
  for (i = 0; i < n; ++i) kv_subscription_close(subs[i]);
  if (ep >= 0) close(ep);
  kv_client_close(client);
  return status;
}
