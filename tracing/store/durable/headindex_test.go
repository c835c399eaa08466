package durable

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// randomBatch has traces interleaved over resources, attributes in varying
// order, repeated and new values, ints, and a key that overflows.
func randomBatch(rng *rand.Rand) ptrace.Traces {
	td := ptrace.NewTraces()
	user := 0
	for range 1 + rng.IntN(3) {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprint("svc", rng.IntN(3)))
		rs.Resource().Attributes().PutStr("zone", fmt.Sprint("z", rng.IntN(2)))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for range rng.IntN(20) {
			sp := spans.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{byte(rng.IntN(250)), byte(rng.IntN(4))})
			sp.SetSpanID(pcommon.SpanID{byte(rng.IntN(200)), 1})
			sp.SetName(fmt.Sprint("op", rng.IntN(3)))
			sp.SetKind(ptrace.SpanKind(rng.IntN(6)))
			if rng.IntN(5) == 0 {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
			a := sp.Attributes()
			if rng.IntN(2) == 0 {
				a.PutStr("method", "GET")
			}
			a.PutInt("code", int64(200+rng.IntN(3)))
			if rng.IntN(2) == 0 { // runs of one value, which the cache sees again
				user = rng.IntN(40)
			}
			a.PutStr("user", fmt.Sprint("u", user)) // overflows at 8 values
			a.PutBool("cached", rng.IntN(2) == 0)
		}
	}
	return td
}

// TestHeadIndexMatchesItsSpans checks the head's posting lists, built
// through its term caches, against the terms of every span added.
func TestHeadIndexMatchesItsSpans(t *testing.T) {
	for seed := range uint64(40) {
		checkHeadIndex(t, rand.New(rand.NewPCG(seed, 4)))
	}
}

func checkHeadIndex(t *testing.T, rng *rand.Rand) {
	h := newHead(8, "", time.Now())
	var batches []ptrace.Traces
	for range 30 {
		td := randomBatch(rng)
		batches = append(batches, td)
		h.add(nil, td)
	}
	want := map[string]map[int32]bool{}
	post := func(ord int32, term string) {
		if want[term] == nil {
			want[term] = map[int32]bool{}
		}
		want[term][ord] = true
	}
	attrs := func(ord int32, m pcommon.Map) {
		for k, v := range m.All() {
			if h.isOverflow(k) {
				post(ord, termHashed+k+"\x00"+valueBucket(v.AsString()))
			} else {
				post(ord, termAttr+k+"\x00"+v.AsString())
			}
		}
	}
	for _, td := range batches {
		store.ForEachSpan(td, func(svc string, res pcommon.Map, sp ptrace.Span) {
			ord := h.byID[sp.TraceID()]
			post(ord, termService+svc)
			post(ord, termOperation+svc+"\x00"+sp.Name())
			post(ord, termKind+store.KindName(sp.Kind()))
			if sp.Status().Code() == ptrace.StatusCodeError {
				post(ord, termError)
			}
			attrs(ord, res)
			attrs(ord, sp.Attributes())
		})
	}
	if got, w := slices.Sorted(maps.Keys(h.post)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
		t.Fatalf("terms %q,\nwant %q", got, w)
	}
	for term, l := range h.post {
		got := map[int32]bool{}
		for _, o := range *l {
			got[o] = true
		}
		if !maps.Equal(got, want[term]) {
			t.Errorf("term %q: traces %v, want %v", term, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want[term])))
		}
	}
	if !h.isOverflow("user") || h.isOverflow("method") {
		t.Errorf("overflowed keys %v, want user only", slices.Collect(maps.Keys(h.overflow)))
	}
}

// A key that overflows while a cache still holds one of its exact lists
// at another attribute position must not post there any more.
func TestHeadIndexAfterOverflowAtAnotherPosition(t *testing.T) {
	h := newHead(2, "", time.Now())
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	span := func(trace byte, attrs ...string) {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{trace})
		for i := 0; i < len(attrs); i += 2 {
			sp.Attributes().PutStr(attrs[i], attrs[i+1])
		}
	}
	span(1, "x", "1", "user", "u1") // user=u1 cached at position 1
	span(2, "user", "u2")
	span(3, "user", "u3") // overflows user at position 0
	span(4, "x", "1", "user", "u1")
	h.add(nil, td)
	l := h.post[termHashed+"user\x00"+valueBucket("u1")]
	if l == nil || !slices.Contains(*l, h.byID[pcommon.TraceID{4}]) {
		t.Fatalf("trace 4 not in the bucket of user=u1: %v", l)
	}
}

func TestBucketOfIsFNV1a(t *testing.T) {
	for _, v := range []string{"", "a", "user-17", "000000000000000d-0003", "\xff\x00é"} {
		f := fnv.New32a()
		_, _ = f.Write([]byte(v))
		if got, want := bucketOf(v), f.Sum32()%hashBuckets; got != want {
			t.Errorf("bucketOf(%q) = %d, want %d", v, got, want)
		}
	}
}
