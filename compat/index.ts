// compat/index.ts
// Every vendor adapter, in mount order. Each answers on its upstream paths and under /compat/<name>/.
import { clipdrop } from './clipdrop/index.js';
import { effects } from './effects/index.js';
import { eyeq } from './eyeq/index.js';
import { imgprocessing } from './imgprocessing/index.js';
import { photoroom } from './photoroom/index.js';
import { picsart } from './picsart/index.js';
import { removebg } from './removebg/index.js';
import { segmind } from './segmind/index.js';
import { slazzer } from './slazzer/index.js';
import type { CompatAdapter } from './types.js';

export const VENDOR_ADAPTERS: CompatAdapter[] = [segmind, effects, eyeq, removebg, picsart, photoroom, clipdrop, slazzer, imgprocessing];
