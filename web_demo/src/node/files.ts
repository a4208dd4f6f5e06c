/** Artifacts and state on a file system (Node). */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { ArtifactSource } from "../contract/manifest.js";
import { StateError } from "../contract/errors.js";
import type { StateStore } from "../contract/statefile.js";

/** An artifact (or a kit) directory. */
export class DirectorySource implements ArtifactSource {
  constructor(readonly where: string) {}
  async read(name: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await fs.readFile(path.join(this.where, name)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }
}

/** A state file, replaced atomically: written beside it, fsynced, renamed over it, the directory fsynced. */
export class FileStore implements StateStore {
  constructor(readonly where: string) {}
  async read(): Promise<Uint8Array | null> {
    return new DirectorySource(path.dirname(this.where)).read(path.basename(this.where));
  }
  async write(bytes: Uint8Array): Promise<void> {
    const dir = path.dirname(this.where);
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.${path.basename(this.where)}.${process.pid}.${Date.now()}.tmp`);
    try {
      const f = await fs.open(tmp, "wx");
      try {
        await f.writeFile(bytes);
        await f.sync();
      } finally {
        await f.close();
      }
      await fs.rename(tmp, this.where);
      const d = await fs.open(dir, "r").catch(() => null); // the rename itself must reach the disk
      await d?.sync().catch(() => undefined);
      await d?.close();
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw new StateError(`cannot write state file ${this.where} (${(e as Error).message}); write the state to a local directory`);
    }
  }
}
