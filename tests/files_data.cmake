# Files are data (issue 17): hostile shard names in an index, Hugging Face cache symlinks, integers in
# headers and configs that overflow, a shard truncated while mapped (one process and 2 ranks).
# The golden checkpoints are required: test_files_data_cli fails (never skips) when they are missing.
find_package(Threads REQUIRED)
pp8_test(test_files_data SOURCES test_files_data.c LABELS checkpoint unit TIMEOUT 60)
target_link_libraries(test_files_data PRIVATE Threads::Threads)
pp8_script_test(test_files_data_cli test_files_data.sh ARGS $<TARGET_FILE:test_files_data> LABELS checkpoint cli
  TIMEOUT 240)
