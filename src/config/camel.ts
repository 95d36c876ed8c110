// YAML keys are kebab-case (what operators write and what errors, `validate --json` and
// the JSON Schema name); the code reads plain camelCase properties. The schema validates
// the kebab form and maps it once, here, so nothing outside src/config/ spells a YAML key.

/** `min-healthy` → `minHealthy` at the type level. */
export type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/** Every object key of T, at every depth, in camelCase; values are untouched. */
export type Camelized<T> = T extends readonly (infer U)[]
  ? Camelized<U>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelCase<K> : K]: Camelized<T[K]> }
    : T;

export function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A deep copy of a parsed config with camelCase keys (plain objects and arrays only). */
export function camelizeKeys<T>(value: T): Camelized<T> {
  return mapKeys(value, camelCase) as Camelized<T>;
}

function mapKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapKeys(v, rename));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[rename(k)] = mapKeys(v, rename);
  return out;
}

/** `minHealthy` → `min-healthy`: the inverse of camelCase for every key of the schema. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The config as users write it (kebab-case keys): for `validate --json` and stored forms. */
export function kebabizeKeys(value: unknown): unknown {
  return mapKeys(value, kebabCase);
}
