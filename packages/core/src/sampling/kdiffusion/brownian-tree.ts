/**
 * torchsde 0.2.6's BrownianTree (a BrownianInterval with halfway_tree=True, tol 1e-6, pool_size 24) as k-diffusion's BatchedBrownianTree / BrownianTreeNoiseSampler use it, without
 * Levy area. A query (ta, tb) is answered by the dyadic tree of rounded time points, so the noise for an
 * interval depends only on the entropy (the image's seed), never on the order of queries.
 * Each node's normal comes from `randn(seed)`: A1111 routes torchsde's draws to randn_local.
 */
import { DarkroomError } from '../../errors.js';
import { float32, numel, type Float32Tensor } from '../../tensor.js';
import { SeedSequence } from './seed-sequence.js';

const f = Math.fround;
const TOL_DIGITS = 6; // -int(log10(1e-6))
const POOL_SIZE = 24;

/**
 * How many node increments the tree keeps. Values never depend on it (every node is a pure function of
 * the seed); only the number and order of randn_local calls do.
 */
export interface BrownianCachePolicy {
  readonly size: number;
  /** Whether a hit moves the entry to the back of the eviction queue (LRU) or not (insertion order). */
  readonly refreshOnHit: boolean;
  /**
   * Both children of a node come from the same normal draw (left = mean + sd * noise, right = W - left):
   * computing and caching them together halves the draws. torchsde computes each on demand.
   */
  readonly pairSiblings: boolean;
}

/**
 * torchsde's: 45 entries, evicted in insertion order. That is what the recorded upstream draw sequences
 * show (a recency-refreshing LRU re-draws different nodes). About two thirds of its draws re-create
 * evicted ancestors.
 */
export const UPSTREAM_CACHE: BrownianCachePolicy = { size: 45, refreshOnHit: false, pairSiblings: false };

/**
 * Enough for every node of a typical run (a few hundred), siblings computed together: one draw per split
 * node, about a sixth of upstream's draws. 64 KiB per node at 512x512.
 */
export const FAST_CACHE: BrownianCachePolicy = { size: 1024, refreshOnHit: true, pairSiblings: true };

/** Python's round(x, 6): decimal rounding of the exact binary value (toFixed is exact below 1e21). */
const round6 = (x: number): number => Number(x.toFixed(TOL_DIGITS));

class Node {
  midway: number | undefined;
  spawnKey = 0;
  depth = 0;
  wSeed = 0;
  left: Node | undefined;
  right: Node | undefined;
  readonly start: number;
  readonly end: number;
  constructor(
    start: number,
    end: number,
    readonly parent: Node | undefined,
    readonly isLeft: boolean,
  ) {
    this.start = round6(start);
    this.end = round6(end);
  }
}

/**
 * left_W = left_diff * W * h_reciprocal + sqrt(var) * noise, and (when wanted) the right child's W - left_W.
 * A function of its own so the hot loop is optimized apart from the recursive tree walk around it.
 */
function splitIncrement(
  w: Float32Array,
  noise: Float32Array,
  a: number,
  b: number,
  sd: number,
  left: Float32Array,
  right: Float32Array | undefined,
): void {
  const n = left.length;
  if (right) {
    for (let k = 0; k < n; k++) {
      const wk = w[k]!;
      const leftW = f(f(f(a * wk) * b) + f(sd * noise[k]!));
      left[k] = leftW;
      right[k] = wk - leftW;
    }
  } else {
    for (let k = 0; k < n; k++) left[k] = f(f(f(a * w[k]!) * b) + f(sd * noise[k]!));
  }
}

export type RandnBySeed = (seed: number) => Float32Array;

/** One image's Brownian motion on [t0, t1]. */
export class BrownianInterval {
  private readonly root: Node;
  private readonly rootW: Float32Array;
  private readonly cache = new Map<Node, Float32Array>();
  private last: Node;
  readonly n: number;

  /**
   * @param trace called with every seed torchsde draws a normal for, in upstream's order (the top-level H
   *   draw included, although its value is never needed and is not computed here).
   */
  constructor(
    t0: number,
    t1: number,
    n: number,
    private readonly entropy: number,
    private readonly randn: RandnBySeed,
    private readonly trace?: (seed: number) => void,
    private readonly policy: BrownianCachePolicy = FAST_CACHE,
  ) {
    if (!(t0 <= t1)) throw new DarkroomError('BROWNIAN_BAD_INTERVAL', `initial time ${t0} exceeds terminal time ${t1}`);
    this.n = n;
    this.root = new Node(t0, t1, undefined, false);
    const [wSeed, hSeed] = new SeedSequence(entropy, [], POOL_SIZE).generateState(3);
    const w = this.draw(wSeed!);
    const scale = f(Math.sqrt(t1 - t0));
    this.rootW = new Float32Array(n);
    for (let k = 0; k < n; k++) this.rootW[k] = w[k]! * scale;
    this.trace?.(hSeed!);
    this.last = this.root;
  }

  private draw(seed: number): Float32Array {
    this.trace?.(seed);
    const out = this.randn(seed);
    if (out.length !== this.n) throw new DarkroomError('BROWNIAN_BAD_NOISE', `randn gave ${out.length} values, expected ${this.n}`);
    return out;
  }

