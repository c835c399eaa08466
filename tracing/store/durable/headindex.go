package durable

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// termCaches spare the head most of its term lookups (a span has about 15
// terms, and map lookups of them were most of the indexing time): spans of
// a batch mostly share a resource, an operation, and attributes in the
// same order with many values repeated.
type termCaches struct {
	scratch  []byte
	spanAttr []cachedTerm // by attribute position in a span
	resAttr  []cachedTerm // by attribute position in a resource
	lastOp   opCache
	errList  *[]int32
}

// cachedTerm is the last attribute seen at one position and the posting
// list it went to. overflowKey, which deletes lists, clears these.
type cachedTerm struct {
	key, val string
	ks       *keyState
	list     *[]int32
}

// keyState is the index of one attribute key: its values' posting lists
// (also in head.post, by term), or once it overflowed its hash buckets'.
type keyState struct {
	vals    map[string]*[]int32
	buckets []*[]int32 // hashBuckets of them once overflowed, made on use
}

func (h *head) keyState(k string) *keyState {
	ks := h.keys[k]
	if ks == nil {
		ks = &keyState{vals: make(map[string]*[]int32)}
		h.keys[k] = ks
	}
	return ks
}

// opCache is the last operation indexed and its posting lists.
type opCache struct {
	svc, name  string
	kind       ptrace.SpanKind
	op, kindOf *[]int32
}

// rsIndex is what the spans of one resource share.
type rsIndex struct {
	svc  string
	si   uint32 // index in head.svcNames
	list *[]int32
}

func (h *head) resource(svc string) rsIndex {
	si, ok := h.svcIdx[svc]
	if !ok {
		si = uint32(len(h.svcNames))
		h.svcIdx[svc] = si
		h.svcNames = append(h.svcNames, svc)
	}
	return rsIndex{svc: svc, si: si, list: h.listOf(true, termService, svc)}
}

func (h *head) addSpan(t *headTrace, ord int32, r *rsIndex, sp ptrace.Span) {
	t.addSpan(sp)
	t.links = append(t.links, spanLink{sp.SpanID(), sp.ParentSpanID(), r.si, int64(sp.StartTimestamp())})
	h.bytes += linkBytes
	h.spans++
	start, end := int64(sp.StartTimestamp()), int64(sp.EndTimestamp())
	if h.spans == 1 || start < h.minT {
		h.minT = start
	}
	h.maxT = max(h.maxT, end, start)
	h.postTo(r.list, ord)
	h.postOperation(ord, r.svc, sp.Name(), sp.Kind())
	if sp.Status().Code() == ptrace.StatusCodeError {
		if h.errList == nil {
			h.errList = h.listOf(true, termError)
		}
		h.postTo(h.errList, ord)
	}
	h.postAttrs(sp.Attributes(), ord, &h.spanAttr)
}

