// The speaker's Loc-RIB (RFC 4271 §3.2): the routes it originates, as the owner announced
// them, before any peer's export policy. A route is a prefix key and the id of an interned
// attribute set: the table holds numbers and shared flat strings only (no object per
// route), so 100,000 VIPs cost a few MiB. Every peer's Adj-RIB-Out (adj-rib-out.ts) is
// keyed by the same canonical prefix keys.

import type { RouteAttributes } from "./policy.ts";
import { formatPrefix, type Prefix, parsePrefix } from "./wire/prefix.ts";

/** Canonical text of a prefix: the key of every table. */
export function prefixKey(text: string): { key: string; prefix: Prefix } {
  const p = parsePrefix(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`);
  if (!p) throw new TypeError(`not a prefix: ${text}`);
  return { key: flat(formatPrefix(p)), prefix: p };
}

/**
 * The prefix of a canonical key. IPv4 keys are parsed by hand: this runs for every prefix
 * of every UPDATE batch, and the general parser's garbage would dominate a full-table send.
 */
export function keyPrefix(key: string): Prefix {
  if (key.includes(":")) return parsePrefix(key)!;
  let addr = 0;
  let octet = 0;
  let i = 0;
  for (; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c === 46 /* . */ || c === 47 /* / */) {
      addr = addr * 256 + octet;
      octet = 0;
      if (c === 47) break;
    } else octet = octet * 10 + (c - 48);
  }
  let len = 0;
  for (i++; i < key.length; i++) len = len * 10 + (key.charCodeAt(i) - 48);
  return { afi: 1, addr, len };
}

/**
 * A flat, internalized copy of a string built by concatenation (V8 keeps those as trees
 * of pieces): table keys then cost half the memory and are shared by every table.
 */
function flat(s: string): string {
  if (s.length <= 12) return s; // short concatenations are flat already
  const o: Record<string, true> = { [s]: true };
  for (const k in o) return k;
  return s;
}

/** The same text for attribute sets with the same content, whatever the key order. */
const canonical = (a: RouteAttributes): string => JSON.stringify(a, Object.keys(a).sort());

export class LocRib {
  /** Prefix key → id of its attribute set. */
  private readonly routes = new Map<string, number>();
  /** Interned attribute sets: by id, and the id of each content. */
  private readonly byId: RouteAttributes[] = [];
  private readonly ids = new Map<string, number>();
  private compactAt = 1024;
  private readonly renumbered: () => void;

  /**
   * `renumbered` is called when compaction has given the attribute sets new ids: anything
   * cached by id is stale then.
   */
  constructor(renumbered: () => void) {
    this.renumbered = renumbered;
  }

  get size(): number {
    return this.routes.size;
  }

  /** Attribute sets held: the live ones, and dead ones until the next compaction. */
  get attributeSets(): number {
    return this.byId.length;
  }

  has(key: string): boolean {
    return this.routes.has(key);
  }

  /** The id of the route's attribute set, or undefined when the prefix is not announced. */
  get(key: string): number | undefined {
    return this.routes.get(key);
  }

  /** The attribute set with this id. */
  attrs(id: number): RouteAttributes {
    return this.byId[id]!;
  }

  keys(): MapIterator<string> {
    return this.routes.keys();
  }

  /** Announces the prefix with `attrs`; false when it already had these attributes. */
  set(key: string, attrs: RouteAttributes): boolean {
    const id = this.intern(attrs);
    if (this.routes.get(key) === id) return false;
    this.routes.set(key, id);
    return true;
  }

  /** Withdraws the prefix; false when it was not announced. */
  delete(key: string): boolean {
    return this.routes.delete(key);
  }

  private intern(attrs: RouteAttributes): number {
    const canon = canonical(attrs);
    let id = this.ids.get(canon);
    if (id === undefined) {
      if (this.byId.length >= this.compactAt) this.compact();
      id = this.byId.length;
      this.byId.push(attrs);
      this.ids.set(canon, id);
    }
    return id;
  }

  /**
   * Attribute sets no route uses any more are dropped once the table of them has doubled,
   * so a caller that keeps changing MEDs or communities does not grow memory forever.
   */
  private compact(): void {
    const live = new Map<number, number>(); // old id → new id
    const byId: RouteAttributes[] = [];
    for (const id of this.routes.values()) {
      if (live.has(id)) continue;
      live.set(id, byId.length);
      byId.push(this.byId[id]!);
    }
    for (const [key, id] of this.routes) this.routes.set(key, live.get(id)!);
    this.ids.clear();
    for (let i = 0; i < byId.length; i++) this.ids.set(canonical(byId[i]!), i);
    this.byId.length = 0;
    this.byId.push(...byId);
    this.renumbered();
    this.compactAt = Math.max(1024, 2 * byId.length);
  }
}
