/* apps/serve_guard.c: deadlines per connection of `kiln serve`. libmicrohttpd's own timeout is an idle timeout that
 * every byte resets, so a client sending one header byte a second would hold its connection (and its thread)
 * forever. Here each connection has a deadline for the phase it is in: its headers (from the connection's start),
 * its body (from the end of the headers), and the next request on a kept-alive connection; a reaper thread shuts
 * down the sockets that pass theirs. Generation has no deadline: a request being answered is never cut. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "device/base/env.h"
#include "serve.h"

typedef struct gconn {
  struct gconn *prev, *next;
  int fd;
  guard_phase phase;
  double deadline;
  bool cut;
} gconn;

struct guard {
  srv *S;
  double timeout[G_BUSY]; /* per phase */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  gconn *head;
  bool stop;
  pthread_t th;
  unsigned long n_cut[G_BUSY];
};

static void *reaper(void *arg) {
  guard *g = arg;
  static const char *what[G_BUSY] = {"their headers", "their body", "a next request"};
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    double now = kn_now();
    unsigned long cut[G_BUSY] = {0};
    /* The socket is shut down, never closed, here: it stays ours until libmicrohttpd reports the connection closed
     * (guard_notify, under this lock), so the descriptor cannot belong to another connection yet. */
    for (gconn *c = g->head; c; c = c->next)
      if (c->phase < G_BUSY && !c->cut && now > c->deadline) {
        c->cut = true;
        cut[c->phase]++;
        shutdown(c->fd, SHUT_RDWR);
      }
    for (int p = 0; p < G_BUSY; p++)
      if (cut[p]) {
        g->n_cut[p] += cut[p];
        pthread_mutex_lock(&g->S->log_mu);
        fprintf(stderr, "kiln serve: closed %lu connection%s that did not send %s within %g s (%lu so far)\n", cut[p],
                cut[p] == 1 ? "" : "s", what[p], g->timeout[p], g->n_cut[p]);
        pthread_mutex_unlock(&g->S->log_mu);
      }
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

guard *guard_new(srv *S, double header_s, double body_s, double idle_s) {
  guard *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->S = S;
  g->timeout[G_HEADERS] = header_s, g->timeout[G_BODY] = body_s, g->timeout[G_IDLE] = idle_s;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  if (pthread_create(&g->th, NULL, reaper, g)) {
    pthread_mutex_destroy(&g->mu), pthread_cond_destroy(&g->cv), free(g);
    return NULL;
  }
  return g;
}

void guard_free(guard *g) {
  if (!g) return;
  pthread_mutex_lock(&g->mu);
  g->stop = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->th, NULL);
  for (gconn *c = g->head, *n; c; c = n) n = c->next, free(c);
  pthread_mutex_destroy(&g->mu), pthread_cond_destroy(&g->cv);
  free(g);
}

void guard_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
  guard *g = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    gconn *e = ci ? calloc(1, sizeof *e) : NULL;
    *socket_context = e;
    if (!e) return; /* untracked: libmicrohttpd's idle timeout still applies */
    e->fd = ci->connect_fd;
    e->phase = G_HEADERS;
    e->deadline = kn_now() + g->timeout[G_HEADERS];
    pthread_mutex_lock(&g->mu);
    e->next = g->head;
    if (g->head) g->head->prev = e;
    g->head = e;
    pthread_mutex_unlock(&g->mu);
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    gconn *e = *socket_context;
    if (!e) return;
    pthread_mutex_lock(&g->mu);
    if (e->prev) e->prev->next = e->next;
    else g->head = e->next;
    if (e->next) e->next->prev = e->prev;
    pthread_mutex_unlock(&g->mu);
    free(e);
    *socket_context = NULL;
  }
}

static gconn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

bool guard_enter(guard *g, struct MHD_Connection *c, guard_phase p) {
  gconn *e = g ? conn_of(c) : NULL;
  if (!e) return false;
  pthread_mutex_lock(&g->mu);
  bool was_cut = e->cut;
  e->phase = p;
  if (p < G_BUSY) e->deadline = kn_now() + g->timeout[p];
  pthread_mutex_unlock(&g->mu);
  return was_cut;
}
