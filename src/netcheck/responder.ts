// The far end of a probe: TCP and UDP servers on every address of the
// current network namespace (IPv4 and IPv6), each answering with one JSON
// line that says who it saw:
//
//   {"proto":"tcp","from":"10.65.0.1","to":"10.65.0.2","port":8080}
//   {"proto":"udp","from":"10.65.0.1","to":"10.65.0.2","port":53,"nonce":"…"}
//
// TCP: one dual-stack listener on "::" (or "0.0.0.0" where IPv6 is off),
// greets and closes; with `echo`, greets and then echoes what it receives
// until the client closes (a long flow can be checked byte for byte). UDP: a reply must leave from the address the probe was
// sent to, or the prober's connected socket (and the conntrack entry that
// policy relies on) would not match it; Node has no IP_PKTINFO, so there is
// one socket bound to each address the namespace has at start, besides the
// wildcard for addresses added later (whose replies the kernel addresses).
// IPv6 link-local addresses are not bound (they need a scope).
//
// responder-main.ts runs this as a process inside a namespace.
import { createSocket } from "node:dgram";
import type { Socket as UdpSocket } from "node:dgram";
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { networkInterfaces } from "node:os";

export interface ResponderOptions {
  tcpPorts: readonly number[];
  udpPorts: readonly number[];
  /** TCP: echo after the greeting instead of closing (default false). */
  echo?: boolean;
}

export interface Responder {
  close(): Promise<void>;
}

/** "::ffff:10.0.0.1" → "10.0.0.1"; other addresses unchanged. */
export function plainAddress(a: string | undefined): string {
  if (a === undefined) return "";
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

function isUnsupported(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL";
}

function listenTcp(port: number, host: string, echo: boolean, open: Set<Socket>): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => {
      s.on("error", () => undefined);
      open.add(s);
      s.on("close", () => open.delete(s));
      const line = {
        proto: "tcp",
        from: plainAddress(s.remoteAddress),
        to: plainAddress(s.localAddress),
        port,
      };
      if (echo) {
        s.write(`${JSON.stringify(line)}\n`);
        s.pipe(s);
      } else {
        s.end(`${JSON.stringify(line)}\n`);
      }
    });
    server.once("error", reject);
    server.listen({ port, host, ipv6Only: false }, () => {
      server.off("error", reject);
      server.on("error", () => undefined);
      resolve(server);
    });
  });
}

function bindUdp(port: number, address: string, family: 4 | 6): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: family === 4 ? "udp4" : "udp6", reuseAddr: true });
    sock.on("message", (msg, rinfo) => {
      const line = {
        proto: "udp",
        from: plainAddress(rinfo.address),
        to: address === "::" || address === "0.0.0.0" ? "" : address,
        port,
        nonce: msg.toString("utf8").slice(0, 100),
      };
      sock.send(`${JSON.stringify(line)}\n`, rinfo.port, rinfo.address);
    });
    sock.once("error", reject);
    sock.bind({ port, address }, () => {
      sock.off("error", reject);
      sock.on("error", () => undefined);
      resolve(sock);
    });
  });
}

/** The namespace's own addresses, less IPv6 link-local ones. */
function localAddresses(): { address: string; family: 4 | 6 }[] {
  const out: { address: string; family: 4 | 6 }[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === "IPv6" && /^fe80:/i.test(a.address)) continue;
      out.push({ address: a.address, family: a.family === "IPv4" ? 4 : 6 });
    }
  }
  return out;
}

/** Starts the servers; rejects (closing what it opened) when a port cannot be had. */
export async function serveResponder(options: ResponderOptions): Promise<Responder> {
  const tcp: Server[] = [];
  const udp: UdpSocket[] = [];
  const open = new Set<Socket>();
  const echo = options.echo ?? false;
  const close = async () => {
    // A server closes once its connections have: end the echoing ones.
    for (const s of open) s.destroy();
    await Promise.all(tcp.map((s) => new Promise((r) => s.close(r))));
    await Promise.all(udp.map((s) => new Promise<void>((r) => s.close(() => r()))));
  };
  try {
    for (const port of options.tcpPorts) {
      try {
        tcp.push(await listenTcp(port, "::", echo, open));
      } catch (err) {
        if (!isUnsupported(err)) throw err;
        tcp.push(await listenTcp(port, "0.0.0.0", echo, open));
      }
    }
    const addresses = options.udpPorts.length > 0 ? localAddresses() : [];
    for (const port of options.udpPorts) {
      for (const a of addresses) udp.push(await bindUdp(port, a.address, a.family));
      try {
        udp.push(await bindUdp(port, "::", 6));
      } catch (err) {
        if (!isUnsupported(err)) throw err;
        udp.push(await bindUdp(port, "0.0.0.0", 4));
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
