// Starts the Python Attain server on a free port with a fresh SQLite folder, for the tests.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

// This file runs compiled, from clients/typescript/dist/test/; the repository root is four up.
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const SERVER_BIN = process.env.ATTAIN_SERVER_BIN ?? join(REPO, ".venv", "bin", "attain-server");
const START_TIMEOUT_MS = 30_000;

export interface RunningServer {
  /** `127.0.0.1:<port>` */
  address: string;
  /** The first admin key of the brand ACME. */
  key: string;
  stop(): Promise<void>;
}

/** The environment without ATTAIN_* settings, so that --data-dir alone picks the database. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("ATTAIN_")),
  );
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

async function accepts(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once("exit", resolve));
}

export async function startServer(): Promise<RunningServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "attain-ts-"));
  const env = cleanEnv();
  const created = await promisify(execFile)(
    SERVER_BIN,
    ["brands", "create", "ACME", "--timezone", "Asia/Jakarta", "--data-dir", dataDir],
    { env },
  );
  const key = created.stdout.trim().split("\n").at(-1) ?? "";
  if (!key.startsWith("atn_")) throw new Error(`no key from 'brands create': ${created.stdout}`);

  const port = await freePort();
  const child = spawn(
    SERVER_BIN,
    ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--no-worker"],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const stop = async (): Promise<void> => {
    child.kill("SIGTERM");
    await exited(child);
    await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the server did not start on port ${port}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { address: `127.0.0.1:${port}`, key, stop };
}
