export type { Result } from "./util/result.ts";
export { err, ok } from "./util/result.ts";
