// The `vipmux/bgp` entry point ("ts-bgp"). For now: the wire codec. The speaker (sessions,
// FSM, Adj-RIB-Out) will be exported from here too.
export * from "./wire/index.ts";
