# Text in and out (runtime/text/): the tokenizer against Hugging Face tokenizers' references in
# ../shared/golden/tokenizers (missing data fails, never skips), the Unicode tables against HF's
# classification, linear time on long pieces, refused bad files; `pp8 tokenize` / `pp8 detokenize`.
# bench_tokenizer is built for launch/bench-tokenizer.sh (a benchmark, not a test).
pp8_test(test_tokenizer SOURCES test_tokenizer.c ARGS ${PP8_GOLDEN_DIR}/tokenizers LABELS text golden unit TIMEOUT 300)
pp8_script_test(test_tokenize_cli test_tokenize_cli.sh LABELS text golden cli TIMEOUT 300)
add_executable(bench_tokenizer bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE pp8_runtime)
target_link_libraries(test_tokenizer PRIVATE Threads::Threads) # one tokenizer shared by threads
