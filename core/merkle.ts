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
  return rangeHash([0, leaves.length], memoryNodes(leaves));
}

/** PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`. */
export function inclusionProof(index: number, leaves: readonly Hash[]): Hash[] {
  const node = memoryNodes(leaves);
  return inclusionRanges(index, leaves.length).map((r) => rangeHash(r, node));
}

/** PROOF(m, D[n]): that the tree of the first `size` leaves is a prefix of the tree of `leaves`. */
export function consistencyProof(size: number, leaves: readonly Hash[]): Hash[] {
  const node = memoryNodes(leaves);
  return consistencyRanges(size, leaves.length).map((r) => rangeHash(r, node));
}

/*
 * Proofs from stored nodes. A log too big for memory keeps the root of every perfect subtree
 * (`level`, `index`: leaves index·2^level up to (index+1)·2^level), which it can write once,
 * when the tree first covers it. Every hash a proof holds is the root of a range of leaves that
 * splits into at most log2(n) such subtrees, so a proof takes O(log² n) stored nodes at most.
 */

/** Leaves `start` up to `end` (exclusive). */
export type Range = readonly [start: number, end: number];
export interface NodeId {
  readonly level: number;
  readonly index: number;
}
export type NodeSource = (level: number, index: number) => Hash;

/** The ranges whose roots make up PATH(index, D[size]), in proof order. */
export function inclusionRanges(index: number, size: number): Range[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new RangeError(`leaf ${String(index)} is not in a tree of ${String(size)}`);
  const path = (m: number, start: number, end: number): Range[] => {
    if (end - start === 1) return [];
    const k = split(end - start);
    return m < k ? [...path(m, start, start + k), [start + k, end]] : [...path(m - k, start + k, end), [start, start + k]];
  };
  return path(index, 0, size);
}

/** The ranges whose roots make up PROOF(size1, D[size2]), in proof order. */
export function consistencyRanges(size1: number, size2: number): Range[] {
  if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) throw new RangeError(`no tree of ${String(size1)} within ${String(size2)} leaves`);
  if (size1 === 0 || size1 === size2) return [];
  const sub = (m: number, start: number, end: number, complete: boolean): Range[] => {
    if (m === end - start) return complete ? [] : [[start, end]];
    const k = split(end - start);
    return m <= k
      ? [...sub(m, start, start + k, complete), [start + k, end]]
      : [...sub(m - k, start + k, end, false), [start, start + k]];
  };
  return sub(size1, 0, size2, true);
}

/**
 * The perfect subtrees a range's root is made of, largest first. Holds for the ranges the proofs
 * above name (each starts at a multiple of the power of two at or above its length).
 */
export function nodesOf([start, end]: Range): NodeId[] {
  const nodes: NodeId[] = [];
  let at = start;
  while (at < end) {
    let level = 0;
    while (level < 52 && at % 2 ** (level + 1) === 0 && at + 2 ** (level + 1) <= end) level += 1;
    nodes.push({ level, index: at / 2 ** level });
    at += 2 ** level;
  }
  return nodes;
}

/** The root of a range of leaves from its perfect subtrees. */
export function rangeHash(range: Range, node: NodeSource): Hash {
  const parts = nodesOf(range).map(({ level, index }) => node(level, index));
  let root = parts.at(-1)!;
  for (let i = parts.length - 2; i >= 0; i -= 1) root = nodeHash(parts[i]!, root);
  return root;
}

/** Perfect subtree roots computed from leaves in memory (the array may grow: perfect subtrees never change). */
export function memoryNodes(leaves: readonly Hash[]): NodeSource {
  const memo = new Map<string, Hash>();
  const node = (level: number, index: number): Hash => {
    if (level === 0) return leaves[index]!;
    const key = `${String(level)}:${String(index)}`;
    let hash = memo.get(key);
    if (!hash) {
      hash = nodeHash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1));
      memo.set(key, hash);
    }
    return hash;
  };
  return node;
}

/**
 * A tree kept as its size and the roots of the perfect subtrees it decomposes into, largest first
 * (at most 64 hashes): enough to append leaves and compute the root without any other leaf.
 */
export interface CompactTree {
  readonly size: number;
  readonly frontier: readonly Hash[];
}

/** Append leaves; returns the new tree and every perfect subtree completed on the way (leaves included). */
export function appendLeaves(tree: CompactTree, leaves: readonly Hash[]): { tree: CompactTree; nodes: (NodeId & { hash: Hash })[] } {
  const stack = [...tree.frontier];
  const levels = frontierLevels(tree.size);
  if (levels.length !== stack.length) throw new RangeError(`a tree of ${String(tree.size)} leaves has ${String(levels.length)} frontier hashes, not ${String(stack.length)}`);
  const nodes: (NodeId & { hash: Hash })[] = [];
  let size = tree.size;
  for (const leaf of leaves) {
    stack.push(leaf);
    levels.push(0);
    nodes.push({ level: 0, index: size, hash: leaf });
    size += 1;
    while (levels.length > 1 && levels.at(-1) === levels.at(-2)) {
      const right = stack.pop()!;
      const left = stack.pop()!;
      levels.pop();
      const level = levels.pop()! + 1;
      const hash = nodeHash(left, right);
      stack.push(hash);
      levels.push(level);
      nodes.push({ level, index: size / 2 ** level - 1, hash });
    }
  }
  return { tree: { size, frontier: stack }, nodes };
}

/** The root of a compact tree. */
export function compactRoot(tree: CompactTree): Hash {
  if (tree.size === 0) return sha256();
  let root = tree.frontier.at(-1)!;
  for (let i = tree.frontier.length - 2; i >= 0; i -= 1) root = nodeHash(tree.frontier[i]!, root);
  return root;
}

/** The levels of a tree's frontier: the set bits of its size, highest first. */
function frontierLevels(size: number): number[] {
  const levels: number[] = [];
  for (let level = 52; level >= 0; level -= 1) if (Math.floor(size / 2 ** level) % 2 === 1) levels.push(level);
  return levels;
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
