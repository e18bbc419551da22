/* A growable byte string, and JSON text written into one: what the JSON Lines of `pp8 generate` (and
 * later a server's responses and event stream) are built from. cJSON builds documents from
 * NUL-terminated strings, and generated text may hold a NUL byte (the token of byte 0x00), so strings
 * are written here with their length. Not a JSON parser (that is cJSON). */
#ifndef PP8_STR_H
#define PP8_STR_H

#include <stddef.h>

typedef struct Str {
    char *p; /* NUL-terminated (when not NULL) */
    size_t len, cap;
    int oom; /* an append ran out of memory: the string is incomplete */
} Str;

void str_append(Str *s, const char *p, size_t n);
void str_puts(Str *s, const char *z);
void str_printf(Str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* p[0, n) as a JSON string literal, quotes included: ", \ and control characters escaped (\u0000 for
 * NUL), everything else as it is (the caller passes valid UTF-8) */
void str_json(Str *s, const char *p, size_t n);
void str_free(Str *s);

#endif
