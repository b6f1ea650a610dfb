// An agent written with the official Anthropic TypeScript SDK
// (@anthropic-ai/sdk), as a user would write one against tokentap: it offers
// a shell tool, runs the command the model asks for, sends the result back,
// and reads the model's answer. It holds two conversations, the first with
// messages.create (JSON answers), the second with messages.stream (SSE).
//
//   node anthropic.mjs <base-url for the JSON conversation> [<base-url for the stream>]
//
// A base URL is the rollout's, without /v1 (the SDK appends /v1/messages):
// http://127.0.0.1:8100/rollout/r1/attempt/0. With no argument the SDK reads
// ANTHROPIC_BASE_URL; with one, both conversations use it. MODEL (default
// claude-sonnet-4-5) is the model name sent, as Claude Code would send one.
//
// It prints one JSON line on stdout, {"json": <conversation>, "stream":
// <conversation>}, where a conversation is {"turns": [...], "tool_results":
// [...], "final_text": "..."} and a turn is what the SDK returned for one
// call; it exits non-zero, with the SDK's error on stderr, when a call fails.
import Anthropic from '@anthropic-ai/sdk';
import { main, question, runCommand, summary } from './agent.mjs';

const model = process.env.MODEL || 'claude-sonnet-4-5';
const tools = [
  {
    name: 'run_command',
    description: 'Run a shell command and return what it printed.',
    input_schema: {
      type: 'object',
      properties: { command: { type: 'string', description: 'The command line to run.' } },
      required: ['command'],
    },
  },
];

function client(baseURL) {
  return new Anthropic({
    baseURL, // undefined: the SDK reads ANTHROPIC_BASE_URL
    apiKey: process.env.ANTHROPIC_API_KEY || 'sk-ant-tokentap-test',
    maxRetries: 0,
    timeout: 60_000,
  });
}

function summarize(message, events) {
  return {
    id: message.id,
    model: message.model,
    stop_reason: message.stop_reason,
    content: message.content.map((b) => {
      switch (b.type) {
        case 'text':
          return { type: 'text', text: b.text };
        case 'tool_use':
          return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
        case 'thinking':
          return { type: 'thinking', thinking: b.thinking };
        default:
          return { type: b.type };
      }
    }),
    usage: { input_tokens: message.usage.input_tokens, output_tokens: message.usage.output_tokens },
    ...(events ? { events } : {}),
  };
}

async function converse(anthropic, streaming) {
  const messages = [{ role: 'user', content: question }];
  const turns = [];
  const toolResults = [];
  // Bounded: the model gets at most four turns to answer.
  for (let i = 0; i < 4; i++) {
    const params = { model, max_tokens: 512, tools, messages };
    let message;
    let events;
    if (streaming) {
      const stream = anthropic.messages.stream(params);
      events = [];
      stream.on('streamEvent', (event) => {
        // Deltas are many; their kinds are what the shape check needs.
        const kind = event.type === 'content_block_delta' ? `${event.type}:${event.delta.type}` : event.type;
        if (events[events.length - 1] !== kind) events.push(kind);
      });
      message = await stream.finalMessage();
    } else {
      message = await anthropic.messages.create(params);
    }
    turns.push(summarize(message, events));
    messages.push({ role: 'assistant', content: message.content });
    const uses = message.content.filter((b) => b.type === 'tool_use');
    if (message.stop_reason !== 'tool_use' || uses.length === 0) break;
    const results = uses.map((use) => {
      const { output, isError } = runCommand(use.input.command);
      toolResults.push({ tool_use_id: use.id, command: use.input.command, output });
      return { type: 'tool_result', tool_use_id: use.id, content: output, is_error: isError };
    });
    messages.push({ role: 'user', content: results });
  }
  return summary(turns, toolResults);
}

await main('anthropic', client, converse);