  /** W(tb) - W(ta) for t0 <= ta <= tb <= t1 (clamped into the interval as torchsde does). */
  increment(ta: number, tb: number): Float32Array {
    const root = this.root;
    ta = Math.min(Math.max(ta, root.start), root.end);
    tb = Math.min(Math.max(tb, root.start), root.end);
    if (ta > tb) throw new DarkroomError('BROWNIAN_BAD_QUERY', `query times ${ta} > ${tb}`);
    if (ta === tb) return new Float32Array(this.n);
    const nodes: Node[] = [];
    this.locate(this.last, round6(ta), round6(tb), nodes);
    this.last = nodes[nodes.length - 1]!;
    const w = this.valueOf(nodes[0]!).slice();
    for (let i = 1; i < nodes.length; i++) {
      const wi = this.valueOf(nodes[i]!);
      for (let k = 0; k < this.n; k++) w[k] = w[k]! + wi[k]!;
    }
    return w;
  }

  private cacheGet(node: Node): Float32Array | undefined {
    const hit = this.cache.get(node);
    if (hit && this.policy.refreshOnHit) {
      this.cache.delete(node);
      this.cache.set(node, hit);
    }
    return hit;
  }

  private cacheSet(node: Node, value: Float32Array): void {
    if (this.cache.size >= this.policy.size) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(node, value);
  }

  /** The increment over a node: from its parent's, the parent's midpoint and the parent's W seed. */
  private valueOf(node: Node): Float32Array {
    if (node === this.root) return this.rootW;
    const hit = this.cacheGet(node);
    if (hit) return hit;
    const parent = node.parent!;
    const w = this.valueOf(parent);
    const hRecip = 1 / (parent.end - parent.start);
    const leftDiff = parent.midway! - parent.start;
    const rightDiff = parent.end - parent.midway!;
    const variance = leftDiff * rightDiff * hRecip;
    const noise = this.draw(parent.wSeed);
    const a = f(leftDiff);
    const b = f(hRecip);
    const sd = f(Math.sqrt(variance));
    const left = new Float32Array(this.n);
    const pair = this.policy.pairSiblings;
    const right = pair || !node.isLeft ? new Float32Array(this.n) : undefined;
    splitIncrement(w, noise, a, b, sd, left, right);
    if (pair) {
      const sibling = node.isLeft ? parent.right! : parent.left!;
      if (!this.cache.has(sibling)) this.cacheSet(sibling, node.isLeft ? right! : left);
    }
    const out = node.isLeft ? left : right!;
    this.cacheSet(node, out);
    return out;
  }

  private locate(node: Node, ta: number, tb: number, out: Node[]): void {
    for (;;) {
      if (ta < node.start || tb > node.end) {
        node = node.parent!;
        continue;
      }
      if (ta === node.start && tb === node.end) {
        out.push(node);
        return;
      }
      if (node.midway === undefined) {
        if (ta === node.start) {
          this.split(node, tb);
          node = node.left!;
          continue;
        }
        this.split(node, ta);
        node = node.right!;
        continue;
      }
      if (tb <= node.midway) {
        node = node.left!;
        continue;
      }
      if (ta >= node.midway) {
        node = node.right!;
        continue;
      }
      this.locate(node.left!, ta, node.midway, out);
      const mid = node.midway;
      node = node.right!;
      ta = mid;
    }
  }

  /** Halfway-tree split: halve at the rounded midpoint, then keep halving towards `midway`. */
  private split(node: Node, midway: number): void {
    for (;;) {
      this.splitExact(node, 0.5 * (node.end + node.start));
      if (midway > node.midway!) node = node.right!;
      else if (midway < node.midway!) node = node.left!;
      else return;
    }
  }

  private splitExact(node: Node, midway: number): void {
    node.midway = round6(midway);
    if (node.parent) {
      node.spawnKey = 2 * node.parent.spawnKey + (node.isLeft ? 0 : 1);
      node.depth = node.parent.depth + 1;
    }
    const seq = new SeedSequence(this.entropy, [node.spawnKey, node.depth], POOL_SIZE);
    node.wSeed = seq.generateState(4)[0]!;
    node.left = new Node(node.start, midway, node, true);
    node.right = new Node(midway, node.end, node, false);
  }
}

/**
 * k-diffusion's BatchedBrownianTree + BrownianTreeNoiseSampler with A1111's per-image seeds: noise(s, s_next)
 * = (W(t_hi) - W(t_lo)) * sign / sqrt(|s_next - s|), one tree per batch item.
 */
export class BatchedBrownianTree {
  private readonly trees: BrownianInterval[];
  private readonly sign: number;
  private readonly perItem: number;

  constructor(
    readonly shape: readonly number[],
    sigmaMin: number,
    sigmaMax: number,
    seeds: readonly number[],
    randnLocal: (seed: number, shape: readonly number[]) => Float32Tensor,
    trace?: (item: number, seed: number) => void,
    policy: BrownianCachePolicy = FAST_CACHE,
  ) {
    const itemShape = shape.slice(1);
    this.perItem = numel(itemShape);
    const lo = Math.min(sigmaMin, sigmaMax);
    const hi = Math.max(sigmaMin, sigmaMax);
    this.sign = sigmaMin < sigmaMax ? 1 : -1;
    this.trees = seeds.map(
      (seed, item) =>
        new BrownianInterval(
          lo,
          hi,
          this.perItem,
          seed,
          (s) => randnLocal(s, itemShape).data,
          trace ? (s) => trace(item, s) : undefined,
          policy,
        ),
    );
  }

  noise(sigma: number, sigmaNext: number): Float32Tensor {
    const lo = Math.min(sigma, sigmaNext);
    const hi = Math.max(sigma, sigmaNext);
    const sign = this.sign * (sigma < sigmaNext ? 1 : -1);
    const denom = f(Math.sqrt(Math.abs(f(sigmaNext - sigma))));
    const out = float32(this.shape);
    this.trees.forEach((tree, item) => {
      const w = tree.increment(lo, hi);
      const base = item * this.perItem;
      for (let k = 0; k < this.perItem; k++) out.data[base + k] = (w[k]! * sign) / denom;
    });
    return out;
  }
}
