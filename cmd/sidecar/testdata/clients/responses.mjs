// An agent written with the official OpenAI TypeScript SDK (openai) on the
// Responses API, as a user would write one against tokentap: it offers a
// function tool, runs the command the model asks for, sends the output back,
// and reads the model's answer. Two conversations:
//   - "json": client.responses.create without streaming; the second turn
//     sends only the function_call_output and previous_response_id, so the
//     server must resolve the history itself;
//   - "stream": client.responses.create({stream: true}); the second turn
//     sends the whole input again (the user message, the output items of the
//     first response, the function_call_output), as the Codex CLI does. Tool
//     calls are taken from response.output_item.done and the answer from
//     response.completed, as Codex takes them.
//
//   node responses.mjs <base-url for the JSON conversation> [<base-url for the stream>]
//
// A base URL is the rollout's, with /v1:
// http://127.0.0.1:8100/rollout/r1/attempt/0/v1. With no argument the SDK
// reads OPENAI_BASE_URL. MODEL (default gpt-5) is the model name sent.
//
// It prints one JSON line on stdout, {"json": <conversation>, "stream":
// <conversation>}, with the same shape as anthropic.mjs's: {"turns": [...],
// "tool_results": [...], "final_text": "..."}; it exits non-zero, with the
// SDK's error on stderr, when a call fails.
import OpenAI from 'openai';
import { main, question, runCommand, summary } from './agent.mjs';

const model = process.env.MODEL || 'gpt-5';
const tools = [
  {
    type: 'function',
    name: 'run_command',
    description: 'Run a shell command and return what it printed.',
    parameters: {
      type: 'object',
      properties: { command: { type: 'string', description: 'The command line to run.' } },
      required: ['command'],
      additionalProperties: false,
    },
    strict: false,
  },
];

function client(baseURL) {
  return new OpenAI({
    baseURL, // undefined: the SDK reads OPENAI_BASE_URL
    apiKey: process.env.OPENAI_API_KEY || 'sk-tokentap-test',
    maxRetries: 0,
    timeout: 60_000,
  });
}

function summarize(response, events) {
  return {
    id: response.id,
    model: response.model,
    status: response.status,
    // The Responses API has no stop reason; the kinds of output items play
    // that part (a function_call means the model waits for its output).
    stop_reason: response.output.some((item) => item.type === 'function_call') ? 'tool_use' : 'end_turn',
    content: response.output.map((item) => {
      switch (item.type) {
        case 'message':
          return {
            type: 'text',
            text: item.content
              .filter((c) => c.type === 'output_text')
              .map((c) => c.text)
              .join(''),
          };
        case 'function_call':
          return { type: 'tool_use', id: item.call_id, name: item.name, input: JSON.parse(item.arguments) };
        case 'reasoning':
          return { type: 'thinking' };
        default:
          return { type: item.type };
      }
    }),
    usage: response.usage
      ? { input_tokens: response.usage.input_tokens, output_tokens: response.usage.output_tokens }
      : null,
    ...(events ? { events } : {}),
  };
}

// streamed reads a streamed response as Codex does: output items from
// response.output_item.done, the rest from response.completed.
async function streamed(openai, params) {
  const stream = await openai.responses.create({ ...params, stream: true });
  const events = [];
  const items = [];
  let completed;
  for await (const event of stream) {
    if (events[events.length - 1] !== event.type) events.push(event.type);
    if (event.type === 'response.output_item.done') items.push(event.item);
    if (event.type === 'response.completed') completed = event.response;
    if (event.type === 'response.failed' || event.type === 'error') {
      throw new Error(`stream ${event.type}: ${JSON.stringify(event)}`);
    }
  }
  if (!completed) throw new Error('stream closed before response.completed');
  return { response: { ...completed, output: items.length ? items : completed.output }, events };
}

async function converse(openai, streaming) {
  const input = [{ role: 'user', content: question }];
  const turns = [];
  const toolResults = [];
  let previous;
  let next = input;
  // Bounded: the model gets at most four turns to answer.
  for (let i = 0; i < 4; i++) {
    const params = { model, input: next, tools, max_output_tokens: 512 };
    if (!streaming && previous) params.previous_response_id = previous;
    let response;
    let events;
    if (streaming) {
      ({ response, events } = await streamed(openai, params));
    } else {
      response = await openai.responses.create(params);
    }
    turns.push(summarize(response, events));
    const calls = response.output.filter((item) => item.type === 'function_call');
    if (calls.length === 0) break;
    const outputs = calls.map((call) => {
      const { command } = JSON.parse(call.arguments);
      const { output } = runCommand(command);
      toolResults.push({ tool_use_id: call.call_id, command, output });
      return { type: 'function_call_output', call_id: call.call_id, output };
    });
    if (streaming) {
      // The whole conversation again: what was asked, what the model
      // produced (reasoning, messages, calls), and the outputs.
      input.push(...response.output, ...outputs);
      next = input;
    } else {
      previous = response.id;
      next = outputs;
    }
  }
  return summary(turns, toolResults);
}

await main('responses', client, converse);
