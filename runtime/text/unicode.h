/* The code point classes the byte-level BPE pre-tokenizers need: \p{L}, \p{N} and \s (White_Space)
 * as Hugging Face tokenizers 0.23.3's Oniguruma sees them (Unicode 16.0). The tables are generated
 * from the Unicode Character Database by gen_unicode_tables.py into unicode_tables.c; lookups are a
 * binary search over sorted ranges. No other Unicode properties, no normalization, no case mapping. */
#ifndef PP8_UNICODE_H
#define PP8_UNICODE_H

#include <stdbool.h>
#include <stdint.h>

/* the classes are disjoint; OTHER is everything else (punctuation, symbols, marks, controls that
 * are not White_Space, unassigned code points) */
typedef enum { UNI_CLASS_OTHER, UNI_CLASS_LETTER, UNI_CLASS_NUMBER, UNI_CLASS_SPACE } UniClass;

bool uni_is_letter(uint32_t cp); /* general category Lu Ll Lt Lm Lo */
bool uni_is_number(uint32_t cp); /* Nd Nl No */
bool uni_is_space(uint32_t cp);  /* White_Space (PropList) */
UniClass uni_class(uint32_t cp);

#endif
