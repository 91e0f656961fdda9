/* Monotonic time, sleeping without forking, and Go's duration syntax ("1h30m", "8760h0m0s"). */
#ifndef KBOOT_CLOCK_H
#define KBOOT_CLOCK_H

#include <stddef.h>

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC): for deadlines and intervals. */
double kb_clock_monotonic(void);
/* Sleep `seconds` (fractions allowed; <= 0 returns at once), resuming after signals, but not
 * while an interrupt is pending (kboot/intr.h): then it returns early. */
void kb_clock_sleep(double seconds);

/* Parse a Go time.Duration string as time.ParseDuration does (units ns, us, µs, μs, ms, s, m, h;
 * optional sign; decimal fractions; "0" alone). On success *seconds is set and 0 is returned;
 * on failure -1 with a one-line reason in err. */
int kb_duration_parse(const char *s, size_t len, double *seconds, char *err, size_t errlen);
/* Go's Duration.String for whole seconds: "25h1m1s", "1m30s", "5s", "0s", "-1h0m0s". */
void kb_duration_format(long long seconds, char *buf, size_t len);

#endif
