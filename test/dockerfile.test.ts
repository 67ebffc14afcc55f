// test/dockerfile.test.ts
// No Docker engine runs in CI, so the Dockerfile is linted and its promises checked statically:
// every file it copies exists and is not excluded, the default target runs non-root with a health check.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();
const ignored = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/** Instructions of one build stage, in order. */
function stage(name: string) {
  const froms = dockerfile.getFROMs();
  const index = froms.findIndex((f) => f.getBuildStage() === name);
  expect(index, `stage ${name}`).toBeGreaterThanOrEqual(0);
  const start = froms[index]!.getRange().start.line;
  const end = froms[index + 1]?.getRange().start.line ?? Number.MAX_SAFE_INTEGER;
  return instructions.filter((i) => i.getRange().start.line >= start && i.getRange().start.line < end);
}

describe('Dockerfile', () => {
  it('lints clean', () => {
    expect(validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('copies only files that exist in the build context and are not .dockerignored', () => {
    const fromContext = (i: (typeof instructions)[number]) =>
      !(i as unknown as { getFlags(): { getName(): string }[] }).getFlags().some((f) => f.getName() === 'from');
    const copies = instructions.filter((i) => i.getKeyword() === 'COPY' && fromContext(i));
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const args = copy.getArguments().map((a) => a.getValue());
      for (const source of args.slice(0, -1)) {
        expect(existsSync(path.join(root, source)), `${source} exists`).toBe(true);
        expect(ignored.includes(source), `${source} is not in .dockerignore`).toBe(false);
      }
    }
  });

  it('keeps weights and local installs out of the context', () => {
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'models/*.onnx', '.git']));
  });

  it('the default (last) stage is the CPU image: non-root, port 8080, health check on /v2/health', () => {
    const froms = dockerfile.getFROMs();
    expect(froms.at(-1)!.getBuildStage()).toBe('cpu');
    const cpu = stage('cpu');
    const keywords = cpu.map((i) => i.getKeyword());
    expect(keywords).toEqual(expect.arrayContaining(['USER', 'EXPOSE', 'HEALTHCHECK', 'CMD']));
    expect(cpu.find((i) => i.getKeyword() === 'USER')!.getArgumentsContent()).not.toMatch(/^(root|0)$/);
    expect(cpu.find((i) => i.getKeyword() === 'EXPOSE')!.getArgumentsContent()).toBe('8080');
    expect(cpu.find((i) => i.getKeyword() === 'HEALTHCHECK')!.getArgumentsContent()).toContain('/v2/health');
  });

  it('bakes models in at build time and has a CUDA target on an NVIDIA runtime base', () => {
    expect(stage('build').some((i) => i.getKeyword() === 'RUN' && i.getArgumentsContent()!.includes('src/cli/models.ts'))).toBe(true);
    expect(text).toMatch(/ARG CUDA_IMAGE=nvidia\/cuda:12[^\s]*runtime/);
    expect(stage('build-cuda').some((i) => i.getArgumentsContent()!.includes('ONNXRUNTIME_NODE_INSTALL=cuda12'))).toBe(true);
    const cuda = stage('cuda');
    expect(cuda.find((i) => i.getKeyword() === 'ENV')!.getArgumentsContent()).toContain('EXECUTION_PROVIDER=auto');
    expect(cuda.some((i) => i.getKeyword() === 'USER')).toBe(true);
  });

  it('the copied entry point and its model manifest are what npm start runs', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toContain('src/main.ts');
    expect(text).toContain('"src/main.ts"');
  });
});
