/**
 * The train/validation split, by document: a document is in validation when a seeded hash of its id,
 * as a fraction of 2³², is below val_fraction. It depends on nothing but (seed, id, fraction), so it is
 * stable when documents are added or reordered and identical on every rank and every run.
 */

/** 32-bit hash of a string under a seed: FNV-1a over UTF-16 units, then murmur3's finalizer to spread the bits. */
export function hash32(seed: number, s: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.floor(seed / 2 ** 32)) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function isValidationDocument(id: string, seed: number, valFraction: number): boolean {
  return hash32(seed, id) / 2 ** 32 < valFraction;
}
