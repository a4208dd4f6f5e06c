/** Artifacts over HTTP and state in the browser's IndexedDB. */
import type { ArtifactSource } from "../contract/manifest.js";
import { StateError } from "../contract/errors.js";
import type { StateStore } from "../contract/statefile.js";

/** An artifact (or a kit) served at `base` (a URL ending in "/"). */
export class UrlSource implements ArtifactSource {
  constructor(readonly where: string) {}
  async read(name: string): Promise<Uint8Array | null> {
    const r = await fetch(new URL(name, this.where));
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`${this.where}${name}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }
}

const DB = "edgetune", STORE = "state";

function database(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

/**
 * A state kept in IndexedDB under `key` (one per artifact). A put is one transaction, which
 * IndexedDB commits whole or not at all: a closed tab leaves the old state or the new one.
 */
export class IndexedDbStore implements StateStore {
  constructor(readonly key: string) {}
  get where() { return `indexedDB:${DB}/${STORE}/${this.key}`; }
  private async run<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await database();
    try {
      return await new Promise<T>((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = op(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(req.result);
        tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("the transaction was aborted"));
      });
    } finally {
      db.close();
    }
  }
  async read(): Promise<Uint8Array | null> {
    const v = await this.run("readonly", (s) => s.get(this.key));
    return v ? new Uint8Array(v as ArrayBuffer) : null;
  }
  async write(bytes: Uint8Array): Promise<void> {
    try {
      await this.run("readwrite", (s) => s.put(bytes.slice().buffer, this.key));
    } catch (e) {
      throw new StateError(`cannot store the state in ${this.where} (${(e as Error).message}); free some browser storage`);
    }
  }
  async clear(): Promise<void> {
    await this.run("readwrite", (s) => s.delete(this.key));
  }
}
