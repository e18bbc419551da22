#!/usr/bin/env bash
# The one-way rule between the rooms and inside runtime/ (DESIGN.md "Rooms", "Inside runtime/"):
#   kernels/, parallel/: never each other, never runtime/
#   runtime: cli -> serve -> engine -> model, text -> util   (text/ knows nothing of model/ or ranks)
# Fails naming the file and the include that points against the grain. CMake's per-folder libraries
# catch calls the same way at link time; this catches a header-only dependency too.
set -u
: "${PP8_SRC:?}"
cd "$PP8_SRC" || exit 1
fail=0; checked=0
# allowed NAME DIR...: the folders a file in NAME may include from (relative to the repo root)
declare -A allow=(
  [kernels]="kernels"
  [parallel]="parallel"
  [runtime/util]="runtime/util kernels"
  [runtime/text]="runtime/text runtime/util"
  [runtime/model]="runtime/model runtime/util kernels"
  [runtime/engine]="runtime/engine runtime/model runtime/text runtime/util kernels parallel"
  [runtime/serve]="runtime/serve runtime/engine runtime/model runtime/text runtime/util kernels parallel"
  [runtime/cli]="runtime/cli runtime/serve runtime/engine runtime/model runtime/text runtime/util kernels parallel"
)
for room in "${!allow[@]}"; do
  [ -d "$room" ] || continue
  while IFS= read -r f; do
    dir=$(dirname "$f")
    while IFS= read -r inc; do
      checked=$((checked + 1))
      target=$(realpath -m --relative-to=. "$dir/$inc")
      ok=0
      for a in ${allow[$room]}; do
        case "$target" in "$a"/*) ok=1 ;; esac
      done
      if [ $ok = 0 ]; then echo "FAIL: $f includes \"$inc\" ($target): $room may include only ${allow[$room]}"; fail=1; fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done < <(find "$room" -maxdepth 2 \( -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh' \))
done
# runtime/ itself holds only the subfolders and CMakeLists.txt
for f in runtime/*; do
  [ -d "$f" ] || [ "$f" = runtime/CMakeLists.txt ] || { echo "FAIL: $f: runtime/ files belong in a subfolder (cli engine model text util serve)"; fail=1; }
done
[ $checked -gt 50 ] || { echo "FAIL: only $checked includes checked: the scan found too little"; fail=1; }
echo "$checked includes checked"
exit $fail
