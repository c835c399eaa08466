package canary

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/control/statedir"
)

// State is where a canary is in its lifecycle.
type State string

// States of a canary (DESIGN.md).
const (
	Progressing State = "progressing"
	Paused      State = "paused"
	Succeeded   State = "succeeded"
	RolledBack  State = "rolled-back"
	Aborted     State = "aborted"
)

// States lists every state, for metrics.
func States() []State { return []State{Progressing, Paused, Succeeded, RolledBack, Aborted} }

// Done reports whether the canary has ended: its weights no longer move.
func (s State) Done() bool { return s == Succeeded || s == RolledBack || s == Aborted }

// Verdict is what one decision did.
type Verdict string

// Verdicts: the controller's advance, hold, rollback, promote and abort
// (too many inconclusive intervals), and the start and the operator's pause,
// resume, promote and abort.
const (
	Start    Verdict = "start"
	Advance  Verdict = "advance"
	Hold     Verdict = "hold"
	Rollback Verdict = "rollback"
	Promote  Verdict = "promote"
	Abort    Verdict = "abort"
	Pause    Verdict = "pause"
	Resume   Verdict = "resume"
)

// Gate verdicts.
const (
	GatePass   = "pass"
	GateFail   = "fail"
	GateNoData = "no-data"
	GateError  = "error"
)

// GateResult is one gate's evaluation: the query, its value and the
// threshold it was held to. Value is nil when the query returned nothing.
type GateResult struct {
	Gate      string   `json:"gate"`
	Query     string   `json:"query"`
	Value     *float64 `json:"value"`
	Threshold float64  `json:"threshold"`
	Verdict   string   `json:"verdict"`
	Message   string   `json:"message,omitempty"`
}

// Decision is the record of one change or evaluation: the evidence and
// what was done about it.
type Decision struct {
	At            time.Time         `json:"at"`
	Step          int               `json:"step"`
	Verdict       Verdict           `json:"verdict"`
	WeightsBefore map[string]uint32 `json:"weightsBefore"`
	WeightsAfter  map[string]uint32 `json:"weightsAfter"`
	// Requests is the canary's requests in Window, counted once each.
	Requests float64      `json:"requests"`
	Window   string       `json:"window,omitempty"`
	Gates    []GateResult `json:"gates"`
	Reason   string       `json:"reason"`
	By       string       `json:"by"` // "controller", "api" or "annotation"

	// unavailable marks a Hold because the metrics could not be read: it
	// does not count towards maxInconclusive.
	unavailable bool
}

// Status is a canary's state and history, as /api/canaries shows it and as
// it is persisted in the data dir.
type Status struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Route     string   `json:"route"`
	Stable    string   `json:"stable"`
	Canary    string   `json:"canary"`
	Steps     []uint32 `json:"steps"`
	State     State    `json:"state"`
	// Step is the 1-based index of the current step in Steps.
	Step    int               `json:"step"`
	Weights map[string]uint32 `json:"weights"`
	// TotalWeight is what stable and canary hold together in the file's
	// rule: the canary's step percentages are shares of it.
	TotalWeight      uint32    `json:"totalWeight"`
	StepStartedAt    time.Time `json:"stepStartedAt"`
	NextEvaluationAt time.Time `json:"nextEvaluationAt,omitzero"`
	Inconclusive     int       `json:"inconclusive"`
	Message          string    `json:"message"`
	// FileRule fingerprints the route's last rule in the file when the
	// canary started; once it ends, its weights stay until the file's rule
	// differs from this.
	FileRule string `json:"fileRule"`
	// Frozen is why an error-budget policy paused the canary, while it
	// does (Config.Frozen); it resumes when that ends.
	Frozen    string     `json:"frozen,omitempty"`
	Decisions []Decision `json:"decisions"`
}

// Key is "namespace/name".
func (s *Status) Key() string { return s.Namespace + "/" + s.Name }

// clone copies the status deeply enough for a reader outside the lock.
func (s *Status) clone() Status {
	c := *s
	c.Weights = cloneWeights(s.Weights)
	c.Steps = append([]uint32(nil), s.Steps...)
	c.Decisions = append([]Decision(nil), s.Decisions...)
	return c
}

func cloneWeights(w map[string]uint32) map[string]uint32 {
	c := make(map[string]uint32, len(w))
	for k, v := range w {
		c[k] = v
	}
	return c
}

// StateStore persists canary states, so a restarted controller, or the
// next leader of several replicas, resumes where the last one was. The
// controller calls it with its lock held: Save and Remove must not block
// for long (a store over the network queues the write).
type StateStore interface {
	// Load returns every saved state.
	Load() ([]*Status, error)
	// Save persists one state (the controller keeps st; copy what is kept).
	Save(st *Status) error
	// Remove forgets the state of a canary gone from the config.
	Remove(key string) error
}

// DirStore is the StateStore of one replica: a JSON file per canary in a
// directory, written atomically. Empty Dir keeps nothing.
type DirStore struct{ Dir string }

// Load implements StateStore.
func (d DirStore) Load() ([]*Status, error) {
	return statedir.Load[Status](statedir.Dir(d.Dir), "canary")
}

// Save implements StateStore.
func (d DirStore) Save(st *Status) error { return statedir.Dir(d.Dir).Save(st.Key(), st) }

// Remove implements StateStore.
func (d DirStore) Remove(key string) error { return statedir.Dir(d.Dir).Remove(key) }

// ObjectStore is a StateStore over objects that hold each canary's state as
// JSON, such as the Canary objects' status on Kubernetes (control/source's
// CanaryStatuses and PatchCanaryStatus): the state of several replicas.
type ObjectStore struct {
	// List returns the JSON of every saved state, by "namespace/name".
	List func() (map[string][]byte, error)
	// Patch writes (or queues) a JSON merge patch of one canary's state:
	// the fields to set, null for those to remove.
	Patch func(namespace, name string, patch []byte) error
}

// MaxObjectDecisions bounds the decisions an ObjectStore keeps per canary:
// a Kubernetes object must stay well within etcd's 1.5 MB.
const MaxObjectDecisions = 100

// Load implements StateStore.
func (o ObjectStore) Load() ([]*Status, error) {
	objs, err := o.List()
	if err != nil {
		return nil, err
	}
	out := make([]*Status, 0, len(objs))
	for key, b := range objs {
		st := &Status{}
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("canary state of %s: %w", key, err)
		}
		st.Namespace, st.Name, _ = strings.Cut(key, "/")
		out = append(out, st)
	}
	return out, nil
}

// Save implements StateStore: the whole state (the last MaxObjectDecisions
// decisions) as one merge patch.
func (o ObjectStore) Save(st *Status) error {
	c := *st
	if n := len(c.Decisions) - MaxObjectDecisions; n > 0 {
		c.Decisions = c.Decisions[n:]
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if c.NextEvaluationAt.IsZero() {
		fields["nextEvaluationAt"] = nil // a merge patch leaves alone what it does not null
	}
	if b, err = json.Marshal(fields); err != nil {
		return err
	}
	return o.Patch(st.Namespace, st.Name, b)
}

// Remove implements StateStore: the state goes with its object.
func (o ObjectStore) Remove(string) error { return nil }
