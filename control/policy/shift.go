// Package policy carries out SLOPolicies: the subsets of a route that burn
// their SLO's error budget lose their weight to the subsets that do not,
// get it back step by step once they stop burning, and an exhausted budget
// freezes the service's canaries.
//
// This file is the decision of one evaluation, a pure function of the
// policy, the route's weights in the file, each subset's state and the
// evidence of its burn, so every rule can be tested without a clock or a
// metrics store.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Phase is where a subset stands with its policy.
type Phase string

const (
	// Healthy: the subset has the weight the file gives it.
	Healthy Phase = "healthy"
	// Drained: the subset burned; its weight went to the healthy ones.
	Drained Phase = "drained"
	// Recovering: the subset stopped burning and gets its weight back in
	// steps.
	Recovering Phase = "recovering"
)

// SubsetState is one subset's place in its policy, persisted across
// restarts.
type SubsetState struct {
	Phase Phase `json:"phase"`
	// Since is when the subset entered Phase.
	Since time.Time `json:"since"`
	// QuietSince is, while Drained, since when its burn has stayed under
	// the ticket threshold (zero: it has not).
	QuietSince time.Time `json:"quietSince,omitzero"`
	// Step is, while Recovering, the index of the recovery step it is at;
	// StepAt when it got there.
	Step   int       `json:"step,omitempty"`
	StepAt time.Time `json:"stepAt,omitzero"`
}

// Evidence is what one evaluation measured of one subset's traffic.
type Evidence struct {
	// Requests in the fast window (the last interval).
	Requests float64 `json:"requests"`
	// Burn rates by window ("10s", "5m", "1h"): the subset's error ratio
	// over the window divided by the SLO's allowed error ratio. A window
	// without requests is absent.
	BurnRates map[string]float64 `json:"burnRates"`
	// Burning: the subset crossed the policy's alert threshold, with
	// enough requests in the fast window (FastBurning) or on both of the
	// alert's own windows (AlertBurning).
	Burning      bool `json:"burning"`
	FastBurning  bool `json:"fastBurning,omitempty"`
	AlertBurning bool `json:"alertBurning,omitempty"`
	// Quiet: its burn is under the ticket threshold on every window with
	// requests (a subset without traffic is quiet: nothing says it burns).
	Quiet bool `json:"quiet"`
	// Why says what made it burning or not, for the decision record.
	Why string `json:"why,omitempty"`
}

// Shift is a policy's shiftTraffic, resolved for one evaluation.
type Shift struct {
	MaxShift          uint32 // percent of the rule's total weight the policy may move
	MinHealthySubsets int
	RecoverAfter      time.Duration
	RecoverySteps     []uint32 // percent of the file weight, increasing, ending at 100
	RecoveryInterval  time.Duration
	// AlertShortWindow is the short window of the alert's pair: its
	// burn counts only for a subset that has been in its phase that long,
	// so errors from before a drain cannot drain it again once it is back.
	AlertShortWindow time.Duration
}

// Subset is one destination of the route's last rule.
type Subset struct {
	Name       string
	FileWeight uint32 // what the file gives it
	// Serving: the subset has endpoints to send traffic to; weight never
	// moves to a subset that has none.
	Serving bool
}

// Change is one subset's transition in an evaluation.
type Change struct {
	Subset string `json:"subset"`
	From   Phase  `json:"from"`
	To     Phase  `json:"to"`
	Step   int    `json:"step,omitempty"` // the recovery step it moved to
	Reason string `json:"reason"`
}

// Outcome is the result of one evaluation.
type Outcome struct {
	States  map[string]SubsetState
	Weights map[string]uint32
	Changes []Change
	// Held are the drains the policy wanted but did not make, with why.
	Held []Change
}

