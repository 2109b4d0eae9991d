// The linear layers' 12 matrix products at SPEC §10's size (as scripts/probes/linear-sgemm.c: 2,048
// rows, widths 256 -> 256, 512, 1024 and 1024 -> 256; forward x Wᵀ, dX = dY W, dW = dYᵀ X), on any
// BLAS that exports cblas_sgemm, loaded by path (dlopen, RTLD_LOCAL: one library per run, so two
// libraries' symbols never mix). Fastest of 15 per product, then their sum. It asks whether another
// BLAS build than the one Debian's libtorch loads (OpenBLAS 0.3.21, pthreads) is faster here; the
// others are unpacked from Debian's packages without installing them (nothing system-wide changes):
//
//   gcc -O2 scripts/probes/blas-libraries.c -o /tmp/blas-libraries -ldl
//   mkdir -p /tmp/blas && cd /tmp/blas && apt-get download libopenblas0-openmp libblis4-openmp libblis4-pthread
//   for f in *.deb; do dpkg-deb -x "$f" root; done; cd -
//   L=/tmp/blas/root/usr/lib/x86_64-linux-gnu
//   OPENBLAS_NUM_THREADS=2 OPENBLAS_THREAD_TIMEOUT=20 /tmp/blas-libraries /lib/x86_64-linux-gnu/libopenblas.so.0
//   OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH=$L/openblas-openmp /tmp/blas-libraries $L/openblas-openmp/libopenblas.so.0
//   BLIS_NUM_THREADS=2 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH=$L/blis-openmp /tmp/blas-libraries $L/blis-openmp/libblis.so.4
//   BLIS_NUM_THREADS=2 LD_LIBRARY_PATH=$L/blis-pthread /tmp/blas-libraries $L/blis-pthread/libblis.so.4
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*cblas_sgemm_t)(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                              float beta, float* C, int ldc);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <path of a BLAS library with cblas_sgemm>\n", argv[0]);
    return 2;
  }
  void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  cblas_sgemm_t sgemm = (cblas_sgemm_t)dlsym(library, "cblas_sgemm");
  if (!sgemm) {
    fprintf(stderr, "%s has no cblas_sgemm\n", argv[1]);
    return 1;
  }
  const int widths[][2] = {{256, 256}, {256, 512}, {256, 1024}, {1024, 256}};
  float *A = malloc(4L * 2048 * 1024), *B = malloc(4L * 2048 * 1024), *C = malloc(4L * 2048 * 1024);
  for (long i = 0; i < 2048L * 1024; i++) {
    A[i] = (i % 5) * 0.1f;
    B[i] = (i % 7) * 0.1f;
  }
  double total = 0, flops = 0;
  for (int s = 0; s < 4; s++) {
    const int in = widths[s][0], out = widths[s][1];
    // {transposed A, transposed B, M, N, K}: forward NT (x Wᵀ), dX NN (dY W), dW TN (dYᵀ X)
    const struct { int ta, tb, M, N, K; const char* name; } products[] = {
        {0, 1, 2048, out, in, "forward"}, {0, 0, 2048, in, out, "dX"}, {1, 0, out, in, 2048, "dW"}};
    for (int p = 0; p < 3; p++) {
      const int M = products[p].M, N = products[p].N, K = products[p].K;
      const int lda = products[p].ta ? M : K, ldb = products[p].tb ? K : N;
      double best = 1e9;
      for (int r = 0; r < 15; r++) {
        double t = now();
        sgemm(101, products[p].ta ? 112 : 111, products[p].tb ? 112 : 111, M, N, K, 1, A, lda, B, ldb, 0, C, N);
        t = now() - t;
        if (t < best) best = t;
      }
      total += best;
      flops += 2.0 * M * N * K;
      printf("%4d -> %4d %-7s %6.2f ms  %6.1f GFLOP/s\n", in, out, products[p].name, best * 1e3, 2.0 * M * N * K / best / 1e9);
    }
  }
  printf("all 12: %.2f ms, %.1f GFLOP/s\n", total * 1e3, flops / total / 1e9);
  return 0;
}
