/* sf_micro.c — in-process A/B of the Schedule-Free and Lookahead float32 kernels (csrc/schedulefree.c, lookahead.c):
 * "old" from another revision's csrc, "new" the worktree's (its entry points renamed *_new by bench/sf_micro.sh),
 * and the same-traffic probe, over one tensor of N elements, 1 thread. Each round runs every kernel once, in a
 * shuffled order (fixed seed), as a batch of reps calls after 2 untimed ones (a kernel that follows another one's
 * arrays otherwise pays for moving them: up to 1.3x at 1e6 for the same code). Prints ns per element (median and
 * min over rounds) and the median over rounds of each old/new ratio. Not part of the package.
 *   sf_micro N reps rounds */
#include "fastopt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int fo_sf_sgd_f32_new(const fo_tensor_list *t, const fo_sf_sgd_hyper *h);
int fo_sf_adamw_f32_new(const fo_tensor_list *t, const fo_sf_adamw_hyper *h);
int fo_lookahead_f32_new(const fo_tensor_list *t, const fo_lookahead_hyper *h);
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
typedef struct { fo_tensor_list t; void *bufs[5]; int64_t size; double sc[4]; fo_work *work; } tab;
static void mk(tab *T, float **b, int nb, int64_t n, const double *sc, int ns){
  memset(T,0,sizeof *T); for(int k=0;k<nb;k++) T->bufs[k]=b[k]; T->size=n;
  for(int k=0;k<ns;k++) T->sc[k]=sc[k];
  int64_t nw=fo_count_work(&T->size,1,FO_CHUNK); T->work=malloc(sizeof(fo_work)*(nw+1)); fo_plan_work(&T->size,1,FO_CHUNK,T->work);
  T->t.n_tensors=1;T->t.n_bufs=nb;T->t.n_scalars=ns;T->t.bufs=T->bufs;T->t.sizes=&T->size;T->t.scalars=T->sc;T->t.work=T->work;T->t.n_work=nw;T->t.total=n;T->t.n_threads=1;
}
static float *arr(int64_t n){ float *p; posix_memalign((void**)&p,64,n*4+64); for(int64_t i=0;i<n;i++) p[i]=(float)rand()/RAND_MAX; return p;}
enum{K=8};
int main(int argc,char**argv){
  int64_t n=argc>1?atoll(argv[1]):10000; int reps=argc>2?atoi(argv[2]):200; int rounds=argc>3?atoi(argv[3]):15;
  if(n<1||reps<1||rounds<1||rounds>256){fprintf(stderr,"usage: sf_micro N reps rounds (N, reps >= 1, 1 <= rounds <= 256)\n");return 2;}
  float *p=arr(n),*g=arr(n),*z=arr(n),*v=arr(n),*p2=arr(n);
  tab sfs,sfa,pr3,pr4,la; double sc[4]={1.0,0.1,-0.9,0.5}; double sca[4]={2.5e-3,0.1,-2.5e-3*0.9,0.05};
  float *b3[3]={p,g,z}; mk(&sfs,b3,3,n,sc,3);
  float *b4[4]={p,g,z,v}; mk(&sfa,b4,4,n,sca,4);
  float *bp3[5]={p,g,z,NULL,NULL}; mk(&pr3,bp3,5,n,NULL,0);
  float *bp4[5]={p,g,z,v,NULL}; mk(&pr4,bp4,5,n,NULL,0);
  float *bl[2]={p,p2}; mk(&la,bl,2,n,NULL,0);
  fo_sf_sgd_hyper hs={0.0}; fo_sf_adamw_hyper ha={0.9,0.999,1e-8,0.0};
  fo_probe_hyper hp1={1,0,0.0}, hp2={2,0,0.0}; fo_lookahead_hyper hl={0.5};
  const char *names[K]={"sf_sgd old","sf_sgd new","probe(sgd)","sf_adamw old","sf_adamw new","probe(adamw)","lookahead old","lookahead new"};
  double T[K][256];
  int ord[K]; for(int k=0;k<K;k++) ord[k]=k; srand(12345);
  for(int r=0;r<rounds;r++) { for(int k=K-1;k>0;k--){int j=rand()%(k+1),t=ord[k];ord[k]=ord[j];ord[j]=t;}
   for(int kk=0;kk<K;kk++){ int k=ord[kk];
    double t0=0;
    for(int i=-2;i<reps;i++) { if(i==0) t0=now(); switch(k){
      case 0: fo_sf_sgd_f32(&sfs.t,&hs); break;
      case 1: fo_sf_sgd_f32_new(&sfs.t,&hs); break;
      case 2: fo_probe_f32(&pr3.t,&hp1); break;
      case 3: fo_sf_adamw_f32(&sfa.t,&ha); break;
      case 4: fo_sf_adamw_f32_new(&sfa.t,&ha); break;
      case 5: fo_probe_f32(&pr4.t,&hp2); break;
      case 6: fo_lookahead_f32(&la.t,&hl); break;
      case 7: fo_lookahead_f32_new(&la.t,&hl); break;
    }}
    T[k][r]=(now()-t0)/reps/n*1e9;
  }}
  double R[3][256];
  for(int r=0;r<rounds;r++){R[0][r]=T[0][r]/T[1][r];R[1][r]=T[3][r]/T[4][r];R[2][r]=T[6][r]/T[7][r];}
  for(int k=0;k<3;k++) qsort(R[k],rounds,sizeof(double),cmpd);
  for(int k=0;k<K;k++){ qsort(T[k],rounds,sizeof(double),cmpd); printf("%-14s n=%lld  median %.3f ns/elem  min %.3f\n",names[k],(long long)n,T[k][rounds/2],T[k][0]);}
  printf("old/new per round, median: sf_sgd %.3f  sf_adamw %.3f  lookahead %.3f\n",R[0][rounds/2],R[1][rounds/2],R[2][rounds/2]);
  return 0;
}
