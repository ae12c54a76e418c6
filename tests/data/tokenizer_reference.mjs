// Hugging Face's side of the tokenizer reference test: @huggingface/tokenizers (the
// JavaScript implementation of `tokenizers`) encodes each string of TEXTS.json with
// add_special_tokens false, decodes the ids back, and prints the same JSON shape as
// tokenize_json: {"ids": [[...], ...], "decoded": [...]}, and "special": the ids with
// add_special_tokens true (what the post-processor adds).
//
//   node tokenizer_reference.mjs NPM_DIR TOKENIZER.json TOKENIZER_CONFIG.json TEXTS.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [npmDir, tokenizerPath, configPath, textsPath] = process.argv.slice(2);
const require = createRequire(join(npmDir, "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")),
                                JSON.parse(readFileSync(configPath, "utf8")));
const ids = [], decoded = [], special = [];
for (const text of JSON.parse(readFileSync(textsPath, "utf8"))) {
  const encoded = tokenizer.encode(text, { add_special_tokens: false }).ids;
  ids.push(encoded);
  special.push(tokenizer.encode(text, { add_special_tokens: true }).ids);
  decoded.push(encoded.length === 0 ? "" : tokenizer.decode(encoded, {
    skip_special_tokens: false, clean_up_tokenization_spaces: false }));
}
process.stdout.write(JSON.stringify({ ids, decoded, special }) + "\n");
