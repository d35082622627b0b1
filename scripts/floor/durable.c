// Handoff — the bare C SQLite commit (and fsync) floor that `make bench` sets Handoff's durable writes beside (built by scripts/floor/floor).
//
// Durable-write floor of the disk under the given directory.
//
//   durable fsync  DIR [--iters N] [--sync fsync|fdatasync] [--pattern append|overwrite]
//       append: appends 4 KiB blocks to a fresh file (O_APPEND) and calls fsync/fdatasync after each
//               (the file grows, so every sync also commits size/extent metadata);
//       overwrite: same 4 KiB sequential writes into a file pre-written with zeros and synced
//               (blocks already allocated: a log that is preallocated and reused);
//       50 warm-up writes, then N measured (write+sync) latencies.
//   durable sqlite DIR --sync FULL|NORMAL [--batch B] [--seconds S]
//       system libsqlite3, journal_mode=WAL, one transaction of B single-row INSERTs per commit,
//       for S seconds (after 0.5 s warm-up); latency is per transaction (BEGIN..COMMIT).
//
// Result line: anchor=<name> conc=1 p50_us=<..> p99_us=<..> rps=<..>   (sqlite batch: rps = rows/s)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

static int run_fsync(const char *dir, int iters, const char *mode, const char *pattern) {
  char path[4096];
  int overwrite = !strcmp(pattern, "overwrite");
  snprintf(path, sizeof path, "%s/fsync_%s.dat", dir, pattern);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (overwrite ? 0 : O_APPEND), 0644);
  if (fd < 0) { perror("open"); return 2; }
  int use_fdatasync = !strcmp(mode, "fdatasync");
  char *blk = aligned_alloc(4096, 4096);
  int warm = 50;
  if (overwrite) {  // pre-write the whole extent and make it durable before measuring
    memset(blk, 0, 4096);
    for (int i = 0; i < warm + iters; i++)
      if (write(fd, blk, 4096) != 4096) { perror("prefill"); return 2; }
    if (fsync(fd) != 0) { perror("fsync"); return 2; }
    lseek(fd, 0, SEEK_SET);
  }
  memset(blk, 'x', 4096);
  uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)iters);
  uint64_t t_start = 0;
  for (int i = 0; i < warm + iters; i++) {
    if (i == warm) t_start = now_ns();
    uint64_t t0 = now_ns();
    if (write(fd, blk, 4096) != 4096) { perror("write"); return 2; }
    if ((use_fdatasync ? fdatasync(fd) : fsync(fd)) != 0) { perror("sync"); return 2; }
    uint64_t t1 = now_ns();
    if (i >= warm) lat[i - warm] = t1 - t0;
  }
  double el = (now_ns() - t_start) / 1e9;
  close(fd);
  unlink(path);
  qsort(lat, (size_t)iters, sizeof *lat, cmp_u64);
  printf("anchor=%s_%s_4k conc=1 p50_us=%.1f p99_us=%.1f rps=%.0f\n", mode, pattern,
         pct_us(lat, (size_t)iters, 50), pct_us(lat, (size_t)iters, 99), iters / el);
  return 0;
}

static void exec_or_die(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "sqlite: %s: %s\n", sql, err);
    exit(2);
  }
}

