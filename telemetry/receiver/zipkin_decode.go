package receiver

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"google.golang.org/protobuf/encoding/protowire"
)

// zipkinSpan is one Zipkin v2 span as both encodings carry it; ids are hex
// as in the JSON encoding.
type zipkinSpan struct {
	TraceID        string             `json:"traceId"`
	ParentID       string             `json:"parentId"`
	ID             string             `json:"id"`
	Kind           string             `json:"kind"`
	Name           string             `json:"name"`
	Timestamp      uint64             `json:"timestamp"` // µs since the epoch
	Duration       uint64             `json:"duration"`  // µs
	LocalEndpoint  *zipkinEndpoint    `json:"localEndpoint"`
	RemoteEndpoint *zipkinEndpoint    `json:"remoteEndpoint"`
	Annotations    []zipkinAnnotation `json:"annotations"`
	Tags           map[string]string  `json:"tags"`
	Debug          bool               `json:"debug"`
	Shared         bool               `json:"shared"`
}

// zipkinEndpoint is a Zipkin v2 endpoint.
type zipkinEndpoint struct {
	ServiceName string `json:"serviceName"`
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Port        int32  `json:"port"`
}

// zipkinAnnotation is a Zipkin v2 annotation.
type zipkinAnnotation struct {
	Timestamp uint64 `json:"timestamp"`
	Value     string `json:"value"`
}

// decodeZipkinJSON decodes a JSON list of Zipkin v2 spans.
func decodeZipkinJSON(b []byte) ([]zipkinSpan, error) {
	var spans []zipkinSpan
	if err := json.Unmarshal(b, &spans); err != nil {
		return nil, fmt.Errorf("malformed Zipkin v2 JSON (want a list of spans): %w", err)
	}
	return spans, nil
}

// The zipkin.proto3 ListOfSpans schema, by field number.
const (
	zListSpans = 1

	zTraceID        = 1
	zParentID       = 2
	zID             = 3
	zKind           = 4
	zName           = 5
	zTimestamp      = 6
	zDuration       = 7
	zLocalEndpoint  = 8
	zRemoteEndpoint = 9
	zAnnotations    = 10
	zTags           = 11
	zDebug          = 12
	zShared         = 13
)

// errProtoField is a field whose wire type does not match the schema.
var errProtoField = errors.New("wrong wire type")

// decodeZipkinProto decodes a zipkin.proto3 ListOfSpans.
func decodeZipkinProto(b []byte) ([]zipkinSpan, error) {
	var spans []zipkinSpan
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != zListSpans {
			return nil
		}
		if typ != protowire.BytesType {
			return errProtoField
		}
		s, err := decodeZipkinProtoSpan(v)
		if err != nil {
			return fmt.Errorf("span %d: %w", len(spans), err)
		}
		spans = append(spans, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed Zipkin proto3 ListOfSpans: %w", err)
	}
	return spans, nil
}

// decodeZipkinProtoSpan decodes one zipkin.proto3 Span.
func decodeZipkinProtoSpan(b []byte) (zipkinSpan, error) {
	var s zipkinSpan
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		want, ok := zipkinSpanWireType(num)
		if !ok {
			return nil // unknown fields are skipped, as protobuf does
		}
		if typ != want {
			return fmt.Errorf("field %d: %w", num, errProtoField)
		}
		return s.setProtoField(num, v, n)
	})
	return s, err
}

// zipkinSpanWireType is the wire type of a known Span field.
func zipkinSpanWireType(num protowire.Number) (protowire.Type, bool) {
	switch num {
	case zTraceID, zParentID, zID, zName, zLocalEndpoint, zRemoteEndpoint, zAnnotations, zTags:
		return protowire.BytesType, true
	case zKind, zDuration, zDebug, zShared:
		return protowire.VarintType, true
	case zTimestamp:
		return protowire.Fixed64Type, true
	}
	return 0, false
}

// setProtoField sets the field num from its bytes v or number n.
func (s *zipkinSpan) setProtoField(num protowire.Number, v []byte, n uint64) error {
	var err error
	switch num {
	case zTraceID:
		s.TraceID = hex.EncodeToString(v)
	case zParentID:
		s.ParentID = hex.EncodeToString(v)
	case zID:
		s.ID = hex.EncodeToString(v)
	case zKind:
		kinds := []string{"", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"} // zipkin.proto3 Span.Kind
		if n >= uint64(len(kinds)) {
			return fmt.Errorf("unknown span kind %d", n)
		}
		s.Kind = kinds[n]
	case zName:
		s.Name = string(v)
	case zTimestamp:
		s.Timestamp = n
	case zDuration:
		s.Duration = n
	case zLocalEndpoint:
		s.LocalEndpoint, err = decodeZipkinProtoEndpoint(v)
	case zRemoteEndpoint:
		s.RemoteEndpoint, err = decodeZipkinProtoEndpoint(v)
	case zAnnotations:
		var a zipkinAnnotation
		a, err = decodeZipkinProtoAnnotation(v)
		s.Annotations = append(s.Annotations, a)
	case zTags:
		err = s.addProtoTag(v)
	case zDebug:
		s.Debug = n != 0
	case zShared:
		s.Shared = n != 0
	}
	return err
}

// decodeZipkinProtoEndpoint decodes an Endpoint; ips are 4 (or mapped 16)
// and 16 bytes.
func decodeZipkinProtoEndpoint(b []byte) (*zipkinEndpoint, error) {
	e := &zipkinEndpoint{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if num < 1 || num > 4 {
			return nil
		}
		if (num == 4) != (typ == protowire.VarintType) || (num != 4 && typ != protowire.BytesType) {
			return fmt.Errorf("endpoint field %d: %w", num, errProtoField)
		}
		switch num {
		case 1:
			e.ServiceName = string(v)
		case 2, 3:
			// zipkin-go sends IPv4 in its 16-byte mapped form, so unmap.
			ip, ok := netip.AddrFromSlice(v)
			if ok && num == 2 {
				ip = ip.Unmap()
			}
			if !ok || (num == 2) != ip.Is4() {
				return fmt.Errorf("endpoint field %d: %d bytes is no IP address", num, len(v))
			}
			if num == 2 {
				e.IPv4 = ip.String()
			} else {
				e.IPv6 = ip.String()
			}
		case 4:
			if n > math.MaxUint16 {
				return fmt.Errorf("endpoint port %d out of range", n)
			}
			e.Port = int32(n)
		}
		return nil
	})
	return e, err
}

// decodeZipkinProtoAnnotation decodes an Annotation.
func decodeZipkinProtoAnnotation(b []byte) (zipkinAnnotation, error) {
	var a zipkinAnnotation
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			a.Timestamp = n
		case num == 2 && typ == protowire.BytesType:
			a.Value = string(v)
		case num == 1 || num == 2:
			return fmt.Errorf("annotation field %d: %w", num, errProtoField)
		}
		return nil
	})
	return a, err
}

// addProtoTag decodes one map<string,string> entry.
func (s *zipkinSpan) addProtoTag(b []byte) error {
	var k, v string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("tag field %d: %w", num, errProtoField)
		}
		if num == 1 {
			k = string(val)
		} else {
			v = string(val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	s.Tags[k] = v
	return nil
}

// eachField calls f with every field of the message b: its number, wire
// type, and its bytes (length-delimited) or number (varint, fixed).
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			n, l = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var n32 uint32
			n32, l = protowire.ConsumeFixed32(b)
			n = uint64(n32)
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(l))
		}
		b = b[l:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}
