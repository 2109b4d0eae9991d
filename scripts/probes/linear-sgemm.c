// The linear layers' matrix products at SPEC §10's size (2,048 rows = batch 16 x segment 128; the
// layer widths 256 -> 256, 512, 1024 and 1024 -> 256): forward x Wᵀ, dX = dY W, dW = dYᵀ X, fastest
// of 15 each, on every library named on the command line, each loaded by path (dlopen RTLD_LOCAL,
// so two libraries' symbols never mix) and called through cblas_sgemm, or dnnl_sgemm for oneDNN.
// Without arguments: the OpenBLAS that Debian's libtorch loads (what ATen's mm calls) against the
// oneDNN whose sgemm Engram's batched kernel calls. That run decided that the linear layers stay on
// ATen's mm (OpenBLAS) while batched products use oneDNN per entry.
//
//   gcc -O2 scripts/probes/linear-sgemm.c -o /tmp/linear-sgemm -ldl
//   OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /tmp/linear-sgemm
//
// Other BLAS builds, unpacked from Debian's packages without installing them (nothing system-wide
// changes), one library per run (docs/results/benchmarks.md, "Other BLAS builds"):
//
//   mkdir -p /tmp/blas && cd /tmp/blas && apt-get download libopenblas0-openmp libblis4-openmp libblis4-pthread
//   for f in *.deb; do dpkg-deb -x "$f" root; done; cd -; L=/tmp/blas/root/usr/lib/x86_64-linux-gnu
//   OPENBLAS_NUM_THREADS=2 OPENBLAS_THREAD_TIMEOUT=20 /tmp/linear-sgemm /lib/x86_64-linux-gnu/libopenblas.so.0
//   OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH=$L/openblas-openmp /tmp/linear-sgemm $L/openblas-openmp/libopenblas.so.0
//   BLIS_NUM_THREADS=2 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH=$L/blis-openmp /tmp/linear-sgemm $L/blis-openmp/libblis.so.4
//   BLIS_NUM_THREADS=2 LD_LIBRARY_PATH=$L/blis-pthread /tmp/linear-sgemm $L/blis-pthread/libblis.so.4
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*cblas_sgemm_t)(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                              float beta, float* C, int ldc);
typedef int (*dnnl_sgemm_t)(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                            int64_t ldb, float beta, float* C, int64_t ldc);

typedef struct {
  const char* path;
  cblas_sgemm_t cblas;
  dnnl_sgemm_t dnnl;
  double total, flops;
} Library;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// C [M, N] = op(A) op(B), row-major, op transposing where ta / tb.
static void product(const Library* l, int ta, int tb, int M, int N, int K, const float* A, const float* B, float* C) {
  const int lda = ta ? M : K, ldb = tb ? K : N;
  if (l->cblas) l->cblas(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, 1, A, lda, B, ldb, 0, C, N);
  else l->dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1, A, lda, B, ldb, 0, C, N);
}

int main(int argc, char** argv) {
  const char* defaults[] = {"/lib/x86_64-linux-gnu/libopenblas.so.0", "/lib/x86_64-linux-gnu/libdnnl.so.2"};
  const int count = argc > 1 ? argc - 1 : 2;
  Library* libs = calloc(count, sizeof(Library));
  for (int i = 0; i < count; i++) {
    libs[i].path = argc > 1 ? argv[i + 1] : defaults[i];
    void* h = dlopen(libs[i].path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    libs[i].cblas = (cblas_sgemm_t)dlsym(h, "cblas_sgemm");
    libs[i].dnnl = (dnnl_sgemm_t)dlsym(h, "dnnl_sgemm");
    if (!libs[i].cblas && !libs[i].dnnl) {
      fprintf(stderr, "%s has neither cblas_sgemm nor dnnl_sgemm\n", libs[i].path);
      return 1;
    }
  }
  const int widths[][2] = {{256, 256}, {256, 512}, {256, 1024}, {1024, 256}};
  float *A = malloc(4L * 2048 * 1024), *B = malloc(4L * 2048 * 1024), *C = malloc(4L * 2048 * 1024);
  for (long i = 0; i < 2048L * 1024; i++) {
    A[i] = (i % 5) * 0.1f;
    B[i] = (i % 7) * 0.1f;
  }
  for (int s = 0; s < 4; s++) {
    const int in = widths[s][0], out = widths[s][1];
    // {transposed A, transposed B, M, N, K}: forward NT (x Wᵀ), dX NN (dY W), dW TN (dYᵀ X)
    const struct { int ta, tb, M, N, K; const char* name; } products[] = {
        {0, 1, 2048, out, in, "forward"}, {0, 0, 2048, in, out, "dX"}, {1, 0, out, in, 2048, "dW"}};
    for (int p = 0; p < 3; p++) {
      printf("%4d -> %4d %-7s", in, out, products[p].name);
      for (int i = 0; i < count; i++) {
        double best = 1e9;
        for (int r = 0; r < 15; r++) {
          double t = now();
          product(&libs[i], products[p].ta, products[p].tb, products[p].M, products[p].N, products[p].K, A, B, C);
          t = now() - t;
          if (t < best) best = t;
        }
        libs[i].total += best;
        libs[i].flops += 2.0 * products[p].M * products[p].N * products[p].K;
        printf("  %7.2f ms", best * 1e3);
      }
      printf("\n");
    }
  }
  for (int i = 0; i < count; i++) printf("all 12 on %s: %.2f ms, %.1f GFLOP/s\n", libs[i].path, libs[i].total * 1e3, libs[i].flops / libs[i].total / 1e9);
  return 0;
}
