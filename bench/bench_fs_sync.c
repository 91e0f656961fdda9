/* How to make a group of small atomic writes durable: wall time of four strategies for the
 * files of one `kboot init` (N files of ~2 kB over 4 directories), median of R rounds.
 *   per-file  write temp, fsync, rename, fsync dir (kb_fs_write outside a batch)
 *   syncfs    write all temps, syncfs, rename all, syncfs (kb_fs_batch_commit)
 *   sfr+fsync write all temps with sync_file_range(WRITE) started, fsync each, rename all,
 *             fsync each distinct directory
 *   fsync     write all temps, fsync each, rename all, fsync each distinct directory
 * Build and run: cc -O2 -o /tmp/bfs bench/bench_fs_sync.c && /tmp/bfs DIR [N] [R] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NDIRS 4
static char data[2048];

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int write_temp(const char *tmp, int sfr)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data)
        die("write temp");
    if (sfr && sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
        die("sync_file_range");
    return fd;
}

static void fsync_path(const char *p)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        die(p);
    close(fd);
}

static double round_of(const char *base, int n, int strategy, int r)
{
    char tmp[n][512], dst[n][512], dir[NDIRS][512];
    for (int d = 0; d < NDIRS; d++)
        snprintf(dir[d], sizeof dir[d], "%s/d%d", base, d);
    for (int i = 0; i < n; i++) {
        snprintf(tmp[i], sizeof tmp[i], "%s/.f%d.tmp", dir[i % NDIRS], i);
        snprintf(dst[i], sizeof dst[i], "%s/f%d", dir[i % NDIRS], i);
    }
    memset(data, 'a' + r % 26, sizeof data);
    double t0 = now_ms();
    if (strategy == 0) {
        for (int i = 0; i < n; i++) {
            int fd = write_temp(tmp[i], 0);
            if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp[i], dst[i]) != 0)
                die("per-file");
            fsync_path(dir[i % NDIRS]);
        }
    } else {
        int fds[n];
        for (int i = 0; i < n; i++)
            fds[i] = write_temp(tmp[i], strategy == 2);
        if (strategy == 1) {
            if (syncfs(fds[0]) != 0)
                die("syncfs");
        } else {
            for (int i = 0; i < n; i++)
                if (fsync(fds[i]) != 0)
                    die("fsync");
        }
        for (int i = 0; i < n; i++) {
            close(fds[i]);
            if (rename(tmp[i], dst[i]) != 0)
                die("rename");
        }
        if (strategy == 1) {
            int fd = open(dir[0], O_RDONLY | O_DIRECTORY);
            if (fd < 0 || syncfs(fd) != 0)
                die("syncfs");
            close(fd);
        } else {
            for (int d = 0; d < NDIRS; d++)
                fsync_path(dir[d]);
        }
    }
    return now_ms() - t0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [N files] [R rounds]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 34, rounds = argc > 3 ? atoi(argv[3]) : 9;
    static const char *names[] = { "per-file fsync+dir fsync", "syncfs, rename, syncfs",
                                   "sync_file_range+fsync each, dir fsyncs", "fsync each, dir fsyncs" };
    char d[512];
    for (int i = 0; i < NDIRS; i++) {
        snprintf(d, sizeof d, "%s/d%d", argv[1], i);
        mkdir(d, 0755);
    }
    printf("%d files of %zu bytes in %d directories, median of %d rounds\n", n, sizeof data, NDIRS, rounds);
    for (int s = 0; s < 4; s++) {
        double t[rounds];
        for (int r = 0; r < rounds; r++)
            t[r] = round_of(argv[1], n, s, r);
        qsort(t, (size_t)rounds, sizeof *t, cmp);
        printf("  %-42s %8.2f ms\n", names[s], t[rounds / 2]);
    }
    return 0;
}
