package propagation

import (
	"encoding/hex"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TraceIDFromHex parses a 32-digit (128-bit) or 16-digit (64-bit, B3 and
// Zipkin) hex trace id; a 64-bit id is padded with leading zeros. Shorter
// ids are padded too, as Zipkin does. The all-zero id is invalid.
func TraceIDFromHex(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace id %q: want 1 to 32 hex digits", s)
	}
	if err := decodeRightAligned(id[:], s); err != nil {
		return id, fmt.Errorf("trace id %q: %w", s, err)
	}
	if id.IsEmpty() {
		return id, fmt.Errorf("trace id %q: all zeros", s)
	}
	return id, nil
}

// SpanIDFromHex parses a span id of at most 16 hex digits (shorter ones
// are padded with leading zeros). The all-zero id is invalid.
func SpanIDFromHex(s string) (pcommon.SpanID, error) {
	var id pcommon.SpanID
	if len(s) == 0 || len(s) > 16 {
		return id, fmt.Errorf("span id %q: want 1 to 16 hex digits", s)
	}
	if err := decodeRightAligned(id[:], s); err != nil {
		return id, fmt.Errorf("span id %q: %w", s, err)
	}
	if id.IsEmpty() {
		return id, fmt.Errorf("span id %q: all zeros", s)
	}
	return id, nil
}

// decodeRightAligned decodes hex s into the low end of dst.
func decodeRightAligned(dst []byte, s string) error {
	var buf [32]byte
	pad := 2*len(dst) - len(s)
	for i := range pad {
		buf[i] = '0'
	}
	copy(buf[pad:], s)
	if _, err := hex.Decode(dst, buf[:2*len(dst)]); err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	return nil
}
