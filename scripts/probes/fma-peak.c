// One core's float32 multiply-add peak: 12 independent chains of 8-wide fused multiply-adds (AVX2 +
// FMA), 2 flops each, so the FMA units, not a chain's latency, set the pace. Two such cores are the
// ceiling for a matrix product on this machine's 2 threads.
//
//   gcc -O2 -mavx2 -mfma scripts/probes/fma-peak.c -o /tmp/fma-peak && /tmp/fma-peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
  __m256 acc[12];
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
  double best = 0;
  for (int round = 0; round < 5; round++) {
    const long n = 50000000;
    double t = now();
    for (long k = 0; k < n; k++) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    }
    t = now() - t;
    if (n * 12.0 * 16 / t > best) best = n * 12.0 * 16 / t;
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
  float o[8];
  _mm256_storeu_ps(o, s);
  printf("one core: %.1f GFLOP/s float32 FMA peak (best of 5; checksum %.3f)\n", best / 1e9, o[0]);
  return 0;
}
