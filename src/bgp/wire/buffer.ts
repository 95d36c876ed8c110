// A growable output buffer for the encoders. Decoders read with DataView and explicit
// bounds checks instead: every read of peer bytes is guarded where it happens.

export class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(initialSize = 4096) {
    this.buf = new Uint8Array(initialSize);
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v & 0xffff);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Reserves a 1- or 2-octet length field and returns its offset for `patch`. */
  reserve(size: 1 | 2): number {
    this.ensure(size);
    const at = this.pos;
    this.pos += size;
    return at;
  }

  patch8(at: number, v: number): void {
    this.buf[at] = v & 0xff;
  }

  patch16(at: number, v: number): void {
    this.view.setUint16(at, v & 0xffff);
  }

  /** A copy of what was written; the writer may be reused afterwards. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}
