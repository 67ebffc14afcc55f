// src/job.ts
// The canonical removal job: the only shape the pipeline knows. Every dialect maps its fields onto it.
import { z } from 'zod';

export const OUTPUT_FORMATS = ['png', 'jpg', 'webp', 'tiff', 'gif', 'bmp', 'avif', 'zip'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const SIZES = ['preview', 'medium', 'hd', 'full', 'auto'] as const;
export type SizeName = (typeof SIZES)[number];

/** Output pixel caps per size name, as BackgroundErase and remove.bg define them. `full`/`auto` use the server's maximum. */
export const SIZE_PIXELS: Record<Exclude<SizeName, 'full' | 'auto'>, number> = {
  preview: 250_000,
  medium: 1_500_000,
  hd: 4_000_000,
};

const rgba = z.object({
  r: z.number().int().min(0).max(255),
  g: z.number().int().min(0).max(255),
  b: z.number().int().min(0).max(255),
  /** 0..1 */
  alpha: z.number().min(0).max(1),
});
export type Rgba = z.infer<typeof rgba>;

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');

export const sourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('bytes'), bytes, filename: z.string().optional() }),
  z.object({ kind: z.literal('url'), url: z.string().min(1) }),
]);
export type JobSource = z.infer<typeof sourceSchema>;

/** One side's margin: pixels plus a fraction of the subject box's size along that side's axis. */
const side = z.object({ px: z.number().int().min(0).max(10_000).default(0), fraction: z.number().min(0).max(1).default(0) });

/**
 * Margin around the cropped subject: pixels, or a fraction of the subject box's larger side; `sides` (remove.bg's
 * 1/2/4-value crop_margin) replaces both with a margin per side, its fraction taken of the box's height for top and
 * bottom and of its width for left and right.
 */
const margin = z.object({
  px: z.number().int().min(0).max(10_000).default(0),
  fraction: z.number().min(0).max(1).default(0),
  sides: z.object({ top: side, right: side, bottom: side, left: side }).optional(),
});

/** A length in pixels of the oriented input, or a fraction of the input's width/height. */
const length = z.union([z.object({ px: z.number().min(0).max(100_000) }), z.object({ fraction: z.number().min(0).max(1) })]);

const opaque = z.object({ r: z.number().int().min(0).max(255), g: z.number().int().min(0).max(255), b: z.number().int().min(0).max(255) });

export const jobSchema = z.object({
  source: sourceSchema,
  model: z.string().optional(),
  format: z.enum(OUTPUT_FORMATS).default('png'),
  channels: z.enum(['rgba', 'alpha']).default('rgba'),
  size: z.enum(SIZES).default('auto'),
  /** Extra caps some dialects send as explicit dimensions; the result fits inside them without upscaling. */
  maxWidth: z.number().int().min(1).max(100_000).optional(),
  maxHeight: z.number().int().min(1).max(100_000).optional(),
  /** A pixel-count cap below the size's own (remove.bg: full = 25 MP, PNG 10 MP); never upscales. */
  maxPixels: z.number().int().min(1).optional(),
  crop: z.boolean().default(false),
  cropMargin: margin.default({ px: 0, fraction: 0 }),
  bgColor: rgba.optional(),
  bgImage: bytes.optional(),
  /** Blur the original background instead of removing it (sigma in output pixels). */
  bgBlur: z.number().min(0.3).max(1000).optional(),
  despill: z.boolean().default(false),
  /** Estimate true foreground colours at soft edges (removes the old background's halo). */
  foregroundEstimation: z.boolean().default(false),
  /** Keep soft, partly transparent alpha; false thresholds the matte to 0/255. */
  semitransparency: z.boolean().default(true),
  invertMask: z.boolean().default(false),
  /** Edge-aware refinement of the upsampled matte (guided by the photo); absent: the server's MATTE_REFINE. */
  refine: z.enum(['auto', 'off', 'fast', 'full']).optional(),
  /** Grow (>0) or shrink (<0) the matte by this many output pixels. */
  grow: z.number().int().min(-200).max(200).default(0),
  /** Region of interest (x1,y1 top-left; x2,y2 bottom-right) in input coordinates: subject outside it is removed. */
  roi: z.object({ x1: length, y1: length, x2: length, y2: length }).optional(),
  /**
   * Subject placement on a canvas, after crop: canvas size (default: the current size), the fraction of it the
   * subject's box fits (mode fit) or covers (mode fill), and its position as fractions (absent: where it was).
   */
  layout: z
    .object({
      width: z.number().int().min(1).max(20_000).optional(),
      height: z.number().int().min(1).max(20_000).optional(),
      scale: z.number().min(0.01).max(10).optional(),
      mode: z.enum(['fit', 'fill']).default('fit'),
      position: z.object({ x: z.number().min(0).max(1), y: z.number().min(0).max(1) }).optional(),
      /** What is scaled and placed: the subject's box (default), or the whole cut-out image (Picsart's fit/fill). */
      frame: z.enum(['subject', 'image']).default('subject'),
    })
    .optional(),
  /** Outline around the subject, `width` output pixels wide. */
  stroke: z.object({ width: z.number().int().min(0).max(200), color: rgba }).optional(),
  /** Drop shadow; offsets and blur are fractions of the subject box's longer side; squash < 1 flattens it (car/3D). */
  shadow: z
    .object({
      opacity: z.number().min(0).max(1).default(0.5),
      color: opaque.default({ r: 0, g: 0, b: 0 }),
      offsetX: z.number().min(-1).max(1).default(0.02),
      offsetY: z.number().min(-1).max(1).default(0.03),
      blur: z.number().min(0).max(0.5).default(0.02),
      squash: z.number().min(0.05).max(1).default(1),
    })
    .optional(),
  /** Encoder quality for lossy formats, 1..100. */
  quality: z.number().int().min(1).max(100).optional(),
});

export type RemovalJob = z.infer<typeof jobSchema>;
export type RemovalJobInput = z.input<typeof jobSchema>;

/** Builds a validated job; dialects call this after mapping their own fields. */
export function makeJob(input: RemovalJobInput): RemovalJob {
  return jobSchema.parse(input);
}

/** remove.bg's pricing, which the others copy: a preview-size result costs a quarter credit. */
export function creditsFor(job: Pick<RemovalJob, 'size'>): number {
  return job.size === 'preview' ? 0.25 : 1;
}

export interface ForegroundBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface RemovalResult {
  bytes: Uint8Array;
  contentType: string;
  format: OutputFormat;
  width: number;
  height: number;
  /** Subject's bounding box in the returned image's coordinates. */
  foreground: ForegroundBox;
  /** Oriented input dimensions before any resize. */
  input: { width: number; height: number; type: string };
  credits: number;
  model: string;
  maskCached: boolean;
  /** 0 (model confident) … 1 (unsure), from the model's mask; see src/pipeline/uncertainty.ts. */
  uncertainty?: number;
  timings: Record<string, number>;
}
