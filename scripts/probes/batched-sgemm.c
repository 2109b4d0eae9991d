// One attention product per batch entry, 64 entries of [128, 64] x [64, 256]ᵀ (SPEC §10's scores:
// batch 16 x 4 heads), four ways on 2 threads: oneDNN's sgemm per entry one after another (each
// using its own threads), oneDNN's per entry with the entries split over 2 OpenMP threads (what
// native/src/matmul_ops.cpp does), OpenBLAS on one thread per entry split the same way, and
// OpenBLAS on 2 threads per entry one after another (what ATen's bmm does). Fastest of 20.
//
//   gcc -O2 scripts/probes/batched-sgemm.c -o /tmp/batched-sgemm /lib/x86_64-linux-gnu/libdnnl.so.2 \
//     /lib/x86_64-linux-gnu/libopenblas.so.0 -fopenmp
//   OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /tmp/batched-sgemm
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void openblas_set_num_threads(int);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  int E_=64,M=128,N=256,K=64;
  float*A=malloc(4L*E_*M*K),*B=malloc(4L*E_*N*K),*C=malloc(4L*E_*M*N);
  for(long i=0;i<(long)E_*N*K;i++){B[i]=(i%7)*0.1f;} for(long i=0;i<(long)E_*M*K;i++)A[i]=(i%5)*0.1f;
  double fl=2.0*E_*M*N*K;
  const char* names[]={"oneDNN per entry, serial","oneDNN per entry, entries over 2 threads","OpenBLAS 1 thread per entry, entries over 2 threads","OpenBLAS 2 threads per entry, serial"};
  for(int mode=0;mode<4;mode++){double best=1e9;
   for(int r=0;r<20;r++){double t=now();
    if(mode==0){ for(int e=0;e<E_;e++) dnnl_sgemm('N','T',M,N,K,1,A+(long)e*M*K,K,B+(long)e*N*K,K,0,C+(long)e*M*N,N);}
    else if(mode==1){
      #pragma omp parallel for num_threads(2) schedule(static)
      for(int e=0;e<E_;e++) dnnl_sgemm('N','T',M,N,K,1,A+(long)e*M*K,K,B+(long)e*N*K,K,0,C+(long)e*M*N,N);}
    else if(mode==2){ openblas_set_num_threads(1);
      #pragma omp parallel num_threads(2)
      { int tid=omp_get_thread_num(); for(int e=tid;e<E_;e+=2) cblas_sgemm(101,111,112,M,N,K,1,A+(long)e*M*K,K,B+(long)e*N*K,K,0,C+(long)e*M*N,N);} }
    else { openblas_set_num_threads(2); for(int e=0;e<E_;e++) cblas_sgemm(101,111,112,M,N,K,1,A+(long)e*M*K,K,B+(long)e*N*K,K,0,C+(long)e*M*N,N);}
    t=now()-t; if(t<best)best=t;}
   printf("%-52s %.2f ms %.1f GFLOP/s\n",names[mode],best*1e3,fl/best/1e9);}
}
