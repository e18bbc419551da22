/* Fatal-error reporting for internal faults (failed asserts, CUDA/cuBLASLt errors): one line with rank,
 * file:line and the statement, then the abort hook (runtime installs MPI_Abort). Bad user input never
 * comes here: it is returned as an error so the ranks can agree and exit cleanly (DESIGN.md, Errors). */
#ifndef PP8_CHECK_H
#define PP8_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/* "r1/4 host" in "[pp8 r1/4 host] error ..."; runtime sets it once MPI is up. */
void pp8_set_log_prefix(const char *prefix);
const char *pp8_log_prefix(void);
/* Called after the message; must not return. Default: abort(). */
void pp8_set_abort_hook(void (*hook)(int code));
void (*pp8_abort_hook(void))(int code); /* the hook set, or NULL */

__attribute__((noreturn)) void pp8_fatal(const char *file, int line, const char *func, const char *msg,
                                         const char *stmt);

#define PP8_CHECK(cond, msg)                                                                                 \
    do {                                                                                                     \
        if (!(cond)) pp8_fatal(__FILE__, __LINE__, __func__, (msg), #cond);                                  \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
