package model

import "time"

// SLOPolicy turns an SLO's burn into routing: the subsets of a route that
// burn the SLO's budget lose their weight to those that do not, and get it
// back step by step once they stop burning; an exhausted budget freezes the
// service's canaries.
type SLOPolicy struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   SLOPolicySpec `yaml:"spec" json:"spec"`
	Origin Origin        `yaml:"-" json:"-"`
}

// SLOPolicySpec is the spec of an SLOPolicy.
type SLOPolicySpec struct {
	SLO      string         `yaml:"slo" json:"slo"` // an SLO in the same namespace
	Actions  []PolicyAction `yaml:"actions" json:"actions"`
	Recovery PolicyRecovery `yaml:"recovery,omitempty" json:"recovery"`
	// DryRun records what the policy would do without doing it.
	DryRun bool `yaml:"dryRun,omitempty" json:"dryRun,omitempty"`
}

// Policy triggers: the SLO's page-level or ticket-level burn-rate alert
// (per subset, for shiftTraffic), or its whole error budget spent.
const (
	WhenPage            = "page"
	WhenTicket          = "ticket"
	WhenBudgetExhausted = "budgetExhausted"
)

// PolicyAction is what a policy does when its trigger holds: exactly one
// of ShiftTraffic (with page or ticket) or FreezeCanaries (with
// budgetExhausted).
type PolicyAction struct {
	When           string        `yaml:"when" json:"when"`
	ShiftTraffic   *ShiftTraffic `yaml:"shiftTraffic,omitempty" json:"shiftTraffic,omitempty"`
	FreezeCanaries bool          `yaml:"freezeCanaries,omitempty" json:"freezeCanaries,omitempty"`
}

// ShiftTraffic moves the weight of burning subsets of a route's last rule
// to the subsets that are not burning.
type ShiftTraffic struct {
	Route string `yaml:"route" json:"route"` // a TrafficRoute of the SLO's service, same namespace
	// MaxShift is the most percent of the rule's total weight the policy
	// may move away from where the file puts it.
	MaxShift uint32 `yaml:"maxShift,omitempty" json:"maxShift"`
	// MinHealthySubsets is how many subsets must stay with weight: a
	// subset is never drained when fewer would be left.
	MinHealthySubsets uint32 `yaml:"minHealthySubsets,omitempty" json:"minHealthySubsets"`
	// MinRequests a subset must have had in the last evaluation interval
	// for its burn over that interval alone (the fast path) to drain it;
	// with fewer, only the SLO's page or ticket alert windows can.
	MinRequests uint32 `yaml:"minRequests,omitempty" json:"minRequests"`
}

// PolicyRecovery is how a drained subset gets its weight back: after its
// burn stays under the ticket threshold for After, its file weight returns
// in Steps (percent of it), each held Interval; it burns again, it drops
// back to zero.
type PolicyRecovery struct {
	After    Duration `yaml:"after,omitempty" json:"after"`
	Steps    []uint32 `yaml:"steps,omitempty" json:"steps"`
	Interval Duration `yaml:"interval,omitempty" json:"interval"`
}

// SLOPolicy defaults, as in the example.
const (
	DefaultPolicyMaxShift          = 100
	DefaultPolicyMinHealthySubsets = 1
	DefaultPolicyMinRequests       = 20
	DefaultPolicyRecoveryAfter     = 10 * time.Minute
	DefaultPolicyRecoveryInterval  = 2 * time.Minute
)

// DefaultPolicyRecoverySteps are the recovery steps of a policy that names
// none.
func DefaultPolicyRecoverySteps() []uint32 { return []uint32{25, 50, 100} }

// ShiftAction is the policy's shiftTraffic action, or nil.
func (p *SLOPolicy) ShiftAction() *PolicyAction {
	for i := range p.Spec.Actions {
		if p.Spec.Actions[i].ShiftTraffic != nil {
			return &p.Spec.Actions[i]
		}
	}
	return nil
}

// FreezesCanaries says whether the policy pauses its service's canaries
// while the SLO's budget is exhausted.
func (p *SLOPolicy) FreezesCanaries() bool {
	for _, a := range p.Spec.Actions {
		if a.FreezeCanaries {
			return true
		}
	}
	return false
}
