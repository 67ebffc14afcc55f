import * as ort from 'onnxruntime-node';
const [arena, pattern] = process.argv[2].split(',').map((v) => v === '1');
const file = process.argv[3] ?? 'models/u2net.onnx';
const size = Number(process.argv[4] ?? 320);
const runs = Number(process.argv[5] ?? 6);
const mb = () => Math.round(process.memoryUsage().rss / 1048576);
const s = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: 2, interOpNumThreads: 1, enableCpuMemArena: arena, enableMemPattern: pattern, extra: { session: { intra_op: { allow_spinning: '0' } } } });
const data = new Float32Array(3 * size * size); for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 2;
const input = new ort.Tensor('float32', data, [1, 3, size, size]);
const times = [];
for (let i = 0; i < runs; i++) { const t = performance.now(); await s.run({ [s.inputNames[0]]: input }, [s.outputNames[0]]); times.push(performance.now() - t); }
times.shift(); times.sort((a, b) => a - b);
console.log(`arena=${arena} pattern=${pattern} median ${Math.round(times[times.length >> 1])} ms min ${Math.round(times[0])} rss ${mb()} MB`);
