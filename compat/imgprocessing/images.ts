// compat/imgprocessing/images.ts
// IMG Processing's Image objects kept in the gateway's results store (memory or Redis), so any replica serves them.
// An image is written once and never rewritten: publishing lives in a second record, so a publish racing a delete
// cannot bring deleted bytes back.
import { randomBytes } from 'node:crypto';
import { guardStore, type Gateway } from '../../src/gateway.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** The Image object exactly as IMG Processing documents it. */
export interface ImageObject {
  id: string;
  name: string;
  url: string | null;
  width: number;
  height: number;
  format: ImageFormat;
  size: number;
  created_at: string;
}

export interface StoredImage {
  object: Omit<ImageObject, 'url'>;
  owner: string;
  bytes: Uint8Array;
  /** Epoch ms: the image (and any publication of it) is gone after this. */
  expiresAt: number;
}

/** `image_` + 24 lower-case letters and digits, the shape of the vendor's ids (image_etm0g3x5iap4cld1qcfsjvo2). */
export const IMAGE_ID = /^image_[a-z0-9]{24}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function newImageId(): string {
  // 32 random bytes for 24 characters: 256 is not a multiple of 36, so reject the biased top of the range.
  let id = '';
  while (id.length < 24) {
    for (const b of randomBytes(32)) {
      if (b < 252 && id.length < 24) id += ALPHABET[b % 36];
    }
  }
  return `image_${id}`;
}

export const CONTENT_TYPE: Record<ImageFormat, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };

const imageKey = (id: string) => `imgproc:image:${id}`;
const publicKey = (id: string) => `imgproc:public:${id}`;

/** Whole seconds left before `expiresAt`, rounded down so a publication never outlives its image; at least 1 (stores refuse 0). */
function remainingSeconds(expiresAt: number): number {
  return Math.max(1, Math.floor((expiresAt - Date.now()) / 1000));
}

export class ImageStore {
  constructor(private readonly gw: Gateway) {}

  private guard<T>(work: Promise<T>): Promise<T> {
    return guardStore(work, this.gw.config.STORE_TIMEOUT_MS);
  }

  /** Keeps a new image for RESULTS_TTL_SECONDS from its creation; nothing extends that. */
  async create(owner: string, bytes: Uint8Array, fields: Omit<ImageObject, 'id' | 'url' | 'size' | 'created_at'>): Promise<StoredImage> {
    const ttl = this.gw.config.RESULTS_TTL_SECONDS;
    const now = Date.now();
    const object = { id: newImageId(), name: fields.name, width: fields.width, height: fields.height, format: fields.format, size: bytes.byteLength, created_at: new Date(now).toISOString() };
    const expiresAt = now + ttl * 1000;
    await this.guard(
      this.gw.stores.results.put(imageKey(object.id), { status: 'done', owner, bytes, contentType: CONTENT_TYPE[object.format], meta: { imgprocImage: object, expiresAt } }, ttl),
    );
    return { object, owner, bytes, expiresAt };
  }

  /** The image whoever asks (public URLs); undefined when unknown, expired or deleted. */
  async find(id: string): Promise<StoredImage | undefined> {
    if (!IMAGE_ID.test(id)) return undefined;
    const stored = await this.guard(this.gw.stores.results.get(imageKey(id)));
    const meta = stored?.meta as { imgprocImage?: StoredImage['object']; expiresAt?: number } | undefined;
    if (!stored?.bytes || !stored.owner || !meta?.imgprocImage || typeof meta.expiresAt !== 'number') return undefined;
    return { object: meta.imgprocImage, owner: stored.owner, bytes: stored.bytes, expiresAt: meta.expiresAt };
  }

  /** The image as its owner sees it; another key's image is as unknown as a missing one. */
  async get(id: string, owner: string): Promise<StoredImage | undefined> {
    const image = await this.find(id);
    return image && image.owner === owner ? image : undefined;
  }

  /** The public URL the image was published under, if it is published. */
  async publicUrl(id: string): Promise<string | null> {
    const stored = await this.guard(this.gw.stores.results.get(publicKey(id)));
    const url = (stored?.meta as { url?: unknown } | undefined)?.url;
    return typeof url === 'string' ? url : null;
  }

  /** Publishing never outlives the image: the flag expires with it. */
  async publish(image: StoredImage, url: string): Promise<void> {
    await this.guard(this.gw.stores.results.put(publicKey(image.object.id), { status: 'done', owner: image.owner, meta: { url } }, remainingSeconds(image.expiresAt)));
  }

  async unpublish(id: string): Promise<void> {
    await this.guard(this.gw.stores.results.delete(publicKey(id)));
  }

  /** Removes the bytes at once, and the publication with them. */
  async delete(id: string): Promise<void> {
    await this.guard(this.gw.stores.results.delete(imageKey(id)));
    await this.guard(this.gw.stores.results.delete(publicKey(id)));
  }

  async toObject(image: StoredImage): Promise<ImageObject> {
    const o = image.object;
    // Key order as in the vendor's examples.
    return { id: o.id, name: o.name, url: await this.publicUrl(o.id), width: o.width, height: o.height, format: o.format, size: o.size, created_at: o.created_at };
  }
}
