/** sha256 through WebCrypto (browsers, Node 20+, React Native with a WebCrypto polyfill). */
export async function sha256(parts: Uint8Array | Uint8Array[]): Promise<string> {
  const list = Array.isArray(parts) ? parts : [parts];
  let data: Uint8Array = list[0];
  if (list.length !== 1) {
    data = new Uint8Array(list.reduce((a, p) => a + p.byteLength, 0));
    let at = 0;
    for (const p of list) {
      data.set(p, at);
      at += p.byteLength;
    }
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
