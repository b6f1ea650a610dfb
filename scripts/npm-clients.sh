#!/usr/bin/env bash
# Installs, once, the real agent clients the end-to-end tests of cmd/sidecar
# drive tokentap with, at pinned exact versions, and prints the directory
# whose node_modules holds them (the tests read it from NPM_CLIENTS_DIR):
#   @anthropic-ai/sdk      the Anthropic TypeScript SDK  (POST /v1/messages)
#   openai                 the OpenAI TypeScript SDK     (POST /v1/responses)
#   @anthropic-ai/claude-code  Claude Code (native binary: node_modules/.bin/claude)
#   @openai/codex          the Codex CLI (node launcher + native linux binary)
# The two CLIs are ~400 MB each (native binaries shipped inside the registry
# packages); both run `--version` with no network.
#
# openai 7.x and claude-code declare engines node >= 22; they are installed on
# the machine's node 20 anyway (npm only warns) because what the tests use of
# them works there: the SDK is plain fetch + streams, and claude is a native
# binary that does not run on node at all.
#
# Needs node and npm. Cached in $TOKENTAP_CACHE/npm-clients (default
# ~/.cache/tokentap/npm-clients), outside the repository, keyed by the
# versions: a different set of versions replaces the installed one.
set -euo pipefail
packages=(
  @anthropic-ai/sdk@1.16.0
  openai@7.60.0
  @anthropic-ai/claude-code@2.1.332
  @openai/codex@0.171.0
)
key=$(printf '%s\n' "${packages[@]}")
cache=${TOKENTAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokentap}
out=$cache/npm-clients

installed() {
  [ "$(cat "$out/VERSIONS" 2>/dev/null)" = "$key" ] || return 1
  [ -f "$out/node_modules/@anthropic-ai/sdk/package.json" ] || return 1
  [ -f "$out/node_modules/openai/package.json" ] || return 1
  [ -x "$out/node_modules/.bin/claude" ] && [ -x "$out/node_modules/.bin/codex" ] || return 1
}
if installed; then
  echo "$out"
  exit 0
fi

# A half-done or older install is removed whole: npm would otherwise keep
# stale platform packages next to the new ones.
rm -rf "$out"
mkdir -p "$out"
printf '{"name":"tokentap-npm-clients","private":true}\n' > "$out/package.json"
# --no-save: the cache needs no lockfile; the versions above are exact.
# Claude Code's postinstall (install.cjs) links its platform binary over the
# bin/claude.exe placeholder; npm 11 still runs it, and the check below
# catches the day it does not.
npm install --prefix "$out" --no-audit --no-fund --no-save --silent "${packages[@]}" >&2

# The CLIs ship their binaries as optional platform packages, which npm skips
# silently when it cannot match the platform: check they are real and run
# without a network (HOME points at an empty directory so no login state or
# config of this machine's user is read).
home=$out/.check-home
mkdir -p "$home"
trap 'rm -rf "$home"' EXIT
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)
    codex_bin="$out/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
    [ -x "$codex_bin" ] || { echo "npm-clients: the codex linux x64 binary is missing: $codex_bin" >&2; exit 1; }
    ;;
esac
if [ "$(uname -s)" = Linux ] && [ "$(head -c 4 "$out/node_modules/.bin/claude" | tail -c 3)" != ELF ]; then
  echo "npm-clients: node_modules/.bin/claude is not the native binary (did claude-code's postinstall run?)" >&2
  exit 1
fi
HOME=$home "$out/node_modules/.bin/codex" --version >&2
HOME=$home "$out/node_modules/.bin/claude" --version >&2

echo "$key" > "$out/VERSIONS"
echo "$out"
