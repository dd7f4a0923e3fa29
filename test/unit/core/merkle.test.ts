import { describe, expect, it } from 'vitest';
import {
  appendLeaves,
  compactRoot,
  consistencyProof,
  consistencyRanges,
  inclusionProof,
  inclusionRanges,
  leafHash,
  nodesOf,
  rangeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
  type CompactTree,
} from '#core/merkle';

/**
 * The Merkle log's hashing against the Certificate Transparency reference vectors (RFC 6962 test
 * data: the eight leaves below, the roots of every prefix, published audit and consistency
 * paths), then every proof of every tree up to 40 leaves, and tampering of each kind.
 */
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((d) => leafHash(unhex(d)));
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

describe('Module: merkle (RFC 6962 / 9162)', () => {
  it('gives the reference root for every prefix of the reference leaves', () => {
    for (let n = 0; n <= 8; n += 1) expect(hex(rootOf(LEAVES.slice(0, n))), `size ${String(n)}`).toBe(ROOTS[n]);
  });

  it('gives the reference audit paths', () => {
    expect(inclusionProof(0, LEAVES).map(hex)).toEqual([
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ]);
    expect(inclusionProof(5, LEAVES).map(hex)).toEqual([
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ]);
  });

  it('gives the reference consistency proofs', () => {
    expect(consistencyProof(1, LEAVES).map(hex)).toEqual([
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ]);
    expect(consistencyProof(6, LEAVES).map(hex)).toEqual([
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ]);
    expect(consistencyProof(2, LEAVES.slice(0, 5)).map(hex)).toEqual([
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ]);
  });

  const many = Array.from({ length: 41 }, (_, i) => leafHash(Uint8Array.of(i, (i * 7) & 0xff)));
const SIZES = 40;

  it('verifies every inclusion proof in every tree up to 40 leaves, and refuses it for any other leaf, place or root', () => {
    for (let n = 1; n <= SIZES; n += 1) {
      const leaves = many.slice(0, n);
      const root = rootOf(leaves);
      for (let i = 0; i < n; i += 1) {
        const proof = inclusionProof(i, leaves);
        expect(verifyInclusion(i, n, leaves[i]!, proof, root), `leaf ${String(i)} of ${String(n)}`).toBe(true);
        expect(verifyInclusion(i, n, leafHash(Uint8Array.of(0xee)), proof, root)).toBe(false);
        expect(n > 1 && verifyInclusion((i + 1) % n, n, leaves[i]!, proof, root)).toBe(false);
        // Size and root come together in a signed tree head: the proof fails against the next tree's.
        expect(verifyInclusion(i, n + 1, leaves[i]!, proof, rootOf(many.slice(0, n + 1)))).toBe(false);
        expect(verifyInclusion(i, n, leaves[i]!, proof, rootOf(many.slice(0, n + 1)))).toBe(false);
        for (const [j, p] of proof.entries()) {
          const bent = proof.map((q, k) => (k === j ? Uint8Array.from(q, (b, x) => (x === 0 ? b ^ 1 : b)) : q));
          expect(verifyInclusion(i, n, leaves[i]!, bent, root)).toBe(false);
          expect(p).toHaveLength(32);
        }
        expect(verifyInclusion(i, n, leaves[i]!, [...proof, root], root)).toBe(false);
      }
    }
  });

  it('verifies every consistency proof between trees up to 40 leaves, and refuses a rewritten past', () => {
    for (let n = 1; n <= SIZES; n += 1) {
      const root2 = rootOf(many.slice(0, n));
      for (let m = 0; m <= n; m += 1) {
        const root1 = rootOf(many.slice(0, m));
        const proof = consistencyProof(m, many.slice(0, n));
        expect(verifyConsistency(m, n, root1, root2, proof), `${String(m)} → ${String(n)}`).toBe(true);
      }
      for (let m = 1; m < n; m += 1) {
        const root1 = rootOf(many.slice(0, m));
        const proof = consistencyProof(m, many.slice(0, n));
        // A first tree whose last leaf was changed is not a prefix of the second, nor the first of a changed second.
        const forged = rootOf([...many.slice(0, m - 1), leafHash(Uint8Array.of(0xee))]);
        expect(verifyConsistency(m, n, forged, root2, proof)).toBe(false);
        expect(verifyConsistency(m, n, root1, rootOf([...many.slice(0, n - 1), leafHash(Uint8Array.of(0xee))]), proof)).toBe(false);
        expect(verifyConsistency(m, n, root1, root2, proof.slice(1))).toBe(false);
      }
      expect(verifyConsistency(n, n - 1, root2, rootOf(many.slice(0, n - 1)), [])).toBe(false);
    }
  });
});

describe('Module: merkle, as a stored log keeps it', () => {
  const many = Array.from({ length: 300 }, (_, i) => leafHash(Uint8Array.of(i & 0xff, i >> 8)));
  const key = (level: number, index: number) => `${String(level)}:${String(index)}`;

  it('appends in batches of any size to the same roots, and stores every perfect subtree exactly once', () => {
    for (const step of [1, 2, 3, 7, 64, 99]) {
      let tree: CompactTree = { size: 0, frontier: [] };
      const stored = new Map<string, Uint8Array>();
      for (let at = 0; at < many.length; at += step) {
        const appended = appendLeaves(tree, many.slice(at, at + step));
        for (const n of appended.nodes) {
          expect(stored.has(key(n.level, n.index)), `node ${key(n.level, n.index)} written twice`).toBe(false);
          stored.set(key(n.level, n.index), n.hash);
        }
        tree = appended.tree;
        expect(hex(compactRoot(tree)), `size ${String(tree.size)} in steps of ${String(step)}`).toBe(hex(rootOf(many.slice(0, tree.size))));
      }
      // 300 leaves: 300 + 150 + 75 + 37 + 18 + 9 + 4 + 2 + 1 perfect subtrees.
      expect(stored.size).toBe(596);
    }
    expect(() => appendLeaves({ size: 3, frontier: [] }, [])).toThrow(RangeError);
  });

  it('builds the same proofs from stored perfect subtrees as from the leaves', () => {
    const stored = new Map(appendLeaves({ size: 0, frontier: [] }, many).nodes.map((n) => [key(n.level, n.index), n.hash]));
    const fromStore = (level: number, index: number) => {
      const hash = stored.get(key(level, index));
      if (!hash) throw new Error(`node ${key(level, index)} is not stored`);
      return hash;
    };
    for (const n of [1, 2, 5, 64, 65, 211, 300]) {
      for (const i of [0, 1, Math.floor(n / 2), n - 1].filter((x) => x < n)) {
        expect(inclusionRanges(i, n).map((r) => hex(rangeHash(r, fromStore)))).toEqual(inclusionProof(i, many.slice(0, n)).map(hex));
      }
      for (const m of [0, 1, 3, Math.floor(n / 2), n]) {
        if (m > n) continue;
        expect(consistencyRanges(m, n).map((r) => hex(rangeHash(r, fromStore)))).toEqual(consistencyProof(m, many.slice(0, n)).map(hex));
      }
    }
    expect(nodesOf([256, 300])).toEqual([{ level: 5, index: 8 }, { level: 3, index: 36 }, { level: 2, index: 74 }]);
  });
});
