package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenIssuer is the issuer of workload tokens the CA mints.
const TokenIssuer = "glassmesh"

// DefaultAudience is the audience workload tokens and Kubernetes projected
// service-account tokens must be minted for.
const DefaultAudience = "glassmesh"

// workloadClaims are what a workload token says: the namespace and service
// account it may act for and, when bound, the one workload.
type workloadClaims struct {
	jwt.RegisteredClaims
	Namespace      string `json:"ns"`
	ServiceAccount string `json:"sa"`
	Workload       string `json:"workload,omitempty"`
}

// MintToken makes a workload token: a JWT signed with the CA's key that
// lets its holder ask for certificates and xDS config of workloads of
// namespace/serviceAccount (only workload, if given), until ttl passes.
// It is what a workload outside Kubernetes presents instead of a projected
// service-account token. Anyone the CA's key is shared with (replicas) can
// verify it; rotating the CA key revokes every token.
func (c *CA) MintToken(namespace, serviceAccount, workload, audience string, ttl time.Duration) (string, error) {
	return c.mintToken(time.Now(), namespace, serviceAccount, workload, audience, ttl)
}

func (c *CA) mintToken(now time.Time, namespace, serviceAccount, workload, audience string, ttl time.Duration) (string, error) {
	if namespace == "" || serviceAccount == "" {
		return "", errors.New("a workload token needs a namespace and a service account")
	}
	if ttl <= 0 {
		return "", errors.New("a workload token needs a positive lifetime")
	}
	method, key, err := signingMethod(c.signer)
	if err != nil {
		return "", err
	}
	claims := workloadClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   c.ID(namespace, serviceAccount),
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-clockSkew)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Namespace:      namespace,
		ServiceAccount: serviceAccount,
		Workload:       workload,
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = c.keyID()
	return t.SignedString(key)
}

// VerifyToken checks a workload token against this CA's key and audience
// and says who it lets its holder act as.
func (c *CA) VerifyToken(token, audience string) (Caller, error) {
	var claims workloadClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != c.keyID() {
			return nil, fmt.Errorf("signed by key %q, not this CA's (%s): minted before a CA rotation, or by another mesh", kid, c.keyID())
		}
		return c.cert.PublicKey, nil
	},
		jwt.WithIssuer(TokenIssuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithValidMethods([]string{"ES256", "ES384", "ES512", "RS256", "EdDSA"}),
	)
	if err != nil {
		return Caller{}, fmt.Errorf("workload token: %w", err)
	}
	if claims.Namespace == "" || claims.ServiceAccount == "" {
		return Caller{}, errors.New("workload token: no namespace or service account")
	}
	return Caller{
		Namespace:      claims.Namespace,
		ServiceAccount: claims.ServiceAccount,
		Workload:       claims.Workload,
		Via:            "glassmesh workload token",
		Expiry:         claims.ExpiresAt.Time,
	}, nil
}

// keyID names the CA key a token was signed with: the first bytes of the
// hash of its public key.
func (c *CA) keyID() string {
	sum := sha256.Sum256(c.cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:8])
}

// signingMethod picks the JWT algorithm for the CA's key.
func signingMethod(s crypto.Signer) (jwt.SigningMethod, any, error) {
	switch k := s.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, k, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, k, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, k, nil
		}
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256, k, nil
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, k, nil
	}
	return nil, nil, fmt.Errorf("the CA key (%T) cannot sign workload tokens", s)
}

// TokenRequest is the body of POST /api/ca/tokens.
type TokenRequest struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	Workload       string `json:"workload,omitempty"` // binds the token to one workload
	TTL            string `json:"ttl,omitempty"`      // Go duration [24h]
}

// TokenHandler serves POST /api/ca/tokens: a workload token for audience,
// a namespace and service account (and, optionally, one workload). Who may
// ask is the caller's to decide (the operator).
func (c *CA) TokenHandler(audience string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req TokenRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		ttl := 24 * time.Hour
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 || d > 366*24*time.Hour {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl: %q is not a duration between 0 and 366 days", req.TTL))
				return
			}
			ttl = d
		}
		tok, err := c.MintToken(req.Namespace, req.ServiceAccount, req.Workload, audience, ttl)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expiresAt": time.Now().Add(ttl).UTC()})
	})
}
