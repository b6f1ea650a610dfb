package intercept

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/tokentap/tokentap/exporter"
)

// maxZstdWindow bounds the memory a zstd answer may make tokentap hold: a
// JSON answer or an SSE event is far smaller than this.
const maxZstdWindow = 64 << 20

// decodeAnswer readies a traced call's answer that came with a
// Content-Encoding (a gateway in front of vLLM that compresses): the body
// becomes the decoded one, for the extractor and for the agent, and the
// Content-Encoding and Content-Length fields go, as tokentap rewrites the
// body anyway. It returns nil when the answer continues on its way.
//
// An encoding tokentap cannot decode leaves the answer untouched: a
// successful one is then recorded before it is passed on, with no IDs and
// the reason as its problem, and decodeAnswer returns the answer to send;
// an error answer goes on to be recorded with its status as any other.
func decodeAnswer(ex *exchange, resp *http.Response) *http.Response {
	codings, err := contentCodings(resp.Header)
	if err == nil && len(codings) == 0 {
		return nil
	}
	if err != nil {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil
		}
		ex.noteProblem(err)
		if err := ex.finish(exporter.StatusOK, resp.StatusCode, "", "", nil); err != nil {
			resp.Body.Close()
			return errorResponse(resp.Request, http.StatusServiceUnavailable, "tokentap could not record this call, so it withholds the answer: "+err.Error())
		}
		return resp
	}
	resp.Body = &decodedBody{upstream: resp.Body, codings: codings}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
	return nil
}

// contentCodings lists the codings of a Content-Encoding field in the order
// they were applied, without identity; an error names one tokentap cannot
// decode.
func contentCodings(h http.Header) ([]string, error) {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			switch c {
			case "", "identity":
			case "gzip", "x-gzip", "deflate", "zstd":
				out = append(out, c)
			default:
				return nil, fmt.Errorf("the answer's Content-Encoding %q is not one tokentap decodes (gzip, deflate, zstd): passed on untouched, no token IDs", strings.TrimSpace(c))
			}
		}
	}
	return out, nil
}

// decodedBody undoes an answer's content codings as it is read. The
// decoders are made on the first Read, so that the response hook never
// waits for the body, and a corrupt body fails the read like a broken one.
type decodedBody struct {
	upstream io.ReadCloser
	codings  []string
	r        io.Reader
	closers  []func()
	err      error
}

func (b *decodedBody) Read(p []byte) (int, error) {
	if b.r == nil && b.err == nil {
		b.r, b.err = b.decoders()
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.r.Read(p)
}

// decoders stacks one decoder per coding, the last applied outermost.
func (b *decodedBody) decoders() (io.Reader, error) {
	var r io.Reader = b.upstream
	for i := len(b.codings) - 1; i >= 0; i-- {
		switch b.codings[i] {
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("decode the gzip answer: %w", err)
			}
			b.closers = append(b.closers, func() { zr.Close() })
			r = zr
		case "deflate":
			// "deflate" means zlib (RFC 9110 §8.4.1.2), but some servers send
			// the raw format: a zlib header tells them apart.
			br := bufio.NewReader(r)
			if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
				zr, err := zlib.NewReader(br)
				if err != nil {
					return nil, fmt.Errorf("decode the deflate answer: %w", err)
				}
				b.closers = append(b.closers, func() { zr.Close() })
				r = zr
			} else {
				fr := flate.NewReader(br)
				b.closers = append(b.closers, func() { fr.Close() })
				r = fr
			}
		case "zstd":
			// One decoder goroutine-free: each block is handed on as soon as it
			// is decoded, which a stream needs.
			zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
			if err != nil {
				return nil, fmt.Errorf("decode the zstd answer: %w", err)
			}
			b.closers = append(b.closers, zr.Close)
			r = zr
		}
	}
	return r, nil
}

func (b *decodedBody) Close() error {
	for _, c := range b.closers {
		c()
	}
	b.closers = nil
	return b.upstream.Close()
}
