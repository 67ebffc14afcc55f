// src/cli/models.ts
// `npm run models -- NAME…` fetches models; `--list` shows what is known and installed; `--default` fetches MODEL.
import { loadConfig } from '../config.js';
import { fetchModel, modelState } from '../models/fetch.js';
import { getModelSpec, loadManifest, modelNames } from '../models/manifest.js';

const args = process.argv.slice(2);
const quiet = args.includes('--quiet');
const say = (line: string) => {
  if (!quiet) console.log(line);
};

async function list(modelsDir: string): Promise<void> {
  const rows = [['name', 'size', 'licence', 'state', 'note']];
  for (const spec of loadManifest().values()) {
    const state = await modelState(modelsDir, spec, true);
    rows.push([spec.name, `${(spec.bytes / 1e6).toFixed(1)} MB`, spec.licence + (spec.optIn ? ' [opt-in]' : ''), state, spec.note]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (args.includes('--list')) return list(config.MODELS_DIR);
  let names = args.filter((a) => !a.startsWith('--'));
  if (args.includes('--default')) {
    if (process.env.SKIP_MODEL_DOWNLOAD === '1') return say('SKIP_MODEL_DOWNLOAD=1: not fetching models');
    names = [...new Set([config.MODEL, ...config.MODELS, ...names])];
  }
  if (names.length === 0) {
    console.log('usage: npm run models -- NAME… | --list\nknown models: ' + modelNames().join(', '));
    return;
  }
  for (const name of names) {
    const spec = getModelSpec(name);
    if (!spec) throw new Error(`unknown model "${name}"; known: ${modelNames().join(', ')}`);
    if ((await modelState(config.MODELS_DIR, spec, true)) === 'installed') {
      say(`${name}: already installed`);
      continue;
    }
    await fetchModel(config.MODELS_DIR, spec, say);
  }
}

main().catch((err: unknown) => {
  console.error(`models: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
