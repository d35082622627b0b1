// Handoff — the bare C TLS 1.3 and TCP ping-pong that `make bench` sets Handoff's RPCs beside (built by scripts/floor/floor).
//
// Raw TCP / TLS 1.3 (OpenSSL) ping-pong anchor. Loopback (127.0.0.1) only.
//
//   pingpong server [--tls CERT KEY] [--max-seconds S]
//       binds 127.0.0.1:0, prints "READY <port>" on stdout, echoes everything it reads.
//       Single-threaded epoll loop (level-triggered). Exits after --max-seconds or SIGTERM.
//   pingpong client --port P [--tls CAFILE] --mode lat  [--warmup W] [--n N] [--size B] [--name NAME]
//       one connection, TCP_NODELAY, blocking request/response; prints one result line.
//   pingpong client --port P [--tls CAFILE] --mode tput [--conns C] [--seconds S] [--size B] [--name NAME]
//       C connections, one outstanding request each (closed loop), single-threaded epoll,
//       runs S seconds then drains; prints one result line (latencies of all round trips in window).
//
// Result line: anchor=<name> conc=<N> p50_us=<..> p99_us=<..> rps=<..>
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static void die(const char *m) {
  perror(m);
  ERR_print_errors_fp(stderr);
  exit(2);
}
static void set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}
static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}
static double pct_us(uint64_t *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t idx = (size_t)(p / 100.0 * (double)n);
  if (idx >= n) idx = n - 1;
  return v[idx] / 1000.0;
}

// ---------------------------------------------------------------- server
static volatile sig_atomic_t stop_flag = 0;
static void on_term(int s) { (void)s; stop_flag = 1; }

typedef struct {
  int fd;
  SSL *ssl;
} conn_t;

static void close_conn(int ep, conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->ssl) SSL_free(c->ssl);
  close(c->fd);
  free(c);
}

static int write_all_fd(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w > 0) { p += w; n -= (size_t)w; continue; }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pf = {fd, POLLOUT, 0};
      poll(&pf, 1, 1000);
      continue;
    }
    return -1;
  }
  return 0;
}
static int ssl_write_all(SSL *ssl, int fd, const char *p, int n) {
  for (;;) {
    int w = SSL_write(ssl, p, n);  // without partial-write mode: all or nothing
    if (w > 0) return 0;
    int e = SSL_get_error(ssl, w);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      struct pollfd pf = {fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};
      poll(&pf, 1, 1000);
      continue;
    }
    return -1;
  }
}

static int run_server(const char *cert, const char *key, double max_s) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *ctx = NULL;
  if (cert) {
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) die("cert");
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die("key");
  }
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(ls, 1024) < 0) die("listen");
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  set_nonblock(ls, 1);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("READY %d\n", ntohs(a.sin_port));
  fflush(stdout);
  double deadline = now_s() + max_s;
  static char buf[65536];
  struct epoll_event evs[256];
  while (!stop_flag && now_s() < deadline) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {  // accept
        for (;;) {
          int fd = accept(ls, NULL, NULL);
          if (fd < 0) break;
          set_nodelay(fd);
          conn_t *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          if (ctx) {
            // Handshake blocking (clients connect one at a time), then switch to non-blocking.
            nc->ssl = SSL_new(ctx);
            SSL_set_fd(nc->ssl, fd);
            if (SSL_accept(nc->ssl) != 1) {
              ERR_print_errors_fp(stderr);
              SSL_free(nc->ssl);
              close(fd);
              free(nc);
              continue;
            }
          }
          set_nonblock(fd, 1);
          struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
        }
        continue;
      }
      if (!c->ssl) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r > 0) {
          if (write_all_fd(c->fd, buf, (size_t)r) < 0) close_conn(ep, c);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          close_conn(ep, c);
        }
      } else {
        for (;;) {
          int r = SSL_read(c->ssl, buf, sizeof buf);
          if (r > 0) {
            if (ssl_write_all(c->ssl, c->fd, buf, r) < 0) { close_conn(ep, c); break; }
            continue;  // drain records already buffered by OpenSSL
          }
          int e = SSL_get_error(c->ssl, r);
          if (e != SSL_ERROR_WANT_READ) close_conn(ep, c);
          break;
        }
      }
    }
  }
  return 0;
}

// ---------------------------------------------------------------- client
typedef struct {
  int fd;
  SSL *ssl;
  size_t got;
  uint64_t t0;
  int outstanding;
} cconn_t;

static SSL_CTX *client_ctx(const char *ca) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("load CA");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  return ctx;
}

static void connect_one(cconn_t *c, int port, SSL_CTX *ctx) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  set_nodelay(c->fd);
  if (ctx) {
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
    if (SSL_connect(c->ssl) != 1) die("SSL_connect");
    if (SSL_get_verify_result(c->ssl) != X509_V_OK) { fprintf(stderr, "verify failed\n"); exit(2); }
  }
}

static int c_send(cconn_t *c, const char *msg, size_t size) {
  if (c->ssl) return ssl_write_all(c->ssl, c->fd, msg, (int)size);
  return write_all_fd(c->fd, msg, size);
}
// returns bytes read (>0), 0 on would-block, -1 on error/EOF
static ssize_t c_read(cconn_t *c, char *buf, size_t cap) {
  if (c->ssl) {
    int r = SSL_read(c->ssl, buf, (int)cap);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return 0;
    return -1;
  }
  ssize_t r = read(c->fd, buf, cap);
  if (r > 0) return r;
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  return -1;
}

