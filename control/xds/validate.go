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

// validate checks every resource new to the snapshot whose encoding is not
// among those served (all checked when they were added). updateMu must be
// held.
func (rh *resourceHashes) validate() (checked int, err error) {
	seen := make(map[validKey]bool, len(rh.added))
	var failed []string
	for r, x := range rh.added {
		k := validKey{x.typeURL, x.sum}
		if seen[k] || rh.h.valid[k] > 0 {
			continue
		}
		seen[k] = true
		checked++
		if err := translate.Validate(r); err != nil {
			failed = append(failed, fmt.Sprintf("%s%s %q: %v", where(x.where), x.typeURL, x.name, err))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return checked, fmt.Errorf("%s%s", failed[0], more(len(failed)-1))
	}
	return checked, nil
}

// more is ", and N more" for N > 0.
func more(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d more)", n)
}
