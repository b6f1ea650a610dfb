package responses

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// requestSeeds are Responses bodies covering every branch of the request
// translator, for both fuzz targets.
var requestSeeds = []string{
	`{"instructions":"Be helpful.","tools":[{"type":"function","name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}],"tool_choice":"auto","input":[{"role":"user","content":"Weather in NYC?"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"location\":\"NYC\"}"},{"type":"function_call_output","call_id":"call_1","output":"72F"},{"role":"user","content":"Thanks"}]}`,
	`{"model":"qwen3","instructions":"You are Codex.","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"<p>"}]},{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"` + carrierPrefix + `VXNlIGxzLg"},{"type":"function_call","name":"shell","arguments":"{}","call_id":"c1"},{"type":"function_call_output","call_id":"c1","output":"a"}],"tools":[{"type":"function","name":"shell","strict":false,"parameters":{"type":"object"}},{"type":"local_shell"},{"type":"custom","name":"apply_patch"}],"tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"effort":"high","summary":"auto"},"store":false,"stream":true,"include":["reasoning.encrypted_content"],"text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"},"strict":true}}}`,
	`{"input":[{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},{"type":"function_call","call_id":"c1","name":"read","namespace":"fs","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"ok"}]}],"tools":[{"type":"namespace","name":"fs","tools":[{"type":"function","name":"read"}]}],"tool_choice":{"type":"function","name":"read"}}`,
	`{"model":"m","input":"hi","temperature":0.2,"top_p":null,"max_output_tokens":64,"include":["message.output_text.logprobs"],"top_logprobs":3,"truncation":"auto","chat_template_kwargs":{"enable_thinking":false},"request_id":"resp_x","metadata":{"k":"v"}}`,
	`{"input":[{"role":"user","content":"Write"},{"type":"message","role":"assistant","status":"in_progress","content":[{"type":"output_text","text":"Once"}]},{"type":"reasoning","summary":[{"type":"summary_text","text":"S"}]}]}`,
	`{"input":"hi","previous_response_id":"resp_1","tools":[{"type":"function","name":"f"}],"tool_choice":"none","text":{"format":{"type":"json_object"}}}`,
	"{\n  \"input\" : [ { \"role\" : \"user\", \"content\" : \"x\" } ],\n  \"tools\" : [ { \"type\" : \"function\", \"name\" : \"f\", \"parameters\" : { \"a\" : [ 1 , 2 ] } } ],\n  \"metadata\" : { \"k\" : \"v w\" }\n}",
	`{"input":"hi","tool_choice":"required"}`,
	`{"input":[{"type":"item_reference","id":"x"}]}`,
}

// chatSeeds are chat SSE streams, one event data per line.
var chatSeeds = []string{
	strings.Join([]string{roleChunk, chunk(`{"reasoning":"Need "}`, `"token_ids":[11]`), chunk(`{"content":"Checking."}`),
		chunk(callOpen1), chunk(callArgs1), chunk(`{"content":""}`, `"finish_reason":"tool_calls"`), usageChunk, "[DONE]"}, "\n"),
	strings.Join([]string{roleChunk, chunk(callOpen1), chunk(callArgs1), chunk(callOpen2), chunk(callArgs2), chunk(`{}`, `"finish_reason":"tool_calls"`), "[DONE]"}, "\n"),
	strings.Join([]string{roleChunk, chunk(`{"tool_calls":[{"id":"x","index":0,"function":{"arguments":"{"}}]}`),
		chunk(`{"tool_calls":[{"index":0,"function":{"name":"fs__read","arguments":"}"}}]}`), chunk(`{"content":"B","reasoning":"A"}`)}, "\n"),
	strings.Join([]string{roleChunk, `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"bytes":null,"top_logprobs":[{"token":"H","logprob":-1}]}]},"finish_reason":"length"}]}`}, "\n"),
	strings.Join([]string{roleChunk, chunk(`{"content":"Hi"}`), `{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}`, "[DONE]"}, "\n"),
	strings.Join([]string{`{"object":"error","message":"x"}`, `{"choices":[{"index":1,"delta":{"content":"other choice"}}]}`, `{"id":`}, "\n"),
	"[DONE]",
	"",
}

const fuzzChat = `{"id":"chatcmpl-1","object":"chat.completion","created":1790000000,"model":"my-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok","tool_calls":[{"id":"chatcmpl-tool-a","type":"function","function":{"name":"fs__read","arguments":"{}"}}],"reasoning":"r"},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}`

