package canary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// annotations are the Canary objects' glassmesh.io/action annotations next
// to their status (objects): what a follower writes and the leader takes.
type annotations struct {
	mu  sync.Mutex
	val map[string]string
}

func (a *annotations) ask(_ context.Context, ns, name string, req []byte) error {
	if ns+"/"+name != "default/reviews" {
		return fmt.Errorf("%w: Canary %s/%s", ErrNotFound, ns, name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.val[ns+"/"+name] = string(req)
	return nil
}

func (a *annotations) take() (key, value string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.val {
		delete(a.val, k)
		return k, v, true
	}
	return "", "", false
}

// An action asked of a follower's API is carried out by the leader, and the
// follower answers as the leader would have: with the state after it, or
// the leader's error and its status code; with no leader, it says so after
// its timeout and the request stays for the next leader.
func TestAFollowerForwardsActionsToTheLeader(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 10, func() float64 { return 0 })
	m := loadMesh(t, meshYAML)
	objs := newObjects()
	leader, err := New(Config{Store: objs.store(), Querier: db.querier(), Tick: time.Hour}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	leader.Overlay(m)
	follower, err := New(Config{Store: objs.store(), Querier: db.querier(), Tick: time.Hour, Follower: true}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	follower.Overlay(m)

	ann := &annotations{val: map[string]string{}}
	get := func(ns, name string) ([]byte, bool) {
		objs.mu.Lock()
		defer objs.mu.Unlock()
		d, ok := objs.docs[ns+"/"+name]
		if !ok {
			return nil, false
		}
		b, err := json.Marshal(d)
		return b, err == nil
	}
	// The leader's side: its Requests take the annotation, act, record
	// the answer in the status and remove the annotation.
	reqs := &Requests{Controller: leader, Logger: discard(),
		Pending: func() []PendingAction {
			ann.mu.Lock()
			defer ann.mu.Unlock()
			var out []PendingAction
			for k, v := range ann.val {
				ns, name, _ := strings.Cut(k, "/")
				out = append(out, PendingAction{Namespace: ns, Name: name, Value: v})
			}
			return out
		},
		Answer: func(p PendingAction, answer []byte) error {
			key := p.Namespace + "/" + p.Name
			if answer != nil {
				var doc map[string]any
				_ = json.Unmarshal(answer, &doc)
				objs.mu.Lock()
				objs.docs[key]["lastAction"] = doc
				objs.mu.Unlock()
			}
			ann.mu.Lock()
			if ann.val[key] == p.Value {
				delete(ann.val, key)
			}
			ann.mu.Unlock()
			return nil
		},
	}
	leading := make(chan struct{})
	stopLeading := sync.OnceFunc(func() { close(leading) })
	t.Cleanup(stopLeading)
	go func() {
		for {
			select {
			case <-leading:
				return
			case <-time.After(10 * time.Millisecond):
			}
			reqs.Serve()
		}
	}()

	h := Handler{Controller: follower, Forward: Forwarder{Ask: ann.ask, Get: get, Replica: "replica-b", Poll: 5 * time.Millisecond}.Forward, ForwardTimeout: 5 * time.Second}
	serve := func(h Handler) string {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /api/canaries/{namespace}/{name}/{action}", h.Act)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	url := serve(h)
	post := func(path string) (int, Status, string) {
		resp, err := http.Post(url+"/api/canaries/"+path, "application/json", strings.NewReader(`{"reason":"maintenance window"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st Status
		var e struct{ Error string }
		if resp.StatusCode == http.StatusOK {
			_ = json.NewDecoder(resp.Body).Decode(&st)
		} else {
			_ = json.NewDecoder(resp.Body).Decode(&e)
		}
		return resp.StatusCode, st, e.Error
	}

	code, st, msg := post("default/reviews/pause")
	if code != http.StatusOK || st.State != Paused || st.Key() != "default/reviews" {
		t.Fatalf("pause through the follower: %d %s %q, want 200 and paused", code, st.State, msg)
	}
	if d := st.Decisions[len(st.Decisions)-1]; d.Verdict != Pause || d.By != "api" || d.Reason != "maintenance window" {
		t.Errorf("last decision %+v, want the pause by the api with its reason", d)
	}
	if led, _ := leader.Get("default", "reviews"); led.State != Paused {
		t.Errorf("the leader's canary is %s, want paused", led.State)
	}
	if code, _, msg := post("default/reviews/pause"); code != http.StatusConflict || !strings.Contains(msg, "paused") {
		t.Errorf("pausing a paused canary through the follower: %d %q, want 409 naming the state", code, msg)
	}
	if code, _, _ := post("default/nope/pause"); code != http.StatusNotFound {
		t.Errorf("an unknown canary through the follower: %d, want 404", code)
	}
	if code, _, msg := post("default/reviews/jump"); code != http.StatusBadRequest || !strings.Contains(msg, "unknown action") {
		t.Errorf("an unknown action through the follower: %d %q, want 400", code, msg)
	}

	stopLeading()
	h.ForwardTimeout = 200 * time.Millisecond
	url = serve(h)
	if code, _, msg := post("default/reviews/resume"); code != http.StatusGatewayTimeout || !strings.Contains(msg, "leader") {
		t.Errorf("with no leader: %d %q, want 504 saying the leader has not answered", code, msg)
	}
	if _, v, ok := ann.take(); !ok || !strings.Contains(v, `"resume"`) {
		t.Errorf("the unanswered request is gone from the Canary (%q): the next leader could not take it", v)
	}
}

func TestParseActionRequest(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ActionRequest
		wantErr string
	}{
		{in: "promote", want: ActionRequest{Action: Promote, By: ByAnnotation}},
		{in: " pause\n", want: ActionRequest{Action: Pause, By: ByAnnotation}},
		{in: `{"id":"ab12","action":"abort","reason":"bad","by":"api","replica":"gm-1"}`, want: ActionRequest{ID: "ab12", Action: Abort, Reason: "bad", By: "api", Replica: "gm-1"}},
		{in: "rollout", wantErr: `unknown action "rollout"`},
		{in: "", wantErr: "unknown action"},
		{in: `{"action":`, wantErr: "glassmesh.io/action: unexpected end of JSON input"},
		{in: `{"action":"start"}`, wantErr: `unknown action "start"`},
	} {
		got, err := ParseActionRequest(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseActionRequest(f *testing.F) {
	for _, s := range []string{"promote", `{"id":"1","action":"pause"}`, `{"action":1}`, "{", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		req, err := ParseActionRequest(s)
		if err == nil {
			switch req.Action {
			case Promote, Abort, Pause, Resume:
			default:
				t.Fatalf("accepted action %q", req.Action)
			}
			if req.By == "" {
				t.Fatal("no By")
			}
		}
	})
}
