package canary

import (
	"math"

	"github.com/glassmesh/glassmesh/control/model"
)

// lastRule returns the route's last rule (the one a canary drives), or nil.
func lastRule(r *model.TrafficRoute) *model.Rule {
	if r == nil || len(r.Spec.Rules) == 0 {
		return nil
	}
	return &r.Spec.Rules[len(r.Spec.Rules)-1]
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
