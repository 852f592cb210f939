# mmgan.h - the header needs no build; this Makefile runs its tests and tools.
#   make test        build checks and the test suites for every kernel set this CPU runs
#   make test-cross  the suites under qemu-user: aarch64, armv7 NEON, riscv64, s390x
#   make bench       GEMM GFLOP/s against the measured FMA peak (and OpenBLAS if installed)
CC ?= cc
BENCH_FLAGS = -std=c99 -O2 -march=native -fopenmp -Wall -Wextra
OPENBLAS := $(shell printf '\043include <cblas.h>\nint main(void){return 0;}\n' | $(CC) -x c - -lopenblas -o /dev/null 2>/dev/null && echo yes)

.PHONY: test test-cross bench clean

test:
	@sh tests/run.sh unit

test-cross:
	@sh tests/run.sh cross

build/bench: tools/bench.c mmgan.h
	@mkdir -p build
	$(CC) $(BENCH_FLAGS) $(if $(OPENBLAS),-DMMGAN_BENCH_OPENBLAS) tools/bench.c -o $@ -lm $(if $(OPENBLAS),-lopenblas)

# OpenBLAS at its best: its own core type detection, one thread per bench thread.
bench: build/bench
	env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=1 ./build/bench

clean:
	rm -rf build
