package metrics

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// maxRemoteAnswer bounds one query answer read from a remote store; a
// larger one is an error, never a cut vector.
const maxRemoteAnswer = 256 << 20

// decodeVector reads a Prometheus HTTP API instant-query answer holding a
// vector straight into a promql.Vector: one pass, no intermediate maps
// (the generic client's decoding cost 4 times the query itself on a graph
// of 1,000 services). Samples of native histograms are skipped (our
// queries are over float series). A non-success answer is an error naming
// its errorType and message.
func decodeVector(r io.Reader) (promql.Vector, error) {
	it := jsoniter.Parse(jsoniter.ConfigFastest, r, 32<<10)
	var (
		status, errType, errMsg, resultType string
		vec                                 promql.Vector
		sawResult                           bool
	)
	var b labels.ScratchBuilder
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			status = it.ReadString()
		case "errorType":
			errType = it.ReadString()
		case "error":
			errMsg = it.ReadString()
		case "data":
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "resultType":
					resultType = it.ReadString()
				case "result":
					sawResult = true
					vec = readSamples(it, &b, vec)
				default:
					it.Skip()
				}
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if it.Error != nil { // io.EOF too: a cut answer is not a whole one
		return nil, fmt.Errorf("malformed answer: %w", it.Error)
	}
	switch {
	case status == "error":
		return nil, fmt.Errorf("%s: %s", errType, errMsg)
	case status != "success":
		return nil, fmt.Errorf("malformed answer: status %q", status)
	case !sawResult:
		return nil, errors.New("malformed answer: no data.result")
	case resultType != "vector" && resultType != "scalar":
		return nil, fmt.Errorf("want a vector, got %s", resultType)
	}
	return vec, nil
}

// readSamples reads data.result: an array of samples for a vector, or the
// [time, "value"] pair of a scalar (a one-sample vector without labels).
func readSamples(it *jsoniter.Iterator, b *labels.ScratchBuilder, vec promql.Vector) promql.Vector {
	if it.WhatIsNext() != jsoniter.ArrayValue {
		it.ReportError("result", "want an array")
		return vec
	}
	first := true
	var scalar bool
	var t int64
	var f float64
	for i := 0; it.ReadArray(); i++ {
		if first && it.WhatIsNext() == jsoniter.NumberValue {
			scalar = true
		}
		first = false
		if scalar {
			switch i {
			case 0:
				t = int64(it.ReadFloat64() * 1000)
			case 1:
				f = parseValue(it)
			default:
				it.Skip()
			}
			continue
		}
		if s, ok := readSample(it, b); ok {
			vec = append(vec, s)
		}
	}
	if scalar {
		vec = append(vec, promql.Sample{Metric: labels.EmptyLabels(), T: t, F: f})
	}
	return vec
}

// readSample reads {"metric": {...}, "value": [t, "v"]}; ok is false for a
// histogram sample (no "value").
func readSample(it *jsoniter.Iterator, b *labels.ScratchBuilder) (promql.Sample, bool) {
	b.Reset()
	var s promql.Sample
	hasValue := false
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "metric":
			it.ReadMapCB(func(it *jsoniter.Iterator, name string) bool {
				b.Add(name, it.ReadString())
				return it.Error == nil
			})
		case "value":
			hasValue = true
			for i := 0; it.ReadArray(); i++ {
				switch i {
				case 0:
					s.T = int64(it.ReadFloat64() * 1000)
				case 1:
					s.F = parseValue(it)
				default:
					it.Skip()
				}
			}
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	b.Sort()
	s.Metric = b.Labels()
	return s, hasValue && it.Error == nil
}

// parseValue reads a sample value: a JSON string holding a float ("NaN",
// "+Inf" included).
func parseValue(it *jsoniter.Iterator) float64 {
	raw := it.ReadString()
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		it.ReportError("value", fmt.Sprintf("not a number: %q", raw))
	}
	return f
}
