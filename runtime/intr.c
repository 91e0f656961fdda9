/* The interrupt request of include/kboot/intr.h: one flag a signal handler may set. */
#include <signal.h>

#include "kboot/intr.h"

static volatile sig_atomic_t pending;

void kb_intr_raise(void) { pending = 1; }
void kb_intr_clear(void) { pending = 0; }
int kb_intr_pending(void) { return pending != 0; }
