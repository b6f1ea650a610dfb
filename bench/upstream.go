package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const (
	promptTokens   = 2048
	responseTokens = 256
	model          = "Qwen/Qwen2.5-1.5B-Instruct"
)

const systemPrompt = "You are a helpful assistant."

// requestBody is a chat request with a prompt of about 2,048 tokens.
func requestBody(stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}],"max_tokens":%d,"temperature":1.0,"stream":%v}`,
		model, systemPrompt, strings.Repeat("lorem ipsum ", promptTokens/2), responseTokens, stream)
}

// answerText is the content of every answer: one word per response token.
func answerText() string { return strings.Repeat(" word", responseTokens) }

func ids(n, base int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(base + i*7919%140000))
	}
	b.WriteByte(']')
	return b.String()
}

// chatAnswer is a vLLM chat answer with return_token_ids data, in vLLM's
// field order, in pieces around its two ID arrays (given with brackets):
// head, response IDs, middle, prompt IDs, tail.
func chatAnswer(responseIDs, promptIDs []byte, prompt int) [][]byte {
	head := fmt.Sprintf(`{"id":"chatcmpl-bench","object":"chat.completion","created":1760000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q,"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning":null},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":`,
		model, answerText())
	middle := fmt.Sprintf(`}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":`,
		prompt, prompt+responseTokens, responseTokens)
	return [][]byte{[]byte(head), responseIDs, []byte(middle), promptIDs, []byte(`,"kv_transfer_params":null}`)}
}

// jsonAnswer is the static answer: 2,048 prompt and 256 response IDs.
func jsonAnswer() []byte {
	return bytes.Join(chatAnswer([]byte(ids(responseTokens, 1000)), []byte(ids(promptTokens, 150)), promptTokens), nil)
}

// sseEvents is the same answer streamed: a role chunk with the prompt IDs,
// one chunk per token, the usage chunk, [DONE].
func sseEvents() [][]byte {
	var evs [][]byte
	head := fmt.Sprintf(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1760000000,"model":%q,"choices":[`, model)
	evs = append(evs, []byte("data: "+head+`{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":`+ids(promptTokens, 150)+"}\n\n"))
	for i := range responseTokens {
		finish, stop := "null", ""
		if i == responseTokens-1 {
			finish, stop = `"length"`, `"stop_reason":null,`
		}
		evs = append(evs, []byte(fmt.Sprintf("data: %s{\"index\":0,\"delta\":{\"content\":\" word\"},\"logprobs\":null,\"finish_reason\":%s,%s\"token_ids\":[%d]}]}\n\n", head, finish, stop, 1000+i)))
	}
	evs = append(evs, []byte(fmt.Sprintf("data: %s],\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", head, promptTokens, promptTokens+responseTokens, responseTokens)))
	return append(evs, []byte("data: [DONE]\n\n"))
}

// serveUpstream is the fast vLLM stand-in: static answers, no model.
func serveUpstream(args []string) int {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "address")
	fs.Parse(args)
	answer, events, seq := jsonAnswer(), sseEvents(), newTokenSeq(maxPromptTokens)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n := r.Header.Get(promptTokensHeader); n != "" {
			seq.answer(w, n, bytes.Contains(body, []byte(`"stream":true`)))
			return
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			w.Write(answer)
			return
		}
		delay, _ := time.ParseDuration(r.Header.Get("X-Bench-Token-Delay"))
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		f := w.(http.Flusher)
		for i, ev := range events {
			if delay > 0 && i > 0 {
				time.Sleep(delay)
			}
			if _, err := w.Write(ev); err != nil {
				return
			}
			f.Flush()
		}
	})
	return serve(*listen, mux)
}

// promptTokensHeader asks the upstream for an answer to a prompt of that many
// tokens (the load generator knows how long its prompts are; the stand-in
// has no tokenizer).
const promptTokensHeader = "X-Bench-Prompt-Tokens"

// maxPromptTokens bounds the prompts answered by length.
const maxPromptTokens = 1 << 17

// tokenSeq is the token sequence that every prompt answered by length is a
// prefix of: a prompt of n tokens is IDs 0..n-1 and its answer IDs
// n..n+255, so a prompt made of the previous prompt, the previous answer and
// new tokens extends both, as a real engine's IDs do along a conversation.
type tokenSeq struct {
	text []byte // the IDs as JSON numbers, each followed by a comma
	at   []int  // at[i]: where ID i starts in text
}

func newTokenSeq(n int) tokenSeq {
	s := tokenSeq{at: make([]int, 0, n+1)}
	for i := range n {
		s.at = append(s.at, len(s.text))
		s.text = strconv.AppendInt(s.text, int64(150+i*7919%140000), 10)
		s.text = append(s.text, ',')
	}
	s.at = append(s.at, len(s.text))
	return s
}

// ids is the JSON array of IDs i..j-1 (i < j).
func (s tokenSeq) ids(i, j int) []byte {
	b := make([]byte, 0, s.at[j]-s.at[i]+1)
	b = append(append(b, '['), s.text[s.at[i]:s.at[j]-1]...)
	return append(b, ']')
}

// answer writes the JSON answer to a prompt of n tokens, or vLLM's 400 for
// a prompt it cannot answer.
func (s tokenSeq) answer(w http.ResponseWriter, n string, stream bool) {
	w.Header().Set("Content-Type", "application/json")
	prompt, err := strconv.Atoi(n)
	if err != nil || prompt < 1 || prompt+responseTokens >= len(s.at) || stream {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"bench upstream: %s %q: want a non-stream call of 1 to %d prompt tokens","type":"BadRequestError","param":null,"code":400}}`,
			promptTokensHeader, n, len(s.at)-1-responseTokens)
		return
	}
	pieces := chatAnswer(s.ids(prompt, prompt+responseTokens), s.ids(0, prompt), prompt)
	size := 0
	for _, p := range pieces {
		size += len(p)
	}
	w.Header().Set("Content-Length", strconv.Itoa(size))
	for _, p := range pieces {
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

// serveReverseProxy is the floor of any Go proxy hop: httputil.ReverseProxy
// with a tuned transport, nothing else.
func serveReverseProxy(args []string) int {
	fs := flag.NewFlagSet("rproxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8001", "address")
	upstream := fs.String("upstream", "http://127.0.0.1:8000", "upstream")
	fs.Parse(args)
	target, err := url.Parse(*upstream)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: &http.Transport{
			Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/mallocs", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprint(w, ms.Mallocs)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("/", rp)
	return serve(*listen, mux)
}

func serve(addr string, h http.Handler) int {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
