// The native addon on loopback, without root: socket options, TCP connect with MD5 / TTL /
// GTSM applied before the SYN, fd wrapping into net.Socket, socketFd, and the TTL-reporting
// UDP socket, in the main thread and in a worker_thread.
import * as dgram from "node:dgram";
import { once } from "node:events";
import * as net from "node:net";
import { getPriority } from "node:os";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import {
  connectTcp,
  constants,
  getSocketOptionInt,
  NativeSocketError,
  nativeAvailable,
  nativeLoadError,
  setMinTtl,
  setSocketOptionInt,
  setTcpMd5,
  setTtl,
  socketFd,
  TtlUdpSocket,
} from "../../../src/native/index.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function listen(host: string, setup?: (fd: number) => void): Promise<net.Server> {
  const server = net.createServer();
  server.listen(0, host);
  await once(server, "listening");
  setup?.(socketFd(server));
  cleanups.push(() => server.close());
  return server;
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

function wrap(fd: number): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: true });
  cleanups.push(() => s.destroy());
  return s;
}

describe("native addon", () => {
  it("loads (built by npm install / node-gyp rebuild)", () => {
    expect(nativeLoadError()).toBeUndefined();
    expect(nativeAvailable()).toBe(true);
    // Linux values: these are ABI, the BGP code passes them straight to setsockopt.
    expect(constants).toMatchObject({
      IPPROTO_IP: 0,
      IPPROTO_IPV6: 41,
      IPPROTO_TCP: 6,
      IP_TTL: 2,
      IP_MINTTL: 21,
      IPV6_UNICAST_HOPS: 16,
      IPV6_MINHOPCOUNT: 73,
      TCP_MD5SIG: 14,
      TCP_MD5SIG_MAXKEYLEN: 80,
    });
  });

  it("socketFd finds the fd of net.Server, net.Socket and dgram.Socket, and explains when none", async () => {
    const server = await listen("127.0.0.1");
    const fd = socketFd(server);
    expect(fd).toBeGreaterThan(2);
    const client = net.connect(portOf(server), "127.0.0.1");
    cleanups.push(() => client.destroy());
    await once(client, "connect");
    expect(socketFd(client)).toBeGreaterThan(2);
    const udp = dgram.createSocket("udp4");
    cleanups.push(() => udp.close());
    expect(() => socketFd(udp)).toThrow(/no handle yet|no file descriptor/);
    udp.bind(0, "127.0.0.1");
    await once(udp, "listening");
    expect(socketFd(udp)).toBeGreaterThan(2);
    expect(() => socketFd(new net.Socket())).toThrow(/no handle yet/);
  });

  it("sets and reads integer options, and names errno on failure", async () => {
    const server = await listen("127.0.0.1");
    const fd = socketFd(server);
    const c = constants!;
    setSocketOptionInt(fd, c.IPPROTO_IP, c.IP_TTL, 255);
    expect(getSocketOptionInt(fd, c.IPPROTO_IP, c.IP_TTL)).toBe(255);
    setMinTtl(fd, 4, 254);
    expect(getSocketOptionInt(fd, c.IPPROTO_IP, c.IP_MINTTL)).toBe(254);
    const server6 = await listen("::1");
    const fd6 = socketFd(server6);
    setTtl(fd6, 6, 255);
    expect(getSocketOptionInt(fd6, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS)).toBe(255);
    setMinTtl(fd6, 6, 255);
    expect(getSocketOptionInt(fd6, c.IPPROTO_IPV6, c.IPV6_MINHOPCOUNT)).toBe(255);
    // TTL 256 is out of range: EINVAL with a code, not a crash.
    let err: unknown;
    try {
      setSocketOptionInt(fd, c.IPPROTO_IP, c.IP_TTL, 256);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeSocketError);
    expect((err as NativeSocketError).code).toBe("EINVAL");
    expect(() => setSocketOptionInt(-1, 0, 2, 1)).toThrow(/bad file descriptor/);
    expect(() => setTcpMd5(fd, "not-an-address", "k")).toThrow(/EINVAL|Invalid/);
    expect(() => setTcpMd5(fd, "127.0.0.1", "x".repeat(81))).toThrow(/80 bytes/);
  });

  it("connectTcp resolves with an fd that net.Socket wraps for real traffic (IPv4 and IPv6)", async () => {
    for (const host of ["127.0.0.1", "::1"]) {
      const server = await listen(host);
      const accepted = once(server, "connection");
      const fd = await connectTcp({
        remote: host,
        port: portOf(server),
        ttl: 255,
        timeoutMs: 2000,
      });
      const c = constants!;
      expect(
        host.includes(":")
          ? getSocketOptionInt(fd, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS)
          : getSocketOptionInt(fd, c.IPPROTO_IP, c.IP_TTL),
      ).toBe(255);
      const sock = wrap(fd);
      const [peer] = (await accepted) as [net.Socket];
      cleanups.push(() => peer.destroy());
      expect(sock.remoteAddress).toBe(host);
      expect(sock.remotePort).toBe(portOf(server));
      expect(peer.remotePort).toBe(sock.localPort);
      peer.write("hello");
      const [data] = (await once(sock, "data")) as [Buffer];
      expect(data.toString()).toBe("hello");
      sock.write("back");
      const [back] = (await once(peer, "data")) as [Buffer];
      expect(back.toString()).toBe("back");
    }
  });

  it("connectTcp binds the local address when asked", async () => {
    const server = await listen("127.0.0.1");
    const fd = await connectTcp({
      remote: "127.0.0.1",
      port: portOf(server),
      local: "127.0.0.2",
      timeoutMs: 2000,
    });
    expect(wrap(fd).localAddress).toBe("127.0.0.2");
  });

  it("connectTcp rejects with ECONNREFUSED and with typed errors for bad input", async () => {
    const server = await listen("127.0.0.1");
    const port = portOf(server);
    await new Promise((r) => server.close(r));
    await expect(connectTcp({ remote: "127.0.0.1", port, timeoutMs: 2000 })).rejects.toMatchObject({
      code: "ECONNREFUSED",
      syscall: "connect",
    });
    await expect(connectTcp({ remote: "nonsense", port, timeoutMs: 100 })).rejects.toMatchObject({
      code: "EINVAL",
    });
    await expect(
      connectTcp({ remote: "127.0.0.1", port, local: "::1", timeoutMs: 100 }),
    ).rejects.toMatchObject({ code: "EINVAL" });
  });

  it("GTSM: a listener with minimum TTL 255 ignores TTL 64 SYNs (ETIMEDOUT) and accepts TTL 255", async () => {
    const server = await listen("127.0.0.1", (fd) => setMinTtl(fd, 4, 255));
    const port = portOf(server);
    const t0 = Date.now();
    await expect(
      connectTcp({ remote: "127.0.0.1", port, ttl: 64, timeoutMs: 300 }),
    ).rejects.toMatchObject({ code: "ETIMEDOUT" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    const fd = await connectTcp({ remote: "127.0.0.1", port, ttl: 255, timeoutMs: 2000 });
    expect(fd).toBeGreaterThan(2);
    wrap(fd);
  });

  it("GTSM on the connecting side: minTtl 255 drops the SYN-ACK of a TTL-64 listener", async () => {
    const server = await listen("::1");
    await expect(
      connectTcp({ remote: "::1", port: portOf(server), ttl: 255, minTtl: 255, timeoutMs: 300 }),
    ).rejects.toMatchObject({ code: "ETIMEDOUT" });
  });

  it("TCP-MD5: matching keys connect, a mismatch or a missing key never does", async () => {
    for (const host of ["127.0.0.1", "::1"]) {
      const server = await listen(host, (fd) => setTcpMd5(fd, host, "s3cret"));
      const port = portOf(server);
      const fd = await connectTcp({ remote: host, port, md5Key: "s3cret", timeoutMs: 2000 });
      wrap(fd);
      await expect(
        connectTcp({ remote: host, port, md5Key: "wrong", timeoutMs: 300 }),
      ).rejects.toMatchObject({ code: "ETIMEDOUT" });
      await expect(connectTcp({ remote: host, port, timeoutMs: 300 })).rejects.toMatchObject({
        code: "ETIMEDOUT",
      });
      // Removing the key on the listener lets unsigned connections in again.
      setTcpMd5(socketFd(server), host, null);
      wrap(await connectTcp({ remote: host, port, timeoutMs: 2000 }));
    }
  });

  it("TCP-MD5 on a dual-stack listener (::) keys an IPv4 peer by its mapped address", async () => {
    const server = await listen("::", (fd) => setTcpMd5(fd, "127.0.0.1", "dual"));
    const port = portOf(server);
    wrap(await connectTcp({ remote: "127.0.0.1", port, md5Key: "dual", timeoutMs: 2000 }));
    await expect(
      connectTcp({ remote: "127.0.0.1", port, md5Key: "other", timeoutMs: 300 }),
    ).rejects.toMatchObject({ code: "ETIMEDOUT" });
  });

  it("TtlUdpSocket reports the received TTL / hop limit and the destination", async () => {
    for (const host of ["127.0.0.1", "::1"]) {
      const got: { data: string; ttl: number; src: string; dst: string; ifindex: number }[] = [];
      let wake: () => void = () => {};
      const rx = new TtlUdpSocket({
        address: host,
        port: 0,
        ttl: 255,
        onMessage: (data, src, _port, ttl, dst, ifindex) => {
          got.push({ data: data.toString(), ttl, src, dst, ifindex });
          wake();
        },
      });
      cleanups.push(() => rx.close());
      expect(rx.port).toBeGreaterThan(0);
      const tx255 = new TtlUdpSocket({ address: host, port: 0, ttl: 255 });
      const tx7 = new TtlUdpSocket({ address: host, port: 0, ttl: 7 });
      cleanups.push(
        () => tx255.close(),
        () => tx7.close(),
      );
      const arrived = (n: number) =>
        new Promise<void>((resolve) => {
          wake = () => got.length >= n && resolve();
          wake();
        });
      expect(tx255.send(Buffer.from("a"), host, rx.port)).toBe(1);
      tx7.send(Buffer.from("b"), host, rx.port);
      await arrived(2);
      expect(got).toEqual([
        { data: "a", ttl: 255, src: host, dst: host, ifindex: 1 },
        { data: "b", ttl: 7, src: host, dst: host, ifindex: 1 },
      ]);
    }
  });

  it("TtlUdpSocket errors are typed: address in use, wrong family, closed", () => {
    const a = new TtlUdpSocket({ address: "127.0.0.1", port: 0, ttl: 255 });
    cleanups.push(() => a.close());
    expect(() => new TtlUdpSocket({ address: "127.0.0.1", port: a.port, ttl: 255 })).toThrow(
      expect.objectContaining({ code: "EADDRINUSE" }),
    );
    expect(() => a.send(Buffer.from("x"), "::1", 9)).toThrow(
      expect.objectContaining({ code: "EAFNOSUPPORT" }),
    );
    a.close();
    a.close();
    expect(() => a.send(Buffer.from("x"), "127.0.0.1", 9)).toThrow(
      expect.objectContaining({ code: "EBADF" }),
    );
  });

  it("loads and works inside a worker_thread (context-aware addon)", async () => {
    const server = await listen("127.0.0.1");
    const src = `
      const { parentPort, workerData } = require("node:worker_threads");
      const { createRequire } = require("node:module");
      const addon = createRequire(workerData.path)(workerData.path);
      const rx = addon.udpOpen("127.0.0.1", 0, 255, (buf, src, port, ttl) => {
        addon.connectTcp("127.0.0.1", workerData.port, null, null, 255, 0, 2000, (errno, fd) => {
          addon.udpClose(rx); addon.udpClose(tx);
          parentPort.postMessage({ text: buf.toString(), ttl, errno, fd });
        });
      });
      const tx = addon.udpOpen("127.0.0.1", 0, 255, null);
      addon.udpSend(tx, Buffer.from("in-worker"), "127.0.0.1", rx.port);
    `;
    const { addonPath } = await import("../../../src/native/index.ts");
    const worker = new Worker(src, {
      eval: true,
      workerData: { path: addonPath, port: portOf(server) },
    });
    cleanups.push(() => void worker.terminate());
    const [msg] = (await once(worker, "message")) as [
      { text: string; ttl: number; errno: number; fd: number },
    ];
    expect(msg).toMatchObject({ text: "in-worker", ttl: 255, errno: 0 });
    expect(msg.fd).toBeGreaterThan(2);
    wrap(msg.fd);
    await worker.terminate();
  });

  it("a worker terminated with a connect pending and a socket open exits cleanly", async () => {
    // The listener ignores TTL-64 SYNs, so the connect stays pending until terminate().
    const server = await listen("127.0.0.1", (fd) => setMinTtl(fd, 4, 255));
    const src = `
      const { parentPort, workerData } = require("node:worker_threads");
      const { createRequire } = require("node:module");
      const addon = createRequire(workerData.path)(workerData.path);
      addon.connectTcp("127.0.0.1", workerData.port, null, null, 64, 0, 60000, () =>
        parentPort.postMessage("callback after terminate?"));
      addon.udpOpen("127.0.0.1", 0, 255, () => {});
      addon.udpOpen("::1", 0, 255, null);
      parentPort.postMessage("pending");
    `;
    const { addonPath } = await import("../../../src/native/index.ts");
    for (let i = 0; i < 3; i++) {
      const worker = new Worker(src, {
        eval: true,
        workerData: { path: addonPath, port: portOf(server) },
      });
      const [msg] = await once(worker, "message");
      expect(msg).toBe("pending");
      // Before the fix for close callbacks after unload, this crashed the process (SIGSEGV).
      expect(await worker.terminate()).toBe(1);
    }
  });

  it("setThreadNice changes the calling thread only (a worker's nice, not the process's)", async () => {
    const { addonPath } = await import("../../../src/native/index.ts");
    const before = getPriority();
    const src = `
      const { parentPort, workerData } = require("node:worker_threads");
      const addon = require(workerData.path);
      parentPort.postMessage(addon.setThreadNice(${before + 3}));
    `;
    const worker = new Worker(src, { eval: true, workerData: { path: addonPath } });
    const [nice] = await once(worker, "message");
    await worker.terminate();
    expect(nice).toBe(before + 3);
    expect(getPriority()).toBe(before);
  });
});
