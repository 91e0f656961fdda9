/* Monotonic clock, sleep and Go durations: the one implementation every script uses (waits,
 * retries, timeouts), so no script forks /bin/sleep or parses durations its own way. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kboot/clock.h"
#include "kboot/intr.h"

double kb_clock_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kb_clock_sleep(double seconds)
{
    if (!(seconds > 0) || kb_intr_pending())
        return;
    if (seconds > 1e9)
        seconds = 1e9;
    struct timespec req = { .tv_sec = (time_t)seconds };
    req.tv_nsec = (long)((seconds - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L)
        req.tv_nsec = 999999999L;
    /* A signal ends the sleep early only when it asked for it (kboot/intr.h: Ctrl-C at the REPL). */
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &req) == EINTR && !kb_intr_pending()) {
    }
}

static const struct {
    const char *name;
    double scale; /* seconds per unit */
} units[] = {
    { "ns", 1e-9 }, { "us", 1e-6 }, { "\xc2\xb5s", 1e-6 }, { "\xce\xbcs", 1e-6 },
    { "ms", 1e-3 }, { "s", 1 },     { "m", 60 },           { "h", 3600 },
};

static int bad(const char *s, size_t len, char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "invalid duration \"%.*s\": %s (want e.g. \"8760h0m0s\", \"1h30m\", \"90s\")",
             (int)(len > 64 ? 64 : len), s, why);
    return -1;
}

int kb_duration_parse(const char *s, size_t len, double *seconds, char *err, size_t errlen)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (len - i == 1 && s[i] == '0') {
        *seconds = 0;
        return 0;
    }
    if (i == len)
        return bad(s, len, err, errlen, "empty");
    double total = 0;
    while (i < len) {
        size_t start = i;
        double v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (s[i++] - '0');
        int had_int = i > start, had_frac = 0;
        if (i < len && s[i] == '.') {
            double scale = 0.1;
            i++;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                v += (s[i++] - '0') * scale;
                scale /= 10;
                had_frac = 1;
            }
        }
        if (!had_int && !had_frac)
            return bad(s, len, err, errlen, "a number is missing");
        size_t u = i;
        while (u < len && !(s[u] == '.' || (s[u] >= '0' && s[u] <= '9')))
            u++;
        if (u == i)
            return bad(s, len, err, errlen, "a unit is missing");
        double scale = -1;
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
            if (strlen(units[k].name) == u - i && memcmp(units[k].name, s + i, u - i) == 0)
                scale = units[k].scale;
        if (scale < 0)
            return bad(s, len, err, errlen, "unknown unit");
        total += v * scale;
        i = u;
    }
    /* Go's Duration is int64 nanoseconds: about 2562047 hours at most */
    if (total > 9223372036.854775807)
        return bad(s, len, err, errlen, "out of range");
    *seconds = neg ? -total : total;
    return 0;
}

void kb_duration_format(long long sec, char *buf, size_t len)
{
    const char *sign = sec < 0 ? "-" : "";
    unsigned long long a = sec < 0 ? 0ULL - (unsigned long long)sec : (unsigned long long)sec;
    unsigned long long h = a / 3600, m = a % 3600 / 60, s = a % 60;
    if (h > 0)
        snprintf(buf, len, "%s%lluh%llum%llus", sign, h, m, s);
    else if (m > 0)
        snprintf(buf, len, "%s%llum%llus", sign, m, s);
    else
        snprintf(buf, len, "%s%llus", sign, s);
}
