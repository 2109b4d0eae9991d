// CUDA smoke test of the tensor layer (the models have no device option yet: issue 14).
const m = await import('../dist/src/index.js');
const { randn, manualSeed } = m;
console.log('cudaAvailable', m.cudaAvailable(), 'devices', m.cudaDeviceCount());
manualSeed(0);
const a = randn([256, 256]), b = randn([256, 256]);
const cpu = a.matmul(b);
const gpu = a.cuda().matmul(b.cuda());
console.log('matmul on', gpu.device, 'max |cpu - cuda|', cpu.sub(gpu.cpu()).abs().max().item());
const w = randn([64, 64]).cuda().requiresGrad_(true);
const loss = w.matmul(w).pow(2).sum();
loss.backward();
console.log('autograd on cuda: grad', w.grad ? `${w.grad.device} norm ${w.grad.norm().item().toFixed(3)}` : 'missing');
try { m.zeros([2], { device: 'cuda:7' }); console.log('cuda:7 accepted?!'); } catch (e) { console.log('cuda:7 ->', e.kind, e.message); }
