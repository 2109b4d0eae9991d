// CUDA smoke test of the tensor layer and the device option (scripts/device/check.sh runs it first).
const m = await import('../../dist/src/index.js');
const { randn, manualSeed, createModel, randint } = m;
console.log('cudaAvailable', m.cudaAvailable(), 'devices', m.cudaDeviceCount(), "auto ->", m.resolveDevice('auto'));
manualSeed(0);
const a = randn([256, 256]), b = randn([256, 256]);
const cpu = a.matmul(b);
const gpu = a.cuda().matmul(b.cuda());
console.log('matmul on', gpu.device, 'max |cpu - cuda|', cpu.sub(gpu.cpu()).abs().max().item());
const w = randn([64, 64]).cuda().requiresGrad_(true);
const loss = w.matmul(w).pow(2).sum();
loss.backward();
console.log('autograd on cuda: grad', w.grad ? `${w.grad.device} norm ${w.grad.norm().item().toFixed(3)}` : 'missing');
const model = createModel({ kind: 'xl', vocabSize: 11, layers: 2, dModel: 16, heads: 2, dInner: 32, memLen: 4 }, { device: 'cuda' });
const out = model.forward(randint(0, 11, [2, 4], { device: 'cuda' }), model.initState(2));
console.log('xl model on', model.device, 'logits on', out.logits.device);
const n = m.cudaDeviceCount();
try { m.resolveDevice(`cuda:${n}`); console.log(`cuda:${n} accepted?!`); } catch (e) { console.log(`cuda:${n} ->`, e.kind, e.message); }
// NCCL: a process group of one rank on cuda:0 (its ProcessGroupNCCL and a collective; two ranks need two GPUs).
console.log('collective backends', JSON.stringify(m.collectiveBackends()));
if (m.collectiveBackends().includes('nccl')) {
  // NCCL's bootstrap skips the loopback interface unless told; one rank on a machine that may have no other.
  process.env.NCCL_SOCKET_IFNAME ??= 'lo';
  const group = m.ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort: await m.freePort(), worldSize: 1, rank: 0, localRank: 0 }, { backend: 'nccl', timeoutSeconds: 60 });
  const t = m.tensor([1, 2, 3]).cuda();
  group.allReduce([t]);
  group.broadcast([t], 0);
  console.log('nccl group of one rank on', group.device, 'all-reduce + broadcast ->', JSON.stringify(t.cpu().toArray()));
  group.destroy();
}
