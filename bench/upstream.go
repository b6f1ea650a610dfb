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

// requestBody is a chat request with a prompt of about 2,048 tokens.
func requestBody(stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":%q}],"max_tokens":%d,"temperature":1.0,"stream":%v}`,
		model, strings.Repeat("lorem ipsum ", promptTokens/2), responseTokens, stream)
}

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

// jsonAnswer is a vLLM chat answer with return_token_ids data, in vLLM's
// field order.
func jsonAnswer() []byte {
	return []byte(fmt.Sprintf(`{"id":"chatcmpl-bench","object":"chat.completion","created":1760000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q,"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning":null},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":%s}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":%s,"kv_transfer_params":null}`,
		model, strings.Repeat(" word", responseTokens), ids(responseTokens, 1000), promptTokens, promptTokens+responseTokens, responseTokens, ids(promptTokens, 150)))
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
	answer, events := jsonAnswer(), sseEvents()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
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
