package topology

import (
	"encoding/json"
	"math"
	"strconv"
)

// The graph is encoded by hand (emit): encoding/json spends most of a big
// graph's time in reflection, map-key sorting and the maps themselves.
// The helpers below write what encoding/json writes for the same values.

// Formats of a rate value.
const (
	rateFmt = iota // Kiali's rateToString: 2 decimals, more until a significant digit shows
	pctFmt         // a percentage with one decimal
)

// rateEntry is one "name":"value" of a rates object, formatted on write.
type rateEntry struct {
	name string
	v    float64
	fmt  int8
}

// rateSet is a small JSON object of rate strings, in insertion order until
// written; callers back it with a stack array so it costs no allocation.
type rateSet []rateEntry

// add is rs with one more entry. (A value method: through a pointer the
// stack array behind rs would escape to the heap.)
func (rs rateSet) add(name string, v float64, f int8) rateSet {
	return append(rs, rateEntry{name, v, f})
}

func (rs rateSet) has(name string) bool {
	for i := range rs {
		if rs[i].name == name {
			return true
		}
	}
	return false
}

// appendJSON writes the entries as an object with sorted keys, as
// encoding/json writes a map[string]string.
func (rs rateSet) appendJSON(b []byte) []byte {
	for i := 1; i < len(rs); i++ { // insertion sort: a handful of entries
		for j := i; j > 0 && rs[j].name < rs[j-1].name; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	b = append(b, '{')
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, rs[i].name), ':', '"')
		if rs[i].fmt == pctFmt {
			b = strconv.AppendFloat(b, rs[i].v, 'f', 1, 64)
		} else {
			b = appendRate(b, 2, rs[i].v)
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendRate is Kiali's rateToString: at least prec decimals, more (up to
// 5) until a significant digit shows.
func appendRate(b []byte, prec int, v float64) []byte {
	p := 0
	for x := v; x > 0 && x < 1 && p < 5; x *= 10 {
		p++
	}
	return strconv.AppendFloat(b, v, 'f', max(p, prec), 64)
}

func appendField(b []byte, name, v string) []byte {
	return appendString(append(append(append(b, `,"`...), name...), `":`...), v)
}

func appendOmit(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, name, v)
}

// appendFlag appends `,"name":true` when on (an omitempty bool).
func appendFlag(b []byte, name string, on bool) []byte {
	if !on {
		return b
	}
	return append(append(append(b, `,"`...), name...), `":true`...)
}

// appendFloat writes f as encoding/json does (NaN and ±Inf, which it
// rejects, become 0).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendRawField appends `,"name":"v"` for a v known to need no escapes
// (a hex id).
func appendRawField(b []byte, name, v string) []byte {
	return append(append(append(append(append(b, `,"`...), name...), `":"`...), v...), '"')
}

// plainASCII marks the bytes encoding/json copies into a string as they
// are: printable ASCII but for the quote, the backslash and <, >, &.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString quotes s as encoding/json does: plain printable ASCII is
// copied, anything else goes through encoding/json (HTML-safe escapes).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainASCII[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
