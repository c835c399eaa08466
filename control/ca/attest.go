package ca

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Caller is who a credential proves its holder to be.
type Caller struct {
	Namespace, ServiceAccount string
	// Workload, when set, is the one workload the credential is bound to
	// (a workload token minted for it).
	Workload string
	// Pod, when set, is the one pod the credential is bound to (a
	// projected service-account token).
	Pod string
	// Via names the kind of credential, for messages.
	Via    string
	Expiry time.Time
}

func (c Caller) String() string {
	s := fmt.Sprintf("service account %s/%s", c.Namespace, c.ServiceAccount)
	switch {
	case c.Workload != "":
		s += " (workload " + c.Workload + ")"
	case c.Pod != "":
		s += " (pod " + c.Pod + ")"
	}
	return s
}

// Permit says whether the caller may act as workload namespace/name, whose
// service account is serviceAccount. podWorkload, when not nil, names the
// workload a pod belongs to (pod-bound Kubernetes tokens).
func (c Caller) Permit(namespace, name, serviceAccount string, podWorkload func(namespace, pod string) (string, bool)) error {
	if c.Namespace != namespace || c.ServiceAccount != serviceAccount {
		return fmt.Errorf("the caller is %s, but workload %s/%s runs as service account %s/%s", c, namespace, name, namespace, serviceAccount)
	}
	if c.Workload != "" && c.Workload != name {
		return fmt.Errorf("the caller is %s, bound to workload %s, not %s/%s", c, c.Workload, namespace, name)
	}
	if c.Pod != "" && podWorkload != nil {
		w, ok := podWorkload(c.Namespace, c.Pod)
		if !ok {
			return fmt.Errorf("the caller is %s, a pod the mesh does not know", c)
		}
		if w != name {
			return fmt.Errorf("the caller is %s of workload %s/%s, not %s/%s", c, c.Namespace, w, namespace, name)
		}
	}
	return nil
}

// TokenReviewer asks Kubernetes who a service-account token belongs to.
type TokenReviewer interface {
	Review(ctx context.Context, token, audience string) (Caller, error)
}

// KubeTokenReviewer reviews tokens through the API server's TokenReview:
// the token must be a service account's, valid and minted for the audience.
type KubeTokenReviewer struct {
	Client kubernetes.Interface
}

// Review implements TokenReviewer.
func (k KubeTokenReviewer) Review(ctx context.Context, token, audience string) (Caller, error) {
	tr, err := k.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Caller{}, fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "not authenticated"
		}
		return Caller{}, fmt.Errorf("kubernetes token: %s", msg)
	}
	found := false
	for _, a := range st.Audiences {
		found = found || a == audience
	}
	if !found {
		return Caller{}, fmt.Errorf("kubernetes token: not minted for audience %q (it is for %v)", audience, st.Audiences)
	}
	rest, ok := strings.CutPrefix(st.User.Username, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return Caller{}, fmt.Errorf("kubernetes token: %s is not a service account", st.User.Username)
	}
	c := Caller{Namespace: ns, ServiceAccount: sa, Via: "kubernetes service-account token"}
	if pods := st.User.Extra["authentication.kubernetes.io/pod-name"]; len(pods) == 1 {
		c.Pod = pods[0]
	}
	return c, nil
}

// Attestor says who a bearer token proves its holder to be: a workload
// token the CA minted, or (with a TokenReviewer) a Kubernetes
// service-account token for the audience. Kubernetes answers are cached
// briefly (reviewTTL, never past the token's expiry), at most maxCached.
type Attestor struct {
	ca       func() *CA
	audience string
	reviewer TokenReviewer

	mu     sync.Mutex
	cached map[[32]byte]cachedReview
}

type cachedReview struct {
	caller Caller
	err    error
	until  time.Time
}

const (
	reviewTTL      = 30 * time.Second
	failedTTL      = 5 * time.Second
	maxCached      = 10000
	maxTokenLength = 16 << 10
)