static int run_client(int argc, char **argv) {
  int port = 0, warmup = 1000, n = 20000, conns = 64, size = 256;
  double seconds = 5;
  const char *ca = NULL, *mode = "lat", *name = NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tls")) ca = argv[++i];
    else if (!strcmp(argv[i], "--mode")) mode = argv[++i];
    else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--n")) n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--conns")) conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--size")) size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--name")) name = argv[++i];
    else { fprintf(stderr, "bad arg %s\n", argv[i]); return 2; }
  }
  if (!name) name = ca ? "tls13_c" : "tcp_c";
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *ctx = ca ? client_ctx(ca) : NULL;
  char *msg = malloc((size_t)size);
  for (int i = 0; i < size; i++) msg[i] = (char)('a' + i % 26);
  char *buf = malloc(65536);

  if (!strcmp(mode, "lat")) {
    cconn_t c = {0};
    connect_one(&c, port, ctx);
    if (c.ssl) fprintf(stderr, "# %s cipher=%s\n", name, SSL_get_cipher_name(c.ssl));
    uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)n);
    int total = warmup + n;
    double t_start = 0;
    for (int i = 0; i < total; i++) {
      if (i == warmup) t_start = now_s();
      uint64_t t0 = now_ns();
      if (c_send(&c, msg, (size_t)size) < 0) die("send");
      size_t got = 0;
      while (got < (size_t)size) {
        ssize_t r = c_read(&c, buf, 65536);
        if (r < 0) die("read");
        got += (size_t)r;
      }
      uint64_t t1 = now_ns();
      if (i >= warmup) lat[i - warmup] = t1 - t0;
    }
    double el = now_s() - t_start;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("anchor=%s conc=1 p50_us=%.1f p99_us=%.1f rps=%.0f\n", name, pct_us(lat, (size_t)n, 50),
           pct_us(lat, (size_t)n, 99), n / el);
    return 0;
  }

  // throughput: closed loop, `conns` connections each with one request in flight
  cconn_t *cs = calloc((size_t)conns, sizeof *cs);
  for (int i = 0; i < conns; i++) connect_one(&cs[i], port, ctx);
  int ep = epoll_create1(0);
  for (int i = 0; i < conns; i++) {
    set_nonblock(cs[i].fd, 1);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
  }
  size_t cap = 1 << 20, cnt = 0;
  uint64_t *lat = malloc(cap * sizeof *lat);
  // short warm-up: 1 s of traffic not recorded
  double t_begin = now_s();
  double warm_end = t_begin + 1.0, end = warm_end + seconds, hard_end = end + 5.0;
  int outstanding = 0;
  for (int i = 0; i < conns; i++) {
    cs[i].t0 = now_ns();
    if (c_send(&cs[i], msg, (size_t)size) < 0) die("send");
    cs[i].outstanding = 1;
    outstanding++;
  }
  struct epoll_event evs[256];
  size_t done_in_window = 0;
  double win_start = 0, win_end = 0;
  int in_window = 0;
  while (outstanding > 0) {
    double t = now_s();
    if (!in_window && t >= warm_end && t < end) { in_window = 1; win_start = t; }
    if (in_window && t >= end) { in_window = 0; win_end = t; }
    if (t >= hard_end) { fprintf(stderr, "drain timeout\n"); break; }
    int k = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < k; i++) {
      cconn_t *c = evs[i].data.ptr;
      for (;;) {
        ssize_t r = c_read(c, buf, 65536);
        if (r < 0) die("read");
        if (r == 0) break;
        c->got += (size_t)r;
        if (c->got >= (size_t)size) {
          uint64_t t1 = now_ns();
          c->got -= (size_t)size;
          c->outstanding = 0;
          outstanding--;
          if (in_window) {
            if (cnt == cap) { cap *= 2; lat = realloc(lat, cap * sizeof *lat); }
            lat[cnt++] = t1 - c->t0;
            done_in_window++;
          }
          if (now_s() < end) {
            c->t0 = now_ns();
            if (c_send(c, msg, (size_t)size) < 0) die("send");
            c->outstanding = 1;
            outstanding++;
          }
        }
        if (!c->ssl) break;  // plain TCP: level-triggered epoll will call again
      }
    }
  }
  if (win_end == 0) win_end = now_s();
  qsort(lat, cnt, sizeof *lat, cmp_u64);
  printf("anchor=%s conc=%d p50_us=%.1f p99_us=%.1f rps=%.0f\n", name, conns, pct_us(lat, cnt, 50),
         pct_us(lat, cnt, 99), done_in_window / (win_end - win_start));
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: pingpong server|client ...\n"); return 2; }
  if (!strcmp(argv[1], "server")) {
    const char *cert = NULL, *key = NULL;
    double max_s = 300;
    for (int i = 2; i < argc; i++) {
      if (!strcmp(argv[i], "--tls")) { cert = argv[++i]; key = argv[++i]; }
      else if (!strcmp(argv[i], "--max-seconds")) max_s = atof(argv[++i]);
    }
    return run_server(cert, key, max_s);
  }
  return run_client(argc, argv);
}
