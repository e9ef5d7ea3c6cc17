/**
 * A TEST-ONLY HTTP relay that sits between skopeo and a real registry and
 * misbehaves on purpose, per request: stall a body after N bytes (connection
 * kept open), drip it slowly, reset the connection mid-body, answer 503 once,
 * close before the headers, or flip a byte; or throttle every response like a
 * slow link (benchmarks). The registry and skopeo stay real; only the
 * network lies.
 */
import { request, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type Fault =
  /** `headersFirst`: send the headers at once (by default they go out with the first body byte, so afterBytes 0 withholds them too). */
  | { kind: 'stall'; afterBytes: number; headersFirst?: boolean }
  | { kind: 'drip'; chunkBytes: number; intervalMs: number }
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'status'; status: number }
  | { kind: 'close-before-headers' }
  | { kind: 'corrupt'; atByte: number }
  /** Pace the body at `bytesPerSecond` per connection (a WAN link), after `latencyMs` before the answer. */
  | { kind: 'throttle'; bytesPerSecond: number; latencyMs: number };

interface Rule {
  match: RegExp;
  fault: Fault;
  /** How many matching requests still get the fault. */
  remaining: number;
}

export interface RelayedRequest {
  method: string;
  path: string;
  fault: Fault['kind'] | undefined;
}

export class FaultRelay {
  readonly requests: RelayedRequest[] = [];
  readonly #rules: Rule[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly server: Server,
    readonly port: number,
    private readonly upstreamPort: number,
    private readonly keepAlive: boolean,
  ) {
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('request', (req, res) => this.#relay(req, res));
  }

  /**
   * Starts a relay on 127.0.0.1 in front of the registry at `upstreamPort`.
   * `keepAlive: false` closes every connection after its response: Go's HTTP
   * client silently repeats a request that fails on a re-used connection
   * before any answer, which would hide a 'close-before-headers' fault.
   */
  static async start(upstreamPort: number, options: { keepAlive?: boolean } = {}): Promise<FaultRelay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('relay has no port');
    return new FaultRelay(server, address.port, upstreamPort, options.keepAlive ?? true);
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Applies `fault` to the next `times` requests whose path matches. */
  inject(match: RegExp, fault: Fault, times = 1): void {
    this.#rules.push({ match, fault, remaining: times });
  }

  /** Drops every rule; stalled connections stay stalled until {@link releaseStalled}. */
  clear(): void {
    this.#rules.length = 0;
  }

  /** Requests whose path matches. */
  count(match: RegExp): number {
    return this.requests.filter((r) => match.test(r.path)).length;
  }

  /** Cuts every open connection (stalled ones included). */
  releaseStalled(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.releaseStalled();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #take(path: string): Fault | undefined {
    const rule = this.#rules.find((r) => r.remaining > 0 && r.match.test(path));
    if (!rule) return undefined;
    rule.remaining--;
    return rule.fault;
  }

  #relay(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    const fault = this.#take(path);
    this.requests.push({ method: req.method ?? 'GET', path, fault: fault?.kind });
    if (!this.keepAlive) res.setHeader('connection', 'close');
    if (fault?.kind === 'close-before-headers') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable (injected by the test relay)' }] });
      res.writeHead(fault.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    if (fault?.kind === 'throttle' && fault.latencyMs > 0) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#forward(req, res, path, fault);
      }, fault.latencyMs);
      this.#timers.add(timer);
      return;
    }
    this.#forward(req, res, path, fault);
  }

  #forward(req: IncomingMessage, res: ServerResponse, path: string, fault: Fault | undefined): void {
    const upstream = request(
      { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path, headers: { ...req.headers, host: `127.0.0.1:${this.upstreamPort}` } },
      (answer) => {
        const { connection: _connection, 'keep-alive': _keepAlive, ...headers } = answer.headers;
        res.writeHead(answer.statusCode ?? 502, this.keepAlive ? answer.headers : headers);
        if (!fault) {
          answer.pipe(res);
          return;
        }
        this.#misbehave(fault, answer, res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  #misbehave(fault: Fault, answer: IncomingMessage, res: ServerResponse): void {
    let sent = 0;
    switch (fault.kind) {
      case 'stall':
      case 'reset':
        if (fault.kind === 'stall' && fault.headersFirst) res.flushHeaders();
        answer.on('data', (chunk: Buffer) => {
          const room = fault.afterBytes - sent;
          if (room <= 0) return;
          res.write(chunk.subarray(0, room));
          sent += Math.min(room, chunk.length);
          if (sent >= fault.afterBytes) {
            answer.destroy();
            // 'stall': keep the connection open and silent; 'reset': RST it.
            if (fault.kind === 'reset') res.socket?.resetAndDestroy();
          }
        });
        return;
      case 'corrupt':
        answer.on('data', (chunk: Buffer) => {
          const copy = Buffer.from(chunk);
          const at = fault.atByte - sent;
          if (at >= 0 && at < copy.length) copy[at] = copy[at]! ^ 0xff;
          sent += chunk.length;
          res.write(copy);
        });
        answer.on('end', () => res.end());
        return;
      case 'throttle': {
        // Each chunk is followed by the time the link would need for it.
        const started = Date.now();
        answer.on('data', (chunk: Buffer) => {
          sent += chunk.length;
          res.write(chunk);
          const due = started + (sent / fault.bytesPerSecond) * 1000 - Date.now();
          if (due > 0) {
            answer.pause();
            const timer = setTimeout(() => {
              this.#timers.delete(timer);
              answer.resume();
            }, due);
            this.#timers.add(timer);
          }
        });
        answer.on('end', () => res.end());
        return;
      }
      case 'drip': {
        const queue: Buffer[] = [];
        let ended = false;
        answer.on('data', (chunk: Buffer) => {
          for (let i = 0; i < chunk.length; i += fault.chunkBytes) queue.push(chunk.subarray(i, i + fault.chunkBytes));
        });
        answer.on('end', () => (ended = true));
        const timer = setInterval(() => {
          const next = queue.shift();
          if (next) res.write(next);
          else if (ended) {
            clearInterval(timer);
            this.#timers.delete(timer);
            res.end();
          }
        }, fault.intervalMs);
        this.#timers.add(timer);
        return;
      }
      default:
        answer.pipe(res);
    }
  }
}