// postOperation posts the operation and span kind terms and notes the
// operation of the service.
func (h *head) postOperation(ord int32, svc, name string, kind ptrace.SpanKind) {
	c := &h.lastOp
	if c.op == nil || c.kind != kind || c.name != name || c.svc != svc {
		kn := store.KindName(kind)
		ops := h.ops[svc]
		if ops == nil {
			ops = make(map[store.Operation]struct{})
			h.ops[svc] = ops
		}
		if op := (store.Operation{Name: name, SpanKind: kn}); !hasKey(ops, op) {
			ops[op] = struct{}{}
		}
		*c = opCache{svc: svc, name: name, kind: kind,
			op: h.listOf(true, termOperation, svc, name), kindOf: h.listOf(true, termKind, kn)}
	}
	h.postTo(c.op, ord)
	h.postTo(c.kindOf, ord)
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// postAttrs posts the attribute terms of ord, through cache.
func (h *head) postAttrs(attrs pcommon.Map, ord int32, cache *[]cachedTerm) {
	i := 0
	for k, v := range attrs.All() {
		if k == "error" || k == "span.kind" {
			continue
		}
		if i == len(*cache) {
			*cache = append(*cache, cachedTerm{})
		}
		c := &(*cache)[i]
		i++
		var val string
		switch v.Type() {
		case pcommon.ValueTypeStr:
			val = v.Str()
		case pcommon.ValueTypeInt:
			h.scratch = strconv.AppendInt(h.scratch[:0], v.Int(), 10)
			if c.list != nil && c.key == k && c.val == string(h.scratch) {
				h.postTo(c.list, ord)
				continue
			}
			val = string(h.scratch)
		default:
			val = v.AsString()
		}
		if c.list == nil || c.key != k || c.val != val {
			ks := c.ks
			if ks == nil || c.key != k {
				ks = h.keyState(k)
			}
			*c = cachedTerm{key: k, val: val, ks: ks, list: h.attrList(ks, k, val)}
		}
		h.postTo(c.list, ord)
	}
}

// attrList returns the posting list of attribute k=val (ks is k's): its
// exact term's, or its hash bucket's when k overflowed (which may happen
// now).
func (h *head) attrList(ks *keyState, k, val string) *[]int32 {
	if ks.vals == nil {
		return h.bucketList(ks, k, val)
	}
	if l := ks.vals[val]; l != nil {
		return l
	}
	if len(ks.vals) >= h.attrCap || len(val) > maxValueLen {
		h.overflowKey(ks, k)
		return h.bucketList(ks, k, val)
	}
	l := h.listOf(true, termAttr, k, val)
	ks.vals[val] = l
	return l
}

// overflowKey stops indexing the values of attribute key k exactly: it
// has too many distinct values (or too long ones). From now on its values
// are indexed by hash bucket, so the key costs at most hashBuckets terms,
// and a query on it checks the traces of the value's bucket.
func (h *head) overflowKey(ks *keyState, k string) {
	for v, l := range ks.vals {
		b := h.bucketList(ks, k, v)
		for _, o := range *l {
			h.postTo(b, o)
		}
		delete(h.post, termAttr+k+"\x00"+v)
	}
	ks.vals = nil
	h.overflow[k] = struct{}{}
	clear(h.spanAttr)
	clear(h.resAttr)
}

// valueBucket is the hash bucket of an attribute value of an overflowed key.
func valueBucket(v string) string {
	return strconv.Itoa(int(bucketOf(v)))
}

// bucketOf is FNV-1a (32 bits) of v modulo hashBuckets; blocks on disk
// hold these buckets, so it must not change.
func bucketOf(v string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(v); i++ {
		h ^= uint32(v[i])
		h *= 16777619
	}
	return h % hashBuckets
}

// bucketList returns the posting list of the hash bucket of k=val,
// creating it if needed.
func (h *head) bucketList(ks *keyState, k, val string) *[]int32 {
	bucket := bucketOf(val)
	if ks.buckets == nil {
		ks.buckets = make([]*[]int32, hashBuckets)
	}
	if l := ks.buckets[bucket]; l != nil {
		return l
	}
	b := append(h.scratch[:0], termHashed...)
	b = append(b, k...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(bucket), 10)
	h.scratch = b
	l := h.listOfKey(b, true)
	ks.buckets[bucket] = l
	return l
}

// listOf returns the posting list of a term, creating it if create (else
// nil when absent).
func (h *head) listOf(create bool, kind string, parts ...string) *[]int32 {
	b := append(h.scratch[:0], kind...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	h.scratch = b
	return h.listOfKey(b, create)
}

func (h *head) listOfKey(term []byte, create bool) *[]int32 {
	l := h.post[string(term)] // no allocation for the lookup
	if l == nil && create {
		l = new([]int32)
		h.post[string(term)] = l
		h.bytes += termOverhead + int64(len(term))
	}
	return l
}

// postTo adds ord to a posting list unless it is its last entry.
func (h *head) postTo(l *[]int32, ord int32) {
	if n := len(*l); n == 0 || (*l)[n-1] != ord {
		*l = append(*l, ord)
		h.bytes += postingBytes
	}
}
