// src/engine/onnx-batch.ts
// Gives an ONNX model a symbolic batch dimension: every graph input's and output's first dimension becomes
// `batch`. The shipped models declare a static batch of 1, which ORT enforces; whether the graph itself then
// runs at batch > 1 (no constant [1,C,H,W] Resize sizes inside) is checked by a trial run in the worker.
//
// This walks the protobuf wire format directly, touching only the few small messages on the path
// ModelProto.graph(7) → GraphProto.input(11)/output(12) → ValueInfoProto.type(2) → TypeProto.tensor_type(1)
// → Tensor.shape(2) → TensorShapeProto.dim(1, first only). Everything else (the weights) is copied as opaque
// slices, so no schema or protobuf library is needed for a 176 MB file.

type Part = Uint8Array;

function readVarint(buf: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (let i = at; i < buf.length; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, i + 1];
    mul *= 128;
  }
  throw new Error('onnx: truncated varint');
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/**
 * Rebuilds a message, passing each length-delimited occurrence of `field` through `edit` (with its index among
 * the occurrences); every other byte is kept as it was.
 */
function editField(msg: Uint8Array, field: number, edit: (body: Uint8Array, index: number) => Uint8Array): Uint8Array {
  const parts: Part[] = [];
  let copyFrom = 0;
  let index = 0;
  let at = 0;
  while (at < msg.length) {
    const start = at;
    const [tag, afterTag] = readVarint(msg, at);
    const wire = tag % 8;
    const number = Math.floor(tag / 8);
    if (wire === 0) at = readVarint(msg, afterTag)[1];
    else if (wire === 1) at = afterTag + 8;
    else if (wire === 5) at = afterTag + 4;
    else if (wire === 2) {
      const [len, bodyAt] = readVarint(msg, afterTag);
      at = bodyAt + len;
      if (number === field) {
        const body = edit(msg.subarray(bodyAt, at), index++);
        parts.push(msg.subarray(copyFrom, start), varint(tag), varint(body.length), body);
        copyFrom = at;
      }
    } else throw new Error(`onnx: unsupported wire type ${wire}`);
    if (at > msg.length) throw new Error('onnx: truncated message');
  }
  if (parts.length === 0) return msg;
  parts.push(msg.subarray(copyFrom));
  return concat(parts);
}

function concat(parts: Part[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The bodies of every length-delimited occurrence of `field`, without copying. */
function readFields(msg: Uint8Array, field: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < msg.length) {
    const [tag, afterTag] = readVarint(msg, at);
    const wire = tag % 8;
    if (wire === 0) at = readVarint(msg, afterTag)[1];
    else if (wire === 1) at = afterTag + 8;
    else if (wire === 5) at = afterTag + 4;
    else if (wire === 2) {
      const [len, bodyAt] = readVarint(msg, afterTag);
      at = bodyAt + len;
      if (Math.floor(tag / 8) === field) out.push(msg.subarray(bodyAt, at));
    } else throw new Error(`onnx: unsupported wire type ${wire}`);
  }
  return out;
}

const text = new TextDecoder();
const nameOf = (msg: Uint8Array, field: number) => {
  const [name] = readFields(msg, field);
  return name ? text.decode(name) : '';
};

/** Dimension { dim_param: "batch" } */
const BATCH_DIM = concat([varint((2 << 3) | 2), varint(5), new TextEncoder().encode('batch')]);

const batchFirstDim = (valueInfo: Uint8Array) =>
  editField(valueInfo, 2, (type) =>
    editField(type, 1, (tensor) => editField(tensor, 2, (shape) => editField(shape, 1, (dim, i) => (i === 0 ? BATCH_DIM : dim)))),
  );

export function withDynamicBatch(model: Uint8Array): Uint8Array {
  return editField(model, 7, (graph) => {
    // Old exporters also list the weights (initializers, TensorProto.name = 8) as graph inputs: leave those alone.
    const weights = new Set(readFields(graph, 5).map((t) => nameOf(t, 8)));
    const input = (vi: Uint8Array) => (weights.has(nameOf(vi, 1)) ? vi : batchFirstDim(vi));
    return editField(editField(graph, 11, input), 12, batchFirstDim);
  });
}
