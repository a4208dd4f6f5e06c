/**
 * The artifact's tokenizer.json (a Hugging Face `tokenizers` file) as the contract encodes
 * texts (docs/artifact-contract.md, section 7): the ids `tokenizers` gives with special tokens,
 * truncated and padded to seq_len. The ids come from Tokenizers.js (@huggingface/tokenizers),
 * which the suite checks against `tokenizers` itself; the contract's own rules (the cut of
 * long texts, the template's special tokens, the pad id) are here.
 */
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { DataError } from "./errors.js";
import type { Tensor } from "./tensor.js";

/** A text is cut to this many characters per token of the sequence before tokenizing. */
export const CHARS_PER_TOKEN = 64;

export class Tokenizer {
  private constructor(readonly seqLen: number, private readonly hf: HFTokenizer, private readonly prefix: number[],
                      private readonly suffix: number[], readonly padId: number) {}

  static fromJSON(json: string, seqLen: number): Tokenizer {
    let root: any;
    try {
      root = JSON.parse(json);
    } catch {
      throw new DataError("cannot read the tokenizer: it is not a tokenizers JSON file");
    }
    if (!root || typeof root !== "object" || typeof root.model !== "object") throw new DataError("cannot read the tokenizer: it has no model");
    const [prefix, suffix] = template(root.post_processor);
    const added = new Map<string, number>((root.added_tokens ?? []).map((t: any) => [t.content, t.id]));
    const vocab = root.model.vocab ?? {};
    const pad = added.get("[PAD]") ?? vocab["[PAD]"] ?? added.get("<pad>") ?? vocab["<pad>"] ?? 0;
    return new Tokenizer(seqLen, new HFTokenizer(root, {}), prefix, suffix, pad);
  }

  /** `text` cut to 64 x seq_len code points, before its last space in the second half when there is one. */
  cut(text: string): string {
    const max = CHARS_PER_TOKEN * this.seqLen;
    const points = [...text];
    if (points.length <= max) return text;
    const head = points.slice(0, max).join("");
    const half = points.slice(0, max >> 1).join("").length;
    const space = head.lastIndexOf(" ");
    return space >= half && space > 0 ? head.slice(0, space) : head;
  }

  /** Every id of `text`: no special tokens, truncation or padding (running text of a language model). */
  tokens(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** One text -> (ids, mask) of exactly seq_len entries. */
  encodeOne(text: string): [bigint[], bigint[]] {
    const keep = Math.max(0, this.seqLen - this.prefix.length - this.suffix.length);
    const ids = [...this.prefix, ...this.tokens(this.cut(text)).slice(0, keep), ...this.suffix];
    const out = new Array<bigint>(this.seqLen).fill(BigInt(this.padId));
    const mask = new Array<bigint>(this.seqLen).fill(0n);
    for (let k = 0; k < Math.min(this.seqLen, ids.length); k++) {
      out[k] = BigInt(ids[k]);
      mask[k] = 1n;
    }
    return [out, mask];
  }

  /** Texts -> input_ids and attention_mask, int64 [n, seq_len]. */
  encode(texts: string[]): { input_ids: Tensor; attention_mask: Tensor } {
    const rows = texts.map((t) => this.encodeOne(t));
    const shape = [texts.length, this.seqLen];
    return {
      input_ids: { dtype: "int64", shape, data: BigInt64Array.from(rows.flatMap((r) => r[0])) },
      attention_mask: { dtype: "int64", shape, data: BigInt64Array.from(rows.flatMap((r) => r[1])) },
    };
  }
}

/** The ids a TemplateProcessing post-processor puts before and after a single sequence. */
function template(post: any): [number[], number[]] {
  if (!post || post.type === "ByteLevel") return [[], []];
  if (post.type !== "TemplateProcessing") throw new DataError(`post-processor ${post.type} is not supported (TemplateProcessing is)`);
  const before: number[] = [], after: number[] = [];
  let seen = false;
  for (const piece of post.single) {
    if ("Sequence" in piece) {
      seen = true;
      continue;
    }
    (seen ? after : before).push(...post.special_tokens[piece.SpecialToken.id].ids);
  }
  return [before, after];
}
