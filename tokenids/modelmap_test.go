package tokenids

import (
	"encoding/json"
	"testing"
)

func TestMapModel(t *testing.T) {
	rules := []ModelRule{
		{"claude-*-haiku-*", "Qwen/Qwen3-0.6B"},
		{"claude-*", "Qwen/Qwen3-8B"},
		{"gpt-5", "Qwen/Qwen3-8B"},
		{"org/*/v*", "served"},
	}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"claude-sonnet-4-5", "Qwen/Qwen3-8B", true},
		{"claude-3-5-haiku-20241022", "Qwen/Qwen3-0.6B", true},
		{"claude-", "Qwen/Qwen3-8B", true},
		{"gpt-5", "Qwen/Qwen3-8B", true},
		{"gpt-5-mini", "", false},
		{"org/a/b/v2", "served", true},
		{"org/a/b", "", false},
		{"Qwen/Qwen3-8B", "", false},
		{"", "", false},
	} {
		if got, ok := MapModel(rules, tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"**x", "x", true},
		{"abc", "abcd", false},
		{"abc*", "ab", false},
		{"*aaa*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", false},
	} {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestParseModelRule(t *testing.T) {
	if r, err := ParseModelRule(" claude-* = Qwen/Qwen3-8B "); err != nil || r != (ModelRule{"claude-*", "Qwen/Qwen3-8B"}) {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"claude-*", "=Qwen", "claude-*=", "a=b*"} {
		if _, err := ParseModelRule(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The model map rewrites the model the agent named, every occurrence, and
// records both names; a model no rule matches is left as sent.
func TestPrepareRequestModelMap(t *testing.T) {
	rules := []ModelRule{{"claude-*", "Qwen/Qwen3-8B"}}
	for _, tc := range []struct {
		name, body, model, requested string
	}{
		{"mapped", `{"model":"claude-sonnet-4-5","messages":[]}`, "Qwen/Qwen3-8B", "claude-sonnet-4-5"},
		{"escaped and duplicated", `{"model":"x","model":"claude\u002dopus","messages":[]}`, "Qwen/Qwen3-8B", "claude-opus"},
		{"not matched", `{"model":"Qwen/Qwen3-8B","messages":[]}`, "Qwen/Qwen3-8B", ""},
		{"no model", `{"messages":[]}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, req, err := PrepareRequest(Chat, []byte(tc.body), Options{ModelMap: rules})
			if err != nil {
				t.Fatal(err)
			}
			var sent struct {
				Model *string `json:"model"`
			}
			if err := json.Unmarshal(out, &sent); err != nil {
				t.Fatal(err)
			}
			if req.Model != tc.model || req.RequestedModel != tc.requested {
				t.Errorf("model %q requested %q, want %q %q", req.Model, req.RequestedModel, tc.model, tc.requested)
			}
			if tc.model != "" && (sent.Model == nil || *sent.Model != tc.model) {
				t.Errorf("sent %s", out)
			}
			if tc.requested != "" && json.Valid(out) && countKey(t, out, "model") != countKey(t, []byte(tc.body), "model") {
				t.Errorf("members changed: %s", out)
			}
		})
	}
}

func countKey(t *testing.T, body []byte, key string) int {
	t.Helper()
	n := 0
	s := scanner{buf: body}
	s.ws()
	if err := s.object(func(k []byte) error {
		if string(k) == key {
			n++
		}
		s.ws()
		return s.skip()
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
