// Package unstr reads fields of JSON-like objects (Kubernetes unstructured
// content: map[string]any, []any, strings and numbers), for the route
// import and the Kubernetes source's status writers.
package unstr

// String reads a string field of a JSON-like object ("" when absent).
func String(obj any, keys ...string) string {
	s, _ := Field(obj, keys...).(string)
	return s
}

// List reads a list field of a JSON-like object.
func List(obj any, keys ...string) []any {
	l, _ := Field(obj, keys...).([]any)
	return l
}

// Field reads the value at keys of a JSON-like object (nil when absent).
func Field(obj any, keys ...string) any {
	for _, k := range keys {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil
		}
		obj = m[k]
	}
	return obj
}

// Integer reads an integer field; ok is false when it is absent or not a
// whole number.
func Integer(obj any, keys ...string) (n int64, present, ok bool) {
	switch v := Field(obj, keys...).(type) {
	case nil:
		return 0, false, true
	case int64:
		return v, true, true
	case int:
		return int64(v), true, true
	case float64:
		return int64(v), true, v == float64(int64(v))
	}
	return 0, true, false
}