// Decide moves each subset's state on by one evaluation at now and
// computes the route's weights. states is not modified.
func Decide(sh Shift, subsets []Subset, states map[string]SubsetState, ev map[string]Evidence, now time.Time) Outcome {
	out := Outcome{States: make(map[string]SubsetState, len(subsets))}
	for _, s := range subsets {
		st, ok := states[s.Name]
		if !ok || st.Phase == "" {
			st = SubsetState{Phase: Healthy, Since: now}
		}
		out.States[s.Name] = st
	}
	// Subsets that burn again during recovery drop back to zero at once:
	// they had been drained before, so the healthy ones are already
	// carrying them.
	burns := func(st SubsetState, e Evidence) bool {
		return e.FastBurning || e.AlertBurning && now.Sub(st.Since) >= sh.AlertShortWindow
	}
	for _, s := range subsets {
		st, e := out.States[s.Name], ev[s.Name]
		if st.Phase == Recovering && burns(st, e) {
			out.change(s.Name, SubsetState{Phase: Drained, Since: now}, 0, "burned again during recovery step "+fmt.Sprint(st.Step+1)+": "+e.Why)
		}
	}
	// New drains, worst first, while enough healthy subsets remain.
	var burning []string
	for _, s := range subsets {
		if st := out.States[s.Name]; st.Phase == Healthy && burns(st, ev[s.Name]) {
			burning = append(burning, s.Name)
		}
	}
	sort.SliceStable(burning, func(i, j int) bool { return worst(ev[burning[i]]) > worst(ev[burning[j]]) })
	for _, name := range burning {
		left := healthyAfter(subsets, out.States, func(s Subset) bool { return burns(out.States[s.Name], ev[s.Name]) }, name)
		if left < sh.MinHealthySubsets {
			out.Held = append(out.Held, Change{Subset: name, From: Healthy, To: Drained,
				Reason: fmt.Sprintf("%s; held: draining it would leave %d healthy subset(s) with weight and endpoints, fewer than minHealthySubsets %d",
					ev[name].Why, left, sh.MinHealthySubsets)})
			continue
		}
		out.change(name, SubsetState{Phase: Drained, Since: now}, 0, ev[name].Why)
	}
	// Drained subsets that stay quiet for RecoverAfter start recovering;
	// recovering ones take their next step after each interval.
	for _, s := range subsets {
		st, e := out.States[s.Name], ev[s.Name]
		switch st.Phase {
		case Drained:
			if !e.Quiet {
				st.QuietSince = time.Time{}
				out.States[s.Name] = st
				continue
			}
			if st.QuietSince.IsZero() {
				st.QuietSince = now
				out.States[s.Name] = st
			}
			if now.Sub(st.QuietSince) >= sh.RecoverAfter && !st.Since.Equal(now) {
				out.change(s.Name, SubsetState{Phase: Recovering, Since: now, StepAt: now}, 0,
					fmt.Sprintf("quiet (under the ticket threshold) for %s", now.Sub(st.QuietSince).Round(time.Second)))
			}
		case Recovering:
			if now.Sub(st.StepAt) < sh.RecoveryInterval {
				continue
			}
			if st.Step+1 >= len(sh.RecoverySteps) {
				out.change(s.Name, SubsetState{Phase: Healthy, Since: now}, 0, "recovered: every step held without burning")
				continue
			}
			out.change(s.Name, SubsetState{Phase: Recovering, Since: st.Since, Step: st.Step + 1, StepAt: now}, st.Step+1,
				fmt.Sprintf("held step %d (%d%%) for %s without burning", st.Step+1, sh.RecoverySteps[st.Step], sh.RecoveryInterval))
		}
	}
	out.Weights = weights(sh, subsets, out.States)
	return out
}

func (o *Outcome) change(subset string, to SubsetState, step int, reason string) {
	from := o.States[subset].Phase
	o.States[subset] = to
	o.Changes = append(o.Changes, Change{Subset: subset, From: from, To: to.Phase, Step: step, Reason: reason})
}

// worst is a subset's highest burn rate, to drain the worst first.
func worst(e Evidence) float64 {
	w := 0.0
	for _, b := range e.BurnRates {
		w = max(w, b)
	}
	return w
}

// healthyAfter counts the subsets that would still take traffic if
// drained were drained: healthy, not burning themselves, with file weight
// and endpoints.
func healthyAfter(subsets []Subset, states map[string]SubsetState, burning func(Subset) bool, drained string) int {
	n := 0
	for _, s := range subsets {
		if s.Name != drained && states[s.Name].Phase == Healthy && !burning(s) && s.FileWeight > 0 && s.Serving {
			n++
		}
	}
	return n
}

// weights is the route's weights for the subsets' states: a drained subset
// gets nothing, a recovering one its step's share of its file weight, and
// what they give up goes to the healthy subsets in proportion to their file
// weights; the total never changes, and no more than MaxShift percent of
// it moves. Subsets that are not healthy but also cannot give (no healthy
// receiver) keep their file weight.
func weights(sh Shift, subsets []Subset, states map[string]SubsetState) map[string]uint32 {
	var total, receiving uint32
	for _, s := range subsets {
		total += s.FileWeight
		if st := states[s.Name]; st.Phase == Healthy && s.FileWeight > 0 && s.Serving {
			receiving += s.FileWeight
		}
	}
	w := make(map[string]uint32, len(subsets))
	for _, s := range subsets {
		w[s.Name] = s.FileWeight
	}
	if receiving == 0 {
		return w // nowhere to move weight to
	}
	// What each non-healthy subset gives up.
	give := map[string]uint32{}
	var moved uint32
	for _, s := range subsets {
		st := states[s.Name]
		keep := s.FileWeight
		switch st.Phase {
		case Drained:
			keep = 0
		case Recovering:
			keep = s.FileWeight * sh.RecoverySteps[min(st.Step, len(sh.RecoverySteps)-1)] / 100
		}
		give[s.Name] = s.FileWeight - keep
		moved += give[s.Name]
	}
	// At most MaxShift percent of the total moves: scale every giver back
	// by the same share, rounding down, so the cap holds.
	if limit := total * sh.MaxShift / 100; moved > limit {
		var scaled uint32
		for name, g := range give {
			give[name] = uint32(uint64(g) * uint64(limit) / uint64(moved))
			scaled += give[name]
		}
		moved = scaled
	}
	for name, g := range give {
		w[name] -= g
	}
	// Hand the moved weight to the receivers by their file weights; the
	// remainder of the rounding goes to the largest receiver (first by
	// name on a tie), so the total stays exact.
	var handed uint32
	var largest string
	names := make([]string, 0, len(subsets))
	for _, s := range subsets {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	byName := map[string]Subset{}
	for _, s := range subsets {
		byName[s.Name] = s
	}
	for _, name := range names {
		s := byName[name]
		if states[name].Phase != Healthy || s.FileWeight == 0 || !s.Serving {
			continue
		}
		share := uint32(uint64(moved) * uint64(s.FileWeight) / uint64(receiving))
		w[name] += share
		handed += share
		if largest == "" || s.FileWeight > byName[largest].FileWeight {
			largest = name
		}
	}
	w[largest] += moved - handed
	return w
}

// Summary writes weights as "v1=100 v2=0", by subset name.
func Summary(w map[string]uint32) string {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, w[n])
	}
	return strings.Join(parts, " ")
}
