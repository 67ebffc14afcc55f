// bench/eval-scorer.ts
// Loads the shared eval scorer (../shared/eval/score.mjs) in-process. The shared folder is read-only, so its own
// `npm install` cannot run there; a byte-for-byte copy under node_modules/.cache/ makes its `import 'sharp'`
// resolve to this project's sharp, and its exported scorePair/scoreDataset are then called directly.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from '../src/config.js';

export interface PairScore {
  iou: number;
  mae: number;
  sad: number;
  mse: number;
  grad: number;
  bF: number;
}

export interface Scorer {
  /** P and G in [0,1], ignore 1 = excluded pixel (as score.mjs). */
  scorePair(P: Float32Array, G: Float32Array, width: number, height: number, ignore: Uint8Array | null): PairScore;
  source: string;
}

export async function loadScorer(evalDir: string): Promise<Scorer> {
  const source = path.join(evalDir, 'score.mjs');
  if (!fs.existsSync(source)) throw new Error(`scorer not found at ${source} (pass --data <eval>/data)`);
  const cacheDir = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'bg-gateway-eval');
  fs.mkdirSync(cacheDir, { recursive: true });
  const copy = path.join(cacheDir, 'score.mjs');
  const text = fs.readFileSync(source);
  if (!fs.existsSync(copy) || !fs.readFileSync(copy).equals(text)) fs.writeFileSync(copy, text);
  const mod = (await import(pathToFileURL(copy).href)) as { scorePair?: Scorer['scorePair'] };
  if (typeof mod.scorePair !== 'function') throw new Error(`${source} does not export scorePair`);
  return { scorePair: mod.scorePair, source };
}
