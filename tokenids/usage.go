package tokenids

// Every traced stream is asked for its usage chunk, so that its IDs are
// checked against vLLM's accounting (vllm-wire.md §2.4 for how vLLM reads
// stream_options).

// streamOptions is what a request's stream_options says about usage.
type streamOptions struct {
	present    bool
	span       [2]int // the value
	object     bool
	null       bool
	usageSpans [][2]int // include_usage values, each with its reading
	usageKinds []flag
	contSpans  [][2]int // continuous_usage_stats values that are true
}

// flag is how vLLM (pydantic, lax) reads a bool | None field.
type flag uint8

const (
	flagTrue  flag = iota // true, or a non-zero number
	flagFalse             // false, null or 0: certainly off
	flagOther             // a string or container: vLLM's to judge
)

// usage reports whether vLLM will send a usage chunk: stream_options is an
// object whose (last) include_usage is absent (StreamOptions defaults it to
// true) or true. Without stream_options, or with null, it sends none
// (unless started with --enable-force-include-usage, which tokentap cannot
// see).
func (o *streamOptions) usage() bool {
	if !o.object {
		return false
	}
	n := len(o.usageKinds)
	return n == 0 || o.usageKinds[n-1] == flagTrue
}

// turnOnUsage returns the edits that make vLLM send the usage chunk of a
// stream whose client did not ask for it; ok is false when the value is
// one vLLM rejects or reads its own way (not an object, an include_usage
// that is a string), which is left to vLLM. continuous_usage_stats is
// turned off with it: without usage vLLM sends no per-chunk usage, and
// the client must see none.
func (o *streamOptions) turnOnUsage() (edits []edit, ok bool) {
	switch {
	case !o.present:
		return nil, true // a member is inserted
	case o.null:
		return []edit{{start: o.span[0], end: o.span[1], repl: `{"include_usage":true}`}}, true
	case !o.object || o.usageKinds[len(o.usageKinds)-1] == flagOther:
		return nil, false
	}
	for _, sp := range o.usageSpans {
		edits = append(edits, edit{start: sp[0], end: sp[1], repl: "true"})
	}
	for _, sp := range o.contSpans {
		edits = append(edits, edit{start: sp[0], end: sp[1], repl: "false"})
	}
	return edits, true
}

func (s *scanner) streamOptions() (o streamOptions, err error) {
	switch s.ws() {
	case '{':
		o.object = true
	case 'n':
		o.null = s.isNull()
		if o.null {
			return o, nil
		}
		return o, s.skip()
	default:
		return o, s.skip()
	}
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "include_usage", "continuous_usage_stats":
		default:
			return s.skip()
		}
		s.ws()
		start := s.pos
		f, err := s.flag()
		if err != nil {
			return err
		}
		if string(key) == "include_usage" {
			o.usageSpans = append(o.usageSpans, [2]int{start, s.pos})
			o.usageKinds = append(o.usageKinds, f)
		} else if f != flagFalse {
			o.contSpans = append(o.contSpans, [2]int{start, s.pos})
		}
		return nil
	})
	return o, err
}

// flag reads a bool | None value.
func (s *scanner) flag() (flag, error) {
	switch c := s.ws(); {
	case c == 'n':
		if s.isNull() {
			return flagFalse, nil
		}
	case c == 't' || c == 'f' || c == '-' || c >= '0' && c <= '9':
		v, err := s.truthy()
		if v {
			return flagTrue, err
		}
		return flagFalse, err
	}
	return flagOther, s.skip()
}