// FuzzTranslateRequest: any body (and any stored history) is translated or
// refused with an *Error in the OpenAI envelope, never a panic; a
// translated request has a valid chat body, and its answer, streamed or
// not, is well-formed with a History that a later request can use.
func FuzzTranslateRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s), []byte(`[{"role":"user","content":"earlier"}]`), []byte(`[{"type":"reasoning","summary":[],"encrypted_content":"`+carrierPrefix+base64.RawStdEncoding.EncodeToString([]byte("r"))+`"},{"arguments":"{}","call_id":"c0","name":"f","type":"function_call","id":"fc_0","status":"completed"}]`))
		f.Add([]byte(s), []byte(nil), []byte(nil))
	}
	f.Fuzz(func(t *testing.T, body, prevIn, prevOut []byte) {
		var prev *History
		if prevIn != nil || prevOut != nil {
			prev = &History{Input: prevIn, Output: prevOut}
		}
		r, err := TranslateRequest(body, prev)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !json.Valid(e.Body()) || (e.Status != 400 && e.Status != 500) {
				t.Fatalf("error %v (%T): body %s", err, err, func() []byte {
					if e != nil {
						return e.Body()
					}
					return nil
				}())
			}
			return
		}
		if PreviousResponseID(body) != "" && prev == nil {
			t.Fatalf("translated a request naming an unknown previous response")
		}
		var chat map[string]json.RawMessage
		if err := json.Unmarshal(r.Chat(), &chat); err != nil {
			t.Fatalf("chat body is not a JSON object: %v\n%s", err, r.Chat())
		}
		if m := chat["messages"]; len(m) == 0 || m[0] != '[' {
			t.Fatalf("chat body without messages: %s", r.Chat())
		}
		r.ids = fixedIDs()
		out, h, err := r.Answer([]byte(fuzzChat))
		if err != nil || !json.Valid(out) || !json.Valid(h.Input) || !json.Valid(h.Output) {
			t.Fatalf("answer %v\n%s\n%s\n%s", err, out, h.Input, h.Output)
		}
		st := r.NewStream()
		stream := feed(st, strings.Split(chatSeeds[0], "\n")...)
		if _, err := checkStream(stream); err != nil {
			t.Fatalf("%v\n%s", err, stream)
		}
		if _, err := TranslateRequest([]byte(`{"input":[],"previous_response_id":"resp_prev"}`), h); err != nil {
			t.Fatalf("the History of an answer cannot be used: %v\n%s\n%s", err, h.Input, h.Output)
		}
	})
}

// FuzzStream: any sequence of chat events (one data payload per line)
// gives a well-formed Responses stream that ends with exactly one
// response.completed or response.failed, never a panic, and does not keep
// references to the event buffers it was given.
func FuzzStream(f *testing.F) {
	for _, s := range chatSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	bodies := []string{
		`{"model":"my-model","input":"hi","stream":true,"tools":[` + weatherTool + `,{"type":"namespace","name":"fs","tools":[{"type":"function","name":"read"}]}]}`,
		`{"input":"hi","stream":true,"include":["message.output_text.logprobs","reasoning.encrypted_content"],"metadata":{"a":"b c"}}`,
	}
	f.Fuzz(func(t *testing.T, script []byte, logprobs bool) {
		body := bodies[0]
		if logprobs {
			body = bodies[1]
		}
		events := bytes.Split(script, []byte("\n"))
		run := func(clobber bool) ([]byte, *Stream) {
			st := mustTranslate(t, body, nil).NewStream()
			var out, buf []byte
			for _, ev := range events {
				buf = append(buf[:0], ev...)
				out = st.AppendEvent(out, buf)
				if clobber { // the caller reuses its buffer
					for i := range buf {
						buf[i] = '\\'
					}
				}
			}
			return st.AppendEnd(out, nil), st
		}
		out, st := run(true)
		if _, err := checkStream(out); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if again, _ := run(false); !bytes.Equal(out, again) {
			t.Fatalf("the output depends on buffers the caller reused:\n%s\n%s", out, again)
		}
		if h := st.History(); h != nil {
			if !json.Valid(h.Output) || !json.Valid(h.Input) {
				t.Fatalf("history %s %s", h.Input, h.Output)
			}
			if _, err := TranslateRequest([]byte(`{"input":"next","previous_response_id":"resp_test"}`), h); err != nil {
				t.Fatalf("the History of the stream cannot be used: %v\n%s", err, h.Output)
			}
		}
	})
}

// FuzzWellFormed holds the translator's validator to encoding/json's:
// exactly the texts json.Valid accepts that are also valid UTF-8.
func FuzzWellFormed(f *testing.F) {
	for _, s := range append(append([]string{}, requestSeeds...), chatSeeds...) {
		for _, line := range strings.Split(s, "\n") {
			f.Add([]byte(line))
		}
	}
	for _, s := range []string{`-0.5e+3`, `01`, `1.`, `"\u00e9\ud83d\ude00"`, `"\x"`, "\"a\tb\"", `[1,]`, `{"a" :1 , "b":[ ]}`, `{}x`, ` null `, `tru`, "\"\xff\"", `[[[[]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := wellFormed(b), json.Valid(b) && utf8.Valid(b); got != want {
			t.Fatalf("wellFormed(%q) = %v, json.Valid && utf8.Valid = %v", b, got, want)
		}
	})
}
