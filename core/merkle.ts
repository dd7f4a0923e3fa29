import { createHash } from 'node:crypto';

/**
 * A Merkle tree as RFC 6962 and RFC 9162 §2.1 define it, the hashing Certificate Transparency
 * logs use: leaves hash as SHA-256(0x00 ‖ data), interior nodes as SHA-256(0x01 ‖ left ‖ right),
 * and a tree of n leaves splits at the largest power of two below n. Audit records are the
 * leaves of Lethe's log; an inclusion proof shows a record is in a tree head, a consistency
 * proof that a later tree head only appended to an earlier one. Anyone can check both with
 * nothing but SHA-256.
 */

export type Hash = Uint8Array;

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export const leafHash = (data: Uint8Array): Hash => sha256(Uint8Array.of(0x00), data);
export const nodeHash = (left: Hash, right: Hash): Hash => sha256(Uint8Array.of(0x01), left, right);

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH: the root of a tree over these leaf hashes (SHA-256 of nothing when there are none). */
export function rootOf(leaves: readonly Hash[]): Hash {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return nodeHash(rootOf(leaves.slice(0, k)), rootOf(leaves.slice(k)));
}

/** PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`. */
export function inclusionProof(index: number, leaves: readonly Hash[]): Hash[] {
  if (index < 0 || index >= leaves.length) throw new RangeError(`leaf ${String(index)} is not in a tree of ${String(leaves.length)}`);
  if (leaves.length === 1) return [];
  const k = split(leaves.length);
  return index < k
    ? [...inclusionProof(index, leaves.slice(0, k)), rootOf(leaves.slice(k))]
    : [...inclusionProof(index - k, leaves.slice(k)), rootOf(leaves.slice(0, k))];
}

/** RFC 9162 §2.1.3.2: does `proof` put `leaf` at `index` of the tree of `size` with this `root`? */
export function verifyInclusion(index: number, size: number, leaf: Hash, proof: readonly Hash[], root: Hash): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** PROOF(m, D[n]): that the tree of the first `size` leaves is a prefix of the tree of `leaves`. */
export function consistencyProof(size: number, leaves: readonly Hash[]): Hash[] {
  if (size < 0 || size > leaves.length) throw new RangeError(`no tree of ${String(size)} within ${String(leaves.length)} leaves`);
  if (size === 0 || size === leaves.length) return [];
  return subproof(size, leaves, true);
}

function subproof(m: number, leaves: readonly Hash[], complete: boolean): Hash[] {
  const n = leaves.length;
  if (m === n) return complete ? [] : [rootOf(leaves)];
  const k = split(n);
  return m <= k
    ? [...subproof(m, leaves.slice(0, k), complete), rootOf(leaves.slice(k))]
    : [...subproof(m - k, leaves.slice(k), false), rootOf(leaves.slice(0, k))];
}

/** RFC 9162 §2.1.4.2: is the tree of `size2` with `root2` an append-only extension of the tree of `size1` with `root1`? */
export function verifyConsistency(size1: number, size2: number, root1: Hash, root2: Hash, proof: readonly Hash[]): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (size1 === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  const path = (size1 & (size1 - 1)) === 0 ? [root1, ...proof] : [...proof];
  if (path.length === 0) return false;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
