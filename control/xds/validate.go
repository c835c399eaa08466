package xds

import (
	"fmt"
	"sort"

	"github.com/glassmesh/glassmesh/control/translate"
)

// Envoy is not here to reject a bad resource, so every resource is checked
// with translate.Validate (its proto constraints and those of every nested
// Any) before any client can see it. A resource whose encoding was checked
// before is not checked again: the cost of an update is what it changed.

// validKey names one checked encoding.
type validKey struct {
	typeURL string
	hash    uint64
}

// validate checks every resource of snap whose encoding is not among those
// served already (c.valid), and on success makes c.valid the encodings of
// snap. updateMu must be held.
func (c *caches) validate(snap *translate.Snapshot, h resourceHashes) (checked int, err error) {
	next := make(map[validKey]struct{}, len(c.valid))
	check := func(where string, res translate.Resources) error {
		for _, t := range sortedKeys(res) {
			for _, name := range sortedKeys(res[t]) {
				r := res[t][name]
				k := validKey{t, h[r]}
				if _, ok := next[k]; ok {
					continue
				}
				if _, ok := c.valid[k]; !ok {
					checked++
					if err := translate.Validate(r); err != nil {
						return fmt.Errorf("%s%s %q: %w", where, t, name, err)
					}
				}
				next[k] = struct{}{}
			}
		}
		return nil
	}
	if err := check("", snap.ByName); err != nil {
		return checked, err
	}
	for _, key := range sortedKeys(snap.Sidecars) {
		if err := check(fmt.Sprintf("sidecar %q: ", key), snap.Sidecars[key]); err != nil {
			return checked, err
		}
	}
	c.valid = next
	return checked, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
