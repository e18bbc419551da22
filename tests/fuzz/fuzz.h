/* What the libFuzzer targets of tests/fuzz/ share: libFuzzer's two entry points, a check that aborts (a
 * crash the fuzzer saves), a per-process scratch directory in /dev/shm for the loaders that take a path,
 * input splitting, and a strict RFC 8259 validator for the JSON the server writes. Built with
 * -DPP8_FUZZ_REPLAY, fuzz_replay.c gives each target a main() that feeds it files instead (CTest replays
 * the corpus and the regressions in every build). No parser code of pp8's is duplicated here. */
#ifndef PP8_FUZZ_H
#define PP8_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* every target defines both (LLVMFuzzerInitialize may do nothing) */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a property of pp8's code failed: one line naming it, then abort() (libFuzzer saves the input) */
#define FUZZ_CHECK(cond, ...)                                                                                          \
    do {                                                                                                               \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                                \
    } while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A directory of this process's own under $PP8_FUZZ_TMP (launch/fuzz.sh sets it) or /dev/shm, made on
 * the first call and removed with its files at exit. */
const char *fuzz_dir(void);
/* path of name inside fuzz_dir() (a static buffer per call site is the caller's business: this one is
 * overwritten by the next call) */
const char *fuzz_path(const char *name);
/* writes p[0, n) as fuzz_dir()/name (replacing it); aborts when the scratch disk refuses */
void fuzz_write(const char *name, const void *p, size_t n);
/* removes fuzz_dir()/name when it is there */
void fuzz_remove(const char *name);

/* Splits data at each occurrence of sep[0, seplen) into at most max parts (the last part takes the rest,
 * separators included). Returns the number of parts (>= 1). */
int fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t seplen, const uint8_t **part, size_t *len,
               int max);
/* a NUL-terminated malloc'd copy (aborts when out of memory) */
char *fuzz_strndup(const void *p, size_t n);

/* 1 when p[0, n) is exactly one JSON value (RFC 8259, whitespace around it allowed, valid UTF-8, nesting
 * up to 512) in which no object has a key twice (compared as written: pp8's writers escape one way), else
 * 0 with *at the offset of the first wrong byte */
int fuzz_json_valid(const char *p, size_t n, size_t *at);

/* the golden data ($PP8_GOLDEN, else ../shared/golden from the working directory's repository): exits 1
 * naming the variable when it is missing, so a test that needs it fails loudly */
const char *fuzz_golden(const char *sub);

#endif
