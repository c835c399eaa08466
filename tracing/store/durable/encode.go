package durable

import (
	"encoding/binary"
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/protobuf/encoding/protowire"
)

// encodeRecord cuts a batch's OTLP protobuf (a TracesData or an
// ExportTraceServiceRequest: both hold the ResourceSpans in field 1) into
// per-trace fragments and builds the WAL record of them (header room and
// payload, as encodePayload). The spans are not decoded: each one's bytes
// are copied as they are, under its resource's and scope's other fields,
// so a fragment is the TracesData of that trace's spans. A trace of more
// than maxSpans spans (0: no limit) takes several fragments. ids are the
// spans' trace ids in batch order (the first one of a span that has two:
// the caller compares them with the decoded batch). It fails on bytes that are not such a
// message or a span without a 16-byte trace id.
//
// Encoding each trace's spans again from pdata cost as much as decoding
// the request; this costs a few copies.
func encodeRecord(raw []byte, maxSpans int) (rec []byte, frags []rawFrag, ids []pcommon.TraceID, err error) {
	var c cutter
	c.reset(maxSpans)
	rec, err = c.encode(raw)
	return rec, c.frags, c.ids, err
}

// encode is encodeRecord into c's memory: what it returns, and c.frags
// and c.ids, are valid until c is reset.
func (c *cutter) encode(raw []byte) ([]byte, error) {
	if err := c.scan(raw); err != nil {
		return nil, err
	}
	size := walHeaderSize + binary.MaxVarintLen64
	for i := range c.frags {
		c.frags[i].n = c.fragLen(&c.frags[i])
		size += traceIDSize + binary.MaxVarintLen64 + c.frags[i].n
	}
	rec := slices.Grow(c.rec[:0], size)[:walHeaderSize]
	rec = binary.AppendUvarint(rec, uint64(len(c.frags)))
	for i := range c.frags {
		f := &c.frags[i]
		rec = append(rec, f.id[:]...)
		rec = binary.AppendUvarint(rec, uint64(f.n))
		f.at = len(rec) - walHeaderSize
		rec = c.appendFrag(rec, f)
	}
	c.rec = rec
	return rec, nil
}

// rawFrag is a fragment cut by encodeRecord: a trace's spans (a list
// through rawSpan.next), and once encoded its length and where its data is
// in the record's payload.
type rawFrag struct {
	id          pcommon.TraceID
	first, last int32
	spans       int
	n, at       int
}

// rawSpan is a span's whole field (tag, length, message) in the batch.
type rawSpan struct {
	field []byte
	group int32 // index in cutter.groups
	next  int32 // the next span of its fragment, or -1
}

// rawGroup is a (resource, scope) pair: the fields of the ResourceSpans
// and of the ScopeSpans other than their lists.
type rawGroup struct{ rs, ss []byte }

// cutter cuts batches; reset keeps its memory for the next one.
type cutter struct {
	maxSpans int
	open     map[pcommon.TraceID]int32 // trace → its fragment taking spans
	frags    []rawFrag
	spans    []rawSpan
	ids      []pcommon.TraceID // of spans
	groups   []rawGroup
	rec      []byte
}

// maxKeptRecord is the largest record buffer a cutter keeps.
const maxKeptRecord = 4 << 20

// done drops c's references into the last batch, so a pooled cutter does
// not keep a request alive.
func (c *cutter) done() {
	clear(c.spans)
	clear(c.groups)
}

func (c *cutter) reset(maxSpans int) {
	c.maxSpans = maxSpans
	if c.open == nil {
		c.open = make(map[pcommon.TraceID]int32)
	}
	clear(c.open)
	c.frags, c.spans, c.ids = c.frags[:0], c.spans[:0], c.ids[:0]
	clear(c.groups)
	c.groups = c.groups[:0]
	if cap(c.rec) > maxKeptRecord {
		c.rec = nil
	}
}

const (
	fieldResourceSpans = 1 // in TracesData
	fieldScopeSpans    = 2 // in ResourceSpans
	fieldSpans         = 2 // in ScopeSpans
	fieldTraceID       = 1 // in Span
)

var errNotTraces = fmt.Errorf("not OTLP traces: %w", errCorrupt)

// nextField splits the first field off b: its number, its value when it
// is length-delimited (else nil), the whole field, and the rest.
func nextField(b []byte) (num protowire.Number, val, field, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, nil, nil, nil, errNotTraces
	}
	var m int
	if typ == protowire.BytesType {
		val, m = protowire.ConsumeBytes(b[n:])
	} else {
		m = protowire.ConsumeFieldValue(num, typ, b[n:])
	}
	if m < 0 {
		return 0, nil, nil, nil, errNotTraces
	}
	return num, val, b[:n+m], b[n+m:], nil
}

