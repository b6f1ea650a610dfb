// What the agents of this directory share: the question, the stand-in shell,
// and the main that holds the two conversations and prints their summary.

export const question = 'Run `echo hello-tokentap` and tell me what it printed.';

// runCommand plays the shell: only echo is needed, so none is started.
export function runCommand(command) {
  const m = /^\s*echo\s+(.*?)\s*$/s.exec(command ?? '');
  if (!m) return { output: `unsupported command: ${command}`, isError: true };
  return { output: m[1].replace(/^(['"])(.*)\1$/s, '$2') + '\n', isError: false };
}

// summary is a conversation as the tests read it; the final text is the
// text blocks of the last turn.
export function summary(turns, toolResults) {
  const last = turns[turns.length - 1];
  const finalText = last.content
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');
  return { turns, tool_results: toolResults, final_text: finalText };
}

// main holds the JSON conversation at the first base URL argument and the
// streamed one at the second (default: the first), prints {"json", "stream"}
// as one line, and exits 1 with the SDK's error on stderr when a call fails.
export async function main(name, client, converse) {
  const [jsonURL, streamURL = jsonURL] = process.argv.slice(2);
  try {
    const json = await converse(client(jsonURL), false);
    const stream = await converse(client(streamURL), true);
    process.stdout.write(JSON.stringify({ json, stream }) + '\n');
  } catch (err) {
    console.error(`${name} agent: ${err?.status ?? ''} ${err?.message ?? err}`);
    if (err?.error) console.error(JSON.stringify(err.error));
    process.exit(1);
  }
}
