/* Phase-prefixed log lines on stderr: "[certs] Generating "ca" certificate and key". */
#ifndef KBOOT_LOG_H
#define KBOOT_LOG_H

enum kb_log_level { KB_LOG_ERROR = 0, KB_LOG_WARN = 1, KB_LOG_INFO = 2, KB_LOG_DEBUG = 3, KB_LOG_TRACE = 4 };

void kb_log_set_level(int level);   /* lines above this level are dropped; default INFO */
int  kb_log_level(void);
void kb_log_set_json(int on);        /* one JSON object per line instead of text */
void kb_log_set_color(int mode);     /* -1 auto (only on a TTY, not with NO_COLOR), 0 never, 1 always */

/* phase may be NULL or "" for an unprefixed line. msg is printed as is. */
void kb_log_write(int level, const char *phase, const char *msg);
/* msg as it is, without prefix or "error: " tag, in the level's colour (or as a JSON line): one
 * item of a list that a tagged line sums up. */
void kb_log_line(int level, const char *msg);

#endif