func (c *cutter) scan(raw []byte) error {
	for b := raw; len(b) > 0; {
		num, rs, _, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num != fieldResourceSpans || rs == nil {
			continue
		}
		if err := c.scanResource(rs); err != nil {
			return err
		}
	}
	return nil
}

func (c *cutter) scanResource(rs []byte) error {
	var hdr []byte
	first := len(c.groups)
	for b := rs; len(b) > 0; {
		num, ss, field, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num == fieldScopeSpans && ss != nil {
			c.groups = append(c.groups, rawGroup{ss: ss}) // scanned below, once hdr is whole
		} else {
			hdr = append(hdr, field...)
		}
	}
	for g := first; g < len(c.groups); g++ {
		ss := c.groups[g].ss
		c.groups[g] = rawGroup{rs: hdr}
		if err := c.scanScope(int32(g), ss); err != nil {
			return err
		}
	}
	return nil
}

func (c *cutter) scanScope(g int32, ss []byte) error {
	for b := ss; len(b) > 0; {
		num, span, field, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num != fieldSpans || span == nil {
			c.groups[g].ss = append(c.groups[g].ss, field...)
			continue
		}
		id, err := spanTraceID(span)
		if err != nil {
			return err
		}
		c.add(id, rawSpan{field: field, group: g, next: -1})
	}
	return nil
}

// spanTraceID is the first trace id of an encoded span. A decoder takes
// the last one; the caller checks the ids against the decoded batch.
func spanTraceID(span []byte) (pcommon.TraceID, error) {
	for b := span; len(b) > 0; {
		num, val, _, rest, err := nextField(b)
		if err != nil {
			return pcommon.TraceID{}, err
		}
		b = rest
		if num != fieldTraceID {
			continue
		}
		if len(val) != traceIDSize {
			return pcommon.TraceID{}, fmt.Errorf("trace id of %d bytes: %w", len(val), errCorrupt)
		}
		return pcommon.TraceID(val), nil
	}
	return pcommon.TraceID{}, fmt.Errorf("span without a trace id: %w", errCorrupt)
}

func (c *cutter) add(id pcommon.TraceID, s rawSpan) {
	si := int32(len(c.spans))
	c.spans = append(c.spans, s)
	c.ids = append(c.ids, id)
	fi, ok := c.open[id]
	if !ok || c.maxSpans > 0 && c.frags[fi].spans >= c.maxSpans {
		fi = int32(len(c.frags))
		c.frags = append(c.frags, rawFrag{id: id, first: si, last: si, spans: 1})
		c.open[id] = fi
		return
	}
	f := &c.frags[fi]
	c.spans[f.last].next = si
	f.last = si
	f.spans++
}

// runs calls fn for each run of a fragment's spans in one group (spans
// come in batch order, so each group is one run), with the run's first
// span, the one after it (-1 at the end) and the ScopeSpans length.
func (c *cutter) runs(f *rawFrag, fn func(g rawGroup, first, end int32, ssLen int)) {
	for s := f.first; s >= 0; {
		g := c.spans[s].group
		ssLen := len(c.groups[g].ss)
		e := s
		for e >= 0 && c.spans[e].group == g {
			ssLen += len(c.spans[e].field)
			e = c.spans[e].next
		}
		fn(c.groups[g], s, e, ssLen)
		s = e
	}
}

func rsLen(g rawGroup, ssLen int) int {
	return len(g.rs) + protowire.SizeTag(fieldScopeSpans) + protowire.SizeBytes(ssLen)
}

func (c *cutter) fragLen(f *rawFrag) int {
	n := 0
	c.runs(f, func(g rawGroup, _, _ int32, ssLen int) {
		n += protowire.SizeTag(fieldResourceSpans) + protowire.SizeBytes(rsLen(g, ssLen))
	})
	return n
}

func (c *cutter) appendFrag(b []byte, f *rawFrag) []byte {
	c.runs(f, func(g rawGroup, first, end int32, ssLen int) {
		b = protowire.AppendTag(b, fieldResourceSpans, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(rsLen(g, ssLen)))
		b = append(b, g.rs...)
		b = protowire.AppendTag(b, fieldScopeSpans, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(ssLen))
		b = append(b, g.ss...)
		for s := first; s != end; s = c.spans[s].next {
			b = append(b, c.spans[s].field...)
		}
	})
	return b
}
