// LineFramer: the same lines whatever the chunking, a byte cap on lines, and work linear in
// the bytes received: 64 KiB in 1-byte chunks scans each byte once (a framer that
// re-splits its whole buffer per chunk scans ~2^31 bytes for the same input).
import { describe, expect, it } from "vitest";
import { LineFramer, MAX_FRAME_BYTES } from "../../../src/health/stream.ts";

/** Feeds `input` in chunks of the given sizes (cycled); returns every line and the framer. */
function feed(input: Buffer, sizes: number[], framer = new LineFramer()) {
  const lines: string[] = [];
  let oversize = false;
  for (let i = 0, k = 0; i < input.length && !oversize; k++) {
    const n = sizes[k % sizes.length]!;
    const r = framer.push(input.subarray(i, i + n));
    lines.push(...r.lines);
    oversize = r.oversize;
    i += n;
  }
  return { lines, oversize, framer };
}

describe("LineFramer", () => {
  it("scans each byte once: 64 KiB in 1-byte chunks costs what one chunk does", () => {
    const line = Buffer.alloc(MAX_FRAME_BYTES, "x");
    const input = Buffer.concat([line, Buffer.from("\n")]);
    const whole = feed(input, [input.length]);
    const bytewise = feed(input, [1]);
    expect(bytewise.lines).toEqual([line.toString()]);
    expect(whole.lines).toEqual(bytewise.lines);
    expect(bytewise.oversize).toBe(false);
    expect(whole.framer.scanned).toBe(input.length);
    expect(bytewise.framer.scanned).toBe(input.length);
    // The partial line grows by doubling: every byte is copied a bounded number of times.
    expect(bytewise.framer.copied).toBeLessThanOrEqual(3 * input.length);
  });

  it("stays linear over many lines in odd chunk sizes", () => {
    const text = Array.from({ length: 2000 }, (_, i) => `{"t":"health","seq":${i}}`).join("\n");
    const input = Buffer.from(`${text}\n`);
    const r = feed(input, [1, 7, 3, 64, 2, 1000]);
    expect(r.lines).toHaveLength(2000);
    expect(r.lines[1999]).toBe('{"t":"health","seq":1999}');
    expect(r.framer.scanned).toBe(input.length);
    expect(r.framer.copied).toBeLessThanOrEqual(3 * input.length);
  });

  it("keeps multi-byte UTF-8 whole across chunk boundaries and skips empty lines", () => {
    const input = Buffer.from("héllo wörld ✓\n\n\nnext 🚀\n");
    expect(feed(input, [1]).lines).toEqual(["héllo wörld ✓", "next 🚀"]);
    expect(feed(input, [2, 3]).lines).toEqual(["héllo wörld ✓", "next 🚀"]);
  });

  it("flags a line one byte over the cap, complete or still open, whatever the chunking", () => {
    const f = new LineFramer(16);
    expect(f.push(Buffer.from(`${"a".repeat(16)}\n`))).toEqual({
      lines: ["a".repeat(16)],
      oversize: false,
    });
    expect(new LineFramer(16).push(Buffer.from(`${"a".repeat(17)}\n`)).oversize).toBe(true);
    // Still open (no newline yet): flagged as soon as the 17th byte arrives.
    const open = feed(Buffer.from("b".repeat(40)), [1], new LineFramer(16));
    expect(open.oversize).toBe(true);
    expect(open.framer.scanned).toBe(17);
    // The cap is per line, not per chunk: many short lines in one chunk are fine.
    const many = new LineFramer(16).push(Buffer.from("0123456789\n".repeat(100)));
    expect(many.oversize).toBe(false);
    expect(many.lines).toHaveLength(100);
  });
});
