// Causal attention's products in row blocks, each block only against the keys its queries see
// (what F.bandedMatmul does per batch entry), against one product per entry: 64 entries (SPEC §10's
// batch 16 x 4 heads), 128 queries, D 64, a cache of C keys seen by every query (argument; 0 or
// 128), entries split over 2 OpenMP threads, one oneDNN sgemm per block. Fastest of 30, ms, for
// blocks of 128 (the whole product), 64, 32 and 16 queries:
//   S = Q Kᵀ (block: its rows against keys [0, C + r1)), O = P V (its rows, keys [0, C + r1)),
//   dK = dSᵀ Q (keys [0, C + r1) accumulated over the blocks).
//
//   gcc -O2 scripts/probes/banded-sgemm.c -o /tmp/banded-sgemm /lib/x86_64-linux-gnu/libdnnl.so.2 -fopenmp
//   OMP_WAIT_POLICY=PASSIVE /tmp/banded-sgemm 0 && OMP_WAIT_POLICY=PASSIVE /tmp/banded-sgemm 128
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int E = 64, Tq = 128, Tk, D = 64, C0;
static float *Q, *Kx, *S, *O, *V, *dK;

static double run(int product, int rows) {
  double best = 1e9;
  for (int r = 0; r < 30; r++) {
    double t = now();
#pragma omp parallel for num_threads(2) schedule(static)
    for (int e = 0; e < E; e++) {
      const float *q = Q + (long)e * Tq * D, *k = Kx + (long)e * Tk * D, *v = V + (long)e * Tk * D;
      float *s = S + (long)e * Tq * Tk, *o = O + (long)e * Tq * D, *dk = dK + (long)e * Tk * D;
      for (int r0 = 0; r0 < Tq; r0 += rows) {
        int n = rows < Tq - r0 ? rows : Tq - r0, keys = rows == Tq ? Tk : C0 + r0 + n;
        if (product == 0) dnnl_sgemm('N', 'T', n, keys, D, 1, q + (long)r0 * D, D, k, D, 0, s + (long)r0 * Tk, Tk);
        else if (product == 1) dnnl_sgemm('N', 'N', n, D, keys, 1, s + (long)r0 * Tk, Tk, v, D, 0, o + (long)r0 * D, D);
        else dnnl_sgemm('T', 'N', keys, D, n, 1, s + (long)r0 * Tk, Tk, q + (long)r0 * D, D, r0 == 0 ? 0 : 1, dk, D);
      }
    }
    t = now() - t;
    if (t < best) best = t;
  }
  return best * 1e3;
}

int main(int argc, char **argv) {
  C0 = argc > 1 ? atoi(argv[1]) : 0;
  Tk = C0 + Tq;
  Q = malloc(4L * E * Tq * D); Kx = malloc(4L * E * Tk * D); V = malloc(4L * E * Tk * D);
  S = malloc(4L * E * Tq * Tk); O = malloc(4L * E * Tq * D); dK = malloc(4L * E * Tk * D);
  for (long i = 0; i < (long)E * Tq * D; i++) Q[i] = (i % 5) * .1f;
  for (long i = 0; i < (long)E * Tk * D; i++) { Kx[i] = (i % 7) * .1f; V[i] = (i % 3) * .1f; }
  for (long i = 0; i < (long)E * Tq * Tk; i++) S[i] = (i % 11) * .01f;
  const char *names[] = {"S = Q K^T", "O = P V", "dK = dS^T Q"};
  const int rows[] = {128, 64, 32, 16};
  for (int p = 0; p < 3; p++) {
    printf("cache %3d  %-12s", C0, names[p]);
    for (int b = 0; b < 4; b++) printf("  rows %3d: %.3f ms", rows[b], run(p, rows[b]));
    printf("\n");
  }
  return 0;
}
