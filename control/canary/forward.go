package canary

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// With several replicas only the leader acts on a canary. An action asked
// of a follower is forwarded through the Canary object, which every
// replica watches: the follower writes an ActionRequest into the Canary's
// AnnotationAction annotation; the leader acts on it, records its answer
// (an ActionAnswer) in the status field lastAction together with the new
// state, and removes the annotation; the follower answers its caller once
// its own cache shows that answer. An operator can ask the same with
// kubectl: kubectl annotate canary NAME glassmesh.io/action=promote.

// AnnotationAction is the Canary annotation that asks the leader for an
// action: a JSON ActionRequest, or just the action's name.
const AnnotationAction = "glassmesh.io/action"

// ByAnnotation is the By of decisions asked through AnnotationAction by
// hand; forwarded API calls say "api".
const ByAnnotation = "annotation"

// ActionRequest is an operator's action asked of the leader.
type ActionRequest struct {
	// ID tells the answer to this request from others (forwarded requests
	// have one; an annotation written by hand need not).
	ID     string  `json:"id,omitempty"`
	Action Verdict `json:"action"`
	Reason string  `json:"reason,omitempty"`
	// By is the decision's By: "api" for a forwarded API call, else
	// ByAnnotation.
	By string `json:"by,omitempty"`
	// Replica names the replica that forwarded the request.
	Replica string `json:"replica,omitempty"`
}

// ParseActionRequest reads an AnnotationAction value: a JSON ActionRequest
// or a bare action name ("promote").
func ParseActionRequest(value string) (ActionRequest, error) {
	v := strings.TrimSpace(value)
	var req ActionRequest
	if strings.HasPrefix(v, "{") {
		if err := json.Unmarshal([]byte(v), &req); err != nil {
			return req, fmt.Errorf("%s: %w", AnnotationAction, err)
		}
	} else {
		req.Action = Verdict(v)
	}
	if req.By == "" {
		req.By = ByAnnotation
	}
	switch req.Action {
	case Promote, Abort, Pause, Resume:
		return req, nil
	}
	return req, fmt.Errorf("%s: unknown action %q: want promote, abort, pause or resume", AnnotationAction, req.Action)
}

// ActionAnswer is the leader's answer to an ActionRequest, as the API
// would have given it.
type ActionAnswer struct {
	ActionRequest
	Code  int       `json:"code"` // HTTP status: 200, or 400, 404, 409
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// Answer carries out a request on the leader and returns the answer, and
// whether the weights changed (the caller pushes then). ErrNotLeader means
// it was not answered: the next leader will.
func (c *Controller) Answer(namespace, name string, req ActionRequest, parseErr error) (ActionAnswer, bool, error) {
	ans := ActionAnswer{ActionRequest: req, Code: http.StatusOK, At: time.Now().UTC()}
	if parseErr != nil {
		if !c.Leading() {
			return ans, false, ErrNotLeader
		}
		ans.Code, ans.Error = http.StatusBadRequest, parseErr.Error()
		return ans, false, nil
	}
	by := req.By
	if by != "api" {
		by = ByAnnotation
	}
	_, changed, err := c.ActBy(namespace, name, req.Action, req.Reason, by)
	if errors.Is(err, ErrNotLeader) {
		return ans, false, err
	}
	if err != nil {
		ans.Code, ans.Error = httpStatus(err), err.Error()
	}
	return ans, changed, nil
}

// AnswerError is an action's failure as the leader answered it.
type AnswerError struct {
	Code int
	Msg  string
}

func (e *AnswerError) Error() string { return e.Msg }

// ErrNoAnswer: a forwarded action was not answered in time (no leader, or
// a slow one); it stays on the Canary for the leader to take.
var ErrNoAnswer = errors.New("the leader has not answered yet")

// ErrForward: the request could not be written where the leader reads it.
var ErrForward = errors.New("forwarding the action to the leader failed")

// Forwarder forwards a follower's actions to the leader through the Canary
// objects (see AnnotationAction).
type Forwarder struct {
	// Ask writes the request (JSON) into the Canary's annotation.
	Ask func(ctx context.Context, namespace, name string, request []byte) error
	// Get returns the canary's persisted state (JSON, ObjectStore's) as
	// this replica sees it, and whether this replica sees the canary.
	Get func(namespace, name string) ([]byte, bool)
	// Replica names this replica in the request.
	Replica string
	// Poll is how often Get is read while waiting. Default 50ms.
	Poll time.Duration
}

// Forward asks the leader for action and waits, until ctx ends, for its
// answer; the Status returned is the state the leader recorded with it.
func (f Forwarder) Forward(ctx context.Context, namespace, name string, action Verdict, reason string) (Status, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	req := ActionRequest{ID: hex.EncodeToString(id[:]), Action: action, Reason: reason, By: "api", Replica: f.Replica}
	b, err := json.Marshal(req)
	if err != nil {
		return Status{}, err
	}
	if err := f.Ask(ctx, namespace, name, b); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Status{}, err
		}
		return Status{}, fmt.Errorf("%w: %w", ErrForward, err)
	}
	poll := f.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if raw, ok := f.Get(namespace, name); ok {
			var got struct {
				Status
				LastAction *ActionAnswer `json:"lastAction"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				return Status{}, fmt.Errorf("%w: canary state of %s/%s: %w", ErrForward, namespace, name, err)
			}
			if a := got.LastAction; a != nil && a.ID == req.ID {
				if a.Code != http.StatusOK {
					return Status{}, &AnswerError{Code: a.Code, Msg: a.Error}
				}
				st := got.Status
				st.Namespace, st.Name = namespace, name
				return st, nil
			}
		} // not in this replica's cache yet (Ask found it): wait
		select {
		case <-ctx.Done():
			return Status{}, fmt.Errorf("%w: %s is asked on the Canary (annotation %s) and will be carried out when the leader takes it", ErrNoAnswer, action, AnnotationAction)
		case <-t.C:
		}
	}
}
