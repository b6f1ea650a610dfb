package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
)

// passage is one document of the corpus.
type passage struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// bm25 is a small Okapi BM25 index (k1 0.9, b 0.4: Pyserini's defaults,
// which Search-R1's BM25 retriever uses).
type bm25 struct {
	docs  []passage
	tf    []map[string]int
	lens  []int
	df    map[string]int
	avgDL float64
}

func newBM25(docs []passage) *bm25 {
	ix := &bm25{docs: docs, df: map[string]int{}}
	total := 0
	for _, d := range docs {
		tf := map[string]int{}
		terms := analyze(d.Title + " " + d.Text)
		for _, t := range terms {
			tf[t]++
		}
		for t := range tf {
			ix.df[t]++
		}
		ix.tf = append(ix.tf, tf)
		ix.lens = append(ix.lens, len(terms))
		total += len(terms)
	}
	ix.avgDL = float64(total) / float64(max(len(docs), 1))
	return ix
}

// analyze lowercases and splits on anything that is not a letter or digit,
// dropping a few stop words.
func analyze(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		switch w {
		case "a", "an", "the", "of", "is", "in", "what", "which", "are", "to":
			continue
		}
		out = append(out, w)
	}
	return out
}

type hit struct {
	doc   passage
	score float64
}

func (ix *bm25) search(query string, k int) []hit {
	const k1, b = 0.9, 0.4
	n := float64(len(ix.docs))
	var hits []hit
	for i, tf := range ix.tf {
		score := 0.0
		for _, t := range analyze(query) {
			f := float64(tf[t])
			if f == 0 {
				continue
			}
			df := float64(ix.df[t])
			idf := math.Log(1 + (n-df+0.5)/(df+0.5))
			score += idf * f * (k1 + 1) / (f + k1*(1-b+b*float64(ix.lens[i])/ix.avgDL))
		}
		if score > 0 {
			hits = append(hits, hit{ix.docs[i], score})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
	return hits[:min(k, len(hits))]
}

// The retrieval server speaks Search-R1's protocol:
// POST /retrieve {"queries": [...], "topk": 3, "return_scores": true}
// → {"result": [[{"document": {"id", "contents": "\"Title\"\ntext"}, "score"}]]}.
type retrieveRequest struct {
	Queries      []string `json:"queries"`
	TopK         int      `json:"topk"`
	ReturnScores bool     `json:"return_scores"`
}

type retrievedDoc struct {
	Document struct {
		ID       string `json:"id"`
		Contents string `json:"contents"`
	} `json:"document"`
	Score float64 `json:"score"`
}

// serveRetriever starts the retrieval server on a local port, as Search-R1
// runs its retriever beside the trainer.
func serveRetriever(ix *bm25) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /retrieve", func(w http.ResponseWriter, r *http.Request) {
		var req retrieveRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.TopK <= 0 {
			http.Error(w, "want {\"queries\": [...], \"topk\": N}", http.StatusBadRequest)
			return
		}
		result := make([][]retrievedDoc, 0, len(req.Queries))
		for _, q := range req.Queries {
			docs := []retrievedDoc{}
			for _, h := range ix.search(q, req.TopK) {
				var d retrievedDoc
				d.Document.ID = h.doc.ID
				d.Document.Contents = fmt.Sprintf("%q\n%s", h.doc.Title, h.doc.Text)
				d.Score = h.score
				docs = append(docs, d)
			}
			result = append(result, docs)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"result": result})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// retrieve asks a Search-R1 retrieval server and formats the passages the
// way Search-R1 puts them between <information> tags.
func retrieve(ctx context.Context, client *http.Client, url, query string, topK int) (string, error) {
	body, _ := json.Marshal(retrieveRequest{Queries: []string{query}, TopK: topK, ReturnScores: true})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/retrieve", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("retriever: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("retriever answered %s", resp.Status)
	}
	var out struct {
		Result [][]retrievedDoc `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Result) == 0 {
		return "", fmt.Errorf("retriever: unreadable answer: %v", err)
	}
	var b strings.Builder
	for i, d := range out.Result[0] {
		title, text, _ := strings.Cut(d.Document.Contents, "\n")
		fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, title, text)
	}
	return b.String(), nil
}

// readJSONL decodes one JSON value per line.
func readJSONL[T any](data []byte) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20) // a long trajectory is one long line
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, sc.Err()
}
