/* Environment knobs shared by every layer (DEBUG, THREADS, ...). Lives in device/, the lowest layer, so that every
 * folder may include it without breaking the one-way arrows. */
#ifndef KN_ENV_H
#define KN_ENV_H

#include <stdint.h>

/* Integer value of an environment variable, or def when unset. A value that is not an integer is reported once on
 * stderr (naming the variable) and def is used. */
int64_t kn_getenv_int(const char *name, int64_t def);
/* DEBUG level, read once. */
int kn_debug(void);
/* Monotonic time in seconds. */
double kn_now(void);

#endif