static int run_sqlite(const char *dir, const char *sync, int batch, double seconds) {
  char path[4096], wal[4200], shm[4200];
  snprintf(path, sizeof path, "%s/anchor_%s_%d.sqlite", dir, sync, batch);
  snprintf(wal, sizeof wal, "%s-wal", path);
  snprintf(shm, sizeof shm, "%s-shm", path);
  unlink(path); unlink(wal); unlink(shm);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) { fprintf(stderr, "open failed\n"); return 2; }
  exec_or_die(db, "PRAGMA journal_mode=WAL");
  char pragma[64];
  snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
  exec_or_die(db, pragma);
  exec_or_die(db,
              "CREATE TABLE state_log(id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, "
              "version INTEGER NOT NULL, state_json BLOB NOT NULL, reasoning TEXT)");
  sqlite3_stmt *ins, *begin, *commit;
  sqlite3_prepare_v2(db, "INSERT INTO state_log(session_id,version,state_json,reasoning) VALUES(?,?,?,?)",
                     -1, &ins, NULL);
  sqlite3_prepare_v2(db, "BEGIN", -1, &begin, NULL);
  sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL);
  char state[200];
  memset(state, ' ', sizeof state);
  memcpy(state, "{\"step\":42,\"plan\":\"wait for approval\",\"tools\":[\"search\",\"edit\"]}", 63);
  const char *reason = "agent paused: needs human approval before running the migration";
  size_t cap = 1 << 16, cnt = 0;
  uint64_t *lat = malloc(cap * sizeof *lat);
  uint64_t start = now_ns();
  uint64_t warm_end = start + 500000000ull;
  uint64_t end = warm_end + (uint64_t)(seconds * 1e9);
  long long version = 0;
  uint64_t t_win = 0;
  size_t rows_in_window = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    if (t0 >= end) break;
    if (sqlite3_step(begin) != SQLITE_DONE) { fprintf(stderr, "begin: %s\n", sqlite3_errmsg(db)); return 2; }
    sqlite3_reset(begin);
    for (int r = 0; r < batch; r++) {
      char sid[32];
      int sl = snprintf(sid, sizeof sid, "sess-%lld", version % 1000);
      sqlite3_bind_text(ins, 1, sid, sl, SQLITE_TRANSIENT);
      sqlite3_bind_int64(ins, 2, ++version);
      sqlite3_bind_blob(ins, 3, state, sizeof state, SQLITE_STATIC);
      sqlite3_bind_text(ins, 4, reason, -1, SQLITE_STATIC);
      if (sqlite3_step(ins) != SQLITE_DONE) { fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db)); return 2; }
      sqlite3_reset(ins);
    }
    if (sqlite3_step(commit) != SQLITE_DONE) { fprintf(stderr, "commit: %s\n", sqlite3_errmsg(db)); return 2; }
    sqlite3_reset(commit);
    uint64_t t1 = now_ns();
    if (t0 >= warm_end) {
      if (!t_win) t_win = t0;
      if (cnt == cap) { cap *= 2; lat = realloc(lat, cap * sizeof *lat); }
      lat[cnt++] = t1 - t0;
      rows_in_window += (size_t)batch;
    }
  }
  double el = (now_ns() - t_win) / 1e9;
  sqlite3_finalize(ins); sqlite3_finalize(begin); sqlite3_finalize(commit);
  sqlite3_close(db);
  unlink(path); unlink(wal); unlink(shm);
  qsort(lat, cnt, sizeof *lat, cmp_u64);
  char name[64];
  if (batch == 1) snprintf(name, sizeof name, "sqlite_wal_%s_commit", !strcmp(sync, "FULL") ? "full" : "normal");
  else snprintf(name, sizeof name, "sqlite_wal_%s_batch%d_rows", !strcmp(sync, "FULL") ? "full" : "normal", batch);
  printf("anchor=%s conc=1 p50_us=%.1f p99_us=%.1f rps=%.0f\n", name, pct_us(lat, cnt, 50), pct_us(lat, cnt, 99),
         rows_in_window / el);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: durable fsync|sqlite DIR ...\n"); return 2; }
  int iters = 2000, batch = 1;
  double seconds = 3;
  const char *sync = NULL, *pattern = "append";
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--iters")) iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--sync")) sync = argv[++i];
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--pattern")) pattern = argv[++i];
  }
  if (!strcmp(argv[1], "fsync")) return run_fsync(argv[2], iters, sync ? sync : "fsync", pattern);
  if (!strcmp(argv[1], "sqlite")) return run_sqlite(argv[2], sync ? sync : "FULL", batch, seconds);
  fprintf(stderr, "unknown mode\n");
  return 2;
}
