package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// WeightOverlay is what a controller (a canary, an SLO policy) sets in the
// last rule of one route: the weights of some of its subsets, who set them
// and why.
type WeightOverlay struct {
	Route   string // namespace/name of the TrafficRoute
	By      string
	Reason  string
	Weights map[string]uint32
}

// OverlayWeights returns m with the overlays' weights in their routes' last rules,
// and the overrides that describe them. m is not modified: changed routes
// are copies. A destination an overlay sets to 0 is left out of the rule,
// and one it gives weight that the file's rule lacks is added.
func OverlayWeights(m *Mesh, ovs []WeightOverlay) (*Mesh, []Override) {
	if len(ovs) == 0 {
		return m, nil
	}
	byRoute := map[string]WeightOverlay{}
	for _, o := range ovs {
		byRoute[o.Route] = o
	}
	routes := slices.Clone(m.Routes)
	var overrides []Override
	for i, r := range routes {
		o, ok := byRoute[r.Key()]
		if !ok || len(r.Spec.Rules) == 0 {
			continue
		}
		c := *r
		c.Spec.Rules = slices.Clone(r.Spec.Rules)
		last := len(c.Spec.Rules) - 1
		c.Spec.Rules[last].Destinations = setWeights(r.Spec.Rules[last].Destinations, o.Weights)
		routes[i] = &c
		overrides = append(overrides, Override{
			Kind: KindTrafficRoute, Namespace: r.Namespace, Name: r.Name,
			Path:  fmt.Sprintf("spec.rules[%d].destinations", last),
			Value: c.Spec.Rules[last].Destinations, By: o.By, Reason: o.Reason,
		})
	}
	objs := m.Objects()
	objs.Routes = routes
	return NewMesh(objs), overrides
}

// setWeights returns dests with the given subsets' weights replaced, in the
// file's order, followed by given subsets the file lacks (sorted).
func setWeights(dests []Destination, weights map[string]uint32) []Destination {
	out := make([]Destination, 0, len(dests)+1)
	seen := map[string]bool{}
	for _, d := range dests {
		if w, ok := weights[d.Subset]; ok {
			seen[d.Subset] = true
			d.Weight = w
		}
		if d.Weight > 0 || !seen[d.Subset] {
			out = append(out, d)
		}
	}
	var extra []string
	for s, w := range weights {
		if !seen[s] && w > 0 {
			extra = append(extra, s)
		}
	}
	slices.Sort(extra)
	for _, s := range extra {
		out = append(out, Destination{Subset: s, Weight: weights[s]})
	}
	return out
}

// RuleFingerprint identifies the destinations of a rule as written in the
// file ("" for none): a controller that overlays weights keeps it to tell
// when the file's rule changed under it.
func RuleFingerprint(rule *Rule) string {
	if rule == nil {
		return ""
	}
	b, _ := json.Marshal(rule.Destinations)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