// NewAttestor makes an Attestor; ca gives the CA serving now (it may be
// reloaded), reviewer may be nil (no Kubernetes).
func NewAttestor(ca func() *CA, audience string, reviewer TokenReviewer) *Attestor {
	if audience == "" {
		audience = DefaultAudience
	}
	return &Attestor{ca: ca, audience: audience, reviewer: reviewer, cached: map[[32]byte]cachedReview{}}
}

// Audience is the audience tokens must be minted for.
func (a *Attestor) Audience() string { return a.audience }

// Attest says who token proves its holder to be.
func (a *Attestor) Attest(ctx context.Context, token string) (Caller, error) {
	if token == "" {
		return Caller{}, errors.New("no token")
	}
	if len(token) > maxTokenLength {
		return Caller{}, fmt.Errorf("token of %d bytes, over %d", len(token), maxTokenLength)
	}
	if tokenIssuer(token) == TokenIssuer {
		return a.ca().VerifyToken(token, a.audience)
	}
	if a.reviewer == nil {
		return Caller{}, errors.New("not a glassmesh workload token, and Kubernetes token review is off (no Kubernetes source)")
	}
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cached[key]
	a.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.caller, c.err
	}
	caller, err := a.reviewer.Review(ctx, token, a.audience)
	if err != nil && ctx.Err() != nil {
		return Caller{}, err // the caller gave up: nothing learned
	}
	until := now.Add(reviewTTL)
	if err != nil {
		until = now.Add(failedTTL)
	} else if exp := tokenExpiry(token); !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cached) >= maxCached {
		for k, v := range a.cached {
			if !now.Before(v.until) {
				delete(a.cached, k)
			}
		}
		for k := range a.cached { // still full: forget any half
			if len(a.cached) < maxCached/2 {
				break
			}
			delete(a.cached, k)
		}
	}
	a.cached[key] = cachedReview{caller: caller, err: err, until: until}
	return caller, err
}

// unverifiedClaims reads a JWT's claims without checking anything: only to
// route a token to its verifier and bound a cache entry.
func unverifiedClaims(token string) (iss string, exp int64) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", 0
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", 0
	}
	var c struct {
		Iss string `json:"iss"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return "", 0
	}
	return c.Iss, c.Exp
}

func tokenIssuer(token string) string {
	iss, _ := unverifiedClaims(token)
	return iss
}

func tokenExpiry(token string) time.Time {
	_, exp := unverifiedClaims(token)
	if exp <= 0 {
		return time.Time{}
	}
	return time.Unix(exp, 0)
}

// BearerToken is the token of an "Authorization: Bearer" value, or "".
func BearerToken(authorization string) string {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// HTTPAuthorizer lets a request have a workload's certificate only when its
// bearer token proves a caller that may act as that workload: 401 without
// a valid token, 403 naming both identities when it proves another.
func (a *Attestor) HTTPAuthorizer(podWorkload func(namespace, pod string) (string, bool)) Authorizer {
	return func(r *http.Request, namespace, name, serviceAccount string) *StatusError {
		token := BearerToken(r.Header.Get("Authorization"))
		if token == "" {
			return &StatusError{Code: http.StatusUnauthorized, Msg: fmt.Sprintf(
				"workload %s/%s: a workload credential is required (Authorization: Bearer, a Kubernetes service-account token for audience %q or a glassmesh workload token)",
				namespace, name, a.audience)}
		}
		caller, err := a.Attest(r.Context(), token)
		if err != nil {
			return &StatusError{Code: http.StatusUnauthorized, Msg: fmt.Sprintf("workload %s/%s: %v", namespace, name, err)}
		}
		if err := caller.Permit(namespace, name, serviceAccount, podWorkload); err != nil {
			return &StatusError{Code: http.StatusForbidden, Msg: err.Error()}
		}
		return nil
	}
}
