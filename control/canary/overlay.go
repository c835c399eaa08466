package canary

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/glassmesh/glassmesh/control/model"
)

// lastRule returns the route's last rule (the one a canary drives), or nil.
func lastRule(r *model.TrafficRoute) *model.Rule {
	if r == nil || len(r.Spec.Rules) == 0 {
		return nil
	}
	return &r.Spec.Rules[len(r.Spec.Rules)-1]
}

// fingerprint identifies the destinations of a rule as written in the file.
func fingerprint(rule *model.Rule) string {
	if rule == nil {
		return ""
	}
	b, _ := json.Marshal(rule.Destinations)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// fileWeight is the weight the file's rule gives subset.
func fileWeight(rule *model.Rule, subset string) uint32 {
	if rule == nil {
		return 0
	}
	for _, d := range rule.Destinations {
		if d.Subset == subset {
			return d.Weight
		}
	}
	return 0
}

// weightsAt splits total between stable and canary, giving the canary pct
// percent of it (rounded).
func weightsAt(stable, canary string, total, pct uint32) map[string]uint32 {
	c := uint32(math.Round(float64(total) * float64(pct) / 100))
	return map[string]uint32{stable: total - c, canary: c}
}

// overlay is what one canary sets in one route.
type overlay struct {
	route   string // namespace/name of the TrafficRoute
	by      string
	reason  string
	weights map[string]uint32
}

// apply returns m with the overlays' weights in their routes' last rules,
// and the overrides that describe them. m is not modified: changed routes
// are copies. A destination an overlay sets to 0 is left out of the rule,
// and one it gives weight that the file's rule lacks is added.
func apply(m *model.Mesh, ovs []overlay) (*model.Mesh, []model.Override) {
	if len(ovs) == 0 {
		return m, nil
	}
	byRoute := map[string]overlay{}
	for _, o := range ovs {
		byRoute[o.route] = o
	}
	routes := slices.Clone(m.Routes)
	var overrides []model.Override
	for i, r := range routes {
		o, ok := byRoute[r.Key()]
		if !ok || len(r.Spec.Rules) == 0 {
			continue
		}
		c := *r
		c.Spec.Rules = slices.Clone(r.Spec.Rules)
		last := len(c.Spec.Rules) - 1
		c.Spec.Rules[last].Destinations = setWeights(r.Spec.Rules[last].Destinations, o.weights)
		routes[i] = &c
		overrides = append(overrides, model.Override{
			Kind: model.KindTrafficRoute, Namespace: r.Namespace, Name: r.Name,
			Path:  fmt.Sprintf("spec.rules[%d].destinations", last),
			Value: c.Spec.Rules[last].Destinations, By: o.by, Reason: o.reason,
		})
	}
	objs := m.Objects()
	objs.Routes = routes
	return model.NewMesh(objs), overrides
}

// setWeights returns dests with the given subsets' weights replaced, in the
// file's order, followed by given subsets the file lacks (sorted).
func setWeights(dests []model.Destination, weights map[string]uint32) []model.Destination {
	out := make([]model.Destination, 0, len(dests)+1)
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
		out = append(out, model.Destination{Subset: s, Weight: weights[s]})
	}
	return out
}
