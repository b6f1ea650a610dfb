package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// sendResult says how a collector took an export.
type sendResult struct {
	rejected   bool          // the collector refused the data itself; resending it unchanged will not help
	tooLarge   bool          // the request was over the collector's size limit
	retryAfter time.Duration // the collector asked to wait this long
	// partial counts the spans a collector refused in an export it otherwise
	// accepted (OTLP partial success): the export is acknowledged, and
	// sending it again would duplicate the accepted spans.
	partial     int64
	partialText string
}

// sender ships one encoded export request to a collector.
type sender interface {
	send(ctx context.Context, req []byte) (sendResult, error)
	close() error
}

// newSender builds the client for an endpoint: http(s)://host:port for
// OTLP/HTTP protobuf (/v1/traces appended unless the URL has a path),
// grpc://host:port or grpcs://host:port for OTLP/gRPC.
func newSender(endpoint string, headers map[string]string) (sender, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want http://host:4318 or grpc://host:4317", endpoint)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		return &httpSender{url: u.String(), headers: headers, client: &http.Client{
			Transport: &http.Transport{
				Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
			},
			// Redirects would send spans somewhere not configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}, nil
	case "grpc", "grpcs":
		creds := insecure.NewCredentials()
		if u.Scheme == "grpcs" {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
		}
		conn, err := grpc.NewClient(u.Host,
			grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.UseCompressor(grpcgzip.Name), grpc.MaxCallSendMsgSize(64<<20)))
		if err != nil {
			return nil, fmt.Errorf("OTLP endpoint %q: %w", endpoint, err)
		}
		return &grpcSender{conn: conn, headers: headers}, nil
	}
	return nil, fmt.Errorf("OTLP endpoint %q: scheme must be http, https, grpc or grpcs", endpoint)
}

// httpSender speaks OTLP/HTTP: protobuf, gzip.
type httpSender struct {
	url     string
	headers map[string]string
	client  *http.Client
}

func (h *httpSender) send(ctx context.Context, req []byte) (sendResult, error) {
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	zw.Write(req)
	zw.Close()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, &body)
	if err != nil {
		return sendResult{}, err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "gzip")
	hr.Header.Set("User-Agent", "tokentap")
	for k, v := range h.headers {
		hr.Header.Set(k, v)
	}
	resp, err := h.client.Do(hr)
	if err != nil {
		return sendResult{}, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		return partialSuccess(out, resp.Header.Get("Content-Type"))
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		return sendResult{retryAfter: retryAfter(resp.Header.Get("Retry-After"))}, fmt.Errorf("collector answered %s: %s", resp.Status, snippet(out))
	case code == http.StatusRequestEntityTooLarge:
		return sendResult{tooLarge: true}, fmt.Errorf("collector answered %s", resp.Status)
	case code == http.StatusBadRequest:
		return sendResult{rejected: true}, fmt.Errorf("collector answered %s: %s", resp.Status, snippet(out))
	default:
		// 401, 403, 404...: a configuration problem on either side, which an
		// operator fixes; the data waits.
		return sendResult{}, fmt.Errorf("collector answered %s: %s", resp.Status, snippet(out))
	}
}

// partialSuccess reads a 2xx answer and its partial success, if any.
func partialSuccess(body []byte, contentType string) (sendResult, error) {
	if len(body) == 0 {
		return sendResult{}, nil
	}
	f := Protobuf
	if strings.HasPrefix(contentType, "application/json") {
		f = JSON
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if f == JSON {
		r, err := decodeJSONResponse(body)
		if err != nil {
			return sendResult{}, nil // an unreadable 2xx body is still an acknowledgement
		}
		resp = r
	} else if proto.Unmarshal(body, resp) != nil {
		return sendResult{}, nil
	}
	return checkPartial(resp.GetPartialSuccess())
}

func checkPartial(ps *coltracepb.ExportTracePartialSuccess) (sendResult, error) {
	if ps == nil || ps.RejectedSpans == 0 {
		return sendResult{}, nil
	}
	return sendResult{partial: ps.RejectedSpans, partialText: ps.ErrorMessage}, nil
}

func (h *httpSender) close() error {
	h.client.CloseIdleConnections()
	return nil
}

// grpcSender speaks OTLP/gRPC, gzip-compressed.
type grpcSender struct {
	conn    *grpc.ClientConn
	headers map[string]string
}

// rawMessage is an export request already encoded: the push path splices
// stored spans into it and has no message object to marshal.
type rawMessage []byte

// rawCodec sends rawMessage requests as they are and decodes answers as
// protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if raw, ok := v.(rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(raw)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

func (g *grpcSender) send(ctx context.Context, req []byte) (sendResult, error) {
	for k, v := range g.headers {
		ctx = metadata.AppendToOutgoingContext(ctx, strings.ToLower(k), v)
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	err := g.conn.Invoke(ctx, coltracepb.TraceService_Export_FullMethodName, rawMessage(req), resp, grpc.ForceCodecV2(rawCodec{}))
	if err == nil {
		return checkPartial(resp.GetPartialSuccess())
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.ResourceExhausted:
		if strings.Contains(st.Message(), "larger than max") {
			return sendResult{tooLarge: true}, err
		}
		return sendResult{}, err
	case codes.InvalidArgument:
		return sendResult{rejected: true}, err
	}
	// Unavailable, DeadlineExceeded, Aborted, Internal: the collector's
	// trouble; Unauthenticated, PermissionDenied, Unimplemented: a
	// configuration to fix. Either way the data waits.
	return sendResult{}, err
}

func (g *grpcSender) close() error { return g.conn.Close() }

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}
