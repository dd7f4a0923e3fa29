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

/**
 * A tag set of tags packed one after another in any order, duplicates allowed: for a rebuild of
 * millions, without an object a tag. The tags are sorted by index on their leading 52 bits (a
 * double each, compared natively), the rest only where those are equal.
 */
export function sortTags(packed: Uint8Array): Uint8Array {
  if (packed.length % TAG !== 0) throw new Error('packed tags are 16 bytes each');
  const n = packed.length / TAG;
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const prefix = new Float64Array(n);
  for (let i = 0; i < n; i += 1) prefix[i] = view.getUint32(i * TAG) * 2 ** 20 + (view.getUint32(i * TAG + 4) >>> 12);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i += 1) order[i] = i;
  order.sort((a, b) => prefix[a]! - prefix[b]! || compare(packed.subarray(a * TAG, a * TAG + TAG), packed.subarray(b * TAG, b * TAG + TAG)));
  const out = new Uint8Array(packed.length);
  let o = 0;
  for (let k = 0; k < n; k += 1) {
    const current = packed.subarray(order[k]! * TAG, order[k]! * TAG + TAG);
    if (o > 0 && compare(out.subarray(o - TAG, o), current) === 0) continue;
    out.set(current, o);
    o += TAG;
  }
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
