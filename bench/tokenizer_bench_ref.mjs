// Hugging Face's JavaScript `tokenizers` (npm @huggingface/tokenizers) on the text
// tokenizer_bench --dump wrote: encode(doc, add_special_tokens false) per document, one
// thread (node has one), one warm-up pass, the median of PASSES timed passes. Prints a JSON
// line like tokenizer_bench's.
//
//   node tokenizer_bench_ref.mjs NPM_DIR TOKENIZER.json TEXT [PASSES]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [npmDir, tokenizerPath, textPath, passArg] = process.argv.slice(2);
const require = createRequire(join(npmDir, "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");
const version = JSON.parse(readFileSync(join(npmDir, "node_modules/@huggingface/tokenizers/package.json"),
                                        "utf8")).version;
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
const docs = readFileSync(textPath, "utf8").split("\x1e").slice(0, -1);
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, "utf8"), 0);
const pass = () => {
  let tokens = 0;
  const start = process.hrtime.bigint();
  for (const d of docs) tokens += tokenizer.encode(d, { add_special_tokens: false }).ids.length;
  return [Number(process.hrtime.bigint() - start) / 1e9, tokens];
};
pass();
const seconds = [];
let tokens = 0;
for (let i = 0; i < Number(passArg || 5); ++i) {
  const [s, t] = pass();
  seconds.push(s);
  tokens = t;
}
seconds.sort((a, b) => a - b);
const mb = bytes / 1e6 / seconds[Math.floor(seconds.length / 2)];
process.stdout.write(JSON.stringify({ impl: "hf-tokenizers-js", version, node: process.version, threads: 1,
                                      mb_per_s: +mb.toFixed(2), mb_per_s_per_thread: +mb.toFixed(2), bytes,
                                      documents: docs.length, tokens }) + "\n");
