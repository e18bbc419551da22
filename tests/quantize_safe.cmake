# Crash-safe output of pp8 quantize (issue 17): --out / --force, SIGKILL at many moments, ulimit -f,
# a too-small filesystem (mounts a tmpfs: needs root; fails, never skips, without it).
pp8_script_test(test_quantize_safe test_quantize_safe.sh LABELS checkpoint cli TIMEOUT 180)
