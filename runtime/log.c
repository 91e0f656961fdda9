#include "kboot/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = KB_LOG_INFO;
static int log_json;
static int log_color = -1;

void kb_log_set_level(int level) { log_level = level; }
int kb_log_level(void) { return log_level; }
void kb_log_set_json(int on) { log_json = on; }
void kb_log_set_color(int mode) { log_color = mode; }

static const char *const names[] = { "error", "warn", "info", "debug", "trace" };
static const char *const colors[] = { "\033[31m", "\033[33m", "", "\033[2m", "\033[2m" };

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void emit(int level, const char *phase, const char *msg, int tagged)
{
    if (level > log_level)
        return;
    if (level < KB_LOG_ERROR)
        level = KB_LOG_ERROR;
    if (level > KB_LOG_TRACE)
        level = KB_LOG_TRACE;
    FILE *f = stderr;
    if (log_json) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fprintf(f, "{\"ts\":%lld.%03ld,\"level\":\"%s\"", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
                names[level]);
        if (phase && *phase) {
            fputs(",\"phase\":", f);
            json_string(f, phase);
        }
        fputs(",\"msg\":", f);
        json_string(f, msg);
        fputs("}\n", f);
        fflush(f);
        return;
    }
    /* auto: a terminal, unless NO_COLOR is set and not empty (https://no-color.org) */
    const char *nc = log_color < 0 ? getenv("NO_COLOR") : NULL;
    int color = log_color < 0 ? isatty(fileno(f)) && !(nc && *nc) : log_color;
    const char *on = color ? colors[level] : "";
    const char *off = color && *on ? "\033[0m" : "";
    const char *tag = !tagged ? "" : level == KB_LOG_ERROR ? "error: " : level == KB_LOG_WARN ? "warning: " : "";
    if (phase && *phase)
        fprintf(f, "%s[%s] %s%s%s\n", on, phase, tag, msg, off);
    else
        fprintf(f, "%s%s%s%s\n", on, tag, msg, off);
    fflush(f);
}

void kb_log_write(int level, const char *phase, const char *msg) { emit(level, phase, msg, 1); }
void kb_log_line(int level, const char *msg) { emit(level, NULL, msg, 0); }
