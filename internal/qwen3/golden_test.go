package qwen3

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

func readCases(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestEncodeMatchesTransformersJS compares with ids transformers.js gave
// (testdata/gen_encode_cases.js), on text where its regex agrees with
// tokenizers'.
func TestEncodeMatchesTransformersJS(t *testing.T) {
	m := testModel(t)
	var cases []struct {
		Text string  `json:"text"`
		IDs  []int64 `json:"ids"`
	}
	readCases(t, "testdata/encode_cases.json", &cases)
	bad := 0
	for _, c := range cases {
		if got := m.Encode(c.Text); !slices.Equal(got, c.IDs) {
			if bad++; bad <= 5 {
				t.Errorf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d differ", bad, len(cases))
	}
}

// TestRenderMatchesJinja2 compares with Jinja2 3.1.6 configured as
// transformers does (testdata/gen_render_cases.py).
func TestRenderMatchesJinja2(t *testing.T) {
	m := testModel(t)
	var cases []struct {
		Messages json.RawMessage `json:"messages"`
		Tools    json.RawMessage `json:"tools"`
		Gen      bool            `json:"gen"`
		Kwargs   json.RawMessage `json:"kwargs"`
		Out      string          `json:"out"`
	}
	readCases(t, "testdata/render_cases.json", &cases)
	bad := 0
	for i, c := range cases {
		out, err := m.Render(c.Messages, c.Tools, c.Gen, false, c.Kwargs)
		if err != nil || out != c.Out {
			if bad++; bad <= 5 {
				t.Errorf("case %d: err %v\n got %q\nwant %q", i, err, out, c.Out)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d differ", bad, len(cases))
	}
}
