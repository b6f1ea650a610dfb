# Writes render_cases.json: random conversations rendered by Jinja2 set up as
# transformers does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
# loopcontrols, tojson = json.dumps(ensure_ascii=False), raise_exception), the
# oracle TestRenderMatchesJinja2 compares against. Messages are already in the
# form vLLM preprocessing gives (string content, dict arguments).
# Usage: python3 gen_render_cases.py "$(../../../scripts/qwen3-tokenizer.sh)/tokenizer_config.json" render_cases.json
import json, random, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
from jinja2.exceptions import TemplateError
cfg = json.load(open(sys.argv[1]))
def raise_exception(m): raise TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception
tmpl = env.from_string(cfg['chat_template'])
random.seed(7)
frags = ["hi", "</think>", "<think>", "\n", "\n\n", " ", "x is 42", "<tool_response>", "</tool_response>", "é中🙂", "\"q\"", "\\", "\t", "a'b", "{{ x }}", "{% if %}", "1.5", "null"]
def txt():
    return "".join(random.choice(frags) for _ in range(random.randint(0, 6)))
def val(d=0):
    r = random.random()
    if d > 2 or r < 0.3: return txt()
    if r < 0.4: return random.randint(-5, 10**random.randint(1, 20))
    if r < 0.5: return random.choice([1.5, 0.1, 1e16, 1e-5, 1000.0, -0.0, 123456.789, 1e300])
    if r < 0.55: return random.choice([True, False, None])
    if r < 0.75: return [val(d+1) for _ in range(random.randint(0, 3))]
    return {txt() or "k": val(d+1) for _ in range(random.randint(0, 3))}
cases = []
for n in range(300):
    msgs = []
    if random.random() < 0.7: msgs.append({"role": "system", "content": txt()})
    for _ in range(random.randint(1, 6)):
        role = random.choice(["user", "assistant", "tool", "user", "assistant"])
        m = {"role": role, "content": txt()}
        if role == "user" and random.random() < 0.2:
            m["content"] = "<tool_response>" + txt() + "</tool_response>"
        if role == "assistant":
            if random.random() < 0.4: m["reasoning_content"] = txt()
            if random.random() < 0.4:
                m["tool_calls"] = [{"id": "c", "type": "function", "function": {"name": txt() or "f", "arguments": {txt() or "q": val() for _ in range(random.randint(0, 3))}}} for _ in range(random.randint(1, 3))]
        msgs.append(m)
    tools = None
    if random.random() < 0.5:
        tools = [{"type": "function", "function": {"name": txt() or "f", "description": random.choice([None, txt()]), "parameters": val()}} for _ in range(random.randint(0, 2))]
    gen = random.random() < 0.7
    kw = random.choice([None, {"enable_thinking": False}, {"enable_thinking": True}])
    try:
        out = tmpl.render(messages=msgs, tools=tools, add_generation_prompt=gen, **(kw or {}))
    except Exception as e:
        out = None
    cases.append({"messages": msgs, "tools": tools, "gen": gen, "kwargs": kw, "out": out})
json.dump(cases, open(sys.argv[2], 'w'), ensure_ascii=False)
print(sum(c["out"] is None for c in cases), "errors of", len(cases))
