package ca

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	c, err := New(Config{DataDir: t.TempDir()}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWorkloadTokens(t *testing.T) {
	c, other := newTestCA(t), newTestCA(t)
	tok, err := c.MintToken("default", "reviews", "", DefaultAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caller, err := c.VerifyToken(tok, DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	if caller.Namespace != "default" || caller.ServiceAccount != "reviews" || caller.Workload != "" {
		t.Errorf("caller %+v", caller)
	}
	bound, _ := c.MintToken("default", "reviews", "reviews-v1", DefaultAudience, time.Hour)
	if caller, err := c.VerifyToken(bound, DefaultAudience); err != nil || caller.Workload != "reviews-v1" {
		t.Errorf("bound token: %+v, %v", caller, err)
	}
	expired, _ := c.mintToken(time.Now().Add(-time.Hour), "default", "reviews", "", DefaultAudience, time.Minute)
	foreign, _ := other.MintToken("default", "reviews", "", DefaultAudience, time.Hour)
	tampered := tok[:strings.LastIndex(tok, ".")+1] + "AAAA"
	for name, tc := range map[string]struct{ token, audience, want string }{
		"other audience":     {tok, "somebody-else", "audience"},
		"expired":            {expired, DefaultAudience, "expired"},
		"another CA's":       {foreign, DefaultAudience, "not this CA's"},
		"a bad signature":    {tampered, DefaultAudience, "signature"},
		"not a token at all": {"hello", DefaultAudience, "malformed"},
	} {
		if _, err := c.VerifyToken(tc.token, tc.audience); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

func TestCallerPermit(t *testing.T) {
	pods := func(ns, pod string) (string, bool) {
		return map[string]string{"reviews-v1-abc": "reviews-v1", "reviews-v2-def": "reviews-v2"}[pod], pod != "gone"
	}
	sa := Caller{Namespace: "default", ServiceAccount: "reviews"}
	for name, tc := range map[string]struct {
		caller             Caller
		ns, workload, acct string
		want               string // "" permits
	}{
		"its own service account":           {sa, "default", "reviews-v1", "reviews", ""},
		"another service account":           {sa, "default", "ratings-v1", "ratings", "runs as service account default/ratings"},
		"another namespace":                 {sa, "other", "reviews-v1", "reviews", "other/reviews"},
		"its bound workload":                {Caller{Namespace: "default", ServiceAccount: "reviews", Workload: "reviews-v1"}, "default", "reviews-v1", "reviews", ""},
		"another workload than it is bound": {Caller{Namespace: "default", ServiceAccount: "reviews", Workload: "reviews-v1"}, "default", "reviews-v2", "reviews", "bound to workload reviews-v1"},
		"its pod's workload":                {Caller{Namespace: "default", ServiceAccount: "reviews", Pod: "reviews-v1-abc"}, "default", "reviews-v1", "reviews", ""},
		"another pod's workload":            {Caller{Namespace: "default", ServiceAccount: "reviews", Pod: "reviews-v1-abc"}, "default", "reviews-v2", "reviews", "of workload default/reviews-v1"},
		"a pod the mesh does not know":      {Caller{Namespace: "default", ServiceAccount: "reviews", Pod: "gone"}, "default", "reviews-v1", "reviews", "does not know"},
	} {
		err := tc.caller.Permit(tc.ns, tc.workload, tc.acct, pods)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// fakeReviews answers TokenReviews as an API server would for the tokens
// it knows, counting the reviews.
func fakeReviews(t *testing.T, known map[string]authnv1.TokenReviewStatus, n *atomic.Int64) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		st, ok := known[tr.Spec.Token]
		if !ok {
			st = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		tr.Status = st
		return true, tr, nil
	})
	return cs
}

func TestAttestorReviewsKubernetesTokens(t *testing.T) {
	c := newTestCA(t)
	var reviews atomic.Int64
	cs := fakeReviews(t, map[string]authnv1.TokenReviewStatus{
		"reviews-pod": {Authenticated: true, Audiences: []string{"glassmesh"}, User: authnv1.UserInfo{
			Username: "system:serviceaccount:default:reviews",
			Extra:    map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"reviews-v1-abc"}}}},
		"other-audience": {Authenticated: true, Audiences: []string{"vault"}, User: authnv1.UserInfo{Username: "system:serviceaccount:default:reviews"}},
		"a-user":         {Authenticated: true, Audiences: []string{"glassmesh"}, User: authnv1.UserInfo{Username: "alice"}},
	}, &reviews)
	a := NewAttestor(func() *CA { return c }, "", KubeTokenReviewer{Client: cs})
	ctx := context.Background()
	caller, err := a.Attest(ctx, "reviews-pod")
	if err != nil || caller.Namespace != "default" || caller.ServiceAccount != "reviews" || caller.Pod != "reviews-v1-abc" {
		t.Fatalf("caller %+v, %v", caller, err)
	}
	if _, err := a.Attest(ctx, "reviews-pod"); err != nil || reviews.Load() != 1 {
		t.Errorf("a second attest asked the API server again (%d reviews, %v)", reviews.Load(), err)
	}
	for token, want := range map[string]string{"other-audience": "audience", "a-user": "not a service account", "unknown": "invalid bearer token"} {
		if _, err := a.Attest(ctx, token); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", token, err, want)
		}
	}
	// A glassmesh workload token never goes to the API server.
	before := reviews.Load()
	tok, _ := c.MintToken("default", "ratings", "", DefaultAudience, time.Hour)
	if caller, err := a.Attest(ctx, tok); err != nil || caller.ServiceAccount != "ratings" {
		t.Errorf("workload token: %+v, %v", caller, err)
	}
	if reviews.Load() != before {
		t.Error("a workload token was sent for review")
	}
	// Without Kubernetes, only workload tokens prove anything.
	if _, err := NewAttestor(func() *CA { return c }, "", nil).Attest(ctx, "reviews-pod"); err == nil {
		t.Error("a token nobody can check was accepted")
	}
}

type errReviewer struct{}

func (errReviewer) Review(context.Context, string, string) (Caller, error) {
	return Caller{}, errors.New("unreachable")
}

// The cache stays bounded whatever tokens arrive.
func TestAttestorCacheIsBounded(t *testing.T) {
	c := newTestCA(t)
	a := NewAttestor(func() *CA { return c }, "", errReviewer{})
	for i := range maxCached + 100 {
		_, _ = a.Attest(context.Background(), "token-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Now().String())
	}
	if n := len(a.cached); n > maxCached {
		t.Errorf("%d cached reviews, over %d", n, maxCached)
	}
}

// The CA's handler with attestation: no token 401, another identity's 403
// naming both, its own 200.
func TestHandlerWithAttestation(t *testing.T) {
	c := newTestCA(t)
	a := NewAttestor(func() *CA { return c }, "", nil)
	sas := map[string]string{"reviews-v1": "reviews", "ratings-v1": "ratings"}
	srv := httptest.NewServer(c.Handler(func(ns, name string) (string, bool) {
		sa, ok := sas[name]
		return sa, ok && ns == "default"
	}, a.HTTPAuthorizer(nil)))
	defer srv.Close()
	_, csr := csrPEM(t)
	post := func(workload, token string) (int, string) {
		b, _ := json.Marshal(CertificateRequest{Workload: workload, CSR: string(csr)})
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		msg, _ := body["error"].(string)
		if id, ok := body["spiffeId"].(string); ok {
			msg = id
		}
		return resp.StatusCode, msg
	}
	reviews, _ := c.MintToken("default", "reviews", "", DefaultAudience, time.Hour)
	if code, msg := post("default/reviews-v1", ""); code != http.StatusUnauthorized || !strings.Contains(msg, "credential is required") {
		t.Errorf("no token: %d %s", code, msg)
	}
	if code, msg := post("default/reviews-v1", "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("a bad token: %d %s", code, msg)
	}
	if code, msg := post("default/ratings-v1", reviews); code != http.StatusForbidden ||
		!strings.Contains(msg, "default/reviews") || !strings.Contains(msg, "default/ratings") {
		t.Errorf("reviews asking for ratings: %d %s, want 403 naming both", code, msg)
	}
	if code, msg := post("default/reviews-v1", reviews); code != http.StatusOK || msg != c.ID("default", "reviews") {
		t.Errorf("reviews asking for itself: %d %s", code, msg)
	}
}

func FuzzAttest(f *testing.F) {
	c, err := New(Config{DataDir: f.TempDir()}, discard(), nil)
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := c.MintToken("default", "reviews", "reviews-v1", DefaultAudience, time.Hour)
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJnbGFzc21lc2giLCJucyI6ImRlZmF1bHQiLCJzYSI6InJldmlld3MifQ.")
	a := NewAttestor(func() *CA { return c }, "", errReviewer{})
	f.Fuzz(func(t *testing.T, token string) {
		caller, err := a.Attest(context.Background(), token)
		if err == nil && token != tok {
			t.Fatalf("%q attested as %+v", token, caller)
		}
	})
}
