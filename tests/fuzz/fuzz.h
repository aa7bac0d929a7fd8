/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared plumbing of the libFuzzer harnesses in tests/fuzz/. Each harness
 * defines FUZZ_TARGET(name) { ... }: a function fuzz_<name>(data, size)
 * that feeds one input to one parser and aborts (a crash the fuzzer and the
 * replay test see) when a property the parser promises does not hold.
 *
 * Built two ways: with clang -fsanitize=fuzzer into build-fuzz/ (make fuzz),
 * where LCP_FUZZ_MAIN makes each harness its own libFuzzer binary; and into
 * the unit tests with the normal compiler, where tests/unit/test_fuzz_corpus.c
 * replays every committed corpus file through every fuzz_<name> (so make
 * test keeps the regressions the fuzzers found).
 */
#ifndef LCPFS_FUZZ_H
#define LCPFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef LCP_FUZZ_MAIN
#define FUZZ_TARGET(name)                                                        \
	int fuzz_##name(const uint8_t *data, size_t size);                       \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);            \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)             \
	{                                                                        \
		return fuzz_##name(data, size);                                  \
	}                                                                        \
	int fuzz_##name(const uint8_t *data, size_t size)
#else
#define FUZZ_TARGET(name) int fuzz_##name(const uint8_t *data, size_t size)
#endif

/* A broken promise: says which and aborts. */
#define FUZZ_CHECK(cond)                                                                         \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz: %s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

/* The harnesses, for the replay test. */
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_gguf(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_torchzip(const uint8_t *data, size_t size);
int fuzz_pickle(const uint8_t *data, size_t size);
int fuzz_detect(const uint8_t *data, size_t size);
int fuzz_sidecar(const uint8_t *data, size_t size);
int fuzz_codec(const uint8_t *data, size_t size);
int fuzz_qlor(const uint8_t *data, size_t size);

#endif
