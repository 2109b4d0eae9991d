"""Probe: does a small PyTorch GPT leave the associative-retrieval plateau (SPEC §8) at this
machine's scale? Independent of Engram; the evidence behind `model.previousToken` in
recipes/figure3-associative-retrieval.json (docs/results/README.md).

Task: 4 (key, value) pairs (26 letters, 10 digits, without replacement), query key, '?'; the
answer is scored at the '?'. Model: pre-LN GPT, learned absolute positions, 4 heads, FFN 2d,
AdamW, clipping 1. Prints: step, pairs, train loss, held-out accuracy (1,024 samples), seconds.

Runs of 2026-11-23 (2 cores; a run cut short is reported at its last evaluation; the first two
were made before the --nq/--rel/--shift parameters existed, so a rerun draws other initial weights
and may differ in the second digit):
    /usr/bin/python3 scripts/probes/associative_retrieval_plateau.py --steps 5000 --lr 3e-3 --warm 300    0.240 at 5,000
    ... --steps 5000 --wd 0.1 --bs 256                 0.275 at 2,000
    ... --steps 5000 --layers 3                        0.240 at 3,500
    ... --steps 6000 --nq 4                            0.223 at 4,500 (4 queries per sample)
    ... --steps 5000 --rel 1                           0.233 at 5,000 (per-head distance bias)
    ... --steps 4000 --pairs 2,4@2000                  0.276 at 4,000 (2 pairs stuck at 0.5 first)
    ... --steps 3000 --bs 1024 --lr 3e-3 --warm 200    0.265 at 1,000
    ... --steps 2000 --shift 1                         1.000 at 500 (the previous token in the input)
"""
import argparse
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
p=argparse.ArgumentParser()
p.add_argument('--lr',type=float,default=1e-3); p.add_argument('--wd',type=float,default=0.0)
p.add_argument('--bs',type=int,default=64); p.add_argument('--steps',type=int,default=5000)
p.add_argument('--layers',type=int,default=2); p.add_argument('--d',type=int,default=64)
p.add_argument('--pairs',type=str,default='4'); p.add_argument('--seed',type=int,default=0)
p.add_argument('--warm',type=int,default=0); p.add_argument('--shift',type=int,default=0); p.add_argument('--rel',type=int,default=0); p.add_argument('--nq',type=int,default=1); p.add_argument('--heads',type=int,default=4)
a=p.parse_args()
torch.manual_seed(a.seed)
NK,NV=26,10; V=2+NK+NV
def batch(B,P,nq=1):
    k=torch.rand(B,NK).argsort(1)[:,:P]+2
    v=torch.rand(B,NV).argsort(1)[:,:P]+2+NK
    seq=torch.zeros(B,2*P+3*nq-1,dtype=torch.long); ys=[]
    seq[:,0:2*P:2]=k; seq[:,1:2*P:2]=v
    for i in range(nq):
        q=torch.randint(0,P,(B,)); o=2*P+3*i
        seq[:,o]=k[torch.arange(B),q]; seq[:,o+1]=1; ys.append(v[torch.arange(B),q])
        if i<nq-1: seq[:,o+2]=ys[-1]
    return seq, torch.stack(ys,1)
class Block(nn.Module):
    def __init__(s,d,h):
        super().__init__(); s.ln1=nn.LayerNorm(d); s.att=nn.MultiheadAttention(d,h,batch_first=True); s.ln2=nn.LayerNorm(d)
        s.ff=nn.Sequential(nn.Linear(d,2*d),nn.ReLU(),nn.Linear(2*d,d))
    def forward(s,x,m):
        y=s.ln1(x); x=x+s.att(y,y,y,attn_mask=m,need_weights=False)[0]; return x+s.ff(s.ln2(x))
class GPT(nn.Module):
    def __init__(s,d,L):
        super().__init__(); s.emb=nn.Embedding(V,d); s.pos=nn.Embedding(32,d); s.blocks=nn.ModuleList([Block(d,a.heads) for _ in range(L)]); s.ln=nn.LayerNorm(d); s.emb2=nn.Embedding(V,d); s.relb=nn.Parameter(torch.zeros(a.heads,32)); s.out=nn.Linear(d,V)
    def forward(s,x):
        T=x.shape[1]; m=torch.triu(torch.ones(T,T,dtype=torch.bool),1)
        h=s.emb(x)+(0 if a.rel else s.pos(torch.arange(T)))
        if a.shift: h=h+nn.functional.pad(s.emb2(x),(0,0,1,0))[:,:-1]
        if a.rel:
            dist=(torch.arange(T)[:,None]-torch.arange(T)[None,:]).clamp(0,31)
            bias=s.relb[:,dist].masked_fill(m,float('-inf'))  # [H,T,T]
            m=bias.unsqueeze(0).expand(x.shape[0],-1,-1,-1).reshape(-1,T,T)
        for b in s.blocks: h=b(h,m)
        return s.out(s.ln(h))
model=GPT(a.d,a.layers)
opt=torch.optim.AdamW(model.parameters(),lr=a.lr,weight_decay=a.wd)
sched=[tuple(map(int,x.split('@'))) if '@' in x else (int(x),0) for x in a.pairs.split(',')]
t0=time.time()
for step in range(1,a.steps+1):
    P=[P for P,s in sched if step>=s][-1]
    if a.warm: 
        for g in opt.param_groups: g['lr']=a.lr*min(1,step/a.warm)
    x,y=batch(a.bs,P,a.nq); o=model(x); idx=[2*P+3*i+1 for i in range(a.nq)]
    loss=nn.functional.cross_entropy(o[:,idx].reshape(-1,V),y.reshape(-1))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(),1.0); opt.step()
    if step%500==0:
        with torch.no_grad():
            x,y=batch(1024,4); acc=(model(x)[:,-1].argmax(-1)==y[:,0]).float().mean().item()
        print(step,P,round(loss.item(),3),round(acc,3),round(time.time()-t0),flush=True)
