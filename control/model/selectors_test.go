package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The selector index answers as trying every pair does, on random meshes.
func TestSelectorIndexAgreesWithAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	labels := func() map[string]string {
		m := map[string]string{}
		for range rng.IntN(4) {
			m[[]string{"app", "version", "tier"}[rng.IntN(3)]] = fmt.Sprint(rng.IntN(3))
		}
		return m
	}
	for range 200 {
		var objs Objects
		for i := range rng.IntN(12) {
			objs.Services = append(objs.Services, &Service{Meta: Meta{Name: fmt.Sprintf("s%d", i), Namespace: []string{"a", "b"}[rng.IntN(2)]},
				Spec: ServiceSpec{Selector: labels()}})
		}
		for i := range rng.IntN(20) {
			objs.Workloads = append(objs.Workloads, &Workload{Meta: Meta{Name: fmt.Sprintf("w%d", i), Namespace: []string{"a", "b"}[rng.IntN(2)], Labels: labels()}})
		}
		m := NewMesh(objs)
		for _, s := range m.Services {
			extra := labels()
			var want []*Workload
			for _, w := range m.Workloads {
				if w.Namespace == s.Namespace && len(s.Spec.Selector) > 0 && matches(w.Labels, s.Spec.Selector) && matches(w.Labels, extra) {
					want = append(want, w)
				}
			}
			if got := m.WorkloadsOf(s, extra); !slices.Equal(got, want) {
				t.Fatalf("WorkloadsOf(%v, %v) = %v, want %v", s.Spec.Selector, extra, got, want)
			}
		}
		for _, w := range m.Workloads {
			var want []*Service
			for _, s := range m.Services {
				if s.Namespace == w.Namespace && len(s.Spec.Selector) > 0 && matches(w.Labels, s.Spec.Selector) {
					want = append(want, s)
				}
			}
			if got := m.ServicesOf(w); !slices.Equal(got, want) {
				t.Fatalf("ServicesOf(%v) = %v, want %v", w.Labels, got, want)
			}
		}
	}
}
