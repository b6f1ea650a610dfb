package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fixedIDs numbers the ids a Request mints (prefix + 16 hex), so that
// expected bytes are the same on every run.
func fixedIDs() func([]byte, string) []byte {
	n := 0
	return func(dst []byte, prefix string) []byte {
		n++
		return fmt.Appendf(dst, "%s%016x", prefix, n)
	}
}

// mustTranslate translates body and makes its answer deterministic: ids
// numbered, created_at 1790000000, and the response id "resp_test" unless
// the body names its own (request_id).
func mustTranslate(t testing.TB, body string, prev *History) *Request {
	t.Helper()
	r, err := TranslateRequest([]byte(body), prev)
	if err != nil {
		t.Fatalf("TranslateRequest: %v\nbody: %s", err, body)
	}
	r.ids = fixedIDs()
	r.created = 1790000000
	if !strings.Contains(body, `"request_id"`) {
		r.id = []byte(`"resp_test"`)
	}
	return r
}

// compact strips the whitespace of a JSON text written readably in a test.
func compact(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact: %v\n%s", err, s)
	}
	return b.String()
}

// sseEvent is one event of a Responses stream.
type sseEvent struct {
	name string
	data []byte
	obj  map[string]any
}

// parseSSE splits a Responses stream into its events and checks the framing
// every client relies on: "event: <type>\ndata: <JSON>\n\n" blocks, data a
// JSON object whose "type" is the event name, sequence_number 0, 1, 2, ….
func parseSSE(out []byte) ([]sseEvent, error) {
	var evs []sseEvent
	if len(out) == 0 {
		return nil, nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return nil, errors.New("stream does not end with a blank line")
	}
	for i, block := range bytes.Split(out[:len(out)-2], []byte("\n\n")) {
		lines := bytes.Split(block, []byte("\n"))
		if len(lines) != 2 || !bytes.HasPrefix(lines[0], []byte("event: ")) || !bytes.HasPrefix(lines[1], []byte("data: ")) {
			return nil, fmt.Errorf("event %d is not an event line and a data line: %q", i, block)
		}
		ev := sseEvent{name: string(lines[0][len("event: "):]), data: lines[1][len("data: "):]}
		if err := json.Unmarshal(ev.data, &ev.obj); err != nil {
			return nil, fmt.Errorf("event %d (%s): data is not a JSON object: %v\n%s", i, ev.name, err, ev.data)
		}
		if ev.obj["type"] != ev.name {
			return nil, fmt.Errorf("event %d: type %v under event: %s", i, ev.obj["type"], ev.name)
		}
		if seq, ok := ev.obj["sequence_number"].(float64); !ok || int(seq) != i {
			return nil, fmt.Errorf("event %d (%s): sequence_number %v", i, ev.name, ev.obj["sequence_number"])
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// checkStream checks a whole translated stream: well-formed, opened by
// response.created and response.in_progress, closed by exactly one terminal
// event (response.completed or response.failed) and nothing after it, every
// item added before it is done, done at most once, and (when completed) the
// final output listing exactly the items done, in order, with their ids and
// call_ids.
func checkStream(out []byte) ([]sseEvent, error) {
	evs, err := parseSSE(out)
	if err != nil {
		return nil, err
	}
	if len(evs) < 3 || evs[0].name != "response.created" || evs[1].name != "response.in_progress" {
		return evs, fmt.Errorf("stream does not open with response.created, response.in_progress: %d events", len(evs))
	}
	last := evs[len(evs)-1]
	if last.name != "response.completed" && last.name != "response.failed" {
		return evs, fmt.Errorf("stream ends with %s", last.name)
	}
	added := map[string]bool{}
	var done []map[string]any
	open := ""
	for i, ev := range evs[2 : len(evs)-1] {
		switch ev.name {
		case "response.completed", "response.failed", "response.created", "response.in_progress":
			return evs, fmt.Errorf("event %d: %s in the middle of the stream", i+2, ev.name)
		case "response.output_item.added":
			item := ev.obj["item"].(map[string]any)
			id := item["id"].(string)
			if open != "" || added[id] {
				return evs, fmt.Errorf("event %d: item %s added while %q is open", i+2, id, open)
			}
			if int(ev.obj["output_index"].(float64)) != len(done) {
				return evs, fmt.Errorf("event %d: output_index %v, want %d", i+2, ev.obj["output_index"], len(done))
			}
			added[id], open = true, id
		case "response.output_item.done":
			item := ev.obj["item"].(map[string]any)
			if item["id"] != open {
				return evs, fmt.Errorf("event %d: item %v done while %q is open", i+2, item["id"], open)
			}
			done, open = append(done, item), ""
		default:
			if id, ok := ev.obj["item_id"]; ok && id != open {
				return evs, fmt.Errorf("event %d (%s): item_id %v, open %q", i+2, ev.name, id, open)
			}
		}
	}
	resp := last.obj["response"].(map[string]any)
	output := resp["output"].([]any)
	if last.name == "response.completed" {
		if open != "" {
			return evs, fmt.Errorf("item %s still open at response.completed", open)
		}
		if len(output) != len(done) {
			return evs, fmt.Errorf("response.completed lists %d items, %d were done", len(output), len(done))
		}
		for i, it := range output {
			item := it.(map[string]any)
			if item["id"] != done[i]["id"] || item["type"] != done[i]["type"] || item["call_id"] != done[i]["call_id"] ||
				item["arguments"] != done[i]["arguments"] || item["name"] != done[i]["name"] {
				return evs, fmt.Errorf("output[%d] = %v, done as %v", i, item, done[i])
			}
		}
		if st := resp["status"]; st != "completed" && st != "incomplete" {
			return evs, fmt.Errorf("response.completed with status %v", st)
		}
	} else if resp["status"] != "failed" || resp["error"] == nil {
		return evs, fmt.Errorf("response.failed with status %v, error %v", resp["status"], resp["error"])
	}
	return evs, nil
}

// names lists the event names of a stream.
func names(evs []sseEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.name
	}
	return out
}

// feed runs a chat stream (one data payload per element) through a Stream.
func feed(s *Stream, events ...string) []byte {
	var out []byte
	for _, ev := range events {
		out = s.AppendEvent(out, []byte(ev))
	}
	return out
}

// chunk builds a vLLM chat chunk with the given choice delta and extra
// choice members ("finish_reason":null unless one of them sets it).
func chunk(delta string, members ...string) string {
	c := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1790000000,"model":"my-model","choices":[{"index":0,"delta":` +
		delta + `,"logprobs":null`
	finish := false
	for _, m := range members {
		c += "," + m
		finish = finish || strings.HasPrefix(m, `"finish_reason"`)
	}
	if !finish {
		c += `,"finish_reason":null`
	}
	return c + `}]}`
}

const (
	roleChunk  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1790000000,"model":"my-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[1,2,3,4,5]}`
	usageChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1790000000,"model":"my-model","choices":[],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7}}`
)
