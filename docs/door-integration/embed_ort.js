// Embed one aligned chip with model.onnx through ONNX Runtime (onnxruntime-node, CPU).
// usage: node embed_ort.js MODEL.onnx CHIP.rgb   (CHIP.rgb: 150*150*3 bytes, RGB, row-major)
// Runs float32 and float16-weights models alike (ONNX Runtime folds the Cast nodes).
const fs = require('fs');
const ort = require('onnxruntime-node');
(async () => {
  const [model, chipFile] = process.argv.slice(2);
  const rgb = fs.readFileSync(chipFile);              // HWC uint8
  const x = new Float32Array(3 * 150 * 150);          // NCHW float, values 0..255
  for (let i = 0; i < 150 * 150; ++i)
    for (let c = 0; c < 3; ++c) x[c * 150 * 150 + i] = rgb[3 * i + c];
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, 150, 150]) });
  const e = out.embedding.data;                        // Float32Array(128), raw embedding
  console.log(JSON.stringify(Array.from(e, v => Math.round(v * 1e6) / 1e6)));
})();
