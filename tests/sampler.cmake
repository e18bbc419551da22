# The token sampler (runtime/text/sampler.c): Hugging Face's logits processors against the golden
# warper cases (golden/textgen/warpers.*), a chi-square fit of the draws, the draw stream's purity,
# greedy ties. The golden directory is required: the test fails, never skips, without it.
# `test_sampler --speed` prints ms per call at V = 250880 (not registered: no timed tests).
pp8_test(test_sampler SOURCES test_sampler.c ARGS ${PP8_GOLDEN_DIR} LABELS text golden unit TIMEOUT 120)
