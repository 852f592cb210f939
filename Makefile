# mmgan.h - the header needs no build; this Makefile runs its tests and tools.
#   make test        build checks and the test suites for every kernel set this CPU runs
#   make test-cross  the suites under qemu-user: aarch64, armv7 NEON, riscv64, s390x
#   make test-avx512 the kernel suites on the AVX-512 kernels where the CPU has none
#                    (SIMDe's portable intrinsics: gcc and libsimde-dev)
#   make bench       GEMM GFLOP/s against the measured FMA peak (and OpenBLAS if installed),
#                    then GAN training iterations side by side with PyTorch (python3-torch)
#   make bench-winograd  mmgan's GAN iterations with MMGAN_WINOGRAD=1 against =0, alternating
#   make crosscheck  graph values and 1st-3rd order gradients against PyTorch float64 (python3-torch),
#                    and the GAN benchmark's first losses against PyTorch's from the same weights
#   make demo        trains MAGAN on the shipped MNIST digits, writes out/samples.png (a few minutes)
#   make tools       the MNIST evaluation kit: build/mnist_classifier, build/mnist_eval, build/energy_curves
#   make fuzz        libFuzzer (clang) over the file readers for FUZZ_TIME seconds (60), tests/fuzz_parsers.c
CC ?= cc
BENCH_FLAGS = -std=c99 -O2 -march=native -fopenmp -Wall -Wextra
OPENBLAS := $(shell printf '\043include <cblas.h>\nint main(void){return 0;}\n' | $(CC) -x c - -lopenblas -o /dev/null 2>/dev/null && echo yes)

.PHONY: test test-cross test-avx512 bench bench-winograd crosscheck demo examples tools fuzz clean

test:
	@sh tests/run.sh unit

test-cross:
	@sh tests/run.sh cross

test-avx512:
	@sh tests/run.sh avx512

build/bench: tools/bench.c tools/bench_common.h mmgan.h
	@mkdir -p build
	$(CC) $(BENCH_FLAGS) $(if $(OPENBLAS),-DMMGAN_BENCH_OPENBLAS) tools/bench.c -o $@ -lm $(if $(OPENBLAS),-lopenblas)

build/bench_gan: tools/bench_gan.c tools/bench_common.h mmgan.h examples/magan_mnist_model.h
	@mkdir -p build
	$(CC) $(BENCH_FLAGS) tools/bench_gan.c -o $@ -lm

# OpenBLAS at its best: its fastest kernel set here (tools/openblas_core.sh;
# usually its own detection), one thread per bench thread.  Then GAN training
# iterations against PyTorch (tools/bench_gan.sh), whose BLAS is OpenBLAS too.
bench: build/bench build/bench_gan
	@ct=$$(sh tools/openblas_core.sh build/bench); echo "OPENBLAS_CORETYPE: $${ct:-unset (its own detection)}"; \
	env -u OPENBLAS_CORETYPE $${ct:+OPENBLAS_CORETYPE=$$ct} OPENBLAS_NUM_THREADS=1 ./build/bench $(BENCH_ARGS) && \
	BENCH_OPENBLAS_CORETYPE="$$ct" sh tools/bench_gan.sh

# Whether F(4x4, 2x2) pays on this machine: the GAN iterations built with
# and without it, alternating round by round (tools/bench_gan.sh ab).
build/bench_gan_w0 build/bench_gan_w1: build/bench_gan_w%: tools/bench_gan.c tools/bench_common.h mmgan.h examples/magan_mnist_model.h
	@mkdir -p build
	$(CC) $(BENCH_FLAGS) -DMMGAN_WINOGRAD=$* tools/bench_gan.c -o $@ -lm

bench-winograd: build/bench_gan_w0 build/bench_gan_w1
	@BIN=build/bench_gan_w1 BIN_B=build/bench_gan_w0 LABEL_A=winograd LABEL_B=direct sh tools/bench_gan.sh ab

build/crosscheck: tests/crosscheck.c mmgan.h
	@mkdir -p build
	$(CC) -std=c99 -O2 -march=native -Wall -Wextra -Wpedantic tests/crosscheck.c -o $@ -lm

# PyTorch is only the reference: Debian's python3-torch, hence /usr/bin/python3.
# The comparison runs even when some network failed in C, so that it is counted.
# Last, a checkpoint written by mmgan read back with Python's struct and json.
crosscheck: build/crosscheck build/bench_gan
	@./build/crosscheck build/crosscheck.bin; c=$$?; \
	/usr/bin/python3 tests/crosscheck.py build/crosscheck.bin; p=$$?; \
	$(CC) -std=c99 -O2 tests/test_ckpt.c -o build/test_ckpt -lm && ./build/test_ckpt >/dev/null; \
	/usr/bin/python3 tests/safetensors_check.py build/test_ckpt.safetensors; s=$$?; \
	sh tools/bench_gan.sh check; b=$$?; \
	[ $$c -eq 0 ] && [ $$p -eq 0 ] && [ $$s -eq 0 ] && [ $$b -eq 0 ]

EXAMPLES = $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))
build/%: examples/%.c mmgan.h
	@mkdir -p build
	$(CC) -std=c99 -O2 -march=native -fopenmp -Wall -Wextra $< -o $@ -lm

build/gan_mnist build/sample: examples/gan_mnist_model.h
build/magan_mnist: examples/magan_mnist_model.h

# The MNIST evaluation kit (docs/results.md): the classifier and the scorer.
build/mnist_eval build/mnist_classifier: build/%: tools/%.c tools/mnist_classifier.h mmgan.h
	@mkdir -p build
	$(CC) -std=c99 -O2 -march=native -fopenmp -Wall -Wextra $< -o $@ -lm
build/mnist_eval: examples/gan_mnist_model.h examples/magan_mnist_model.h

build/energy_curves: tools/energy_curves.c mmgan.h
	@mkdir -p build
	$(CC) -std=c99 -O2 -Wall -Wextra $< -o $@ -lm

tools: build/mnist_eval build/mnist_classifier build/energy_curves

# The readers of untrusted files under libFuzzer with ASan and UBSan: seeds
# from tests/fuzz_parsers.c, then FUZZ_TIME seconds on one core; a finding
# stops it and leaves its input in build/ (replay: build/fuzz_replay FILE).
FUZZ_TIME ?= 60
fuzz:
	@mkdir -p build/fuzz-corpus
	clang -std=c99 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -DMMGAN_FUZZ_MAIN \
	    tests/fuzz_parsers.c -o build/fuzz_replay -lm
	clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    tests/fuzz_parsers.c -o build/fuzz_parsers -lm
	./build/fuzz_replay --seeds build/fuzz-corpus
	./build/fuzz_parsers build/fuzz-corpus -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    -malloc_limit_mb=1024 -max_len=16384 -artifact_prefix=build/fuzz- -print_final_stats=1

examples: $(EXAMPLES)

DEMO_EPOCHS ?= 30
demo: build/magan_mnist
	@mkdir -p out
	./build/magan_mnist --epochs $(DEMO_EPOCHS) --out out

clean:
	rm -rf build
