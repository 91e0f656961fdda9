/* An interrupt request, process-wide: a signal handler (the REPL's Ctrl-C) raises it, and the
 * primitives that block (an HTTP transfer, a retry's backoff, a sleep) give up early while it is
 * pending instead of running to their end. Whoever raises it clears it. */
#ifndef KBOOT_INTR_H
#define KBOOT_INTR_H

/* Async-signal-safe: it only stores to a sig_atomic_t. */
void kb_intr_raise(void);
void kb_intr_clear(void);
int kb_intr_pending(void);

#endif
