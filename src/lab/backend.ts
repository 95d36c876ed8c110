// `vipmux lab backend`: the backend "VM" of the lab and demos. HTTP answers with its name
// and the client address it sees (so NAT and DSR can be checked from the client), /healthz
// for probes; UDP echo; TCP line echo prefixed with its name. Dual-stack. Nothing here is on a MUX's path.
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";

export interface BackendOptions {
  name: string;
  http?: number;
  udpEcho?: number;
  tcpEcho?: number;
  log?: (msg: string) => void;
}

export interface RunningBackend {
  close(): Promise<void>;
}

export async function startBackend(opts: BackendOptions): Promise<RunningBackend> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const closers: (() => Promise<void>)[] = [];
  if (opts.http) {
    const server = http.createServer((req, res) => {
      res.setHeader("content-type", "text/plain");
      if (req.url === "/healthz") {
        res.end("ok\n");
        return;
      }
      const client = `${plain(req.socket.remoteAddress)}:${req.socket.remotePort}`;
      const local = `${plain(req.socket.localAddress)}:${req.socket.localPort}`;
      res.end(`${opts.name} ${local} client ${client}\n`);
    });
    server.keepAliveTimeout = 5000;
    await listen(server, opts.http);
    closers.push(() => closeServer(server));
    log(`${opts.name}: HTTP on port ${opts.http}`);
  }
  if (opts.tcpEcho) {
    // Line echo with the backend's name in front ("vm11 <line>"): a client sees which
    // backend holds each of its connections, e.g. across a MUX failover.
    const server = net.createServer((s) => {
      s.on("error", () => {});
      let buf = "";
      s.setEncoding("utf8");
      s.on("data", (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          s.write(`${opts.name} ${buf.slice(0, nl + 1)}`);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
        }
        if (buf.length > 65536) s.destroy();
      });
    });
    await listen(server, opts.tcpEcho);
    closers.push(() => closeServer(server));
    log(`${opts.name}: TCP line echo on port ${opts.tcpEcho}`);
  }
  if (opts.udpEcho) {
    // One dual-stack socket: IPv4 clients arrive as ::ffff:a.b.c.d.
    const sock = dgram.createSocket({ type: "udp6", ipv6Only: false });
    sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.on("error", (e) => log(`${opts.name}: UDP echo error: ${e.message}`));
    await new Promise<void>((resolve) => sock.bind(opts.udpEcho, "::", resolve));
    closers.push(() => new Promise<void>((r) => sock.close(() => r())));
    log(`${opts.name}: UDP echo on port ${opts.udpEcho}`);
  }
  return { close: async () => void (await Promise.all(closers.map((c) => c()))) };
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: "::", ipv6Only: false }, () => resolve());
  });
}

function closeServer(server: net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

/** IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d; show them as IPv4. */
const plain = (a: string | undefined) => (a ?? "?").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
