/**
 * The set of suppressed identities' filter tags as the snapshot publisher keeps it between runs:
 * 16-byte tags packed one after another, in ascending byte order, each once. A run merges in what
 * changed (tags to add, tags to remove) in one pass, so publishing after a few changes reads the
 * table for those only, never whole.
 */
const TAG = 16;

/** `set` with `add` in and `remove` out (a tag in both ends added); `set` must already be sorted and distinct. */
export function mergeTags(set: Uint8Array, add: readonly Uint8Array[], remove: readonly Uint8Array[]): Uint8Array {
  if (set.length % TAG !== 0) throw new Error('a tag set holds 16-byte tags');
  const adding = sortedDistinct(add);
  const removing = new Set(remove.map(hex));
  for (const a of adding) removing.delete(hex(a));
  const out = new Uint8Array(set.length + adding.length * TAG);
  let o = 0;
  let a = 0;
  for (let s = 0; s < set.length; s += TAG) {
    const current = set.subarray(s, s + TAG);
    while (a < adding.length && compare(adding[a]!, current) < 0) {
      out.set(adding[a]!, o);
      o += TAG;
      a += 1;
    }
    if (a < adding.length && compare(adding[a]!, current) === 0) a += 1; // already in
    if (removing.has(hex(current))) continue;
    out.set(current, o);
    o += TAG;
  }
  for (; a < adding.length; a += 1, o += TAG) out.set(adding[a]!, o);
  return out.slice(0, o);
}

/** Whether `bytes` is a tag set: whole tags, strictly ascending. */
export function isTagSet(bytes: Uint8Array): boolean {
  if (bytes.length % TAG !== 0) return false;
  for (let s = TAG; s < bytes.length; s += TAG) if (compare(bytes.subarray(s - TAG, s), bytes.subarray(s, s + TAG)) >= 0) return false;
  return true;
}

export const tagCount = (set: Uint8Array): number => set.length / TAG;

function sortedDistinct(tags: readonly Uint8Array[]): Uint8Array[] {
  const sorted = tags.map((t) => {
    if (t.length !== TAG) throw new Error('a tag has 16 bytes');
    return t;
  });
  sorted.sort(compare);
  return sorted.filter((t, i) => i === 0 || compare(sorted[i - 1]!, t) !== 0);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAG; i += 1) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

const hex = (t: Uint8Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('hex');
