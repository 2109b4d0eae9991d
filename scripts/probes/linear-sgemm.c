// The linear layers' matrix products at SPEC §10's size (2,048 rows = batch 16 x segment 128; the
// layer widths 256 -> 256, 512, 1024 and 1024 -> 256): forward x Wᵀ, dX = dY W, dW = dYᵀ X, on
// OpenBLAS (what ATen's mm calls on Debian's libtorch) against oneDNN's sgemm (what Engram's
// batched kernel calls), fastest of 15, both libraries on 2 threads. It decided that the linear
// layers stay on ATen's mm (OpenBLAS) while batched products use oneDNN per entry.
//
//   gcc -O2 scripts/probes/linear-sgemm.c -o /tmp/linear-sgemm /lib/x86_64-linux-gnu/libdnnl.so.2 \
//     /lib/x86_64-linux-gnu/libopenblas.so.0 -fopenmp
//   OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /tmp/linear-sgemm
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  // linear: in -> out, M = 2048 rows. forward NT (x @ W^T), dX NN (dY @ W), dW TN (dY^T @ X)
  int io[][2]={{256,256},{256,512},{256,1024},{1024,256}};
  float*A=malloc(4L*2048*1024),*B=malloc(4L*2048*1024),*C=malloc(4L*2048*1024);
  for(long i=0;i<2048L*1024;i++){A[i]=(i%5)*0.1f;B[i]=(i%7)*0.1f;}
  double tb=0,td=0;
  for(int s=0;s<4;s++){int in=io[s][0],out=io[s][1];
    struct {char ta,tb; int M,N,K; const char*n;} cs[]={{'N','T',2048,out,in,"fwd"},{'N','N',2048,in,out,"dX"},{'T','N',out,in,2048,"dW"}};
    for(int c=0;c<3;c++){int M=cs[c].M,N=cs[c].N,K=cs[c].K; char ta=cs[c].ta,tbb=cs[c].tb; long lda=ta=='N'?K:M, ldb=tbb=='N'?N:K;
      double best[2]={1e9,1e9};
      for(int lib=0;lib<2;lib++) for(int r=0;r<15;r++){double t=now();
        if(lib==0) cblas_sgemm(101, ta=='N'?111:112, tbb=='N'?111:112, M,N,K,1,A,lda,B,ldb,0,C,N);
        else dnnl_sgemm(ta,tbb,M,N,K,1,A,lda,B,ldb,0,C,N);
        t=now()-t; if(t<best[lib])best[lib]=t;}
      tb+=best[0]; td+=best[1];
      printf("%4d->%4d %s: openblas %.2f ms, dnnl %.2f ms\n",in,out,cs[c].n,best[0]*1e3,best[1]*1e3);}
  }
  printf("total openblas %.2f dnnl %.2f\n",tb*1e3,td*1e3);
}
