/** Finding a free TCP port on the loopback interface for a private cluster. */
import { createHash } from "node:crypto";
import { createServer } from "node:net";

/** Resolves true when nothing listens on 127.0.0.1:`port` (we could bind it). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A free port in 54320–55319, starting at an offset derived from `seed` (the cluster
 * directory) so that clusters of different projects rarely race for the same port.
 * @throws Error when the whole range is taken.
 */
export async function findFreePort(seed: string, avoid: number[] = []): Promise<number> {
  const base = 54320;
  const span = 1000;
  const offset = createHash("sha1").update(seed).digest().readUInt16BE(0) % span;
  for (let i = 0; i < span; i++) {
    const port = base + ((offset + i) % span);
    if (!avoid.includes(port) && (await isPortFree(port))) return port;
  }
  throw new Error(`no free TCP port on 127.0.0.1 between ${base} and ${base + span - 1}`);
}
