// Loopback test peers for the speaker: real TCP on 127.0.0.0/8, no root needed.
import net from "node:net";
import { Speaker, type SpeakerOptions } from "../../../src/bgp/speaker.ts";
import {
  type CodecContext,
  contextWith,
  decodeFrame,
  encodeMessage,
  Framer,
  type Message,
  makeOpen,
  type PathAttributes,
  parseIpv6,
  prefixListFromStrings,
} from "../../../src/bgp/wire/index.ts";

let nextPort = 20000 + (process.pid % 15000) * 2;
export const freePort = () => nextPort++;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(
  fn: () => T | undefined | false,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function speaker(
  o: Partial<SpeakerOptions> & Pick<SpeakerOptions, "asn" | "routerId" | "peers">,
): Speaker {
  return new Speaker({
    holdTimeSec: 9,
    idleHoldMs: 50,
    idleHoldMaxMs: 400,
    coalesceMs: 5,
    rng: () => 1,
    ...o,
  });
}

/**
 * A scripted BGP peer built from the codec: accepts the speaker's connection (or connects
 * to it), answers the OPEN, and records every message it receives.
 */
export class RawPeer {
  readonly server: net.Server;
  socket: net.Socket | null = null;
  readonly received: Message[] = [];
  readonly rawBytes: number[] = [];
  connections = 0;
  ctx: CodecContext = contextWith({ as4: true, maxMessageLength: 65535 });
  private framer = new Framer(65535);
  autoOpen = true;
  /** Stop reading (zero window) once connected. */
  paused = false;
  readonly asn: number;
  readonly holdTime: number;

  constructor(asn: number, holdTime = 9) {
    this.asn = asn;
    this.holdTime = holdTime;
    this.server = net.createServer((s) => this.adopt(s));
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((r) => this.server.listen(port, host, () => r()));
  }

  adopt(s: net.Socket): void {
    this.connections++;
    this.socket?.destroy();
    this.socket = s;
    this.framer = new Framer(65535);
    s.on("error", () => {});
    if (this.paused) s.pause();
    s.on("data", (chunk) => {
      this.framer.push(chunk);
      for (let f = this.framer.next(); f; f = this.framer.next()) {
        if (!f.ok) return;
        const d = decodeFrame(f.value, this.ctx);
        if (!d.ok) continue;
        this.received.push(d.value);
        if (d.value.type === "open" && this.autoOpen) {
          this.send(
            encodeMessage(
              {
                type: "open",
                ...makeOpen({
                  asn: this.asn,
                  holdTime: this.holdTime,
                  bgpId: 0x0a0a0a0a,
                  capabilities: [
                    { kind: "multiprotocol", afi: 1, safi: 1 },
                    { kind: "multiprotocol", afi: 2, safi: 1 },
                    { kind: "four-octet-as", asn: this.asn },
                    { kind: "route-refresh" },
                    { kind: "enhanced-route-refresh" },
                    { kind: "extended-message" },
                  ],
                }),
              },
              this.ctx,
            ),
          );
          this.send(encodeMessage({ type: "keepalive" }, this.ctx));
        }
      }
    });
  }

  /** Connects to a listening speaker from `local`: the peer opens the session. */
  dial(host: string, port: number, local: string): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, localAddress: local });
      s.once("connect", () => {
        s.removeListener("error", reject);
        this.adopt(s);
        resolve(s);
      });
      s.once("error", reject);
    });
  }

  send(bytes: Uint8Array): void {
    this.socket?.write(bytes);
  }

  of<T extends Message["type"]>(type: T): Extract<Message, { type: T }>[] {
    return this.received.filter((m) => m.type === type) as Extract<Message, { type: T }>[];
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const PATH: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65000] }] };

/** An UPDATE announcing and withdrawing IPv4 prefixes (next hop 192.0.2.1). */
export function updateV4(
  ctx: CodecContext,
  announce: readonly string[],
  withdraw: readonly string[] = [],
  med?: number,
): Uint8Array {
  return encodeMessage(
    {
      type: "update",
      withdrawn: prefixListFromStrings(1, withdraw),
      attrs:
        announce.length > 0
          ? { ...PATH, nextHop: 0xc0000201, ...(med !== undefined ? { med } : {}) }
          : {},
      nlri: prefixListFromStrings(1, announce),
    },
    ctx,
  );
}

/** An UPDATE announcing (MP_REACH_NLRI, next hop 2001:db8::1) and withdrawing IPv6 prefixes. */
export function updateV6(
  ctx: CodecContext,
  announce: readonly string[],
  withdraw: readonly string[] = [],
): Uint8Array {
  return encodeMessage(
    {
      type: "update",
      withdrawn: prefixListFromStrings(1, []),
      attrs: {
        ...(announce.length > 0
          ? {
              ...PATH,
              mpReach: {
                afi: 2,
                safi: 1,
                nextHop: parseIpv6("2001:db8::1")!,
                nlri: prefixListFromStrings(2, announce),
              },
            }
          : {}),
        ...(withdraw.length > 0
          ? { mpUnreach: { afi: 2, safi: 1, withdrawn: prefixListFromStrings(2, withdraw) } }
          : {}),
      },
      nlri: prefixListFromStrings(1, []),
    },
    ctx,
  );
}

/** `count` distinct /32s (or /128s) numbered from `from`. */
export const v4Prefixes = (count: number, from = 0): string[] =>
  Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`;
  });
export const v6Prefixes = (count: number, from = 0): string[] =>
  Array.from({ length: count }, (_, i) => `2001:db8:f::${(from + i).toString(16)}/128`);
