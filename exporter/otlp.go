package exporter

import (
	"bytes"
	"context"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/store"
)

// AppendTraces appends the OTLP TracesData (equally, an export request)
// holding stored records: one ResourceSpans per run of records that share a
// rollout, an attempt and a resource, with each record's ScopeSpans under
// it. It splices the stored bytes without decoding the spans, so shipping
// a span costs a copy, not a parse. Calls stored as deltas are put back
// whole first (AppendTracesFrom), their parents taken from recs: a parent
// outside them fails with ErrPromptParentMissing.
func AppendTraces(dst []byte, recs []store.Record) ([]byte, error) {
	return AppendTracesFrom(context.Background(), dst, recs, nil)
}

// AppendTracesFrom is AppendTraces reading the prompt parents that are not
// in recs from src (nil: none).
func AppendTracesFrom(ctx context.Context, dst []byte, recs []store.Record, src RecordSource) ([]byte, error) {
	type group struct {
		resource, schema []byte
		scopes           [][]byte
		size             int
	}
	var groups []*group
	var key [2]string
	var resolver *Resolver
	for _, rec := range recs {
		data := rec.Data
		if rec.Kind == store.KindCall {
			if resolver == nil {
				resolver = NewResolver(src)
				resolver.Add(recs...)
			}
			var err error
			if data, err = resolver.Full(ctx, rec); err != nil {
				return dst, err
			}
		}
		res, scopes, schema, err := splitResourceSpans(data)
		if err != nil {
			return dst, fmt.Errorf("record %d: %w", rec.Cursor, err)
		}
		g := (*group)(nil)
		if n := len(groups); n > 0 && key == [2]string{rec.RolloutID, rec.AttemptID} &&
			bytes.Equal(groups[n-1].resource, res) && bytes.Equal(groups[n-1].schema, schema) {
			g = groups[n-1]
		} else {
			g = &group{resource: res, schema: schema}
			groups = append(groups, g)
			key = [2]string{rec.RolloutID, rec.AttemptID}
			g.size = tagLen(fResourceSpansResource, len(res))
			if len(schema) > 0 {
				g.size += tagLen(fResourceSpansSchemaURL, len(schema))
			}
		}
		for _, sc := range scopes {
			g.scopes = append(g.scopes, sc)
			g.size += tagLen(fResourceSpansScopeSpans, len(sc))
		}
	}
	for _, g := range groups {
		dst = protowire.AppendTag(dst, 1, protowire.BytesType) // TracesData.resource_spans
		dst = protowire.AppendVarint(dst, uint64(g.size))
		dst = protowire.AppendTag(dst, fResourceSpansResource, protowire.BytesType)
		dst = protowire.AppendBytes(dst, g.resource)
		for _, sc := range g.scopes {
			dst = protowire.AppendTag(dst, fResourceSpansScopeSpans, protowire.BytesType)
			dst = protowire.AppendBytes(dst, sc)
		}
		if len(g.schema) > 0 {
			dst = protowire.AppendTag(dst, fResourceSpansSchemaURL, protowire.BytesType)
			dst = protowire.AppendBytes(dst, g.schema)
		}
	}
	return dst, nil
}

// splitResourceSpans reads the top-level fields of an encoded
// ResourceSpans: the resource, each ScopeSpans, the schema URL.
func splitResourceSpans(b []byte) (resource []byte, scopes [][]byte, schema []byte, err error) {
	resource = []byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, nil, fmt.Errorf("corrupt span record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, nil, nil, fmt.Errorf("corrupt span record: %w", protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, nil, nil, fmt.Errorf("corrupt span record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fResourceSpansResource:
			resource = v
		case fResourceSpansScopeSpans:
			scopes = append(scopes, v)
		case fResourceSpansSchemaURL:
			schema = v
		}
	}
	return resource, scopes, schema, nil
}

// Format is an OTLP encoding.
type Format int

const (
	Protobuf Format = iota // application/x-protobuf
	JSON                   // application/json, the OTLP/JSON mapping
)

// ContentType is the media type of f.
func (f Format) ContentType() string {
	if f == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// EncodeTraces encodes stored records as OTLP TracesData. JSON follows the
// OTLP/JSON mapping (hex trace and span ids, 64-bit integers as strings,
// integer enums), as the OpenTelemetry Collector's pdata implements it.
// Prompt parents outside recs are missing (see EncodeTracesFrom).
func EncodeTraces(recs []store.Record, f Format) ([]byte, error) {
	return EncodeTracesFrom(context.Background(), recs, nil, f)
}

// EncodeTracesFrom is EncodeTraces reading the prompt parents that are not
// in recs from src.
func EncodeTracesFrom(ctx context.Context, recs []store.Record, src RecordSource, f Format) ([]byte, error) {
	pb, err := AppendTracesFrom(ctx, nil, recs, src)
	if err != nil || f == Protobuf {
		return pb, err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(pb)
	if err != nil {
		return nil, fmt.Errorf("encode traces as JSON: %w", err)
	}
	return (&ptrace.JSONMarshaler{}).MarshalTraces(td)
}

// DecodeExportRequest reads an OTLP/HTTP export request body (protobuf or
// OTLP/JSON).
func DecodeExportRequest(body []byte, f Format) (*coltracepb.ExportTraceServiceRequest, error) {
	if f == JSON {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON(body); err != nil {
			return nil, fmt.Errorf("decode OTLP/JSON: %w", err)
		}
		pb, err := req.MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("decode OTLP/JSON: %w", err)
		}
		body = pb
	}
	out := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("decode OTLP protobuf: %w", err)
	}
	return out, nil
}

// EncodeExportResponse encodes an ExportTraceServiceResponse in f.
func EncodeExportResponse(resp *coltracepb.ExportTraceServiceResponse, f Format) ([]byte, error) {
	pb, err := proto.Marshal(resp)
	if err != nil || f == Protobuf {
		return pb, err
	}
	r := ptraceotlp.NewExportResponse()
	if err := r.UnmarshalProto(pb); err != nil {
		return nil, err
	}
	return r.MarshalJSON()
}

// decodeJSONResponse reads an ExportTraceServiceResponse in OTLP/JSON.
func decodeJSONResponse(body []byte) (*coltracepb.ExportTraceServiceResponse, error) {
	r := ptraceotlp.NewExportResponse()
	if err := r.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	pb, err := r.MarshalProto()
	if err != nil {
		return nil, err
	}
	out := &coltracepb.ExportTraceServiceResponse{}
	return out, proto.Unmarshal(pb, out)
}
