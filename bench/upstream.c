// feuille-bench-upstream: a fast HTTP/1.1 upstream for bench/proxy.sh, so
// that the proxies are what is measured, not the upstream (the stand-in
// editor serves ~8k requests/s; this one several times what any proxy in
// front of it can). One epoll loop per worker (--workers N, sharing the
// listening socket), keep-alive, requests parsed only as far as needed:
//   any target containing "_bytes?size=N"  200, N bytes of 'a'..'z' repeated
//   anything else                          200, "ok"
// Request bodies (Content-Length) are read and dropped. Static, so it runs
// in the stand-in image from the workspace's folder.
//   feuille-bench-upstream --port P [--host 127.0.0.1] [--workers 1] [ignored arguments...]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kBuf = 16384, kMaxSizes = 16 };

struct conn {
  int fd;
  char in[kBuf];
  size_t in_len;
  size_t skip;      // body bytes still to drop
  const char* out;  // pending response bytes (a cached response)
  size_t out_left;
};

static struct {
  size_t size;
  char* data;
  size_t len;
} responses[kMaxSizes];
static int n_responses;

static const char* response_for(size_t size, size_t* len) {
  for (int i = 0; i < n_responses; ++i)
    if (responses[i].size == size) {
      *len = responses[i].len;
      return responses[i].data;
    }
  char head[128];
  int h = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n", size);
  char* r = malloc((size_t)h + size);
  memcpy(r, head, (size_t)h);
  for (size_t i = 0; i < size; ++i) r[h + i] = (char)('a' + i % 26);
  if (n_responses < kMaxSizes) {
    responses[n_responses].size = size;
    responses[n_responses].data = r;
    responses[n_responses].len = (size_t)h + size;
    ++n_responses;
  }
  *len = (size_t)h + size;
  return r;
}

static const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

// Writes what is pending; 0 done, 1 would block, -1 closed.
static int flush_out(struct conn* c) {
  while (c->out_left) {
    ssize_t n = send(c->fd, c->out, c->out_left, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 1 : -1;
    c->out += n;
    c->out_left -= (size_t)n;
  }
  return 0;
}

// Answers every complete request in the buffer; -1 to close, 1 when blocked writing.
static int serve(struct conn* c) {
  for (;;) {
    if (c->skip) {
      size_t drop = c->skip < c->in_len ? c->skip : c->in_len;
      memmove(c->in, c->in + drop, c->in_len - drop);
      c->in_len -= drop;
      c->skip -= drop;
      if (c->skip) return 0;
    }
    char* end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return c->in_len == kBuf ? -1 : 0;
    size_t head_len = (size_t)(end - c->in) + 4;
    char* line_end = memchr(c->in, '\r', head_len);
    const char* bytes = memmem(c->in, (size_t)(line_end - c->in), "_bytes?size=", 12);
    size_t len;
    if (bytes) {
      c->out = response_for(strtoul(bytes + 12, NULL, 10), &len);
    } else {
      c->out = kOk;
      len = sizeof kOk - 1;
    }
    c->out_left = len;
    size_t body = 0;
    for (char* p = line_end; p && p < end; p = memchr(p + 1, '\n', (size_t)(end - p))) {
      if (strncasecmp(p + 1, "content-length:", 15) == 0) body = strtoul(p + 16, NULL, 10);
    }
    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;
    c->skip = body;
    int w = flush_out(c);
    if (w) return w;
  }
}

static void loop(int listener) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn* nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      int state = 0;
      if (c->out_left) state = flush_out(c);
      while (state == 0) {
        ssize_t r = recv(c->fd, c->in + c->in_len, kBuf - c->in_len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          state = -1;
          break;
        }
        if (r < 0) break;
        c->in_len += (size_t)r;
        state = serve(c);
      }
      if (state < 0) {
        close(c->fd);
        free(c);
      }
    }
  }
}

static void on_term(int sig) {
  (void)sig;
  _exit(0);  // PID 1 in its container: no default action for SIGTERM
}

int main(int argc, char** argv) {
  int port = 0, workers = 1;
  const char* host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; ++i) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--host")) host = argv[++i];
    else if (!strcmp(argv[i], "--workers")) workers = atoi(argv[++i]);
  }
  if (port <= 0 || workers <= 0) {
    fprintf(stderr, "usage: feuille-bench-upstream --port P [--host H] [--workers N]\n");
    return 2;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 1024)) {
    perror("feuille-bench-upstream: listen");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  for (int w = 1; w < workers; ++w)
    if (fork() == 0) loop(s);
  loop(s);
}
