#!/usr/bin/env bash
# Prints the CMake flags llama-cpp-python is built with (scripts/install.sh uses them).
#
# Why not the default build: llama.cpp compiles for the *build* machine's CPU (-march=native).
# A wheel built on a CPU with AMX or AVX-512 then dies with SIGSEGV/SIGILL on another CPU of
# the same machine kind. So the default is an explicit, portable instruction-set baseline:
#
#   x86_64   x86-64-v3: SSE4.2, AVX, AVX2, BMI2, FMA, F16C (every Intel since Haswell 2013,
#            every AMD since Excavator 2015). No AVX-512, no AMX, no native flags.
#            A CPU without AVX2 gets x86-64-v2 (SSE4.2 only), one without SSE4.2 plain x86-64.
#   aarch64  armv8-a (NEON is part of the base architecture); no dotprod/SVE/SME.
#   other    GGML_NATIVE=OFF and llama.cpp's generic code.
#
# AGENTIC_LLAMA_CMAKE_ARGS replaces all of this (e.g. "-DGGML_NATIVE=ON" for this machine
# only, "-DGGML_NATIVE=OFF -DGGML_AVX512=ON ..." for AVX-512, "-DGGML_CUDA=ON" for a GPU).
# The wheel cache is keyed by these flags, so changing them builds a new wheel.
set -euo pipefail

if [ -n "${AGENTIC_LLAMA_CMAKE_ARGS:-}" ]; then
  printf '%s\n' "$AGENTIC_LLAMA_CMAKE_ARGS"
  exit 0
fi

cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
off="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

case "$(uname -m)" in
  x86_64|amd64)
    if cpu_has avx2 && cpu_has fma && cpu_has f16c && cpu_has bmi2; then
      echo "$off -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    elif cpu_has sse4_2; then
      echo "$off -DGGML_SSE42=ON -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF"
    else
      echo "$off -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF"
    fi
    ;;
  aarch64|arm64)
    echo "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a"
    ;;
  *)
    echo "-DGGML_NATIVE=OFF"
    ;;
esac
